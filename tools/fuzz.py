#!/usr/bin/env python3
"""The fuzzing campaign runner: poolguard's main job.

  bazel run //tools:fuzz -- --minutes=5 [--out=DIR] [--backends=all|a,b]
      [--sanitizers=asan,tsan] [--targets=NAME|LABEL,...] [--mutant=NAME] [--jobs=N]
      [--corpus_root=DIR] [--state_dir=DIR]

--targets also takes the labels of fuzz targets poolguard_backend() made in
any workspace (//toy:scheduled_fuzzer_toy); from another workspace, run
`bazel run @poolguard//tools:fuzz -- --targets=//toy:scheduled_fuzzer_toy`.

Builds (or reuses, through Bazel's caches) the fuzz targets of the chosen
backends: the scheduled fuzzer under ASan (exact replay) and the free-running
fuzzer under TSan. Runs each with libFuzzer's fork mode on the machine's cores
for --minutes, showing one progress line per target. Every crash is replayed,
classified (sanitizer and bug type, or oracle), de-duplicated by a stack
signature, minimized and stored with a one-line reproduction command; a
signature seen in an earlier campaign is listed as known, not reported again.
At the end, of the inputs the campaign added to each target's corpus, those
that add coverage are kept (libFuzzer's merge; --full_merge minimizes the
whole corpus instead), and DIR gets report.md, report.html, report.json and
coverage.svg.

The corpus of each target persists outside the checkout
(~/.cache/poolguard/corpus/<target>, shared with `bazel run ..._run`),
so the next campaign resumes from it. Ctrl-C stops the fuzzers cleanly and
still triages, merges and reports; a second Ctrl-C skips minimizing and
merging.

Exit status: 0 when no new crash was found, 1 when one was, 2 on an error.
"""

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time

import corpus
import project
import reports
import toolbox
import triage

TOOL = "fuzz"
MIN_FREE_DISK = 256 << 20

# "#22670: cov: 2640 ft: 2262 corp: 211 exec/s 860 oom/timeout/crash: 0/0/0 time: 12s job: 5"
STATUS = re.compile(r"^#(\d+): cov: (\d+) ft: (\d+) corp: (\d+) exec/s (\d+) "
                    r"oom/timeout/crash: (\d+)/(\d+)/(\d+) time: (\d+)s")
interrupts = 0


def on_interrupt(signum, frame):
    global interrupts
    interrupts += 1


class Target:
    """One fuzz target of one backend, built with one config, and its run."""

    def __init__(self, target, mutant, out, corpus_root, config=None):
        spec = target.spec
        self.target = target
        self.fuzzer = target.fuzzer
        self.backend = target.backend
        self.mutant = mutant
        # A seeded bug names the config that can see it (a race only TSan
        # reports, say); otherwise the target's usual one.
        self.config = config or spec["config"]
        self.sanitizer = self.config.split("-")[0]
        self.exact_replay = spec["exact_replay"]
        self.seed_kind = spec["corpus"]
        self.name = target.name
        self.label = self.name + (f" [mutant {mutant}]" if mutant else "")
        suffix = f"-mutant-{mutant}" if mutant else ""
        # A seeded bug's corpus is kept apart: its inputs are shaped by the bug.
        self.corpus = corpus_root / (self.name + suffix)
        self.work = out / "work" / (self.name + suffix)
        self.artifacts = self.work / "artifacts"
        self.tmp = self.work / "tmp"
        self.log = self.work / "fuzz.log"
        self.binary = out / "bin" / (self.name + suffix)
        self.key = f"{self.name}|{self.config}|{mutant or ''}"
        self.workers = 1
        self.process = None
        self.log_offset = 0
        self.status = {}
        self.series = []
        self.seen_artifacts = set()
        self.crash_inputs = 0
        self.corpus_start = 0
        self.corpus_end = None
        self.corpus_merged = None
        self.restarts = 0
        self.problem = None


