"""poolguard's public Bazel macros: load("@poolguard//:defs.bzl", ...).

  poolguard_backend          a pool backend in every build variant, with its
                             whole suite: the pool API built on it, the
                             contract, stress, soak and other tests, and the
                             fuzz targets. The in-tree backends
                             (backends/<name>/BUILD) and a backend in another
                             workspace call it alike: one route.
  poolguard_variant_library  code several backends share (it carries schedule
                             points and seeded bugs, so it is built in every
                             variant too), with its codegen check.
  poolguard_cc_binary        a binary per in-tree backend (benchmarks, demo).

Everything else in this file is private. The lists the macros loop over
(backends, variants, fuzz targets) are data in variants.bzl.

Every generated name is <base>_<backend>, as tcmalloc's variants.bzl names
<base>_<variant>, so that tools and corpora name a target the same way
wherever it is defined. For poolguard_backend(name = "b") in package //p:

  //p:b<v>                    the backend in variant v of VARIANTS ("",
                              "_sched", "_fuzz", "_debug", "_uaf"),
                              exporting p/backend.h as "poolguard/backend.h"
  //p:pool_b<v>               the pool API (pool/pool.h) linked with it
  //p:contract_test_b         the API contract (also _fail3_ and _fail17_:
                              every 3rd / 17th system request failing)
  //p:stress_test_b           random op programs on real threads (and
                              stress_test_debug_b, in debug mode)
  //p:soak_test_b             the soak test at its CI duration (15 s)
  //p:thread_exit_test_b, //p:fork_test_b
                              thread exit in every phase and thread churn;
                              fork() beside pool calls in flight
  //p:debug_test_b, //p:uaf_test_b, //p:limits_test_b,
  //p:failure_injection_test_b, //p:dump_test_b
                              debug mode (misuse, re-entrancy), limits,
                              failure injection, DumpPools()
  //p:codegen_test_b          production object code equals the code
                              without schedule points and debug hooks
  //p:scheduled_fuzzer_b_bin  the fuzz binaries in rules_fuzzing's shape:
  //p:scheduled_fuzzer_b      _bin (libFuzzer under --config=asan-fuzz or
  //p:scheduled_fuzzer_b_run  tsan-fuzz, else a replay engine), the corpus
                              regression test (also _fail3 and _fail17), and
                              _run (fuzzes into a persistent corpus); the
                              same for free_running_fuzzer_b
  //p:b_tests                 a test_suite of all the tests above
"""

load("@rules_cc//cc:defs.bzl", "cc_binary", "cc_library", "cc_test")
load("//:variants.bzl", "BACKENDS", "DEFAULT_BACKEND", "FUZZERS", "HARNESS_COPTS", "POOLGUARD_COPTS", "VARIANTS")

_VARIANT_NAMES = [v["name"] for v in VARIANTS]

# Users reach a backend through //pool; these may use one directly.
_BACKEND_VISIBILITY = ["//visibility:public"]

def _l(label):
    """A label of poolguard's own, valid wherever the macro is called.

    A plain string in a macro is read in the caller's repository; Label() is
    read in the repository of this file.
    """
    return str(Label(label))

_ABSL = [
    "@com_google_absl//absl/base:core_headers",
    "@com_google_absl//absl/functional:function_ref",
    "@com_google_absl//absl/status",
    "@com_google_absl//absl/status:statusor",
    "@com_google_absl//absl/strings",
    "@com_google_absl//absl/strings:str_format",
    "@com_google_absl//absl/types:span",
]

def _absl():
    return [_l(d) for d in _ABSL]

def _gtest_main():
    return _l("@com_google_googletest//:gtest_main")

