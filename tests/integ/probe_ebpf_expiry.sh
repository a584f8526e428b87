#!/usr/bin/env bash
# eBPF backend, expiry: a small capture with pauses, replayed in real time into a veth
# pair while an eBPF probe and an AF_PACKET probe capture the same interface at once
# (--active-timeout 4 --inactive-timeout 3 --tcp-end-timeout 1). Both must cut the same
# records: an active-timeout split of a flow whose entry stays in the kernel map (the
# continued record starts at its first packet after the export), inactive splits, TCP
# FIN and RST ending a flow after the grace while late ACKs within the grace still join
# it, and a packet after the grace starting a new record. The pauses are at least a
# second longer than each timeout: eBPF checks its map once a second. A flow busy
# through its active timeout is cut where each backend's clock says: both must give
# two records that add up, the second starting with the packet after the first's last.
# The second busy flow sends every 2 ms while the eBPF probe's map is large (4M entries:
# a scan walks its buckets for about 4 ms): a packet that arrives while the scan runs
# must still start the next record, not be folded into it unseen. A third capture (a
# packet socket) takes the busy flows' arrival times: no packet may lie between the
# two records, whatever the sender's jitter.
. "$(dirname "$0")/lib.sh"
need_root
command -v tcpreplay >/dev/null || fail "tcpreplay missing (deploy/deps.sh installs it)"
big_rcvbuf

A=tfta$$ B=tftb$$
netns_pair "$A" "$B" 198.18.0.1 198.18.0.2

# flow name, kind, then (time s, TCP flags) per packet; expected records (packets each).
python3 - "$T/in.pcap" "$T/expect.txt" <<'PY'
import struct, sys
flows = {  # name: (src, dst, proto, sport, dport, [(t, tcp flags)], [packets per record])
    "A": ("10.1.0.1", "10.2.0.1", 17, 1001, 2001,
          [(i * 0.5, 0) for i in range(8)] + [(5.5, 0), (6.0, 0)], [8, 2]),
    "B": ("10.1.0.2", "10.2.0.2", 17, 1002, 2002,
          [(0, 0), (0.3, 0), (0.6, 0), (5.6, 0), (5.9, 0)], [3, 2]),
    "C": ("10.1.0.3", "10.2.0.3", 6, 1003, 80,
          [(0, 0x02), (0.2, 0x10), (0.4, 0x18), (0.6, 0x11), (0.8, 0x10), (3.8, 0x10)], [5, 1]),
    "D": ("10.1.0.4", "10.2.0.4", 6, 1004, 80, [(0, 0x02), (0.2, 0x04)], [2]),
    "E": ("10.1.0.5", "10.2.0.5", 6, 1005, 80,
          [(0, 0x02), (0.2, 0x11), (0.9, 0x10), (1.5, 0x10)], [4]),
    "G": ("2001:db8::5", "2001:db8::6", 17, 1006, 2006,
          [(0, 0), (0.3, 0), (0.6, 0), (5.6, 0), (5.9, 0)], [3, 2]),
    # Busy through its active timeout: split where each backend's clock says, so only
    # the number of records (2) and their sum are fixed.
    "H": ("10.1.0.8", "10.2.0.8", 17, 1008, 2008, [(i * 0.05, 0) for i in range(121)], [121]),
    "I": ("10.1.0.9", "10.2.0.9", 17, 1009, 2009, [(i * 0.002, 0) for i in range(3001)], [3001]),
}
import ipaddress
pkts = []
for name, (src, dst, proto, sp, dp, times, _) in flows.items():
    for t, fl in times:
        if proto == 6:
            l4 = struct.pack(">HHIIBBHHH", sp, dp, 1, 0, 0x50, fl, 1024, 0, 0)
        else:
            l4 = struct.pack(">HHHH", sp, dp, 8 + 20, 0) + bytes(20)
        s, d = ipaddress.ip_address(src), ipaddress.ip_address(dst)
        if s.version == 4:
            ip = struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + len(l4), 1, 0, 64, proto, 0,
                             s.packed, d.packed) + l4
            et = 0x0800
        else:
            ip = struct.pack(">IHBB16s16s", 0x60000000, len(l4), proto, 64, s.packed,
                             d.packed) + l4
            et = 0x86dd
        fr = bytes.fromhex("020000000002020000000001") + struct.pack(">H", et) + ip
        fr += bytes(max(0, 60 - len(fr)))
        pkts.append((t, fr))
