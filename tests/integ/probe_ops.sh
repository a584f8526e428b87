#!/usr/bin/env bash
# Probe operations: --help and --version, the example config file drives a run, flags
# override it, a bad config line is reported with file, line and reason, usage errors
# exit 2, SIGUSR1 prints statistics, root is dropped after opening sockets, and a
# capture file counts the same read from a pipe; a file cut short while read gives a
# clear error, not a crash.
. "$(dirname "$0")/lib.sh"
PROBE=$BIN/tapflow-probe
"$PROBE" --help >"$T/help" || fail "--help exited non-zero"
for opt in read interface collector config active-timeout inactive-timeout tcp-end-timeout \
	max-flows workers source-id mtu template-packets template-secs sample snaplen ring-mb \
	promisc direction capture user stats-interval; do
	grep -q -- "--.*$opt" "$T/help" || fail "--help does not document --$opt"
done
grep -q '^SIGNALS' "$T/help" && grep -q '^EXIT STATUS' "$T/help" || fail "--help lacks man page sections"
"$PROBE" --version | grep -qE '^tapflow-probe [0-9]+\.[0-9]+' || fail "--version"

# Every setting of the example config is a real option: load it, with -r overriding
# the interface it names.
"$TOOLS/genpcap" -o "$T/in.pcap" -n 2000 -s 2 >"$T/gen.txt"
P=$(free_udp_port)
bg python3 "$TOP/tests/tools/udpsink.py" "$P" "$T/out.pcap" "$T/ready" --idle 1
SINK=$BGPID
wait_for "[ -f $T/ready ]"
sed -e "s|^interface = .*|# interface|" -e "s|^collector = .*|collector = [\"127.0.0.1:$P\"];|" \
	"$TOP/deploy/tapflow-probe.conf" >"$T/probe.conf"
"$PROBE" -c "$T/probe.conf" -r "$T/in.pcap" --active-timeout 30 2>"$T/run.log" ||
	{ cat "$T/run.log"; fail "probe with the example config failed"; }
grep -q '^  packets: 2000$' "$T/run.log" || fail "config run did not account the file"
grep -q 'running as user nobody' "$T/run.log" || fail "root was not dropped"
wait "$SINK" || true
[ "$(tshark -r "$T/out.pcap" 2>/dev/null | wc -l)" -gt 0 ] || fail "nothing exported"

# Bad config lines name the file and line.
printf 'collector = ["127.0.0.1:9"];\nactive_timout = 5;\n' >"$T/bad1.conf"
rc=0; "$PROBE" -c "$T/bad1.conf" -r "$T/in.pcap" 2>"$T/err" || rc=$?
[ $rc = 2 ] && grep -q "bad1.conf:2: unknown setting 'active_timout'" "$T/err" ||
	{ cat "$T/err"; fail "unknown setting not reported with file:line"; }
printf 'collector = ["127.0.0.1:9"];\n\nmax_flows = "many";\n' >"$T/bad2.conf"
rc=0; "$PROBE" -c "$T/bad2.conf" -r "$T/in.pcap" 2>"$T/err" || rc=$?
[ $rc = 2 ] && grep -q "bad2.conf:3: max_flows" "$T/err" || { cat "$T/err"; fail "bad value not reported"; }
printf 'collector = ["127.0.0.1:9"]\nworkers = ;\n' >"$T/bad3.conf"
rc=0; "$PROBE" -c "$T/bad3.conf" -r "$T/in.pcap" 2>"$T/err" || rc=$?
[ $rc = 2 ] && grep -q "bad3.conf:2: syntax error" "$T/err" || { cat "$T/err"; fail "syntax error not reported"; }

