"""What the fuzzing tools share: the project's lists, builds, and crash triage.

Used by tools/fuzz.py (the campaign runner) and tools/detect.py (the detection
experiment), so both name, classify and de-duplicate failures the same way.
"""

import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

# Which fuzz target runs under which sanitizer config. The scheduled fuzzer
# replays exactly (one thread at a time, the input picks the interleaving), so
# it pairs with ASan; the free-running fuzzer runs real parallel threads for
# TSan (fuzz/BUILD says why).
FUZZERS = {
    "scheduled_fuzzer": {"config": "asan-fuzz", "sanitizer": "asan", "corpus": "scheduled",
                         "exact_replay": True},
    "free_running_fuzzer": {"config": "tsan-fuzz", "sanitizer": "tsan", "corpus": "free_running",
                            "exact_replay": False},
}

# (pattern in a run's output, class), first match wins. Oracles are the
# interpreter's own checks (fuzz/interpreter.cc): double_owner, stats_invariant,
# hang, ...
ORACLES = [
    (re.compile(r"poolguard oracle failure \[(\w+)\]"), "oracle:{0}"),
    (re.compile(r"poolguard: pool '.*' destroyed with"), "pool:destroyed_in_use"),
    (re.compile(r"ERROR: AddressSanitizer: attempting double-free"), "asan:double-free"),
    (re.compile(r"ERROR: AddressSanitizer: ([\w-]+)"), "asan:{0}"),
    (re.compile(r"ERROR: LeakSanitizer: detected memory leaks"), "lsan:leak"),
    (re.compile(r"WARNING: ThreadSanitizer: ([\w\- ]+?) \("), "tsan:{0}"),
    (re.compile(r"WARNING: ThreadSanitizer: ([\w\-]+)"), "tsan:{0}"),
    (re.compile(r"runtime error: (.*)"), "ubsan"),
    (re.compile(r"ERROR: libFuzzer: timeout"), "timeout"),
    (re.compile(r"ERROR: libFuzzer: out-of-memory"), "oom"),
    (re.compile(r"ERROR: libFuzzer: deadly signal"), "crash"),
]

# A symbolized stack frame: "    #3 0x55d1 in poolguard::fuzz::World::RunOp(...) file".
# ASan and libFuzzer print "#3 0x55d1 in f(...) file"; TSan prints "#3 f(...) file".
_FRAME = re.compile(r"^\s*#(\d+) (?:0x[0-9a-f]+ in )?(\S.*)$")

# Frames that say where a report was raised, not where the bug is: runtimes,
# the oracle's own reporting, and the fuzz scheduler a schedule point calls.
_NOISE = re.compile(r"^(__|std::|fuzzer::|abort|raise|gsignal|poolguard::fuzz::OracleFailure"
                    r"|poolguard::fuzz::\{anonymous\}::Scheduler::"
                    r"|poolguard::internal::RunSchedPointHook"
                    r"|LLVMFuzzerTestOneInput|start_thread|clone|main$|void std::|absl::)")


class UserError(Exception):
    """A mistake or a condition the user can fix: reported as one line, exit 2."""


def die(tool, message):
    print(f"{tool}: error: {message}", file=sys.stderr)
    sys.exit(2)


def workspace_dir(tool):
    """The checkout `bazel run` was started from."""
    workspace = Path(os.environ.get("BUILD_WORKSPACE_DIRECTORY", os.getcwd()))
    if not (workspace / "WORKSPACE").exists():
        raise UserError(f"{workspace} is not the poolguard workspace; run through "
                        f"'bazel run //tools:{tool}'")
    return workspace


def user_path(path):
    """A path given on the command line, relative to where the user ran `bazel run`."""
    path = Path(os.path.expanduser(path))
    if not path.is_absolute():
        path = Path(os.environ.get("BUILD_WORKING_DIRECTORY", os.getcwd())) / path
    return path


