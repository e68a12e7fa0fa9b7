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
  program:           thread-count byte, then two bytes per op: (thread << 4) | code,
                     and arg (codes: fuzz/op_program.cc, kKindOfCode)
"""

import itertools
from pathlib import Path

# fuzz/op_program.cc, kKindOfCode: the kind of each head code. Code 14 is the
# process-wide calls (arg 255: fork; else arg % 8 picks one, arg / 8 is its
# arg); 15 is alloc too.
CODES = ["alloc", "free", "write", "check", "flush", "gc", "create", "destroy", "fail_next",
         "give", "take", "alloc_n", "free_n", "exit", None, None]
CODE = {name: code for code, name in enumerate(CODES) if name is not None}
PROCESS_WIDE = {"stats": 0, "dump": 3, "release": 5, "recycle": 7}
PROCESS_WIDE_CODE = 14
HERE = Path(__file__).resolve().parent

# Pools an op names (World: 4 shared, then 8 private per thread).
TINY, SMALL, LIMITED, ALIGNED = 0, 1, 2, 3
PRIVATE = 4  # + slot

# BulkCount() codes (fuzz/op_program.cc): 2 7 16 33 64 65 100 129 200 300 513
# 700 1025 1500 2049 2600.
BULK = {2: 0, 7: 1, 16: 2, 33: 3, 64: 4, 65: 5, 100: 6, 129: 7, 200: 8, 300: 9, 513: 10,
        700: 11, 1025: 12, 1500: 13, 2049: 14, 2600: 15}

# Private pool shapes, create_pool's arg / 8: fuzz/interpreter.cc,
# kPrivatePoolShapes, in order: (object_size, alignment or 0, min_free, max_objects).
SHAPES = [
    (8, 0, 0, 0), (24, 0, 0, 0), (1, 1, 0, 0), (2, 2, 0, 0),
    (4, 4, 0, 0), (7, 1, 0, 0), (9, 1, 0, 0), (15, 0, 0, 0),
    (16, 16, 0, 0), (40, 0, 1, 0), (64, 64, 0, 0), (100, 4, 0, 3),
    (128, 128, 4, 0), (256, 256, 0, 8), (1024, 1024, 0, 0), (4096, 4096, 0, 0),
    (16384, 4096, 0, 64), (65536, 0, 0, 0), (65536, 4096, 1, 0), (1, 0, 0, 1),
    (8, 8, 0, 3), (24, 0, 64, 0), (48, 0, 0, 1000), (3, 1, 1, 0),
    (5, 1, 0, 8), (12, 4, 0, 0), (33, 1, 0, 0), (200, 8, 4, 64),
    (512, 512, 0, 0), (2048, 2048, 0, 3), (8192, 8, 0, 0), (32768, 64, 1, 0),
]


def shape(size, align=None, min_free=None, max_objects=None):
    """The index of the first shape with these fields (None: any)."""
    for i, (s, a, f, m) in enumerate(SHAPES):
        if s == size and align in (None, a) and min_free in (None, f) and \
                max_objects in (None, m):
            return i
    raise ValueError(f"no pool shape {size, align, min_free, max_objects}")


def op(thread, kind, arg=0):
    return (thread, kind, arg)


def create(thread, slot, size, align=None, min_free=None, max_objects=None):
    return op(thread, "create", slot | shape(size, align, min_free, max_objects) << 3)


def give(thread, held, mailbox):
    return op(thread, "give", held << 2 | mailbox)


def alloc_n(thread, pool, n):
    return op(thread, "alloc_n", pool | BULK[n] << 4)


def free_n(thread, n):
    return op(thread, "free_n", BULK[n])


def fail_membarrier(thread, works_again=False):
    # Code 8 with an arg of 7 mod 8 (fuzz/op_program.cc, kFailMembarrierArg);
    # arg / 8 % 2 == 1: membarrier() works again.
    return op(thread, "fail_next", 15 if works_again else 7)


def limit_bytes(thread, pages):
    # Code 8 with an arg of 6 mod 8 (fuzz/op_program.cc, kLimitBytesArg): the
    # pools may hold what they hold now plus pages * 4 KiB, until the run ends.
    return op(thread, "fail_next", pages * 8 + 6)


def exit_thread(thread, phase, ops_in_destructor=0):
    # arg % 3: 0 return, 1 thread_local destructor, 2 key destructor; (arg / 3) % 4: ops;
    # "key_last": a key destructor whose ops run in glibc's last round ((arg / 12) % 2).
    return op(thread, "exit", {"return": 0, "thread_local": 1, "key": 2, "key_last": 14}[phase] +
              3 * ops_in_destructor)


def encode_op(thread, kind, arg):
    if kind == "fork":
        return bytes([thread << 4 | PROCESS_WIDE_CODE, 255])
    if kind in PROCESS_WIDE:
        assert arg < 31, f"{kind}'s arg is 0 to 30"
        return bytes([thread << 4 | PROCESS_WIDE_CODE, arg << 3 | PROCESS_WIDE[kind]])
    return bytes([thread << 4 | CODE[kind], arg])


def program(threads, ops):
    return bytes([threads - 2]) + b"".join(encode_op(*o) for o in ops)


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
                                     (op(0, "alloc", SMALL), give(0, 0, i % 4))] +
                                 [x for i in range(6) for x in
                                  (op(1, "take", i % 4), op(1, "free", 0))] +
                                 [alloc_n(0, SMALL, 100)] +
                                 [give(0, i, i % 4) for i in range(4)] +
                                 [op(1, "take", i) for i in range(4)] + [free_n(1, 7)]),
    # A consumer whose first call on a pool is a free (objects a producer
    # allocated, taken from the mailboxes): it binds its cache by freeing,
    # while a third thread flushes the pool again and again.
    "consumer_binds_by_free": program(3, [x for i in range(4) for x in
                                          (op(0, "alloc", SMALL), give(0, 0, i))] +
                                      [x for i in range(4) for x in
                                       (op(1, "take", i), op(1, "free", 0))] +
                                      [op(2, "flush", SMALL) for _ in range(4)] +
                                      [alloc_n(0, SMALL, 16), free_n(0, 16)]),
    # Objects handed back and forth between three threads, one gc'ing.
    "hand_offs_three_ways": program(3, [op(0, "alloc", TINY), give(0, 0, 1),
                                        op(1, "take", 1), give(1, 0, 2), op(2, "take", 2),
                                        op(2, "write", 0), give(2, 0, 0), op(0, "take", 0),
                                        op(0, "free", 0), op(1, "alloc", ALIGNED),
                                        give(1, 0, 3), op(2, "gc"), op(0, "take", 3),
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
                                      [give(0, i, i) for i in range(4)] +
                                      [free_n(0, 129), alloc_n(1, SMALL, 200), free_n(1, 200),
                                       alloc_n(1, SMALL, 200), op(0, "release"),
                                       free_n(0, 129), free_n(1, 200),
                                       alloc_n(1, SMALL, 300), free_n(1, 300)]),
    # Odd shapes: objects of 1, 2, 4, 7, 9 and 15 bytes (1 to 7: smaller
    # than a free-list link), alignments 1 to 4096, 16 KiB and 64 KiB
    # objects, min_free and max_objects variants.
    "pool_shapes": program(2, [create(0, 0, 1, align=1), create(0, 1, 2), create(0, 2, 7),
                               create(0, 3, 9), create(0, 4, 15), create(0, 5, 16384),
                               create(0, 6, 65536, align=4096), create(0, 7, 4)] +
                           [alloc_n(0, PRIVATE + s, 65) for s in range(8)] +
                           [op(0, "check", 3), free_n(0, 2600), op(1, "gc")] +
                           [op(0, "flush", PRIVATE + s) for s in range(8)] +
                           [op(0, "destroy", s) for s in range(8)]),
    # Limits on private pools: max_objects 1, 3 and 8, min_free 1 and 64.
    "pool_limits": program(2, [create(0, 0, 1, max_objects=1), create(0, 1, 100),
                               create(0, 2, 5), create(0, 3, 24, min_free=64),
                               create(0, 4, 3)] +
                           [alloc_n(0, PRIVATE + s, 16) for s in range(5)] +
                           [op(1, "gc"), free_n(0, 100), op(1, "gc")] +
                           [op(0, "stats", PRIVATE + s) for s in range(5)] +
                           [op(0, "destroy", s) for s in range(5)]),
    # More live pools than a thread has indexes for a fixed table (over 20),
    # created and destroyed repeatedly so that freed slots are reused.
    "many_pools": program(4, [x for t in range(3) for s in range(8) for x in
                              (create(t, s, [8, 24, 40, 48][s % 4]),
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
    # Pool calls in glibc's last round of key destructors, after the
    # backends' exit hooks ran: the first calls on some pools, and frees of
    # objects held since before the exit (in cache and out).
    "last_round_calls": program(2, [alloc_n(0, SMALL, 33), op(0, "alloc", TINY),
                                    exit_thread(0, "key_last", 3), op(0, "alloc", ALIGNED),
                                    free_n(0, 33), op(0, "free", 0),
                                    op(1, "alloc", SMALL), exit_thread(1, "key_last", 2),
                                    op(1, "alloc", LIMITED), op(1, "free", 0),
                                    op(1, "alloc", SMALL), op(1, "gc")]),
    # fork while other threads are in the middle of pool calls: the child
    # checks, uses, flushes and destroys what it inherited.
    "fork_mid_operation": program(3, [alloc_n(0, SMALL, 100), op(0, "fork"),
                                      free_n(0, 100), create(0, 0, 64), op(0, "alloc", PRIVATE),
                                      op(0, "free", 0), op(0, "fork"),
                                      alloc_n(1, SMALL, 200), free_n(1, 200),
                                      alloc_n(1, TINY, 65), free_n(1, 65),
                                      op(2, "gc"), op(2, "flush", SMALL), op(2, "alloc", LIMITED),
                                      op(2, "fork"), op(2, "free", 0)]),
    # A shared pool destroyed and made again while the other threads bind
    # caches of other pools, exit (their exit hooks walk every pool's caches)
    # and fork: ~Pool racing the registry.
    "recycle_while_others_run": program(3, [op(0, "alloc", SMALL), op(0, "free", 0),
                                            op(0, "recycle", SMALL), op(0, "alloc", SMALL),
                                            op(0, "free", 0), op(0, "recycle", SMALL),
                                            op(1, "alloc", TINY), exit_thread(1, "key", 2),
                                            op(1, "alloc", LIMITED), op(1, "free", 0),
                                            op(1, "alloc", SMALL), op(1, "free", 0),
                                            op(2, "alloc", ALIGNED), op(2, "fork"),
                                            op(2, "free", 0), op(2, "recycle", ALIGNED)]),
    # Three threads (every thread index the scheduled variant has) overflow
    # their caches of a fresh pool at the same moment: the transfer cache's
    # slots asked for by all of them, then filled and emptied by all at once.
    "simultaneous_spills": program(3, [alloc_n(0, SMALL, 129), alloc_n(1, SMALL, 129),
                                       alloc_n(2, SMALL, 129), free_n(0, 129), free_n(1, 129),
                                       free_n(2, 129), alloc_n(0, SMALL, 200),
                                       alloc_n(1, SMALL, 200), free_n(1, 200), free_n(0, 200),
                                       op(0, "flush", SMALL)]),
    # The system refuses the memory a thread's first give-back asks for (the
    # transfer cache's slots): the halves go to the shared list instead.
    "give_back_refused": program(2, [alloc_n(0, SMALL, 129), op(0, "fail_next"),
                                     free_n(0, 129), alloc_n(1, SMALL, 129), free_n(1, 129),
                                     alloc_n(0, SMALL, 200), free_n(0, 200)]),
    # An empty pool that the system keeps refusing, from three threads: their
    # reservations are undone while the others claim the list or flush it.
    "refusals_on_an_empty_pool": program(3, [x for i in range(4) for x in
                                             (op(1, "fail_next"), op(1, "alloc", SMALL),
                                              op(0, "alloc", SMALL), op(2, "flush", SMALL),
                                              op(0, "free", 0), op(1, "alloc", TINY),
                                              op(2, "alloc", SMALL), op(2, "free", 0))] +
                                         [op(1, "free", 0)] * 4),
    # The introspection and release calls beside allocs and frees.
    "stats_dump_release": program(2, [alloc_n(0, SMALL, 64), op(1, "stats", SMALL),
                                      op(1, "dump", 1), op(0, "release"), free_n(0, 64),
                                      op(1, "dump", 0), op(0, "release"), op(1, "stats", TINY)]),
    # membarrier() fails while both threads hold caches: the flush's drain
    # switches every open cache to fenced windows through the fallback
    # barrier, and the threads go on using them, across the mailboxes too.
    "membarrier_fails_mid_run": program(2, [alloc_n(0, SMALL, 64), alloc_n(1, SMALL, 64),
                                            free_n(0, 33), free_n(1, 33), fail_membarrier(0),
                                            op(0, "flush", SMALL), give(1, 0, 0),
                                            op(0, "take", 0), alloc_n(1, SMALL, 16),
                                            free_n(0, 16), op(1, "gc"), free_n(1, 64),
                                            free_n(0, 64), op(0, "flush", SMALL)]),
    # membarrier() fails and then works again mid-run: the flush's drain
    # switches the process to fenced windows; once the failure ends, the
    # next bind (thread 0's first call on TINY, or thread 1's) or drain
    # leaves fenced mode, while the other caches stay fenced until a drain
    # reopens them, and a drain of another pool (SMALL) checks them all.
    # (Kept smaller than membarrier_fails_mid_run: libFuzzer runs a corpus
    # smallest first, and this way back is taken at the process's first
    # fenced switch.)
    "membarrier_back_mid_run": program(2, [alloc_n(0, SMALL, 64), alloc_n(1, SMALL, 64),
                                           fail_membarrier(0), op(0, "flush", SMALL),
                                           fail_membarrier(0, works_again=True),
                                           op(0, "alloc", TINY), op(1, "alloc", TINY),
                                           op(0, "flush", SMALL), op(1, "flush", TINY),
                                           free_n(0, 65), free_n(1, 65)]),
    # The memory limit reached mid-run, and kept: a cache that refilled and
    # then fills wants to grow and cannot (each refusal runs GcAll() first),
    # a full cache's first spill wants transfer-cache slots and cannot, and
    # the other thread allocates and frees beside it at the limit.
    "memory_limit_mid_run": program(2, [alloc_n(0, SMALL, 200), alloc_n(1, TINY, 65),
                                        free_n(0, 100), alloc_n(0, SMALL, 100),
                                        limit_bytes(1, 0), free_n(0, 200), free_n(1, 65),
                                        alloc_n(1, SMALL, 129), alloc_n(0, TINY, 64),
                                        free_n(1, 129), free_n(0, 64), op(0, "gc")]),
}

# Schedules: plain priorities; one change point; two; random preemption;
# each of these under store buffers. A change point is
# {thread | kind << 2, occurrence - 1}; kinds: 0-10 pool points
# (pool/sched_point.h), 11 = before an op, 12 = any point (fuzz/schedule.h).
LOAD_HEAD, READ_NEXT, CAS, LOCK = 0, 1, 2, 4
STORE_BUFFERS = 0x40  # Schedule::kStoreBuffersBit
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
] + [
    # Thread 1 preempted at a later CAS of its first ops (a pop claims the
    # list, a system request reserves and, refused, unreserves its count;
    # a flush detaches the list after a drain pushed to it).
    bytes([1, 3, 0, 2, 1]) + change(1, CAS, n) + bytes(4) for n in (2, 3, 4)
] + [
    # The same while thread 0 is preempted inside a claim (reading its first
    # link): thread 1's CAS then finds the list claimed.
    bytes([1, 3, 0, 2, 2]) + change(0, READ_NEXT, 1) + change(1, CAS, n) + bytes(2)
    for n in (2, 3, 4)
] + [
    # Random preemption (mode byte >= 128, fuzz/schedule.h): at odds 1/8 and
    # 1/32, each with its own seed in the six bytes that follow.
    bytes([3, 2, 1, 0, 128 | 2 << 2]) + bytes([0x5e, 0xed, 0x00, 0x00, 0x00, 0x01]),
    bytes([1, 3, 0, 2, 128 | 4 << 2]) + bytes([0x5e, 0xed, 0x00, 0x00, 0x00, 0x02]),
] + [
    # Store buffers (bit 6 of the mode byte, fuzz/schedule.h): thread 1
    # preempted at its first load of a shared word (a cache's owner between
    # opening its window and reading whether it is open) and at its first
    # read of a link (inside a window), its stores still buffered while the
    # others run; thread 0 at its first CAS and thread 1 at its first lock,
    # the last points before a locked instruction drains what they stored;
    # and random preemption at odds 1/8 with the buffers on.
    bytes([1, 3, 0, 2, STORE_BUFFERS | 1]) + change(1, LOAD_HEAD, 1) + bytes(4),
    bytes([1, 3, 0, 2, STORE_BUFFERS | 1]) + change(1, READ_NEXT, 1) + bytes(4),
    bytes([3, 2, 1, 0, STORE_BUFFERS | 1]) + change(0, CAS, 1) + bytes(4),
    bytes([1, 3, 0, 2, STORE_BUFFERS | 1]) + change(1, LOCK, 1) + bytes(4),
    bytes([3, 2, 1, 0, STORE_BUFFERS | 128 | 2 << 2]) + bytes([0x5e, 0xed, 0x00, 0x00, 0x00, 0x03]),
]


# Seeds of the scheduled target with a schedule of their own.
SCHEDULED_ONLY = {
    # The process's first drain runs while membarrier() fails, with the other
    # thread inside a window and its stores buffered (store buffers on,
    # thread 1 preempted at its first read of a cached object). Whether a
    # process is in fenced mode is process-wide state that a backend may set
    # for good, and a drain that takes the wrong branch once can make every
    # later one safe; so this input is kept the smallest of the corpus, which
    # libFuzzer runs first (smallest first).
    "first_drain_under_failing_membarrier":
        bytes([1, 3, 0, 2, STORE_BUFFERS | 1]) + change(1, READ_NEXT, 1) + bytes(4) +
        program(2, [op(1, "alloc", SMALL), op(1, "free", 0), op(1, "alloc", SMALL),
                    fail_membarrier(0), op(0, "flush", SMALL)]),
    # A drain in fenced mode (membarrier() failed: owners fence their
    # windows, the drainer fences after closing) while the owner of a filled
    # cache of that pool is about to allocate: thread 1 fills its TINY cache
    # and binds SMALL, then yields before its 4th op; thread 0's flush of
    # SMALL switches the process to fenced windows, and its flush of TINY
    # is preempted at its first CAS (the last point before a locked
    # instruction drains its stores) after closing the cache and finding it
    # idle. With store buffers, the owner's window then sees the cache open
    # unless the drainer's fence made the close visible.
    "fenced_drain_beside_a_window":
        bytes([1, 3, 0, 2, STORE_BUFFERS | 2]) + change(1, OP_BOUNDARY, 4) + change(0, CAS, 1) +
        bytes(2) +
        program(2, [op(1, "alloc", TINY), op(1, "free", 0), op(1, "alloc", SMALL),
                    op(1, "free", 0), fail_membarrier(0), op(0, "flush", SMALL),
                    op(0, "flush", TINY), op(1, "alloc", TINY), op(1, "free", 0)]),
}


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
    for name, data in SCHEDULED_ONLY.items():
        (HERE / "corpus/scheduled" / name).write_bytes(data)
    with open(HERE / "pool_fuzzer.dict", "w") as out:
        out.write("# libFuzzer dictionary for the pool fuzzers: op head bytes,\n"
                  "# (thread << 4) | code (fuzz/op_program.h), and whole ops.\n"
                  "# Generated by make_seed_corpus.py.\n")
        for thread, code in itertools.product(range(4), range(16)):
            name = CODES[code] or ("process" if code == PROCESS_WIDE_CODE else "alloc2")
            out.write(f't{thread}_{name}="\\x{thread << 4 | code:02x}"\n')
        # Whole ops that open new ground: bulk allocs past the caches, tiny,
        # aligned and 64 KiB private pools, exits in destructors, the
        # process-wide calls but fork (which costs milliseconds: the seeds
        # that fork are enough to keep it in the corpus), hand-offs.
        wholes = {
            "alloc_n_2600": alloc_n(0, SMALL, 2600),
            "alloc_n_129": alloc_n(0, SMALL, 129),
            "free_n_2600": free_n(0, 2600),
            "create_1b": create(0, 0, 1, align=1),
            "create_7b": create(0, 1, 7),
            "create_64k_4096": create(0, 2, 65536, align=4096),
            "create_max1": create(0, 3, 1, max_objects=1),
            "exit_key_2": exit_thread(0, "key", 2),
            "exit_key_last_2": exit_thread(0, "key_last", 2),
            "exit_thread_local_1": exit_thread(0, "thread_local", 1),
            "give_0_1": give(0, 0, 1),
            "take_1": op(0, "take", 1),
            "stats": op(0, "stats", SMALL),
            "dump_json": op(0, "dump", 1),
            "release": op(0, "release"),
            "recycle_small": op(0, "recycle", SMALL),
            "fail_membarrier": fail_membarrier(0),
            "membarrier_works_again": fail_membarrier(0, works_again=True),
            "limit_bytes_0": limit_bytes(0, 0),
        }
        for name, o in wholes.items():
            data = encode_op(*o)
            out.write(f'{name}="' + "".join(f"\\x{b:02x}" for b in data) + '"\n')


if __name__ == "__main__":
    main()
