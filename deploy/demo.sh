#!/usr/bin/env bash
# The whole path on this machine, no hardware needed: generate a capture, replay it
# through tapflow-probe, collect the NetFlow v9 export with tapflow-collector into a
# store, and ask tapflow-query what was seen. Everything lives in a temporary directory
# (kept if TAPFLOW_DEMO_DIR is set) and on 127.0.0.1.
set -eu
cd "$(dirname "$0")/.."
B=build
dir=${TAPFLOW_DEMO_DIR:-$(mktemp -d /tmp/tapflow-demo.XXXXXX)}
mkdir -p "$dir"
coll=""
cleanup() {
	[ -n "$coll" ] && kill "$coll" 2>/dev/null && wait "$coll" 2>/dev/null
	[ -z "${TAPFLOW_DEMO_DIR:-}" ] && rm -rf "$dir"
	return 0
}
trap cleanup EXIT

echo "== 1. a capture: 200,000 packets of generated TCP/UDP/ICMP, IPv4/IPv6, VLANs"
$B/tools/genpcap -o "$dir/demo.pcap" -t "$dir/truth.csv" -n 200000 -s 1
port=$(python3 -c 'import socket; s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')

echo "== 2. tapflow-collector listening on 127.0.0.1:$port, storing into $dir/store"
$B/tapflow-collector -l "$dir/store" -p "$port" -b 127.0.0.1 2>"$dir/collector.log" &
coll=$!
for _ in $(seq 200); do
	grep -q "listening" "$dir/collector.log" 2>/dev/null && break
	sleep 0.05
done

echo "== 3. tapflow-probe -r demo.pcap -n 127.0.0.1:$port"
$B/tapflow-probe -r "$dir/demo.pcap" -n "127.0.0.1:$port" 2>&1 | grep -E 'packets|bytes|flows_created|export_(records|datagrams)' || true

# The collector stores what it has received when it stops (SIGTERM), losing nothing.
kill -TERM "$coll"; wait "$coll" || true; coll=""
echo "== 4. tapflow-query -R store (summary), then top 10 destination ports by bytes"
$B/tapflow-query -R "$dir/store"
$B/tapflow-query -R "$dir/store" -s dstport/bytes -n 10 2>/dev/null || true
echo "== 5. the same summary as JSON"
$B/tapflow-query -R "$dir/store" -o json