def _backend_libraries(name, srcs, hdrs, deps, variant_deps, copts, visibility):
    for v in _VARIANT_NAMES:
        # backend.h, exported as "poolguard/backend.h": the one include path
        # pool/pool.h uses to reach whichever backend it is built with.
        cc_library(
            name = name + "_backend_h" + v,
            hdrs = ["backend.h"],
            include_prefix = "poolguard",
            strip_include_prefix = "/" + native.package_name(),
            deps = [":" + name + "_impl" + v],
            visibility = ["//visibility:private"],
        )
        cc_library(
            name = name + "_impl" + v,
            srcs = srcs,
            hdrs = hdrs,
            copts = copts,
            deps = deps + [d + v for d in variant_deps] + [_l("//pool:internal" + v)],
            visibility = visibility,
        )
        cc_library(
            name = name + v,
            deps = [name + "_backend_h" + v, name + "_impl" + v],
            visibility = visibility,
        )

def _pool_libraries(name):
    for v in _VARIANT_NAMES:
        cc_library(
            name = "pool_" + name + v,
            srcs = [_l("//pool:api_srcs")],
            hdrs = [_l("//pool:api_hdrs")],
            copts = POOLGUARD_COPTS,
            deps = [":" + name + v, _l("//pool:internal" + v)] + _absl(),
            visibility = ["//visibility:public"],
        )

# The op interpreter and its executors, built against one backend; which
# variants each is needed in.
_HARNESS = {
    "interpreter": {
        "srcs": ["//fuzz:interpreter.cc"],
        "hdrs": ["//fuzz:interpreter.h"],
        "harness_deps": [],
        "variants": ["", "_sched", "_fuzz", "_debug"],
    },
    "free_running": {
        "srcs": ["//fuzz:free_running.cc"],
        "hdrs": ["//fuzz:free_running.h"],
        "harness_deps": ["interpreter"],
        "variants": ["", "_fuzz", "_debug"],
    },
    "scheduled": {
        "srcs": ["//fuzz:scheduled.cc"],
        "hdrs": ["//fuzz:scheduled.h"],
        "harness_deps": ["interpreter"],
        "variants": ["_sched"],
    },
}

def _harness_libraries(name):
    for lib, spec in _HARNESS.items():
        for v in spec["variants"]:
            cc_library(
                name = lib + "_" + name + v,
                srcs = [_l(s) for s in spec["srcs"]],
                hdrs = [_l(h) for h in spec["hdrs"]],
                copts = POOLGUARD_COPTS + HARNESS_COPTS,
                linkopts = ["-pthread"],
                deps = [":%s_%s%s" % (d, name, v) for d in spec["harness_deps"]] + [
                    ":pool_" + name + v,
                    _l("//fuzz:exec_profile"),
                    _l("//fuzz:hidden_from_tsan"),
                    _l("//fuzz:op_program"),
                    _l("//fuzz:schedule"),
                    _l("//fuzz:store_buffers"),
                    _l("//pool:splitmix64"),
                ] + _absl(),
                visibility = ["//visibility:public"],
            )

# The per-backend tests: base name -> sources (in //tests), the variant of
# the pool they link, the harness libraries they use, and extras.
_TESTS = {
    "contract_test": {"srcs": ["contract_test.cc"]},
    "contract_test_fail3": {"srcs": ["contract_test.cc"], "env": {"POOLGUARD_FAIL_EVERY_NTH": "3"}},
    "contract_test_fail17": {"srcs": ["contract_test.cc"], "env": {"POOLGUARD_FAIL_EVERY_NTH": "17"}},
    "stress_test": {"srcs": ["stress_test.cc"], "harness": ["free_running"], "size": "medium"},
    "stress_test_debug": {
        "srcs": ["stress_test.cc"],
        "harness": ["free_running"],
        "variant": "_debug",
        "size": "medium",
    },
    "soak_test": {
        "srcs": ["soak_test.cc"],
        "harness": ["free_running", "interpreter"],
        "args": ["--duration=15s"],
        "size": "medium",
    },
    "debug_test": {"srcs": ["debug_test.cc"], "variant": "_debug"},
    "uaf_test": {"srcs": ["uaf_test.cc"], "variant": "_uaf"},
    "limits_test": {"srcs": ["limits_test.cc"]},
    "failure_injection_test": {"srcs": ["failure_injection_test.cc"]},
    "thread_exit_test": {"srcs": ["thread_exit_test.cc"], "size": "medium"},
    "fork_test": {"srcs": ["fork_test.cc"], "size": "medium"},
    "dump_test": {"srcs": ["dump_test.cc"]},
}

