#!/usr/bin/env python3
"""Detection experiment: do the fuzzers find every seeded bug, and nothing in
the correct backends?

  bazel run //tools:detect -- --seeds=5 --budget_s=300 --out=DIR [--only=NAME] [--jobs=2]

For every seeded bug in MUTANTS (variants.bzl) it builds the mutant's fuzz
target (its backend, its sanitizer config, --//pool:mutant=NAME), and for
every correct backend the scheduled target under ASan and the free-running
target under TSan; --targets=LABEL,... adds fuzz targets poolguard_backend()
made anywhere (a backend in another workspace: run it as
@poolguard//tools:detect there). Each is fuzzed from the checked-in seed corpus
with --seeds different libFuzzer seeds, each run one process (one core) for at
most --budget_s seconds. It prints a table and writes DIR/detect.md and
DIR/detect.json (a list of objects: subject, kind, target, config, runs,
detected, median_s, max_s, oracle, reproduce, replays_same_failure). Each
scheduled-mode crash input is replayed --replays times to show that it fails
the same way every time.
"""

import argparse
import concurrent.futures
import json
import os
import shutil
import statistics
import subprocess
from pathlib import Path

import project
import toolbox
import triage

TOOL = "detect"


def die(message):
    toolbox.die(TOOL, message)


def bazel_build(workspace, config, mutant, target):
    try:
        toolbox.bazel_build(workspace, toolbox.build_flags(config, mutant), [target.bin_label()],
                            tool=TOOL)
    except toolbox.UserError as e:
        die(str(e))
    return ["bazel", "build"] + toolbox.build_flags(config, mutant) + [target.bin_label()]


def run_one(binary, run_dir, seed, budget_s, corpus_seed, dict_path, extra_env):
    env = dict(os.environ)
    env.update(extra_env)
    run = toolbox.fuzz_once(binary, run_dir, seed, budget_s, corpus_seed, dict_path, env=env)
    oracle = triage.classify(run.log)
    detected = (run.returncode != 0 and bool(run.artifacts)) or (run.stopped and
                                                                  oracle != "unknown")
    if run.stopped and not detected:
        detected, oracle = True, "hang:killed"
    return {
        "seed": seed,
        "detected": detected,
        "seconds": run.seconds,
        "oracle": oracle if detected else None,
        "artifact": str(run.artifacts[0]) if run.artifacts else str(run_dir / "fuzz.log"),
        "exit": run.returncode,
    }


def replay(binary, artifact, times, expected_oracle):
    """Runs a crash input `times` times; returns how many runs failed the same way."""
    same = 0
    for _ in range(times):
        try:
            result = subprocess.run([str(binary), artifact], stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, text=True, errors="replace",
                                    timeout=120)
        except subprocess.TimeoutExpired:
            continue
        if result.returncode != 0 and triage.classify(result.stdout) == expected_oracle:
            same += 1
    return same


# fuzz/schedule.h: a scheduled input starts with one priority byte per thread
# (Program::kMaxThreads of them), then the mode byte: below 128, its value % 4
# change points follow; from 128 on, random preemption.
SCHEDULE_MODE_BYTE = 4


def sequential_corpus(corpus, dest):
    """The inputs of a scheduled corpus whose schedule preempts nothing (no
    change point, no random preemption), copied into dest, made anew (an
    earlier run's copy in the same --out may be of another corpus)."""
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    for path in sorted(corpus.iterdir()):
        data = path.read_bytes()
        mode = data[SCHEDULE_MODE_BYTE] if len(data) > SCHEDULE_MODE_BYTE else 0
        if mode < 128 and mode % 4 == 0:
            shutil.copy2(path, dest / path.name)
    return dest


