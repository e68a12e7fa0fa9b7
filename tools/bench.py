#!/usr/bin/env python3
"""The benchmark matrix: every pool backend, malloc/free under glibc,
jemalloc, tcmalloc and mimalloc, and the primitive floors, on the same
workloads, side by side in one run.

  bazel run //tools:bench -- --out=DIR [--shapes=LIST] [--reps=7] [--shape_reps=5]
                             [--min_time=0.08] [--shape_min_time=0.05] [--quick]

The classic workloads (bench/workloads.h; 64-byte objects): same-thread
pairs, batches of 8/32/512 held then freed, producer/consumer (objects
allocated on one thread and freed on another), each on 1, 2 and 4 threads
(2 cores here: 4 oversubscribes); and, for the pools, the cost of Flush() and
GcAll() under load with the bytes each returns. Each subject runs them as one
process per repetition.

The shapes (bench/shapes.h): fixed-size versions of the workloads allocator
users compare with, at 64-byte and 16 KiB objects, on 1, 2, 4 and 16
threads: larson, xmalloc, cache_scratch, churn, idle_caches and (pools only)
pool_count with 1, 16, 17, 100 and 1000 pools. Each (subject, shape, object
size, threads) runs as a process of its own, so that its peak RSS
(the process's VmHWM) is the shape's own; figures are ns
per operation (wall time divided by the operations of all threads, Google
Benchmark's time per iteration with threads; an operation is one allocation
and the free that balances it) and peak RSS, and churn and idle_caches add the memory at their
own measuring points. Of the floors only the per-thread array takes part,
in pool_count on one thread (one array per pool: what any per-(thread, pool)
cache costs); the others cannot free across threads. The peers do not run
pool_count (malloc has no pools).

--shapes selects what runs, from the classic workloads (pair, batch8,
batch32, batch512, prodcons, flush, gcall) and the shapes; the default is
everything. The order of processes rotates every repetition so that the
machine's noise hits all alike; every figure is the median over
repetitions. Each repetition also gives every process an environment of a
different size (POOLGUARD_BENCH_PAD), which moves the stack: a hot loop's
stack slots can alias its other data modulo 4 KiB (the CPU then serializes
loads behind stores), and one fixed layout can make a subject look 30% faster
or slower than another. Medians over several layouts do not hang on one of
them (Mytkowicz et al., "Producing wrong data without doing anything
obviously wrong", ASPLOS 2009).

Writes DIR/bench.md (targets, then a table per workload and per shape),
DIR/bench.json (a list of objects: workload, shape, object_size, threads,
subject, ns_per_pair for the classic workloads or ns_per_op for the shapes,
rss_peak_kb, samples, ratio_to_array_floor, ratio_to_best_peer; pool_count
rows add pools and ratio_to_one_pool, churn and idle_caches rows the
memory counters; flush/gcall rows give ns per call in ns_per_pair and
bytes_returned), DIR/bench.svg (the classic workloads) and, per shape,
DIR/bench_<shape>.svg (time) and DIR/bench_<shape>_rss.svg (peak RSS).
"""

import argparse
import json
import os
import re
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
CLASSIC = ["pair", "batch8", "batch32", "batch512", "prodcons", "flush", "gcall"]
SHAPES = ["larson", "xmalloc", "cache_scratch", "churn", "idle_caches", "pool_count"]
# Counters the shapes report at their own measuring points (bench/shapes.h).
MEMORY_COUNTERS = ["rss_after_100_threads_kb", "rss_after_all_threads_kb", "idle_rss_kb",
                   "idle_rss_after_flush_kb"]

