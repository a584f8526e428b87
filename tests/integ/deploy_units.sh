#!/usr/bin/env bash
# systemd units as `make install PREFIX=...` installs them: `systemd-analyze verify` says
# nothing about any of them (nor about the probe with the eBPF drop-in), `systemd-analyze
# security` scores each at most 2.0 (3.0 with the drop-in) and as the unit's (or
# drop-in's) own comment says, and the
# directives the issue asks for are there. No systemd runs here, so each unit's identity
# is then reproduced with setpriv (an unprivileged user, exactly the unit's capabilities,
# no_new_privs) and its ExecStart lines run as written, in network namespaces:
#   tapflow-mirror@vB: vB ends up up, promiscuous, NOARP, without addresses, GRO/GSO/TSO off;
#   tapflow-probe with only CAP_NET_RAW captures the mirrored frames (and fails without
#   it); tapflow-collector without capabilities stores what the probe exports, reloads
#   on SIGHUP; tapflow-query reads the exact packets sent.
# Every system call the probe and the collector make (strace) must pass the unit's
# SystemCallFilter, so the seccomp filter cannot break them on a real system.
. "$(dirname "$0")/lib.sh"
need_root
for c in systemd-analyze setpriv strace; do
	command -v $c >/dev/null || skip "$c missing"
done
cd "$TOP"
pfx=$T/prefix
make --no-print-directory install PREFIX="$pfx/usr" >"$T/install.log" 2>&1 ||
	{ tail -n 20 "$T/install.log"; fail "make install"; }
U=$pfx/usr/lib/systemd/system
units=(tapflow-probe.service tapflow-probe@.service tapflow-collector.service tapflow-mirror@.service)
for u in "${units[@]}"; do [ -f "$U/$u" ] || fail "make install did not install $u"; done
[ -f "$pfx/usr/lib/sysctl.d/60-tapflow-collector.conf" ] || fail "no sysctl.d file"
grep -q "^ExecStart=$pfx/usr/sbin/tapflow-probe " "$U/tapflow-probe.service" || fail "unit paths not set to PREFIX"

# The eBPF variant: the probe unit with the drop-in applied after it.
mkdir -p "$T/ebpf"
cat "$U/tapflow-probe.service" "$pfx/usr/share/doc/tapflow/examples/tapflow-probe-ebpf.conf" \
	>"$T/ebpf/tapflow-probe.service"

# verify: silence is success (it exits 0 on unknown keys and bad values too).
for f in "$U"/*.service "$T/ebpf/tapflow-probe.service"; do
	out=$(cd "$(dirname "$f")" && MANPATH=$pfx/usr/share/man: systemd-analyze verify "$(basename "$f")" 2>&1) ||
		fail "verify $f: $out"
	[ -z "$out" ] || fail "systemd-analyze verify $f: $out"
done

# security: the score, its bound, and the unit's comment.
sdv=$(systemd-analyze --version | sed -n 's/^systemd \([0-9]*\).*/\1/p')
for f in "$U"/*.service "$T/ebpf/tapflow-probe.service"; do
	score=$(cd "$(dirname "$f")" && systemd-analyze security --offline=true "$(basename "$f")" 2>&1 |
		sed -n 's/.*Overall exposure level for .*: \([0-9.]*\) .*/\1/p')
	[ -n "$score" ] || fail "no security score for $f"
	note "systemd-analyze security $(basename "$f")$(case $f in "$T"/ebpf/*) echo " + eBPF drop-in" ;; esac): $score"
	max=2.0
	case $f in "$T"/ebpf/*) max=3.0 ;; esac # three capabilities more, and bpf()
	awk -v s="$score" -v m=$max 'BEGIN { exit !(s <= m) }' || fail "$f: exposure $score > $max"
	claim=$(sed -n "s/^# systemd-analyze security .*(systemd $sdv): \([0-9.]*\) .*/\1/p" "$f" | tail -n 1)
	[ -z "$claim" ] || [ "$claim" = "$score" ] || fail "$f says $claim in its comment, systemd $sdv says $score"
done

# The directives asked for.
has() { grep -qx -- "$2" "$U/$1" || fail "$1 lacks '$2'"; }
for u in tapflow-probe.service tapflow-probe@.service tapflow-collector.service; do
	has $u "User=tapflow"
	has $u "ProtectSystem=strict"
	has $u "NoNewPrivileges=yes"
	grep -q '^ReadWritePaths=' "$U/$u" && fail "$u has writable paths besides the store"
done
for u in tapflow-probe.service tapflow-probe@.service; do
	has $u "AmbientCapabilities=CAP_NET_RAW"
	has $u "CapabilityBoundingSet=CAP_NET_RAW"
	grep -q '^ExecStart=.*tapflow-probe .* --user ""$' "$U/$u" || fail "$u: the probe would switch user"
