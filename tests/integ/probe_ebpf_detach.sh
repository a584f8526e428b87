#!/usr/bin/env bash
# eBPF backend, attach and detach: after SIGTERM nothing of ours is left (tcx links or
# TC filters, the clsact qdisc it created, XDP, promiscuous mode), even though the
# probe runs as nobody by then; a clsact qdisc that carries someone else's filter
# stays, with that filter. After kill -9, tcx links and XDP are gone with the process;
# clsact filters (--tc-attach clsact) stay behind, and the next start replaces them
# (or, on tcx, removes them) and then the qdisc the killed run made. A second probe on
# an interface in use is refused, and the first goes on. Backend choice: --capture
# auto takes eBPF when it can load it and says so; without the privileges for it (only
# CAP_NET_RAW) it falls back to AF_PACKET, saying why.
. "$(dirname "$0")/lib.sh"
need_root

A=tfda$$ B=tfdb$$
netns_pair "$A" "$B" 198.18.0.1 198.18.0.2
D=v$B
inb() { ip netns exec "$B" "$@"; }

ours_left() { # true if any program of ours is attached to $D, or loaded at all
	inb bpftool net show dev "$D" | grep -q tf_flow && return 0
	inb tc filter show dev "$D" ingress | grep -q tf_flow && return 0
	inb tc filter show dev "$D" egress | grep -q tf_flow && return 0
	# a tcx link holds its program: none loaded, none attached (this bpftool may not
	# list tcx links; the kernel frees a program an RCU grace period after its last
	# holder goes)
	! wait_for "! bpftool prog show | grep -q 'name tf_flow'" 5
}
status() { kill -USR1 "$PROBE"; wait_for "grep -q '^  ebpf_attach:' $LOG" 5; grep '^  ebpf_attach:' "$LOG" | tail -n 1; }
has_clsact() { inb tc qdisc show dev "$D" | grep -q clsact; }
promisc() { inb ip -d link show "$D" | grep -q 'promiscuity [1-9]'; }

N=0
start() { # start ARGS...: a probe on $D; sets PROBE, LOG
	N=$((N + 1))
	LOG=$T/probe$N.log
	bg ip netns exec "$B" "$BIN/tapflow-probe" -i "$D" -n 127.0.0.1:9 "$@" 2>"$LOG"
	PROBE=$BGPID
	wait_for "grep -q 'capturing on\\|error:' $LOG" 20 || true
	grep -q 'cannot load the program' "$LOG" && skip "this kernel cannot load the eBPF program: $(cat "$LOG")"
	grep -q 'capturing on' "$LOG" || { cat "$LOG"; fail "probe did not start ($*)"; }
}

# 1. Start, check what is attached, SIGTERM: nothing left. tcx (this kernel has it)...
start --capture ebpf
status | grep -q 'tcx ingress + tcx egress' || { status; fail "not attached through tcx"; }
! has_clsact || fail "a clsact qdisc with tcx"
promisc || fail "interface not promiscuous"
stop_pid "$PROBE" TERM || fail "probe did not exit 0 on SIGTERM"
! ours_left || fail "programs left after SIGTERM (tcx)"
! promisc || fail "promiscuous mode left on"
# ... and clsact.
start --capture ebpf --tc-attach clsact
status | grep -q 'tc ingress + tc egress' || { status; fail "not attached through clsact"; }
inb tc filter show dev "$D" ingress | grep -q 'tf_flow_in' || fail "no TC ingress filter"
inb tc filter show dev "$D" egress | grep -q 'tf_flow_out' || fail "no TC egress filter"
has_clsact || fail "no clsact qdisc"
promisc || fail "interface not promiscuous"
[ "$(awk '/^Uid:/{print $2}' /proc/$PROBE/status)" != 0 ] || fail "probe still runs as root"
stop_pid "$PROBE" TERM || fail "probe did not exit 0 on SIGTERM"
! ours_left || fail "programs left attached after SIGTERM"
! has_clsact || fail "the clsact qdisc the probe created is left"
! promisc || fail "promiscuous mode left on"

# 2. Someone else's clsact qdisc and filter stay.
inb tc qdisc add dev "$D" clsact
inb tc filter add dev "$D" ingress prio 1 bpf bytecode "1,6 0 0 0,"
for how in clsact tcx; do
	start --capture ebpf --tc-attach $how
	stop_pid "$PROBE" TERM || fail "probe did not exit 0 on SIGTERM"
	! ours_left || fail "programs left attached after SIGTERM ($how)"
	has_clsact || fail "removed a clsact qdisc it did not create ($how)"
done
inb tc filter show dev "$D" ingress | grep -q bytecode || fail "removed someone else's filter"
inb tc qdisc del dev "$D" clsact

# 3. kill -9: tcx links go with the process.
start --capture ebpf
kill -9 "$PROBE"
wait "$PROBE" 2>/dev/null || true
! ours_left || fail "tcx: programs left after kill -9"
# clsact filters stay; a tcx start removes them, and its stop the qdisc.
start --capture ebpf --tc-attach clsact
kill -9 "$PROBE"
wait "$PROBE" 2>/dev/null || true
ours_left || fail "expected the killed probe's filters to stay"
start --capture ebpf
grep -q 'removed the eBPF program a previous run left on TC ingress' "$LOG" ||
	fail "stale clsact program not removed by a tcx start"
