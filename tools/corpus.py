"""A fuzz target's corpus folder: seeding, salvage and merges that never lose an input.

The corpus of each target persists outside the checkout
(~/.cache/poolguard/corpus/<target>, shared with `bazel run ..._run`), so the
next campaign resumes from it. Folders are only ever swapped whole, after a
successful merge, and a merge cut short is recovered on the next start.
"""

import os
import shutil
import signal
import subprocess

import toolbox

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


def prepare_corpus(t, seed_root):
    recover_corpus(t)
    toolbox.writable_dir(t.corpus, "corpus folder")
    if count_files(t.corpus) == 0:
        for seed in (seed_root / t.seed_kind).iterdir():
            shutil.copy2(seed, t.corpus / seed.name)
    t.corpus_start = count_files(t.corpus)
    t.corpus_before = {p.name for p in t.corpus.iterdir()}
    for folder in (t.artifacts, t.tmp):
        folder.mkdir(parents=True, exist_ok=True)


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