# The classic workloads' targets: (subject, workload, threads, reference, limit, what).
TARGETS = [
    ("tlcache", "pair", 1, "floor:array", 1.3, "tlcache pair <= 1.3x per-thread-array floor"),
    ("tlcache", "pair", 1, "best_peer", 0.5, "tlcache pair <= 0.5x best of jemalloc/tcmalloc/mimalloc"),
    ("tlcache", "prodcons", 2, "best_peer", 1.0, "tlcache producer/consumer <= best peer"),
    ("tlcache", "batch512", 2, "best_peer", 1.0, "tlcache batch512, 2 threads <= best peer"),
    ("tlcache", "batch512", 4, "best_peer", 1.0, "tlcache batch512, 4 threads <= best peer"),
    ("lockless", "pair", 1, "floor:cas_list", 1.2, "lockless uncontended pair <= 1.2x DWCAS list floor"),
    ("locked", "pair", 1, "floor:spinlock_list", 1.2, "locked pair <= 1.2x its lock's floor"),
]
# The shapes' targets: (subject, shape, object size, threads, limit on time vs best peer,
# limit on peak RSS vs the peers' lowest).
SHAPE_TARGETS = [
    ("tlcache", "larson", 64, 4, 0.5, 1.2),
    ("tlcache", "xmalloc", 64, 4, 0.5, 1.2),
]
POOL_COUNT_LIMIT = 1.2   # 100 and 1000 pools vs 1 pool (64 B, 1 thread)
CHURN_RSS_LIMIT = 1.1    # RSS after 10,000 threads vs after the first 100


def find_binary(name):
    for base in [Path("tools/bench_bin"), Path(__file__).resolve().parent / "bench_bin"]:
        p = base / name
        if p.exists():
            return p
    sys.exit("bench: %s not found in the runfiles; run through `bazel run //tools:bench`" % name)


def subjects():
    """(subject, argv, env, kind) for every subject; kind: backend, floors or malloc."""
    out = []
    for backend in BACKENDS:
        out.append((backend, [str(find_binary("pool_bench_" + backend))], {}, "backend"))
    out.append(("floors", [str(find_binary("floor_bench"))], {}, "floors"))
    malloc = str(find_binary("malloc_bench"))
    out.append(("malloc:glibc", [malloc, "--subject=malloc:glibc"], {}, "malloc"))
    for name, libs in PEERS.items():
        lib = next((LIBDIR / l for l in libs if (LIBDIR / l).exists()), None)
        if lib is None:
            print("bench: %s not installed (%s); skipped. Run tools/setup.sh" % (name, libs[0]),
                  file=sys.stderr)
            continue
        out.append((name, [malloc, "--subject=" + name], {"LD_PRELOAD": str(lib)}, "malloc"))
    return out


def layout_pad(rep):
    """The environment padding of repetition `rep`: spread over 4 KiB."""
    return "x" * ((rep * 1531) % 4096)


def run_one(argv, env, min_time, tmp, bench_filter=None):
    """Runs one benchmark process; returns its JSON report."""
    out = Path(tmp) / "out.json"
    cmd = argv + ["--benchmark_min_time=%g" % min_time, "--benchmark_format=console",
                  "--benchmark_out_format=json", "--benchmark_out=%s" % out]
    if bench_filter:
        cmd.append("--benchmark_filter=" + bench_filter)
    full_env = dict(os.environ)
    full_env.update(env)
    r = subprocess.run(cmd, env=full_env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                       text=True)
    if r.returncode != 0:
        sys.exit("bench: %s failed (exit %d):\n%s" % (" ".join(cmd), r.returncode,
                                                      r.stderr[-2000:]))
    return json.loads(out.read_text())


def list_benchmarks(argv, env):
    full_env = dict(os.environ)
    full_env.update(env)
    r = subprocess.run(argv + ["--benchmark_list_tests"], env=full_env, capture_output=True,
                       text=True)
    if r.returncode != 0:
        sys.exit("bench: %s --benchmark_list_tests failed:\n%s" % (argv[0], r.stderr[-2000:]))
    return r.stdout.split()


def split_name(bench_name):
    """(subject, workload or shape) of "<subject>|<workload>/..."."""
    subject, rest = bench_name.split("|", 1)
    return subject, rest.split("/", 1)[0]


def runs(report):
    """Yields (benchmark, subject, workload or shape) for every run of a report."""
    for b in report["benchmarks"]:
        if b.get("run_type") != "aggregate":
            yield (b,) + split_name(b["run_name"] if "run_name" in b else b["name"])


def parse_classic(report):
    """Yields (subject, workload, threads, value, bytes_returned)."""
    for b, subject, workload in runs(report):
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


