#!/usr/bin/env python3
"""Per-file line and branch coverage from llvm-cov's lcov export, and the gate.

tools/coverage.sh runs this; it reads the lcov records of every fuzz target
(one block per binary and file), unites them per file (a line is reached when
any target reached it; a branch when any target took it), leaves out the lines
the preprocessor skipped (llvm-cov's JSON export says where: for a function a
target never calls it counts them as code), and writes:

  OUT/coverage.md    the table for backends/ and pool/, the lines never reached
  OUT/coverage.json  [{file, lines, lines_hit, branches, branches_hit,
                       exempt_lines, unreached: [line, ...]}, ...]

The exclusion mechanism, the only one: a line is left out of both counts when
it carries a comment

    // coverage-exempt: <why no run of a fuzz target can reach it>

or lies between `// coverage-exempt-begin: <why>` and `// coverage-exempt-end`.
The reason is required; the report counts exempt lines per file, so that an
exclusion is visible wherever the figures are.

With --gate, the exit status is 1 when a file under backends/ has less than
95% of its lines or 90% of its branches reached.
"""

import argparse
import json
import os
import re
import sys

LINE_MIN = 95.0
BRANCH_MIN = 90.0
GATED_PREFIX = "backends/"

EXEMPT_LINE = re.compile(r"//\s*coverage-exempt:\s*(\S.*)")
EXEMPT_BEGIN = re.compile(r"//\s*coverage-exempt-begin:\s*(\S.*)")
EXEMPT_END = re.compile(r"//\s*coverage-exempt-end\b")
EXEMPT_ANY = re.compile(r"coverage-exempt")


class Error(Exception):
    pass


def parse_lcov(path, root):
    """{file: (lines {n: hit}, branches {(n, block, branch): taken})}, united."""
    files = {}
    current = None
    with open(path) as lcov:
        for raw in lcov:
            line = raw.strip()
            if line.startswith("SF:"):
                name = os.path.relpath(os.path.realpath(line[3:]), root)
                current = files.setdefault(name, ({}, {}))
            elif current is None:
                continue
            elif line.startswith("DA:"):
                number, count = line[3:].split(",")[:2]
                number = int(number)
                current[0][number] = current[0].get(number, False) or int(count) > 0
            elif line.startswith("BRDA:"):
                number, block, branch, taken = line[5:].split(",")
                key = (int(number), block, branch)
                current[1][key] = current[1].get(key, False) or (taken not in ("-", "0"))
            elif line == "end_of_record":
                current = None
    return files


def skipped_lines(json_paths, root):
    """{file: {line}}: whole lines inside the skipped regions (kind 2: an #if
    branch not compiled, or a comment) of llvm-cov's JSON exports."""
    skipped = {}
    sources = {}
    for json_path in json_paths:
        with open(json_path) as f:
            export = json.load(f)
        for data in export["data"]:
            for function in data["functions"]:
                for start, start_col, end, end_col, _, file_id, _, kind in function["regions"]:
                    if kind != 2:
                        continue
                    name = os.path.relpath(os.path.realpath(function["filenames"][file_id]), root)
                    if name not in sources:
                        try:
                            with open(os.path.join(root, name), errors="replace") as source:
                                sources[name] = source.read().split("\n")
                        except OSError:
                            sources[name] = []
                    text = sources[name]
                    lines = skipped.setdefault(name, set())
                    for n in range(start, end + 1):
                        if n - 1 >= len(text):
                            break
                        line = text[n - 1]
                        # Only lines with nothing outside the region.
                        before = line[:start_col - 1] if n == start else ""
                        after = line[end_col - 1:] if n == end else ""
                        if not before.strip() and not after.strip():
                            lines.add(n)
    return skipped


def exempt_lines(path):
    """The line numbers the exclusion comments cover; Error on a malformed one."""
    exempt = set()
    inside = None
    with open(path, errors="replace") as source:
        for number, text in enumerate(source, start=1):
            if EXEMPT_BEGIN.search(text):
                if inside is not None:
                    raise Error(f"{path}:{number}: coverage-exempt-begin inside the one at line {inside}")
                inside = number
            elif EXEMPT_END.search(text):
                if inside is None:
                    raise Error(f"{path}:{number}: coverage-exempt-end without a begin")
                exempt.update(range(inside, number + 1))
                inside = None
            elif EXEMPT_LINE.search(text):
                exempt.add(number)
            elif EXEMPT_ANY.search(text):
                raise Error(f"{path}:{number}: a coverage-exempt comment needs ': <reason>'")
            if inside is not None:
                exempt.add(number)
    if inside is not None:
        raise Error(f"{path}:{inside}: coverage-exempt-begin never ends")
    return exempt