def _tests(name, srcs):
    tests = []
    for base, spec in _TESTS.items():
        v = spec.get("variant", "")
        test = base + "_" + name
        cc_test(
            name = test,
            size = spec.get("size", "small"),
            srcs = [_l("//tests:" + s) for s in spec["srcs"]],
            args = spec.get("args", []),
            env = spec.get("env", {}),
            copts = POOLGUARD_COPTS,
            # contract_test checks that BackendName() is the backend it was
            # built for (the test stringizes the name).
            local_defines = ["POOLGUARD_EXPECTED_BACKEND=" + name],
            deps = [":%s_%s%s" % (h, name, v) for h in spec.get("harness", [])] + [
                ":pool_" + name + v,
                _l("//fuzz:op_program"),
                _gtest_main(),
            ] + _absl(),
        )
        tests.append(test)
    tests.append(_codegen_test(name, srcs))
    return tests

def _codegen_test(name, srcs):
    """codegen_test_<name>: see tests/codegen_test.sh.

    Triples of (production, baseline, variant) archives: the backend's own
    sources built as production code, with the schedule-point macro
    predefined as empty, and in _sched; production, _fuzz and _sched; and
    Pool::Alloc()/Free() in production, against pool.h without its debug
    blocks, and in _debug.
    """
    builds = {
        "": (":" + name + "_impl", []),
        "_unmarked": (":" + name + "_impl", ["POOLGUARD_SCHED_POINT(kind)="]),
        "_fuzz": (":" + name + "_impl_fuzz", []),
        "_sched": (":" + name + "_impl_sched", []),
    }
    archives = []
    for build, (dep, defines) in builds.items():
        lib = "_codegen_%s%s" % (name, build)
        cc_library(
            name = lib,
            srcs = srcs + [_l("//tests:backend_instance.cc")],
            copts = POOLGUARD_COPTS,
            local_defines = defines,
            linkstatic = True,
            deps = [dep, ":" + name + "_backend_h" + build.replace("_unmarked", "")],
            tags = ["manual"],
        )
        archives.append(lib)
    for build, (variant, defines) in {
        "_pool": ("", []),
        "_pool_stripped": ("", ["POOLGUARD_CODEGEN_STRIPPED"]),
        "_pool_debug": ("_debug", []),
    }.items():
        lib = "_codegen_%s%s" % (name, build)
        cc_library(
            name = lib,
            srcs = [_l("//tests:pool_instance.cc")] +
                   ([_l("//tests:pool_stripped.h")] if build == "_pool_stripped" else []),
            copts = POOLGUARD_COPTS,
            local_defines = defines,
            linkstatic = True,
            deps = [":pool_" + name + variant],
            tags = ["manual"],
        )
        archives.append(lib)
    for lib in archives:
        native.filegroup(name = lib + "_archive", srcs = [":" + lib], tags = ["manual"])
    triples = [
        ["", "_unmarked", "_sched"],
        ["", "_fuzz", "_sched"],
        ["_pool", "_pool_stripped", "_pool_debug"],
    ]
    test = "codegen_test_" + name

    # buildifier: disable=native-sh-test (rules_shell has no Bazel 4 version; native sh_test is Bazel 4's)
    native.sh_test(
        name = test,
        size = "small",
        srcs = [_l("//tests:codegen_test.sh")],
        args = [
            "'$(locations :_codegen_%s%s_archive)'" % (name, build)
            for triple in triples
            for build in triple
        ],
        data = [":_codegen_%s%s_archive" % (name, build) for build in builds.keys()] + [
            ":_codegen_%s%s_archive" % (name, build)
            for build in ["_pool", "_pool_stripped", "_pool_debug"]
        ],
    )
    return test

