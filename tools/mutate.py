#!/usr/bin/env python3
"""Mutation testing of the backends: how many small mistakes do the fuzzers kill?

  bazel run //tools:mutate -- --out=DIR [--files=GLOB] [--operators=LIST]
      [--budget_s=S] [--seeds=N] [--jobs=N] [--sample=K] [--only=ID,...] [--list]
      [--cached_only]

Generates, from every C++ file under backends/ (tests aside), one mutant per
site and operator, deterministically, each with a stable id (the file, the
operator and a hash of the line it changes, so that an edit elsewhere keeps
it). Operators:

  delete_statement   a statement that writes shared memory, locks, unlocks,
                     holds a lock, or gives memory back, deleted
  negate_condition   if (c) / while (c) -> if (!(c))
  flip_comparison    == <-> !=, < -> <=, <= -> <, > -> >=, >= -> >
  off_by_one         an integer constant or bound n -> n + 1 and n - 1
  swap_statements    two adjacent statements that touch shared memory, swapped
  weaken_order       a memory order one step weaker (seq_cst -> acq_rel, or
                     acquire/release where it is a load/store; acq_rel ->
                     acquire or release; acquire, release -> relaxed)
  remove_barrier     a compiler barrier, a fence, a heavy barrier (membarrier)
                     or its fallback removed

Each mutant is built into a copy of the workspace (DIR/trees/jobN), its line
replaced by `#if defined(POOLGUARD_GENERATED_MUTANT) mutated #else original
#endif`, with --//pool:mutant=generated (which reaches only the fuzz build
variants, so no production build can contain one; the real tree never sees
it). Then its backend's scheduled target runs under ASan and its
free-running target under TSan (for code backends share: each backend's
that includes it, in turn), --seeds seeds of --budget_s each, from the
checked-in corpora, until one of them fails. A mutant is killed (which
oracle, after how many seconds), survived, timeout (a run that had to be
stopped without a report), did_not_build (left out of the score), or
equivalent (fuzz/mutants/equivalent.txt, with a reason; left out of the
score) or unreachable (its line is coverage-exempt: no fuzz run can reach it
by design; left out of the score and counted).

Results are cached in ~/.cache/poolguard/mutate by mutant id and a hash of
the sources it depends on, so a rerun after a change runs only what changed.
Writes DIR/mutate.md (score per file and per operator, every survivor with
its diff), DIR/mutate.json (a list of objects: id, file, line, operator,
status, oracle, seconds, reproduce) and DIR/mutate.svg (score per operator
and per file).
"""

import argparse
import concurrent.futures
import fnmatch
import functools
import hashlib
import json
import os
import random
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import coverage_report
import project
import svg_plot
import toolbox
import triage

TOOL = "mutate"
CACHE = Path(os.path.expanduser("~/.cache/poolguard/mutate"))
EQUIVALENT = Path("fuzz/mutants/equivalent.txt")
OPERATORS = ["delete_statement", "negate_condition", "flip_comparison", "off_by_one",
             "swap_statements", "weaken_order", "remove_barrier"]
SCORED_OUT = {"did_not_build", "equivalent", "unreachable", "not_run"}

# What writes shared memory, locks or gives memory back (delete_statement,
# swap_statements), and what merely reads it (swap_statements).
SHARED_WRITE = re.compile(
    r"\.(store|fetch_add|fetch_sub|fetch_or|fetch_and|exchange|compare_exchange_strong|"
    r"compare_exchange_weak)\(|__atomic_(store|exchange|fetch_\w+|compare_exchange)\w*\(|"
    r"\bAtomic(StoreN|ExchangeN|CompareExchangeN)\(|"
    r"\b(Lock|Unlock|LockForFork|UnlockAfterFork)\(\)|\bReleaseToSystem\(|\bWriteLink\(|"
    r"\bEndClaim\(|\bPushChain\w*\(|\bPush\(|\bTakeBack\w*\(|\bFreeCaches\(|\bmemcpy\(|"
    r"\bstd::copy\(|\bUnlink\(|\bFreeIndex\(|(\+\+|--)\w+_\b|\b\w+_(\[[^]]*\])? (=|\+=|-=) |"
    r"\bSpinLockHolder \w+\(|\bHolder \w+\(|\bWaitIdle\(|\bReopen\(|\bCloseAll\(\)|"
    r"\bCloseWindow\(|\bDrainAll\(|\bEmptyTransfer\(")
