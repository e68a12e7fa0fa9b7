"""The seeded-bug catalog: names of the mutants --//fuzz/mutants:mutant accepts.

Each mutant is a small `#if defined(POOLGUARD_MUTANT_<NAME>)` change inside a
real backend, documented in fuzz/mutants/README.md. The define reaches only
the "_sched" (fuzz) build variant, and each mutant static_asserts that
schedule points are on, so none can compile into a production build.
"""

MUTANTS = [
    # lockless: the seed's pop reads the next link of a head it does not own.
    "seed_alloc_reads_freed_head",
    # lockless: flush detaches by pointer alone and uncounts a stale snapshot.
    "flush_aba",
    # locked: gc releases its surplus outside the lock before unlinking it.
    "gc_flush_not_exclusive",
    # lockless: the empty-pool return of pop keeps the head claimed (a hang).
    "empty_path_keeps_lock",
    # locked: Stats() reads the counters without the lock (only TSan sees it).
    "stats_read_without_lock",
    # tlcache: a drainer takes a thread's cache without waiting for its window.
    "drain_ignores_busy",
]
