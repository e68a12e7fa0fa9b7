#!/usr/bin/env bash
# Corpus regression test: runs a fuzz binary once over every corpus file.
# Usage: run_regression.sh BINARY FILE...  (libFuzzer and the replay engine
# both treat file arguments as inputs to run once).
set -euo pipefail
binary="$1"
shift
[[ $# -gt 0 ]] || { echo "run_regression: no corpus files" >&2; exit 1; }
exec "$binary" "$@"
