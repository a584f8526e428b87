#!/usr/bin/env bash
# A full disk: the collector's store on a small tmpfs that fills up while NetFlow v9
# keeps coming. The collector keeps running, says on its log that records are lost
# and why, and counts them: at exit, records received = records in the store + records
# counted as dropped, exactly. Once there is room again it stores what comes, and every
# file reads back without a damaged block.
. "$(dirname "$0")/lib.sh"
need_root
big_rcvbuf
D=$T/small
mkdir -p "$D"
mount -t tmpfs -o size=3m tmpfs "$D" || skip "cannot mount a tmpfs"
on_exit "umount '$D'"
P=$(free_udp_port)
LOG=$T/collector.log # not on the full disk
bg "$BIN/tapflow-collector" -l "$D/store" -p "$P" -b 127.0.0.1 --flush 1 2>"$LOG"
COLL_PID=$BGPID
wait_for "grep -q 'listening on' '$LOG'" 20 || { cat "$LOG"; fail "tapflow-collector did not start"; }
# about 4.5 MB of store for 3 MB of room (8 bytes a flow here)
"$TOOLS/nfblast" --synth 600000 --random-src 600000 -d "127.0.0.1:$P" --rate 100000 >/dev/null
wait_for "udp_drained $P" 30 || fail "the collector does not drain its socket"
wait_for "grep -q 'records lost: writing them failed (No space left on device)' '$LOG'" 10 ||
	{ cat "$LOG"; fail "no log line says records are lost to a full disk"; }
kill -0 "$COLL_PID" || fail "the collector died on a full disk"
# room again: what comes next is stored
mount -o remount,size=64m "$D"
"$TOOLS/nfblast" --synth 100000 --random-src 100000 -d "127.0.0.1:$P" --rate 100000 >/dev/null
wait_for "udp_drained $P" 30 || fail "the collector does not drain its socket"
sleep 2 # a flush
stop_pid "$COLL_PID" INT || { cat "$LOG"; fail "the collector's exit status is not 0"; }

recv=$(sed -n 's/^  exporter 127.0.0.1: datagrams [0-9]* records \([0-9]*\) .*/\1/p' "$LOG" | tail -n 1)
dropped=$(sed -n 's/^  store_dropped: //p' "$LOG" | tail -n 1)
read -r stored _ _ <<<"$(tf_totals "$D/store")"
note "received $recv, stored $stored, dropped $dropped"
[ "$recv" = 700000 ] || fail "received $recv records, sent 700000"
[ "$dropped" -gt 0 ] || fail "nothing counted as dropped on a full disk"
[ $((stored + dropped)) = "$recv" ] ||
	fail "stored $stored + dropped $dropped != received $recv: the count is off"
# the last 100000 came after the disk had room again
[ "$stored" -ge 100000 ] || fail "only $stored records stored"
"$TOOLS/storecheck" "$D/store" >"$T/check" 2>&1 || { cat "$T/check"; fail "storecheck"; }
grep -q ' bad_blocks=0 .* bad_files=0' "$T/check" || { cat "$T/check"; fail "damaged store"; }
echo "ok: a full disk loses $dropped records, counted exactly and logged; $stored stored"
