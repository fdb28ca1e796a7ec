#!/usr/bin/env bash
# Makes deploy/worker.order: the functions a worker runs from start to idle, which
# deploy/release-build.sh places first in the binary's text (see there why).
#
# Builds dbq as release-build.sh does, starts a worker under valgrind's callgrind
# (which records every function that runs, in every thread), lets it idle on an empty
# queue for DBQ_ORDER_SECONDS (60), stops it with SIGTERM, and writes the names of the
# functions of dbq's binary that ran, in the order callgrind first met them. Run it
# again when the worker's start-up or idle path changes: functions the file does not
# name are placed after those it does, so a stale file costs memory, never correctness.
# Names the binary defines more than once (local helpers that several objects emit under
# one name) are left out: the linker would move every object's copy, run or not.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
command -v valgrind >/dev/null || {
  say "installing valgrind"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends valgrind >/dev/null
}
bash "$DBQ_ROOT/deploy/local/install.sh"
bash "$DBQ_ROOT/deploy/local/start.sh"
source "$DBQ_DEV/env"
# The first file may be empty: the build then orders nothing, and the names are the same.
[ -f "$DBQ_ROOT/deploy/worker.order" ] || : > "$DBQ_ROOT/deploy/worker.order"
say "building dbq (release, as deploy/release-build.sh)"
dbq="$(bash "$DBQ_ROOT/deploy/release-build.sh" 2> "$DBQ_DEV/build-release.log")" || die "release build failed (log: $DBQ_DEV/build-release.log)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
# valgrind cannot read the DWARF 5 the toolchain writes; the symbol table is enough.
cp "$dbq" "$work/dbq"
strip --strip-debug "$work/dbq"
say "running an idle worker under callgrind for ${DBQ_ORDER_SECONDS:-60} s"
timeout -s TERM "${DBQ_ORDER_SECONDS:-60}" valgrind --tool=callgrind --demangle=no --callgrind-out-file="$work/callgrind.out" \
  "$work/dbq" worker --queues dbq-order-idle --concurrency 4 > "$work/worker.log" 2>&1 || true
grep -q "worker started" "$work/worker.log" || die "the worker did not start under valgrind (log: $(cat "$work/worker.log" | tail -n 5))"
nm --defined-only "$work/dbq" | awk '{ print $3 }' | sort | uniq -d > "$work/ambiguous"
python3 - "$work/callgrind.out" "$work/dbq" "$work/ambiguous" > "$DBQ_ROOT/deploy/worker.order" <<'PY'
import re, sys
# callgrind names objects and functions once, as "ob=(id) name", then by "(id)" alone.
objects, functions, seen = {}, {}, []
current, names = None, set()
binary = sys.argv[2]
ambiguous = set(line.strip() for line in open(sys.argv[3]))
for line in open(sys.argv[1], errors="replace"):
    m = re.match(r"^(c?ob|c?fn)=\((\d+)\)(?: (.*))?$", line.rstrip("\n"))
    if not m:
        continue
    kind, ident, name = m.groups()
    table = objects if kind.endswith("ob") else functions
    if name is not None:
        table[ident] = name
    if kind == "ob":
        current = objects[ident]
    elif kind == "fn" and current == binary:
        fn = functions[ident]
        if fn not in names and fn not in ambiguous and not fn.startswith("0x"):
            names.add(fn)
            seen.append(fn)
print("\n".join(seen))
PY
say "deploy/worker.order: $(wc -l < "$DBQ_ROOT/deploy/worker.order") functions"