def ranges(numbers):
    """[3, 4, 5, 9] -> '3-5, 9'."""
    spans = []
    for n in sorted(numbers):
        if spans and n == spans[-1][1] + 1:
            spans[-1][1] = n
        else:
            spans.append([n, n])
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in spans)


def percent(hit, total):
    return 100.0 * hit / total if total else 100.0


def summarize(files, root, skipped):
    rows = []
    for name in sorted(files):
        if name.startswith("..") or not (name.startswith("backends/") or name.startswith("pool/")):
            continue
        lines, branches = files[name]
        not_code = skipped.get(name, set())
        lines = {n: hit for n, hit in lines.items() if n not in not_code}
        exempt = exempt_lines(os.path.join(root, name))
        counted = {n: hit for n, hit in lines.items() if n not in exempt}
        counted_branches = {k: t for k, t in branches.items() if k[0] not in exempt}
        rows.append({
            "file": name,
            "lines": len(counted),
            "lines_hit": sum(counted.values()),
            "branches": len(counted_branches),
            "branches_hit": sum(counted_branches.values()),
            "exempt_lines": len(exempt & set(lines)),
            "unreached": sorted(n for n, hit in counted.items() if not hit),
            "branches_untaken_at": sorted({k[0] for k, t in counted_branches.items() if not t}),
        })
    return rows


def below_gate(row):
    return row["file"].startswith(GATED_PREFIX) and (
        percent(row["lines_hit"], row["lines"]) < LINE_MIN
        or percent(row["branches_hit"], row["branches"]) < BRANCH_MIN)


def markdown(rows):
    out = ["# Coverage of the fuzz targets on their corpora", "",
           f"Gate: every file under `{GATED_PREFIX}` at least {LINE_MIN:g}% of lines and "
           f"{BRANCH_MIN:g}% of branches. Exempt lines carry `// coverage-exempt: <why>`.", "",
           "| file | lines | branches | exempt lines | gate |",
           "|---|---:|---:|---:|---|"]
    for row in rows:
        gated = row["file"].startswith(GATED_PREFIX)
        verdict = ("**below**" if below_gate(row) else "ok") if gated else "-"
        out.append(f"| {row['file']} | {percent(row['lines_hit'], row['lines']):.1f}% "
                   f"({row['lines_hit']}/{row['lines']}) | "
                   f"{percent(row['branches_hit'], row['branches']):.1f}% "
                   f"({row['branches_hit']}/{row['branches']}) | {row['exempt_lines']} | {verdict} |")
    out += ["", "## Lines never reached", ""]
    for row in rows:
        if row["unreached"] or row["branches_untaken_at"]:
            out.append(f"- `{row['file']}`: lines {ranges(row['unreached']) or 'none'}; "
                       f"branches not taken both ways at {ranges(row['branches_untaken_at']) or 'none'}")
    return "\n".join(out) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lcov", required=True)
    parser.add_argument("--json", nargs="*", default=[],
                        help="llvm-cov export -format=text files, for the skipped regions")
    parser.add_argument("--out", required=True)
    parser.add_argument("--root", default=os.getcwd())
    parser.add_argument("--gate", action="store_true")
    args = parser.parse_args()
    try:
        root = os.path.realpath(args.root)
        rows = summarize(parse_lcov(args.lcov, root), args.root, skipped_lines(args.json, root))
    except (Error, OSError, ValueError, KeyError) as error:
        print(f"coverage: {error}", file=sys.stderr)
        return 2
    if not any(row["file"].startswith(GATED_PREFIX) for row in rows):
        print("coverage: no file under backends/ in the profile: nothing was measured", file=sys.stderr)
        return 2
    report = markdown(rows)
    with open(os.path.join(args.out, "coverage.md"), "w") as f:
        f.write(report)
    with open(os.path.join(args.out, "coverage.json"), "w") as f:
        json.dump(rows, f, indent=1)
    print(report)
    failing = [row["file"] for row in rows if below_gate(row)]
    print(f"coverage: report in {args.out}/coverage.md (and coverage.json, coverage.lcov)")
    if args.gate and failing:
        print(f"coverage: FAIL: below {LINE_MIN:g}% of lines or {BRANCH_MIN:g}% of branches: "
              + ", ".join(failing), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
