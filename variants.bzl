"""poolguard's lists: the backends, the build variants and the seeded bugs.

Data only, the one place each list lives (tcmalloc's variants.bzl pattern):
defs.bzl turns them into targets with one loop each, and the Python tools read
this same file (tools/project.py parses it as literals), so no list is ever
written out twice. Keep it to plain literals: strings, lists and dicts.
"""

# The in-tree backends users pick with --//pool:backend. Each lives in
# backends/<name>/, whose BUILD calls poolguard_backend() (defs.bzl). A backend
# in another workspace needs no entry here: it calls the same macro there.
BACKENDS = [
    # One free list under a spinlock (backends/locked/locked_backend.h).
    "locked",
    # The shared DWCAS free list alone, claimed by exchange (no lock anywhere).
    "lockless",
    # Per-thread caches in front of a transfer cache and the shared list (the default).
    "tlcache",
]

# The backend //pool links when --//pool:backend is not given.
DEFAULT_BACKEND = "tlcache"

# Build variants of every backend and of the code above it, by target-name
# suffix. Each maps to //pool:internal<name>, whose `defines` propagate to
# everything built on it, so that one binary never mixes variants.
#   defines:  what the variant compiles with.
#   mutants:  the seeded-bug switch (--//pool:mutant) reaches this variant.
VARIANTS = [
    {
        # Production: schedule points compile to nothing.
        "name": "",
        "defines": [],
        "mutants": False,
    },
    {
        # Fuzz scheduling: schedule points call the fuzz scheduler's hook,
        # limits a program of 2 to 4 threads could never reach are small
        # enough that it does (tlcache's thread indexes: 3, where
        # production has 255), and libstdc++ checks every index of its
        # containers (ABI-compatible), where ASan sees no overflow inside
        # an object and UBSan checks no array of class type.
        "name": "_sched",
        "defines": [
            "POOLGUARD_SCHEDULE_POINTS",
            "POOLGUARD_FUZZ_BUILD",
            "POOLGUARD_MAX_CACHE_THREADS=4",
            "_GLIBCXX_ASSERTIONS",
        ],
        "mutants": True,
    },
    {
        # Free-running fuzzing: the production code, plus the seeded-bug
        # switch (tests/codegen_test checks that without a mutant it compiles
        # to the production object code).
        "name": "_fuzz",
        "defines": ["POOLGUARD_FUZZ_BUILD"],
        "mutants": True,
    },
    {
        # Debug mode: the Pool layer checks every call for misuse.
        "name": "_debug",
        "defines": ["POOLGUARD_DEBUG"],
        "mutants": False,
    },
    {
        # Use-after-free hunting: debug mode, and each object on pages of its
        # own, unmapped as soon as it is freed.
        "name": "_uaf",
        "defines": [
            "POOLGUARD_DEBUG",
            "POOLGUARD_UAF",
        ],
        "mutants": False,
    },
]

