#!/usr/bin/env bash
# Runs tools/demo.cc once per backend: bazel run //tools:demo -- [--seconds=N]
# Arguments before "--" are the per-backend demo binaries (from BUILD).
set -euo pipefail
binaries=()
while [[ $# -gt 0 && "$1" != "--" ]]; do binaries+=("$1"); shift; done
[[ $# -gt 0 ]] && shift
status=0
for binary in "${binaries[@]}"; do
  "$binary" "$@" || status=$?
  echo
done
exit "$status"
