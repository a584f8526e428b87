#!/usr/bin/env bash
# eBPF backend, map full: a flow map of 64 entries meets 300 new flows at once. What
# did not fit is counted (ebpf_map_full, ebpf_lost_bytes, and kernel_drops, which
# holds every packet the kernel could not count), so exported + reported = sent; the
# table-pressure eviction then frees entries (flows_expired_table_full), and flows
# that come later are exported whole: the probe keeps working.
. "$(dirname "$0")/lib.sh"
need_root
command -v tcpreplay >/dev/null || fail "tcpreplay missing (deploy/deps.sh installs it)"
big_rcvbuf

A=tfma$$ B=tfmb$$
netns_pair "$A" "$B" 198.18.0.1 198.18.0.2

# burst.pcap: 300 UDP flows of one 128-byte packet; later.pcap: 10 more of 3 packets.
python3 - "$T" <<'PY'
import struct, sys
def write(path, pkts):
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xa1b2c3d4, 2, 4, 0, 0, 65535, 1))
        for i, fr in enumerate(pkts):
            f.write(struct.pack("<IIII", 1767225600, i, len(fr), len(fr)) + fr)
def udp(net, i):
    l4 = struct.pack(">HHHH", 10000 + i, 53, 108, 0) + bytes(100)
    ip = struct.pack(">BBHHHBBH4s4s", 0x45, 0, 128, 1, 0, 64, 17, 0,
                     bytes([10, net, i >> 8, i & 255]), bytes([10, 99, 0, 1])) + l4
    return bytes.fromhex("020000000002020000000001") + b"\x08\x00" + ip
write(sys.argv[1] + "/burst.pcap", [udp(1, i) for i in range(300)])
write(sys.argv[1] + "/later.pcap", [udp(2, i) for i in range(10) for _ in range(3)])
PY

P=$(free_udp_port)
start_nfcapd "$T/nf" "$P" "$B"
bg ip netns exec "$B" "$BIN/tapflow-probe" -i "v$B" --capture ebpf --bpf-map-size 64 \
	-n "127.0.0.1:$P" 2>"$T/probe.log"
PROBE=$BGPID
wait_for "grep -q 'capturing on\\|error:' $T/probe.log" 20 || true
grep -q 'cannot load the program' "$T/probe.log" && skip "this kernel cannot load the eBPF program: $(cat "$T/probe.log")"
grep -q 'capturing on' "$T/probe.log" || { cat "$T/probe.log"; fail "probe did not start"; }

stat() { sed -n "s/^  $1: //p" "$T/probe.log" | tail -n 1; }
ip netns exec "$A" tcpreplay -q -K --pps 5000 -i "v$A" "$T/burst.pcap" >"$T/replay.log" 2>&1 ||
	{ cat "$T/replay.log"; fail "tcpreplay failed"; }
evicted() {
	kill -USR1 "$PROBE"
	[ "$(stat frames)" = 300 ] && [ "$(stat flows_expired_table_full)" -gt 0 ] 2>/dev/null
}
wait_for evicted 10 || { cat "$T/probe.log"; fail "a full map did not make the probe evict"; }
full=$(stat ebpf_map_full)
note "after the burst: ebpf_map_full $full, flows evicted $(stat flows_expired_table_full)"
[ "$full" -gt 0 ] || fail "300 flows into 64 entries, nothing counted as map full"
[ "$full" -le 240 ] || fail "only $((300 - full)) of 64 entries used"

ip netns exec "$A" tcpreplay -q -K --pps 1000 -i "v$A" "$T/later.pcap" >>"$T/replay.log" 2>&1 ||
	{ cat "$T/replay.log"; fail "tcpreplay failed"; }
wait_for "kill -USR1 $PROBE; [ \"\$(stat frames)\" = 330 ]" 10 || fail "probe did not see the later flows"
stop_pid "$PROBE" TERM || fail "probe did not exit 0 on SIGTERM"
cat "$T/probe.log"
wait_for "udp_drained $P $B" 30 || fail "nfcapd does not drain"
stop_pid "$NFCAPD_PID" TERM || true

[ "$(stat ebpf_map_full)" = "$full" ] || fail "later flows found the map full again"
[ "$(stat kernel_drops)" = "$full" ] || fail "kernel_drops $(stat kernel_drops) != map full $full"
[ "$(stat ebpf_lost_bytes)" = $((full * 128)) ] || fail "lost bytes not reported"
[ "$(stat packets)" = $((330 - full)) ] || fail "packets $(stat packets) + map full $full != 330"
read -r fl pk by <<<"$(nfdump_totals "$T/nf")"
note "exported flows=$fl packets=$pk bytes=$by; not counted: $full packets"
[ "$pk" = $((330 - full)) ] || fail "exported $pk packets + $full counted as lost != 330 sent"
[ "$by" = $(((330 - full) * 128)) ] || fail "exported bytes $by"
later=$(TZ=UTC nfdump -R "$T/nf" -q -o 'fmt:%sa %pkt' 'src net 10.2.0.0/16' | awk '$2 == 3' | wc -l)
[ "$later" = 10 ] || fail "$later of the 10 later flows exported whole"
echo "ok: a full map is counted ($full packets), the probe evicts and keeps exporting"
