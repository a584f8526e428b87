#!/usr/bin/env bash
# The collector's HTTP API and tapflow-query --remote, on a real store (genpcap ->
# tapflow-probe -r -> tapflow-collector): a listen address beyond loopback without a
# token is refused at start; auth is enforced on every endpoint (no token, wrong token:
# 401 with WWW-Authenticate; right token: 200); every answer is valid JSON and /metrics
# parses line by line; remote answers equal local ones byte for byte (csv and json);
# bad requests get 400 with a message; the row, byte and time limits give clean errors;
# too many queries at once get 503; the collector keeps receiving, losing nothing,
# while queries run; SIGTERM still exits 0.
. "$(dirname "$0")/lib.sh"
BIN=${TF_HTTP_BIN:-$BIN}   # lets a helper run this against a scratch build
COLL=$BIN/tapflow-collector
Q=$BIN/tapflow-query
TOKEN=tf-integ-0123456789abcdef

free_tcp_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
# code URL [-H 'Name: value']... [-X METHOD] [-d DATA] [-o FILE]: one request; prints the
# HTTP status; the body goes to $T/body (or FILE), the headers to $T/hdr.
code() {
	python3 - "$T/body" "$T/hdr" "$@" <<'EOF'
import http.client, sys, urllib.parse
body, hdr, url, args = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
headers, method, data = {}, "GET", None
while args:
    opt, val, args = args[0], args[1], args[2:]
    if opt == "-H":
        k, v = val.split(":", 1)
        headers[k.strip()] = v.strip()
    elif opt == "-X":
        method = val
    elif opt == "-d":
        data = val
    elif opt == "-o":
        body = val
u = urllib.parse.urlsplit(url)
c = http.client.HTTPConnection(u.hostname, u.port, timeout=120)
c.request(method, u.path + ("?" + u.query if u.query else ""), body=data, headers=headers)
r = c.getresponse()
open(body, "wb").write(r.read())
open(hdr, "w").write("".join("%s: %s\n" % kv for kv in r.getheaders()))
print(r.status)
EOF
}
auth=(-H "Authorization: Bearer $TOKEN")
# json_ok FILE: the file holds exactly one JSON value.
json_ok() { python3 -c 'import json,sys; json.load(open(sys.argv[1]))' "$1"; }
# metrics_ok FILE: Prometheus text format, every sample after its family's HELP/TYPE.
metrics_ok() {
	python3 - "$1" <<'EOF'
import re, sys
fam, typed, n = None, set(), 0
sample = re.compile(r'^(tapflow_[a-z0-9_]+)(\{([a-z_]+="(\\.|[^"\\])*",?)*\})? (\d+)$')
for line in open(sys.argv[1]).read().splitlines():
    if line.startswith("# HELP "):
        fam = line.split()[2]
        assert fam.startswith("tapflow_"), line
        continue
    if line.startswith("# TYPE "):
        _, _, name, kind = line.split()
        assert name == fam and kind in ("counter", "gauge"), line
        assert name not in typed, "family twice: " + line
        typed.add(name)
        continue
    m = sample.match(line)
    assert m, "bad sample line: " + line
    assert m.group(1) == fam, "sample outside its family: " + line
    n += 1
assert n > 30, n
EOF
}

# ---- refused at start: beyond loopback without a token ----
for addr in 0.0.0.0 "[::]" 192.0.2.1; do
	rc=0
	"$COLL" -l "$T/x" -p "$(free_udp_port)" --http "$addr:$(free_tcp_port)" 2>"$T/err" || rc=$?
	[ $rc = 2 ] && grep -q "set http_token in the config file" "$T/err" ||
		{ cat "$T/err"; fail "--http $addr without a token was not refused (rc $rc)"; }
done
rc=0
"$COLL" -l "$T/x" -p "$(free_udp_port)" --http nonsense 2>"$T/err" || rc=$?
[ $rc = 2 ] && grep -q "HTTP listen address 'nonsense'" "$T/err" || fail "bad --http accepted"
rc=0
"$COLL" -l "$T/x" -p "$(free_udp_port)" --http "0.0.0.0:$(free_tcp_port)" --http-token short \
	2>"$T/err" || rc=$?
[ $rc = 1 ] && grep -q "http_token: use 16 to" "$T/err" || { cat "$T/err"; fail "short token accepted"; }
note "refused: beyond loopback without a token, a bad address, a short token"

# ---- a collector with a store, the API on loopback with a token from the config ----
"$TOOLS/genpcap" -o "$T/in.pcap" -n 60000 -s 11 >/dev/null
P=$(free_udp_port)
HP=$(free_tcp_port)
H=http://127.0.0.1:$HP
cat >"$T/coll.conf" <<EOF
dir = "$T/store";
flush = "1s";
http = "127.0.0.1:$HP";
http_token = "$TOKEN";
EOF
start_tapflow_collector "$T/store" "$P" -c "$T/coll.conf"
C=$COLL_PID
grep -q "HTTP API serving on http://127.0.0.1:$HP (bearer token required)" "$T/store.log" ||
	{ cat "$T/store.log"; fail "HTTP API not announced"; }
