#!/usr/bin/env bash
# Query parity with nfdump 1.7.1: one generated capture goes through tapflow-probe to
# nfcapd and to tapflow-collector at once; then the same questions (filters from the
# issue, -s on many elements and orders, -A aggregations, time windows) are put to
# nfdump and to tapflow-query -o json, and must get the same totals and the same rows
# (key fields, flows, packets, bytes). Where nfdump breaks ties at the top-N cut
# arbitrarily, tapflow's rows must be rows of nfdump's full list, in the same order
# of the metric.
. "$(dirname "$0")/lib.sh"
need_root
big_rcvbuf
export TZ=UTC

"$TOOLS/genpcap" -o "$T/in.pcap" -n 120000 -s 11 >"$T/gen.txt"
note "generated: $(cat "$T/gen.txt")"

P1=$(free_udp_port)
start_nfcapd "$T/nfcapd" "$P1"
P2=$(free_udp_port)
start_tapflow_collector "$T/tf" "$P2"
"$BIN/tapflow-probe" -r "$T/in.pcap" -n "127.0.0.1:$P1" -n "127.0.0.1:$P2" 2>"$T/probe.log" ||
	{ cat "$T/probe.log"; fail "probe exited non-zero"; }
wait_for "udp_drained $P1" 30 || fail "nfcapd does not drain its socket"
wait_for "udp_drained $P2" 30 || fail "tapflow-collector does not drain its socket"
stop_pid "$NFCAPD_PID" TERM || true
stop_pid "$COLL_PID" TERM || fail "tapflow-collector exited non-zero"

read -r nf_fl nf_pk nf_by <<<"$(nfdump_totals "$T/nfcapd")"
read -r tf_fl tf_pk tf_by <<<"$(tf_totals "$T/tf")"
note "stored: nfdump $nf_fl flows $nf_pk packets $nf_by bytes; tapflow $tf_fl $tf_pk $tf_by"
[ "$nf_fl $nf_pk $nf_by" = "$tf_fl $tf_pk $tf_by" ] || fail "the two stores differ"
[ "$nf_fl" -gt 5000 ] || fail "too few flows to compare ($nf_fl)"

cat >"$T/cmp.py" <<'PY'
# cmp.py MODE NFDUMP_OUT TF_JSON [ARG]: compares one answer. Modes:
#   totals          nfdump -o csv summary block vs summary
#   stat ORDER      nfdump -s ... -n 0 -o csv (every value) vs tapflow's rows
#   aggr FIELDS     nfdump -A ... -o fmt:FIELDS|%fl|%pkt|%byt (every group) vs rows
#   aggr-top FIELDS:ORDER  as aggr, tapflow's rows being the top N by ORDER
import ipaddress, json, sys

mode, nf_path, tf_path = sys.argv[1:4]
arg = sys.argv[4] if len(sys.argv) > 4 else ""
tf = json.load(open(tf_path))
nf = open(nf_path).read().splitlines()

def key(v):
    v = v.strip()
    try:
        return str(ipaddress.ip_address(v))
    except ValueError:
        pass
    if "." in v and all(p.isdigit() for p in v.split(".")) and v.count(".") == 1:
        a, b = v.split(".")           # ICMP type.code
        return str(int(a) * 256 + int(b))
    return str(int(v))

def die(msg):
    print("MISMATCH:", msg)
    sys.exit(1)

