#!/usr/bin/env bash
# eBPF backend, the map scan run in the kernel (probe/bpf/scan.bpf.c) against the one
# user space makes with batch lookups (--bpf-scan user): the same traffic through each
# must give the same records, packet for packet, and as soon: idle UDP flows and TCP
# flows past FIN or RST go out within a scan (a second) of their timeout, whoever scans
# (the kernel's scan deletes those surely due itself). When more flows fall due in one
# scan than its output holds (a 1024-entry map holds 128), it runs again from where it
# stopped: nothing may be lost or exported twice on any path.
# (Active timeouts, which the kernel's scan leaves to user space, are in
# probe_ebpf_expiry, which runs through the kernel's scan too.)
. "$(dirname "$0")/lib.sh"
need_root
command -v tcpreplay >/dev/null || fail "tcpreplay missing (deploy/deps.sh installs it)"
big_rcvbuf

A=tfsa$$ B=tfsb$$
netns_pair "$A" "$B" 198.18.0.1 198.18.0.2

# few.pcap (real time, 0.9 s): 40 UDP flows of 2 packets, 10 TCP flows ending in FIN
# and 10 in RST. many.pcap: 600 UDP flows of one packet each, as fast as the sender goes.
python3 - "$T" <<'PY'
import struct, sys
def write(path, pkts):
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xa1b2c3d4, 2, 4, 0, 0, 65535, 1))
        for t, fr in sorted(pkts, key=lambda p: p[0]):
            s = int(t)
            f.write(struct.pack("<IIII", 1767225600 + s, int((t - s) * 1e6), len(fr), len(fr)) + fr)
def frame(proto, src, dst, sp, dp, flags=0, pad=60):
    if proto == 6:
        l4 = struct.pack(">HHIIBBHHH", sp, dp, 1, 0, 0x50, flags, 1024, 0, 0) + bytes(pad)
    else:
        l4 = struct.pack(">HHHH", sp, dp, 8 + pad, 0) + bytes(pad)
    ip = struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + len(l4), 1, 0, 64, proto, 0,
                     bytes(src), bytes(dst)) + l4
    return bytes.fromhex("020000000002020000000001") + b"\x08\x00" + ip
few = []
for i in range(40):
    few += [(0.01 * i, frame(17, [10, 1, 0, i], [10, 9, 0, 1], 20000 + i, 53)),
            (0.01 * i + 0.2, frame(17, [10, 1, 0, i], [10, 9, 0, 1], 20000 + i, 53))]
for i in range(20):
    end = 0x11 if i < 10 else 0x04
    few += [(0.5 + 0.01 * i, frame(6, [10, 2, 0, i], [10, 9, 0, 2], 30000 + i, 80, 0x02)),
            (0.6 + 0.01 * i, frame(6, [10, 2, 0, i], [10, 9, 0, 2], 30000 + i, 80, 0x18)),
            (0.7 + 0.01 * i, frame(6, [10, 2, 0, i], [10, 9, 0, 2], 30000 + i, 80, end))]
write(sys.argv[1] + "/few.pcap", few)
write(sys.argv[1] + "/many.pcap",
      [(0.0001 * i, frame(17, [10, 4, i >> 8, i & 255], [10, 9, 0, 4], 50000, 53, pad=20))
       for i in range(600)])
PY

stat() { sed -n "s/^  $1: //p" "$T/probe-$2.log" | tail -n 1; }

