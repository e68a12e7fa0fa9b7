#!/usr/bin/env python3
"""The project's lists and target names, for every tool and script.

The lists live in one place, variants.bzl (plain Starlark literals, which are
Python literals too): the backends, the build variants, the seeded-bug
catalog and the fuzz targets. Python tools import this module; shell scripts
run it:

  python3 tools/project.py backends      # one in-tree backend per line
  python3 tools/project.py default-backend
  python3 tools/project.py mutants       # one seeded bug per line
  python3 tools/project.py fuzz-targets  # every in-tree fuzz target's label
  python3 tools/project.py variant-defines _sched  # a build variant's defines
  python3 tools/project.py harness-copts # extra options of the op interpreter and executors
"""

import ast
import sys
from pathlib import Path

# poolguard's own tree: where variants.bzl, the corpora and the dictionary
# are, also when a tool runs from another workspace (bazel run
# @poolguard//tools:fuzz): runfiles are symlinks into it.
ROOT = Path(__file__).resolve().parent.parent


def lists(root=ROOT):
    """Every top-level assignment of variants.bzl, as Python values."""
    path = root / "variants.bzl"
    tree = ast.parse(path.read_text(), str(path))
    values = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and \
                isinstance(node.targets[0], ast.Name):
            values[node.targets[0].id] = ast.literal_eval(node.value)
    return values


def backends(root=ROOT):
    """(BACKENDS, DEFAULT_BACKEND)."""
    v = lists(root)
    return v["BACKENDS"], v["DEFAULT_BACKEND"]


def mutants(root=ROOT):
    """The seeded-bug catalog: a list of dicts (name, backend, target, config, expect, summary)."""
    return lists(root)["MUTANTS"]


def fuzzers(root=ROOT):
    """Fuzz target kinds: name -> {config, sanitizer, corpus, exact_replay}."""
    return lists(root)["FUZZERS"]


def backend_package(backend):
    """The package of an in-tree backend, where poolguard_backend() put its targets."""
    return f"//backends/{backend}"


class FuzzTarget:
    """One fuzz target of one backend: `<fuzzer>_<backend>` in some package.

    In-tree targets are named by their short name (scheduled_fuzzer_lockless);
    any target made by poolguard_backend(), also in another workspace, by its
    label (//toy:scheduled_fuzzer_toy, @repo//pkg:free_running_fuzzer_x).
    """

    def __init__(self, label, fuzzer, backend):
        self.label = label
        self.fuzzer = fuzzer
        self.backend = backend
        self.name = label.rsplit(":", 1)[1]
        self.spec = fuzzers()[fuzzer]

    def bin_label(self):
        return self.label + "_bin"

    def bin_path(self, workspace):
        """Where `bazel build` leaves <label>_bin, under the workspace's bazel-bin."""
        repo, _, rest = self.label.partition("//")
        package, _, name = rest.partition(":")
        base = Path(workspace) / "bazel-bin"
        if repo.startswith("@") and repo != "@":
            base = base / "external" / repo[1:]
        return base / package / (name + "_bin")

    def __repr__(self):
        return f"FuzzTarget({self.label})"


def in_tree_target(fuzzer, backend):
    return FuzzTarget(f"{backend_package(backend)}:{fuzzer}_{backend}", fuzzer, backend)


def parse_target(text):
    """A FuzzTarget from a short in-tree name or a label; ValueError if it is neither."""
    kinds = fuzzers()
    if "//" in text or ":" in text:
        label = text if "//" in text else "//" + text
        name = label.rsplit(":", 1)[-1] if ":" in label else label.rsplit("/", 1)[-1]
        if ":" not in label:
            label = f"{label}:{name}"
        for fuzzer in kinds:
            if name.startswith(fuzzer + "_") and len(name) > len(fuzzer) + 1:
                return FuzzTarget(label, fuzzer, name[len(fuzzer) + 1:])
        raise ValueError(f"'{text}' is not a fuzz target made by poolguard_backend() "
                         f"(its name must be <fuzzer>_<backend>, <fuzzer> one of "
                         f"{', '.join(kinds)})")
    names, _ = backends()
    for fuzzer in kinds:
        for backend in names:
            if text == f"{fuzzer}_{backend}":
                return in_tree_target(fuzzer, backend)
    raise ValueError(f"no fuzz target named '{text}'")


def main(argv):
    if len(argv) == 3 and argv[1] == "variant-defines":
        found = [v["defines"] for v in lists()["VARIANTS"] if v["name"] == argv[2]]
        if not found:
            print(f"project.py: no variant named '{argv[2]}'", file=sys.stderr)
            return 2
        print("\n".join(found[0]))
        return 0
    if len(argv) != 2 or argv[1] not in ("backends", "default-backend", "mutants",
                                         "fuzz-targets", "harness-copts"):
        print(__doc__.split("\n\n")[2], file=sys.stderr)
        return 2
    if argv[1] == "backends":
        print("\n".join(backends()[0]))
    elif argv[1] == "default-backend":
        print(backends()[1])
    elif argv[1] == "mutants":
        print("\n".join(m["name"] for m in mutants()))
    elif argv[1] == "harness-copts":
        print("\n".join(lists()["HARNESS_COPTS"]))
    else:
        print("\n".join(in_tree_target(f, b).label for f in fuzzers() for b in backends()[0]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