# A declaration with an initializer (a member's default, a local's first
# value): deleting or swapping one changes no shared memory, only what the
# compiler accepts. Lock holders are declarations too, and are kept.
DECLARATION = re.compile(r"^\s*((static|inline|const|constexpr|mutable)\s+)*[\w:]+(<[^;]*>)?"
                         r"[\s*&]+\w+( = [^;]+| ?\{[^;]*\})?;\s*$")
LOCK_HOLDER = re.compile(r"\b(SpinLockHolder|Holder) \w+\(")
SHARED_READ = re.compile(r"\.load\(|__atomic_load|\bAtomicLoadN\(|\bReadLink\(")
BARRIER = re.compile(r"\batomic_signal_fence\(|\batomic_thread_fence\(|__atomic_thread_fence\(|"
                     r"\bThreadFence\(|"
                     r"\bBarrier\(\)|\bFallbackBarrier\(\)|\bHeavyBarrier\(\)")
COMPARISONS = {" == ": " != ", " != ": " == ", " < ": " <= ", " <= ": " < ", " > ": " >= ",
               " >= ": " > "}
ORDERS = [  # (weaker-by-one-step rewrites of a memory order, given the access)
    ("std::memory_order_seq_cst", {"rmw": ["std::memory_order_acq_rel"],
                                   "load": ["std::memory_order_acquire"],
                                   "store": ["std::memory_order_release"],
                                   "fence": ["std::memory_order_acq_rel"]}),
    ("std::memory_order_acq_rel", {"any": ["std::memory_order_acquire",
                                           "std::memory_order_release"]}),
    ("std::memory_order_acquire", {"any": ["std::memory_order_relaxed"]}),
    ("std::memory_order_release", {"any": ["std::memory_order_relaxed"]}),
    ("__ATOMIC_SEQ_CST", {"rmw": ["__ATOMIC_ACQ_REL"], "load": ["__ATOMIC_ACQUIRE"],
                          "store": ["__ATOMIC_RELEASE"], "fence": ["__ATOMIC_ACQ_REL"]}),
    ("__ATOMIC_ACQ_REL", {"any": ["__ATOMIC_ACQUIRE", "__ATOMIC_RELEASE"]}),
    ("__ATOMIC_ACQUIRE", {"any": ["__ATOMIC_RELAXED"]}),
    ("__ATOMIC_RELEASE", {"any": ["__ATOMIC_RELAXED"]}),
]


def code_part(line):
    """The line without its // comment and with string literals blanked."""
    text = re.sub(r'"(\\.|[^"\\])*"', lambda m: '"' + "_" * (len(m.group(0)) - 2) + '"', line)
    cut = text.find("//")
    return text if cut < 0 else text[:cut]


def access_kind(code):
    if re.search(r"[Ff]ence\(", code):
        return "fence"
    if re.search(r"\.(fetch_\w+|exchange|compare_exchange_\w+)\(|__atomic_(fetch|exchange|"
                 r"compare)|\bAtomic(ExchangeN|CompareExchangeN)\(", code):
        return "rmw"
    if re.search(r"\.load\(|__atomic_load|\bAtomicLoadN\(", code):
        return "load"
    return "store"


class Mutant:
    def __init__(self, file, line, operator, original, mutated):
        self.file, self.line, self.operator = file, line, operator
        self.original, self.mutated = original, mutated  # lists of lines (no newline)
        self.id = ""

    def diff(self):
        return "\n".join([f"--- {self.file}:{self.line}"] + ["-" + l for l in self.original] +
                         ["+" + l for l in self.mutated])


def statement_lines(lines):
    """Indexes of lines that are whole statements of their own: code that
    ends with ';' and follows a line that ended one (or opened a block)."""
    result = []
    previous = "{"
    for i, line in enumerate(lines):
        code = code_part(line).strip()
        if not code:
            continue
        declaration = DECLARATION.match(code) and not LOCK_HOLDER.search(code)
        if code.endswith(";") and previous[-1:] in (";", "{", "}", ":") and not declaration and \
                not code.startswith(("return", "#", "static_assert", "using", "case ", "}")):
            result.append(i)
        previous = code
    return result