def check_disk(path, what):
    free = shutil.disk_usage(path).free
    if free < MIN_FREE_DISK:
        raise toolbox.UserError(f"not enough free disk for the {what} in {path}: "
                                f"{free >> 20} MB free, need {MIN_FREE_DISK >> 20} MB")


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="bazel run //tools:fuzz --",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=5, help="fuzzing time (default 5)")
    parser.add_argument("--out", help="results folder (default fuzz-results/<date-time>)")
    parser.add_argument("--backends", default="all", help="'all' or a comma-separated list")
    parser.add_argument("--sanitizers", default="asan,tsan",
                        help="asan (scheduled fuzzer), tsan (free-running fuzzer), or both")
    parser.add_argument("--targets", help="explicit targets: in-tree names "
                        "(scheduled_fuzzer_lockless) or labels (//toy:scheduled_fuzzer_toy)")
    parser.add_argument("--mutant", help="fuzz a seeded-bug build (MUTANTS in variants.bzl)")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1,
                        help="fuzzing processes at once, over all targets (default: cores)")
    parser.add_argument("--state_dir", default="~/.cache/poolguard",
                        help="where corpora and known crashes persist")
    parser.add_argument("--corpus_root", help="corpus folders (default STATE_DIR/corpus)")
    parser.add_argument("--minimize_s", type=int, default=30,
                        help="seconds to minimize each new crash (0: skip)")
    parser.add_argument("--full_merge", action="store_true",
                        help="minimize the whole corpus at the end (default: keep it, add only "
                             "this campaign's inputs that add coverage)")
    parser.add_argument("--progress_s", type=int, default=30,
                        help="seconds between progress lines when not on a terminal")
    args = parser.parse_args(argv)
    if not args.minutes > 0:
        raise toolbox.UserError("--minutes must be positive")
    if args.jobs < 1:
        raise toolbox.UserError("--jobs must be at least 1")
    return args


def choose_targets(args, out, corpus_root):
    backends, _ = project.backends()
    fuzzers = project.fuzzers()
    catalog = {m["name"]: m for m in project.mutants()}
    if args.mutant and args.mutant not in catalog:
        raise toolbox.UserError(f"no mutant named '{args.mutant}'; choose from: "
                                f"{', '.join(sorted(catalog))}")
    if args.targets:
        chosen = []
        for text in [n for n in args.targets.split(",") if n]:
            try:
                chosen.append(project.parse_target(text))
            except ValueError as e:
                names = [project.in_tree_target(f, b).name for f in fuzzers for b in backends]
                raise toolbox.UserError(f"{e}; in-tree targets: {', '.join(sorted(names))}, "
                                        f"or a label of one poolguard_backend() made") from None
    elif args.mutant:
        # A seeded bug lives in one backend and is meant for one target.
        m = catalog[args.mutant]
        chosen = [project.in_tree_target(m["target"], m["backend"])]
    else:
        if args.backends == "all":
            wanted_backends = backends
        else:
            wanted_backends = [b for b in args.backends.split(",") if b]
            for b in wanted_backends:
                if b not in backends:
                    raise toolbox.UserError(f"no backend named '{b}'; choose from: "
                                            f"{', '.join(backends)}")
        sanitizers = [s for s in args.sanitizers.split(",") if s]
        known = {spec["sanitizer"] for spec in fuzzers.values()}
        for s in sanitizers:
            if s not in known:
                raise toolbox.UserError(f"no sanitizer '{s}'; choose from: "
                                        f"{', '.join(sorted(known))}")
        chosen = [project.in_tree_target(f, b) for f, spec in fuzzers.items()
                  if spec["sanitizer"] in sanitizers for b in wanted_backends]
    if args.mutant:
        m = catalog[args.mutant]
        for target in chosen:
            if target.backend != m["backend"] or not target.label.startswith("//backends/"):
                raise toolbox.UserError(f"mutant '{args.mutant}' is in the in-tree backend "
                                        f"'{m['backend']}', not in {target.label}")
    if not chosen:
        raise toolbox.UserError("no target chosen")
    targets = []
    for target in chosen:
        config = None
        if args.mutant and target.fuzzer == catalog[args.mutant]["target"]:
            config = catalog[args.mutant]["config"]
        targets.append(Target(target, args.mutant, out, corpus_root, config))
    return targets


