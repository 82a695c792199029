#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (ASan + UBSan + libFuzzer) in
# ./build-fuzz (or $QSWEEP_FUZZ_BUILD) and runs each for a bounded time from
# its seed corpus in fuzz/corpus/<target>/.
#
#   fuzz/run.sh                 build, then run every target for 30 s
#   fuzz/run.sh build           build only
#   fuzz/run.sh run [T] [S]     run target T (default: all) for S seconds (default 30)
#   fuzz/run.sh repro T FILE    run target T once on FILE (a crash reproducer)
#
# New inputs libFuzzer finds go to a scratch folder, not into the repo; a
# crash is written to build-fuzz/crashes/<target>/ and fails the run. Add a
# fixed crash's input to fuzz/corpus/<target>/ so it stays covered.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
# Inputs go through a scratch file; tmpfs keeps that fast.
if [ -z "${TMPDIR:-}" ] && [ -w /dev/shm ]; then export TMPDIR=/dev/shm; fi
BUILD="${QSWEEP_FUZZ_BUILD:-$ROOT/build-fuzz}"
JOBS="${QSWEEP_JOBS:-$(nproc)}"
TARGETS=(sweep_toml rpc_validators prepared_file csv checkpoint)

build() {
  local t0=$(date +%s)
  CC=clang CXX=clang++ cmake -S fuzz -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE= >/dev/null
  ninja -C "$BUILD" -j "$JOBS" "${TARGETS[@]/#/fuzz_}"
  echo "fuzz: build $(( $(date +%s) - t0 )) s"
}

run_one() {
  local t=$1 secs=$2
  local crashes="$BUILD/crashes/$t" scratch
  mkdir -p "$crashes"
  scratch=$(mktemp -d)
  # -rss_limit_mb: a reader that allocates without bound is a finding too.
  if ! ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1 \
       "$BUILD/fuzz_$t" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
       -max_len=65536 -print_final_stats=1 -artifact_prefix="$crashes/" \
       "$scratch" "fuzz/corpus/$t" >"$BUILD/$t.log" 2>&1; then
    tail -60 "$BUILD/$t.log"
    echo "fuzz: $t FAILED (reproducer in $crashes/; log $BUILD/$t.log)"
    rm -rf "$scratch"
    return 1
  fi
  rm -rf "$scratch"
  echo "fuzz: $t ok: $(grep -E '^stat::number_of_executed_units' "$BUILD/$t.log" | awk '{print $2}') runs in ${secs} s"
}

cmd="${1:-all}"
case "$cmd" in
  build) build ;;
  run)
    secs="${3:-30}"
    if [ -n "${2:-}" ] && [ "$2" != all ]; then run_one "$2" "$secs"; exit; fi
    failed=0
    for t in "${TARGETS[@]}"; do run_one "$t" "$secs" || failed=1; done
    exit $failed ;;
  repro) "$BUILD/fuzz_$2" "$3" ;;
  all)
    build
    failed=0
    for t in "${TARGETS[@]}"; do run_one "$t" "${QSWEEP_FUZZ_SECONDS:-30}" || failed=1; done
    exit $failed ;;
  *) echo "usage: fuzz/run.sh [build | run [TARGET] [SECONDS] | repro TARGET FILE]" >&2; exit 2 ;;
esac