def skipped_lines(lines):
    """Lines the generator leaves alone: preprocessor directives, and the
    seeded-bug branch of each catalog mutant's #if block (its #else branch is
    the real code, and is mutated like any other)."""
    skipped = set()
    depth = 0
    for i, line in enumerate(lines):
        stripped = line.strip()
        if stripped.startswith("#"):
            skipped.add(i)
            if re.match(r"#\s*if", stripped):
                if depth or "POOLGUARD_MUTANT_" in stripped:
                    depth += 1
            elif re.match(r"#\s*endif", stripped) and depth:
                depth -= 1
            elif re.match(r"#\s*else", stripped) and depth == 1:
                depth = 0  # the real code of a catalog block
            continue
        if depth:
            skipped.add(i)
    return skipped


def exempt_lines(path):
    """0-based indexes of the coverage-exempt lines (tools/coverage_report.py)."""
    return {n - 1 for n in coverage_report.exempt_lines(path)}


def generate(root, files):
    mutants = []
    for rel in files:
        lines = (root / rel).read_text().split("\n")
        skipped = skipped_lines(lines)
        statements = set(statement_lines(lines))
        for i, line in enumerate(lines):
            if i in skipped:
                continue
            code = code_part(line)
            # Schedule points and the memory model's notifications
            # (pool/atomic.h) are the harness's instrumentation, not pool
            # logic: no production build has them.
            if not code.strip() or "SCHED_POINT" in code or \
                    re.search(r"\b(ProcessWideBarrierDone|BeforeLockedInstruction)\(", code):
                continue
            indent = line[:len(line) - len(line.lstrip())]
            add = lambda op, new: mutants.append(Mutant(rel, i + 1, op, [line], new))
            if i in statements and SHARED_WRITE.search(code) and not BARRIER.search(code):
                add("delete_statement", [indent + "// (deleted)"])
            if BARRIER.search(code):
                if i in statements and re.fullmatch(r"\s*[\w:]+\([^;]*\);\s*", code):
                    add("remove_barrier", [indent + "// (barrier removed)"])
                elif "HeavyBarrier()" in code and "HeavyBarrier() {" not in code:
                    add("remove_barrier", [line.replace("HeavyBarrier()",
                                                        "HeavyBarrierResult::kDone", 1)])
            for keyword in ("if", "while"):
                match = re.search(rf"\b{keyword} \((.*)\)( \{{| return| continue| break|$)", code)
                if match and match.group(1).count("(") == match.group(1).count(")"):
                    start, end = match.span(1)
                    add("negate_condition", [line[:start] + "!(" + line[start:end] + ")" +
                                             line[end:]])
            for old, new in COMPARISONS.items():
                for m in re.finditer(re.escape(old), code):
                    add("flip_comparison", [line[:m.start()] + new + line[m.end():]])
            if "static_assert" not in code and "alignas" not in code and \
                    "memory_order" not in code:
                for m in re.finditer(r"(?<![\w.])(\d+)(?![\w.])", code):
                    n = int(m.group(1))
                    for value in ([n + 1, n - 1] if n > 0 else [n + 1]):
                        add("off_by_one", [line[:m.start()] + str(value) + line[m.end():]])
            for order, rewrites in ORDERS:
                if order in code:
                    kind = access_kind(code)
                    for new in rewrites.get(kind, rewrites.get("any", [])):
                        add("weaken_order", [line.replace(order, new, 1)])
            # Two adjacent statements that touch shared memory, swapped.
            if i in statements and i + 1 in statements and i + 1 not in skipped:
                nxt = lines[i + 1]
                touches = lambda c: SHARED_WRITE.search(c) or SHARED_READ.search(c)
                same_indent = nxt[:len(nxt) - len(nxt.lstrip())] == indent
                if same_indent and touches(code) and touches(code_part(nxt)):
                    mutants.append(Mutant(rel, i + 1, "swap_statements", [line, nxt], [nxt, line]))
    # Stable ids: the file, the operator and what the mutant changes.
    seen = {}
    for m in mutants:
        key = f"{m.file}|{m.operator}|{m.original}|{m.mutated}"
        digest = hashlib.sha1(key.encode()).hexdigest()[:8]
        seen[digest] = seen.get(digest, 0) + 1
        stem = Path(m.file).stem
        m.id = f"{stem}-{m.operator}-{digest}" + ("" if seen[digest] == 1 else f"-{seen[digest]}")
    return mutants


