"""The seeded-bug catalog: names of the mutants --//fuzz/mutants:mutant accepts.

Each mutant is a small `#if defined(POOLGUARD_MUTANT_<NAME>)` change inside a
real backend, documented in fuzz/mutants/README.md. The define reaches only
the "_sched" (fuzz) build variant, and each mutant static_asserts that
schedule points are on, so none can compile into a production build.
"""

MUTANTS = [
    # The seed's pop: reads the next link of a head it does not own (lockless).
    "seed_alloc_reads_freed_head",
]
