#!/usr/bin/env bash
# Source-based coverage of the backends and the pool layer, as the fuzzers
# reach them: builds every fuzz target with clang's -fprofile-instr-generate
# -fcoverage-mapping through the ClusterFuzzLite build script (the way
# OSS-Fuzz builds coverage), replays the checked-in corpora, and prints per
# file the lines and branches reached, and the lines never reached.
#
#   tools/coverage.sh [--out=DIR] [--no_gate] [--corpus=TARGET=DIR ...]
#
#   --out=DIR              where the report goes (coverage.md, coverage.json,
#                          coverage.lcov and the binaries); default a new
#                          temporary folder
#   --corpus=TARGET=DIR    also replay DIR on TARGET (for example a campaign's
#                          corpus: --corpus=scheduled_fuzzer_tlcache=OUT/corpus/...)
#   --no_gate              report only; by default the exit status is 1 when
#                          a file under backends/ is below 95% of its lines or
#                          90% of its branches
#
# Each corpus is replayed as the corpus regression tests run it: as is, with
# every 3rd and every 17th system request failing, and with membarrier()
# failing from its first and from its 50th call (the fenced fallback).
#
# Lines unreachable by design are excluded by a comment naming why, never by
# a lower threshold (tools/coverage_report.py says how):
#   statement;  // coverage-exempt: <why no run can reach it>
#   // coverage-exempt-begin: <why>  ...  // coverage-exempt-end
set -euo pipefail
cd "$(dirname "$0")/.."

out=""
gate=1
extra=()
for arg in "$@"; do
  case "$arg" in
    --out=*) out="${arg#--out=}" ;;
    --no_gate) gate=0 ;;
    --corpus=*=*) extra+=("${arg#--corpus=}") ;;
    -h | --help) sed -n '2,26p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "coverage: unknown argument '$arg' (see --help)" >&2; exit 2 ;;
  esac
done
[[ -n "$out" ]] || out="$(mktemp -d)"
mkdir -p "$out"
out="$(cd "$out" && pwd)"

for tool in clang clang++ llvm-profdata llvm-cov; do
  command -v "$tool" >/dev/null || { echo "coverage: $tool not found; run 'sudo tools/setup.sh'" >&2; exit 2; }
done
export SRC="${SRC:-/opt/poolguard}"
export ABSL_SRC="${ABSL_SRC:-/opt/poolguard/abseil-cpp}"
[[ -d "$ABSL_SRC" ]] || { echo "coverage: no Abseil in $ABSL_SRC; run 'sudo tools/setup.sh'" >&2; exit 2; }

# 1. Build: OSS-Fuzz's coverage flags, no sanitizer (coverage counts what
#    runs; the sanitizers are the other jobs' business).
export CC=clang CXX=clang++
export CFLAGS="-O1 -fno-omit-frame-pointer -gline-tables-only \
-DFUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION -fprofile-instr-generate -fcoverage-mapping \
-fsanitize=fuzzer-no-link"
export CXXFLAGS="$CFLAGS"
export LIB_FUZZING_ENGINE="-fsanitize=fuzzer"
export WORK="${POOLGUARD_COVERAGE_WORK:-$HOME/.cache/poolguard/coverage-work}"
export OUT="$out/bin"
rm -rf "$OUT" "$out/profiles"
mkdir -p "$OUT" "$out/profiles"
echo "coverage: building the fuzz targets with coverage into $OUT"
bash .clusterfuzzlite/build.sh

# 2. Replay. LLVM_PROFILE_FILE with %p: one file per process, fork children
#    included (fuzz/interpreter.cc writes theirs before _exit()).
mapfile -t targets < <(find "$OUT" -maxdepth 1 -type f -executable -printf '%f\n' | sort)
[[ ${#targets[@]} -gt 0 ]] || { echo "coverage: no fuzz targets built" >&2; exit 1; }
conditions=("" "POOLGUARD_FAIL_EVERY_NTH=3" "POOLGUARD_FAIL_EVERY_NTH=17"
  "POOLGUARD_FAIL_MEMBARRIER=1" "POOLGUARD_FAIL_MEMBARRIER=50")
replay() {  # replay TARGET DIR
  local target="$1" dir="$2" condition
  mapfile -t inputs < <(find "$dir" -type f | sort)
  [[ ${#inputs[@]} -gt 0 ]] || { echo "coverage: $dir is empty" >&2; return 1; }
  for condition in "${conditions[@]}"; do
    # shellcheck disable=SC2086  # $condition is empty or one NAME=VALUE
    if ! env $condition LLVM_PROFILE_FILE="$out/profiles/$target-%p.profraw" \
        "$OUT/$target" -timeout=60 -rss_limit_mb=0 "${inputs[@]}" \
        >"$out/profiles/$target.log" 2>&1; then
      echo "coverage: $target failed on $dir${condition:+ with $condition}; its log:" >&2
      tail -30 "$out/profiles/$target.log" >&2
      return 1
    fi
  done
  echo "coverage: replayed ${#inputs[@]} inputs on $target (${#conditions[@]} conditions)"
}
for target in "${targets[@]}"; do
  corpus="$out/corpus/$target"
  rm -rf "$corpus"
  mkdir -p "$corpus"
  unzip -q "$OUT/${target}_seed_corpus.zip" -d "$corpus"
  replay "$target" "$corpus"
done
for pair in "${extra[@]}"; do
  target="${pair%%=*}"
  [[ -x "$OUT/$target" ]] || { echo "coverage: --corpus names no target '$target'" >&2; exit 2; }
  replay "$target" "${pair#*=}"
done

# 3. Report: each binary's lines and branches from its own runs (the same
#    function compiled into several targets must not lend one target's counts
#    to another), united per file.
rm -f "$out/coverage.lcov"
mapfile -t sources < <(git ls-files 'backends/*.cc' 'backends/*.h' 'pool/*.cc' 'pool/*.h' |
  grep -v '_test\.cc$')
for target in "${targets[@]}"; do
  llvm-profdata merge -sparse "$out/profiles/$target"-*.profraw -o "$out/profiles/$target.profdata"
  llvm-cov export -format=lcov -instr-profile="$out/profiles/$target.profdata" "$OUT/$target" \
    "${sources[@]}" >>"$out/coverage.lcov"
  llvm-cov export -format=text -skip-expansions -instr-profile="$out/profiles/$target.profdata" \
    "$OUT/$target" "${sources[@]}" >"$out/profiles/$target.json"
done
gate_flag=()
[[ "$gate" == 1 ]] && gate_flag=(--gate)
python3 tools/coverage_report.py --lcov="$out/coverage.lcov" --out="$out" "${gate_flag[@]}" \
  --json $(printf "$out/profiles/%s.json " "${targets[@]}")