def backends_of(rel, backends):
    """The backends whose fuzz targets test a file: its own folder's, or for
    code backends share, every backend (in variants.bzl order) that includes
    it: each uses the shared code its own way (tlcache moves batches through
    the shared list, lockless single objects), so a mutant of it is killed
    when the fuzzers of any of them kill it."""
    parts = Path(rel).parts
    if len(parts) > 1 and parts[1] in backends:
        return [parts[1]]
    header = Path(rel).with_suffix(".h").name
    users = [backend for backend in backends
             if any(header in p.read_text()
                    for p in (project.ROOT / "backends" / backend).glob("*.[ch]*"))]
    return users or backends[:1]


@functools.lru_cache(maxsize=None)
def inputs_digest(root):
    """What the fuzz runs start from, the checked-in corpora and the
    dictionary, hashed once per run of the tool (the same for every mutant)."""
    digest = hashlib.sha256()
    inputs = sorted((root / "fuzz" / "corpus").rglob("*")) + sorted((root / "fuzz").glob("*.dict"))
    for path in inputs:
        if path.is_file():
            digest.update(path.name.encode())
            digest.update(path.read_bytes())
    return digest.digest()


def source_hash(root, mutant, backends, budget_s, seeds):
    digest = hashlib.sha256(f"{mutant.id}|{budget_s}|{seeds}|{mutant.diff()}".encode())
    digest.update(",".join(backends).encode())
    for folder in ["pool", "fuzz", "backends/common"] + [f"backends/{b}" for b in backends]:
        for path in sorted((root / folder).glob("*")):
            if path.is_file() and path.suffix in (".cc", ".h", ".bzl", ""):
                digest.update(path.read_bytes())
    digest.update(inputs_digest(root))
    # The build: the variants, the macros, and the configurations' flags.
    for name in ("variants.bzl", "defs.bzl", ".bazelrc"):
        digest.update((root / name).read_bytes())
    return digest.hexdigest()[:16]


def copy_tree(root, dest):
    # Tracked files and new ones not yet added (but not the ignored ones): the
    # tree builds what the workspace would.
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                           cwd=root, capture_output=True,
                           check=True).stdout.decode().split("\0")
    for rel in files:
        if not rel or not (root / rel).is_file():
            continue
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.exists() or target.read_bytes() != (root / rel).read_bytes():
            shutil.copy2(root / rel, target)


def apply(tree, mutant, root):
    lines = (root / mutant.file).read_text().split("\n")
    i = mutant.line - 1
    n = len(mutant.original)
    assert lines[i:i + n] == mutant.original, f"{mutant.id}: source moved"
    patched = lines[:i] + ["#if defined(POOLGUARD_GENERATED_MUTANT)"] + mutant.mutated + \
        ["#else"] + mutant.original + ["#endif"] + lines[i + n:]
    (tree / mutant.file).write_text("\n".join(patched))


def restore(tree, mutant, root):
    shutil.copy2(root / mutant.file, tree / mutant.file)


def fuzz_run(binary, corpus, dict_path, seed, budget_s, workdir):
    """One libFuzzer run; returns (killed, oracle, seconds, timed_out)."""
    run = toolbox.fuzz_once(binary, workdir, seed, budget_s, corpus, dict_path, grace_s=60,
                            rss_limit_mb=4096)
    if run.returncode != 0 and run.artifacts:
        return True, triage.classify(run.log), run.seconds, False
    return False, None, run.seconds, run.stopped


