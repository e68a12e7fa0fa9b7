# Prints a C++ file as if debug mode had never been written: every
# `#if defined(POOLGUARD_DEBUG)` / `#ifdef POOLGUARD_DEBUG` block is dropped,
# and its `#else` branch, if any, kept without the directives. Nested
# conditionals inside are followed by depth.
BEGIN { skip = 0; depth = 0; in_else = 0 }
{
  line = $0
  if (depth == 0 && line ~ /^#if(def)? +(defined\()?POOLGUARD_DEBUG\)?[ \t]*$/) {
    depth = 1; skip = 1; in_else = 0; next
  }
  if (depth > 0) {
    if (line ~ /^#if/) { depth++ }
    else if (line ~ /^#endif/) {
      depth--
      if (depth == 0) { skip = 0; in_else = 0; next }
    } else if (depth == 1 && line ~ /^#else/) { skip = 0; in_else = 1; next }
    if (skip) next
  }
  print line
}