def parse_shape(report):
    """Yields (key, ns per op, peak RSS in KiB, memory counters) for a shape
    process's one benchmark; key = (shape, object_size, threads, pools or None, subject)."""
    for b, subject, shape in runs(report):
        pools = int(round(b["pools"])) if "pools" in b else None
        key = (shape, int(round(b["object_size"])), int(round(b["threads"])), pools, subject)
        # Wall time for every shape: churn's benchmark thread only starts and
        # joins the threads that work, and waiting is part of every shape.
        ns = float(b["real_time"]) / float(b["ops_per_iter"])
        # The process's VmHWM (bench/shapes.h), the same from every thread.
        yield key, ns, float(b["rss_peak_kb"]), {c: float(b[c]) for c in MEMORY_COUNTERS if c in b}


def fmt_kb(kb):
    return "%.1f MB" % (kb / 1024.0) if kb is not None else "-"


def parse_selection(text):
    if text in ("", "all"):
        return list(CLASSIC), list(SHAPES)
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in CLASSIC and n not in SHAPES]
    if unknown or not names:
        sys.exit("bench: --shapes: unknown name(s) %s; choose from %s (or all)" % (
            ", ".join(unknown) or "(none given)", ",".join(CLASSIC + SHAPES)))
    return [n for n in CLASSIC if n in names], [n for n in SHAPES if n in names]


def plan(classic, shapes):
    """The processes of one repetition: (label, argv, env, filter, kind)."""
    classic_procs, shape_procs = [], []
    classic_re = "^[^|]*[|](%s)/" % "|".join(classic)
    for label, argv, env, kind in subjects():
        names = list_benchmarks(argv, env)
        if classic and any(re.match(classic_re, n) for n in names):
            classic_procs.append((label, argv, env, classic_re, "classic"))
        for name in names:
            shape = split_name(name)[1]
            # The floors take part in pool_count only (bench/floor_bench.cc).
            if shape in shapes and (kind != "floors" or shape == "pool_count"):
                shape_procs.append((name, argv, env, "^%s$" % re.escape(name), "shape"))
    return classic_procs, shape_procs