class Runner:
    def __init__(self, args, root, out, backends):
        self.args, self.root, self.out, self.backends = args, root, out, backends
        self.fuzzers = project.fuzzers()
        self.trees = []
        self.lock = threading.Lock()
        self.done = self.killed = 0
        self.start = time.monotonic()
        self.total = 0

    def tree(self, job):
        tree = self.out / "trees" / f"job{job}"
        copy_tree(self.root, tree)
        return tree

    def run(self, mutant, job_tree):
        backends = backends_of(mutant.file, self.backends)
        result = {"backends": backends}
        elapsed = 0.0
        timed_out = False
        for backend in backends:
            outcome = self.run_backend(mutant, job_tree, backend)
            if outcome["status"] in ("killed", "did_not_build"):
                if outcome["seconds"] is not None:
                    outcome["seconds"] = round(elapsed + outcome["seconds"], 2)
                result.update(outcome, backend=backend)
                return result
            elapsed += outcome["seconds"]
            timed_out |= outcome["status"] == "timeout"
        result.update(status="timeout" if timed_out else "survived", oracle=None,
                      seconds=round(elapsed, 2), backend=None)
        return result

    def run_backend(self, mutant, job_tree, backend):
        """Fuzzes the mutant in one backend's two targets, each built only
        when its turn comes: most mutants die in the first, so the second
        build (the costlier part of a quick kill) is often never needed."""
        binaries = {}

        def build(fuzzer):
            target = project.in_tree_target(fuzzer, backend)
            apply(job_tree, mutant, self.root)
            try:
                toolbox.bazel_build(job_tree, toolbox.build_flags(self.fuzzers[fuzzer]["config"],
                                                                  "generated"),
                                    [target.bin_label()])
            except toolbox.UserError:
                return None
            finally:
                restore(job_tree, mutant, self.root)
            binary = self.out / "bin" / f"{mutant.id}-{backend}-{fuzzer}"
            binary.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(target.bin_path(job_tree), binary)
            return binary

        timed_out = False
        elapsed = 0.0
        for seed in range(1, self.args.seeds + 1):
            for fuzzer in ("scheduled_fuzzer", "free_running_fuzzer"):
                if fuzzer not in binaries:
                    binaries[fuzzer] = build(fuzzer)
                    if binaries[fuzzer] is None:
                        return {"status": "did_not_build", "oracle": None, "seconds": None}
                corpus = self.root / "fuzz/corpus" / self.fuzzers[fuzzer]["corpus"]
                workdir = self.out / "runs" / mutant.id / f"{backend}-{fuzzer}-seed{seed}"
                killed, oracle, seconds, t = fuzz_run(
                    binaries[fuzzer], corpus, self.root / "fuzz/pool_fuzzer.dict", seed,
                    self.args.budget_s, workdir)
                elapsed += seconds
                timed_out |= t
                if killed:
                    return {"status": "killed", "oracle": f"{fuzzer}:{oracle}",
                            "seconds": round(elapsed, 2)}
        return {"status": "timeout" if timed_out else "survived", "oracle": None,
                "seconds": round(elapsed, 2)}

    def progress(self, mutant, result):
        with self.lock:
            self.done += 1
            self.killed += result["status"] == "killed"
            spent = time.monotonic() - self.start
            left = spent / self.done * (self.total - self.done)
            print(f"mutate: {self.done}/{self.total} done, {self.killed} killed, about "
                  f"{left / 60:.0f} min left: {mutant.id} {result['status']}"
                  f"{' by ' + result['oracle'] if result.get('oracle') else ''}", flush=True)


