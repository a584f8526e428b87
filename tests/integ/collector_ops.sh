#!/usr/bin/env bash
# Collector operations: --help, the example config file, IPv6 and IPv4 exporters on the
# one dual-stack socket, the allow list (others counted as denied) and its reload on
# SIGHUP, SIGUSR1 statistics, retention at start-up, a store that can be queried while
# the collector runs (within the flush interval), clear errors for bad settings, and a
# stop that stores what the socket still holds.
. "$(dirname "$0")/lib.sh"
COLL=$BIN/tapflow-collector
"$COLL" --help >"$T/help" || fail "--help"
for opt in dir port bind config rotate flush compress max-age max-size allow apply-sampling \
	rcvbuf queue-size max-templates max-exporters pending-size pending-age user; do
	grep -qE -- "--(\[no-\])?$opt" "$T/help" || fail "--help does not document --$opt"
done
"$COLL" --version | grep -qE '^tapflow-collector [0-9]' || fail "--version"
rc=0; "$COLL" -p 9 2>"$T/err" || rc=$?
[ $rc = 2 ] && grep -q "give -l DIR" "$T/err" || fail "missing -l not reported"
printf 'dir = "%s";\nrotate = "90s";\n' "$T/x" >"$T/bad.conf"
rc=0; "$COLL" -c "$T/bad.conf" 2>"$T/err" || rc=$?
[ $rc = 2 ] && grep -q "multiple of 60" "$T/err" || { cat "$T/err"; fail "bad rotate not reported"; }
printf 'dir = "%s";\nallow = ["10.0.0.0/33"];\n' "$T/x" >"$T/bad2.conf"
rc=0; "$COLL" -c "$T/bad2.conf" -p "$(free_udp_port)" 2>"$T/err" || rc=$?
[ $rc = 1 ] && grep -q "10.0.0.0/33" "$T/err" || { cat "$T/err"; fail "bad prefix not reported"; }

"$TOOLS/genpcap" -o "$T/in.pcap" -n 3000 -s 4 >/dev/null
P=$(free_udp_port)
bg python3 "$TOP/tests/tools/udpsink.py" "$P" "$T/export.pcap" "$T/ready" --idle 1
SINK=$BGPID
wait_for "[ -f $T/ready ]"
"$BIN/tapflow-probe" -r "$T/in.pcap" -n "127.0.0.1:$P" 2>"$T/probe.log"
wait "$SINK" || true
want=$(sed -n 's/^  export_records: //p' "$T/probe.log")

# A store file from long ago, for retention to remove at start-up.
mkdir -p "$T/store/2020/01/01"
P=$(free_udp_port)
sed -e "s|^dir = .*|dir = \"$T/store\";|" -e "s|^max_age = 0;.*|max_age = \"30d\";|" \
	-e "s|^allow = \[\];|allow = [\"127.0.0.1\"];|" -e "s|^bind = \"\";|bind = \"\";|" \
	-e "s|^flush = .*|flush = \"1s\";|" \
	"$TOP/deploy/tapflow-collector.conf" >"$T/coll.conf"
# Seed the old file by running a collector once, then renaming its file into 2020.
start_tapflow_collector "$T/seed" "$P"
"$TOOLS/nfblast" -r "$T/export.pcap" -d "127.0.0.1:$P" >/dev/null
wait_for "udp_drained $P"
stop_pid "$COLL_PID" TERM
mv "$(find "$T/seed" -name '*.tfs' | head -n 1)" "$T/store/2020/01/01/tf-202001010000.tfs"

bg "$COLL" -c "$T/coll.conf" -p "$P" 2>"$T/coll.log"
C=$BGPID
wait_for "grep -q 'listening on' $T/coll.log" || { cat "$T/coll.log"; fail "collector did not start"; }
wait_for "[ ! -e $T/store/2020 ]" 5 || fail "retention did not delete the 2020 file"
grep -q "retention: deleted 1 files" "$T/coll.log" || fail "retention not logged"

# IPv4 from an allowed address is stored; queryable before the collector stops.
"$TOOLS/nfblast" -r "$T/export.pcap" -d "127.0.0.1:$P" >/dev/null
wait_for "[ \"\$(tf_totals $T/store | cut -d' ' -f1)\" = $want ]" 5 ||
	fail "flows not queryable within the flush interval ($(tf_totals "$T/store"), want $want)"
