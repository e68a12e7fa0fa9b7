#!/usr/bin/env bash
# Adds a throwaway backend to a copy of this tree by the documented route
# (backends/README.md, "Adding a backend": a folder with backend.h and a BUILD
# calling poolguard_backend(), and its name in BACKENDS), from the template
# the example backend is (examples/toy), then checks that the tree still
# loads and that the new backend's whole suite passes, including its fuzz
# targets' corpus tests, and that --//pool:backend accepts it. CI runs it.
#
#   tools/check_new_backend.sh [NAME]
set -euo pipefail
cd "$(dirname "$0")/.."
name="${1:-throwaway}"
Name="$(tr '[:lower:]' '[:upper:]' <<<"${name:0:1}")${name:1}"
NAME="$(tr '[:lower:]' '[:upper:]' <<<"$name")"
work="$(mktemp -d)"
trap 'cd / && (cd "$work/tree" 2>/dev/null && bazel shutdown >/dev/null 2>&1); rm -rf "$work"' EXIT
fail() { echo "check_new_backend: FAIL: $*" >&2; exit 1; }

# A copy of the tracked files (what a clone would have).
mkdir "$work/tree"
git ls-files -z --cached --others --exclude-standard | xargs -0 cp --parents -t "$work/tree"
cd "$work/tree"

# 1. The folder, from the template: every "toy" becomes the new name.
mkdir "backends/$name"
for f in examples/toy/backend.h examples/toy/toy_backend.h examples/toy/BUILD; do
  out="backends/$name/$(basename "$f" | sed "s/toy/$name/")"
  # Includes are relative to the workspace root: examples/ there, this
  # tree's root here.
  sed -e 's#"toy/#"backends/toy/#g' -e "s/toy/$name/g; s/Toy/$Name/g; s/TOY/$NAME/g" \
      -e "s#@poolguard//:defs.bzl#//:defs.bzl#" "$f" >"$out"
done
# 2. Its name in BACKENDS.
python3 - "$name" <<'PY'
import re, sys
name = sys.argv[1]
path = "variants.bzl"
text = open(path).read()
text, n = re.subn(r"^(BACKENDS = \[\n)", r'\1    # A throwaway backend (tools/check_new_backend.sh).\n    "%s",\n' % name,
                  text, count=1, flags=re.M)
assert n == 1, "no BACKENDS list in variants.bzl"
open(path, "w").write(text)
PY
# Read the whole list first: `| grep -q` would close the pipe at the first
# match, and project.py's next write would then fail under pipefail.
listed="$(python3 tools/project.py backends)"
grep -qx "$name" <<<"$listed" || fail "$name is not in BACKENDS"

echo "check_new_backend: backends/$name from examples/toy; running its suite"
# The tree still loads, with a fourth backend (this once broke //tests).
bazel query //... >/dev/null || fail "the tree no longer loads with backend $name"
bazel test "//backends/$name:${name}_tests" //tests/... ||
  fail "the suite of backend $name failed"
# The production flag accepts it, and //pool links it.
bazel test --//pool:backend="$name" //tests:selected_backend_contract_test ||
  fail "--//pool:backend=$name"
echo "check_new_backend: ok: backend $name added by the documented route; its suite passes"
