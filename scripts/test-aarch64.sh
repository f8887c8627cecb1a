#!/usr/bin/env bash
# The test suite built for 64-bit ARM (NEON: salted's phone-class target)
# with Debian's cross compiler and run under qemu-user: the unit tests and
# the PyTorch parity tests (the parity cases are written on the host by
# python3 and read by the ARM binaries). Not run here: the header compile
# and outside-project checks (they drive the host compiler) and the fuzzers.
# Called by scripts/test.sh; extra arguments go to ctest.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
jobs="${SALTED_JOBS:-2}"
build="$root/build-aarch64"

bash "$root/scripts/install-deps.sh"
# xsimd's CMake package sits under the host's multiarch directory; it is
# header-only, so the host's copy serves the ARM build.
xsimd_dir="$(dirname "$(dpkg -L libxsimd-dev | grep '/xsimdConfig.cmake$' | head -n 1)")"
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_SYSTEM_NAME=Linux -DCMAKE_SYSTEM_PROCESSOR=aarch64 \
  -DCMAKE_C_COMPILER=aarch64-linux-gnu-gcc -DCMAKE_CXX_COMPILER=aarch64-linux-gnu-g++ \
  -DCMAKE_CROSSCOMPILING_EMULATOR="qemu-aarch64;-L;/usr/aarch64-linux-gnu" \
  -Dxsimd_DIR="$xsimd_dir" -DSALTED_NATIVE=OFF -DSALTED_BUILD_PROGRAMS=OFF -DSALTED_BUILD_BENCH=OFF
cmake --build "$build" --parallel "$jobs"
cd "$build"
ctest --output-on-failure --parallel "$jobs" --label-exclude 'build|fuzz' "$@"
