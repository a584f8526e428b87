#!/usr/bin/env bash
# Probe interop: a generated pcap (TCP/UDP/ICMP, IPv4/IPv6, VLAN and QinQ tags, IPv4
# fragments, padded short frames) through `tapflow-probe -r` to the reference collector
# nfcapd; nfdump must read back exactly the generator's flows: packets, IP-layer bytes,
# first/last times equal to the pcap's own timestamps. The same datagrams, kept by a UDP
# sink, must decode in tshark with no "no template found".
. "$(dirname "$0")/lib.sh"
need_root
big_rcvbuf

"$TOOLS/genpcap" -o "$T/in.pcap" -t "$T/truth.csv" -n 150000 -s 7 >"$T/gen.txt"
note "generated: $(cat "$T/gen.txt")"
read -r gen_pk gen_by gen_fl <<<"$(sed -E 's/.*packets=([0-9]+) bytes=([0-9]+) flows=([0-9]+).*/\1 \2 \3/' "$T/gen.txt")"

# An independent count of the input: tshark's view of packets and IP bytes.
read -r ts_pk ts_by <<<"$(tshark -r "$T/in.pcap" -T fields -e ip.len -e ipv6.plen -Y 'ip or ipv6' 2>/dev/null |
	awk -F'\t' '{split($1,a,","); if (a[1] != "") b += a[1]; else { split($2,c,","); b += c[1] + 40 }; n++} END{print n, b}')"
note "tshark: packets=$ts_pk bytes=$ts_by"
[ "$ts_pk" = "$gen_pk" ] || fail "tshark counts $ts_pk packets, generator $gen_pk"
[ "$ts_by" = "$gen_by" ] || fail "tshark counts $ts_by IP bytes, generator $gen_by"

P1=$(free_udp_port)
start_nfcapd "$T/nfcapd" "$P1"
P2=$(free_udp_port)
bg python3 "$TOP/tests/tools/udpsink.py" "$P2" "$T/export.pcap" "$T/sink.ready" --idle 2
SINK=$BGPID
wait_for "[ -f $T/sink.ready ]" || fail "udp sink did not start"

"$BIN/tapflow-probe" -r "$T/in.pcap" -n "127.0.0.1:$P1" -n "127.0.0.1:$P2" \
	2>"$T/probe.log" || { cat "$T/probe.log"; fail "probe exited non-zero"; }
cat "$T/probe.log"
grep -q "^  packets: $gen_pk\$" "$T/probe.log" || fail "probe did not account every packet"
grep -q "^  bytes: $gen_by\$" "$T/probe.log" || fail "probe byte count differs from the input"
grep -q "^  export_send_errors: 0\$" "$T/probe.log" || fail "send errors"

# Loopback delivers a datagram during the send: once the probe has exited, stop each
# receiver when it has read its socket queue empty.
dgrams=$(sed -n 's/^  export_datagrams: //p' "$T/probe.log")
wait_for "udp_drained $P1" 30 || fail "nfcapd does not drain its socket"
stop_pid "$NFCAPD_PID" TERM || true
wait "$SINK" || true
got=$(tshark -r "$T/export.pcap" 2>/dev/null | wc -l)
[ "$got" = "$dgrams" ] || fail "sink received $got of $dgrams datagrams"

# JSON carries first/last to the millisecond (CSV has whole seconds).
TZ=UTC nfdump -R "$T/nfcapd" -o json >"$T/nfdump.json"
read -r nf_fl nf_pk nf_by <<<"$(nfdump_totals "$T/nfcapd")"
note "nfdump: flows=$nf_fl packets=$nf_pk bytes=$nf_by"
[ "$nf_pk" = "$gen_pk" ] || fail "nfdump packets $nf_pk != input $gen_pk"
[ "$nf_by" = "$gen_by" ] || fail "nfdump bytes $nf_by != input IP bytes $gen_by"
[ "$nf_fl" = "$gen_fl" ] || fail "nfdump flows $nf_fl != expected $gen_fl"
python3 "$TOP/tests/tools/cmpflows.py" "$T/truth.csv" "$T/nfdump.json" ||
	fail "flows differ from the generator's truth"

# tshark as an independent NetFlow decoder of our export.
tshark -r "$T/export.pcap" -d "udp.port==$P2,cflow" -V >"$T/tshark.txt" 2>/dev/null
if grep -qi "no template found" "$T/tshark.txt"; then
	fail "tshark: $(grep -ci 'no template found' "$T/tshark.txt") flowsets without template"
fi
ts_flows=$(grep -c '^ *\[Duration: ' "$T/tshark.txt" || true)
note "tshark decoded $ts_flows flow records"
[ "$ts_flows" = "$gen_fl" ] || fail "tshark decoded $ts_flows flow records, expected $gen_fl"
echo "ok: $gen_pk packets, $gen_fl flows, $gen_by bytes: nfdump and tshark agree"
