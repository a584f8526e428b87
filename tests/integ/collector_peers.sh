#!/usr/bin/env bash
# Peers into us: the same generated capture is exported by softflowd (NetFlow v9, v5,
# IPFIX), pmacctd's nfprobe (v9, IPFIX), fprobe (v5, live on a veth pair) and our own
# probe. Each export is recorded once and replayed, identically, to nfcapd and to
# tapflow-collector: the stored totals (flows, packets, bytes) must be equal.
. "$(dirname "$0")/lib.sh"
need_root
big_rcvbuf
"$TOOLS/genpcap" -o "$T/in.pcap" -t "$T/truth.csv" -n 60000 -f 800 -s 5 >"$T/gen.txt"
note "generated: $(cat "$T/gen.txt")"
P=$(free_udp_port)

# --- record each exporter's datagrams -------------------------------------------------
exports=()
for v in 9 5 10; do
	capture_export "$P" "$T/softflowd-v$v.pcap" \
		softflowd -r "$T/in.pcap" -n "127.0.0.1:$P" -v "$v" -c none -m 1000000 -d >/dev/null 2>&1
	exports+=("softflowd-v$v")
done
for v in 9 10; do
	cat >"$T/pmacctd-v$v.conf" <<CONF
daemonize: false
pcap_savefile: $T/in.pcap
plugins: nfprobe
nfprobe_receiver: 127.0.0.1:$P
nfprobe_version: $v
nfprobe_maxflows: 1000000
plugin_buffer_size: 102400
plugin_pipe_size: 102400000
CONF
	capture_export "$P" "$T/pmacctd-v$v.pcap" timeout 60 pmacctd -f "$T/pmacctd-v$v.conf" >/dev/null 2>&1
	exports+=("pmacctd-v$v")
done
capture_export "$P" "$T/tapflow.pcap" "$BIN/tapflow-probe" -r "$T/in.pcap" -n "127.0.0.1:$P" 2>/dev/null
exports+=(tapflow)

# fprobe captures live only: replay the IPv4-untagged part (all it understands) through
# a veth pair and let fprobe export from the far end.
A=tfpa$$ B=tfpb$$
netns_pair "$A" "$B" 198.18.1.1 198.18.1.2
rm -f "$T/fprobe.pcap.ready"
bg ip netns exec "$B" python3 "$TOP/tests/tools/udpsink.py" "$P" "$T/fprobe.pcap" "$T/fprobe.pcap.ready" --idle 5
SINK=$BGPID
wait_for "[ -f $T/fprobe.pcap.ready ]" || fail "sink did not start"
# -l 2: log to stdout, which keeps fprobe in the foreground (its PID is ours to stop).
bg ip netns exec "$B" fprobe -l 2 -i "v$B" -d 1 -e 5 -s 1 "127.0.0.1:$P"
FPROBE=$BGPID
wait_for "grep -q . /proc/$FPROBE/status" 5 || fail "fprobe did not start"
ip netns exec "$A" tcpreplay -q -K --pps 20000 -i "v$A" "$T/in.pcap" >/dev/null 2>&1 || fail "tcpreplay failed"
# fprobe exports flows idle for 1 s; the sink stops after 5 s without a datagram.
wait "$SINK" || true
stop_pid "$FPROBE" TERM || true
exports+=(fprobe)

# --- replay each export to both collectors -------------------------------------------
rc=0
for e in "${exports[@]}"; do
	n=$(tshark -r "$T/$e.pcap" 2>/dev/null | wc -l)
	[ "$n" -gt 0 ] || { echo "$e: no datagrams recorded"; rc=1; continue; }
	P1=$(free_udp_port); P2=$(free_udp_port)
	start_nfcapd "$T/$e-nfcapd" "$P1"
	start_tapflow_collector "$T/$e-tapflow" "$P2"
	"$TOOLS/nfblast" -r "$T/$e.pcap" -d "127.0.0.1:$P1" --rate 20000 >/dev/null
	"$TOOLS/nfblast" -r "$T/$e.pcap" -d "127.0.0.1:$P2" --rate 20000 >/dev/null
	wait_for "udp_drained $P1 && udp_drained $P2" 30 || true
	stop_pid "$NFCAPD_PID" TERM || true
	stop_pid "$COLL_PID" TERM || { echo "$e: tapflow-collector exit status non-zero"; rc=1; }
	ref=$(nfdump_totals "$T/$e-nfcapd")
	got=$(tf_totals "$T/$e-tapflow")
	if [ "$ref" = "$got" ]; then
		printf '%-16s %5s datagrams  nfcapd and tapflow: flows packets bytes = %s\n' "$e" "$n" "$got"
	else
		printf '%-16s %5s datagrams  MISMATCH nfcapd: %s  tapflow: %s\n' "$e" "$n" "$ref" "$got"
		rc=1
	fi
done
[ $rc = 0 ] || fail "stored totals differ from nfcapd's"