def writable_dir(path, what):
    """Creates `path` if needed and checks that files can be written there."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".poolguard-write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as e:
        raise UserError(f"{what} {path} is not writable: {e.strerror}") from None
    return path


def _bzl_list(text, name):
    match = re.search(rf"^{name} = \[(.*?)^\]", text, re.S | re.M)
    return re.findall(r'^\s*"(\w+)",', match.group(1), re.M) if match else []


def backends(workspace):
    """BACKENDS and DEFAULT_BACKEND from pool/backends.bzl, the one list."""
    text = (workspace / "pool/backends.bzl").read_text()
    names = _bzl_list(text, "BACKENDS")
    default = re.search(r'^DEFAULT_BACKEND = "(\w+)"', text, re.M)
    if not names or not default:
        raise UserError("cannot read BACKENDS from pool/backends.bzl")
    return names, default.group(1)


def mutant_catalog(workspace):
    return json.loads((workspace / "fuzz/mutants/catalog.json").read_text())


def require_toolchain():
    for tool in ("bazel", "clang"):
        if shutil.which(tool) is None:
            raise UserError(f"{tool} not found; run 'sudo tools/setup.sh' first")


def build_flags(config, mutant):
    flags = [f"--config={config}"]
    if mutant:
        flags.append(f"--//fuzz/mutants:mutant={mutant}")
    return flags


def bazel_build(workspace, config, mutant, targets, log_path=None):
    """Builds //fuzz:<target>_bin for each target; returns the bazel-bin paths."""
    cmd = ["bazel", "build"] + build_flags(config, mutant) + [f"//fuzz:{t}_bin" for t in targets]
    result = subprocess.run(cmd, cwd=workspace, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, errors="replace")
    if log_path is not None:
        log_path.write_text(result.stdout)
    if result.returncode != 0:
        sys.stderr.write(result.stdout[-4000:])
        raise UserError(f"build failed: {' '.join(cmd)}")
    return {t: workspace / f"bazel-bin/fuzz/{t}_bin" for t in targets}


def reproduce_command(config, mutant, target, input_path, runs=1):
    """One line that rebuilds the target and runs it on the input (fails if it still crashes)."""
    extra = f"-runs={runs} " if runs > 1 else ""
    return (f"bazel run {' '.join(build_flags(config, mutant))} //fuzz:{target}_bin -- "
            f"{extra}{input_path}")


def classify(log_text):
    """The class of a failure: 'asan:heap-use-after-free', 'oracle:hang', ..."""
    for pattern, name in ORACLES:
        match = pattern.search(log_text)
        if match:
            return name.format(*[g.strip().replace(" ", "-") for g in match.groups()])
    return "unknown"


def stacks(log_text):
    """Each stack of a report, as the list of poolguard functions in it.

    Sanitizer, libFuzzer and standard-library frames, argument lists and
    addresses are dropped, so the same bug reached by different inputs (or
    built at different addresses) gives the same lists.
    """
    result = []
    current = None
    for line in log_text.splitlines():
        match = _FRAME.match(line)
        if not match:
            if current is not None:
                result.append(current)
                current = None
            continue
        if current is None:
            current = []
        text = match.group(2).replace("(anonymous namespace)", "{anonymous}")
        function = text.split("(")[0].strip()  # drop the argument list
        if _NOISE.match(function) or "poolguard" not in function:
            continue
        if not current or current[-1] != function:
            current.append(function)
    if current is not None:
        result.append(current)
    return [frames for frames in result if frames]


def signature(log_text):
    """(class, frames, id): what de-duplicates crashes.

    Like ClusterFuzz's crash state: the class and the top three poolguard
    frames of the first stack (where the failure surfaced). A data race also
    names the top frame of the other access, since the same read racing with
    two different writers is two bugs.
    """
    kind = classify(log_text)
    found = stacks(log_text)
    frames = found[0][:3] if found else []
    if kind == "tsan:data-race" and len(found) > 1:
        frames = frames + ["racing with " + found[1][0]]
    digest = hashlib.sha1("\n".join([kind] + frames).encode()).hexdigest()[:12]
    return kind, frames, digest


def race_accesses(log_text):
    """For a data race, one key per access: its top three poolguard frames.

    Two race reports are the same bug when they share an access, as TSan's
    own suppress_equal_stacks judges them: one unsynchronized access racing
    with several partners (a statistic read without the lock, raced by
    Alloc(), Free() and Flush()) is one bug, reported once.
    """
    if classify(log_text) != "tsan:data-race":
        return []
    return ["\n".join(frames[:3]) for frames in stacks(log_text)[:2]]


def replay(binary, input_path, runs=1, timeout_s=60, env=None):
    """Runs `binary` on one input; returns (exit code, output). A timeout is exit -1.

    The run gets a session of its own and is killed whole on timeout (with
    the symbolizer it may have started): a sanitizer report that never
    finishes exiting must not hold up triage. What it printed still counts.
    """
    cmd = [str(binary), "-timeout=30"] + ([f"-runs={runs}"] if runs > 1 else []) + [str(input_path)]
    with tempfile.TemporaryFile() as out:
        process = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env,
                                   start_new_session=True)
        try:
            code = process.wait(timeout=timeout_s)
            note = ""
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            code, note = -1, "\n(poolguard: replay timed out)\n"
        out.seek(0)
        return code, out.read().decode(errors="replace") + note
