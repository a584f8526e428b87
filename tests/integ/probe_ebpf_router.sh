#!/usr/bin/env bash
# eBPF backend, router mode: three namespaces, client - router - server, forwarding on in
# the router, IPv4 and IPv6, one server network connected to the router and one behind
# the server (a route via it). tapflow-probe --router runs in the router on both of its
# interfaces. Every forwarded flow must come out once (not once per interface), with
# the input interface it came in on and the output interface and next hop that the
# router's own table gives (`ip route get DST from SRC iif IN`: next hop 0 for a
# connected network); packets the router sends itself have input interface 0.
. "$(dirname "$0")/lib.sh"
need_root

C=tfrc$$ R=tfrr$$ S=tfrs$$
for n in "$C" "$R" "$S"; do
	ip netns add "$n"
	on_exit "ip netns del $n"
	ip -n "$n" link set lo up
done
ip link add "vc$$" netns "$C" type veth peer name "vr1$$" netns "$R"
ip link add "vr2$$" netns "$R" type veth peer name "vs$$" netns "$S"
ip -n "$C" addr add 10.77.1.2/24 dev "vc$$"
ip -n "$C" addr add fd77:1::2/64 dev "vc$$" nodad
ip -n "$R" addr add 10.77.1.1/24 dev "vr1$$"
ip -n "$R" addr add fd77:1::1/64 dev "vr1$$" nodad
ip -n "$R" addr add 10.77.2.1/24 dev "vr2$$"
ip -n "$R" addr add fd77:2::1/64 dev "vr2$$" nodad
ip -n "$S" addr add 10.77.2.2/24 dev "vs$$"
ip -n "$S" addr add fd77:2::2/64 dev "vs$$" nodad
ip -n "$S" addr add 10.77.9.1/32 dev lo
ip -n "$S" addr add fd77:9::1/128 dev lo
ip -n "$C" link set "vc$$" up
ip -n "$R" link set "vr1$$" up
ip -n "$R" link set "vr2$$" up
ip -n "$S" link set "vs$$" up
ip -n "$C" route add default via 10.77.1.1
ip -n "$C" -6 route add default via fd77:1::1
ip -n "$S" route add default via 10.77.2.1
ip -n "$S" -6 route add default via fd77:2::1
ip netns exec "$R" sysctl -qw net.ipv4.ip_forward=1
ip netns exec "$R" sysctl -qw net.ipv6.conf.all.forwarding=1
ip -n "$R" route add 10.77.9.0/24 via 10.77.2.2
ip -n "$R" -6 route add fd77:9::/64 via fd77:2::2

P=$(free_udp_port)
start_nfcapd "$T/nf" "$P" "$R"
bg ip netns exec "$R" "$BIN/tapflow-probe" --router -i "vr1$$" -i "vr2$$" -n "127.0.0.1:$P" 2>"$T/probe.log"
PROBE=$BGPID
wait_for "grep -q 'capturing on\\|error:' $T/probe.log" 20 || true
grep -q 'cannot load the program' "$T/probe.log" && skip "this kernel cannot load the eBPF program: $(cat "$T/probe.log")"
grep -q 'capturing on' "$T/probe.log" || { cat "$T/probe.log"; fail "probe did not start"; }

# ping DST COUNT: ICMP echo over a raw socket, every reply awaited (no ping binary needed).
cat >"$T/ping.py" <<'PY'
import socket, struct, sys, time
dst, count = sys.argv[1], int(sys.argv[2])
v6 = ":" in dst
s = socket.socket(socket.AF_INET6 if v6 else socket.AF_INET, socket.SOCK_RAW,
                  socket.IPPROTO_ICMPV6 if v6 else socket.IPPROTO_ICMP)
s.settimeout(2)
def csum(b):
    b += b"\0" * (len(b) & 1)
    x = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    x = (x >> 16) + (x & 0xffff)
    return ~(x + (x >> 16)) & 0xffff
for seq in range(count):
    hdr = struct.pack("!BBHHH", 128 if v6 else 8, 0, 0, 0x7466, seq)
    data = b"tapflow" * 8
    if not v6:  # the kernel sums ICMPv6 for us, not ICMP
        hdr = struct.pack("!BBHHH", 8, 0, csum(hdr + data), 0x7466, seq)
    s.sendto(hdr + data, (dst, 0))
    while True:
        b = s.recv(2048)
        icmp = b if v6 else b[(b[0] & 15) * 4:]
        if icmp[0] == (129 if v6 else 0) and struct.unpack("!HH", icmp[4:8]) == (0x7466, seq):
            break
    time.sleep(0.2)
