#!/usr/bin/env python3
"""The fuzzer's own speed: executions per second of each fuzz target on the
checked-in corpus, and where an execution's time goes.

  bazel run //tools:fuzz_speed -- --out=DIR [--targets=LIST] [--reps=3] [--passes=2]
                                   [--baseline=REV [--baseline_targets=LABELS]
                                    [--corpus=current|baseline]]

For each target (default: every in-tree backend's scheduled target under
ASan and free-running target under TSan, the configs campaigns use; or
--targets, short names or labels as //tools:fuzz takes them) it builds the
libFuzzer binary, then:

  1. exec/s: runs the binary on every file of its checked-in corpus, each
     --passes times (libFuzzer's individual-input mode, no mutation, one
     process on one core), --reps times; the figure is the median of
     (inputs x passes) / wall time, process start-up included;
  2. the split: one more pass with POOLGUARD_EXEC_PROFILE set
     (fuzz/exec_profile.h): the share of each input's time spent decoding,
     creating and joining threads, in the scheduler's bookkeeping at schedule
     points, handing off from one thread to the next, running the ops, and
     in the oracles, with hand-offs per input and ns per hand-off. The
     profile's own clock reads inflate what it measures; read it as shares.
     Free-running targets' threads overlap, so their run is one phase.

With --baseline=REV (a commit of this repository), the same targets are also
built from REV's sources (git archive, in DIR/baseline-src) and timed on the
same corpus files, each rep running the current binary and then REV's, so
that before and after are measured side by side in one run; the rows gain
baseline, baseline_exec_per_s, baseline_samples, baseline_shares (when REV
has the profile) and speedup (exec/s now over REV's). Where REV names its
binaries otherwise (an older layout), --baseline_targets gives REV's binary
labels, one per target in --targets order (for example
//fuzz:scheduled_fuzzer_lockless_bin). --corpus=baseline runs both on REV's
checked-in corpus instead of the workspace's (an old corpus, on the old
executor and the new one).

Writes DIR/fuzz_speed.md and DIR/fuzz_speed.json (a list of objects:
target, config, inputs, exec_per_s, samples, us_per_exec, shares, ops,
hand_offs_per_exec, ns_per_hand_off, target_exec_per_s, met). The scheduled
targets' goal is 1000 exec/s per core under ASan. Run it alone: the machine's
other work is in every figure.
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import project  # noqa: E402
import toolbox  # noqa: E402

TOOL = "fuzz_speed"
PHASES = ["decode", "threads", "schedule", "handoff", "ops", "oracles", "other"]
GOAL = {"scheduled_fuzzer": 1000}


def default_targets():
    names, _ = project.backends()
    return [project.in_tree_target(f, b) for b in names for f in project.fuzzers()]


def run_inputs(binary, files, passes, env=None):
    """Wall seconds for one process running every file `passes` times."""
    cmd = [str(binary), f"-runs={passes}", "-print_final_stats=0"] + [str(f) for f in files]
    start = time.monotonic()
    r = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                       errors="replace", env=env)
    seconds = time.monotonic() - start
    if r.returncode != 0:
        raise toolbox.UserError(f"{binary.name} failed on its own corpus (exit {r.returncode}):\n"
                                f"{r.stderr[-3000:]}")
    return seconds


TOP_OPS = 5


def op_breakdown(ops):
    """The profile's {kind: [ns, count]} as shares of the ops phase."""
    total = sum(ns for ns, _ in ops.values()) or 1
    return {kind: {"share_of_ops": round(ns / total, 3), "count": count,
                   "us_each": round(ns / count / 1000, 2) if count else 0.0}
            for kind, (ns, count) in ops.items()}


def baseline_tree(workspace, rev, out):
    """REV's sources, unpacked into out/baseline-src; UserError if REV is no commit."""
    tree = out / "baseline-src"
    shutil.rmtree(tree, ignore_errors=True)
    tree.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(workspace), "archive", "--format=tar", rev],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if archive.returncode != 0:
        raise toolbox.UserError(f"--baseline: {rev!r} is not a commit of {workspace}: "
                                f"{archive.stderr.decode(errors='replace').strip()}")
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive.stdout, check=True)
    return tree


def profile_of(binary, files):
    """One profiled pass; the profile, or None if the binary has none (an old REV)."""
    with tempfile.TemporaryDirectory() as tmp:
        profile_path = Path(tmp) / "profile.json"
        env = dict(os.environ, POOLGUARD_EXEC_PROFILE=str(profile_path))
        run_inputs(binary, files, 1, env=env)
        if not profile_path.exists():
            return None
        return json.loads(profile_path.read_text())


