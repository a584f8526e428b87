# lib.sh: shared helpers for the integration tests (sourced). Every test runs as root,
# works in its own temporary directory and network namespaces, and cleans up on every
# exit path through the cleanup hooks registered here.
set -eu
TOP=${TOP:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
BIN=$TOP/build
SAN=$TOP/build-san
TOOLS=$TOP/build/tools
TESTDATA=${TF_TESTDATA:-$TOP/../shared/testdata}
T=$(mktemp -d /tmp/tapflow-test.XXXXXX)
_cleanups=()
_pids=()

on_exit() { _cleanups+=("$*"); }
_run_cleanups() {
	local rc=$?
	set +e
	for p in "${_pids[@]}"; do kill "$p" 2>/dev/null; done
	for p in "${_pids[@]}"; do wait "$p" 2>/dev/null; done
	for ((i = ${#_cleanups[@]} - 1; i >= 0; i--)); do eval "${_cleanups[$i]}" >/dev/null 2>&1; done
	rm -rf "$T"
	exit $rc
}
trap _run_cleanups EXIT
trap 'exit 130' INT TERM

# bg CMD...: starts CMD in the background, remembers its PID for cleanup; sets BGPID.
bg() { "$@" & BGPID=$!; _pids+=("$BGPID"); }

# stop_pid PID [SIG]: signals a process we started and waits for it; returns its status.
stop_pid() {
	local pid=$1 sig=${2:-TERM} rc=0
	kill -"$sig" "$pid" 2>/dev/null || true
	wait "$pid" || rc=$?
	local keep=()
	for p in "${_pids[@]}"; do [ "$p" != "$pid" ] && keep+=("$p"); done
	_pids=("${keep[@]+"${keep[@]}"}")
	return $rc
}

fail() { echo "FAIL: $*" >&2; exit 1; }
skip() { echo "SKIP: $*"; exit 77; }
note() { echo "# $*"; }

need_root() { [ "$(id -u)" = 0 ] || skip "needs root"; }

# free_udp_port: a UDP port nothing on this host (or namespace) listens on.
free_udp_port() {
	python3 -c 'import socket; s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# wait_for COND_CMD [SECS]: polls until the command succeeds (no fixed sleeps).
wait_for() {
	local cmd=$1 secs=${2:-20} i=0
	while ! eval "$cmd" >/dev/null 2>&1; do
		i=$((i + 1))
		[ $i -gt $((secs * 20)) ] && return 1
		sleep 0.05
	done
}

# udp_listening PORT [NETNS]: true when some socket listens on UDP PORT.
udp_listening() {
	local port=$1 ns=${2:-}
	if [ -n "$ns" ]; then
		ip netns exec "$ns" ss -Hlnu "sport = :$port" | grep -q .
	else
		ss -Hlnu "sport = :$port" | grep -q .
	fi
}

# big_rcvbuf: lets collectors ask for 64 MiB socket buffers (restored on exit).
big_rcvbuf() {
	local old
	old=$(sysctl -n net.core.rmem_max)
	if [ "$old" -lt 67108864 ]; then
		sysctl -qw net.core.rmem_max=67108864
		on_exit "sysctl -qw net.core.rmem_max=$old"
	fi
}

# start_nfcapd DIR PORT [NETNS]: nfcapd on 127.0.0.1:PORT storing into DIR; sets NFCAPD_PID.
start_nfcapd() {
	local dir=$1 port=$2 ns=${3:-}
	mkdir -p "$dir"
	local pre=()
	[ -n "$ns" ] && pre=(ip netns exec "$ns")
	bg "${pre[@]+"${pre[@]}"}" nfcapd -w "$dir" -p "$port" -b 127.0.0.1 -B 67108864 -t 3600 >"$dir.log" 2>&1
	NFCAPD_PID=$BGPID
	wait_for "udp_listening $port $ns" 20 || fail "nfcapd did not start (see $dir.log)"
}

# nfdump_totals DIR: "flows packets bytes" as nfdump reads the store.
nfdump_totals() {
	TZ=UTC nfdump -R "$1" -I | awk -F': ' '/^Flows:/{f=$2} /^Packets:/{p=$2} /^Bytes:/{b=$2} END{print f, p, b}'
}

# netns_pair A B ADDR_A ADDR_B: two namespaces joined by a veth pair (vA in A, vB in B),
# IPv4 only: IPv6 is off in both before any link is up, so no neighbour discovery or
# router solicitation ever crosses the pair among the packets a test counts.
netns_pair() {
	local a=$1 b=$2 aa=$3 ab=$4
	ip netns add "$a"; on_exit "ip netns del $a"
	ip netns add "$b"; on_exit "ip netns del $b"
	ip netns exec "$a" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
	ip netns exec "$b" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
	# MTU above 1500 so VLAN- and QinQ-tagged full-size frames fit.
	ip link add "v$a" netns "$a" mtu 1600 type veth peer name "v$b" netns "$b" mtu 1600
	ip -n "$a" addr add "$aa/24" dev "v$a"
	ip -n "$b" addr add "$ab/24" dev "v$b"
	for n in "$a" "$b"; do
		ip -n "$n" link set lo up
	done
	ip -n "$a" link set "v$a" up
	ip -n "$b" link set "v$b" up
}

# udp_drained PORT [NETNS]: true when the receive queue of the socket on UDP PORT is
# empty, i.e. the receiver has read every datagram already delivered to it.
udp_drained() {
	local port=$1 ns=${2:-} q
	if [ -n "$ns" ]; then
		q=$(ip netns exec "$ns" ss -Hlnu "sport = :$port" | awk '{s+=$2} END{print s+0}')
	else
		q=$(ss -Hlnu "sport = :$port" | awk '{s+=$2} END{print s+0}')
	fi
	[ "$q" = 0 ]
}

# start_tapflow_collector DIR PORT [EXTRA_ARGS...]: our collector on 127.0.0.1:PORT;
# sets COLL_PID and waits until it listens.
start_tapflow_collector() {
	local dir=$1 port=$2
	shift 2
	bg "$BIN/tapflow-collector" -l "$dir" -p "$port" -b 127.0.0.1 "$@" 2>"$dir.log"
	COLL_PID=$BGPID
	wait_for "grep -q 'listening on' $dir.log" 20 || { cat "$dir.log"; fail "tapflow-collector did not start"; }
}

# tf_totals DIR: "flows packets bytes" as tapflow-query reads the store.
tf_totals() {
	"$BIN/tapflow-query" -R "$1" -o json | python3 -c 'import json,sys; s=json.load(sys.stdin)["summary"]; print(s["flows"], s["packets"], s["bytes"])'
}

# capture_export PORT OUT.pcap CMD...: runs an exporter CMD while a UDP sink on PORT keeps
# every datagram it sends in OUT.pcap.
capture_export() {
	local port=$1 out=$2
	shift 2
	rm -f "$out.ready"
	bg python3 "$TOP/tests/tools/udpsink.py" "$port" "$out" "$out.ready" --idle 3
	local sink=$BGPID
	wait_for "[ -f $out.ready ]" || fail "udp sink did not start"
	"$@"
	wait "$sink" || true
}
