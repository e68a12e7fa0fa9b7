#!/usr/bin/env python3
"""Writes the checked-in seed corpus and dictionary of the pool fuzzers.

  python3 fuzz/make_seed_corpus.py     # from the workspace root

Seeds are small programs, each a shape real servers have (populate a pool and
use it beside flush and gc; hand objects from thread to thread; fill a thread
cache past its largest size and drain it; many pools of odd shapes created and
destroyed; threads that end mid-program, in their destructors too, and new
ones in their place; a fork while other threads are mid-operation), each with
a few PCT schedules. The input format is in fuzz/op_program.h and
fuzz/schedule.h:
  scheduled input:   4 priority bytes, change-point count, 3 x {thread | kind << 2,
                     occurrence - 1}, then the program
  program:           thread-count byte, then per op (thread << 6) | kind, arg,
                     and arg2 for create_pool, give and alloc_n
"""

import itertools
from pathlib import Path

# fuzz/op_program.h, OpKind, in order.
KINDS = ["alloc", "free", "write", "check", "flush", "gc", "create", "destroy", "fail_next",
         "give", "take", "alloc_n", "free_n", "stats", "release", "exit", "fork", "dump"]
KIND = {name: i for i, name in enumerate(KINDS)}
TAKES_ARG2 = {"create", "give", "alloc_n"}
HERE = Path(__file__).resolve().parent

# Pools an op names (World: 4 shared, then 8 private per thread).
TINY, SMALL, LIMITED, ALIGNED = 0, 1, 2, 3
PRIVATE = 4  # + slot

# BulkCount() codes (fuzz/op_program.cc): 2 7 16 33 64 65 100 129 200 300 513
# 700 1025 1500 2049 2600.
BULK = {2: 0, 7: 1, 16: 2, 33: 3, 64: 4, 65: 5, 100: 6, 129: 7, 200: 8, 300: 9, 513: 10,
        700: 11, 1025: 12, 1500: 13, 2049: 14, 2600: 15}

# Private pool shapes (interpreter.cc): arg2 = size index | alignment index << 4,
# arg = slot | min_free index << 3 | max_objects index << 5.
SIZE = {1: 0, 2: 1, 4: 2, 7: 3, 8: 4, 9: 5, 15: 6, 16: 7, 24: 8, 40: 9, 64: 10, 100: 11,
        256: 12, 1024: 13, 16384: 14, 65536: 15}
ALIGN = {None: 0, 1: 1, 2: 2, 8: 3, 64: 4, 256: 5, 1024: 6, 4096: 7}
MIN_FREE = {0: 0, 1: 1, 4: 2, 64: 3}
MAX_OBJECTS = {0: 0, 1: 3, 3: 4, 8: 5, 64: 6, 1000: 7}


def op(thread, kind, arg=0, arg2=0):
    return (thread, kind, arg, arg2)


def create(thread, slot, size, align=None, min_free=0, max_objects=0):
    arg = slot | MIN_FREE[min_free] << 3 | MAX_OBJECTS[max_objects] << 5
    return op(thread, "create", arg, SIZE[size] | ALIGN[align] << 4)


def alloc_n(thread, pool, n):
    return op(thread, "alloc_n", pool, BULK[n])


def free_n(thread, n):
    return op(thread, "free_n", BULK[n])


def exit_thread(thread, phase, ops_in_destructor=0):
    # arg % 3: 0 return, 1 thread_local destructor, 2 key destructor; (arg / 3) % 4: ops.
    return op(thread, "exit", {"return": 0, "thread_local": 1, "key": 2}[phase] +
              3 * ops_in_destructor)


def program(threads, ops):
    data = bytes([threads - 2])
    for thread, kind, arg, arg2 in ops:
        data += bytes([(thread << 6) | KIND[kind], arg])
        if kind in TAKES_ARG2:
            data += bytes([arg2])
    return data


def populate(thread, pool, n):
    return [op(thread, "alloc", pool)] * n + [op(thread, "free", 0)] * n


