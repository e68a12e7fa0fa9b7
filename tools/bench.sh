#!/usr/bin/env bash
# bazel run //tools:bench -- --out=DIR [--reps=N] [--min_time=S] [--quick]
# (bazel run starts this in the runfiles folder, where tools/bench.py is.)
set -euo pipefail
command -v python3 >/dev/null || { echo "bench: python3 not found; run tools/setup.sh" >&2; exit 2; }
exec python3 tools/bench.py "$@"