def feedback_comparison(rows):
    """The feedback experiment's table (markdown), or "" when none ran."""
    arms = {}
    for r in rows:
        arms.setdefault((r["subject"], r["target"]), {})[r["feedback"]] = r
    pairs = [(key, a["on"], a["off"]) for key, a in arms.items() if "on" in a and "off" in a]
    if not pairs:
        return ""
    out = ["", "## Interleaving feedback", "",
           "The same binary with the scheduled executor's interleaving feedback on and off "
           "(POOLGUARD_INTERLEAVING_FEEDBACK=0), both from the seed programs without "
           "preemptions (their sequential schedules only). Medians over every run, a miss "
           "counted as the whole budget.", "",
           "| subject | detected on | detected off | median s on | median s off | on / off |",
           "|---|---|---|---|---|---|"]
    for (subject, _), on, off in pairs:
        ratio = on["median_s_censored"] / off["median_s_censored"] if off["median_s_censored"] else 0
        out.append(f"| {subject} | {on['detected']}/{on['runs']} | {off['detected']}/{off['runs']} | "
                   f"{on['median_s_censored']} | {off['median_s_censored']} | {ratio:.2f} |")
    return "\n".join(out) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=5, help="libFuzzer seeds per subject")
    parser.add_argument("--budget_s", type=int, default=300, help="seconds per run at most")
    parser.add_argument("--out", required=True, help="results folder")
    parser.add_argument("--only", help="subjects to run, comma-separated: mutant or backend names")
    parser.add_argument("--kind", choices=["mutant", "backend"], help="only mutants, or only backends")
    parser.add_argument("--targets", help="also these fuzz targets, by label (a backend of your "
                        "own: //toy:scheduled_fuzzer_toy); each is a subject of kind 'backend'")
    parser.add_argument("--replays", type=int, default=10,
                        help="replay each scheduled-mode crash this many times (0: skip)")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1,
                        help="runs at once (each uses one core)")
    args = parser.parse_args()
    if args.seeds < 1 or args.budget_s < 1 or args.jobs < 1:
        die("--seeds, --budget_s and --jobs must be positive")

    try:
        workspace = toolbox.workspace_dir(TOOL)
        toolbox.require_toolchain()
        backends, _ = project.backends()
    except toolbox.UserError as e:
        die(str(e))
    out = Path(args.out)
    if not out.is_absolute():
        out = Path(os.environ.get("BUILD_WORKING_DIRECTORY", os.getcwd())) / out
    try:
        out.mkdir(parents=True, exist_ok=True)
        (out / ".write-test").write_text("")
        (out / ".write-test").unlink()
    except OSError as e:
        die(f"cannot write to --out={out}: {e.strerror}")

    catalog = project.mutants()
    fuzzers = project.fuzzers()
    subjects = []
    for m in catalog:
        subjects.append(dict(subject=m["name"], kind="mutant", mutant=m["name"],
                             fuzz=project.in_tree_target(m["target"], m["backend"]),
                             config=m["config"], feedback="on"))
        if m.get("feedback_experiment"):
            # The same binary with the interleaving feedback off
            # (fuzz/scheduled.cc): how much the feedback buys on a bug that
            # needs preemptions placed just so. Both arms start from the seed
            # programs without preemptions (sequential_corpus()): a seed whose
            # schedule already places them finds the bug in its replay, where
            # no feedback takes part.
            subjects[-1]["sequential"] = True
            subjects.append(dict(subjects[-1], feedback="off"))
    extra = []
    for text in [t for t in (args.targets or "").split(",") if t]:
        try:
            extra.append(project.parse_target(text))
        except ValueError as e:
            die(str(e))
    # The in-tree backends exist only in poolguard's own workspace.
    in_tree = backends if (workspace / "variants.bzl").exists() else []
    for fuzz in [project.in_tree_target(f, b) for b in in_tree for f in fuzzers] + extra:
        subjects.append(dict(subject=fuzz.backend, kind="backend", mutant=None, fuzz=fuzz,
                             config=fuzzers[fuzz.fuzzer]["config"], feedback="on"))
    if not in_tree:
        subjects = [s for s in subjects if s["kind"] == "backend"]
    for s in subjects:
        s["target"] = s["fuzz"].name
    if args.kind:
        subjects = [s for s in subjects if s["kind"] == args.kind]
    if args.only:
        wanted = [name for name in args.only.split(",") if name]
        names = sorted({m["name"] for m in catalog} | {s["subject"] for s in subjects})
        unknown = [name for name in wanted if name not in names]
        if unknown:
            die(f"no subject named '{unknown[0]}'; choose from: {', '.join(names)}")
        subjects = [s for s in subjects if s["subject"] in wanted]
    if not subjects:
        die("nothing to run with these --only/--kind choices")

    # Build each binary and keep a copy: the next build overwrites bazel-bin.
    bin_dir = out / "bin"
    bin_dir.mkdir(exist_ok=True)
    built = {}
    for s in subjects:
        name = f"{s['subject']}-{s['target']}-{s['config']}"
        s["binary"] = bin_dir / name
        s["env"] = {} if s["feedback"] == "on" else {"POOLGUARD_INTERLEAVING_FEEDBACK": "0"}
        s["label"] = s["subject"] + ("" if s["feedback"] == "on" else " (feedback off)")
        if name in built:
            s["build_cmd"] = built[name]
            continue
        print(f"detect: building {s['target']} --config={s['config']}"
              f"{' mutant ' + s['mutant'] if s['mutant'] else ''}", flush=True)
        build_cmd = bazel_build(workspace, s["config"], s["mutant"], s["fuzz"])
        shutil.copy2(s["fuzz"].bin_path(workspace), s["binary"])
        s["build_cmd"] = built[name] = " ".join(build_cmd)

    target_kind = lambda s: fuzzers[s["fuzz"].fuzzer]["corpus"]

    sequential = None  # made once, for every arm that asks for it

    def corpus_of(s):
        nonlocal sequential
        corpus = project.ROOT / "fuzz/corpus" / target_kind(s)
        if not s.get("sequential"):
            return corpus
        if sequential is None:
            sequential = sequential_corpus(corpus, out / "sequential-corpus")
        return sequential

    futures = {}
    with concurrent.futures.ThreadPoolExecutor(max_workers=args.jobs) as pool:
        for s in subjects:
            for seed in range(1, args.seeds + 1):
                arm = "" if s["feedback"] == "on" else "-nofeedback"
                run_dir = out / "runs" / f"{s['subject']}-{s['target']}{arm}" / f"seed{seed}"
                futures[pool.submit(run_one, s["binary"], run_dir, seed, args.budget_s,
                                    corpus_of(s),
                                    project.ROOT / "fuzz/pool_fuzzer.dict", s["env"])] = s
        for future in concurrent.futures.as_completed(futures):
            s = futures[future]
            r = future.result()
            r["replayed"] = None
            if (r["detected"] and args.replays > 0 and target_kind(s) == "scheduled"
                    and Path(r["artifact"]).name.startswith("crash-")):
                r["replayed"] = replay(s["binary"], r["artifact"], args.replays, r["oracle"])
            s.setdefault("results", []).append(r)
            verdict = f"{r['oracle']} after {r['seconds']} s" if r["detected"] else "nothing found"
            if r["replayed"] is not None:
                verdict += f", replays failing the same way {r['replayed']}/{args.replays}"
            print(f"detect: {s['label']:<28} {s['target']:<28} seed {r['seed']}: {verdict}",
                  flush=True)

    rows = []
    for s in subjects:
        results = sorted(s["results"], key=lambda r: r["seed"])
        hits = [r for r in results if r["detected"]]
        times = [r["seconds"] for r in hits]
        oracles = sorted({r["oracle"] for r in hits})
        reproduce = None
        if hits:
            env = "".join(f"{k}={v} " for k, v in s["env"].items())
            reproduce = (f"{s['build_cmd']} && {env}{s['fuzz'].bin_path('.')} "
                         f"{hits[0]['artifact']}")
        rows.append({
            "subject": s["subject"],
            "kind": s["kind"],
            "target": s["target"],
            "config": s["config"],
            "feedback": s["feedback"],
            "runs": len(results),
            "detected": len(hits),
            "median_s": round(statistics.median(times), 2) if times else None,
            "max_s": max(times) if times else None,
            "oracle": ",".join(oracles) if oracles else None,
            "reproduce": reproduce,
            "seconds_per_run": [r["seconds"] for r in results],
            # The median over every run, an undetected one counted as the
            # whole budget: comparable between the feedback arms even when
            # one of them misses.
            "median_s_censored": round(statistics.median(
                [r["seconds"] if r["detected"] else args.budget_s for r in results]), 2),
            # For scheduled-mode crashes: replays of each crash input that
            # failed with the same oracle, out of --replays.
            "replays_same_failure": [r["replayed"] for r in hits if r["replayed"] is not None],
        })

    (out / "detect.json").write_text(json.dumps(rows, indent=2) + "\n")
    header = ("| subject | kind | target | config | detected | median s | max s | oracle | replays |\n"
              "|---|---|---|---|---|---|---|---|---|\n")
    def replay_text(r):
        counts = r["replays_same_failure"]
        if not counts:
            return "-"
        return f"{sum(counts)}/{len(counts) * args.replays}"

    lines = []
    for r in rows:
        fmt = lambda v: "-" if v is None else str(v)
        subject = r["subject"] + ("" if r["feedback"] == "on" else " (feedback off)")
        lines.append(f"| {subject} | {r['kind']} | {r['target']} | {r['config']} | "
                     f"{r['detected']}/{r['runs']} | {fmt(r['median_s'])} | {fmt(r['max_s'])} | "
                     f"{fmt(r['oracle'])} | {replay_text(r)} |")
    repro = [f"- `{r['subject']}`{'' if r['feedback'] == 'on' else ' (feedback off)'}: "
             f"`{r['reproduce']}`" for r in rows if r["reproduce"]]
    comparison = feedback_comparison(rows)
    md = (f"# Detection experiment\n\n{args.seeds} seeds per subject, at most {args.budget_s} s "
          f"per run, one core per run, {args.jobs} run(s) at once.\n\n" + header +
          "\n".join(lines) + "\n" + comparison + "\n## Reproduce\n\n" +
          ("\n".join(repro) or "(nothing detected)") + "\n")
    (out / "detect.md").write_text(md)
    print()
    print(header + "\n".join(lines))
    print(comparison)
    for line in repro:
        print(line)
    print(f"\ndetect: wrote {out / 'detect.md'} and {out / 'detect.json'}")


if __name__ == "__main__":
    main()
