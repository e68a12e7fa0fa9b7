"""Binds a folder on this machine as an external repository, or says how to get it.

Bazel's own `local_repository` fails with a stack trace when its path is missing.
Every external dependency of poolguard is installed by `tools/setup.sh` from
Debian's packages, so a missing folder means set-up has not run: say exactly that.
"""

def _installed_repository_impl(ctx):
    root = ctx.path(ctx.attr.path)
    marker = ctx.path(ctx.attr.path + "/" + ctx.attr.marker) if ctx.attr.marker else root
    if not marker.exists:
        fail(("\n\n  poolguard: external repository @{name} is missing: {path} not found.\n" +
              "  Run 'sudo tools/setup.sh' (Debian 12) to install it, then build again.\n").format(
            name = ctx.name,
            path = marker,
        ))

    # Mirror the folder's entries; a build_file, when given, replaces its BUILD.
    for child in root.readdir():
        if ctx.attr.build_file and child.basename in ("BUILD", "BUILD.bazel"):
            continue
        ctx.symlink(child, child.basename)
    if ctx.attr.build_file:
        ctx.symlink(ctx.attr.build_file, "BUILD.bazel")
    if not root.get_child("WORKSPACE").exists:
        ctx.file("WORKSPACE", "workspace(name = \"{}\")\n".format(ctx.name))

installed_repository = repository_rule(
    implementation = _installed_repository_impl,
    attrs = {
        "path": attr.string(mandatory = True, doc = "Absolute path of the installed folder."),
        "marker": attr.string(doc = "A file under path whose absence means 'not installed'."),
        "build_file": attr.label(allow_single_file = True, doc = "BUILD file to use instead of the folder's own."),
    },
    local = True,
    doc = "Like local_repository/new_local_repository, with a message naming tools/setup.sh when the path is missing.",
)