SEEDS = {
    # One thread fills and drains a shared pool while another flushes it.
    "fill_drain_vs_flush": program(2, populate(0, SMALL, 3) + [op(1, "flush", SMALL)] +
                                   [op(0, "alloc", SMALL), op(0, "alloc", SMALL),
                                    op(0, "free", 0), op(0, "free", 0)]),
    # The same against gc (shared-small keeps min_free 2).
    "fill_drain_vs_gc": program(2, populate(0, SMALL, 4) + [op(1, "gc")] +
                                [op(0, "alloc", SMALL), op(0, "alloc", SMALL), op(0, "free", 1),
                                 op(0, "free", 0), op(1, "gc")]),
    # A populated pool used by two threads while a third flushes and gcs.
    "two_users_and_a_cleaner": program(3, populate(0, SMALL, 2) + populate(1, SMALL, 2) +
                                       [op(0, "alloc", SMALL), op(1, "alloc", SMALL),
                                        op(2, "flush", SMALL), op(0, "write", 0),
                                        op(1, "check", 0), op(2, "gc"), op(0, "free", 0),
                                        op(1, "free", 0)]),
    # The limited shared pool (max_objects 6) from three threads: the limit,
    # and the objects other threads' caches hold at it.
    "limited_pool": program(3, [op(t, "alloc", LIMITED) for t in range(3) for _ in range(3)] +
                            [op(t, "free", 0) for t in range(3)] + [op(0, "flush", LIMITED)] +
                            [op(1, "stats", LIMITED), alloc_n(2, LIMITED, 7)]),
    # Private pool churn beside a gc walking the registry.
    "private_pools_and_gc": program(2, [create(0, 0, 24), op(0, "alloc", PRIVATE),
                                        op(0, "write", 0), op(1, "gc"), op(0, "check", 0),
                                        op(0, "free", 0), op(1, "gc"), op(0, "destroy", 0),
                                        create(1, 1, 40, min_free=1), op(1, "alloc", PRIVATE + 1),
                                        op(1, "flush", PRIVATE + 1), op(1, "free", 0)]),
    # Injected system-allocation failures beside allocs, pool creation and gc.
    "failures": program(2, [op(0, "fail_next"), op(0, "alloc", SMALL), op(1, "fail_next"),
                            create(1, 0, 16), op(0, "alloc", SMALL), create(1, 0, 16),
                            op(1, "alloc", PRIVATE), op(0, "fail_next"), op(1, "gc"),
                            op(0, "alloc", TINY), op(0, "free", 0), op(1, "free", 0),
                            op(0, "fail_next"), alloc_n(0, SMALL, 129), free_n(0, 129)]),
    # Everything at once on four threads.
    "four_threads_mix": program(4, [op(t, k, a) for t in range(4) for (k, a) in
                                    [("alloc", t), ("alloc", SMALL), ("write", 1), ("free", 0),
                                     ("flush", t), ("gc", 0), ("check", 0), ("free", 0)]]),
    # Producer and consumer (xmalloc-test): one thread allocates and hands
    # objects over through the mailboxes, the other takes and frees them.
    "producer_consumer": program(2, [x for i in range(6) for x in
                                     (op(0, "alloc", SMALL), op(0, "give", 0, i % 4))] +
                                 [x for i in range(6) for x in
                                  (op(1, "take", i % 4), op(1, "free", 0))] +
                                 [alloc_n(0, SMALL, 100)] +
                                 [op(0, "give", i, i % 4) for i in range(4)] +
                                 [op(1, "take", i) for i in range(4)] + [free_n(1, 7)]),
    # Objects handed back and forth between three threads, one gc'ing.
    "hand_offs_three_ways": program(3, [op(0, "alloc", TINY), op(0, "give", 0, 1),
                                        op(1, "take", 1), op(1, "give", 0, 2), op(2, "take", 2),
                                        op(2, "write", 0), op(2, "give", 0, 0), op(0, "take", 0),
                                        op(0, "free", 0), op(1, "alloc", ALIGNED),
                                        op(1, "give", 0, 3), op(2, "gc"), op(0, "take", 3),
                                        op(0, "check", 0), op(0, "free", 0)]),
    # A thread cache filled past its largest size, given back by halves,
    # while another thread drains it and the transfer cache fills.
    "cache_fill_and_drain": program(2, [alloc_n(0, SMALL, 2600), free_n(0, 2600),
                                        alloc_n(0, SMALL, 1025), op(1, "flush", SMALL),
                                        free_n(0, 1025), alloc_n(1, SMALL, 513),
                                        free_n(1, 513), op(0, "gc"),
                                        alloc_n(0, SMALL, 700), free_n(0, 700)]),
    # Batches that move between threads: one frees what the other allocated,
    # through the transfer cache.
    "batches_across_threads": program(2, [alloc_n(0, SMALL, 300)] +
                                      [op(0, "give", i, i) for i in range(4)] +
                                      [free_n(0, 129), alloc_n(1, SMALL, 200), free_n(1, 200),
                                       alloc_n(1, SMALL, 200), op(0, "release"),
                                       free_n(0, 129), free_n(1, 200),
                                       alloc_n(1, SMALL, 300), free_n(1, 300)]),
    # Odd shapes: objects of 1, 2, 4, 7, 9 and 15 bytes, alignments up to
    # 4096, 16 KiB and 64 KiB objects, min_free and max_objects variants.
    "pool_shapes": program(2, [create(0, 0, 1), create(0, 1, 2, align=1), create(0, 2, 7),
                               create(0, 3, 9, align=2), create(0, 4, 15, min_free=4),
                               create(0, 5, 16384, align=4096), create(0, 6, 65536),
                               create(0, 7, 4, max_objects=3)] +
                           [alloc_n(0, PRIVATE + s, 65) for s in range(8)] +
                           [op(0, "check", 3), free_n(0, 2600), op(1, "gc")] +
                           [op(0, "flush", PRIVATE + s) for s in range(8)] +
                           [op(0, "destroy", s) for s in range(8)]),
    # More live pools than a thread has indexes for a fixed table (over 20),
    # created and destroyed repeatedly so that freed slots are reused.
    "many_pools": program(4, [x for t in range(3) for s in range(8) for x in
                              (create(t, s, [8, 24, 64, 100][s % 4], min_free=[0, 1][s % 2]),
                               op(t, "alloc", PRIVATE + s))] +
                          [op(3, "dump", 1), op(3, "gc")] +
                          [x for t in range(3) for s in range(8) for x in
                           (op(t, "free", 0), op(t, "destroy", s), create(t, s, 40),
                            op(t, "alloc", PRIVATE + s), op(t, "free", 0))] +
                          [op(3, "stats", 1), op(3, "dump", 0)]),
    # Threads that end mid-program: their last ops in ordinary code, in a
    # thread_local destructor and in a pthread key destructor (first calls on
    # a pool among them), and new threads in their place.
    "thread_exits": program(3, [op(0, "alloc", SMALL), exit_thread(0, "return"),
                                op(0, "free", 0), op(0, "alloc", TINY),
                                exit_thread(0, "key", 2), op(0, "alloc", ALIGNED),
                                op(0, "free", 0), op(0, "free", 0),
                                op(1, "alloc", SMALL), exit_thread(1, "thread_local", 3),
                                op(1, "free", 0), op(1, "alloc", SMALL), op(1, "free", 0),
                                op(1, "alloc", TINY),
                                op(2, "gc"), op(2, "flush", SMALL), op(2, "alloc", SMALL),
                                exit_thread(2, "key", 1), op(2, "free", 0), op(2, "gc")]),
    # Thread churn on many pools: each program thread goes through several
    # OS threads, each using pools first in its key destructor.
    "thread_churn": program(2, [x for i in range(6) for x in
                                (create(0, i, 24), exit_thread(0, "key", 2),
                                 op(0, "alloc", PRIVATE + i), op(0, "free", 0))] +
                            [x for i in range(6) for x in
                             (op(1, "alloc", i % 4), exit_thread(1, "thread_local", 1),
                              op(1, "free", 0))] + [op(1, "flush", SMALL)]),
    # fork while other threads are in the middle of pool calls: the child
    # checks, uses, flushes and destroys what it inherited.
    "fork_mid_operation": program(3, [alloc_n(0, SMALL, 100), op(0, "fork", 0x20 | 4),
                                      free_n(0, 100), create(0, 0, 64), op(0, "alloc", PRIVATE),
                                      op(0, "free", 0), op(0, "fork", 0xff),
                                      alloc_n(1, SMALL, 200), free_n(1, 200),
                                      alloc_n(1, TINY, 65), free_n(1, 65),
                                      op(2, "gc"), op(2, "flush", SMALL), op(2, "alloc", LIMITED),
                                      op(2, "fork", 0x60 | 2), op(2, "free", 0)]),
    # The introspection and release calls beside allocs and frees.
    "stats_dump_release": program(2, [alloc_n(0, SMALL, 64), op(1, "stats", SMALL),
                                      op(1, "dump", 1), op(0, "release"), free_n(0, 64),
                                      op(1, "dump", 0), op(0, "release"), op(1, "stats", TINY)]),
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
    bytes([3, 2, 1, 0, 3]) + change(0, OP_BOUNDARY, 4) + change(1, 2, 1) +
    change(0, OP_BOUNDARY, 7),
    # Thread 0 preempted deep inside its ops (the 40th and 200th point), the
    # others in between: inside bulk ops and exits.
    bytes([3, 1, 2, 0, 2]) + change(0, ANY_POINT, 40) + change(0, ANY_POINT, 200) + bytes(2),
] + [
    # Thread 1 preempted at its first point of each pool kind (load of a
    # head, read of a link, CAS, store, lock, ..., fence, counter).
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
    with open(HERE / "pool_fuzzer.dict", "w") as out:
        out.write("# libFuzzer dictionary for the pool fuzzers: op head bytes,\n"
                  "# (thread << 6) | kind (fuzz/op_program.h), and a few whole ops.\n"
                  "# Generated by make_seed_corpus.py.\n")
        for thread, kind in itertools.product(range(4), range(len(KINDS))):
            out.write(f't{thread}_{KINDS[kind]}="\\x{(thread << 6) | kind:02x}"\n')
        # Whole ops that open new ground: a 2600-object bulk alloc, a tiny and
        # a 64 KiB private pool, an exit in a key destructor, a fork that
        # flushes in the child.
        wholes = {
            "alloc_n_2600": alloc_n(0, SMALL, 2600),
            "create_tiny": create(0, 0, 1),
            "create_64k_4096": create(0, 1, 65536, align=4096),
            "exit_key_2": exit_thread(0, "key", 2),
            "fork_flush": op(0, "fork", 0x20),
        }
        for name, (thread, kind, arg, arg2) in wholes.items():
            data = program(2, [(thread, kind, arg, arg2)])[1:]
            out.write(f'{name}="' + "".join(f"\\x{b:02x}" for b in data) + '"\n')


if __name__ == "__main__":
    main()
