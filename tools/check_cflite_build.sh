#!/usr/bin/env bash
# Proves .clusterfuzzlite/build.sh the way ClusterFuzzLite would run it, since
# its base images cannot be pulled here: OSS-Fuzz's variables set to clang,
# libFuzzer and ASan values (without -stdlib=libc++, which Debian's clang does
# not ship by default), an empty $OUT, then each produced fuzz target run for a
# few seconds from its seed corpus with its dictionary and options.
#
#   tools/check_cflite_build.sh [SECONDS_PER_TARGET]
#
# $WORK (Abseil's cmake build) is kept in ~/.cache/poolguard so reruns are
# cheap, as Bazel's disk cache keeps the rest of CI cheap.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-5}"

export CC=clang CXX=clang++
export CFLAGS="-O1 -fno-omit-frame-pointer -gline-tables-only \
-DFUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION -fsanitize=address \
-fsanitize-address-use-after-scope -fsanitize=fuzzer-no-link"
export CXXFLAGS="$CFLAGS"
export LIB_FUZZING_ENGINE="-fsanitize=fuzzer"
export SRC="${SRC:-/opt/poolguard}"
export ABSL_SRC="${ABSL_SRC:-/opt/poolguard/abseil-cpp}"
export WORK="${POOLGUARD_CFLITE_WORK:-$HOME/.cache/poolguard/cflite-work}"
OUT="$(mktemp -d)"
export OUT
trap 'rm -rf "$OUT"' EXIT

[[ -d "$ABSL_SRC" ]] || { echo "check_cflite_build: no Abseil in $ABSL_SRC; run 'sudo tools/setup.sh'" >&2; exit 2; }
echo "check_cflite_build: building into $OUT"
bash .clusterfuzzlite/build.sh

mapfile -t targets < <(find "$OUT" -maxdepth 1 -type f -executable | sort)
backends=$(python3 tools/project.py backends)
expected=$(( $(wc -w <<<"$backends") * 2 ))
if [[ ${#targets[@]} -ne $expected ]]; then
  echo "check_cflite_build: FAIL: ${#targets[@]} targets in \$OUT, expected $expected" >&2
  exit 1
fi
status=0
for binary in "${targets[@]}"; do
  name=$(basename "$binary")
  for part in "${name}_seed_corpus.zip" "$name.dict" "$name.options"; do
    [[ -s "$OUT/$part" ]] || { echo "check_cflite_build: FAIL: $part missing" >&2; status=1; }
  done
  corpus="$OUT/corpus-$name"
  mkdir -p "$corpus"
  unzip -q "$OUT/${name}_seed_corpus.zip" -d "$corpus"
  # As ClusterFuzzLite runs it: options from the .options file, in $OUT.
  if (cd "$OUT" && "$binary" -dict="$name.dict" -timeout=30 -max_total_time="$seconds" \
        "$corpus" >"$OUT/$name.log" 2>&1); then
    echo "check_cflite_build: ok: $name ($(unzip -l "$OUT/${name}_seed_corpus.zip" | tail -1 | awk '{print $2}') seeds, ${seconds} s)"
  else
    echo "check_cflite_build: FAIL: $name; its log:" >&2
    tail -40 "$OUT/$name.log" >&2
    status=1
  fi
done
exit "$status"