def best_peer(med, key_without_subject):
    vals = [(med[key_without_subject + (p,)], p) for p in PEERS
            if key_without_subject + (p,) in med]
    return min(vals) if vals else (None, None)


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="folder for bench.md, bench.json, the plots")
    ap.add_argument("--shapes", default="all",
                    help="comma-separated workloads and shapes to run: %s (default: all)" %
                    ",".join(CLASSIC + SHAPES))
    ap.add_argument("--reps", type=int, default=7, help="repetitions of the classic workloads")
    ap.add_argument("--shape_reps", type=int, default=5, help="repetitions of every shape")
    ap.add_argument("--min_time", type=float, default=0.08,
                    help="seconds per classic benchmark per repetition (Google Benchmark)")
    ap.add_argument("--shape_min_time", type=float, default=0.05,
                    help="seconds per shape benchmark per repetition (churn runs a fixed "
                         "10,000 threads instead)")
    ap.add_argument("--quick", action="store_true",
                    help="--reps=3 --shape_reps=1 --min_time=0.03 --shape_min_time=0.01")
    args = ap.parse_args()
    if args.quick:
        args.reps, args.shape_reps, args.min_time, args.shape_min_time = 3, 1, 0.03, 0.01
    if args.reps < 1 or args.shape_reps < 1 or args.min_time <= 0 or args.shape_min_time <= 0:
        sys.exit("bench: --reps and --shape_reps must be at least 1, the min times positive")
    classic, shapes = parse_selection(args.shapes)
    out_dir = Path(args.out)
    if not out_dir.is_absolute():
        out_dir = Path(os.environ.get("BUILD_WORKING_DIRECTORY", ".")) / out_dir
    out_dir.mkdir(parents=True, exist_ok=True)

    classic_procs, shape_procs = plan(classic, shapes)
    samples = {}  # (workload, threads, subject) -> [ns]
    returned = {}
    shape_ns, shape_rss, shape_mem = {}, {}, {}  # shape key -> [ns], [kb], {counter: [kb]}
    start = time.time()
    reps = max(args.reps if classic_procs else 0, args.shape_reps if shape_procs else 0)
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(reps):
            procs = (classic_procs if rep < args.reps else []) + \
                (shape_procs if rep < args.shape_reps else [])
            if procs:
                procs = procs[rep % len(procs):] + procs[:rep % len(procs)]
            t0 = time.time()
            for i, (label, argv, env, bench_filter, kind) in enumerate(procs):
                env = dict(env, POOLGUARD_BENCH_PAD=layout_pad(rep))
                if kind == "classic":
                    report = run_one(argv, env, args.min_time, tmp, bench_filter)
                    for subject, workload, threads, value, ret in parse_classic(report):
                        samples.setdefault((workload, threads, subject), []).append(value)
                        if ret is not None:
                            returned.setdefault((workload, threads, subject), []).append(ret)
                else:
                    report = run_one(argv, env, args.shape_min_time, tmp, bench_filter)
                    for key, ns, rss, mem in parse_shape(report):
                        shape_ns.setdefault(key, []).append(ns)
                        shape_rss.setdefault(key, []).append(rss)
                        for c, v in mem.items():
                            shape_mem.setdefault(key, {}).setdefault(c, []).append(v)
                if (i + 1) % 50 == 0 or i + 1 == len(procs):
                    print("bench: rep %d/%d: %d/%d processes, %.0f s (%.0f s in all)" % (
                        rep + 1, reps, i + 1, len(procs), time.time() - t0, time.time() - start),
                        file=sys.stderr)

    rows, target_lines, table = classic_results(samples, returned)
    shape_rows, shape_target_lines, shape_tables = shape_results(shape_ns, shape_rss, shape_mem)
    rows += shape_rows
    target_lines += shape_target_lines
    (out_dir / "bench.json").write_text(json.dumps(rows, indent=1) + "\n")
    elapsed = time.time() - start
    if table:
        print(table)
    for text in shape_tables:
        print("\n" + text)
    print("\nTargets:")
    print("| target | measured | reference | ratio | |")
    print("\n".join(target_lines))

    md = [
        "# poolguard benchmark",
        "",
        "`bazel run //tools:bench -- --out=%s --shapes=%s --reps=%d --shape_reps=%d "
        "--min_time=%g --shape_min_time=%g` on %s, %d CPUs, %.0f s." % (
            args.out, args.shapes, args.reps, args.shape_reps, args.min_time,
            args.shape_min_time, time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            os.cpu_count(), elapsed),
        "",
        "Classic workloads: medians of %d repetitions (each subject one process per "
        "repetition, order rotated, and a different environment size, hence stack layout, per "
        "repetition); 64-byte objects; ns per alloc+free pair: CPU time of the "
        "thread for 1 thread (immune to preemption by other users of the machine); for 2 and "
        "4 threads wall time divided by the pairs of all threads (Google Benchmark's time per "
        "iteration), so waiting for the others counts and perfect scaling on 2 cores halves it. "
        "Floors: `floor:array` per-thread array, `floor:tl_list` thread-local list, "
        "`floor:cas_list` one DWCAS free list, `floor:spinlock_list` a list under the "
        "locked backend's SpinLock. Peers: malloc/free under LD_PRELOAD. Their peak RSS is "
        "not given: one process runs them all." % args.reps,
        "",
        "Shapes (bench/shapes.h): medians of %d repetitions, each (subject, shape, object "
        "size, threads) a process of its own; ns per operation (wall time divided by the "
        "operations of all threads; an operation is an allocation and the free that balances it) and the process's peak "
        "RSS. \"vs best peer\" is the ratio to the fastest of jemalloc, tcmalloc and "
        "mimalloc, and for RSS to the lowest of their peak RSS. 16 threads oversubscribe "
        "the machine's cores." % args.shape_reps,
        "",
        "## Targets",
        "",
        "| target | measured | reference | ratio | |",
        "|---|---|---|---|---|",
    ] + target_lines
    if table:
        md += ["", "## Classic workloads", "", "```", table.strip(), "```", "",
               "![plot](bench.svg)", ""]
    for shape, text in zip([s for s in SHAPES if any(k[0] == s for k in shape_ns)],
                           shape_tables):
        md += ["", "## Shape: %s" % shape, "", text, "",
               "![time](bench_%s.svg) ![peak RSS](bench_%s_rss.svg)" % (shape, shape), ""]
    (out_dir / "bench.md").write_text("\n".join(md) + "\n")
    write_plots(out_dir, samples, shape_ns, shape_rss)
    print("\nbench: wrote %s/bench.md, bench.json and the plots (%.0f s)" % (out_dir, elapsed))


