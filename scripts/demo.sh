#!/usr/bin/env bash
# The main job, for now: builds the examples and runs tiny_lenet, a small
# salted CNN built in code that shows salting and de-salting end to end.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
jobs="${SALTED_JOBS:-2}"

bash "$root/scripts/install-deps.sh"
cmake -S "$root" -B "$root/build" -DCMAKE_BUILD_TYPE=Release
if ! cmake --build "$root/build" --target tiny_lenet --parallel "$jobs"; then
  echo "demo: examples/tiny_lenet did not build; if CMake said it skipped it," \
       "the layer headers it needs are not in this checkout yet" >&2
  exit 1
fi
"$root/build/examples/tiny_lenet" "$@"
