#!/usr/bin/env bash
# Fuzz and debug hooks cost nothing in production. Two kinds of triple:
# - schedule points: each backend's object code, built as production code, is
#   identical to the same sources built with the schedule-point macro
#   expanding to nothing at all, while the fuzz (_sched) build does differ;
# - debug mode: Pool::Alloc()/Free() of each backend, built as production
#   code, are identical to the same code compiled against pool.h with every
#   POOLGUARD_DEBUG block removed, while the _debug build does differ.
# The third build of each triple must differ, so the comparison can fail.
#
# Arguments: triples (production, baseline, variant), each a space-separated
# list of that library's archives (.a, and .pic.a in opt).
set -euo pipefail

# The non-PIC archive when there is one, else the PIC one.
pick() {
  local f pic=""
  for f in $1; do
    case "$f" in
      *.pic.a) pic="$f" ;;
      *.a) echo "$f"; return ;;
    esac
  done
  echo "$pic"
}

disassemble() {
  # Instructions and symbols only: drop archive/file names and addresses.
  objdump -d --no-show-raw-insn "$1" |
    grep -v -e 'file format' -e '^In archive' -e '^$' |
    sed -E 's/^ +[0-9a-f]+:\t//; s/^[0-9a-f]+ </</; s/ [0-9a-f]+ <([^>]*)>/ <\1>/g'
}

status=0
while [[ $# -ge 3 ]]; do
  production="$(pick "$1")" baseline="$(pick "$2")" sched="$(pick "$3")"
  shift 3
  name="$(basename "$production")"
  if [[ "$(disassemble "$production" | wc -l)" -lt 20 ]]; then
    echo "FAIL $name: almost no code disassembled; is the archive empty?"
    status=1
  elif ! diff <(disassemble "$production") <(disassemble "$baseline") > /tmp/codegen_diff.$$; then
    echo "FAIL $name: production code differs from the baseline without the hooks:"
    head -40 /tmp/codegen_diff.$$
    status=1
  elif diff -q <(disassemble "$production") <(disassemble "$sched") > /dev/null; then
    echo "FAIL $name: the hooked variant is identical too; the comparison proves nothing"
    status=1
  else
    echo "ok   $name: $(disassemble "$production" | wc -l) lines identical to the baseline without hooks; $(basename "$sched") differs"
  fi
  rm -f /tmp/codegen_diff.$$
done
exit "$status"
