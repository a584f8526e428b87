#!/usr/bin/env bash
# eBPF backend, equivalence: the generated pcap (IPv4/IPv6, VLAN and QinQ, fragments,
# padding, every protocol genpcap makes) replayed with tcpreplay into a veth pair while
# three probes capture the receiving end at once: eBPF at TC ingress, eBPF at XDP
# (generic), and AF_PACKET. Each exports to its own nfcapd. Every
# one must store the generator's truth (cmpflows), and the eBPF records must equal the
# AF_PACKET ones flow by flow: packets, bytes, TCP flags, interfaces, and first/last
# times within a few ms (the same packets, seen on one clock).
. "$(dirname "$0")/lib.sh"
need_root
command -v tcpreplay >/dev/null || fail "tcpreplay missing (deploy/deps.sh installs it)"
big_rcvbuf

A=tfea$$ B=tfeb$$
netns_pair "$A" "$B" 198.18.0.1 198.18.0.2
"$TOOLS/genpcap" -o "$T/in.pcap" -t "$T/truth.csv" -n 40000 -f 500 -s 11 >"$T/gen.txt"
note "generated: $(cat "$T/gen.txt")"
read -r gen_pk gen_by gen_fl <<<"$(sed -E 's/.*packets=([0-9]+) bytes=([0-9]+) flows=([0-9]+).*/\1 \2 \3/' "$T/gen.txt")"

declare -A PORT PID NF
start_probe() { # name args...
	local name=$1
	shift
	PORT[$name]=$(free_udp_port)
	start_nfcapd "$T/nf-$name" "${PORT[$name]}" "$B"
	NF[$name]=$NFCAPD_PID
	bg ip netns exec "$B" "$BIN/tapflow-probe" "$@" -n "127.0.0.1:${PORT[$name]}" 2>"$T/$name.log"
	PID[$name]=$BGPID
	wait_for "grep -q 'capturing on\\|error:' $T/$name.log" 20 || true
	grep -q 'cannot load the program' "$T/$name.log" && skip "this kernel cannot load the eBPF program: $(cat "$T/$name.log")"
	grep -q 'capturing on' "$T/$name.log" || { cat "$T/$name.log"; fail "$name probe did not start"; }
}
start_probe tc -i "v$B" --capture ebpf
start_probe xdp -i "v$B" --capture ebpf --xdp generic --direction in
start_probe afp -i "v$B" --capture afpacket
grep -q 'ebpf_attach\|capture: ebpf' "$T/tc.log" || fail "the tc probe is not on eBPF"

ip netns exec "$A" tcpreplay -q -K --pps 20000 -i "v$A" "$T/in.pcap" >"$T/replay.log" 2>&1 ||
	{ cat "$T/replay.log"; fail "tcpreplay failed"; }
sent=$(sed -nE 's/.*Actual: ([0-9]+) packets.*/\1/p' "$T/replay.log")
[ "$sent" = "$gen_pk" ] || fail "tcpreplay sent $sent of $gen_pk packets"

# Statistics on demand (SIGUSR1) until each probe has seen every frame.
has_all() { # name
	kill -USR1 "${PID[$1]}"
	local f
	f=$(sed -n 's/^  frames: //p' "$T/$1.log" | tail -n 1)
	[ -n "$f" ] && [ "$f" -ge "$gen_pk" ]
}
for pr in tc xdp afp; do
	wait_for "has_all $pr" 15 || note "$pr probe saw fewer frames than sent"
done
for pr in tc xdp afp; do
	stop_pid "${PID[$pr]}" TERM || fail "$pr probe did not exit 0 on SIGTERM"
done
for pr in tc xdp afp; do
	wait_for "udp_drained ${PORT[$pr]} $B" 30 || fail "nfcapd ($pr) does not drain"
	stop_pid "${NF[$pr]}" TERM || true
done
cat "$T/tc.log"

