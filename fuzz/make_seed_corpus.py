#!/usr/bin/env python3
"""Writes the checked-in seed corpus and dictionary of the pool fuzzers.

  python3 fuzz/make_seed_corpus.py     # from the workspace root

Seeds are small generic programs (populate a pool, then use it from several
threads beside flush, gc and pool churn), each with a few PCT schedules. The
input format is in fuzz/op_program.h and fuzz/scheduled.h:
  scheduled input:    4 priority bytes, change-point count, 3 x {thread | kind << 2,
                      occurrence - 1}, program
  program:            thread-count byte, then {(thread << 4) | kind, arg} per op
"""

import itertools
from pathlib import Path

KINDS = dict(alloc=0, free=1, write=2, check=3, flush=4, gc=5, create=6, destroy=7,
             fail_next=8)
HERE = Path(__file__).resolve().parent


def program(threads, ops):
    data = bytes([threads - 2])
    for thread, kind, arg in ops:
        data += bytes([(thread << 4) | KINDS[kind], arg])
    return data


def populate(thread, pool, n):
    return [(thread, "alloc", pool)] * n + [(thread, "free", 0)] * n


SEEDS = {
    # One thread fills and drains a shared pool while another flushes it.
    "fill_drain_vs_flush": program(2, populate(0, 0, 3) + [(1, "flush", 0)] +
                                   [(0, "alloc", 0), (0, "alloc", 0), (0, "free", 0),
                                    (0, "free", 0)]),
    # The same against gc (shared-small keeps min_free 2).
    "fill_drain_vs_gc": program(2, populate(0, 0, 4) + [(1, "gc", 0)] +
                                [(0, "alloc", 0), (0, "alloc", 0), (0, "free", 1),
                                 (0, "free", 0), (1, "gc", 0)]),
    # A populated pool used by two threads while a third flushes and gcs.
    "two_users_and_a_cleaner": program(3, populate(0, 0, 2) + populate(1, 0, 2) +
                                       [(0, "alloc", 0), (1, "alloc", 0), (2, "flush", 0),
                                        (0, "write", 0), (1, "check", 0), (2, "gc", 0),
                                        (0, "free", 0), (1, "free", 0)]),
    # The limited shared pool (max_objects 6) from three threads.
    "limited_pool": program(3, [(t, "alloc", 1) for t in range(3) for _ in range(3)] +
                            [(t, "free", 0) for t in range(3)] + [(0, "flush", 1)]),
    # Private pool churn beside a gc walking the registry.
    "private_pools_and_gc": program(2, [(0, "create", 0), (0, "alloc", 2), (0, "write", 0),
                                        (1, "gc", 0), (0, "check", 0), (0, "free", 0),
                                        (1, "gc", 0), (0, "destroy", 0), (1, "create", 1),
                                        (1, "alloc", 3), (1, "flush", 3), (1, "free", 0)]),
    # Injected system-allocation failures beside allocs, pool creation and gc.
    "failures": program(2, [(0, "fail_next", 0), (0, "alloc", 0), (1, "fail_next", 0),
                            (1, "create", 0), (0, "alloc", 0), (1, "create", 0),
                            (1, "alloc", 2), (0, "fail_next", 0), (1, "gc", 0),
                            (0, "alloc", 1), (0, "free", 0), (1, "free", 0)]),
    # Everything at once on four threads.
    "four_threads_mix": program(4, [(t, k, a) for t in range(4) for (k, a) in
                                    [("alloc", t), ("alloc", 0), ("write", 1), ("free", 0),
                                     ("flush", t), ("gc", 0), ("check", 0), ("free", 0)]]),
}

# Schedules: plain priorities; one change point; two. A change point is
# {thread | kind << 2, occurrence - 1}; kinds: 0-10 pool points (2 = CAS),
# 11 = before an op, 12 = any point (fuzz/schedule.h).
POOL_POINT_KINDS = 11
OP_BOUNDARY = POOL_POINT_KINDS
ANY_POINT = POOL_POINT_KINDS + 1
def change(thread, kind, occurrence):
    return bytes([thread | kind << 2, occurrence - 1])


SCHEDULES = [
    bytes([3, 2, 1, 0, 0]) + bytes(6),
    bytes([0, 1, 2, 3, 1]) + change(1, ANY_POINT, 6) + bytes(4),
    bytes([1, 3, 0, 2, 2]) + change(0, OP_BOUNDARY, 3) + change(1, 2, 1) + bytes(2),
    # Thread 0 first; after a few ops it yields, thread 1 is preempted at its
    # first CAS, and thread 0 runs a few more ops before thread 1 resumes.
    bytes([3, 2, 1, 0, 3]) + change(0, OP_BOUNDARY, 4) + change(1, 2, 1) + change(0, OP_BOUNDARY, 7),
] + [
    # Thread 1 preempted at its first point of each pool kind (load of a
    # head, read of a link, CAS, store, lock, ..., release to the system).
    bytes([1, 3, 0, 2, 1]) + change(1, kind, 1) + bytes(4)
    for kind in range(POOL_POINT_KINDS)
]


def main():
    for directory in ("scheduled", "free_running"):
        folder = HERE / "corpus" / directory
        folder.mkdir(parents=True, exist_ok=True)
        for old in folder.iterdir():
            old.unlink()
    for name, data in SEEDS.items():
        (HERE / "corpus/free_running" / name).write_bytes(data)
        for i, schedule in enumerate(SCHEDULES):
            (HERE / "corpus/scheduled" / f"{name}_s{i}").write_bytes(schedule + data)
    names = {v: k for k, v in KINDS.items()}
    with open(HERE / "pool_fuzzer.dict", "w") as out:
        out.write("# libFuzzer dictionary for the pool fuzzers: op head bytes,\n"
                  "# (thread << 4) | kind (fuzz/op_program.h). Generated by make_seed_corpus.py.\n")
        for thread, kind in itertools.product(range(4), range(len(KINDS))):
            out.write(f't{thread}_{names[kind]}="\\x{(thread << 4) | kind:02x}"\n')


if __name__ == "__main__":
    main()
