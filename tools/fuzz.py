#!/usr/bin/env python3
"""The fuzzing campaign runner: poolguard's main job.

  bazel run //tools:fuzz -- --minutes=5 [--out=DIR] [--backends=all|a,b]
      [--sanitizers=asan,tsan] [--targets=NAME,...] [--mutant=NAME] [--jobs=N]
      [--corpus_root=DIR] [--state_dir=DIR]

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
(~/.cache/poolguard/corpus/<target>, shared with `bazel run //fuzz:<t>_run`),
so the next campaign resumes from it. Ctrl-C stops the fuzzers cleanly and
still triages, merges and reports; a second Ctrl-C skips minimizing and
merging.

Exit status: 0 when no new crash was found, 1 when one was, 2 on an error.
"""

import argparse
import html
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import fuzzlib
import svg_plot

TOOL = "fuzz"
MIN_FREE_DISK = 256 << 20
MAX_TRIAGED_PER_TARGET = 50

# "#22670: cov: 2640 ft: 2262 corp: 211 exec/s 860 oom/timeout/crash: 0/0/0 time: 12s job: 5"
STATUS = re.compile(r"^#(\d+): cov: (\d+) ft: (\d+) corp: (\d+) exec/s (\d+) "
                    r"oom/timeout/crash: (\d+)/(\d+)/(\d+) time: (\d+)s")
ARTIFACT_PREFIXES = ("crash-", "timeout-", "oom-", "leak-")

interrupts = 0


def on_interrupt(signum, frame):
    global interrupts
    interrupts += 1


class Target:
    """One fuzz target of one backend, built with one config, and its run."""

    def __init__(self, fuzzer, backend, mutant, out, corpus_root, config=None):
        spec = fuzzlib.FUZZERS[fuzzer]
        self.fuzzer = fuzzer
        self.backend = backend
        self.mutant = mutant
        # A seeded bug names the config that can see it (a race only TSan
        # reports, say); otherwise the target's usual one.
        self.config = config or spec["config"]
        self.sanitizer = self.config.split("-")[0]
        self.exact_replay = spec["exact_replay"]
        self.seed_kind = spec["corpus"]
        self.name = f"{fuzzer}_{backend}"
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


class Crash:
    def __init__(self, target, kind, frames, sig_id, log, first_input):
        self.target = target
        self.kind = kind
        self.frames = frames
        self.id = sig_id
        self.log = log
        self.inputs = [first_input]
        self.new = True
        self.first_seen = None
        self.minimized = False
        self.accesses = []  # a data race's accesses (fuzzlib.race_accesses)
        self.reproduced = None
        self.input = None
        self.reproduce = None


def count_files(folder):
    try:
        return sum(1 for p in folder.iterdir() if p.is_file())
    except OSError:
        return 0


def folder_bytes(folder):
    try:
        return sum(p.stat().st_size for p in folder.iterdir() if p.is_file())
    except OSError:
        return 0


def check_disk(path, what):
    free = shutil.disk_usage(path).free
    if free < MIN_FREE_DISK:
        raise fuzzlib.UserError(f"not enough free disk for the {what} in {path}: "
                                f"{free >> 20} MB free, need {MIN_FREE_DISK >> 20} MB")


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="bazel run //tools:fuzz --",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=5, help="fuzzing time (default 5)")
    parser.add_argument("--out", help="results folder (default fuzz-results/<date-time>)")
    parser.add_argument("--backends", default="all", help="'all' or a comma-separated list")
    parser.add_argument("--sanitizers", default="asan,tsan",
                        help="asan (scheduled fuzzer), tsan (free-running fuzzer), or both")
    parser.add_argument("--targets", help="explicit targets, e.g. scheduled_fuzzer_lockless")
    parser.add_argument("--mutant", help="fuzz a seeded-bug build (fuzz/mutants/catalog.json)")
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
        raise fuzzlib.UserError("--minutes must be positive")
    if args.jobs < 1:
        raise fuzzlib.UserError("--jobs must be at least 1")
    return args