"$BIN/tapflow-probe" -r "$T/in.pcap" -n "127.0.0.1:$P" 2>"$T/probe.log"
want=$(sed -n 's/^  export_records: //p' "$T/probe.log")
wait_for "[ \"\$(tf_totals $T/store | cut -d' ' -f1)\" = $want ]" 10 ||
	fail "store holds $(tf_totals "$T/store"), want $want flows"

# ---- auth on every endpoint ----
for ep in "/api/v1/query?stat=srcip" /api/v1/status /api/v1/exporters /metrics; do
	c=$(code "$H$ep")
	[ "$c" = 401 ] || fail "$ep without a token: $c"
	grep -qi '^WWW-Authenticate: Bearer realm="tapflow"' "$T/hdr" || fail "$ep: no WWW-Authenticate"
	json_ok "$T/body" || fail "$ep: 401 body is not JSON"
	c=$(code "$H$ep" -H "Authorization: Bearer wrong-token-0123456789")
	[ "$c" = 401 ] || fail "$ep with a wrong token: $c"
	grep -qi 'error="invalid_token"' "$T/hdr" || fail "$ep: wrong token not called invalid_token"
	c=$(code "$H$ep" -H "Authorization: Bearer ${TOKEN}x")
	[ "$c" = 401 ] || fail "$ep with a longer token: $c"
	c=$(code "$H$ep" "${auth[@]}")
	[ "$c" = 200 ] || fail "$ep with the token: $c"
	if [ "$ep" = /metrics ]; then
		metrics_ok "$T/body" || fail "/metrics does not parse"
	else
		json_ok "$T/body" || { head -c 300 "$T/body"; fail "$ep: not JSON"; }
	fi
done
rc=0
"$Q" --remote "$H" -s srcip >/dev/null 2>"$T/err" || rc=$?
[ $rc = 1 ] && grep -q "http_token" "$T/err" || { cat "$T/err"; fail "--remote without a token: rc $rc"; }
TAPFLOW_TOKEN=$TOKEN "$Q" --remote "$H" -o json >"$T/r.json" || fail "--remote with TAPFLOW_TOKEN"
"$Q" --remote "$H" --token "$TOKEN" -o json >"$T/r2.json" || fail "--remote with --token"
json_ok "$T/r.json" && json_ok "$T/r2.json" || fail "--remote answer is not JSON"
note "auth: 401 without or with a wrong token on every endpoint, 200 with it"

# status and exporters carry what the collector counted
code "$H/api/v1/status" "${auth[@]}" >/dev/null
python3 - "$T/body" "$want" "$T/store" <<'EOF' || fail "status is wrong"
import json, sys
s = json.load(open(sys.argv[1]))
assert s["decode"]["records"] == int(sys.argv[2]), s["decode"]
assert s["store"]["records"] == int(sys.argv[2]), s["store"]
assert s["store"]["dir"] == sys.argv[3] and s["store"]["files"] >= 1, s["store"]
assert s["receive"]["datagrams"] > 0 and s["receive"]["socket_drops"] == 0, s["receive"]
assert s["listen"]["auth"] is True and s["version"], s
EOF
code "$H/api/v1/exporters" "${auth[@]}" >/dev/null
python3 - "$T/body" "$want" <<'EOF' || fail "exporters are wrong"
import json, sys
e = json.load(open(sys.argv[1]))["exporters"]
assert len(e) == 1 and e[0]["address"] == "127.0.0.1", e
assert e[0]["records_v9"] == int(sys.argv[2]) and e[0]["sequence_lost"] == 0, e[0]
assert e[0]["domains"][0]["version"] == 9 and e[0]["templates"] >= 1, e[0]
EOF

