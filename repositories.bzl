"""poolguard's external repositories, for WORKSPACE builds (Bazel 4 and up).

  load("@poolguard//:repositories.bzl", "poolguard_dependencies")
  poolguard_dependencies()

binds every repository poolguard needs to a folder that tools/setup.sh
installed from Debian's packages: nothing is downloaded at build time, and a
missing folder fails with a message naming tools/setup.sh. poolguard's own
WORKSPACE and the one in examples/ call it alike.

VERSIONS names the version each binding holds; MODULE.bazel (the bzlmod
route) names the same ones, and tools/check_versions.py (in .ci/run) checks
that the two agree.
"""

load("//third_party:local_repository.bzl", "installed_repository")

# What each repository is: the version tools/setup.sh installs here
# ("installed"), and the Bazel Central Registry module and version MODULE.bazel
# names for it. Where the two versions differ, "why" says why that is sound.
VERSIONS = {
    # Abseil from Debian's source package abseil (20220623.1-1+deb12u2).
    "com_google_absl": {
        "installed": "20220623.1",
        "module": "abseil-cpp",
        "module_version": "20220623.1",
    },
    # GoogleTest from Debian's package googletest (1.12.1-0.2).
    "com_google_googletest": {
        "installed": "1.12.1",
        "module": "googletest",
        "module_version": "1.12.1",
    },
    # Debian's bazel-skylib (1.0.3-2).
    "bazel_skylib": {
        "installed": "1.0.3",
        "module": "bazel_skylib",
        "module_version": "1.0.3",
    },
    # Debian's bazel-platforms (0.0.2-2).
    "platforms": {
        "installed": "0.0.2",
        "module": "platforms",
        "module_version": "0.0.4",
        "why": "0.0.4 is the oldest platforms module on the BCR; poolguard uses only @platforms//cpu:x86_64, which both define",
    },
    # Debian's stand-in (bazel-bootstrap-source 4.2.3) for rules_cc.
    "rules_cc": {
        "installed": "stand-in",
        "module": "rules_cc",
        "module_version": "0.0.1",
        "why": "Debian's stand-in has no version; it provides cc/defs.bzl's cc_binary, cc_library and cc_test, poolguard's only use of rules_cc, which 0.0.1 (the oldest rules_cc module on the BCR) provides too",
    },
}

# Debian's stand-ins for the rule repositories Bazel 4 would otherwise fetch.
_MOCK_REPOS = [
    "rules_cc",
    "rules_java",
    "rules_proto",
    "rules_pkg",
    "remote_java_tools_linux",
]

def _coverage_tools_impl(ctx):
    # 'bazel test' needs a repository of this name whose BUILD defines these
    # two targets, even when coverage is not collected; Bazel 4 would download
    # it otherwise. 'bazel coverage' does not work with it (tools/coverage.py
    # measures coverage with clang's own tools instead).
    ctx.file("WORKSPACE", "workspace(name = \"remote_coverage_tools\")\n")
    ctx.file("BUILD", "\n".join([
        "package(default_visibility = [\"//visibility:public\"])",
        "",
        "filegroup(name = \"coverage_report_generator\")",
        "",
        "filegroup(name = \"lcov_merger\")",
        "",
    ]))

_coverage_tools = repository_rule(implementation = _coverage_tools_impl, local = True)

def poolguard_dependencies():
    """Binds every external repository poolguard uses (see the file comment)."""
    for name in _MOCK_REPOS:
        installed_repository(
            name = name,
            path = "/usr/src/bazel-bootstrap/mock_repos/" + name,
        )
    _coverage_tools(name = "remote_coverage_tools")
    installed_repository(
        name = "bazel_skylib",
        path = "/usr/share/bazel/tools/skylib",
        marker = "lib/selects.bzl",
    )
    installed_repository(
        name = "platforms",
        path = "/usr/share/bazel/tools/platforms",
        marker = "BUILD",
    )

    # Built from source so that sanitizer builds instrument absl::Mutex too.
    installed_repository(
        name = "com_google_absl",
        path = "/opt/poolguard/abseil-cpp",
        marker = "absl/base/BUILD.bazel",
    )
    installed_repository(
        name = "com_google_googletest",
        path = "/usr/src/googletest",
        build_file = Label("//third_party:googletest.BUILD"),
        marker = "googletest/src/gtest-all.cc",
    )