# run MODE: both captures through a probe with --bpf-scan MODE; its records in rec-MODE.
run() {
	local mode=$1 port
	port=$(free_udp_port)
	start_nfcapd "$T/nf-$mode" "$port" "$B"
	bg ip netns exec "$B" "$BIN/tapflow-probe" -i "v$B" --capture ebpf --bpf-scan "$mode" \
		--bpf-map-size 1024 --inactive-timeout 1 --tcp-end-timeout 1 --active-timeout 60 \
		-n "127.0.0.1:$port" 2>"$T/probe-$mode.log"
	local probe=$BGPID
	wait_for "grep -q 'capturing on\\|error:' $T/probe-$mode.log" 20 || true
	grep -q 'cannot load the program' "$T/probe-$mode.log" &&
		skip "this kernel cannot load the eBPF program: $(cat "$T/probe-$mode.log")"
	grep -q 'capturing on' "$T/probe-$mode.log" || { cat "$T/probe-$mode.log"; fail "probe did not start"; }
	local t0=$EPOCHREALTIME
	ip netns exec "$A" tcpreplay -q -i "v$A" "$T/few.pcap" >"$T/replay.log" 2>&1 ||
		{ cat "$T/replay.log"; fail "tcpreplay failed"; }
	# The last packet left by t0 + 1 s, so every flow is due by t0 + 2 s and out by the
	# next scan: a second more, and a second's slack for a busy machine.
	sleep "$(echo "$t0 + 4 - $EPOCHREALTIME" | bc -l | sed 's/^-.*/0/')"
	kill -USR1 "$probe"
	wait_for "[ \"\$(stat frames $mode)\" = 140 ]" 5 || fail "$mode: probe saw $(stat frames "$mode") of 140 frames"
	[ "$(stat flows_expired_idle "$mode")" = 40 ] && [ "$(stat flows_expired_tcp_end "$mode")" = 20 ] ||
		fail "$mode: 4 s after the start, $(stat flows_expired_idle "$mode") of 40 idle flows and" \
			"$(stat flows_expired_tcp_end "$mode") of 20 TCP-ended ones were exported"
	ip netns exec "$A" tcpreplay -q -K --topspeed -i "v$A" "$T/many.pcap" >>"$T/replay.log" 2>&1 ||
		{ cat "$T/replay.log"; fail "tcpreplay failed"; }
	sleep 2.5
	kill -USR1 "$probe"
	wait_for "[ \"\$(stat frames $mode)\" = 740 ]" 10 || { cat "$T/probe-$mode.log"; fail "probe saw $(stat frames "$mode") of 740 frames"; }
	stop_pid "$probe" TERM || fail "probe did not exit 0 on SIGTERM"
	wait_for "udp_drained $port $B" 30 || fail "nfcapd does not drain"
	stop_pid "$NFCAPD_PID" TERM || true
	TZ=UTC nfdump -R "$T/nf-$mode" -q -o 'fmt:%pr %sa %sp %da %dp %pkt %byt' -O tstart |
		sed 's/  */ /g' | sort >"$T/rec-$mode"
	note "$mode: $(wc -l <"$T/rec-$mode") records; by $(stat ebpf_scan_by "$mode");" \
		"kernel scans $(stat ebpf_kernel_scans "$mode"), flows out" \
		"$(stat ebpf_kernel_scan_flows_out "$mode"), deleted by it" \
		"$(stat ebpf_kernel_scan_deleted "$mode"), reruns $(stat ebpf_kernel_scan_reruns "$mode");" \
		"idle $(stat flows_expired_idle "$mode"), tcp end $(stat flows_expired_tcp_end "$mode")," \
		"active $(stat flows_expired_active "$mode"), forced $(stat flows_expired_forced "$mode")"
}

run kernel
grep -q '^  ebpf_scan_by: in the kernel' "$T/probe-kernel.log" ||
	skip "no scan program on this kernel: $(stat ebpf_scan_by kernel)"
run user
grep -q '^  ebpf_scan_by: batch lookups (no scan program: --bpf-scan user)' "$T/probe-user.log" ||
	fail "--bpf-scan user: $(stat ebpf_scan_by user)"
[ "$(stat ebpf_kernel_scans user)" = 0 ] || fail "--bpf-scan user ran the scan program"

for m in kernel user; do
	[ "$(stat packets "$m")" = 740 ] || fail "$m: $(stat packets "$m") of 740 packets counted"
	[ "$(stat flows_expired_idle "$m")" = 640 ] || fail "$m: idle flows $(stat flows_expired_idle "$m") of 640"
	[ "$(stat flows_expired_tcp_end "$m")" = 20 ] || fail "$m: TCP-ended flows $(stat flows_expired_tcp_end "$m") of 20"
	read -r fl pk by <<<"$(nfdump_totals "$T/nf-$m")"
	[ "$fl" = 660 ] && [ "$pk" = 740 ] || fail "$m: exported $fl records, $pk packets; sent 660 flows, 740 packets"
done
[ "$(stat ebpf_kernel_scan_deleted kernel)" -gt 0 ] || fail "the scan program deleted no flow"
[ "$(stat ebpf_kernel_scan_reruns kernel)" -ge 4 ] ||
	fail "600 flows due at once in a 128-entry output: $(stat ebpf_kernel_scan_reruns kernel) reruns"
[ "$(stat ebpf_kernel_scan_fallbacks kernel)" = 0 ] || fail "the kernel's scan fell back to batch lookups"
diff "$T/rec-kernel" "$T/rec-user" || fail "the two scans exported different records"
echo "ok: the kernel's scan and user space's give the same records, reruns included"