def _fuzz_targets(name):
    """<fuzzer>_<name>_bin, <fuzzer>_<name> (+ _fail3, _fail17), <fuzzer>_<name>_run."""
    tests = []
    for fuzzer, spec in FUZZERS.items():
        base = fuzzer + "_" + name
        scheduled = fuzzer == "scheduled_fuzzer"
        v = "_sched" if scheduled else "_fuzz"
        harness = "scheduled" if scheduled else "free_running"
        corpus = _l("//fuzz:%s_corpus" % spec["corpus"])
        cc_binary(
            name = base + "_bin",
            srcs = [_l("//fuzz:pool_fuzzer.cc")],
            copts = POOLGUARD_COPTS,
            local_defines = [] if scheduled else ["POOLGUARD_FREE_RUNNING_FUZZER"],
            # += keeps select() composable (rules_fuzzing does the same).
            deps = [
                ":%s_%s%s" % (harness, name, v),
                ":pool_" + name + v,
                _l("//fuzz:exec_profile"),
                _l("//fuzz:op_program"),
                _l("//fuzz:schedule"),
            ] + _absl() + select({
                _l("//fuzz:engine_libfuzzer"): [],
                "//conditions:default": [_l("//fuzz:replay_main")],
            }),
            linkopts = select({
                _l("//fuzz:engine_libfuzzer"): ["-fsanitize=fuzzer"],
                "//conditions:default": [],
            }),
            # Non-test targets are manual (as in rules_fuzzing): `bazel build
            # //...` need not build every engine's binary; the tests below
            # pull in what they run.
            tags = ["manual"],
        )
        for suffix, env in [("", {}), ("_fail3", {"POOLGUARD_FAIL_EVERY_NTH": "3"}), ("_fail17", {"POOLGUARD_FAIL_EVERY_NTH": "17"})]:
            # buildifier: disable=native-sh-test (rules_shell has no Bazel 4 version; native sh_test is Bazel 4's)
            native.sh_test(
                name = base + suffix,
                size = "medium",
                srcs = [_l("//fuzz:run_regression.sh")],
                args = ["$(rootpath :%s_bin)" % base, "$(rootpaths %s)" % corpus],
                data = [":" + base + "_bin", corpus],
                env = env,
                tags = ["fuzz-test"],
            )
            tests.append(base + suffix)

        # buildifier: disable=native-sh-binary (rules_shell has no Bazel 4 version; native sh_binary is Bazel 4's)
        native.sh_binary(
            name = base + "_run",
            srcs = [_l("//fuzz:run_fuzzer.sh")],
            args = [
                "$(rootpath :%s_bin)" % base,
                base,
                "$(rootpath %s)" % _l("//fuzz:pool_fuzzer.dict"),
                "$(rootpaths %s)" % corpus,
            ],
            data = [":" + base + "_bin", corpus, _l("//fuzz:pool_fuzzer.dict")],
            tags = ["manual"],
        )
    return tests

def poolguard_backend(name, srcs = [], hdrs = [], deps = [], variant_deps = [], copts = [], visibility = None):
    """A pool backend, built in every variant, with the pool API, its tests and fuzz targets.

    The calling package must hold `backend.h`, which defines
    `poolguard::internal::Backend` (pool/backend_contract.h checks, with a
    message per missing member, what it must provide; backends/README.md
    explains each). Generates the targets the file comment lists.

    Args:
      name: the backend's name: BackendName() returns it, and every generated
        target ends in it.
      srcs: implementation files (they may use POOLGUARD_SCHED_POINT; each
        variant compiles them against //pool:internal<v>).
      hdrs: headers besides backend.h.
      deps: ordinary dependencies of the backend.
      variant_deps: poolguard_variant_library targets (by base label), linked
        as <label><v> in each variant <v>.
      copts: compiler options for the backend's own sources.
      visibility: of the backend libraries (default: public).
    """
    _backend_libraries(name, srcs, hdrs, deps, variant_deps, copts, visibility or _BACKEND_VISIBILITY)
    _pool_libraries(name)
    _harness_libraries(name)
    tests = _tests(name, srcs)
    tests += _fuzz_targets(name)
    native.test_suite(name = name + "_tests", tests = tests)

