#!/usr/bin/env bash
# The long soak: tests/soak_test for every backend (soak_test_<backend> of
# each in-tree backend in variants.bzl, read by tools/project.py), under
# ASan and under TSan, two runs at a time, niced. Logs and a summary go to
# the output folder.
#
#   tools/soak.sh [--duration=10m] [--out=/tmp/poolguard-soak] [--configs="asan tsan"]
#
# One backend by hand: bazel run --config=asan //backends/lockless:soak_test_lockless -- --duration=10m
set -uo pipefail
cd "$(dirname "$0")/.."

duration=10m
out=/tmp/poolguard-soak
configs="asan tsan"
for arg in "$@"; do
  case "$arg" in
    --duration=*) duration="${arg#*=}" ;;
    --out=*) out="${arg#*=}" ;;
    --configs=*) configs="${arg#*=}" ;;
    *) echo "usage: $0 [--duration=10m] [--out=DIR] [--configs=\"asan tsan\"]" >&2; exit 2 ;;
  esac
done
mkdir -p "$out"

targets=$(python3 tools/project.py backends | sed 's#.*#//backends/&:soak_test_&#')
[[ -n "$targets" ]] || { echo "soak: no backends in variants.bzl" >&2; exit 1; }

status=0
for config in $configs; do
  bazel build --config="$config" $targets || exit 1
  bin="$(bazel info --config="$config" bazel-bin 2>/dev/null)"
  pids=()
  for target in $targets; do
    name="${target##*:}"
    package="${target#//}"
    package="${package%%:*}"
    log="$out/${name}_${config}.log"
    echo "soak: $name under $config for $duration -> $log"
    # A sanitizer report ends the run (and fails it) at once.
    (TSAN_OPTIONS="${TSAN_OPTIONS:-halt_on_error=1}" nice -n 10 "$bin/$package/$name" \
        --duration="$duration" > "$log" 2>&1
     echo "exit code $?" >> "$log") &
    pids+=($!)
    # Two at a time: the machine is shared.
    if [[ ${#pids[@]} -ge 2 ]]; then
      for i in "${!pids[@]}"; do
        wait "${pids[$i]}"
      done
      pids=()
    fi
  done
  for pid in "${pids[@]}"; do wait "$pid"; done
done

echo
echo "soak summary ($duration each):"
for log in "$out"/*.log; do
  result="$(grep -m1 -E '^soak: (PASSED|FAILED)' "$log")"
  code="$(tail -n 1 "$log")"
  [[ "$code" == "exit code 0" ]] || status=1
  echo "  $(basename "$log" .log): ${result:-no result (see the log)}; $code"
done
exit "$status"
