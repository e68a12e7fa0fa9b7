#!/usr/bin/env bash
# Corpus regression test: runs a fuzz binary once over every corpus file.
# Usage: run_regression.sh BINARY FILE...  (libFuzzer and the replay engine
# both treat file arguments as inputs to run once).
set -euo pipefail
binary="$1"
shift
[[ $# -gt 0 ]] || { echo "run_regression: no corpus files" >&2; exit 1; }
export TSAN_OPTIONS="${TSAN_OPTIONS:-halt_on_error=1} suppressions=${POOLGUARD_TSAN_SUPPRESSIONS:-fuzz/tsan_suppressions.txt}"
exec "$binary" "$@"
