#!/usr/bin/env bash
# Live capture: the generated pcap replayed with tcpreplay at a moderate rate from one
# network namespace into a veth pair; tapflow-probe captures the other end over
# TPACKET_V3 (two workers, PACKET_FANOUT) and exports to nfcapd in the same namespace.
# The exported packets and IP bytes must equal what was sent, and the probe must report
# its kernel drop counter.
. "$(dirname "$0")/lib.sh"
need_root
command -v tcpreplay >/dev/null || fail "tcpreplay missing (deploy/deps.sh installs it)"
big_rcvbuf

A=tfla$$ B=tflb$$
netns_pair "$A" "$B" 198.18.0.1 198.18.0.2

"$TOOLS/genpcap" -o "$T/in.pcap" -t "$T/truth.csv" -n 40000 -f 500 -s 11 >"$T/gen.txt"
note "generated: $(cat "$T/gen.txt")"
read -r gen_pk gen_by gen_fl <<<"$(sed -E 's/.*packets=([0-9]+) bytes=([0-9]+) flows=([0-9]+).*/\1 \2 \3/' "$T/gen.txt")"

P=$(free_udp_port)
start_nfcapd "$T/nfcapd" "$P" "$B"
bg ip netns exec "$B" "$BIN/tapflow-probe" -i "v$B" -w 2 -n "127.0.0.1:$P" 2>"$T/probe.log"
PROBE=$BGPID
wait_for "grep -q 'capturing on' $T/probe.log" 10 || { cat "$T/probe.log"; fail "probe did not start"; }

ip netns exec "$A" tcpreplay -q -K --pps 20000 -i "v$A" "$T/in.pcap" >"$T/replay.log" 2>&1 ||
	{ cat "$T/replay.log"; fail "tcpreplay failed"; }
cat "$T/replay.log"
sent=$(sed -nE 's/.*Actual: ([0-9]+) packets.*/\1/p' "$T/replay.log")
[ "$sent" = "$gen_pk" ] || fail "tcpreplay sent $sent of $gen_pk packets"

# Ask for statistics (SIGUSR1) until the probe has read every frame sent.
probe_has_all() {
	kill -USR1 "$PROBE"
	local f
	f=$(sed -n 's/^  frames: //p' "$T/probe.log" | tail -n 1)
	[ -n "$f" ] && [ "$f" -ge "$gen_pk" ]
}
wait_for probe_has_all 10 || note "probe saw fewer frames than sent"
stop_pid "$PROBE" TERM || fail "probe did not exit 0 on SIGTERM"
cat "$T/probe.log"
grep -q '^  kernel_drops: ' "$T/probe.log" || fail "no kernel drop counter in the statistics"
drops=$(sed -n 's/^  kernel_drops: //p' "$T/probe.log" | tail -n 1)
# Fanout must spread the flows: each of the two workers gets a fair share.
read -r w0 w1 <<<"$(sed -n 's/^  worker_frames: //p' "$T/probe.log" | tail -n 1)"
note "worker frames: $w0 $w1"
[ "$w0" -gt $((gen_pk / 5)) ] && [ "$w1" -gt $((gen_pk / 5)) ] || fail "fanout left a worker idle ($w0 / $w1)"

wait_for "udp_drained $P $B" 30 || fail "nfcapd does not drain"
stop_pid "$NFCAPD_PID" TERM || true

read -r nf_fl nf_pk nf_by <<<"$(nfdump_totals "$T/nfcapd")"
note "sent packets=$gen_pk bytes=$gen_by flows=$gen_fl; nfdump flows=$nf_fl packets=$nf_pk bytes=$nf_by; kernel drops=$drops"
[ "$nf_pk" = "$gen_pk" ] || fail "exported packets $nf_pk != sent $gen_pk (kernel drops $drops)"
[ "$nf_by" = "$gen_by" ] || fail "exported bytes $nf_by != sent IP bytes $gen_by"
TZ=UTC nfdump -R "$T/nfcapd" -q -N -o csv >"$T/nfdump.csv"
# Live flows carry capture times, not the file's: compare everything else per flow.
python3 "$TOP/tests/tools/cmpflows.py" --time-tolerance-ms 100000000000000 "$T/truth.csv" \
	"$T/nfdump.csv" >"$T/cmp.txt" || { cat "$T/cmp.txt"; fail "flows differ from what was sent"; }
[ "$nf_fl" = "$gen_fl" ] || fail "exported flows $nf_fl != sent $gen_fl"
echo "ok: live capture exported every packet sent ($gen_pk), kernel drops $drops"