# ---- remote answers equal local ones ----
export TAPFLOW_TOKEN=$TOKEN
queries=(
	"-s srcip/bytes -n 5"
	"-s dstport/flows -s proto/packets -n 3 proto tcp"
	"-s ip/flows -s port/bytes not port 53"
	"-A srcip,dstport -O bytes -c 10 src net 10.0.0.0/8"
	"-A proto -O packets"
	"-c 25 -O bytes"
	"-s record/bytes -n 5"
	"-t 2026/01/01.00:00:10-2026/01/01.00:00:40 -s srcip -n 4"
	"--series 10 -s dstport/bytes -n 2"
	"-s srcip/bytes -n 5 (port 80) or (port 443)"
	"-A srcnet/16 -O bytes -n 5"
	"-s srcip/bytes -n 5 host localhost or dst host in [localhost, 10.0.0.1] or proto udp"
)
n=0
for q in "${queries[@]}"; do
	# shellcheck disable=SC2086 # the words are the options
	for fmt in csv json table; do
		"$Q" -R "$T/store" $q -o $fmt >"$T/l" 2>"$T/lerr" || fail "local $q -o $fmt"
		"$Q" --remote "$H" $q -o $fmt >"$T/r" 2>"$T/rerr" || { cat "$T/rerr"; fail "remote $q -o $fmt"; }
		case $fmt in
		csv) cmp -s "$T/l" "$T/r" || { diff "$T/l" "$T/r" | head; fail "csv differs: $q"; } ;;
		json)
			json_ok "$T/r" || fail "remote json does not parse: $q"
			# summary.mem_bytes (peak table memory) depends on how threads raced: with
			# one thread the two are equal byte for byte
			python3 -c 'import json,sys
a, b = (json.load(open(f)) for f in sys.argv[1:])
a["summary"].pop("mem_bytes"); b["summary"].pop("mem_bytes")
sys.exit(a != b)' "$T/l" "$T/r" || fail "json differs: $q"
			"$Q" -R "$T/store" $q -o json --threads 1 >"$T/l"
			"$Q" --remote "$H" $q -o json --threads 1 >"$T/r"
			cmp -s "$T/l" "$T/r" || { diff "$T/l" "$T/r" | head -c 600; fail "json differs: $q"; } ;;
		table) # the same machine and time zone: equal too
			cmp -s "$T/l" "$T/r" || { diff "$T/l" "$T/r" | head; fail "table differs: $q"; } ;;
		esac
		n=$((n + 1))
	done
done
note "remote = local for $n query/format pairs (csv and json byte for byte)"

# ---- bad requests: 400 with a message, never a crash ----
bad=("filter=port%20foo" "stat=bogus" "aggr=srcip,nope" "window=2026-13-45" "top=ten"
     "limit=-1" "sort=bytes" "order=sideways&limit=3" "format=xml" "filter=%zz"
     "filter=(port%2080" "stat=srcip&limit=5" "series=x" "filter=x%00y" "stat")
for b in "${bad[@]}"; do
	c=$(code "$H/api/v1/query?$b" "${auth[@]}")
	[ "$c" = 400 ] || fail "$b: $c"
	python3 -c 'import json,sys; e=json.load(open(sys.argv[1]))["error"]; assert len(e) > 5' "$T/body" ||
		fail "$b: no JSON error message"
done
c=$(code "$H/api/v1/query?filter=proto%20tcp%20and%20port%20foo" "${auth[@]}")
python3 -c 'import json,sys; e=json.load(open(sys.argv[1])); assert e["position"] == 19 and "foo" in e["error"], e' \
	"$T/body" || fail "bad filter: no position of the token"
rc=0
"$Q" --remote "$H" "proto tcp and port foo" 2>"$T/err" || rc=$?
[ $rc = 2 ] && grep -q "foo" "$T/err" && grep -qE '^ +\^$' "$T/err" ||
	{ cat "$T/err"; fail "--remote bad filter: rc $rc, no caret"; }
# the server never looks a host name up (a remote user could make it wait on DNS)
c=$(code "$H/api/v1/query?filter=host%20localhost" "${auth[@]}")
python3 -c 'import json,sys; e=json.load(open(sys.argv[1])); assert e["position"] == 5 and "not looked up" in e["error"], e' \
	"$T/body" && [ "$c" = 400 ] || fail "host name in an API filter: $c"
c=$(code "$H/nothing" "${auth[@]}")
[ "$c" = 404 ] || fail "unknown path: $c"
c=$(code "$H/api/v1/query" "${auth[@]}" -X POST -d x=1)
[ "$c" = 405 ] || fail "POST: $c"
long=$(python3 -c 'print("a" * 20000)')
c=$(code "$H/api/v1/query?filter=$long" "${auth[@]}")
[ "$c" = 414 ] || [ "$c" = 431 ] || fail "a 20000-byte URL: $c"
c=$(code "$H/api/v1/status" "${auth[@]}")
[ "$c" = 200 ] || fail "the server does not answer after bad requests"
note "bad requests: ${#bad[@]} kinds answered 400 with a JSON message; 404, 405, 414"

# ---- the collector keeps receiving while queries run ----
code "$H/api/v1/status" "${auth[@]}" >/dev/null
before=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["decode"]["records"])' "$T/body")
SENT=150000
bg "$TOOLS/nfblast" --synth "$SENT" -d "127.0.0.1:$P" --rate 50000 >/dev/null
BLAST=$BGPID
qn=0
while kill -0 "$BLAST" 2>/dev/null; do
	"$Q" --remote "$H" -A srcip,dstip,srcport,dstport -O bytes -n 10 -o json >"$T/q" ||
		fail "query failed during the stream"
	json_ok "$T/q" || fail "query answer not JSON during the stream"
	qn=$((qn + 1))