done
has tapflow-collector.service "CapabilityBoundingSet="
has tapflow-collector.service "StateDirectory=tapflow"
grep -q '^AmbientCapabilities=.' "$U/tapflow-collector.service" && fail "collector has capabilities"
for c in CAP_NET_RAW CAP_NET_ADMIN CAP_BPF CAP_PERFMON; do
	grep -q "^CapabilityBoundingSet=.*$c" "$T/ebpf/tapflow-probe.service" || fail "eBPF drop-in lacks $c"
done

# execs UNIT INSTANCE: the unit's ExecStart lines, one per line, %I/%i replaced.
execs() { sed -n 's/^ExecStart=//p' "$U/$1" | sed "s/%[iI]/$2/g"; }
# as_unit NS CAPS TRACE CMD...: runs CMD in netns NS as nobody with exactly CAPS ("+net_raw",
# or "" for none) and no_new_privs, as systemd would run the unit (its search PATH for
# bare command names); under strace -f into TRACE unless TRACE is "".
as_unit() {
	local ns=$1 caps=$2 trace=$3
	shift 3
	local pre=()
	[ -n "$trace" ] && pre=(strace -f -qq -o "$trace")
	ip netns exec "$ns" env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
		"${pre[@]}" setpriv --reuid=65534 --regid=65534 --clear-groups --no-new-privs \
		--inh-caps="-all${caps:+,$caps}" --ambient-caps="-all${caps:+,$caps}" \
		--bounding-set="-all${caps:+,$caps}" -- "$@"
}
# unit_caps UNIT: "+cap_a,+cap_b" from its (last) AmbientCapabilities; UNIT a name in $U
# or a path.
unit_caps() {
	local f=$1
	[ -f "$f" ] || f=$U/$1
	sed -n 's/^AmbientCapabilities=//p' "$f" | tail -n 1 | tr ' ' '\n' | grep . |
		tr 'A-Z' 'a-z' | sed 's/^cap_/+/' | paste -sd,
}

# The programs run below are found (and, on a failure, ended) by their unique path.
on_exit "for p in \$(pgrep -f '$pfx/usr/sbin/tapflow-'); do kill \$p; done"

# A mirror port: frames for vB's MAC arrive from A; B has no address (the mirror unit).
netns_pair tfuA tfuB 10.77.0.1 10.77.0.2
mac=$(ip -n tfuB -o link show vtfuB | sed -n 's/.*link\/ether \([0-9a-f:]*\).*/\1/p')
ip -n tfuA neigh add 10.77.0.2 lladdr "$mac" dev vtfuA nud permanent