SUBJECT_ORDER = BACKENDS + FLOORS + ["malloc:glibc"] + list(PEERS)


def classic_results(samples, returned):
    """bench.json rows, target lines and the text table of the classic workloads."""
    med = {k: statistics.median(v) for k, v in samples.items()}

    def peer(workload, threads):
        return best_peer(med, (workload, threads))

    rows = []
    for (workload, threads, subject), ns in sorted(med.items()):
        floor = med.get((workload, threads, "floor:array"))
        peer_ns, _ = peer(workload, threads)
        row = {
            "workload": workload,
            "shape": None,
            "object_size": 64,
            "threads": threads,
            "subject": subject,
            "ns_per_pair": round(ns, 3),
            "rss_peak_kb": None,
            "samples": [round(v, 3) for v in samples[(workload, threads, subject)]],
            "ratio_to_array_floor": round(ns / floor, 3) if floor and workload not in PER_OP else None,
            "ratio_to_best_peer": round(ns / peer_ns, 3) if peer_ns and workload not in PER_OP else None,
        }
        if workload in PER_OP:
            row["unit"] = "ns per call"
            row["bytes_returned"] = round(statistics.median(returned[(workload, threads, subject)]))
        rows.append(row)

    target_lines = []
    for subject, workload, threads, ref, limit, what in TARGETS:
        if not any(k[0] == workload for k in med):
            continue  # not selected
        ns = med.get((workload, threads, subject))
        if ref == "best_peer":
            ref_ns, ref_name = peer(workload, threads)
        else:
            ref_ns, ref_name = med.get((workload, threads, ref)), ref
        if ns is None or ref_ns is None:
            target_lines.append("| %s | n/a | | | missing |" % what)
            continue
        ratio = ns / ref_ns
        target_lines.append("| %s | %.2f ns | %.2f ns (%s) | %.2fx | %s |" % (
            what, ns, ref_ns, ref_name, ratio, "met" if ratio <= limit else "MISSED"))

    lines = []
    for workload in CLASSIC:
        for threads in (1, 2, 4):
            keys = [s for s in SUBJECT_ORDER if (workload, threads, s) in med]
            if not keys:
                continue
            if workload in PER_OP:
                lines.append("\n%s, %d thread(s): ns per call, bytes returned per call" %
                             (workload, threads))
            else:
                lines.append("\n%s, %d thread(s): ns per alloc+free pair (all threads' pairs)" %
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
    return rows, target_lines, "\n".join(lines)


def shape_results(shape_ns, shape_rss, shape_mem):
    """bench.json rows, target lines and one markdown table per shape."""
    ns_med = {k: statistics.median(v) for k, v in shape_ns.items()}
    rss_med = {k: statistics.median(v) for k, v in shape_rss.items()}

    def lowest_peer_rss(key_without_subject):
        vals = [(rss_med[key_without_subject + (p,)], p) for p in PEERS
                if key_without_subject + (p,) in rss_med]
        return min(vals) if vals else (None, None)

    rows = []
    for key in sorted(ns_med, key=lambda k: (SHAPES.index(k[0]), k[1], k[3] or 0, k[2],
                                             SUBJECT_ORDER.index(k[4])
                                             if k[4] in SUBJECT_ORDER else 99)):
        shape, size, threads, pools, subject = key
        peer_ns, _ = best_peer(ns_med, key[:4])
        peer_rss, _ = lowest_peer_rss(key[:4])
        row = {
            "workload": shape,
            "shape": shape,
            "object_size": size,
            "threads": threads,
            "subject": subject,
            "ns_per_op": round(ns_med[key], 3),
            "rss_peak_kb": round(rss_med[key]),
            "samples": [round(v, 3) for v in shape_ns[key]],
            "rss_samples_kb": shape_rss[key],
            "ratio_to_array_floor": (round(ns_med[key] / ns_med[key[:4] + ("floor:array",)], 3)
                                     if key[:4] + ("floor:array",) in ns_med else None),
            "ratio_to_best_peer": round(ns_med[key] / peer_ns, 3) if peer_ns else None,
            "rss_ratio_to_best_peer": round(rss_med[key] / peer_rss, 3) if peer_rss else None,
        }
        if pools is not None:
            row["pools"] = pools
            one = ns_med.get((shape, size, threads, 1, subject))
            row["ratio_to_one_pool"] = round(ns_med[key] / one, 3) if one else None
        for c, values in shape_mem.get(key, {}).items():
            row[c] = round(statistics.median(values))
        if "rss_after_100_threads_kb" in row and row["rss_after_100_threads_kb"]:
            row["rss_growth_after_100_threads"] = round(
                row["rss_after_all_threads_kb"] / row["rss_after_100_threads_kb"], 3)
        rows.append(row)
    by_key = {(r["shape"], r["object_size"], r["threads"], r.get("pools"), r["subject"]): r
              for r in rows}

    targets = []
    for subject, shape, size, threads, time_limit, rss_limit in SHAPE_TARGETS:
        if not any(k[0] == shape for k in ns_med):
            continue
        r = by_key.get((shape, size, threads, None, subject))
        what = "%s %s, %d B, %d threads" % (subject, shape, size, threads)
        peer_ns, peer_name = best_peer(ns_med, (shape, size, threads, None))
        peer_rss, rss_name = lowest_peer_rss((shape, size, threads, None))
        if r is None or peer_ns is None:
            targets.append("| %s <= %.1fx best peer | n/a | | | missing |" % (what, time_limit))
            continue
        ratio = r["ns_per_op"] / peer_ns
        targets.append("| %s <= %.1fx best peer | %.2f ns | %.2f ns (%s) | %.2fx | %s |" % (
            what, time_limit, r["ns_per_op"], peer_ns, peer_name, ratio,
            "met" if ratio <= time_limit else "MISSED"))
        ratio = r["rss_peak_kb"] / peer_rss
        targets.append("| %s peak RSS <= %.1fx lowest peer | %s | %s (%s) | %.2fx | %s |" % (
            what, rss_limit, fmt_kb(r["rss_peak_kb"]), fmt_kb(peer_rss), rss_name, ratio,
            "met" if ratio <= rss_limit else "MISSED"))
    if any(k[0] == "pool_count" for k in ns_med):
        for pools in (100, 1000):
            r = by_key.get(("pool_count", 64, 1, pools, "tlcache"))
            one = by_key.get(("pool_count", 64, 1, 1, "tlcache"))
            what = "tlcache pool_count, %d pools <= %.1fx 1 pool (64 B, 1 thread)" % (
                pools, POOL_COUNT_LIMIT)
            if r is None or one is None:
                targets.append("| %s | n/a | | | missing |" % what)
                continue
            ratio = r["ns_per_op"] / one["ns_per_op"]
            targets.append("| %s | %.2f ns | %.2f ns | %.2fx | %s |" % (
                what, r["ns_per_op"], one["ns_per_op"], ratio,
                "met" if ratio <= POOL_COUNT_LIMIT else "MISSED"))
    if any(k[0] == "churn" for k in ns_med):
        for backend in BACKENDS:
            churn = [r for r in rows if r["shape"] == "churn" and r["subject"] == backend and
                     r.get("rss_growth_after_100_threads")]
            if not churn:
                continue
            worst = max(churn, key=lambda r: r["rss_growth_after_100_threads"])
            targets.append(
                "| %s churn: RSS after 10,000 threads <= %.1fx after 100 (worst of %d size and "
                "thread counts: %d B, %d threads) | %s | %s | %.2fx | %s |" % (
                    backend, CHURN_RSS_LIMIT, len(churn), worst["object_size"], worst["threads"],
                    fmt_kb(worst["rss_after_all_threads_kb"]),
                    fmt_kb(worst["rss_after_100_threads_kb"]),
                    worst["rss_growth_after_100_threads"],
                    "met" if worst["rss_growth_after_100_threads"] <= CHURN_RSS_LIMIT
                    else "MISSED"))

    tables = []
    for shape in SHAPES:
        keys = [k for k in ns_med if k[0] == shape]
        if not keys:
            continue
        text = []
        for size in sorted({k[1] for k in keys}):
            here = [k for k in keys if k[1] == size]
            thread_counts = sorted({k[2] for k in here})
            labels = sorted({(SUBJECT_ORDER.index(k[4]) if k[4] in SUBJECT_ORDER else 99,
                              k[3] or 0, k[4]) for k in here})
            head = ["%d-byte objects" % size] + ["%d thread%s" % (t, "s" if t > 1 else "")
                                                 for t in thread_counts]
            text += ["" if not text else "", "| " + " | ".join(head) + " |",
                     "|" + "---|" * len(head)]
            for _, pools, subject in labels:
                cells = [subject + (", %d pool%s" % (pools, "s" if pools > 1 else "")
                                    if pools else "")]
                for t in thread_counts:
                    r = by_key.get((shape, size, t, pools or None, subject))
                    cells.append(shape_cell(r, subject) if r else "-")
                text.append("| " + " | ".join(cells) + " |")
        tables.append("\n".join(text).strip())
    return rows, targets, tables


def shape_cell(r, subject):
    """One table cell: time and peak RSS, their ratios, the shape's own figures."""
    cell = "%.2f ns" % r["ns_per_op"]
    if r["ratio_to_best_peer"] and subject not in PEERS:
        cell += " x%.2f" % r["ratio_to_best_peer"]
    if r.get("ratio_to_one_pool") and r.get("pools", 1) > 1:
        cell += " (x%.2f vs 1 pool)" % r["ratio_to_one_pool"]
    if r["ratio_to_array_floor"] and not subject.startswith("floor:"):
        cell += " (x%.2f vs floor)" % r["ratio_to_array_floor"]
    cell += " · %s" % fmt_kb(r["rss_peak_kb"])
    if r["rss_ratio_to_best_peer"] and subject not in PEERS:
        cell += " x%.2f" % r["rss_ratio_to_best_peer"]
    if "rss_after_100_threads_kb" in r:
        cell += " · after 100 threads %s, after all %s" % (
            fmt_kb(r["rss_after_100_threads_kb"]), fmt_kb(r.get("rss_after_all_threads_kb")))
    if "idle_rss_kb" in r:
        cell += " · idle %s, after Flush() %s" % (
            fmt_kb(r["idle_rss_kb"]), fmt_kb(r.get("idle_rss_after_flush_kb")))
    return cell


def write_plots(out_dir, samples, shape_ns, shape_rss):
    med = {k: statistics.median(v) for k, v in samples.items()}
    if med:
        groups = ["%s/%d" % (w, t) for w in CLASSIC if w not in PER_OP for t in (1, 2, 4)
                  if any((w, t, s) in med for s in SUBJECT_ORDER)]
        values = {("%s/%d" % (w, t), s): v for (w, t, s), v in med.items() if w not in PER_OP}
        (out_dir / "bench.svg").write_text(bar_chart(
            groups, [s for s in SUBJECT_ORDER if any(k[2] == s for k in med)], values,
            title="ns per alloc+free pair (median; log scale)", ylabel="ns", log=True))
    for shape in SHAPES:
        keys = [k for k in shape_ns if k[0] == shape]
        if not keys:
            continue

        def group(k):
            return "%dB%s/%dt" % (k[1], "/%dp" % k[3] if k[3] else "", k[2])

        groups = []
        for k in sorted(keys, key=lambda k: (k[1], k[3] or 0, k[2])):
            if group(k) not in groups:
                groups.append(group(k))
        series = [s for s in SUBJECT_ORDER if any(k[4] == s for k in keys)]
        for suffix, data, title, ylabel in (
                ("", shape_ns, "%s: ns per operation (median; log scale)", "ns"),
                ("_rss", shape_rss, "%s: peak RSS in KiB (median; log scale)", "KiB")):
            values = {(group(k), k[4]): statistics.median(data[k]) for k in keys}
            (out_dir / ("bench_%s%s.svg" % (shape, suffix))).write_text(bar_chart(
                groups, series, values, title=title % shape, ylabel=ylabel, log=True))


if __name__ == "__main__":
    main()
