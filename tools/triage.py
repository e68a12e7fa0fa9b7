"""Crash triage: what a failure is, which failures are the same bug, and the
campaign's live replay of crash inputs.

classify() names a failure by its report ('asan:heap-use-after-free',
'oracle:hang', 'tsan:data-race', ...); signature() de-duplicates by the class
and the top poolguard frames, as ClusterFuzz's crash state does. Used by
tools/fuzz.py, detect.py and mutate.py alike.
"""

import hashlib
import re
import threading

import toolbox

ARTIFACT_PREFIXES = ("crash-", "timeout-", "oom-", "leak-")
# Fork mode keeps fuzzing after a crash, so one bug can leave hundreds of
# inputs; a sample of each target's names them all.
MAX_TRIAGED_PER_TARGET = 50

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
    # libStdC++'s assertions (_GLIBCXX_ASSERTIONS, the scheduled fuzz variant).
    (re.compile(r"include/c\+\+/\d+/(\w+):\d+: .*Assertion '"), "libstdc++:{0}"),
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
        self.accesses = []  # a data race's accesses (race_accesses)
        self.reproduced = None
        self.input = None
        self.reproduce = None


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
                    if t.crash_inputs <= MAX_TRIAGED_PER_TARGET:
                        self.add(t, t.artifacts / name)

    def add(self, t, path):
        # A free-running (TSan) failure depends on real timing: run the input
        # many times before calling it irreproducible.
        runs = 1 if t.exact_replay else 50
        attempts = 1 if t.exact_replay else 3
        log, code = "", 0
        for _ in range(attempts):
            code, log = toolbox.replay(t.binary, path, runs=runs)
            if code != 0:
                break
        if code == 0:
            # Keep the fuzzer's verdict: it saw the input fail once.
            log = f"(input did not fail again in {runs * attempts} runs: a rare interleaving)\n"
        kind, frames, sig_id = signature(log)
        accesses = set(race_accesses(log))
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


