"""pool_fuzz_test: a fuzz target per backend, in rules_fuzzing's shape.

rules_fuzzing cannot be downloaded here; this macro follows its conventions.
For each backend b in BACKENDS it generates:
  <name>_<b>_bin   the fuzz binary: libFuzzer under --config=asan-fuzz or
                   --config=tsan-fuzz (--//fuzz:engine=libfuzzer), else the
                   replay engine (fuzz/replay_main.cc). Tagged manual.
  <name>_<b>       a test that runs <name>_<b>_bin once over the checked-in
                   corpus: part of `bazel test //...`, in every config.
  <name>_<b>_fail<n>  the same replay with every n-th request to the system
                   failing (POOLGUARD_FAIL_EVERY_NTH=n), for each n in
                   fail_every_nth.
  <name>_<b>_run   `bazel run` launcher: fuzzes into a writable corpus
                   (default ~/.cache/poolguard/corpus/<name>_<b>) seeded from
                   the checked-in one, with the dictionary; extra arguments go
                   to libFuzzer.
and a test_suite <name> over the <name>_<b> tests.
"""

load("//pool:backends.bzl", "BACKENDS", "POOLGUARD_COPTS")

def pool_fuzz_test(name, srcs, corpus, dict = None, pool_deps = [], deps = [], variant = "", copts = [], defines = [], fail_every_nth = []):
    """Generates the targets above.

    Args:
      name: base name.
      srcs: the target's sources (defining LLVMFuzzerTestOneInput).
      corpus: a list of seed corpus files.
      dict: an optional libFuzzer dictionary.
      pool_deps: per-backend libraries (by base label), linked as <label>_<b><variant>.
      deps: ordinary dependencies.
      variant: "" (production pool) or "_sched" (schedule points compiled in).
      copts: extra compiler options.
      defines: local defines for srcs.
      fail_every_nth: replay the corpus again with failure injection at
        every n-th system request, for each n.
    """
    tests = []
    native.filegroup(name = name + "_corpus", srcs = corpus)
    for backend in BACKENDS:
        base = name + "_" + backend
        native.cc_binary(
            name = base + "_bin",
            srcs = srcs,
            copts = POOLGUARD_COPTS + copts,
            local_defines = defines,
            # += keeps select() composable (rules_fuzzing does the same).
            deps = deps + [label + "_" + backend + variant for label in pool_deps] +
                   ["//pool:pool_" + backend + variant] + select({
                "//fuzz:engine_libfuzzer": [],
                "//conditions:default": ["//fuzz:replay_main"],
            }),
            linkopts = select({
                "//fuzz:engine_libfuzzer": ["-fsanitize=fuzzer"],
                "//conditions:default": [],
            }),
            # Non-test targets are manual: `bazel build //...` need not build
            # every engine's binary; the tests below pull in what they run.
            tags = ["manual"],
        )
        native.sh_test(
            name = base,
            srcs = ["//fuzz:run_regression.sh"],
            args = ["$(rootpath :%s_bin)" % base, "$(rootpaths :%s_corpus)" % name],
            data = [
                ":" + base + "_bin",
                ":" + name + "_corpus",
            ],
            size = "medium",
            tags = ["fuzz-test"],
        )
        tests.append(base)
        for n in fail_every_nth:
            native.sh_test(
                name = "%s_fail%d" % (base, n),
                srcs = ["//fuzz:run_regression.sh"],
                args = ["$(rootpath :%s_bin)" % base, "$(rootpaths :%s_corpus)" % name],
                data = [
                    ":" + base + "_bin",
                    ":" + name + "_corpus",
                ],
                env = {"POOLGUARD_FAIL_EVERY_NTH": "%d" % n},
                size = "medium",
                tags = ["fuzz-test"],
            )
            tests.append("%s_fail%d" % (base, n))
        native.sh_binary(
            name = base + "_run",
            srcs = ["//fuzz:run_fuzzer.sh"],
            args = [
                "$(rootpath :%s_bin)" % base,
                base,
                native.package_name() + "/" + name + "_corpus",
                "$(rootpath %s)" % dict if dict else "",
            ],
            data = [":" + base + "_bin", ":" + name + "_corpus"] +
                   ([dict] if dict else []),
            tags = ["manual"],
        )
    native.test_suite(name = name, tests = tests)
