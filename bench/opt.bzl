"""opt_files: builds its srcs with -c opt whatever the command line says.

//tools:bench runs benchmark binaries; a benchmark of a -O0 build measures
nothing useful, so they go through this configuration transition and
`bazel run //tools:bench` is optimized even without -c opt.
"""

def _opt_transition_impl(_settings, _attr):
    return {"//command_line_option:compilation_mode": "opt"}

_opt_transition = transition(
    implementation = _opt_transition_impl,
    inputs = [],
    outputs = ["//command_line_option:compilation_mode"],
)

def _opt_files_impl(ctx):
    # Each binary is linked as <name>/<binary> in this rule's package, so that
    # a runner finds them all in one folder of its runfiles.
    outs = []
    for src in ctx.attr.srcs:
        exe = src[DefaultInfo].files_to_run.executable
        out = ctx.actions.declare_file(ctx.label.name + "/" + exe.basename)
        ctx.actions.symlink(output = out, target_file = exe, is_executable = True)
        outs.append(out)
    return [DefaultInfo(files = depset(outs), runfiles = ctx.runfiles(files = outs))]

opt_files = rule(
    implementation = _opt_files_impl,
    attrs = {
        "srcs": attr.label_list(cfg = _opt_transition),
        "_allowlist_function_transition": attr.label(
            default = "@bazel_tools//tools/allowlists/function_transition_allowlist",
        ),
    },
)