def build(targets, workspace, out):
    groups = {}
    for t in targets:
        groups.setdefault((t.config, t.mutant), []).append(t)
    (out / "bin").mkdir(parents=True, exist_ok=True)
    for (config, mutant), members in groups.items():
        names = [t.name for t in members]
        print(f"{TOOL}: building {', '.join(names)} (--config={config}"
              f"{', mutant ' + mutant if mutant else ''})", flush=True)
        log = out / f"build-{config}{'-' + mutant if mutant else ''}.log"
        toolbox.bazel_build(workspace, toolbox.build_flags(config, mutant),
                            [t.target.bin_label() for t in members], log, tool=TOOL)
        if interrupts:
            raise toolbox.UserError("interrupted while building")
        for t in members:
            # A copy: the next build with other flags overwrites bazel-bin.
            shutil.copy2(t.target.bin_path(workspace), t.binary)


def start(t, seconds):
    env = dict(os.environ)
    env["TMPDIR"] = str(t.tmp)  # fork mode's job folders, salvaged at the end
    cmd = [str(t.binary), f"-fork={t.workers}", "-ignore_crashes=1", "-ignore_timeouts=1",
           "-ignore_ooms=1", f"-max_total_time={max(1, int(seconds))}", "-timeout=30",
           "-rss_limit_mb=4096", f"-artifact_prefix={t.artifacts}/",
           f"-dict={project.ROOT / 'fuzz/pool_fuzzer.dict'}", "-print_final_stats=1", str(t.corpus)]
    log = open(t.log, "a")
    log.write(f"$ {' '.join(cmd)}\n")
    log.flush()
    # A session of its own: the terminal's Ctrl-C reaches only this runner,
    # which then stops every fuzzer in order.
    t.process = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env,
                                 start_new_session=True)
    t.started = time.monotonic()
    log.close()


def read_status(t, elapsed):
    try:
        with open(t.log, "rb") as f:
            f.seek(t.log_offset)
            data = f.read()
    except OSError:
        return
    end = data.rfind(b"\n")
    if end < 0:
        return
    t.log_offset += end + 1
    for line in data[:end].decode(errors="replace").splitlines():
        match = STATUS.match(line)
        if match:
            execs, cov, ft, corp, eps = (int(match.group(i)) for i in range(1, 6))
            t.status = {"execs": execs, "cov": cov, "ft": ft, "corpus": corp, "exec_s": eps}
            t.series.append({"t": round(elapsed, 1), "cov": cov, "ft": ft, "corpus": corp,
                             "execs": execs})


