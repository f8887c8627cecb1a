#!/usr/bin/env bash
# Builds every fuzz/fuzz_*.cpp as a libFuzzer target (with ASan and UBSan)
# and runs each for a bounded time. Fails if any target crashes, leaks,
# trips a sanitizer or breaks one of its own invariants.
#
#   fuzz/run.sh [seconds_per_target]        (default 15)
#
# Environment:
#   SALTED_FUZZ_BUILD   build/output directory (default <repo>/build/fuzz)
#   SALTED_FUZZ_CXX     clang++ to use (default: clang++, then clang++-14..19)
#   SALTED_XSIMD_INCLUDE  directories holding xsimd/ (':'-separated) if not a system path
#   SALTED_FUZZ_ONLY    run only this target (e.g. fuzz_frame)
#
# A target states its input size limit with a line "// fuzz-max-len: N" in
# its source (default 4096). Seeds: <build>/seeds/<target>/ (written by
# fuzz/make_seeds.cpp) and fuzz/corpus/<target>/ (committed), both optional.
# A dictionary fuzz/<target>.dict is used when present. Crashing inputs are
# saved as <build>/crashes/<target>-crash-*; reproduce with
#   <build>/bin/<target> <that file>
#
# Exit status: 0 all passed, 1 a target failed or did not build, 77 no
# usable clang/libFuzzer on this machine (CTest reports the test as skipped).
set -u -o pipefail

seconds="${1:-15}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="${SALTED_FUZZ_BUILD:-$root/build/fuzz}"
mkdir -p "$out/bin" "$out/corpus" "$out/seeds" "$out/crashes" "$out/logs"

# --- a clang that can link libFuzzer -------------------------------------
probe="$out/probe.cpp"
printf '%s\n' '#include <cstdint>' '#include <cstddef>' \
  'extern "C" int LLVMFuzzerTestOneInput(const uint8_t*, size_t) { return 0; }' > "$probe"
cxx=""
for c in ${SALTED_FUZZ_CXX:-} clang++ clang++-14 clang++-15 clang++-16 clang++-17 clang++-18 clang++-19; do
  command -v "$c" >/dev/null 2>&1 || continue
  if "$c" -fsanitize=fuzzer,address,undefined "$probe" -o "$out/probe" >/dev/null 2>&1; then cxx="$c"; break; fi
done
if [ -z "$cxx" ]; then
  echo "fuzz: SKIPPED: no clang++ able to link -fsanitize=fuzzer,address,undefined" \
       "(install clang and libclang-rt-dev, or set SALTED_FUZZ_CXX)"
  exit 77
fi

includes=(-I "$root/include")
# CMake passes xsimd's include directories ':'-joined; system directories are
# skipped, since naming them explicitly breaks #include_next in libstdc++.
IFS=':;' read -r -a xsimd_dirs <<< "${SALTED_XSIMD_INCLUDE:-}"
for d in "${xsimd_dirs[@]}"; do
  case "$d" in ""|/usr/include|/usr/local/include) ;; *) includes+=(-isystem "$d") ;; esac
done
# -fno-sanitize-recover: a UBSan finding aborts, so libFuzzer records it.
flags=(-std=c++17 -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
       -fno-omit-frame-pointer -Wall -Wextra)
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:strict_string_checks=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}"

# Rebuild a binary only when its source or any header is newer.
needs_build() {  # binary source...
  local bin="$1"; shift
  [ -x "$bin" ] || return 0
  [ -n "$(find "$@" "$root/include" -newer "$bin" -name '*.*pp' -print -quit)" ]
}

# --- seeds -----------------------------------------------------------------
if [ -f "$root/fuzz/make_seeds.cpp" ]; then
  if needs_build "$out/bin/make_seeds" "$root/fuzz/make_seeds.cpp"; then
    "$cxx" -std=c++17 -O1 "${includes[@]}" "$root/fuzz/make_seeds.cpp" -o "$out/bin/make_seeds" \
      || { echo "fuzz: FAILED to build make_seeds"; exit 1; }
  fi
  "$out/bin/make_seeds" "$out/seeds" || { echo "fuzz: FAILED to write seeds"; exit 1; }
fi

# --- build and run every target -------------------------------------------
status=0
ran=0
for src in "$root"/fuzz/fuzz_*.cpp; do
  [ -e "$src" ] || continue
  name="$(basename "$src" .cpp)"
  if [ -n "${SALTED_FUZZ_ONLY:-}" ] && [ "$name" != "$SALTED_FUZZ_ONLY" ]; then continue; fi
  bin="$out/bin/$name"
  if needs_build "$bin" "$src"; then
    echo "fuzz: building $name"
    if ! "$cxx" "${flags[@]}" "${includes[@]}" "$src" -o "$bin" 2> "$out/logs/$name.build.log"; then
      echo "fuzz: FAILED to build $name:"; cat "$out/logs/$name.build.log"; status=1; continue
    fi
  fi
  max_len="$(sed -n 's|^// fuzz-max-len: *\([0-9][0-9]*\).*|\1|p' "$src" | head -n 1)"
  args=(-max_total_time="$seconds" -max_len="${max_len:-4096}" -timeout=10 -rss_limit_mb=2048
        -print_final_stats=1 -artifact_prefix="$out/crashes/$name-")
  [ -f "$root/fuzz/$name.dict" ] && args+=(-dict="$root/fuzz/$name.dict")
  corpora=("$out/corpus/$name")
  mkdir -p "$out/corpus/$name"
  [ -d "$out/seeds/$name" ] && corpora+=("$out/seeds/$name")
  [ -d "$root/fuzz/corpus/$name" ] && corpora+=("$root/fuzz/corpus/$name")
  echo "fuzz: running $name for ${seconds}s (max_len ${max_len:-4096})"
  if "$bin" "${args[@]}" "${corpora[@]}" > "$out/logs/$name.log" 2>&1; then
    echo "fuzz: $name passed ($(grep -m1 -o 'stat::number_of_executed_units: *[0-9]*' "$out/logs/$name.log" | grep -o '[0-9]*$') runs)"
  else
    echo "fuzz: $name FAILED; last lines of $out/logs/$name.log:"
    tail -n 40 "$out/logs/$name.log"
    status=1
  fi
  ran=$((ran + 1))
done
if [ "$ran" -eq 0 ] && [ "$status" -eq 0 ]; then echo "fuzz: no targets ran"; status=1; fi
exit "$status"
