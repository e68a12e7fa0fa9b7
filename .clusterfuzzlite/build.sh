#!/bin/bash -eu
# ClusterFuzzLite / OSS-Fuzz build script, in OSS-Fuzz's conventions: runs in
# the project's folder with $CC, $CXX, $CFLAGS, $CXXFLAGS (sanitizer and
# coverage flags) and $LIB_FUZZING_ENGINE set, and writes to $OUT every fuzz
# target with its <target>_seed_corpus.zip, <target>.dict and <target>.options.
#
# It compiles with the given compilers directly rather than through Bazel:
# the builder images carry neither Bazel 4 nor the Debian packages our
# WORKSPACE binds, and OSS-Fuzz wants its own flags on every object anyway.
# The sources are globbed per folder (code backends share is in
# backends/common/), so a new backend or source file needs no
# edit here; the backend list is read from variants.bzl (tools/project.py), the one list.
#
# Abseil comes from $ABSL_SRC (default $SRC/abseil-cpp, cloned by the
# Dockerfile) and is built with the same flags, so the sanitizers see it.
# tools/check_cflite_build.sh runs this script locally in CI.

# Also when started as "bash build.sh", which ignores the #! line's flags.
set -euo pipefail

project="$PWD"
absl_src="${ABSL_SRC:-$SRC/abseil-cpp}"
work="${WORK:-$(mktemp -d)}"
mkdir -p "$work" "$OUT"

# 1. Abseil, the parts poolguard uses, instrumented like the rest.
cmake -S "$absl_src" -B "$work/absl" -G Ninja \
  -DCMAKE_C_COMPILER="$CC" -DCMAKE_CXX_COMPILER="$CXX" \
  -DCMAKE_C_FLAGS="$CFLAGS" -DCMAKE_CXX_FLAGS="$CXXFLAGS" \
  -DCMAKE_CXX_STANDARD=17 -DABSL_PROPAGATE_CXX_STD=ON -DBUILD_TESTING=OFF \
  -DCMAKE_BUILD_TYPE= >"$work/absl-configure.log"
# (Abseil's CMake names its targets without the absl_ prefix.)
cmake --build "$work/absl" --target status statusor strings synchronization \
  >"$work/absl-build.log"
mapfile -t absl_libs < <(find "$work/absl" -name 'libabsl_*.a' | sort)

backends=$(python3 tools/project.py backends)
[[ -n "$backends" ]] || { echo "build.sh: no BACKENDS in variants.bzl" >&2; exit 1; }

# -mcx16: the shared free list's 16-byte CAS as the __atomic builtin rather
# than inline asm (backends/common/shared_free_list.h); harmless elsewhere.
common=(-std=c++17 -I"$project" -I"$absl_src" -mcx16 -pthread)

# compile OUTDIR INCLUDE FLAGS... -- SOURCES...: objects into OUTDIR.
compile() {
  local outdir="$1" include="$2"
  shift 2
  local flags=()
  while [[ "$1" != "--" ]]; do flags+=("$1"); shift; done
  shift
  mkdir -p "$outdir"
  local src
  for src in "$@"; do
    local obj="$outdir/$(echo "$src" | tr / _).o"
    # shellcheck disable=SC2086  # $CXXFLAGS is a list of flags
    $CXX $CXXFLAGS "${common[@]}" -I"$include" "${flags[@]}" -c "$src" -o "$obj"
  done
}

mapfile -t pool_sources < <(ls pool/*.cc | grep -v '_test\.cc$')
mapfile -t harness_copts < <(python3 tools/project.py harness-copts)

for backend in $backends; do
  # "poolguard/backend.h" is how pool/pool.h reaches the chosen backend.
  include="$work/include-$backend"
  mkdir -p "$include/poolguard"
  cp "backends/$backend/backend.h" "$include/poolguard/backend.h"
  # The backend's own sources (every layer), and the code backends share
  # (backends/common); not their tests (*_test.cc, GoogleTest mains).
  mapfile -t backend_sources < <(
    ls backends/"$backend"/*.cc backends/common/*.cc 2>/dev/null | grep -v '_test\.cc$' | sort -u)

  # The scheduled fuzzer: the _sched variant (schedule points compiled in,
  # exact replay). The free-running fuzzer: the _fuzz variant, the
  # production pool on real threads. Their defines come from variants.bzl.
  for fuzzer in scheduled free_running; do
    case "$fuzzer" in
      scheduled)
        mapfile -t defines < <(python3 tools/project.py variant-defines _sched | sed 's/^/-D/')
        support=(fuzz/exec_profile.cc fuzz/op_program.cc fuzz/schedule.cc fuzz/store_buffers.cc)
        harness=(fuzz/interpreter.cc fuzz/scheduled.cc) ;;
      free_running)
        mapfile -t defines < <(python3 tools/project.py variant-defines _fuzz | sed 's/^/-D/')
        defines+=(-DPOOLGUARD_FREE_RUNNING_FUZZER)
        support=(fuzz/exec_profile.cc fuzz/op_program.cc)
        harness=(fuzz/interpreter.cc fuzz/free_running.cc) ;;
    esac
    [[ ${#defines[@]} -gt 0 ]] || { echo "build.sh: no defines for $fuzzer" >&2; exit 1; }
    target="${fuzzer}_fuzzer_${backend}"
    objects="$work/obj/$target"
    rm -rf "$objects"
    compile "$objects" "$include" "${defines[@]}" -- \
      "${pool_sources[@]}" "${backend_sources[@]}" "${support[@]}" fuzz/pool_fuzzer.cc
    # The op interpreter and its executors with their own options, as in
    # Bazel (variants.bzl, HARNESS_COPTS).
    compile "$objects" "$include" "${defines[@]}" "${harness_copts[@]}" -- "${harness[@]}"
    # shellcheck disable=SC2086  # $CXXFLAGS and $LIB_FUZZING_ENGINE are lists
    $CXX $CXXFLAGS "$objects"/*.o $LIB_FUZZING_ENGINE \
      -Wl,--start-group "${absl_libs[@]}" -Wl,--end-group -pthread -o "$OUT/$target"

    (cd "fuzz/corpus/$fuzzer" && zip -q -j "$OUT/${target}_seed_corpus.zip" ./*)
    cp fuzz/pool_fuzzer.dict "$OUT/$target.dict"
    cat >"$OUT/$target.options" <<OPTIONS
[libfuzzer]
dict = $target.dict
timeout = 30
OPTIONS
  done
done