! inb tc filter show dev "$D" ingress | grep -q tf_flow || fail "stale clsact filter left"
stop_pid "$PROBE" TERM || fail "probe did not exit 0 on SIGTERM"
! ours_left || fail "programs left after kill -9 (clsact), tcx start, SIGTERM"
! has_clsact || fail "the killed probe's clsact qdisc is left (tcx start)"
# A clsact start replaces them, and cleans up after.
start --capture ebpf --tc-attach clsact
kill -9 "$PROBE"
wait "$PROBE" 2>/dev/null || true
ours_left || fail "expected the killed probe's filters to stay"
start --capture ebpf --tc-attach clsact
grep -q 'replacing the eBPF program a previous run left' "$LOG" || fail "stale program not replaced"
[ "$(inb tc filter show dev "$D" ingress | grep -c 'handle 0x7466')" = 1 ] || fail "two ingress filters"
first=$PROBE
# ... and a second probe on the same interface is refused while this one runs.
rc=0
inb "$BIN/tapflow-probe" -i "$D" --capture ebpf -n 127.0.0.1:9 2>"$T/second.log" || rc=$?
[ $rc = 1 ] && grep -q 'in use by another tapflow-probe' "$T/second.log" ||
	{ cat "$T/second.log"; fail "a second probe on the same interface was not refused"; }
inb tc filter show dev "$D" ingress | grep -q tf_flow_in || fail "the refused probe detached the first"
stop_pid "$first" TERM || fail "probe did not exit 0 on SIGTERM"
! ours_left || fail "programs left attached after kill -9, restart, SIGTERM"
! has_clsact || fail "the killed probe's clsact qdisc is left"
# ... and on tcx.
start --capture ebpf
first=$PROBE
rc=0
inb "$BIN/tapflow-probe" -i "$D" --capture ebpf -n 127.0.0.1:9 2>"$T/second.log" || rc=$?
[ $rc = 1 ] && grep -q 'in use by another tapflow-probe' "$T/second.log" ||
	{ cat "$T/second.log"; fail "a second probe on a tcx interface was not refused"; }
status | grep -q 'tcx ingress' || fail "the refused probe disturbed the first"
stop_pid "$first" TERM || fail "probe did not exit 0 on SIGTERM"
! ours_left || fail "programs left after the tcx refusal"

# 4. XDP (a link: the kernel detaches it when the process dies).
start --xdp generic --direction in
inb bpftool net show dev "$D" | grep -q 'xdp' && inb ip link show "$D" | grep -q xdpgeneric ||
	fail "no XDP program attached"
kill -9 "$PROBE"
wait "$PROBE" 2>/dev/null || true
wait_for "! ip netns exec $B ip link show $D | grep -q xdp" 5 || fail "XDP left after kill -9"
start --xdp generic --direction in
stop_pid "$PROBE" TERM || fail "probe did not exit 0 on SIGTERM"
! ours_left || fail "programs left attached after XDP run"
inb ip link show "$D" | grep -q xdp && fail "XDP left after SIGTERM"

# 5. Backend choice and its log line.
start --capture auto
grep -q 'capture: ebpf (the kernel allows it)' "$LOG" || { cat "$LOG"; fail "auto did not pick eBPF"; }
stop_pid "$PROBE" TERM || fail "probe did not exit 0 on SIGTERM"
start --capture auto -w 2
grep -q 'capture: afpacket (eBPF not used: --workers' "$LOG" || fail "auto with -w 2: no reason given"
stop_pid "$PROBE" TERM || fail "probe did not exit 0 on SIGTERM"
if command -v setpriv >/dev/null; then
	bg ip netns exec "$B" setpriv --reuid=65534 --regid=65534 --clear-groups \
		--inh-caps=-all,+net_raw --ambient-caps=-all,+net_raw \
		"$BIN/tapflow-probe" -i "$D" -u root -n 127.0.0.1:9 2>"$T/noperm.log"
	PROBE=$BGPID
	wait_for "grep -q 'capturing on' $T/noperm.log" 20 || { cat "$T/noperm.log"; fail "probe without CAP_BPF did not start"; }
	grep -q 'capture: afpacket (eBPF not used: ebpf: cannot load the program: Operation not permitted' \
		"$T/noperm.log" || { cat "$T/noperm.log"; fail "no fallback reason"; }
	stop_pid "$PROBE" TERM || fail "probe did not exit 0 on SIGTERM"
	! ours_left || fail "the failed load left something attached"
fi
rc=0
"$BIN/tapflow-probe" -r /dev/null --capture ebpf -n 127.0.0.1:9 2>/dev/null || rc=$?
[ $rc = 2 ] || fail "--capture ebpf with -r is not a usage error"
echo "ok: clean detach (tcx and clsact) after SIGTERM and after kill -9 + restart; auto picks and says why"
