#!/usr/bin/env bash
# tapflow-query as a user meets it: help and version, exit codes (0 ok, 1 runtime,
# 2 usage), errors that point at the bad token, options before or after the filter,
# -f FILE, relative windows, --config, the three output formats, and answers that do
# not change with --max-memory or --threads.
. "$(dirname "$0")/lib.sh"
need_root
big_rcvbuf
Q=$BIN/tapflow-query

P=$(free_udp_port)
start_tapflow_collector "$T/store" "$P"
# 30000 flows from 20000 sources, sent now (wall-clock times, for -t -1h)
"$TOOLS/nfblast" --synth 30000 -d "127.0.0.1:$P" --rate 200000 --random-src 20000 >/dev/null
wait_for "udp_drained $P" 20 || fail "collector does not drain"
stop_pid "$COLL_PID" TERM || fail "collector exited non-zero"
D=$T/store

json() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }
expect_rc() { # expect_rc RC CMD...: runs CMD, output in $T/out and $T/err
	local want=$1 rc=0
	shift
	"$@" >"$T/out" 2>"$T/err" || rc=$?
	[ "$rc" = "$want" ] || { cat "$T/err"; fail "exit $rc, want $want: $*"; }
}

# help reads like a man page and names every option
expect_rc 0 "$Q" --help
for s in NAME SYNOPSIS DESCRIPTION FILTER "TIME WINDOWS" STATISTICS AGGREGATION SERIES \
	OUTPUT OPTIONS "EXIT STATUS" EXAMPLES; do
	grep -q "^$s" "$T/out" || fail "--help has no $s section"
done
for o in read time window filter-file stat top aggregate order count max-flows series \
	output plain max-memory threads config help version; do
	grep -qE -- "--(\[no-\])?$o" "$T/out" || fail "--help does not describe --$o"
done
expect_rc 0 "$Q" -V
grep -q '^tapflow-query ' "$T/out" || fail "--version"

# usage errors: 2, with the reason
expect_rc 2 "$Q"
grep -q -- '-R DIR is required' "$T/err" || fail "no -R message"
expect_rc 2 "$Q" -R "$D" 'proto tcp and dst prt 443'
grep -q "prt" "$T/err" || fail "filter error does not name the token"
grep -q '^ *\^$' "$T/err" || fail "filter error has no caret"
caret=$(grep -n '\^' "$T/err" | head -n 1 | cut -d: -f2 | awk '{print index($0, "^")}')
line=$(grep 'dst prt' "$T/err" | tail -n 1 | awk '{print index($0, "prt")}')
[ "$caret" = "$line" ] || fail "caret at column $caret, token at $line"
expect_rc 2 "$Q" -R "$D" -s nosuch
grep -q "unknown element 'nosuch'" "$T/err" || fail "bad -s element message"
expect_rc 2 "$Q" -R "$D" -s srcip/fastest
grep -q "unknown order 'fastest'" "$T/err" || fail "bad -s order message"
expect_rc 2 "$Q" -R "$D" -t 2026/13/45
grep -q "not a time window" "$T/err" || fail "bad -t message"
expect_rc 2 "$Q" -R "$D" -t -10
grep -q "give a unit" "$T/err" || fail "-t -10 message"
expect_rc 2 "$Q" -R "$D" -o xml
expect_rc 2 "$Q" -R "$D" --bogus
expect_rc 2 "$Q" -R "$D" -A srcip,port
expect_rc 2 "$Q" -R "$D" -O bytes
expect_rc 2 "$Q" -R "$D" -s srcip -c 5
# runtime errors: 1
expect_rc 1 "$Q" -R "$T/nothere"
mkdir -p "$T/notastore" && echo hello >"$T/notastore/README"
expect_rc 1 "$Q" -R "$T/notastore"
grep -q "not a tapflow store" "$T/err" || fail "not-a-store message"

# totals, and the JSON summary keeps the keys it always had, first
expect_rc 0 "$Q" -R "$D" -o json
[ "$(json 'd["summary"]["flows"]' <"$T/out")" = 30000 ] || fail "totals"
head -c 40 "$T/out" | grep -q '^{"summary":{"flows":30000,"packets":' || fail "summary layout"

# options after the filter, as nfdump allows
a=$("$Q" -R "$D" -s srcip/bytes -n 5 -o json 'proto tcp')
b=$("$Q" -R "$D" 'proto tcp' -s srcip/bytes -n 5 -o json)
[ "$a" = "$b" ] || fail "options after the filter give another answer"
[ "$(echo "$a" | json 'len(d["rows"])')" = 5 ] || fail "-n 5"
# -f FILE, comments and newlines
printf 'proto tcp # only TCP\n  and dst port 443\n' >"$T/filter"
a=$("$Q" -R "$D" -f "$T/filter" -o json | json 'd["summary"]["flows"]')
b=$("$Q" -R "$D" -o json 'proto tcp and dst port 443' | json 'd["summary"]["flows"]')
[ "$a" = "$b" ] && [ "$a" -gt 0 ] || fail "-f FILE: $a flows, argument filter $b"