PY
ping() { ip netns exec "$1" python3 "$T/ping.py" "$2" "$3"; }
ping "$C" 10.77.2.2 3 || fail "no route client -> server"
ping "$C" 10.77.9.1 3 || fail "no route client -> server network"
ping "$C" fd77:9::1 3 || fail "no IPv6 route"
ping "$C" fd77:2::2 3 || fail "no IPv6 route (connected)"
ip netns exec "$C" python3 -c '
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for i in range(5):
    s.sendto(b"x" * 100, ("10.77.9.1", 9999))'
ping "$R" 10.77.2.2 2 || fail "router cannot reach the server"

stop_pid "$PROBE" TERM || fail "probe did not exit 0 on SIGTERM"
cat "$T/probe.log"
wait_for "udp_drained $P $R" 30 || fail "nfcapd does not drain"
stop_pid "$NFCAPD_PID" TERM || true
[ "$(sed -n 's/^  ebpf_fib_ok: //p' "$T/probe.log")" -gt 0 ] 2>/dev/null || fail "no route lookups counted"
grep -q '^  ebpf_attach: tcx ingress + tcx egress (own packets) on 2 interfaces, router' "$T/probe.log" ||
	fail "router attach not reported"

TZ=UTC nfdump -R "$T/nf" -o json >"$T/flows.json"
ifindex() { ip -n "$R" -o link show "$1" | cut -d: -f1; }
python3 - "$T/flows.json" "$R" "vr1$$" "$(ifindex "vr1$$")" "vr2$$" "$(ifindex "vr2$$")" <<'PY' ||
import json, subprocess, sys
path, ns = sys.argv[1], sys.argv[2]
devs = {int(sys.argv[4]): sys.argv[3], int(sys.argv[6]): sys.argv[5]}
idx = {v: k for k, v in devs.items()}
flows = [r for r in json.load(open(path)) if r.get("type") == "FLOW"]
bad = seen_via = seen_local = 0
def route(dst, src, iif):
    out = subprocess.run(["ip", "-n", ns, "route", "get", dst, "from", src, "iif", iif],
                         capture_output=True, text=True, check=True).stdout.split()
    dev = out[out.index("dev") + 1] if "dev" in out else None
    via = out[out.index("via") + 1] if "via" in out else None
    return (out[0] == "local"), dev, via
for r in flows:
    src = r.get("src4_addr") or r.get("src6_addr")
    dst = r.get("dst4_addr") or r.get("dst6_addr")
    nh = r.get("ip4_next_hop") or r.get("ip6_next_hop")
    i, o, pk = r["input_snmp"], r["output_snmp"], r["in_packets"]
    desc = f"{src} -> {dst} proto {r['proto']} in {i} out {o} nh {nh} packets {pk}"
    # Neighbour discovery, MLD and other link-local chatter is not what we test.
    if not all(a.startswith(("10.77.", "fd77:")) for a in (src, dst)) or \
            (r["proto"] == 58 and 130 <= r.get("icmp_type", 0) <= 137):
        continue
    print(desc)
    if i == 0:  # sent by the router itself
        seen_local += 1
        if src != "10.77.2.1" or o != idx[sys.argv[5]] or nh != "0.0.0.0" or pk != 2:
            print("  wrong: the router's own ping leaves on", sys.argv[5], "2 packets")
            bad += 1
        continue
    if i not in devs:
        print("  wrong input interface"); bad += 1; continue
    local, dev, via = route(dst, src, devs[i])
    want_o = 0 if local else idx.get(dev, -1)
    want_nh = via or ("0.0.0.0" if "." in dst else "::")
    if o != want_o or (not local and nh != want_nh):
        print(f"  wrong: ip route get says {'local' if local else dev} via {via}")
        bad += 1
    seen_via += bool(via) and not local
    if r.get("icmp_type") in (0, 8, 128, 129) and not local and pk != 3:
        print("  wrong packet count: 3 echoes forwarded (counted twice?)")
        bad += 1
print(f"{len(flows)} flows, {seen_via} through a gateway, {seen_local} from the router")
sys.exit(1 if bad or seen_via != 3 or seen_local != 1 else 0)
PY
	fail "exported interfaces or next hops do not match the router's table"
echo "ok: router mode exports input/output interface and next hop as the routing table says"
