#!/usr/bin/env bash
# Runs one of the Python tools from the runfiles folder, where `bazel run`
# starts it: python_tool.sh tools/NAME.py [arguments...]
set -euo pipefail
command -v python3 >/dev/null || {
  echo "$(basename "$1" .py): error: python3 not found; run 'sudo tools/setup.sh'" >&2
  exit 2
}
exec python3 "$@"
