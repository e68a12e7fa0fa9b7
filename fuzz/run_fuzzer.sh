#!/usr/bin/env bash
# bazel run //<backend package>:<fuzzer>_<backend>_run -- [libFuzzer flags]
# Fuzzes into a writable corpus folder, seeded from the checked-in corpus.
# POOLGUARD_CORPUS_DIR overrides the folder (default ~/.cache/poolguard/corpus/<target>).
# Arguments (from defs.bzl): BINARY TARGET DICT SEED_FILE... [-- libFuzzer flags]
# (bazel run appends the user's arguments after the seed files; the first one
# that starts with '-' ends the seeds).
set -euo pipefail
binary="$1" target="$2" dict="$3"
shift 3
seeds=()
while [[ $# -gt 0 && "$1" != -* ]]; do seeds+=("$1"); shift; done
corpus="${POOLGUARD_CORPUS_DIR:-$HOME/.cache/poolguard/corpus/$target}"
mkdir -p "$corpus" || { echo "run_fuzzer: cannot create corpus folder $corpus" >&2; exit 1; }
[[ -w "$corpus" ]] || { echo "run_fuzzer: corpus folder $corpus is not writable" >&2; exit 1; }
for seed in "${seeds[@]}"; do cp -n "$seed" "$corpus"/ 2>/dev/null || true; done
binary="$PWD/$binary"
dict="$PWD/$dict"
echo "run_fuzzer: $target, corpus $corpus" >&2
# Crash files land in the caller's folder unless -artifact_prefix says otherwise.
cd "${BUILD_WORKING_DIRECTORY:-.}"
exec "$binary" "-dict=$dict" "$@" "$corpus"