pkts.sort(key=lambda p: p[0])
t0 = 1767225600.0
with open(sys.argv[1], "wb") as f:
    f.write(struct.pack("<IHHiIII", 0xa1b2c3d4, 2, 4, 0, 0, 65535, 1))
    for t, fr in pkts:
        us = round((t0 + t) * 1e6)
        f.write(struct.pack("<IIII", us // 1000000, us % 1000000, len(fr), len(fr)) + fr)
with open(sys.argv[2], "w") as f:
    for name, (src, dst, proto, sp, dp, _, recs) in flows.items():
        f.write(f"{src} {dst} {proto} {sp} {dp} {','.join(map(str, recs))}\n")
PY

declare -A PORT PID NF
start_probe() { # name args...
	local name=$1
	shift
	PORT[$name]=$(free_udp_port)
	start_nfcapd "$T/nf-$name" "${PORT[$name]}" "$B"
	NF[$name]=$NFCAPD_PID
	bg ip netns exec "$B" "$BIN/tapflow-probe" -i "v$B" "$@" --active-timeout 4 \
		--inactive-timeout 3 --tcp-end-timeout 1 -n "127.0.0.1:${PORT[$name]}" 2>"$T/$name.log"
	PID[$name]=$BGPID
	wait_for "grep -q 'capturing on\\|error:' $T/$name.log" 20 || true
	grep -q 'cannot load the program' "$T/$name.log" && skip "this kernel cannot load the eBPF program: $(cat "$T/$name.log")"
	grep -q 'capturing on' "$T/$name.log" || { cat "$T/$name.log"; fail "$name probe did not start"; }
}
start_probe ebpf --capture ebpf --bpf-map-size 4194304
start_probe afp --capture afpacket

# Arrival times (Unix ms) of the busy flows' packets, by destination port.
cat >"$T/arrivals.py" <<'PY'
import os, socket, struct, sys
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0800))
s.bind((sys.argv[1], 0))
s.setsockopt(socket.SOL_SOCKET, getattr(socket, "SO_TIMESTAMPNS", 35), 1)  # Linux: 35
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
s.settimeout(4)  # the capture ends once the replay has been over for a while
open(sys.argv[2] + ".ready", "w").close()
seen, waited = [], 0
while True:
    try:
        data, anc, _, _ = s.recvmsg(2048, 64)
    except socket.timeout:
        waited += 1
        if seen or waited > 8:
            break
        continue
    if len(data) >= 38 and data[23] == 17:
        sec, ns = struct.unpack("qq", anc[0][2][:16])
        seen.append(f"{struct.unpack('>H', data[36:38])[0]} {sec * 1e3 + ns / 1e6:.3f}\n")
with open(sys.argv[2] + ".tmp", "w") as out:
    out.writelines(seen)
os.rename(sys.argv[2] + ".tmp", sys.argv[2])
PY
bg ip netns exec "$B" python3 "$T/arrivals.py" "v$B" "$T/arrivals.txt" 2>"$T/arrivals.log"
CAPPID=$BGPID
wait_for "[ -e $T/arrivals.txt.ready ]" 10 || fail "the arrival capture did not start"
ip netns exec "$A" tcpreplay -q -K -i "v$A" "$T/in.pcap" >"$T/replay.log" 2>&1 ||
	{ cat "$T/replay.log"; fail "tcpreplay failed"; }
sent=$(sed -nE 's/.*Actual: ([0-9]+) packets.*/\1/p' "$T/replay.log")

# Every flow must end on its own (no flow left for the shutdown to force out).
stat() { sed -n "s/^  $2: //p" "$T/$1.log" | tail -n 1; }
all_expired() { # name
	kill -USR1 "${PID[$1]}"
	[ "$(stat "$1" frames)" = "$sent" ] && [ "$(stat "$1" flows_active)" = 0 ] &&
		[ "$(stat "$1" export_flows)" = 14 ]
}
# no signal (kill -0): the capture ends by itself 4 s after the replay
stop_pid "$CAPPID" 0 || { cat "$T/arrivals.log"; fail "the arrival capture failed"; }
for pr in ebpf afp; do
	wait_for "all_expired $pr" 15 || { cat "$T/$pr.log"; fail "$pr: flows did not expire"; }
done
for pr in ebpf afp; do
	stop_pid "${PID[$pr]}" TERM || fail "$pr probe did not exit 0 on SIGTERM"
	wait_for "udp_drained ${PORT[$pr]} $B" 30 || fail "nfcapd ($pr) does not drain"
	stop_pid "${NF[$pr]}" TERM || true
	TZ=UTC nfdump -R "$T/nf-$pr" -o json >"$T/$pr.json"
