#!/usr/bin/env python3
"""Checks that MODULE.bazel and repositories.bzl name the same dependencies.

  python3 tools/check_versions.py      # from the workspace root (.ci/run does)

Every bazel_dep in MODULE.bazel must be a module of VERSIONS in
repositories.bzl with the same version, and every entry of VERSIONS must be
in MODULE.bazel; where VERSIONS says the installed version (the WORKSPACE
route's) differs from the module's, it must say why. Exit 1 with a line per
mismatch.
"""

import ast
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def module_deps(text):
    deps = {}
    for match in re.finditer(r"bazel_dep\((.*?)\)", text, re.S):
        args = dict(re.findall(r'(\w+)\s*=\s*"([^"]*)"', match.group(1)))
        deps[args["name"]] = args.get("version")
    return deps


def versions(text):
    tree = ast.parse(text)
    for node in tree.body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", None) == "VERSIONS":
            return ast.literal_eval(node.value)
    raise SystemExit("check_versions: no VERSIONS in repositories.bzl")


def main():
    deps = module_deps((ROOT / "MODULE.bazel").read_text())
    pinned = versions((ROOT / "repositories.bzl").read_text())
    problems = []
    by_module = {v["module"]: (repo, v) for repo, v in pinned.items()}
    for module, version in deps.items():
        if module not in by_module:
            problems.append(f"MODULE.bazel depends on {module}, which repositories.bzl does not bind")
            continue
        repo, v = by_module[module]
        if v["module_version"] != version:
            problems.append(f"{module}: MODULE.bazel says {version}, repositories.bzl says "
                            f"{v['module_version']}")
    for repo, v in pinned.items():
        if v["module"] not in deps:
            problems.append(f"repositories.bzl binds {repo} ({v['module']}), which MODULE.bazel "
                            f"does not depend on")
        if v["installed"] != v["module_version"] and not v.get("why"):
            problems.append(f"{repo}: installed {v['installed']} but the module is "
                            f"{v['module_version']}, and repositories.bzl does not say why")
    for line in problems:
        print(f"check_versions: {line}", file=sys.stderr)
    if not problems:
        print(f"check_versions: ok: {len(deps)} modules, the same in MODULE.bazel and "
              f"repositories.bzl")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
