#!/usr/bin/env bash
# Installs everything poolguard needs to build and test, from Debian's package
# registry only (no other network access is assumed). Idempotent: a second run
# finds everything in place and changes nothing.
#
#   sudo tools/setup.sh        # as root, on Debian 12 (bookworm)
#
# What it provides, and where the WORKSPACE expects it:
#   /usr/bin/bazel                            Bazel 4.2.3 (package bazel-bootstrap)
#   /usr/src/bazel-bootstrap/mock_repos/*     offline stand-ins for rules_cc, rules_java, ...
#   /usr/share/bazel/tools/{skylib,platforms} bazel_skylib, platforms
#   /usr/src/googletest                       GoogleTest 1.12.1 sources
#   /opt/poolguard/abseil-cpp                 Abseil 20220623.1 sources, from Debian's source
#                                             package (built from source so that TSan sees
#                                             absl::Mutex)
#   clang 14 with ASan/TSan/UBSan/libFuzzer runtimes, llvm-symbolizer, Google Benchmark,
#   clang-format 14
#   /usr/local/bin/buildifier                 buildifier 8.2.1, from the npm package
#                                             @bazel/buildifier (checked by its sha256)
set -euo pipefail

readonly ABSL_DIR=/opt/poolguard/abseil-cpp
readonly BUILDIFIER_VERSION=8.2.1
# sha256 of the npm tarball @bazel/buildifier@8.2.1 (npm pack), which carries
# the Linux binary buildifier-linux_amd64.
readonly BUILDIFIER_TGZ_SHA256=b96ea9b13003036c801f52bee6f9b0314738f8432e5cb9d814c89f59292604ee
readonly PACKAGES=(
  bazel-bootstrap bazel-bootstrap-source bazel-skylib bazel-platforms
  clang clang-14 libclang-rt-14-dev llvm lld clang-format
  googletest libbenchmark-dev
  libjemalloc-dev libgoogle-perftools-dev libmimalloc-dev
  dpkg-dev python3 zip unzip binutils cmake ninja-build
)

say() { printf 'setup: %s\n' "$*"; }
die() { printf 'setup: error: %s\n' "$*" >&2; exit 1; }

# --- Preconditions: Debian 12, root. -----------------------------------------
if [[ ! -r /etc/os-release ]]; then
  die "cannot read /etc/os-release; poolguard's set-up supports Debian 12 (bookworm) only. On another system install Bazel 4.2.3, clang 14 with compiler-rt, GoogleTest and Abseil 20220623 sources by hand and edit the paths in WORKSPACE."
fi
# shellcheck disable=SC1091
. /etc/os-release
if [[ "${ID:-}" != debian || "${VERSION_ID:-}" != 12 ]]; then
  die "this is ${PRETTY_NAME:-an unknown system}; tools/setup.sh supports Debian 12 (bookworm) only. Install Bazel 4.2.3, clang 14 with compiler-rt, GoogleTest and Abseil 20220623 sources by hand and edit the paths in WORKSPACE."
fi
if [[ "$(id -u)" -ne 0 ]]; then
  die "must run as root to install packages: run 'sudo tools/setup.sh'."
fi
export DEBIAN_FRONTEND=noninteractive

apt_updated=0
apt_update_once() {
  if [[ $apt_updated -eq 0 ]]; then
    say "apt-get update"
    apt-get update -qq || die "apt-get update failed: is Debian's package registry reachable?"
    apt_updated=1
  fi
}