def choose_targets(args, workspace, out, corpus_root):
    backends, _ = fuzzlib.backends(workspace)
    catalog = {m["name"]: m for m in fuzzlib.mutant_catalog(workspace)}
    if args.mutant and args.mutant not in catalog:
        raise fuzzlib.UserError(f"no mutant named '{args.mutant}'; choose from: "
                                f"{', '.join(sorted(catalog))}")
    all_names = {f"{f}_{b}": (f, b) for f in fuzzlib.FUZZERS for b in backends}
    if args.targets:
        chosen = []
        for name in [n for n in args.targets.split(",") if n]:
            if name not in all_names:
                raise fuzzlib.UserError(f"no fuzz target named '{name}'; choose from: "
                                        f"{', '.join(sorted(all_names))}")
            chosen.append(all_names[name])
    elif args.mutant:
        # A seeded bug lives in one backend and is meant for one target.
        m = catalog[args.mutant]
        chosen = [(m["target"], m["backend"])]
    else:
        if args.backends == "all":
            wanted_backends = backends
        else:
            wanted_backends = [b for b in args.backends.split(",") if b]
            for b in wanted_backends:
                if b not in backends:
                    raise fuzzlib.UserError(f"no backend named '{b}'; choose from: "
                                            f"{', '.join(backends)}")
        sanitizers = [s for s in args.sanitizers.split(",") if s]
        known = {spec["sanitizer"] for spec in fuzzlib.FUZZERS.values()}
        for s in sanitizers:
            if s not in known:
                raise fuzzlib.UserError(f"no sanitizer '{s}'; choose from: "
                                        f"{', '.join(sorted(known))}")
        chosen = [(f, b) for f, spec in fuzzlib.FUZZERS.items() if spec["sanitizer"] in sanitizers
                  for b in wanted_backends]
    if args.mutant:
        m = catalog[args.mutant]
        for fuzzer, backend in chosen:
            if backend != m["backend"]:
                raise fuzzlib.UserError(f"mutant '{args.mutant}' is in backend '{m['backend']}', "
                                        f"not '{backend}'")
    if not chosen:
        raise fuzzlib.UserError("no target chosen")
    targets = []
    for fuzzer, backend in chosen:
        config = None
        if args.mutant and fuzzer == catalog[args.mutant]["target"]:
            config = catalog[args.mutant]["config"]
        targets.append(Target(fuzzer, backend, args.mutant, out, corpus_root, config))
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
        paths = fuzzlib.bazel_build(workspace, config, mutant, names, log)
        if interrupts:
            raise fuzzlib.UserError("interrupted while building")
        for t in members:
            # A copy: the next build with other flags overwrites bazel-bin.
            shutil.copy2(paths[t.name], t.binary)


def recover_corpus(t):
    """Puts back inputs a campaign killed in the middle of its merge had moved."""
    old = t.corpus.with_name(t.corpus.name + ".old")
    if old.is_dir() and not t.corpus.exists():
        old.rename(t.corpus)
    merging = t.corpus.with_name(t.corpus.name + ".merging")
    if merging.is_dir() and t.corpus.is_dir():
        for p in merging.iterdir():
            if not (t.corpus / p.name).exists():
                p.rename(t.corpus / p.name)
        shutil.rmtree(merging, ignore_errors=True)


def prepare_corpus(t, workspace):
    recover_corpus(t)
    fuzzlib.writable_dir(t.corpus, "corpus folder")
    if count_files(t.corpus) == 0:
        for seed in (workspace / "fuzz/corpus" / t.seed_kind).iterdir():
            shutil.copy2(seed, t.corpus / seed.name)
    t.corpus_start = count_files(t.corpus)
    t.corpus_before = {p.name for p in t.corpus.iterdir()}
    for folder in (t.artifacts, t.tmp):
        folder.mkdir(parents=True, exist_ok=True)