def poolguard_variant_library(name, srcs = [], hdrs = [], deps = [], variant_deps = [], copts = [], linkopts = [], visibility = None):
    """Code several backends share, built in every variant: <name><v>.

    It has schedule points and seeded bugs, so each variant is built against
    //pool:internal<v>; a backend names it in poolguard_backend's
    `variant_deps`. Also generates codegen_test_<name> (its production
    object code equals the code without schedule points).

    Args:
      name: base name.
      srcs: implementation files.
      hdrs: headers.
      deps: extra dependencies; //pool:internal<v> is always added.
      variant_deps: other poolguard_variant_library targets (by base label),
        linked as <label><v>.
      copts: extra compiler options.
      linkopts: extra linker options.
      visibility: as for cc_library (default: public).
    """
    for v in _VARIANT_NAMES:
        cc_library(
            name = name + v,
            srcs = srcs,
            hdrs = hdrs,
            copts = copts,
            linkopts = linkopts,
            deps = deps + [d + v for d in variant_deps] + [_l("//pool:internal" + v)],
            visibility = visibility or _BACKEND_VISIBILITY,
        )
    builds = {
        "": ("", []),
        "_unmarked": ("", ["POOLGUARD_SCHED_POINT(kind)="]),
        "_fuzz": ("_fuzz", []),
        "_sched": ("_sched", []),
    }
    for build, (v, defines) in builds.items():
        cc_library(
            name = "_codegen_%s%s" % (name, build),
            srcs = srcs,
            hdrs = hdrs,
            copts = copts,
            local_defines = defines,
            linkstatic = True,
            deps = deps + [d + v for d in variant_deps] + [_l("//pool:internal" + v)],
            tags = ["manual"],
        )
        native.filegroup(
            name = "_codegen_%s%s_archive" % (name, build),
            srcs = ["_codegen_%s%s" % (name, build)],
            tags = ["manual"],
        )

    # buildifier: disable=native-sh-test (rules_shell has no Bazel 4 version; native sh_test is Bazel 4's)
    native.sh_test(
        name = "codegen_test_" + name,
        size = "small",
        srcs = [_l("//tests:codegen_test.sh")],
        args = [
            "'$(locations :_codegen_%s%s_archive)'" % (name, build)
            for triple in [["", "_unmarked", "_sched"], ["", "_fuzz", "_sched"]]
            for build in triple
        ],
        data = ["_codegen_%s%s_archive" % (name, build) for build in builds.keys()],
    )

def _in_tree_pool(backend, variant = ""):
    return _l("//backends/%s:pool_%s%s" % (backend, backend, variant))

def poolguard_cc_binary(name, srcs, deps = [], harness = [], backends = BACKENDS, variant = "", copts = [], **kwargs):
    """A cc_binary per in-tree backend, <name>_<backend>, and an alias <name> to the default.

    Args:
      name: base name.
      srcs: sources, written against pool/pool.h.
      deps: dependencies besides the pool library.
      harness: harness libraries of the backend's package to link
        ("free_running", "interpreter", "scheduled").
      backends: the backends to generate for (default: all in-tree).
      variant: the build variant (default: production).
      copts: extra compiler options.
      **kwargs: passed to each cc_binary.
    """
    for backend in backends:
        cc_binary(
            name = name + "_" + backend,
            srcs = srcs,
            copts = POOLGUARD_COPTS + copts,
            deps = deps + [
                _l("//backends/%s:%s_%s%s" % (backend, h, backend, variant))
                for h in harness
            ] + [_in_tree_pool(backend, variant)],
            **kwargs
        )
    native.alias(
        name = name,
        actual = ":" + name + "_" + DEFAULT_BACKEND,
    )