done
wait "$BLAST" || true
wait_for "udp_drained $P" 10 || fail "collector does not drain"
expect=$((before + SENT))
ok=0
for _ in $(seq 40); do
	code "$H/api/v1/status" "${auth[@]}" >/dev/null
	if python3 - "$T/body" "$expect" <<'EOF'
import json, sys
s = json.load(open(sys.argv[1]))
r = s["receive"]
assert r["socket_drops"] == 0 and s["queue"]["drops"] == 0, s
sys.exit(0 if s["decode"]["records"] == int(sys.argv[2]) else 1)
EOF
	then ok=1; break; fi
	sleep 0.25
done
[ $ok = 1 ] || { cat "$T/body"; fail "records lost while queries ran (want $expect decoded)"; }
[ $qn -ge 3 ] || fail "only $qn queries ran during the stream"
note "received all $SENT records of a 50k/s stream while $qn queries ran"

c=$(code "$H/metrics" "${auth[@]}")
metrics_ok "$T/body" || fail "/metrics does not parse"
grep -q "^tapflow_decode_records_total $expect\$" "$T/body" || fail "metrics lack the records"
grep -q '^tapflow_exporter_records_total{exporter="127.0.0.1",version="9"} ' "$T/body" ||
	fail "metrics lack per-exporter labels"
stop_pid "$C" TERM || fail "collector did not exit 0"

# ---- limits: a store of many small blocks, served with tight limits ----
P2=$(free_udp_port)
HP2=$(free_tcp_port)
H2=http://127.0.0.1:$HP2
start_tapflow_collector "$T/big" "$P2" --flush 1s --block-records 1024 --http "$HP2" \
	--http-query-timeout-ms 1
"$TOOLS/nfblast" --synth 200000 -d "127.0.0.1:$P2" --rate 200000 >/dev/null
wait_for "udp_drained $P2" 10 || fail "limits collector does not drain"
wait_for "[ \"\$(tf_totals $T/big | cut -d' ' -f1)\" = 200000 ]" 10 || fail "limits store incomplete"
c=$(code "$H2/api/v1/query?aggr=srcip,dstip,srcport,dstport&order=bytes&top=5")
[ "$c" = 504 ] && json_ok "$T/body" && grep -q "longer than 1 ms" "$T/body" ||
	{ cat "$T/body"; fail "a slow query: $c"; }
rc=0
"$Q" --remote "$H2" -A srcip,dstip -n 3 2>"$T/err" || rc=$?
[ $rc = 1 ] && grep -q "longer than 1 ms" "$T/err" || fail "--remote slow query: rc $rc"
stop_pid "$COLL_PID" TERM || fail "limits collector did not exit 0"
mv "$T/big.log" "$T/big.1.log"
start_tapflow_collector "$T/big" "$P2" --http "$HP2" --http-max-rows 1000 \
	--http-max-body 64k --http-max-queries 1 --http-query-memory 64M
c=$(code "$H2/api/v1/query?limit=1001&format=csv")
[ "$c" = 413 ] && grep -q "more than 1000 rows" "$T/body" || fail "1001 rows: $c"
c=$(code "$H2/api/v1/query?limit=1000&format=json")
[ "$c" = 413 ] && grep -q "larger than 65536 bytes" "$T/body" || fail "a large body: $c"
c=$(code "$H2/api/v1/query?limit=100&format=csv")
[ "$c" = 200 ] || fail "100 rows: $c"
c=$(code "$H2/api/v1/query?limit=1000&max_memory=1073741824")
[ "$c" = 400 ] && grep -q "over this server's limit" "$T/body" || fail "max_memory over the limit: $c"
# one query at a time: the others are refused with 503, never anything else
pids=()
for i in 1 2 3 4 5 6; do
	code "$H2/api/v1/query?aggr=srcip,dstip,srcport,dstport&order=bytes&top=5" \
		-o "$T/par.$i" >"$T/code.$i" &
	pids+=($!)
done
wait "${pids[@]}"
cat "$T"/code.* | sort | uniq -c | sed 's/^/# /'
for i in 1 2 3 4 5 6; do
	c=$(cat "$T/code.$i")
	[ "$c" = 200 ] || [ "$c" = 503 ] || fail "parallel query $i: $c"
	json_ok "$T/par.$i" || fail "parallel query $i: not JSON"
done
grep -q 200 "$T"/code.* || fail "no parallel query succeeded"
stop_pid "$COLL_PID" TERM || fail "limits collector did not exit 0"
echo "ok: auth, JSON, remote = local ($n), 400s, limits (504, 413, 400, 503), receiving during queries"