def start(t, workspace, seconds):
    env = dict(os.environ)
    env["TMPDIR"] = str(t.tmp)  # fork mode's job folders, salvaged at the end
    cmd = [str(t.binary), f"-fork={t.workers}", "-ignore_crashes=1", "-ignore_timeouts=1",
           "-ignore_ooms=1", f"-max_total_time={max(1, int(seconds))}", "-timeout=30",
           "-rss_limit_mb=4096", f"-artifact_prefix={t.artifacts}/",
           f"-dict={workspace / 'fuzz/pool_fuzzer.dict'}", "-print_final_stats=1", str(t.corpus)]
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


def salvage(t):
    """Moves inputs that fork-mode jobs found but had not merged into the corpus."""
    saved = 0
    for job_dir in t.tmp.glob("libFuzzerTemp.FuzzWithFork*.dir"):
        for unit in job_dir.glob("C*/*"):
            if unit.is_file() and not (t.corpus / unit.name).exists():
                shutil.copy2(unit, t.corpus / unit.name)
                saved += 1
        shutil.rmtree(job_dir, ignore_errors=True)
    return saved


class Triage:
    """Replays, classifies and de-duplicates crash inputs as they appear."""

    def __init__(self, known):
        self.known = known
        self.crashes = {}  # (target key, signature id) -> Crash
        self.lock = threading.Lock()

    def unique(self, t):
        with self.lock:
            return [c for c in self.crashes.values() if c.target is t]

    def scan(self, targets):
        for t in targets:
            try:
                names = sorted(p.name for p in t.artifacts.iterdir())
            except OSError:
                continue
            for name in names:
                if name.startswith(ARTIFACT_PREFIXES) and name not in t.seen_artifacts:
                    t.seen_artifacts.add(name)
                    t.crash_inputs += 1
                    # Fork mode keeps fuzzing after a crash, so one bug can
                    # leave hundreds of inputs; a sample names them all.
                    if t.crash_inputs <= MAX_TRIAGED_PER_TARGET:
                        self.add(t, t.artifacts / name)

    def add(self, t, path):
        # A free-running (TSan) failure depends on real timing: run the input
        # many times before calling it irreproducible.
        runs = 1 if t.exact_replay else 50
        attempts = 1 if t.exact_replay else 3
        log, code = "", 0
        for _ in range(attempts):
            code, log = fuzzlib.replay(t.binary, path, runs=runs)
            if code != 0:
                break
        if code == 0:
            # Keep the fuzzer's verdict: it saw the input fail once.
            log = f"(input did not fail again in {runs * attempts} runs: a rare interleaving)\n"
        kind, frames, sig_id = fuzzlib.signature(log)
        accesses = set(fuzzlib.race_accesses(log))
        if code == 0:
            kind = "unreproduced:" + path.name.split("-")[0]
        sharing = lambda other: bool(accesses & set(other))
        with self.lock:
            crash = self.crashes.get((t.key, sig_id))
            if crash is None and accesses:
                crash = next((c for c in self.crashes.values()
                              if c.target is t and sharing(c.accesses)), None)
            if crash is not None:
                crash.inputs.append(path)
                return
            crash = Crash(t, kind, frames, sig_id, log, path)
            crash.accesses = sorted(accesses)
            crash.reproduced = code != 0
            known = self.known.get(t.key, {})
            seen = known.get(sig_id)
            if seen is None and accesses:
                seen = next((k for k in known.values() if sharing(k.get("accesses", []))), None)
            if seen:
                crash.new = False
                crash.first_seen = seen.get("first_seen")
            self.crashes[(t.key, sig_id)] = crash


def progress_line(t, elapsed, total, triage):
    s = t.status
    unique = triage.unique(t)
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
    code, log = fuzzlib.replay(t.binary, candidate)
    if code != 0 and fuzzlib.signature(log)[2] == crash.id:
        crash.minimized = True
        return candidate
    candidate.unlink()
    return original