# --- Debian packages. ---------------------------------------------------------
missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done
if [[ ${#missing[@]} -gt 0 ]]; then
  apt_update_once
  say "installing: ${missing[*]}"
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null ||
    die "apt-get install failed for: ${missing[*]}"
else
  say "packages: all ${#PACKAGES[@]} already installed"
fi

# Debian's build reports "bazel no_version", so ask dpkg for the version.
bazel_version="$(dpkg-query -W -f='${Version}' bazel-bootstrap 2>/dev/null || true)"
[[ "$bazel_version" == 4.2.3* && -x /usr/bin/bazel ]] ||
  die "expected Bazel 4.2.3 from package bazel-bootstrap, found '${bazel_version:-none}'"
for d in rules_cc rules_java rules_proto rules_pkg; do
  [[ -d /usr/src/bazel-bootstrap/mock_repos/$d ]] ||
    die "missing /usr/src/bazel-bootstrap/mock_repos/$d (package bazel-bootstrap-source)"
done

# --- Abseil sources from Debian's source package. -----------------------------
if [[ -f "$ABSL_DIR/absl/base/BUILD.bazel" ]]; then
  say "abseil: sources already in $ABSL_DIR"
else
  if ! grep -rqs '^Types:.*deb-src' /etc/apt/sources.list.d/ &&
     ! grep -qs '^deb-src' /etc/apt/sources.list; then
    # Mirror the main 'deb' stanza as 'deb-src' so that 'apt-get source' works.
    src=/etc/apt/sources.list.d/poolguard-deb-src.sources
    uri="$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)"
    [[ -n "$uri" ]] || uri=http://deb.debian.org/debian
    say "adding deb-src entry $src ($uri bookworm)"
    printf 'Types: deb-src\nURIs: %s\nSuites: bookworm bookworm-updates\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
      "$uri" > "$src"
    apt_updated=0
  fi
  apt_update_once
  work="$(mktemp -d)"
  chmod 755 "$work"  # apt-get source drops privileges to _apt for the download
  trap 'rm -rf "$work"' EXIT
  say "fetching Debian source package 'abseil'"
  (cd "$work" && apt-get source --download-only -qq abseil >/dev/null) ||
    die "apt-get source abseil failed: is a deb-src entry for bookworm configured?"
  orig="$(ls "$work"/abseil_*.orig.tar.* | head -n 1)"
  [[ -f "$orig" ]] || die "no abseil orig tarball was downloaded"
  mkdir -p "$ABSL_DIR.tmp"
  tar -xf "$orig" -C "$ABSL_DIR.tmp" --strip-components=1
  [[ -f "$ABSL_DIR.tmp/absl/base/BUILD.bazel" ]] || die "$orig has no Bazel BUILD files"
  rm -rf "$ABSL_DIR" && mv "$ABSL_DIR.tmp" "$ABSL_DIR"
  say "abseil: unpacked $(basename "$orig") into $ABSL_DIR"
fi

# --- buildifier, from npm's registry (the only other registry reachable). -----
if [[ "$(buildifier --version 2>/dev/null)" == *"$BUILDIFIER_VERSION"* ]]; then
  say "buildifier: $BUILDIFIER_VERSION already installed"
else
  if ! command -v npm >/dev/null; then
    apt_update_once
    apt-get install -y -qq --no-install-recommends npm >/dev/null || die "apt-get install npm failed"
  fi
  npm_work="$(mktemp -d)"
  (cd "$npm_work" && npm pack --silent "@bazel/buildifier@$BUILDIFIER_VERSION" >/dev/null) ||
    die "npm pack @bazel/buildifier@$BUILDIFIER_VERSION failed: is npm's registry reachable?"
  tgz="$npm_work/bazel-buildifier-$BUILDIFIER_VERSION.tgz"
  echo "$BUILDIFIER_TGZ_SHA256  $tgz" | sha256sum --check --quiet ||
    die "the npm tarball of @bazel/buildifier@$BUILDIFIER_VERSION does not have the expected sha256"
  tar -xzf "$tgz" -C "$npm_work" package/buildifier-linux_amd64
  install -m 755 "$npm_work/package/buildifier-linux_amd64" /usr/local/bin/buildifier
  rm -rf "$npm_work"
  say "buildifier: installed $(buildifier --version | head -n 1)"
fi

[[ -f /usr/src/googletest/googletest/src/gtest-all.cc ]] ||
  die "missing /usr/src/googletest (package googletest)"

say "done: bazel ${bazel_version}, $(clang --version | head -n 1)"
say "next: 'bazel test //...' runs the tests; see README.md"