stat() { sed -n "s/^  $2: //p" "$T/$1.log" | tail -n 1; }
for pr in tc xdp; do
	[ "$(stat $pr frames)" = "$gen_pk" ] || fail "$pr: frames $(stat $pr frames) != sent $gen_pk"
	[ "$(stat $pr parse_errors)" = 0 ] || fail "$pr: parse errors"
	[ "$(stat $pr kernel_drops)" = 0 ] || fail "$pr: packets not counted: $(stat $pr kernel_drops)"
	[ "$(stat $pr packets)" = "$gen_pk" ] && [ "$(stat $pr bytes)" = "$gen_by" ] ||
		fail "$pr: counted $(stat $pr packets) packets, $(stat $pr bytes) bytes"
done
grep -q '^  ebpf_attach: xdp generic' "$T/xdp.log" || fail "xdp probe not on XDP generic"

for pr in tc xdp afp; do
	read -r fl pk by <<<"$(nfdump_totals "$T/nf-$pr")"
	note "$pr: nfdump flows=$fl packets=$pk bytes=$by"
	[ "$pk" = "$gen_pk" ] && [ "$by" = "$gen_by" ] && [ "$fl" = "$gen_fl" ] ||
		fail "$pr exported flows=$fl packets=$pk bytes=$by, sent flows=$gen_fl packets=$gen_pk bytes=$gen_by"
	TZ=UTC nfdump -R "$T/nf-$pr" -q -N -o csv >"$T/$pr.csv"
	python3 "$TOP/tests/tools/cmpflows.py" --time-tolerance-ms 100000000000000 "$T/truth.csv" \
		"$T/$pr.csv" >"$T/cmp-$pr.txt" || { cat "$T/cmp-$pr.txt"; fail "$pr: flows differ from what was sent"; }
	TZ=UTC nfdump -R "$T/nf-$pr" -o json >"$T/$pr.json"
done

# Flow by flow: eBPF (tc, xdp) against AF_PACKET, same interface, same clock.
for pr in tc xdp; do
python3 - "$T/afp.json" "$T/$pr.json" <<'PY' || fail "eBPF ($pr) and AF_PACKET records differ"
import json, sys, datetime
def load(path):
    recs = {}
    for r in json.load(open(path)):
        if r.get("type") != "FLOW":
            continue
        src = r.get("src4_addr") or r.get("src6_addr")
        dst = r.get("dst4_addr") or r.get("dst6_addr")
        dport = r.get("dst_port", r.get("icmp_type", 0) * 256 + r.get("icmp_code", 0))
        k = (src, dst, r.get("src_port", 0), dport, r["proto"], r["src_tos"], r["src_vlan"])
        t = lambda s: datetime.datetime.fromisoformat(s).timestamp() * 1000
        v = (r["in_packets"], r["in_bytes"], r.get("tcp_flags", ""), r["input_snmp"],
             r["output_snmp"], t(r["first"]), t(r["last"]))
        recs.setdefault(k, []).append(v)
    return recs
a, b = load(sys.argv[1]), load(sys.argv[2])
bad = 0
if set(a) != set(b):
    print("keys only in afpacket:", list(set(a) - set(b))[:5])
    print("keys only in ebpf:", list(set(b) - set(a))[:5])
    bad += 1
worst = 0
for k in set(a) & set(b):
    ra, rb = sorted(a[k], key=lambda v: v[5]), sorted(b[k], key=lambda v: v[5])
    if len(ra) != len(rb) or any(x[:5] != y[:5] for x, y in zip(ra, rb)):
        if bad < 10:
            print("differs:", k, ra, rb)
        bad += 1
        continue
    for x, y in zip(ra, rb):
        worst = max(worst, abs(x[5] - y[5]), abs(x[6] - y[6]))
print(f"{len(a)} keys compared, {bad} differ, largest first/last difference {worst:.0f} ms")
sys.exit(1 if bad or worst > 20 else 0)
PY
done
echo "ok: eBPF (tc and xdp) and AF_PACKET exported the same $gen_fl flows, $gen_pk packets, $gen_by bytes"
