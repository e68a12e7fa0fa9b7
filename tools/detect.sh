#!/usr/bin/env bash
# bazel run //tools:detect -- --seeds=5 --budget_s=300 --out=DIR [--only=NAME]
# (bazel run starts this in the runfiles folder, where tools/detect.py is.)
set -euo pipefail
command -v python3 >/dev/null || { echo "detect: python3 not found; run tools/setup.sh" >&2; exit 2; }
exec python3 tools/detect.py "$@"