def shares_of(profile):
    """(shares by phase, ns by phase, execs) of a profile."""
    execs = max(1, profile["execs"])
    input_ns = max(1, profile["input_ns"])
    ns = dict(profile["ns"])
    # What no phase was charged with (libFuzzer's work inside the call,
    # threads' exits) goes to "other"; overlapping charges can exceed it.
    ns["other"] = ns.get("other", 0) + max(0, input_ns - sum(ns.values()))
    total = sum(ns.values())
    return {p: round(ns.get(p, 0) / total, 3) for p in PHASES}, ns, execs


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="folder for fuzz_speed.md and fuzz_speed.json")
    ap.add_argument("--targets", default="", help="comma-separated fuzz targets (default: all)")
    ap.add_argument("--reps", type=int, default=3, help="timed runs per target (median)")
    ap.add_argument("--passes", type=int, default=2, help="runs of every input per timed run")
    ap.add_argument("--baseline", help="a commit to time side by side with the workspace")
    ap.add_argument("--baseline_targets", default="",
                    help="REV's binary labels, one per target (default: the same labels)")
    ap.add_argument("--corpus", choices=["current", "baseline"], default="current",
                    help="whose checked-in corpus both run (default: the workspace's)")
    args = ap.parse_args()
    if args.reps < 1 or args.passes < 1:
        raise toolbox.UserError("--reps and --passes must be at least 1")
    toolbox.require_toolchain()
    workspace = toolbox.workspace_dir(TOOL)
    out = toolbox.writable_dir(toolbox.user_path(args.out), "--out")
    if args.targets:
        try:
            targets = [project.parse_target(t) for t in args.targets.split(",") if t]
        except ValueError as e:
            raise toolbox.UserError(str(e)) from None
    else:
        targets = default_targets()

    if (args.baseline_targets or args.corpus == "baseline") and not args.baseline:
        raise toolbox.UserError("--baseline_targets and --corpus=baseline need --baseline=REV")
    base_labels = [l for l in args.baseline_targets.split(",") if l]
    if base_labels and len(base_labels) != len(targets):
        raise toolbox.UserError(f"--baseline_targets names {len(base_labels)} label(s) for "
                                f"{len(targets)} target(s)")
    if any(not l.startswith("//") or ":" not in l for l in base_labels):
        raise toolbox.UserError("--baseline_targets: labels of the form //package:name")
    base_tree = baseline_tree(workspace, args.baseline, out) if args.baseline else None
    bin_dir = out / "bin"
    bin_dir.mkdir(exist_ok=True)
    rows = []
    for number, target in enumerate(targets):
        config = target.spec["config"]
        builds = [("", workspace, target.bin_label(), target.bin_path(workspace))]
        if base_tree:
            label = base_labels[number] if base_labels else target.bin_label()
            package, _, name = label[2:].partition(":")
            builds.append(("-baseline", base_tree, label, base_tree / "bazel-bin" / package / name))
        binaries = []
        for suffix, tree, label, path in builds:
            print(f"{TOOL}: building {label} (--config={config})"
                  f"{' at ' + args.baseline if suffix else ''}", flush=True)
            toolbox.bazel_build(tree, toolbox.build_flags(config), [label], tool=TOOL)
            # A copy: the next build with other flags overwrites bazel-bin.
            binaries.append(bin_dir / f"{target.name}-{config}{suffix}")
            shutil.copy2(path, binaries[-1])
        binary = binaries[0]
        corpus_root = base_tree if args.corpus == "baseline" else workspace
        corpus_dir = corpus_root / "fuzz" / "corpus" / target.spec["corpus"]
        files = sorted(p for p in corpus_dir.iterdir() if p.is_file())
        if not files:
            raise toolbox.UserError(f"{corpus_dir} holds no inputs")
        samples = [[] for _ in binaries]
        for rep in range(args.reps):
            # Current and baseline in turn, on the same files: the machine's
            # drift during the run touches both alike.
            for which, b in enumerate(binaries):
                seconds = run_inputs(b, files, args.passes)
                samples[which].append(len(files) * args.passes / seconds)
                print(f"{TOOL}: {target.name}{' at ' + args.baseline if which else ''}: "
                      f"run {rep + 1}/{args.reps}: {samples[which][-1]:.0f} exec/s", flush=True)
        profile = profile_of(binary, files)
        if profile is None:
            raise toolbox.UserError(f"{binary.name} wrote no profile (POOLGUARD_EXEC_PROFILE)")
        shares, ns, execs = shares_of(profile)
        input_ns = max(1, profile["input_ns"])
        goal = GOAL.get(target.fuzzer)
        exec_per_s = statistics.median(samples[0])
        baseline = {}
        if base_tree:
            base_profile = profile_of(binaries[1], files)
            base_exec_per_s = statistics.median(samples[1])
            baseline = {
                "baseline": args.baseline,
                "baseline_exec_per_s": round(base_exec_per_s, 1),
                "baseline_samples": [round(x, 1) for x in samples[1]],
                "baseline_shares": shares_of(base_profile)[0] if base_profile else None,
                "speedup": round(exec_per_s / base_exec_per_s, 3),
            }
        rows.append({
            "target": target.name,
            "label": target.label,
            "config": config,
            "inputs": len(files),
            "corpus": args.baseline if args.corpus == "baseline" else "workspace",
            "exec_per_s": round(exec_per_s, 1),
            "samples": [round(x, 1) for x in samples[0]],
            "us_per_exec": round(1e6 / exec_per_s, 1),
            "profiled_us_per_exec": round(input_ns / execs / 1000, 1),
            "shares": shares,
            "hand_offs_per_exec": round(profile["hand_offs"] / execs, 1),
            "ns_per_hand_off": round(ns.get("handoff", 0) / profile["hand_offs"])
            if profile["hand_offs"] else None,
            "target_exec_per_s": goal,
            "met": exec_per_s >= goal if goal else None,
            # The ops phase by op kind: {kind: {share_of_ops, count, us_each}}.
            "ops": op_breakdown(profile.get("ops", {})),
            **baseline,
        })

    (out / "fuzz_speed.json").write_text(json.dumps(rows, indent=1) + "\n")
    versus = ["exec/s at " + args.baseline, "speed-up"] if args.baseline else []
    head = ["target", "config", "inputs", "exec/s"] + versus + ["µs/exec", "profiled µs/exec"] + \
        PHASES + ["hand-offs/exec", "ns/hand-off", "goal"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        goal = "-" if r["target_exec_per_s"] is None else "%d: %s" % (
            r["target_exec_per_s"], "met" if r["met"] else "MISSED")
        lines.append("| " + " | ".join(
            [r["target"], r["config"], str(r["inputs"]), "%.0f" % r["exec_per_s"]] +
            (["%.0f" % r["baseline_exec_per_s"], "%.2fx" % r["speedup"]] if args.baseline
             else []) +
            ["%.0f" % r["us_per_exec"], "%.0f" % r["profiled_us_per_exec"]] +
            ["%.1f%%" % (100 * r["shares"][p]) for p in PHASES] +
            ["%.1f" % r["hand_offs_per_exec"],
             "-" if r["ns_per_hand_off"] is None else str(r["ns_per_hand_off"]), goal]) + " |")
    table = "\n".join(lines)
    if args.baseline:
        # The split before, beside the split above.
        base_lines = ["| target at %s | " % args.baseline + " | ".join(PHASES) + " |",
                      "|" + "---|" * (len(PHASES) + 1)]
        for r in rows:
            b = r.get("baseline_shares")
            base_lines.append("| " + " | ".join(
                [r["target"]] + (["%.1f%%" % (100 * b[ph]) for ph in PHASES] if b
                                 else ["(no profile)"] * len(PHASES))) + " |")
        table += "\n\n" + "\n".join(base_lines)
    # Where the ops phase goes: the op kinds that take most of it.
    op_lines = ["| target | " + " | ".join("op %d" % (i + 1) for i in range(TOP_OPS)) + " |",
                "|" + "---|" * (TOP_OPS + 1)]
    for r in rows:
        top = sorted(r["ops"].items(), key=lambda kv: -kv[1]["share_of_ops"])[:TOP_OPS]
        cells = ["%s %.0f%% (%.0f µs each)" % (k, 100 * v["share_of_ops"], v["us_each"])
                 for k, v in top]
        op_lines.append("| " + " | ".join([r["target"]] + cells +
                                          [""] * (TOP_OPS - len(cells))) + " |")
    op_table = "\n".join(op_lines)
    md = ["# poolguard fuzzer speed", "",
          "`bazel run //tools:fuzz_speed -- %s` on %s. exec/s: "
          "median of %d runs of every checked-in corpus input %d times, one process (one core) "
          "each, start-up included. Shares: one profiled pass (fuzz/exec_profile.h); the "
          "profile's clock reads inflate them, so profiled µs/exec exceeds µs/exec." % (
              " ".join(sys.argv[1:]), time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
              args.reps, args.passes), "", table, "",
          "The ops phase by op kind (share of the ops phase, and the time of one op):", "",
          op_table, ""]
    (out / "fuzz_speed.md").write_text("\n".join(md))
    print(table)
    print(op_table)
    print(f"{TOOL}: wrote {out}/fuzz_speed.md and fuzz_speed.json")
    return 0


if __name__ == "__main__":
    toolbox.run_tool(TOOL, main)