def stop_all(targets):
    """Stops every fuzzer: SIGINT to its process group, SIGKILL after a grace.

    Nothing is lost either way: fork mode adds each input to the corpus
    folder as its job ends, crash inputs are written when found, and
    salvage() keeps what running jobs had found.
    """
    running = [t for t in targets if t.process is not None and t.process.poll() is None]
    for t in running:
        try:
            os.killpg(t.process.pid, signal.SIGINT)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + 5
    for t in running:
        try:
            t.process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            try:
                os.killpg(t.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            t.process.wait()


def progress_line(t, elapsed, total, crash_triage):
    s = t.status
    unique = crash_triage.unique(t)
    fmt = lambda secs: f"{int(secs) // 60:02d}:{int(secs) % 60:02d}"
    state = ""
    if t.problem:
        state = f"  ({t.problem})"
    return (f"{t.label:<30} {t.sanitizer:<4} {fmt(min(elapsed, total))} elapsed, "
            f"{fmt(max(0, total - elapsed))} left  "
            f"{s.get('exec_s', 0):>6} exec/s  cov {s.get('cov', '-'):>5}  "
            f"corpus {s.get('corpus', t.corpus_start):>5}  crashes {t.crash_inputs}"
            f" ({len(unique)} unique, {sum(c.new for c in unique)} new){state}")


def minimize(crash, seconds, crash_dir):
    """Shrinks a crash input, keeping it only if it still fails the same way."""
    t = crash.target
    original = crash.inputs[0]
    candidate = crash_dir / "minimized"
    process = subprocess.Popen([str(t.binary), "-minimize_crash=1", f"-max_total_time={seconds}",
                                "-timeout=30", f"-exact_artifact_path={candidate}", str(original)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    try:
        process.wait(timeout=seconds + 60)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)  # with the runs it started
        process.wait()
    if not candidate.exists():
        return original
    code, log = toolbox.replay(t.binary, candidate)
    if code != 0 and triage.signature(log)[2] == crash.id:
        crash.minimized = True
        return candidate
    candidate.unlink()
    return original


def load_known(path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def campaign(args):
    workspace = toolbox.workspace_dir(TOOL)
    toolbox.require_toolchain()
    started = time.strftime("%Y-%m-%d %H:%M:%S")
    out = toolbox.user_path(args.out or f"fuzz-results/{time.strftime('%Y%m%d-%H%M%S')}")
    toolbox.writable_dir(out, "results folder")
    state_dir = toolbox.writable_dir(toolbox.user_path(args.state_dir), "state folder")
    corpus_root = toolbox.writable_dir(
        toolbox.user_path(args.corpus_root) if args.corpus_root else state_dir / "corpus",
        "corpus folder")
    check_disk(out, "results")
    check_disk(corpus_root, "corpora")
    crash_store = toolbox.writable_dir(state_dir / "crashes", "crash folder")
    known_path = crash_store / "known.json"
    known = load_known(known_path)

    targets = choose_targets(args, out, corpus_root)
    # Cores are shared out among the targets; with more targets than cores,
    # each still gets one worker and the kernel time-slices them.
    share, extra = divmod(args.jobs, len(targets))
    for i, t in enumerate(targets):
        t.workers = max(1, share + (1 if i < extra else 0))
    build(targets, workspace, out)
    for t in targets:
        corpus.prepare_corpus(t, project.ROOT / "fuzz/corpus")

    seconds = args.minutes * 60
    print(f"{TOOL}: {len(targets)} target(s) for {args.minutes:g} min on "
          f"{sum(t.workers for t in targets)} worker(s); corpora in {corpus_root}; "
          f"results in {out}", flush=True)
    crash_triage = triage.Triage(known)
    begin = time.monotonic()
    for t in targets:
        start(t, seconds)
    # Crashes are triaged while the fuzzers run, so progress shows unique
    # counts; a replay never holds up the progress lines.
    done = threading.Event()

    def triage_loop():
        while not done.wait(2):
            crash_triage.scan(targets)

    triage_thread = threading.Thread(target=triage_loop, daemon=True)
    triage_thread.start()
    tty = sys.stdout.isatty()
    printed = 0
    last_plain = 0.0
    stopped_by = "time"
    while True:
        time.sleep(1)
        elapsed = time.monotonic() - begin
        for t in targets:
            read_status(t, elapsed)
            code = t.process.poll()
            if code is not None and elapsed < seconds - 10 and not interrupts:
                # The fuzzer ended early (an error, not a crash: crashes are
                # ignored in fork mode): say so, and restart it once.
                t.problem = f"fuzzer exited with {code}; see {t.log}"
                if t.restarts < 1 and time.monotonic() - t.started > 10:
                    t.restarts += 1
                    start(t, seconds - elapsed)
        lines = [progress_line(t, elapsed, seconds, crash_triage) for t in targets]
        if tty:
            if printed:
                sys.stdout.write(f"\x1b[{printed}F")
            # Cut to the terminal's width: a wrapped line would break the
            # cursor arithmetic that redraws the block in place.
            width = shutil.get_terminal_size().columns - 1
            sys.stdout.write("".join(f"\x1b[2K{line[:width]}\n" for line in lines))
            sys.stdout.flush()
            printed = len(lines)
        elif elapsed - last_plain >= args.progress_s:
            last_plain = elapsed
            print("\n".join(lines), flush=True)
        if interrupts:
            stopped_by = "Ctrl-C"
            break
        if all(t.process.poll() is not None for t in targets) or elapsed > seconds + 60:
            break

    print(f"{TOOL}: stopping ({stopped_by})", flush=True)
    stop_all(targets)
    done.set()
    triage_thread.join()
    elapsed = time.monotonic() - begin
    for t in targets:
        read_status(t, elapsed)
        salvaged = corpus.salvage(t)
        if salvaged:
            print(f"{TOOL}: {t.label}: kept {salvaged} input(s) from unfinished jobs")
        t.corpus_end = corpus.count_files(t.corpus)
    crash_triage.scan(targets)
    if not tty:
        print("\n".join(progress_line(t, elapsed, seconds, crash_triage) for t in targets))

    crashes = list(crash_triage.crashes.values())
    now = time.strftime("%Y-%m-%d %H:%M:%S")
    for c in crashes:
        crash_dir = out / "crashes" / f"{c.target.name}-{c.id}"
        crash_dir.mkdir(parents=True, exist_ok=True)
        for i, path in enumerate(c.inputs[:5]):
            shutil.copy2(path, crash_dir / path.name)
        (crash_dir / "report.txt").write_text(c.log)
        chosen = crash_dir / c.inputs[0].name
        # Only exact-replay inputs can be minimized: a free-running failure
        # may not recur on any given run.
        if c.new and c.reproduced and c.target.exact_replay and args.minimize_s > 0 \
                and interrupts < 2:
            print(f"{TOOL}: minimizing {c.kind} in {c.target.label}", flush=True)
            minimized = minimize(c, args.minimize_s, crash_dir)
            if minimized != c.inputs[0]:
                chosen = minimized
        c.input = chosen
        c.reproduce = toolbox.reproduce_command(c.target.config, c.target.mutant,
                                                c.target.target.bin_label(), chosen,
                                                runs=1 if c.target.exact_replay else 100)
        if c.new:
            # Keep the crash beyond this results folder, and remember it.
            keep = crash_store / c.target.key.replace("|", "_") / c.id
            keep.mkdir(parents=True, exist_ok=True)
            shutil.copy2(chosen, keep / "input")
            (keep / "report.txt").write_text(c.log)
            known.setdefault(c.target.key, {})[c.id] = {
                "class": c.kind, "frames": c.frames, "accesses": c.accesses,
                "first_seen": now, "input": str(keep / "input")}
    tmp_known = known_path.with_suffix(".tmp")
    tmp_known.write_text(json.dumps(known, indent=2) + "\n")
    tmp_known.replace(known_path)

    for t in targets:
        if interrupts >= 2:
            break
        if t.mutant:
            # A seeded bug's corpus is a throwaway: no time spent merging it.
            continue
        print(f"{TOOL}: merging the corpus of {t.label} ({t.corpus_end} inputs)", flush=True)
        t.corpus_merged = corpus.merge_corpus(t, args.full_merge)
        shutil.rmtree(t.tmp, ignore_errors=True)

    meta = {"started": started, "minutes": args.minutes, "jobs": args.jobs,
            "stopped_by": stopped_by, "corpus_root": str(corpus_root), "workspace": str(workspace)}
    reports.write_reports(out, meta, targets, crashes)
    print()
    for c in crashes:
        label = "NEW" if c.new else "known"
        print(f"{TOOL}: {label} {c.kind} in {c.target.label} ({len(c.inputs)} input(s)): "
              f"{' <- '.join(c.frames[:2])}\n    reproduce: {c.reproduce}")
    new = sum(c.new for c in crashes)
    print(f"{TOOL}: {len(crashes)} unique crash(es), {new} new. Report: {out / 'report.md'} "
          f"(also report.html, report.json, coverage.svg)")
    return 1 if new else 0


def main():
    signal.signal(signal.SIGINT, on_interrupt)
    signal.signal(signal.SIGTERM, on_interrupt)
    # Everything already in the corpus folders stays on any error: they are
    # only ever swapped whole, after a successful merge.
    toolbox.run_tool(TOOL, lambda: campaign(parse_args(sys.argv[1:])))


if __name__ == "__main__":
    main()
