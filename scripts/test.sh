#!/usr/bin/env bash
# The test command: installs missing Debian packages, configures build/
# (Release), builds everything with -j2 and runs the whole CTest suite
# (unit tests, PyTorch parity, header and consumer build checks); then the
# unit and parity tests again, built for aarch64 and run under qemu-user
# (scripts/test-aarch64.sh; SALTED_SKIP_AARCH64=1 skips it).
# Extra arguments go to ctest, e.g. `bash scripts/test.sh -R parity`.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
jobs="${SALTED_JOBS:-2}"

bash "$root/scripts/install-deps.sh"
cmake -S "$root" -B "$root/build" -DCMAKE_BUILD_TYPE=Release
cmake --build "$root/build" --parallel "$jobs"
cd "$root/build"
ctest --output-on-failure --parallel "$jobs" "$@"
if [[ "${SALTED_SKIP_AARCH64:-0}" != 1 ]]; then
  bash "$root/scripts/test-aarch64.sh" "$@"
fi