def load_equivalent(root):
    equivalent = {}
    path = root / EQUIVALENT
    if path.exists():
        for number, line in enumerate(path.read_text().split("\n"), start=1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            mid, _, reason = line.partition(" ")
            if not reason.strip():
                raise toolbox.UserError(f"{EQUIVALENT}:{number}: '{mid}' needs a reason")
            equivalent[mid] = reason.strip()
    return equivalent


def score(rows):
    scored = [r for r in rows if r["status"] not in SCORED_OUT]
    killed = sum(r["status"] == "killed" for r in scored)
    return killed, len(scored)


def report(out, rows, mutants_by_id, args):
    def line_of(group):
        killed, total = score(group)
        counts = {s: sum(r["status"] == s for r in group) for s in
                  ("killed", "survived", "timeout", "did_not_build", "equivalent", "unreachable",
                   "not_run")}
        pct = f"{100.0 * killed / total:.1f}%" if total else "-"
        return pct, killed, total, counts

    md = ["# Mutation testing", "",
          f"`bazel run //tools:mutate -- {' '.join(sys.argv[1:])}` on {time.strftime('%Y-%m-%d')}: "
          f"{len(rows)} mutants, {args.seeds} seed(s) of {args.budget_s} s per target "
          "(scheduled under ASan, free-running under TSan).", ""]
    pct, killed, total, counts = line_of(rows)
    md += [f"**Score: {pct}** ({killed} killed of {total}; left out: "
           f"{counts['did_not_build']} did not build, {counts['equivalent']} equivalent, "
           f"{counts['unreachable']} unreachable by design; {counts['timeout']} timeouts count "
           "as not killed)."
           + (f" **Partial: {counts['not_run']} mutants not run yet** (`--cached_only`)."
              if counts["not_run"] else ""), ""]
    for title, key in (("operator", "operator"), ("file", "file")):
        md += [f"## Per {title}", "", f"| {title} | score | killed | survived | timeout | "
               "did not build | equivalent | unreachable |", "|---|---|---|---|---|---|---|---|"]
        for value in sorted({r[key] for r in rows}):
            group = [r for r in rows if r[key] == value]
            p, k, t, c = line_of(group)
            md.append(f"| {value} | {p} ({k}/{t}) | {c['killed']} | {c['survived']} | "
                      f"{c['timeout']} | {c['did_not_build']} | {c['equivalent']} | "
                      f"{c['unreachable']} |")
        md.append("")
    md += ["## Survivors", ""]
    for r in rows:
        if r["status"] in ("survived", "timeout"):
            md += [f"### `{r['id']}` ({r['status']})", "", "```diff",
                   mutants_by_id[r["id"]].diff(), "```", f"Reproduce: `{r['reproduce']}`", ""]
    (out / "mutate.md").write_text("\n".join(md) + "\n")
    (out / "mutate.json").write_text(json.dumps(rows, indent=1) + "\n")
    groups = sorted({r["operator"] for r in rows}) + sorted({Path(r["file"]).name for r in rows})
    values = {}
    for g in groups:
        group = [r for r in rows if r["operator"] == g or Path(r["file"]).name == g]
        k, t = score(group)
        values[(g, "score %")] = 100.0 * k / t if t else None
    (out / "mutate.svg").write_text(svg_plot.bar_chart(
        groups, ["score %"], values, title="Mutants killed, per operator and per file",
        ylabel="% killed"))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="results folder")
    parser.add_argument("--files", default="backends/**",
                        help="which sources to mutate (glob over paths; default backends/**)")
    parser.add_argument("--operators", default=",".join(OPERATORS),
                        help="comma-separated, of: " + ", ".join(OPERATORS))
    parser.add_argument("--budget_s", type=int, default=20, help="seconds per fuzz run")
    parser.add_argument("--seeds", type=int, default=1, help="libFuzzer seeds per target")
    parser.add_argument("--jobs", type=int, default=max(1, (os.cpu_count() or 2) // 2),
                        help="mutants at once (each builds in its own tree, runs on one core)")
    parser.add_argument("--sample", type=int, help="a deterministic sample of this many mutants")
    parser.add_argument("--only", help="comma-separated mutant ids")
    parser.add_argument("--list", action="store_true", help="print the mutants and stop")
    parser.add_argument("--cached_only", action="store_true",
                        help="run nothing: report what the result cache knows (after an "
                             "interrupted run); the rest count as not_run, out of the score")
    args = parser.parse_args()
    if args.budget_s < 1 or args.seeds < 1 or args.jobs < 1 or (args.sample or 1) < 1:
        raise toolbox.UserError("--budget_s, --seeds, --jobs and --sample must be positive")
    operators = [o for o in args.operators.split(",") if o]
    unknown = [o for o in operators if o not in OPERATORS]
    if unknown:
        raise toolbox.UserError(f"unknown operator '{unknown[0]}'; choose from "
                                + ", ".join(OPERATORS))
    root = toolbox.workspace_dir(TOOL)
    if not (root / "variants.bzl").exists():
        raise toolbox.UserError("run //tools:mutate in poolguard's own workspace")
    toolbox.require_toolchain()
    backends, _ = project.backends()
    files = subprocess.run(["git", "ls-files", "backends"], cwd=root, capture_output=True,
                           text=True, check=True).stdout.split()
    files = [f for f in files if f.endswith((".cc", ".h")) and not f.endswith("_test.cc")
             and fnmatch.fnmatch(f, args.files)]
    if not files:
        raise toolbox.UserError(f"--files={args.files} matches no source under backends/")
    mutants = [m for m in generate(root, files) if m.operator in operators]
    if args.only:
        wanted = set(args.only.split(","))
        missing = wanted - {m.id for m in mutants}
        if missing:
            raise toolbox.UserError(f"no mutant '{sorted(missing)[0]}' (see --list)")
        mutants = [m for m in mutants if m.id in wanted]
    if args.sample and args.sample < len(mutants):
        mutants = sorted(random.Random(20261202).sample(mutants, args.sample),
                         key=lambda m: (m.file, m.line, m.id))
    if args.list:
        for m in mutants:
            print(f"{m.id}\t{m.file}:{m.line}\t{m.operator}")
        return 0
    out = toolbox.writable_dir(toolbox.user_path(args.out), "--out")
    equivalent = load_equivalent(root)
    exempt = {f: exempt_lines(root / f) for f in files}
    CACHE.mkdir(parents=True, exist_ok=True)
    runner = Runner(args, root, out, backends)
    rows, todo = [], []
    for m in mutants:
        tested_by = backends_of(m.file, backends)
        row = {"id": m.id, "file": m.file, "line": m.line, "operator": m.operator,
               "backends": tested_by,
               "reproduce": f"bazel run //tools:mutate -- --only={m.id} --out=DIR "
                            f"--budget_s={args.budget_s} --seeds={args.seeds}"}
        if m.id in equivalent:
            row.update(status="equivalent", oracle=None, seconds=None, reason=equivalent[m.id])
        elif m.line - 1 in exempt[m.file]:
            row.update(status="unreachable", oracle=None, seconds=None,
                       reason="coverage-exempt: no fuzz run can reach it by design")
        else:
            row["hash"] = source_hash(root, m, tested_by, args.budget_s, args.seeds)
            cached = CACHE / f"{m.id}-{row['hash']}.json"
            if cached.exists():
                row.update(json.loads(cached.read_text()))
                row["cached"] = True
            elif args.cached_only:
                row.update(status="not_run", oracle=None, seconds=None)
            else:
                todo.append((m, row, cached))
        rows.append(row)
    print(f"mutate: {len(mutants)} mutants from {len(files)} files; {len(todo)} to run, "
          f"{len(mutants) - len(todo)} known (cache, equivalent, unreachable); "
          f"{args.jobs} at a time", flush=True)
    runner.total = len(todo)
    if todo:
        jobs = min(args.jobs, len(todo))
        print(f"mutate: copying the workspace into {out / 'trees'} ({jobs} tree(s))", flush=True)
        trees = [runner.tree(j) for j in range(jobs)]
        free = list(trees)
        free_lock = threading.Lock()

        def work(item):
            m, row, cached = item
            with free_lock:
                tree = free.pop()
            try:
                result = runner.run(m, tree)
            finally:
                with free_lock:
                    free.append(tree)
            cached.write_text(json.dumps(result))
            row.update(result)
            runner.progress(m, result)

        with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool:
            for future in [pool.submit(work, item) for item in todo]:
                future.result()
        for tree in trees:
            subprocess.run(["bazel", "shutdown"], cwd=tree, capture_output=True)
    report(out, rows, {m.id: m for m in mutants}, args)
    killed, total = score(rows)
    print(f"mutate: score {100.0 * killed / total if total else 0:.1f}% ({killed}/{total}); "
          f"wrote {out / 'mutate.md'}, mutate.json, mutate.svg", flush=True)
    return 0


if __name__ == "__main__":
    toolbox.run_tool(TOOL, main)
