#!/usr/bin/env python3
"""The benchmark matrix: every pool backend, malloc/free under glibc,
jemalloc, tcmalloc and mimalloc, and the primitive floors, on the same
workloads, side by side in one run.

  bazel run //tools:bench -- --out=DIR [--reps=7] [--min_time=0.08] [--quick]

Workloads (bench/workloads.h; 64-byte objects): same-thread pairs,
batches of 8/32/512 held then freed, producer/consumer (objects allocated on
one thread and freed on another), each on 1, 2 and 4 threads (2 cores here:
4 oversubscribes); and, for the pools, the cost of Flush() and GcAll() under
load with the bytes each returns. Each subject runs as its own process
--reps times; the order of subjects rotates every repetition so that the
machine's noise hits all alike; every figure is the median over repetitions.
Each repetition also gives every process an environment of a different size
(POOLGUARD_BENCH_PAD), which moves the stack: a hot loop's stack slots can
alias its other data modulo 4 KiB (the CPU then serializes loads behind
stores), and one fixed layout can make a subject look 30% faster or slower
than another. Medians over several layouts do not hang on one of them
(Mytkowicz et al., "Producing wrong data without doing anything obviously
wrong", ASPLOS 2009).

Prints a table of medians with ratios to the per-thread-array floor and to
the best peer allocator, and writes DIR/bench.md, DIR/bench.json (a list of
objects: workload, threads, subject, ns_per_pair, samples, ratio_to_array_floor,
ratio_to_best_peer; flush/gcall rows give ns per call in ns_per_pair and
bytes_returned) and DIR/bench.svg.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import project  # noqa: E402
from svg_plot import bar_chart  # noqa: E402

LIBDIR = Path("/usr/lib/x86_64-linux-gnu")
PEERS = {
    "malloc:jemalloc": ["libjemalloc.so.2"],
    "malloc:tcmalloc": ["libtcmalloc_minimal.so.4", "libtcmalloc.so.4"],
    "malloc:mimalloc": ["libmimalloc.so.2"],
}
# Every in-tree backend (variants.bzl), the default first.
_NAMES, _DEFAULT = project.backends()
BACKENDS = [_DEFAULT] + [b for b in _NAMES if b != _DEFAULT]
FLOORS = ["floor:array", "floor:tl_list", "floor:cas_list", "floor:spinlock_list"]
PER_OP = ("flush", "gcall")

# (subject, workload, threads, reference, limit, what)
TARGETS = [
    ("tlcache", "pair", 1, "floor:array", 1.3, "tlcache pair <= 1.3x per-thread-array floor"),
    ("tlcache", "pair", 1, "best_peer", 0.5, "tlcache pair <= 0.5x best of jemalloc/tcmalloc/mimalloc"),
    ("tlcache", "prodcons", 2, "best_peer", 1.0, "tlcache producer/consumer <= best peer"),
    ("lockless", "pair", 1, "floor:cas_list", 1.2, "lockless uncontended pair <= 1.2x DWCAS list floor"),
    ("locked", "pair", 1, "floor:spinlock_list", 1.2, "locked pair <= 1.2x its lock's floor"),
]


def find_binary(name):
    for base in [Path("tools/bench_bin"), Path(__file__).resolve().parent / "bench_bin"]:
        p = base / name
        if p.exists():
            return p
    sys.exit("bench: %s not found in the runfiles; run through `bazel run //tools:bench`" % name)


def subjects():
    """(subject, argv, env) for every process the matrix runs."""
    out = []
    for backend in BACKENDS:
        out.append((backend, [str(find_binary("pool_bench_" + backend))], {}))
    out.append(("floors", [str(find_binary("floor_bench"))], {}))
    malloc = str(find_binary("malloc_bench"))
    out.append(("malloc:glibc", [malloc, "--subject=malloc:glibc"], {}))
    for name, libs in PEERS.items():
        lib = next((LIBDIR / l for l in libs if (LIBDIR / l).exists()), None)
        if lib is None:
            print("bench: %s not installed (%s); skipped. Run tools/setup.sh" % (name, libs[0]),
                  file=sys.stderr)
            continue
        out.append((name, [malloc, "--subject=" + name], {"LD_PRELOAD": str(lib)}))
    return out


def layout_pad(rep):
    """The environment padding of repetition `rep`: spread over 4 KiB."""
    return "x" * ((rep * 1531) % 4096)


def run_one(argv, env, min_time, tmp):
    out = Path(tmp) / "out.json"
    cmd = argv + ["--benchmark_min_time=%g" % min_time, "--benchmark_format=console",
                  "--benchmark_out_format=json", "--benchmark_out=%s" % out]
    full_env = dict(os.environ)
    full_env.update(env)
    r = subprocess.run(cmd, env=full_env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                       text=True)
    if r.returncode != 0:
        sys.exit("bench: %s failed:\n%s" % (" ".join(cmd), r.stderr[-2000:]))
    return json.loads(out.read_text())


def parse(report):
    """Yields (subject, workload, threads, value, bytes_returned)."""
    for b in report["benchmarks"]:
        if b.get("run_type") == "aggregate":
            continue
        name = b["run_name"] if "run_name" in b else b["name"]
        subject, rest = name.split("|", 1)
        workload = rest.split("/", 1)[0]
        threads = int(b.get("threads", 1))
        if workload in PER_OP:
            yield subject, workload, threads, float(b["op_ns"]), float(b["bytes_returned"])
        else:
            per_iter = float(b["pairs_per_iter"])
            wall, cpu = float(b["real_time"]) / per_iter, float(b["cpu_time"]) / per_iter
            # One thread: its CPU time, which preemption by the machine's other
            # users does not inflate. More threads: wall time, which includes
            # waiting for the others (contention, oversubscription): the point.
            yield subject, workload, threads, cpu if threads == 1 else wall, None


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="folder for bench.md, bench.json, bench.svg")
    ap.add_argument("--reps", type=int, default=7, help="repetitions of every subject")
    ap.add_argument("--min_time", type=float, default=0.08,
                    help="seconds per benchmark per repetition (Google Benchmark)")
    ap.add_argument("--quick", action="store_true", help="--reps=3 --min_time=0.03")
    args = ap.parse_args()
    if args.quick:
        args.reps, args.min_time = 3, 0.03
    out_dir = Path(args.out)
    if not out_dir.is_absolute():
        out_dir = Path(os.environ.get("BUILD_WORKING_DIRECTORY", ".")) / out_dir
    out_dir.mkdir(parents=True, exist_ok=True)

    subs = subjects()
    samples = {}  # (workload, threads, subject) -> [ns]
    returned = {}
    start = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(args.reps):
            order = subs[rep % len(subs):] + subs[:rep % len(subs)]
            for label, argv, env in order:
                t0 = time.time()
                env = dict(env, POOLGUARD_BENCH_PAD=layout_pad(rep))
                for subject, workload, threads, value, ret in parse(
                        run_one(argv, env, args.min_time, tmp)):
                    samples.setdefault((workload, threads, subject), []).append(value)
                    if ret is not None:
                        returned.setdefault((workload, threads, subject), []).append(ret)
                print("bench: rep %d/%d %-16s %5.1f s" % (rep + 1, args.reps, label,
                                                          time.time() - t0), file=sys.stderr)

    med = {k: statistics.median(v) for k, v in samples.items()}
    peers = [p for p in PEERS if any(k[2] == p for k in med)]

    def best_peer(workload, threads):
        vals = [(med[(workload, threads, p)], p) for p in peers if (workload, threads, p) in med]
        return min(vals) if vals else (None, None)

    rows = []
    for (workload, threads, subject), ns in sorted(med.items()):
        floor = med.get((workload, threads, "floor:array"))
        peer_ns, _ = best_peer(workload, threads)
        row = {
            "workload": workload,
            "threads": threads,
            "subject": subject,
            "ns_per_pair": round(ns, 3),
            "samples": [round(v, 3) for v in samples[(workload, threads, subject)]],
            "ratio_to_array_floor": round(ns / floor, 3) if floor and workload not in PER_OP else None,
            "ratio_to_best_peer": round(ns / peer_ns, 3) if peer_ns and workload not in PER_OP else None,
        }
        if workload in PER_OP:
            row["unit"] = "ns per call"
            row["bytes_returned"] = round(statistics.median(returned[(workload, threads, subject)]))
        rows.append(row)
    (out_dir / "bench.json").write_text(json.dumps(rows, indent=1) + "\n")

    # Targets.
    target_lines = []
    for subject, workload, threads, ref, limit, what in TARGETS:
        ns = med.get((workload, threads, subject))
        if ref == "best_peer":
            ref_ns, ref_name = best_peer(workload, threads)
        else:
            ref_ns, ref_name = med.get((workload, threads, ref)), ref
        if ns is None or ref_ns is None:
            target_lines.append("| %s | n/a | | | missing |" % what)
            continue
        ratio = ns / ref_ns
        target_lines.append("| %s | %.2f ns | %.2f ns (%s) | %.2fx | %s |" % (
            what, ns, ref_ns, ref_name, ratio, "met" if ratio <= limit else "MISSED"))

    # Table.
    order = ["pair", "batch8", "batch32", "batch512", "prodcons", "flush", "gcall"]
    subj_order = BACKENDS + FLOORS + ["malloc:glibc"] + list(PEERS)
    lines = []
    for workload in order:
        for threads in (1, 2, 4):
            keys = [s for s in subj_order if (workload, threads, s) in med]
            if not keys:
                continue
            if workload in PER_OP:
                lines.append("\n%s, %d thread(s): ns per call, bytes returned per call" %
                             (workload, threads))
            else:
                lines.append("\n%s, %d thread(s): ns per alloc+free pair per thread" %
                             (workload, threads))
            for s in keys:
                r = next(x for x in rows if (x["workload"], x["threads"], x["subject"]) ==
                         (workload, threads, s))
                if workload in PER_OP:
                    lines.append("  %-20s %10.0f ns  %10d bytes" % (s, r["ns_per_pair"],
                                                                    r["bytes_returned"]))
                else:
                    lines.append("  %-20s %8.2f ns   x%-6s vs array floor   x%-6s vs best peer" % (
                        s, r["ns_per_pair"],
                        "%.2f" % r["ratio_to_array_floor"] if r["ratio_to_array_floor"] else "-",
                        "%.2f" % r["ratio_to_best_peer"] if r["ratio_to_best_peer"] else "-"))
    table = "\n".join(lines)
    elapsed = time.time() - start
    print(table)
    print("\nTargets:")
    print("| target | measured | reference | ratio | |")
    print("\n".join(target_lines))

    md = [
        "# poolguard benchmark",
        "",
        "`bazel run //tools:bench -- --out=%s --reps=%d --min_time=%g` on %s, %d CPUs, "
        "%.0f s. Medians of %d repetitions (each subject one process per repetition, order "
        "rotated, and a different environment size, hence stack layout, per "
        "repetition); 64-byte objects; ns per alloc+free pair per thread: CPU time of the "
        "thread for 1 thread (immune to preemption by other users of the machine), wall "
        "time for 2 and 4 threads (includes waiting for the others). "
        "Floors: `floor:array` per-thread array, `floor:tl_list` thread-local list, "
        "`floor:cas_list` one DWCAS free list, `floor:spinlock_list` a list under the "
        "locked backend's SpinLock. Peers: malloc/free under LD_PRELOAD." % (
            args.out, args.reps, args.min_time, time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            os.cpu_count(), elapsed, args.reps),
        "",
        "## Targets",
        "",
        "| target | measured | reference | ratio | |",
        "|---|---|---|---|---|",
    ] + target_lines + ["", "## Medians", "", "```", table.strip(), "```", "",
                        "![plot](bench.svg)", ""]
    (out_dir / "bench.md").write_text("\n".join(md))

    groups = ["%s/%d" % (w, t) for w in order if w not in PER_OP for t in (1, 2, 4)
              if any((w, t, s) in med for s in subj_order)]
    values = {("%s/%d" % (w, t), s): v for (w, t, s), v in med.items() if w not in PER_OP}
    (out_dir / "bench.svg").write_text(bar_chart(
        groups, [s for s in subj_order if any(k[2] == s for k in med)], values,
        title="ns per alloc+free pair per thread (median; log scale)", ylabel="ns", log=True))
    print("\nbench: wrote %s/bench.md, bench.json, bench.svg (%.0f s)" % (out_dir, elapsed))


if __name__ == "__main__":
    main()