def merge_corpus(t, full):
    """Keeps, of the inputs this campaign added, those that add coverage.

    libFuzzer's merge (`-merge=1 CORPUS NEW`) copies into CORPUS only the
    inputs of NEW with features CORPUS lacks, so the persistent corpus grows
    from campaign to campaign and never loses an input it had. With `full`,
    the whole corpus is minimized instead (it can shrink), into a new folder
    swapped in only when the merge succeeded. Either way a failed merge
    leaves every input where it was. Returns the corpus size, or None.
    """
    env = dict(os.environ, TMPDIR=str(t.tmp))
    target_dir = t.corpus.with_name(t.corpus.name + ".merging")
    shutil.rmtree(target_dir, ignore_errors=True)
    target_dir.mkdir()
    if full:
        into, sources = target_dir, [t.corpus]
    else:
        # This campaign's inputs move aside, and come back through the merge.
        for p in t.corpus.iterdir():
            if p.name not in t.corpus_before:
                p.rename(target_dir / p.name)
        into, sources = t.corpus, [target_dir]
    # A session of its own, killed whole on timeout: a sanitizer report that
    # never finishes (seen with TSan and the scheduler's parked threads) must
    # not hold the campaign, and merge runs inputs in child processes.
    inputs = sum(count_files(d) for d in sources)
    merge = subprocess.Popen([str(t.binary), "-merge=1", "-timeout=30", "-rss_limit_mb=4096",
                              str(into)] + [str(d) for d in sources],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
                             start_new_session=True)
    try:
        ok = merge.wait(timeout=min(600, 60 + inputs)) == 0
    except subprocess.TimeoutExpired:
        os.killpg(merge.pid, signal.SIGKILL)
        merge.wait()
        ok = False
    if full:
        if ok and count_files(target_dir) > 0:
            old = t.corpus.with_name(t.corpus.name + ".old")
            shutil.rmtree(old, ignore_errors=True)
            t.corpus.rename(old)
            target_dir.rename(t.corpus)
            shutil.rmtree(old, ignore_errors=True)
        else:
            shutil.rmtree(target_dir, ignore_errors=True)
    else:
        if not ok:
            for p in target_dir.iterdir():
                if not (t.corpus / p.name).exists():
                    p.rename(t.corpus / p.name)
        shutil.rmtree(target_dir, ignore_errors=True)
    return count_files(t.corpus) if ok else None


