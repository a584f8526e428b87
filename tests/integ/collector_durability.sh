#!/usr/bin/env bash
# Durability: a steady NetFlow v9 stream into tapflow-collector, killed with SIGKILL at
# random moments and restarted on the same store each time. Afterwards every file must
# read back with no damaged block, and every record received more than the flush
# interval before a kill must be in the store.
. "$(dirname "$0")/lib.sh"
need_root
FLUSH=2
KILLS=${KILLS:-4}
P=$(free_udp_port)
start_tapflow_collector "$T/store" "$P" --flush "$FLUSH" --rotate 60

# nfblast numbers its records (bytes = i + 1) and logs when it sent each.
bg "$TOOLS/nfblast" --synth 100000000 -d "127.0.0.1:$P" --rate 3000 --log "$T/sent.log"
BLAST=$BGPID
kills=() restarts=()
# The files rotate each minute: the run spans a minute boundary, so a file is closed
# (by rotation, or by recovery after a kill) while the stream goes on.
to_boundary=$((60 - $(date +%s) % 60))
for k in $(seq "$KILLS"); do
	# a random moment 2.0 to 7.0 s into this run (the scenario, not a synchronisation)
	d=$(awk -v s="$RANDOM" 'BEGIN{srand(s); printf "%.2f", 2 + 5 * rand()}')
	# kill #2 waits for the minute's end if need be (up to a minute: a run started just
	# after a boundary has to cross the next one)
	[ "$k" = 2 ] && d=$(awk -v a="$d" -v b="$to_boundary" 'BEGIN{print (a > b - 4 ? a : b - 4)}')
	sleep "$d"
	kill -KILL "$COLL_PID"
	wait "$COLL_PID" 2>/dev/null || true
	kills+=("$(date +%s%3N)")
	note "kill -9 #$k at ${kills[-1]}"
	mv "$T/store.log" "$T/store.$k.log"
	start_tapflow_collector "$T/store" "$P" --flush "$FLUSH" --rotate 60
	restarts+=("$(date +%s%3N)")
	grep -q "recovered" "$T/store.log" && note "$(grep recovered "$T/store.log")"
done
sleep 2
stop_pid "$BLAST" TERM || true
wait_for "udp_drained $P" 20 || fail "collector does not drain"
stop_pid "$COLL_PID" TERM || fail "collector did not exit 0 on SIGTERM"

"$TOOLS/storecheck" "$T/store" --bytes >"$T/stored" 2>"$T/check" || { cat "$T/check"; fail "store damaged"; }
note "store: $(cat "$T/check")"
files=$(sed -nE 's/.*files=([0-9]+) .*/\1/p' "$T/check")
[ "$files" -ge 2 ] || fail "the run did not cross a rotation (started $to_boundary s before one)"
# A record may be lost only if it was sent within FLUSH seconds (plus 1 s for queueing
# and scheduling) before a kill, or while the collector was down; all others must be
# there.
python3 - "$T/sent.log" "$T/stored" "$FLUSH" "${kills[*]}" "${restarts[*]}" <<'PY'
import sys
sent_log, stored_f, flush = sys.argv[1], sys.argv[2], int(sys.argv[3])
kills = [int(k) for k in sys.argv[4].split()]
restarts = [int(k) for k in sys.argv[5].split()]
horizon = flush * 1000 + 1000
excused = [(k - horizon, r) for k, r in zip(kills, restarts)]
sent = {}
for line in open(sent_log):
    i, ms = line.split()
    sent[int(i) + 1] = int(ms)
stored = set(int(x) for x in open(stored_f))
def is_excused(ms):
    return any(a <= ms <= b for a, b in excused)
for (a, b), k in zip(excused, kills):
    lost = sum(1 for i, ms in sent.items() if a <= ms <= b and i not in stored)
    print(f"kill at {k}: {lost} records lost between the flush horizon and the restart "
          f"({(b - a) / 1000:.1f} s)")
must = [i for i, ms in sent.items() if not is_excused(ms)]
missing = [i for i in must if i not in stored]
extra = [i for i in stored if i not in sent]
print(f"sent {len(sent)} records; {len(must)} had to be stored, {len(missing)} missing; "
      f"{len(stored)} stored, {len(extra)} unexpected")
if missing:
    print("first missing:", sorted(missing)[:10], [sent[i] for i in sorted(missing)[:10]])
sys.exit(1 if missing or extra else 0)
PY