def rates(fl, pk, by, first, last):
    ms = last - first
    s = ms / 1000.0
    return {"flows": fl, "packets": pk, "bytes": by,
            "bps": int(8.0 * by / s) if ms else 0, "pps": int(pk / s) if ms else 0,
            "bpp": by // pk if pk else 0}

if mode == "totals":
    i = nf.index("Summary")
    vals = dict(zip(nf[i + 1].split(","), nf[i + 2].split(",")))
    want = (int(vals["flows"]), int(vals["packets"]), int(vals["bytes"]))
    s = tf["summary"]
    got = (s["flows"], s["packets"], s["bytes"])
    if want != got:
        die(f"totals nfdump {want} tapflow {got}")
    print(f"ok: {got[0]} flows, {got[1]} packets, {got[2]} bytes")
    sys.exit(0)

if mode == "stat":
    hdr = nf[0].split(",")
    col = {h: i for i, h in enumerate(hdr)}
    pk = "pkt" if "pkt" in col else "ipkt"
    by = "byt" if "byt" in col else "ibyt"
    full = {}
    for line in nf[1:]:
        if not line.strip():
            continue
        f = line.split(",")
        k = key(f[col["val"]])
        if k in full:
            die(f"nfdump lists {k} twice")
        fl, p, b = int(f[col["fl"]]), int(f[col[pk]]), int(f[col[by]])
        m = {"flows": fl, "packets": p, "bytes": b, "pps": int(f[col["ipps" if "ipps" in col else "pps"]]),
             "bps": int(f[col["ibps" if "ibps" in col else "bps"]]),
             "bpp": int(f[col["ibpp" if "ibpp" in col else "bpp"]])}
        full[k] = m
    rows = tf["rows"]
    field = tf["fields"][0]
    order = arg
    if tf["groups"] is not None and tf["groups"] != len(full):
        die(f"{len(full)} distinct values in nfdump, tapflow counted {tf['groups']}")
    want_n = len(full) if tf["limit"] == 0 else min(tf["limit"], len(full))
    if len(rows) != want_n:
        die(f"{len(rows)} rows, want {want_n}")
    ranked = sorted((m[order] for m in full.values()), reverse=True)
    for i, r in enumerate(rows):
        k = key(str(r[field]))
        if k not in full:
            die(f"row {i}: {field} {k} is not in nfdump's answer")
        m = full[k]
        for c in ("flows", "packets", "bytes"):
            if r[c] != m[c]:
                die(f"row {i} {k}: {c} tapflow {r[c]} nfdump {m[c]}")
        got = rates(r["flows"], r["packets"], r["bytes"], r["first_ms"], r["last_ms"])[order]
        if r[order] != m[order] or got != m[order]:
            die(f"row {i} {k}: {order} tapflow {r[order]} nfdump {m[order]}")
        if m[order] != ranked[i]:
            die(f"row {i} {k}: {order} {m[order]} where nfdump's rank {i} has {ranked[i]}")
    print(f"ok: {len(rows)} rows of {len(full)} values by {order}")
    sys.exit(0)

if mode in ("aggr", "aggr-top"):
    fields, _, order = arg.partition(":")
    fields = fields.split(",")
    full = {}
    for line in nf:
        if not line.strip():
            continue
        f = line.split("|")
        k = tuple(key(x) for x in f[:len(fields)])
        fl, p, b = (int(x) for x in f[len(fields):len(fields) + 3])
        if k in full:
            die(f"nfdump lists {k} twice")
        full[k] = {"flows": fl, "packets": p, "bytes": b}
    rows = tf["rows"]
    got = {}
    for r in rows:
        k = tuple(key(str(r[x])) for x in fields)
        got[k] = {"flows": r["flows"], "packets": r["packets"], "bytes": r["bytes"]}
    if mode == "aggr":
        if len(got) != len(rows):
            die("tapflow lists a group twice")
        if got != full:
            diff = [k for k in set(full) | set(got) if full.get(k) != got.get(k)][:3]
            die(f"{len(got)} groups vs nfdump {len(full)}; e.g. "
                + "; ".join(f"{k}: tapflow {got.get(k)} nfdump {full.get(k)}" for k in diff))
        if tf["groups"] != len(full):
            die(f"groups {tf['groups']} != {len(full)}")
        print(f"ok: {len(got)} groups")
        sys.exit(0)
    ranked = sorted((m[order] for m in full.values()), reverse=True)
    if len(rows) != min(tf["limit"], len(full)):
        die(f"{len(rows)} rows")
    for i, r in enumerate(rows):
        k = tuple(key(str(r[x])) for x in fields)
        if full.get(k) != got[k]:
            die(f"row {i} {k}: tapflow {got[k]} nfdump {full.get(k)}")
        if r[order] != ranked[i]:
            die(f"row {i}: {order} {r[order]}, nfdump's rank {i} has {ranked[i]}")
    print(f"ok: top {len(rows)} of {len(full)} groups by {order}")
    sys.exit(0)
die("bad mode " + mode)
PY

# Hosts and nets that occur, to filter on.
H=$("$BIN/tapflow-query" -R "$T/tf" -s srcip/flows -n 1 -o csv '(src net 0.0.0.0/0) and proto tcp' |
	sed -n 2p | cut -d, -f4)
H2=$("$BIN/tapflow-query" -R "$T/tf" -s dstip/flows -n 1 -o csv 'port 22 and src net 0.0.0.0/0' |
	sed -n 2p | cut -d, -f4)
NET=$(echo "$H" | cut -d. -f1-3).0/24
[ -n "$H" ] && [ -n "$H2" ] || fail "no hosts to filter on"
note "filter hosts: $H, $H2, net $NET"

n=0
tf_q() { "$BIN/tapflow-query" -R "$T/tf" -o json "$@" >"$T/tf.json" 2>"$T/tf.err" ||
	{ cat "$T/tf.err"; fail "tapflow-query $*"; }; }
nf_q() { nfdump -R "$T/nfcapd" "$@" >"$T/nf.out" 2>"$T/nf.err" ||
	{ cat "$T/nf.err"; fail "nfdump $*"; }; }
check() { # check DESCRIPTION MODE [ARG]
	n=$((n + 1))
	out=$(python3 "$T/cmp.py" "$2" "$T/nf.out" "$T/tf.json" "${3:-}") ||
		fail "query $n ($1): $out"
	echo "query $n: $1: $out"
}

# totals under the filters of the issue, and more
for f in "host $H" "dst host $H2" "src net $NET" "(port 80) or (port 443)" "not port 53" \
	"(port 22) and (dst host $H2)" "proto udp and dst port 53" "bytes > 10k" \
	"packets < 5 and proto tcp" "src net 2001:db8::/32" "tos 184" "proto icmp" \
	"flags S and not flags R" "duration > 10000 or bpp > 1000" \
	"host localhost or dst ip in [localhost, $H2]"; do
	nf_q -o csv "$f"
	tf_q "$f"
	check "totals of '$f'" totals
done
# nfdump 1.7.1 rejects "port not 53"; tapflow reads it as "not port 53"
a=$("$BIN/tapflow-query" -R "$T/tf" -o csv 'port not 53' | tail -n 1)
b=$("$BIN/tapflow-query" -R "$T/tf" -o csv 'not port 53' | tail -n 1)
[ "$a" = "$b" ] || fail "'port not 53' and 'not port 53' differ: $a / $b"

# statistics: every value from nfdump, tapflow's top N must be its best
stat() { # stat ELEM ORDER N [FILTER] [-t WINDOW]
	local e=$1 o=$2 top=$3 f=${4:-} w=()
	[ -n "${5:-}" ] && w=(-t "$5")
	nf_q -q -N -o csv "${w[@]}" -s "$e/$o" -n 0 ${f:+"$f"}
	tf_q "${w[@]}" -s "$e/$o" -n "$top" ${f:+"$f"}
	check "-s $e/$o -n $top ${f:+'$f'} ${5:-}" stat "$o"
}
stat srcip bytes 10
stat dstip flows 10
stat ip packets 10
stat srcport flows 0
stat dstport bytes 0
stat port bps 20
stat proto flows 0
stat tos pps 0
stat router flows 0
stat dstip bytes 10 'proto tcp and dst port 443'
stat srcip bpp 10 'not port 53'
stat dstport packets 5 'proto udp'

# aggregation: every group, and ordered tops
aggr() { # aggr FIELDS FMT [FILTER]
	nf_q -q -N -6 -A "$1" -o "fmt:$2|%fl|%pkt|%byt" ${3:+"$3"}
	tf_q -A "$1" ${3:+"$3"}
	check "-A $1 ${3:+'$3'}" aggr "$1"
}
aggr srcip,dstip '%sa|%da'
aggr proto,dstport '%pr|%dp' 'not proto icmp and not proto 58'
aggr srcip,srcport,dstip,dstport,proto '%sa|%sp|%da|%dp|%pr' 'not proto icmp and not proto 58'
aggr tos,srcport '%tos|%sp' 'proto tcp'
nf_q -q -N -6 -A dstip -o 'fmt:%da|%fl|%pkt|%byt'
tf_q -A dstip -O packets -n 10
check "-A dstip -O packets -n 10" aggr-top dstip:packets
nf_q -q -N -6 -A srcip,dstport -o 'fmt:%sa|%dp|%fl|%pkt|%byt' 'proto tcp'
tf_q -A srcip,dstport -O bytes -c 15 'proto tcp'
check "-A srcip,dstport -O bytes -c 15 'proto tcp'" aggr-top srcip,dstport:bytes

# time windows: flows wholly inside, as nfdump decides
W=2026/01/01.00:00:10-2026/01/01.00:00:30
for f in "" "proto tcp"; do
	nf_q -o csv -t "$W" ${f:+"$f"}
	tf_q -t "$W" ${f:+"$f"}
	check "totals -t $W ${f:+'$f'}" totals
done
nf_q -o csv -t "$W"
tf_q -t 2026-01-01T00:00:10Z-2026-01-01T00:00:30Z
check "totals -t (ISO 8601) == nfdump -t $W" totals
nf_q -o csv -t 2026/01/01.00:00:20
tf_q -t 2026/01/01.00:00:20
check "totals -t 2026/01/01.00:00:20 (start only)" totals
stat srcip bytes 10 "" "$W"
stat dstport flows 0 "proto udp" 2026/01/01.00:00:05-2026/01/01.00:00:40
nf_q -q -N -6 -t "$W" -A proto -o 'fmt:%pr|%fl|%pkt|%byt'
tf_q -t "$W" -A proto
check "-A proto -t $W" aggr proto

[ "$n" -ge 20 ] || fail "only $n queries"
echo "ok: $n queries answered as nfdump answers them"