done
cat "$T/ebpf.log"
for s in flows_expired_tcp_end flows_expired_forced; do
	[ "$(stat ebpf $s)" = "$(stat afp $s)" ] || fail "$s: ebpf $(stat ebpf $s), afpacket $(stat afp $s)"
done
# The busy flows' second records may end by either timeout (their due times are a
# second apart).
for pr in ebpf afp; do
	[ $(($(stat $pr flows_expired_active) + $(stat $pr flows_expired_idle))) = 11 ] &&
		[ "$(stat $pr flows_expired_active)" -ge 3 ] && [ "$(stat $pr flows_expired_tcp_end)" = 3 ] ||
		fail "$pr: records ended for the wrong reasons"
done
[ "$(stat ebpf ebpf_continued)" -ge 3 ] || fail "the active timeouts did not keep the entries"

python3 - "$T/expect.txt" "$T/afp.json" "$T/ebpf.json" "$T/arrivals.txt" <<'PY' || fail "records differ"
import json, sys, datetime, time
def load(path):
    recs = {}
    for r in json.load(open(path)):
        if r.get("type") != "FLOW":
            continue
        k = (r.get("src4_addr") or r.get("src6_addr"), r.get("dst4_addr") or r.get("dst6_addr"),
             r["proto"], r.get("src_port", 0), r.get("dst_port", 0))
        t = lambda s: datetime.datetime.fromisoformat(s).timestamp() * 1000
        recs.setdefault(k, []).append((t(r["first"]), t(r["last"]), r["in_packets"],
                                       r["in_bytes"], r.get("tcp_flags", "")))
    return {k: sorted(v) for k, v in recs.items()}
want = {}
for line in open(sys.argv[1]):
    src, dst, proto, sp, dp, recs = line.split()
    want[(src, dst, int(proto), int(sp), int(dp))] = [int(x) for x in recs.split(",")]
afp, ebpf = load(sys.argv[2]), load(sys.argv[3])
tick_ms = time.clock_getres(6) * 1000  # CLOCK_MONOTONIC_COARSE: the kernel's tick
bad = 0
busy = ("10.1.0.8", "10.2.0.8", 17, 1008, 2008), ("10.1.0.9", "10.2.0.9", 17, 1009, 2009)
arrivals = {}
for line in open(sys.argv[4]):
    port, t = line.split()
    arrivals.setdefault(int(port), []).append(float(t))
for k, w in want.items():
    for name, got in (("afpacket", afp), ("ebpf", ebpf)):
        g = [r[2] for r in got.get(k, [])]
        if k in busy:
            # Two records, nothing lost between them, each within the active timeout
            # (4 s) plus a scan (eBPF cuts at the end of a scan); the second starts
            # with the packet after the first one's last: the arrivals before the
            # second's start are the first's packets (record times are whole ms, cut
            # down: 0.5 ms of slack), and the first ends with the last of them (1.5 ms).
            # eBPF times a flow's first packet and its first after a cut exactly, the
            # others by the clock tick: its first record's end may read a few ticks
            # early (the tick lags further while CPUs sleep), never late.
            recs = got.get(k, [])
            arr = arrivals.get(k[4], [])
            ok = sum(g) == w[0] and len(g) == 2 and all(r[1] - r[0] <= 5200 for r in recs) \
                and len(arr) == w[0]
            before = [t for t in arr if ok and t < recs[1][0] - 0.5]
            early = 4 * tick_ms if name == "ebpf" else 0
            print(f"{name} {k}: busy flow records {recs}, {len(before)} arrivals before the "
                  f"second, the last at {before[-1] if before else None}")
            bad += not ok or len(before) != g[0] or recs[1][0] <= recs[0][1] or \
                not before[-1] - 1.5 - early <= recs[0][1] <= before[-1] + 0.5
            continue
        if g != w:
            print(f"{name} {k}: records of {g} packets, want {w}")
            bad += 1
    if k in busy:
        continue
    for x, y in zip(afp.get(k, []), ebpf.get(k, [])):
        if abs(x[0] - y[0]) > 20 or abs(x[1] - y[1]) > 20 or x[2:] != y[2:]:
            print(f"{k}: afpacket {x} ebpf {y}")
            bad += 1
    print(k, "afpacket", afp.get(k), "ebpf", ebpf.get(k))
if set(afp) != set(want) or set(ebpf) != set(want):
    print("unexpected flows:", set(afp) ^ set(want), set(ebpf) ^ set(want))
    bad += 1
sys.exit(1 if bad else 0)
PY
echo "ok: eBPF and AF_PACKET cut the same records (active, inactive, FIN/RST grace)"
