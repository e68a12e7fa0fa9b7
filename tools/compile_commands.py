#!/usr/bin/env python3
"""Writes compile_commands.json at the workspace root, for clangd.

  python3 tools/compile_commands.py [TARGETS...]     # default //...

Asks Bazel for the compile commands of TARGETS (`bazel aquery`, no build),
keeps one per source file (the production variant's, when a file is built in
several), and writes them relative to Bazel's execution root, where the
external/ and bazel-out/ paths they name exist. Run `bazel build //...` once
first so that generated headers exist. The file is gitignored.
"""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def bazel(*args):
    return subprocess.run(["bazel", *args], cwd=ROOT, check=True, stdout=subprocess.PIPE,
                          text=True).stdout


def main(argv):
    targets = argv[1:] or ["//..."]
    execroot = bazel("info", "execution_root").strip()
    query = "mnemonic('CppCompile', %s)" % " + ".join(f"deps({t})" for t in targets)
    graph = json.loads(bazel("aquery", query, "--output=jsonproto", "--include_artifacts=false"))
    entries = {}
    for action in graph.get("actions", []):
        args = action.get("arguments", [])
        if "-c" not in args:
            continue
        source = args[args.index("-c") + 1]
        if source.startswith("external/"):
            continue  # Other repositories' own sources.
        output = args[args.index("-o") + 1] if "-o" in args else ""
        # Prefer the production variant of a file built in several.
        variant = any(v in output for v in ("_sched", "_fuzz", "_debug", "_uaf", "_codegen"))
        if source in entries and variant:
            continue
        entries[source] = {"directory": execroot, "arguments": args, "file": source}
    out = ROOT / "compile_commands.json"
    out.write_text(json.dumps(sorted(entries.values(), key=lambda e: e["file"]), indent=1) + "\n")
    print(f"compile_commands: {len(entries)} files -> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
