"""The list of pool backends, and the macros that expand it into targets.

One list drives every configuration (the pattern of tcmalloc's variants.bzl):
adding a backend is one new folder `backends/<name>/` that calls
`pool_backend_library`, plus one entry in BACKENDS below.

Each backend is built in the variants of VARIANTS below: production, "_sched"
with schedule points compiled in for the fuzz scheduler, and the misuse-
detecting "_debug" and "_uaf" builds. For a backend `b` and variant `v`,
these macros generate:
  //backends/b:b<v>           the backend, exporting "poolguard/backend.h"
  //pool:pool_b<v>            the pool API linked with backend b
  <name>_b<v>                 from pool_cc_library / pool_cc_test / pool_cc_binary
  <name>                      (tests) a test_suite over every backend's <name>_b<v>
while //pool (//pool:pool) follows the --//pool:backend flag, and the variant
--//pool:debug=off|on|uaf (off: production).
"""

# Every backend users can pick with --//pool:backend. The seeded-bug variants
# (fuzz/mutants) are deliberately not here: they are never a production choice.
BACKENDS = [
    # Free list under one lock (a spinlock: see backends/locked/locked_backend.h).
    "locked",
    # DWCAS {head, counts} free list with a claim protocol; flush/gc under a spinlock.
    "lockless",
    # Per-thread array caches in front of a lockless shared list (the default).
    "tlcache",
]

# The backend //pool links when --//pool:backend is not given.
DEFAULT_BACKEND = "tlcache"

# Build variants of every backend and of the code above it, by target-name
# suffix. Each maps to a //pool:internal<suffix> library whose `defines`
# propagate to everything built on it, so one binary never mixes variants.
VARIANTS = [
    # Production: schedule points compile to nothing.
    "",
    # Fuzz scheduling: POOLGUARD_SCHEDULE_POINTS, schedule points call the
    # scheduler's hook (and seeded bugs can be switched on: fuzz/mutants).
    "_sched",
    # Debug mode: POOLGUARD_DEBUG, the Pool layer checks every Free() and
    # Alloc() for misuse (double free, foreign pointer, wrong pool, write after
    # free) and reports it naming the pool and the call sites.
    "_debug",
    # Use-after-free hunting: POOLGUARD_DEBUG and POOLGUARD_UAF, each object
    # gets pages of its own, unmapped as soon as it is freed.
    "_uaf",
]

# The variants pool_cc_library generates by default: code built on the pool
# (the fuzz interpreter and executors) is needed in production and _sched
# builds only; a target that wants a debug build asks for it (variants=).
LIBRARY_VARIANTS = ["", "_sched"]

# Warnings for poolguard's own code (not for external repositories).
POOLGUARD_COPTS = [
    "-Wall",
    "-Wextra",
    "-Wno-unused-parameter",
    "-Wthread-safety",
    "-Werror=thread-safety",
]

# Users reach a backend through //pool; these packages may use one directly.
_BACKEND_VISIBILITY = [
    "//bench:__pkg__",
    "//pool:__pkg__",
    "//fuzz:__subpackages__",
    "//tests:__subpackages__",
    "//tools:__subpackages__",
]

def pool_variant_library(name, srcs = [], hdrs = [], deps = [], copts = [], visibility = None, **kwargs):
    """A library of backend code in every variant of VARIANTS: <name><v>.

    For code two backends share (such as //backends/lockless:shared_free_list,
    which the tlcache backend uses as its shared level): it has schedule points
    and seeded bugs, so each variant must be built against //pool:internal<v>.
    A backend names it in pool_backend_library's `variant_deps`.

    Args:
      name: base name.
      srcs: implementation files.
      hdrs: headers.
      deps: extra dependencies; //pool:internal<v> is always added.
      copts: extra compiler options.
      visibility: as for cc_library (default: the backends' own visibility).
      **kwargs: passed to cc_library.
    """
    for v in VARIANTS:
        native.cc_library(
            name = name + v,
            srcs = srcs,
            hdrs = hdrs,
            copts = POOLGUARD_COPTS + copts,
            deps = deps + ["//pool:internal" + v],
            visibility = visibility or _BACKEND_VISIBILITY,
            **kwargs
        )