# relative windows: everything was sent in the last minute
[ "$("$Q" -R "$D" -t -1h -o json | json 'd["summary"]["flows"]')" = 30000 ] || fail "-t -1h"
[ "$("$Q" -R "$D" -t -2h--1h -o json | json 'd["summary"]["flows"]')" = 0 ] || fail "-t -2h--1h"

# listings and formats
[ "$("$Q" -R "$D" -c 4 -o json | json 'len(d["rows"])')" = 4 ] || fail "-c 4"
[ "$("$Q" -R "$D" -A srcip,dstport -O bytes -c 3 -o json | json 'len(d["rows"])')" = 3 ] ||
	fail "-A -c 3"
"$Q" -R "$D" -s proto -o csv >"$T/out"
head -n 1 "$T/out" | grep -q '^first,last,duration_ms,proto,flows,packets,bytes' || fail "csv header"
grep -q '^30000,' "$T/out" || fail "csv summary line"
"$Q" -R "$D" -s dstport/bytes -n 3 >"$T/out"
grep -q '^Top 3 Dst Port ordered by bytes:' "$T/out" || fail "table title"
grep -q '^Summary: total flows: 30000, ' "$T/out" || fail "table summary"
grep -q '^Flows scanned: 30000, matched: 30000' "$T/out" || fail "table scan figures"
# series: every flow in one bucket, per top element too
"$Q" -R "$D" --series 60 -s proto -n 2 -o json >"$T/out"
[ "$(json 'sum(p["flows"] for p in d["series"]["points"])' <"$T/out")" = 30000 ] || fail "series"
[ "$(json 'all(sum(p["flows"] for p in r["series"]) == r["flows"] for r in d["rows"])' \
	<"$T/out")" = True ] || fail "series per row"

# a config file, overridden by flags
cat >"$T/q.conf" <<EOF
stat = ["srcip/bytes"];
top = 3;
output = "json";
EOF
[ "$("$Q" -R "$D" -C "$T/q.conf" | json 'len(d["rows"])')" = 3 ] || fail "--config"
[ "$("$Q" -R "$D" --config "$T/q.conf" -n 7 | json 'len(d["rows"])')" = 7 ] || fail "flag over file"

# the same answer in little memory (more passes) and on one thread
a=$("$Q" -R "$D" -s srcip/bytes -s ip/bps -n 10 -o csv | head -n -2)
b=$("$Q" -R "$D" -s srcip/bytes -s ip/bps -n 10 -o csv --max-memory 1M | head -n -2)
c=$("$Q" -R "$D" -s srcip/bytes -s ip/bps -n 10 -o csv --threads 1 | head -n -2)
[ "$a" = "$b" ] || fail "--max-memory 1M changes the answer"
[ "$a" = "$c" ] || fail "--threads 1 changes the answer"
p=$("$Q" -R "$D" -s srcip/bytes -o json --max-memory 1M | json 'd["summary"]["passes"]')
[ "$p" -gt 1 ] || fail "--max-memory 1M took $p pass(es)"
# an ordered answer longer than memory holds: sorted in runs under $TMPDIR, the same
# rows as in memory enough, nothing left behind; refused where the runs would leave
# the file system (the store's, maybe) short of room
mkdir -p "$T/tmp" "$T/small"
a=$("$Q" -R "$D" -A srcip,dstport -O bytes -n 0 -o csv | head -n -2)
b=$(TMPDIR=$T/tmp "$Q" -R "$D" -A srcip,dstport -O bytes -n 0 -o csv --max-memory 256k |
	head -n -2)
[ "$a" = "$b" ] || fail "a spilled ordered answer differs from the one in memory"
[ "$(echo "$a" | wc -l)" -gt 20000 ] || fail "too few groups to spill: $(echo "$a" | wc -l)"
[ -z "$(ls -A "$T/tmp")" ] || fail "files left in TMPDIR: $(ls "$T/tmp")"
mount -t tmpfs -o size=64m tmpfs "$T/small"
on_exit "umount '$T/small'"
TMPDIR=$T/small expect_rc 1 "$Q" -R "$D" -A srcip,dstport -O bytes -n 0 --max-memory 256k
grep -q "sorting under $T/small would leave less than 256 MiB free" "$T/err" ||
	fail "no clear error for a spill without room: $(cat "$T/err")"
echo "ok: help, exit codes, errors, option order, -f, windows, formats, series, config, memory,"
echo "    spills"