def load_known(path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def write_reports(out, meta, targets, crashes):
    def target_row(t):
        first = t.series[0] if t.series else {}
        last = t.series[-1] if t.series else {}
        unique = [c for c in crashes if c.target is t]
        return {
            "target": t.name,
            "backend": t.backend,
            "fuzzer": t.fuzzer,
            "sanitizer": t.sanitizer,
            "config": t.config,
            "mutant": t.mutant,
            "workers": t.workers,
            "execs": last.get("execs", 0),
            "exec_per_s": t.status.get("exec_s", 0),
            "coverage_start": first.get("cov"),
            "coverage": last.get("cov"),
            "features": last.get("ft"),
            "corpus_start": t.corpus_start,
            "corpus_end": t.corpus_end,
            "corpus_after_merge": t.corpus_merged,
            "corpus_dir": str(t.corpus),
            "crash_inputs": t.crash_inputs,
            "unique_crashes": len(unique),
            "new_crashes": sum(c.new for c in unique),
            "problem": t.problem,
            "series": t.series,
        }

    rows = [target_row(t) for t in targets]
    crash_rows = [{
        "id": c.id,
        "target": c.target.name,
        "config": c.target.config,
        "mutant": c.target.mutant,
        "class": c.kind,
        "frames": c.frames,
        "new": c.new,
        "first_seen": c.first_seen,
        "inputs": len(c.inputs),
        "reproduced": c.reproduced,
        "minimized": c.minimized,
        "input": str(c.input),
        "reproduce": c.reproduce,
    } for c in crashes]
    report = dict(meta, targets=rows, crashes=crash_rows)
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")

    names = [t.label for t in targets]
    svg = svg_plot.line_panels(
        f"poolguard fuzzing campaign, {meta['started']}",
        [("coverage (edges)", "seconds", {t.label: [(p["t"], p["cov"]) for p in t.series]
                                          for t in targets}),
         ("corpus (inputs)", "seconds", {t.label: [(p["t"], p["corpus"]) for p in t.series]
                                         for t in targets})],
        names)
    (out / "coverage.svg").write_text(svg)

    fmt = lambda v: "-" if v is None else str(v)
    table = ["| target | sanitizer | workers | execs | exec/s | coverage | corpus start → end → merged "
             "| crash inputs | unique (new) |", "|---|---|---|---|---|---|---|---|---|"]
    for r, t in zip(rows, targets):
        table.append(f"| {t.label} | {r['sanitizer']} | {r['workers']} | {r['execs']} | "
                     f"{r['exec_per_s']} | {fmt(r['coverage_start'])} → {fmt(r['coverage'])} | "
                     f"{r['corpus_start']} → {fmt(r['corpus_end'])} → "
                     f"{fmt(r['corpus_after_merge'])} | {r['crash_inputs']} | "
                     f"{r['unique_crashes']} ({r['new_crashes']}) |")
    crash_md = []
    for c in crashes:
        status = "new" if c.new else f"known since {c.first_seen}"
        crash_md.append(f"### `{c.kind}` in {c.target.label} ({status})\n\n"
                        f"- signature `{c.id}`: {' ← '.join(c.frames) or '(no poolguard frame)'}\n"
                        f"- {len(c.inputs)} input(s); stored {'minimized' if c.minimized else 'as found'}:"
                        f" `{c.input}`\n- reproduce: `{c.reproduce}`\n")
    md = (f"# Fuzzing campaign {meta['started']}\n\n"
          f"{meta['minutes']} min per target, {meta['jobs']} fuzzing process(es), stopped by "
          f"{meta['stopped_by']}. Corpora in `{meta['corpus_root']}`.\n\n" + "\n".join(table) +
          "\n\n![coverage and corpus over time](coverage.svg)\n\n## Crashes\n\n" +
          ("\n".join(crash_md) if crash_md else "None.\n"))
    (out / "report.md").write_text(md)

    esc = html.escape
    html_rows = "".join(
        f"<tr><td>{esc(t.label)}</td><td>{r['sanitizer']}</td><td>{r['workers']}</td>"
        f"<td>{r['execs']}</td><td>{r['exec_per_s']}</td>"
        f"<td>{fmt(r['coverage_start'])} → {fmt(r['coverage'])}</td>"
        f"<td>{r['corpus_start']} → {fmt(r['corpus_end'])} → {fmt(r['corpus_after_merge'])}</td>"
        f"<td>{r['crash_inputs']}</td><td>{r['unique_crashes']} ({r['new_crashes']})</td></tr>"
        for r, t in zip(rows, targets))
    html_crashes = "".join(
        f"<h3><code>{esc(c.kind)}</code> in {esc(c.target.label)} "
        f"({'new' if c.new else 'known since ' + esc(str(c.first_seen))})</h3>"
        f"<p>signature <code>{c.id}</code>: {esc(' ← '.join(c.frames))}<br>"
        f"{len(c.inputs)} input(s); reproduce:</p><pre>{esc(c.reproduce or '')}</pre>"
        for c in crashes) or "<p>None.</p>"
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>poolguard fuzzing "
            f"{esc(meta['started'])}</title><style>body{{font-family:sans-serif;margin:2em}}"
            f"table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:4px 8px}}"
            f"pre{{background:#f4f4f4;padding:8px;white-space:pre-wrap}}</style></head><body>"
            f"<h1>Fuzzing campaign {esc(meta['started'])}</h1><p>{meta['minutes']} min per target, "
            f"{meta['jobs']} fuzzing process(es), stopped by {esc(meta['stopped_by'])}.</p>"
            f"<table><tr><th>target</th><th>sanitizer</th><th>workers</th><th>execs</th>"
            f"<th>exec/s</th><th>coverage</th><th>corpus start → end → merged</th>"
            f"<th>crash inputs</th><th>unique (new)</th></tr>{html_rows}</table>"
            f"{svg}<h2>Crashes</h2>{html_crashes}</body></html>\n")
    (out / "report.html").write_text(page)


