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
echo "== 4. tapflow-query -R store"
$B/tapflow-query -R "$dir/store"
echo "== 5. the same as JSON, and what the generator says went in"
$B/tapflow-query -R "$dir/store" -o json
awk -F, 'NR > 1 {f++; p += $9; b += $10} END {printf "generator truth: flows %d, packets %d, bytes %d\n", f, p, b}' "$dir/truth.csv"
