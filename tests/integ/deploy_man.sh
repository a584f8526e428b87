#!/usr/bin/env bash
# Man pages (`make man`, generated from each program's --help by deploy/man/mkman.py):
# tapflow-probe.8, tapflow-collector.8, tapflow-query.1 and tapflow-nfdump.1 (from its
# -h) render with `man -l` without a single groff warning, whatis can read their NAME
# line (lexgrog), they have the usual sections, and every option the program's source
# defines (its opts table, its getopt_long table, its getopt string; not those it takes
# only to answer "not supported") appears in the rendered page. A generated page that
# dropped an option, or a hand-written --help that forgot one, fails here.
. "$(dirname "$0")/lib.sh"
for c in man lexgrog python3; do command -v $c >/dev/null || skip "$c missing (man-db)"; done
cd "$TOP"
make --no-print-directory man >"$T/man.log" 2>&1 || { cat "$T/man.log"; fail "make man"; }
M=$BIN/man
for page in tapflow-probe.8:probe/probe_main.c tapflow-collector.8:collector/collector_main.c \
	tapflow-query.1:collector/query_main.c tapflow-nfdump.1:collector/nfdump_main.c; do
	f=$M/${page%%:*}
	src=${page#*:}
	name=${page%%.*}
	[ -f "$f" ] || fail "make man made no $f"
	warn=$(LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings -E UTF-8 -l "$f" 2>&1 >"$T/$name.txt")
	[ -z "$warn" ] || fail "$f: groff warnings: $warn"
	lexgrog "$f" | grep -q "\"$name - " || fail "$f: whatis cannot parse NAME ($(lexgrog "$f"))"
	secs=(NAME SYNOPSIS DESCRIPTION OPTIONS "SEE ALSO")
	# tapflow-nfdump's page comes from a short usage text, the others' from full pages.
	[ "$name" = tapflow-nfdump ] || secs+=("EXIT STATUS" EXAMPLES)
	for sec in "${secs[@]}"; do
		grep -qx "$sec" "$T/$name.txt" || fail "$f: no $sec section"
	done
	python3 - "$src" "$T/$name.txt" <<'PY' || fail "$f does not document every option of $src"
import re, sys
src, page = open(sys.argv[1]).read(), open(sys.argv[2]).read()
want = []
for m in re.finditer(r'\{\s*"([a-z0-9-]+)",\s*(?:\'(.)\'|0),\s*OPT_(\w+)', src):  # opts.h tables
    longs = ["--" + m.group(1)] + (["--[no-]" + m.group(1)] if m.group(3) == "BOOL" else [])
    want.append(longs)
    if m.group(2):
        want.append(["-" + m.group(2)])
for m in re.finditer(r'\{\s*"([a-z0-9-]+)",\s*(?:no|required|optional)_argument', src):  # getopt_long
    want.append(["--" + m.group(1)])
for m in re.finditer(r'getopt(?:_long)?\([^;]*?"([A-Za-z0-9:]+)"', src):
    want += [["-" + c] for c in m.group(1).replace(":", "")]
# Accepted only to say "not supported" (nfdump's -6 and -I in tapflow-nfdump).
unsupported = set(re.findall(r"case '(.)':\s*(?:case '(.)':\s*)?fprintf\(stderr, \"[^\"]*not supported", src))
skip = {"-" + c for pair in unsupported for c in pair if c}
want = [w for w in want if w[0] not in skip]
if not want:
    sys.exit("no options found in " + sys.argv[1])
missing = [w[0] for w in want
           if not any(re.search(r'(?<![\w-])' + re.escape(o) + r'(?![\w-])', page) for o in w)]
print("%s: %d options, %s" % (sys.argv[1], len(want), "missing: " + " ".join(missing) if missing else "all documented"))
sys.exit(1 if missing else 0)
PY
done
