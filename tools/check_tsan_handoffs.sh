#!/usr/bin/env bash
# Proves that the scheduled executor's hand-offs are hidden from TSan, so that
# TSan still sees races between the threads the scheduler serializes.
#
# The seeded race stats_read_without_lock (fuzz/mutants/README.md) reads the
# locked backend's counters without its lock. Replaying the scheduled fuzzer's
# checked-in corpus with that mutant under --config=tsan-fuzz must:
#   1. report a ThreadSanitizer data race (hand-offs hidden, the default);
#   2. report nothing when POOLGUARD_TSAN_SEE_HANDOFFS=1 lets TSan see the
#      hand-offs as happens-before edges (the control);
#   3. report nothing under ASan, which cannot see this bug at all.
# Run from the workspace root: tools/check_tsan_handoffs.sh
set -euo pipefail
cd "$(dirname "$0")/.."
target=//backends/locked:scheduled_fuzzer_locked_bin
binary=bazel-bin/backends/locked/scheduled_fuzzer_locked_bin
mutant=--//pool:mutant=stats_read_without_lock
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

replay() {  # replay LABEL ENV... : runs the corpus, prints the log to $work/LABEL.log
  local label="$1"
  shift
  env "$@" "$binary" fuzz/corpus/scheduled/* > "$work/$label.log" 2>&1 || true
}

bazel build --config=tsan-fuzz "$mutant" "$target" 2>&1 | tail -n 1
cp "$binary" "$work/tsan_bin"
binary="$work/tsan_bin"
replay hidden
replay visible POOLGUARD_TSAN_SEE_HANDOFFS=1
bazel build --config=asan-fuzz "$mutant" "$target" 2>&1 | tail -n 1
binary=bazel-bin/backends/locked/scheduled_fuzzer_locked_bin
replay asan

status=0
if grep -q "WARNING: ThreadSanitizer: data race" "$work/hidden.log"; then
  echo "ok   hidden hand-offs: TSan reports the seeded race"
else
  echo "FAIL hidden hand-offs: TSan reported no race"; status=1
fi
if grep -q "ThreadSanitizer" "$work/visible.log"; then
  echo "FAIL visible hand-offs: TSan reported something (expected nothing)"; status=1
else
  echo "ok   visible hand-offs (control): TSan reports nothing, the hand-off hides the race"
fi
if grep -qE "ERROR: AddressSanitizer|oracle failure" "$work/asan.log"; then
  echo "FAIL ASan reported something for a race only TSan can see"; status=1
else
  echo "ok   ASan: nothing (only TSan can see this bug)"
fi
exit "$status"