# The seeded-bug catalog (fuzz/mutants/README.md has each one's history).
# --//pool:mutant=NAME switches one on; the define POOLGUARD_MUTANT_<NAME>
# reaches only the variants with "mutants", and each mutant's code
# static_asserts POOLGUARD_FUZZ_BUILD_ENABLED, so no production build can
# contain one.
#   backend:  the backend the mutant lives in (or is built with).
#   target:   the fuzz target that must find it.
#   config:   the .bazelrc config that target runs under.
#   expect:   the kind of report (asan, tsan or oracle).
MUTANTS = [
    {
        "name": "seed_alloc_reads_freed_head",
        "backend": "lockless",
        "target": "scheduled_fuzzer",
        "config": "asan-fuzz",
        "expect": "asan",
        "summary": "the seed's pop reads the next link of a head it does not own",
    },
    {
        "name": "flush_aba",
        "backend": "lockless",
        "target": "scheduled_fuzzer",
        "config": "asan-fuzz",
        "expect": "oracle",
        "summary": "flush detaches by pointer alone and uncounts a stale snapshot",
    },
    {
        "name": "gc_flush_not_exclusive",
        "backend": "locked",
        "target": "scheduled_fuzzer",
        "config": "asan-fuzz",
        "expect": "asan",
        "summary": "gc releases its surplus outside the lock before unlinking it",
    },
    {
        "name": "empty_path_keeps_lock",
        "backend": "lockless",
        "target": "scheduled_fuzzer",
        "config": "asan-fuzz",
        "expect": "oracle",
        "summary": "the empty-pool return of pop keeps the head claimed (a hang)",
    },
    {
        "name": "stats_read_without_lock",
        "backend": "locked",
        "target": "scheduled_fuzzer",
        "config": "tsan-fuzz",
        "expect": "tsan",
        "summary": "Stats() reads the counters without the lock (only TSan sees it)",
    },
    {
        "name": "drain_ignores_busy",
        "backend": "tlcache",
        "target": "scheduled_fuzzer",
        "config": "asan-fuzz",
        "expect": "oracle",
        "summary": "a drainer takes a thread's cache without waiting for its window",
    },
    {
        "name": "tiny_slot_no_room_for_link",
        "backend": "tlcache",
        "target": "scheduled_fuzzer",
        "config": "asan-fuzz",
        "expect": "asan",
        "summary": "a slot sized for the object alone: no room for a free object's link",
    },
    {
        "name": "transfer_take_wrong_end",
        "backend": "tlcache",
        "target": "scheduled_fuzzer",
        "config": "asan-fuzz",
        "expect": "asan",
        "summary": "the transfer cache hands out its oldest pointers but uncounts its newest",
    },
    {
        "name": "spill_gives_one_too_many",
        "backend": "tlcache",
        "target": "scheduled_fuzzer",
        "config": "asan-fuzz",
        "expect": "asan",
        "summary": "a full cache gives back one object it also keeps",
    },
    {
        "name": "exit_leaves_cache_bound",
        "backend": "tlcache",
        "target": "scheduled_fuzzer",
        "config": "asan-fuzz",
        "expect": "asan",
        "summary": "a thread's caches are freed but stay bound to its index",
    },
    {
        "name": "destroy_leaves_cache_linked",
        "backend": "tlcache",
        "target": "scheduled_fuzzer",
        "config": "asan-fuzz",
        "expect": "asan",
        "summary": "a destroyed pool's caches stay in their threads' lists",
    },
    {
        "name": "drain_waits_before_closing",
        "backend": "tlcache",
        "target": "scheduled_fuzzer",
        "config": "asan-fuzz",
        "expect": "oracle",
        # Needs two preemptions placed just so: detect also runs it with
        # the interleaving feedback off.
        "feedback_experiment": True,
        "summary": "a drainer waits for idle owners before closing their caches",
    },
    {
        "name": "drain_skips_heavy_barrier",
        "backend": "tlcache",
        "target": "scheduled_fuzzer",
        "config": "asan-fuzz",
        "expect": "asan",
        "summary": "the drainer reads the owners' busy flags with no barrier after closing",
    },
]

# The fuzz targets every backend gets, and how the tools run each one.
#   config:        the .bazelrc config it is fuzzed under.
#   corpus:        its folder under fuzz/corpus/.
#   exact_replay:  an input fails the same way every time it runs.
FUZZERS = {
    "scheduled_fuzzer": {
        "config": "asan-fuzz",
        "sanitizer": "asan",
        "corpus": "scheduled",
        "exact_replay": True,
    },
    "free_running_fuzzer": {
        "config": "tsan-fuzz",
        "sanitizer": "tsan",
        "corpus": "free_running",
        "exact_replay": False,
    },
}

# Warnings for poolguard's own code (not for external repositories).
POOLGUARD_COPTS = [
    "-Wall",
    "-Wextra",
    "-Wno-unused-parameter",
    "-Wthread-safety",
    "-Werror=thread-safety",
    # What the compiler can prove is out of bounds (a memcpy past its
    # destination, an index past an array) is a bug, never a style matter.
    "-Werror=fortify-source",
    "-Werror=array-bounds",
]

# Extra options for the op interpreter and its executors (fuzz/interpreter.cc,
# scheduled.cc, free_running.cc), the harness around the pools: no
# SanitizerCoverage comparison tracing there. Their comparisons (indexes
# against sizes, counts against limits, libstdc++'s index checks in the
# _sched variant) are not input bytes libFuzzer could solve for, and tracing
# each one cost a call: about a third of the scheduled targets' time on the
# checked-in corpus (perf, 2026-12-04). The edge counters stay, and so does
# the tracing of the code that parses input bytes (fuzz/op_program.cc,
# fuzz/schedule.cc) and of the pools' own sources.
HARNESS_COPTS = ["-fno-sanitize-coverage=trace-cmp"]