# Usage errors exit 2 with a hint; runtime errors exit 1 with one clear line.
rc=0; "$PROBE" -r "$T/in.pcap" 2>"$T/err" || rc=$?
[ $rc = 2 ] && grep -q "no collector" "$T/err" || fail "missing -n not reported"
rc=0; "$PROBE" -r "$T/in.pcap" -n nowhere 2>"$T/err" || rc=$?
[ $rc = 1 ] && grep -q "collector 'nowhere'" "$T/err" || { cat "$T/err"; fail "bad collector not reported"; }
rc=0; "$PROBE" -r "$T/none.pcap" -n 127.0.0.1:9 2>"$T/err" || rc=$?
[ $rc = 1 ] && grep -q "none.pcap" "$T/err" || fail "missing file not reported"
rc=0; "$PROBE" -r "$T/in.pcap" -n 127.0.0.1:9 'tcp and and' 2>"$T/err" || rc=$?
[ $rc = 1 ] && grep -q "filter 'tcp and and'" "$T/err" || { cat "$T/err"; fail "bad filter not reported"; }
# A filter keeps only what it matches.
"$PROBE" -r "$T/in.pcap" -n 127.0.0.1:9 'tcp' 2>"$T/err"
# (pcap's 'tcp' does not look inside VLAN tags; tshark's display filter does)
tcp=$(tshark -r "$T/in.pcap" -Y 'tcp && !vlan' 2>/dev/null | wc -l)
grep -q "^  packets: $tcp\$" "$T/err" || fail "filter 'tcp': expected $tcp packets"

# A file is mapped; a pipe is read() into a buffer: both count the same.
"$PROBE" -r "$T/in.pcap" -n 127.0.0.1:9 2>"$T/mapped.log"
cat "$T/in.pcap" | "$PROBE" -r /dev/stdin -n 127.0.0.1:9 2>"$T/piped.log"
for k in packets bytes flows_created export_records; do
	a=$(grep "^  $k: " "$T/mapped.log"); b=$(grep "^  $k: " "$T/piped.log")
	[ -n "$a" ] && [ "$a" = "$b" ] || fail "pipe and file differ: '$a' vs '$b'"
done
grep -q '^  packets: 2000$' "$T/piped.log" || fail "pipe: not every packet accounted"

# A file cut short while it is read (its writer truncating it) ends the run with a
# clear error and the flows read so far exported, never a crash (SIGBUS on the mapping).
"$TOOLS/genpcap" -o "$T/big.pcap" -n 400000 -s 4 >/dev/null
# The probe reads the whole file in about 60 ms here: early cuts, and a probe that
# finished before its cut (kill fails, exit 0) is no hit, not an error.
hit=0
for d in 0.005 0.01 0.02 0.03 0.005 0.01 0.02 0.04; do
	cp "$T/big.pcap" "$T/cut.pcap"
	"$PROBE" -r "$T/cut.pcap" -n 127.0.0.1:9 2>"$T/cut.log" &
	cpid=$!
	sleep "$d"; kill -STOP $cpid 2>/dev/null || true
	truncate -s 50000000 "$T/cut.pcap"
	kill -CONT $cpid 2>/dev/null || true
	rc=0; wait $cpid || rc=$?
	[ "$rc" -lt 128 ] || { cat "$T/cut.log"; fail "probe died (exit $rc) on a file cut short"; }
	if [ "$rc" = 1 ]; then
		grep -q 'cut short while being read' "$T/cut.log" || { cat "$T/cut.log"; fail "no clear error"; }
		grep -qE '^  export_records: [1-9]' "$T/cut.log" || fail "flows read before the cut not exported"
		hit=$((hit + 1))
	fi
done
[ "$hit" -gt 0 ] || fail "the truncation never landed inside a read (timing): no check made"
rm -f "$T/big.pcap" "$T/cut.pcap"

if [ "$(id -u)" = 0 ] && ip link add tfdummy$$ type dummy 2>/dev/null; then
	on_exit "ip link del tfdummy$$"
	ip link set tfdummy$$ up
	bg "$PROBE" -i tfdummy$$ -n 127.0.0.1:9 2>"$T/live.log"
	LIVE=$BGPID
	wait_for "grep -q 'capturing on' $T/live.log" 10 || fail "live probe did not start"
	kill -USR1 "$LIVE"
	wait_for "grep -q '^  kernel_drops: ' $T/live.log" 5 || fail "SIGUSR1 printed no statistics"
	[ "$(awk '/^Uid:/{print $2}' /proc/$LIVE/status)" != 0 ] || fail "live probe still runs as root"
	stop_pid "$LIVE" TERM || fail "live probe did not exit 0 on SIGTERM"
fi
echo ok