def campaign(args):
    workspace = fuzzlib.workspace_dir(TOOL)
    fuzzlib.require_toolchain()
    started = time.strftime("%Y-%m-%d %H:%M:%S")
    out = fuzzlib.user_path(args.out or f"fuzz-results/{time.strftime('%Y%m%d-%H%M%S')}")
    fuzzlib.writable_dir(out, "results folder")
    state_dir = fuzzlib.writable_dir(fuzzlib.user_path(args.state_dir), "state folder")
    corpus_root = fuzzlib.writable_dir(
        fuzzlib.user_path(args.corpus_root) if args.corpus_root else state_dir / "corpus",
        "corpus folder")
    check_disk(out, "results")
    check_disk(corpus_root, "corpora")
    crash_store = fuzzlib.writable_dir(state_dir / "crashes", "crash folder")
    known_path = crash_store / "known.json"
    known = load_known(known_path)

    targets = choose_targets(args, workspace, out, corpus_root)
    # Cores are shared out among the targets; with more targets than cores,
    # each still gets one worker and the kernel time-slices them.
    share, extra = divmod(args.jobs, len(targets))
    for i, t in enumerate(targets):
        t.workers = max(1, share + (1 if i < extra else 0))
    build(targets, workspace, out)
    for t in targets:
        prepare_corpus(t, workspace)

    seconds = args.minutes * 60
    print(f"{TOOL}: {len(targets)} target(s) for {args.minutes:g} min on "
          f"{sum(t.workers for t in targets)} worker(s); corpora in {corpus_root}; "
          f"results in {out}", flush=True)
    triage = Triage(known)
    begin = time.monotonic()
    for t in targets:
        start(t, workspace, seconds)
    # Crashes are triaged while the fuzzers run, so progress shows unique
    # counts; a replay never holds up the progress lines.
    done = threading.Event()

    def triage_loop():
        while not done.wait(2):
            triage.scan(targets)

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
                    start(t, workspace, seconds - elapsed)
        lines = [progress_line(t, elapsed, seconds, triage) for t in targets]
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
        salvaged = salvage(t)
        if salvaged:
            print(f"{TOOL}: {t.label}: kept {salvaged} input(s) from unfinished jobs")
        t.corpus_end = count_files(t.corpus)
    triage.scan(targets)
    if not tty:
        print("\n".join(progress_line(t, elapsed, seconds, triage) for t in targets))

    crashes = list(triage.crashes.values())
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
        c.reproduce = fuzzlib.reproduce_command(c.target.config, c.target.mutant, c.target.name,
                                                chosen, runs=1 if c.target.exact_replay else 100)
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
        t.corpus_merged = merge_corpus(t, args.full_merge)
        shutil.rmtree(t.tmp, ignore_errors=True)

    meta = {"started": started, "minutes": args.minutes, "jobs": args.jobs,
            "stopped_by": stopped_by, "corpus_root": str(corpus_root), "workspace": str(workspace)}
    write_reports(out, meta, targets, crashes)
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
    try:
        args = parse_args(sys.argv[1:])
        sys.exit(campaign(args))
    except fuzzlib.UserError as e:
        fuzzlib.die(TOOL, str(e))
    except OSError as e:
        # A full disk or a folder that vanished: one line, and everything
        # already in the corpus folders stays (they are only ever swapped
        # whole, after a successful merge).
        where = f" ({e.filename})" if e.filename else ""
        fuzzlib.die(TOOL, f"{e.strerror or e}{where}")


if __name__ == "__main__":
    main()
