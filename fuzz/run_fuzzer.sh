#!/usr/bin/env bash
# bazel run //fuzz:<target>_<backend>_run -- [libFuzzer flags]
# Fuzzes into a writable corpus folder, seeded from the checked-in corpus.
# POOLGUARD_CORPUS_DIR overrides the folder (default ~/.cache/poolguard/corpus/<target>).
set -euo pipefail
binary="$1" target="$2" seed_dir="$3" dict="$4"
shift 4
corpus="${POOLGUARD_CORPUS_DIR:-$HOME/.cache/poolguard/corpus/$target}"
mkdir -p "$corpus" || { echo "run_fuzzer: cannot create corpus folder $corpus" >&2; exit 1; }
[[ -w "$corpus" ]] || { echo "run_fuzzer: corpus folder $corpus is not writable" >&2; exit 1; }
cp -n "$seed_dir"/* "$corpus"/ 2>/dev/null || true
binary="$PWD/$binary"
flags=()
[[ -n "$dict" ]] && flags+=("-dict=$PWD/$dict")
echo "run_fuzzer: $target, corpus $corpus" >&2
# Crash files land in the caller's folder unless -artifact_prefix says otherwise.
cd "${BUILD_WORKING_DIRECTORY:-.}"
exec "$binary" "${flags[@]}" "$@" "$corpus"