mcaps=$(unit_caps tapflow-mirror@.service)
[ "$mcaps" = "+net_admin" ] || fail "mirror unit capabilities: $mcaps"
grep -qx 'DynamicUser=yes' "$U/tapflow-mirror@.service" || fail "mirror unit is not DynamicUser"
while IFS= read -r line; do
	ignore=0
	case $line in -*) ignore=1; line=${line#-} ;; esac
	read -ra argv <<<"$line"
	if ! as_unit tfuB "$mcaps" "" "${argv[@]}" >>"$T/mirror.log" 2>&1; then
		[ $ignore = 1 ] || { cat "$T/mirror.log"; fail "mirror unit: '$line' failed"; }
	fi
done < <(execs tapflow-mirror@.service vtfuB)
link=$(ip -n tfuB -o link show vtfuB)
for flag in PROMISC NOARP UP; do
	[[ $link == *[,\<]$flag[,\>]* ]] || fail "vtfuB not $flag after the mirror unit: $link"
done
ip -n tfuB -o address show dev vtfuB | grep -q inet && fail "vtfuB still has an address"
for feat in generic-receive-offload generic-segmentation-offload tcp-segmentation-offload; do
	ip netns exec tfuB ethtool -k vtfuB | grep -q "^$feat: off" || fail "$feat still on"
done
note "mirror unit: vtfuB up, promiscuous, NOARP, no address, offloads off"

# Collector and probe, configured at the paths their units read.
cport=$(ip netns exec tfuB python3 -c 'import socket; s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
store=$T/store
mkdir -p "$store"
chown 65534:65534 "$store"
chmod 755 "$T"
cat >"$pfx/usr/etc/tapflow/tapflow-collector.conf" <<EOF
dir = "$store";
port = $cport;
bind = "127.0.0.1";
flush = "1s";
EOF
# The HTTP API too, where the collector has one: its queries run under the filter.
hport=""
if "$pfx/usr/sbin/tapflow-collector" --help | grep -q -- '--http '; then
	hport=$(ip netns exec tfuB python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
	echo "http = \"127.0.0.1:$hport\";" >>"$pfx/usr/etc/tapflow/tapflow-collector.conf"
fi
cat >"$pfx/usr/etc/tapflow/tapflow-probe.conf" <<EOF
interface = ["vtfuB"];
collector = ["127.0.0.1:$cport"];
EOF
[ "$(unit_caps tapflow-collector.service)" = "" ] || fail "collector unit has capabilities"
read -ra cexec <<<"$(execs tapflow-collector.service x)"
bg as_unit tfuB "" "$T/coll.strace" "${cexec[@]}" 2>"$T/coll.log"
COLL=$BGPID
wait_for "grep -q 'listening on' $T/coll.log" 30 || { cat "$T/coll.log"; fail "collector did not start as its unit"; }

pcaps=$(unit_caps tapflow-probe.service)
[ "$pcaps" = "+net_raw" ] || fail "probe unit capabilities: $pcaps"
eval "pexec=($(execs tapflow-probe.service x))" # its quoting: --user ""
# Without the capability it must fail, and say why.
if as_unit tfuB "" "" "${pexec[@]}" >"$T/nocap.log" 2>&1; then
	fail "probe captured without CAP_NET_RAW"
fi
grep -q CAP_NET_RAW "$T/nocap.log" || { cat "$T/nocap.log"; fail "probe did not name the missing capability"; }
bg as_unit tfuB "$pcaps" "$T/probe.strace" "${pexec[@]}" 2>"$T/probe.log"
PROBE=$BGPID
wait_for "grep -q 'capturing on' $T/probe.log" 30 || { cat "$T/probe.log"; fail "probe did not start as its unit"; }
# 20 flows of 10 UDP packets, sent from A to vB's MAC.
ip netns exec tfuA python3 -c '
import socket
for sp in range(40000, 40020):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("10.77.0.1", sp))
    for _ in range(10):
        s.sendto(b"x" * 100, ("10.77.0.2", 9999))
    s.close()'
ppid=$(pgrep -u 65534 -f "tapflow-probe -c $pfx" | head -n 1)
[ -n "$ppid" ] || fail "no probe process"
captured() { kill -USR1 "$ppid"; sleep 0.1; [ "$(sed -n 's/^  packets: //p' "$T/probe.log" | tail -n 1)" = 200 ]; }
wait_for captured 20 || { cat "$T/probe.log"; fail "probe did not capture the 200 packets"; }
kill -TERM "$ppid"
wait "$PROBE" || { cat "$T/probe.log"; fail "probe did not exit 0 on SIGTERM"; }
grep -q 'capture: afpacket\|(afpacket)' "$T/probe.log" || { cat "$T/probe.log"; fail "probe did not capture with afpacket"; }
want_fl=20 want_pk=200 want_by=25600

# With the eBPF drop-in and capture = "ebpf", the eBPF backend loads, attaches, counts
# and exports (if this probe has one).
if "$pfx/usr/sbin/tapflow-probe" --help | grep -q 'auto|ebpf'; then
	echo 'capture = "ebpf";' >>"$pfx/usr/etc/tapflow/tapflow-probe.conf"
	ecaps=$(unit_caps "$T/ebpf/tapflow-probe.service")
	[ "$ecaps" = "+net_raw,+net_admin,+bpf,+perfmon" ] || fail "eBPF drop-in capabilities: $ecaps"
	bg as_unit tfuB "$ecaps" "$T/ebpf.strace" "${pexec[@]}" 2>"$T/ebpf.log"
	EPROBE=$BGPID
	wait_for "grep -q 'capturing on' $T/ebpf.log" 30 || { cat "$T/ebpf.log"; fail "eBPF probe did not start as its unit"; }
	grep -q 'capture: ebpf' "$T/ebpf.log" || { cat "$T/ebpf.log"; fail "the drop-in's rights do not give the eBPF backend"; }
	rxp() { ip netns exec tfuB cat /sys/class/net/vtfuB/statistics/rx_packets; }
	rx0=$(rxp)
	ip netns exec tfuA python3 -c '
import socket
for sp in range(41000, 41010):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("10.77.0.1", sp))
    for _ in range(5):
        s.sendto(b"y" * 50, ("10.77.0.2", 9999))
    s.close()'
	wait_for "[ \$(rxp) -ge $((rx0 + 50)) ]" 10 ||
		fail "vtfuB did not receive the packets"
	epid=$(pgrep -u 65534 -f "tapflow-probe -c $pfx" | head -n 1)
	kill -TERM "$epid"
	wait "$EPROBE" || { cat "$T/ebpf.log"; fail "eBPF probe did not exit 0 on SIGTERM"; }
	grep -q '^  export_send_errors: 0$' "$T/ebpf.log" || fail "eBPF probe send errors"
	efl=$(sed -n 's/^  export_flows: //p' "$T/ebpf.log")
	epk=$(sed -n 's/^  packets: //p' "$T/ebpf.log")
	eby=$(sed -n 's/^  bytes: //p' "$T/ebpf.log")
	[ "${efl:-0}" -ge 1 ] || { cat "$T/ebpf.log"; fail "eBPF probe exported no flow"; }
	want_fl=$((want_fl + efl)) want_pk=$((want_pk + epk)) want_by=$((want_by + eby))
	note "eBPF drop-in: capture ebpf as nobody with $ecaps: $efl flows, $epk packets exported"
else
	note "this probe has no eBPF backend: drop-in checked by systemd-analyze only"
fi
wait_for "udp_drained $cport tfuB" 20 || fail "collector does not drain"
if [ -n "$hport" ]; then
	for path in "/api/v1/query?stat=srcip" /api/v1/status; do
		ip netns exec tfuB python3 -c 'import sys, urllib.request
r = urllib.request.urlopen("http://127.0.0.1:%s%s" % (sys.argv[1], sys.argv[2]), timeout=20)
sys.exit(0 if r.status == 200 and r.read() else 1)' "$hport" "$path" || fail "HTTP API $path failed as its unit"
	done
	note "HTTP API answered a query and its status as the unit"
fi
cpid=$(pgrep -u 65534 -f "tapflow-collector -c $pfx" | head -n 1)
kill -HUP "$cpid" # ExecReload
wait_for "grep -q 'SIGHUP: reloaded' $T/coll.log" 10 || { cat "$T/coll.log"; fail "collector did not reload on SIGHUP"; }
kill -TERM "$cpid"
wait "$COLL" || { cat "$T/coll.log"; fail "collector did not exit 0 on SIGTERM"; }
got=$(tf_totals "$store")
[ "$got" = "$want_fl $want_pk $want_by" ] || fail "query: flows packets bytes = $got, exported $want_fl $want_pk $want_by"
find "$store" -type f ! -user 65534 | grep -q . && fail "store files not owned by the service user"
note "probe (CAP_NET_RAW only) -> collector (no capabilities): flows packets bytes $got"

# Every system call made must pass the units' SystemCallFilter.
# UNIT TRACE DENIALS: DENIALS are calls the filter may refuse (EPERM) because the
# program copes: with capture "auto" the probe tries bpf() first and, refused, captures
# with afpacket (checked above).
traces=("$U/tapflow-probe.service" "$T/probe.strace" bpf
	"$U/tapflow-collector.service" "$T/coll.strace" -)
[ -f "$T/ebpf.strace" ] && traces+=("$T/ebpf/tapflow-probe.service" "$T/ebpf.strace" -)
python3 - "${traces[@]}" <<'PY'
import re, subprocess, sys
groups, cur = {}, None
for line in subprocess.run(["systemd-analyze", "syscall-filter"], capture_output=True, text=True).stdout.splitlines():
    if line.startswith("@"):
        cur = groups.setdefault(line.split()[0], set())
    elif cur is not None and line.startswith("    ") and not line.strip().startswith("#"):
        cur.add(line.strip())
def expand(names, seen=()):
    out = set()
    for n in names:
        if n.startswith("@"):
            if n not in seen:
                out |= expand(groups.get(n, ()), seen + (n,))
        else:
            out.add(n)
    return out
bad = False
for unit, trace, ok in zip(sys.argv[1::3], sys.argv[2::3], sys.argv[3::3]):
    allowed = None
    for line in open(unit):
        if line.startswith("SystemCallFilter="):
            v = line.split("=", 1)[1].split()
            if v and v[0].startswith("~"):
                allowed -= expand([v[0][1:]] + v[1:])
            else:
                allowed = (allowed or set()) | expand(v)
    used = set()
    started = False
    for line in open(trace):
        m = re.match(r"^\d+\s+(?:<\.\.\. )?(\w+)[( ]", line)
        if not m:
            continue
        # Only what the program does: from its execve on (setpriv's own calls are not its).
        if re.match(r'^\d+\s+execve\("[^"]*/tapflow-', line):
            started = True
        if started:
            used.add(m.group(1))
    expected = set(ok.split(",")) - {"-"}
    denied = sorted(used - allowed - expected)
    print("%s: %d system calls used, denied by its filter: %s%s" % ("/".join(unit.split("/")[-2:]),
          len(used), denied or "none", " (and, as meant, %s)" % ",".join(sorted((used - allowed) & expected))
          if (used - allowed) & expected else ""))
    bad |= bool(denied)
sys.exit(1 if bad else 0)
PY
[ $? = 0 ] || fail "a program makes system calls its unit's filter denies"