# IPv6 from ::1 is not on the allow list: counted as denied.
"$TOOLS/nfblast" -r "$T/export.pcap" -d "[::1]:$P" >/dev/null
wait_for "udp_drained $P"
kill -USR1 "$C"
wait_for "grep -q '^  denied: [1-9]' $T/coll.log" 5 || { cat "$T/coll.log"; fail "IPv6 datagrams not counted as denied"; }
# SIGHUP: allow ::1 too; now IPv6 is stored.
sed -i "s|^allow = .*|allow = [\"127.0.0.1\", \"::1\"];|" "$T/coll.conf"
kill -HUP "$C"
wait_for "grep -q 'SIGHUP: reloaded' $T/coll.log" 5 || fail "SIGHUP not handled"
"$TOOLS/nfblast" -r "$T/export.pcap" -d "[::1]:$P" >/dev/null
wait_for "udp_drained $P"
stop_pid "$C" TERM || fail "collector did not exit 0"
grep -q "  exporter ::1: datagrams [1-9]" "$T/coll.log" || { cat "$T/coll.log"; fail "no IPv6 exporter after reload"; }
got=$(tf_totals "$T/store" | cut -d' ' -f1)
[ "$got" = $((2 * want)) ] || fail "stored $got flows, expected $((2 * want)) (IPv4 once, IPv6 once)"
echo "ok: $got flows from 127.0.0.1 and ::1; denied before the reload, stored after"

# Two receivers (SO_REUSEPORT): 16 exporters (each replay has its own source port, so the
# kernel spreads them over both sockets) all stored, and both receivers took a share.
start_tapflow_collector "$T/multi" "$P" --receivers 2
grep -q "2 receivers" "$T/multi.log" || fail "--receivers 2 not in effect"
for _ in $(seq 16); do
	"$TOOLS/nfblast" -r "$T/export.pcap" -d "127.0.0.1:$P" >/dev/null
done
wait_for "udp_drained $P"
stop_pid "$COLL_PID" TERM || fail "collector with two receivers did not exit 0"
for i in 0 1; do
	grep -q "^  receiver_${i}_datagrams: [1-9]" "$T/multi.log" ||
		{ cat "$T/multi.log"; fail "receiver $i took no datagram"; }
done
got=$(tf_totals "$T/multi" | cut -d' ' -f1)
[ "$got" = $((16 * want)) ] || fail "two receivers: stored $got flows, expected $((16 * want))"
echo "ok: two receivers stored $got flows ($(grep -h '_datagrams:' "$T/multi.log" | tr -s ' ' | tr '\n' ' '))"

# Socket drops are counted: a stopped collector with a small receive buffer overflows;
# every datagram sent is either received or counted as dropped by the kernel.
start_tapflow_collector "$T/drops" "$P" --rcvbuf 64k
kill -STOP "$COLL_PID"
for _ in 1 2 3 4; do "$TOOLS/nfblast" -r "$T/export.pcap" -d "127.0.0.1:$P" >/dev/null; done
kill -CONT "$COLL_PID"
wait_for "udp_drained $P"
stop_pid "$COLL_PID" TERM || fail "collector did not exit 0 after drops"
sent=$((4 * $(sed -n 's/^  export_datagrams: //p' "$T/probe.log")))
rcvd=$(sed -n 's/^  datagrams: //p' "$T/drops.log" | tail -n 1)
drops=$(sed -n 's/^  socket_drops: //p' "$T/drops.log" | tail -n 1)
[ "${drops:-0}" -gt 0 ] || { cat "$T/drops.log"; fail "no socket drops counted"; }
[ $((rcvd + drops)) = "$sent" ] || fail "received $rcvd + socket drops $drops != sent $sent"
grep -q "datagrams dropped by the kernel" "$T/drops.log" || { cat "$T/drops.log"; fail "socket drops not logged"; }
echo "ok: $sent datagrams to a stopped collector: $rcvd received, $drops counted as socket drops"

# A stop takes what the socket holds: datagrams queued while the collector was frozen,
# before it was told to stop, are all stored (a probe's last export just before the
# collector stops).
start_tapflow_collector "$T/stopq" "$P"
kill -STOP "$COLL_PID"
"$TOOLS/nfblast" --synth 50000 -d "127.0.0.1:$P" >/dev/null
kill -TERM "$COLL_PID"
stop_pid "$COLL_PID" CONT || fail "collector did not exit 0 after a stop with datagrams queued"
got=$(tf_totals "$T/stopq" | cut -d' ' -f1)
[ "$got" = 50000 ] || { cat "$T/stopq.log"; fail "stopped with datagrams queued: stored $got of 50000 flows"; }
echo "ok: a stop with 50000 flows queued in the socket stored them all"
