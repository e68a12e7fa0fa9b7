"""Helpers every Python tool shares: errors, paths, Bazel builds, replays.

tools/fuzz.py (the campaign runner), detect.py, mutate.py, coverage.py and
bench.py all build and run through these, so they report errors, show build
progress and replay inputs the same way.
"""

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path


class UserError(Exception):
    """A mistake or a condition the user can fix: reported as one line, exit 2."""


def die(tool, message):
    print(f"{tool}: error: {message}", file=sys.stderr)
    sys.exit(2)


def run_tool(tool, main):
    """Runs main(); a UserError or an OSError becomes one line and exit 2."""
    try:
        sys.exit(main())
    except UserError as e:
        die(tool, str(e))
    except OSError as e:
        # A full disk or a folder that vanished: one line.
        where = f" ({e.filename})" if e.filename else ""
        die(tool, f"{e.strerror or e}{where}")


def workspace_dir(tool):
    """The workspace `bazel run` was started from (poolguard's, or one that uses it)."""
    workspace = Path(os.environ.get("BUILD_WORKSPACE_DIRECTORY", os.getcwd()))
    if not any((workspace / f).exists() for f in ("WORKSPACE", "WORKSPACE.bazel", "MODULE.bazel")):
        raise UserError(f"{workspace} is not a Bazel workspace; run through "
                        f"'bazel run //tools:{tool}' (or @poolguard//tools:{tool})")
    return workspace


def user_path(path):
    """A path given on the command line, relative to where the user ran `bazel run`."""
    path = Path(os.path.expanduser(str(path)))
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


def require_toolchain():
    for tool in ("bazel", "clang"):
        if shutil.which(tool) is None:
            raise UserError(f"{tool} not found; run 'sudo tools/setup.sh' first")


def build_flags(config, mutant=None):
    flags = [f"--config={config}"]
    if mutant:
        flags.append(f"--//pool:mutant={mutant}")
    return flags


# Bazel's progress lines: "[1,234 / 2,345] Compiling pool/pool.cc; 3s linux-sandbox ..."
_PROGRESS = re.compile(r"^\[([\d,]+) / ([\d,]+)\] (.*)$")


def bazel_build(workspace, flags, labels, log_path=None, tool=None, env=None):
    """`bazel build FLAGS LABELS` in `workspace`; UserError if it fails.

    With `tool`, shows Bazel's progress as it goes (one line, redrawn on a
    terminal, else a line every 15 s) and how long the build took: a cold
    build takes minutes.
    """
    cmd = ["bazel", "build", "--color=no", "--curses=no"] + flags + labels
    start = time.monotonic()
    process = subprocess.Popen(cmd, cwd=workspace, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, errors="replace", env=env)
    tty = tool is not None and sys.stdout.isatty()
    output = []
    last_shown = 0.0
    shown = False
    for line in process.stdout:
        output.append(line)
        match = _PROGRESS.match(line.rstrip("\n"))
        if tool is None or not match:
            continue
        now = time.monotonic()
        text = (f"{tool}: building: {int(now - start)} s, action {match.group(1)} of "
                f"{match.group(2)}: {match.group(3)}")
        if tty:
            width = shutil.get_terminal_size().columns - 1
            sys.stdout.write("\r\x1b[2K" + text[:width])
            sys.stdout.flush()
            shown = True
        elif now - last_shown >= 15:
            print(text, flush=True)
            last_shown = now
    code = process.wait()
    text = "".join(output)
    if log_path is not None:
        Path(log_path).write_text(text)
    if shown:
        sys.stdout.write("\r\x1b[2K")
    if code != 0:
        sys.stderr.write(text[-4000:])
        raise UserError(f"build failed: {' '.join(cmd)}")
    if tool is not None:
        print(f"{tool}: build finished in {time.monotonic() - start:.0f} s", flush=True)
    return text


def reproduce_command(config, mutant, bin_label, input_path, runs=1):
    """One line that rebuilds the binary and runs it on the input (fails if it still crashes)."""
    extra = f"-runs={runs} " if runs > 1 else ""
    return (f"bazel run {' '.join(build_flags(config, mutant))} {bin_label} -- "
            f"{extra}{input_path}")


class FuzzRun:
    """What one libFuzzer run left: its exit code, whether it had to be
    stopped, how long it took, its log and its crash files."""

    def __init__(self, returncode, stopped, seconds, log, artifacts):
        self.returncode, self.stopped, self.seconds = returncode, stopped, seconds
        self.log, self.artifacts = log, artifacts


def fuzz_once(binary, run_dir, seed, budget_s, corpus_seed, dict_path, env=None, grace_s=120,
              rss_limit_mb=8192):
    """Fuzzes `binary` for `budget_s` from a fresh copy of `corpus_seed`, in
    `run_dir` (the log in fuzz.log, crash files beside it)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    corpus = run_dir / "corpus"
    shutil.rmtree(corpus, ignore_errors=True)
    shutil.copytree(corpus_seed, corpus)
    cmd = [str(binary), f"-seed={seed}", f"-max_total_time={budget_s}", "-timeout=30",
           f"-rss_limit_mb={rss_limit_mb}", f"-artifact_prefix={run_dir}/", f"-dict={dict_path}",
           "-print_final_stats=0", str(corpus)]
    start = time.monotonic()
    stopped = False
    with open(run_dir / "fuzz.log", "w") as log:
        process = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env,
                                   start_new_session=True)
        try:
            returncode = process.wait(timeout=budget_s + grace_s)
        except subprocess.TimeoutExpired:
            # A run that outlives its budget by minutes is stuck (a sanitizer
            # report that never finished exiting, or a real hang): stop it and
            # judge it by what it printed.
            os.killpg(process.pid, signal.SIGKILL)
            returncode = process.wait()
            stopped = True
    seconds = round(time.monotonic() - start, 2)
    artifacts = sorted(p for p in run_dir.iterdir()
                       if p.name.startswith(("crash-", "timeout-", "oom-", "leak-")))
    return FuzzRun(returncode, stopped, seconds,
                   (run_dir / "fuzz.log").read_text(errors="replace"), artifacts)


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