def pool_backend_library(name, srcs = [], hdrs = [], deps = [], variant_deps = [], copts = [], **kwargs):
    """A backend: `backend.h` in the calling package is exported as "poolguard/backend.h".

    backend.h must define `poolguard::internal::Backend`, the backend class that
    pool/pool.h holds by value; backends/README.md lists what it must provide.
    Generates <name><v> for every variant v of VARIANTS, plus their parts
    <name>_impl<v> (the implementation, usable directly by benchmarks).

    Args:
      name: the backend's name, equal to its folder name and its BACKENDS entry.
      srcs: implementation files.
      hdrs: headers besides backend.h.
      deps: extra dependencies; //pool:internal<v> is always added.
      variant_deps: pool_variant_library targets (by base label), linked as
        <label><v>.
      copts: extra compiler options.
      **kwargs: passed to cc_library.
    """
    for v in VARIANTS:
        native.cc_library(
            name = name + "_backend_h" + v,
            hdrs = ["backend.h"],
            include_prefix = "poolguard",
            strip_include_prefix = "/" + native.package_name(),
            deps = [":" + name + "_impl" + v],
            visibility = ["//visibility:private"],
        )
        native.cc_library(
            name = name + "_impl" + v,
            srcs = srcs,
            hdrs = hdrs,
            copts = POOLGUARD_COPTS + copts,
            deps = deps + [label + v for label in variant_deps] + ["//pool:internal" + v],
            visibility = _BACKEND_VISIBILITY,
            **kwargs
        )
        native.cc_library(
            name = name + v,
            deps = [name + "_backend_h" + v, name + "_impl" + v],
            visibility = _BACKEND_VISIBILITY,
        )

def _per_backend(labels, backend, variant):
    return [label + "_" + backend + variant for label in labels]

def pool_cc_library(name, pool_deps = [], deps = [], backends = BACKENDS, variants = LIBRARY_VARIANTS, copts = [], **kwargs):
    """A cc_library per backend and variant, `<name>_<backend><variant>`.

    For code written against pool/pool.h.

    Args:
      name: base name.
      pool_deps: other per-backend libraries (by base label), linked as
        <label>_<backend><variant>.
      deps: ordinary dependencies.
      backends: the backends to generate for (default: all).
      variants: the variants to generate for (default: LIBRARY_VARIANTS).
      copts: extra compiler options.
      **kwargs: passed to each cc_library.
    """
    for backend in backends:
        for v in variants:
            native.cc_library(
                name = name + "_" + backend + v,
                copts = POOLGUARD_COPTS + copts,
                deps = deps + _per_backend(pool_deps, backend, v) + ["//pool:pool_" + backend + v],
                **kwargs
            )

def pool_cc_test(name, srcs, deps = [], pool_deps = [], backends = BACKENDS, variant = "", copts = [], **kwargs):
    """A cc_test per backend, `<name>_<backend>`, each linking //pool:pool_<backend><variant>.

    Also defines the test_suite `<name>` over all of them, so `bazel test //...`
    covers every backend in one invocation whatever --//pool:backend says.

    Args:
      name: base name.
      srcs: test sources, written against pool/pool.h.
      deps: dependencies besides the pool library.
      pool_deps: per-backend libraries (by base label), linked as
        <label>_<backend><variant>.
      backends: the backends to generate for (default: all).
      variant: the build variant (default: production).
      copts: extra compiler options.
      **kwargs: passed to each cc_test.
    """
    tests = []
    for backend in backends:
        native.cc_test(
            name = name + "_" + backend,
            srcs = srcs,
            copts = POOLGUARD_COPTS + copts,
            deps = deps + _per_backend(pool_deps, backend, variant) + ["//pool:pool_" + backend + variant],
            **kwargs
        )
        tests.append(name + "_" + backend)
    native.test_suite(name = name, tests = tests, tags = kwargs.get("tags", []))

def pool_cc_binary(name, srcs, deps = [], pool_deps = [], backends = BACKENDS, variant = "", copts = [], **kwargs):
    """A cc_binary per backend, `<name>_<backend>`, and an alias `<name>` to the default one.

    Args:
      name: base name.
      srcs: sources.
      deps: dependencies besides the pool library.
      pool_deps: per-backend libraries (by base label), linked as
        <label>_<backend><variant>.
      backends: the backends to generate for (default: all).
      variant: the build variant (default: production).
      copts: extra compiler options.
      **kwargs: passed to each cc_binary.
    """
    for backend in backends:
        native.cc_binary(
            name = name + "_" + backend,
            srcs = srcs,
            copts = POOLGUARD_COPTS + copts,
            deps = deps + _per_backend(pool_deps, backend, variant) + ["//pool:pool_" + backend + variant],
            **kwargs
        )
    native.alias(
        name = name,
        actual = ":" + name + "_" + DEFAULT_BACKEND,
    )
