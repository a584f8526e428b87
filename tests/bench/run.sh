#!/usr/bin/env bash
# make bench: tapflow against its peers, each figure measured in the same run on the
# same input (this machine is noisy: compare the ratios, not the absolute numbers).
#   tests/bench/run.sh [probe|live|collector|memory|all]
set -eu
TOP=$(cd "$(dirname "$0")/../.." && pwd)
B=$TOP/build
W=$(mktemp -d /tmp/tapflow-bench.XXXXXX)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
	ip netns del tfbench-a 2>/dev/null; ip netns del tfbench-b 2>/dev/null
	ip netns del tfbench-ea 2>/dev/null; ip netns del tfbench-eb 2>/dev/null
	rm -rf "$W"
	return 0
}
trap cleanup EXIT
what=${1:-all}
NPKT=${BENCH_PACKETS:-1000000}

secs() { # secs CMD...: wall seconds of CMD (its output discarded)
	local t0 t1
	t0=$(date +%s.%N)
	"$@" >/dev/null 2>&1 || true
	t1=$(date +%s.%N)
	echo "$t1 - $t0" | bc -l
}
rate() { printf '%.0f' "$(echo "$1 / $2" | bc -l)"; }

# A UDP port that takes export datagrams and throws them away (nobody reads it).
P=$(python3 -c 'import socket; s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
python3 -c "import socket,signal,time; s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); s.bind(('127.0.0.1',$P)); signal.pause()" &
pids+=($!)

bench_probe() {
	echo "== probe: pcap file -> NetFlow, $NPKT packets (genpcap), packets per second"
	"$B/tools/genpcap" -o "$W/in.pcap" -n "$NPKT" -s 3 >/dev/null
	"$B/tools/genpcap" -o "$W/tiny.pcap" -n 10 -s 3 >/dev/null
	cat "$W/in.pcap" >/dev/null # page cache warm for everyone
	local t_tf t_sf t_nf t_pm t_pm0
	t_tf=$(secs "$B/tapflow-probe" -r "$W/in.pcap" -n "127.0.0.1:$P")
	t_sf=$(secs softflowd -r "$W/in.pcap" -n "127.0.0.1:$P" -v 9 -c none -m 1000000 -d)
	mkdir -p "$W/nfp"
	t_nf=$(secs nfpcapd -r "$W/in.pcap" -w "$W/nfp")
	for f in in tiny; do
		cat >"$W/pm-$f.conf" <<CONF
daemonize: false
pcap_savefile: $W/$f.pcap
plugins: nfprobe
nfprobe_receiver: 127.0.0.1:$P
nfprobe_version: 9
nfprobe_maxflows: 1000000
plugin_buffer_size: 102400
plugin_pipe_size: 102400000
CONF
	done
	t_pm0=$(secs timeout 60 pmacctd -f "$W/pm-tiny.conf")
	t_pm=$(secs timeout 300 pmacctd -f "$W/pm-in.conf")
	t_pm=$(echo "if ($t_pm - $t_pm0 > 0.001) $t_pm - $t_pm0 else 0.001" | bc -l)
	local r_tf r_sf r_nf r_pm
	r_tf=$(rate "$NPKT" "$t_tf"); r_sf=$(rate "$NPKT" "$t_sf")
	r_nf=$(rate "$NPKT" "$t_nf"); r_pm=$(rate "$NPKT" "$t_pm")
	printf '  %-34s %10s pkt/s  %6.2fs\n' "tapflow-probe -r" "$r_tf" "$t_tf"
	printf '  %-34s %10s pkt/s  %6.2fs  (tapflow %.1fx)\n' "softflowd -r -c none -m 1000000" "$r_sf" "$t_sf" "$(echo "$r_tf/$r_sf" | bc -l)"
	printf '  %-34s %10s pkt/s  %6.2fs  (tapflow %.1fx)\n' "nfpcapd -r" "$r_nf" "$t_nf" "$(echo "$r_tf/$r_nf" | bc -l)"
	printf '  %-34s %10s pkt/s  %6.2fs  (tapflow %.1fx; start-up %.1fs subtracted)\n' "pmacctd nfprobe (savefile)" "$r_pm" "$t_pm" "$(echo "$r_tf/$r_pm" | bc -l)" "$t_pm0"

	echo "== probe: instructions per packet (callgrind, 100k packets)"
	"$B/tools/genpcap" -o "$W/c.pcap" -n 100000 -s 3 >/dev/null
	valgrind --tool=callgrind --callgrind-out-file="$W/cg.out" "$B/tapflow-probe" -u root -r "$W/c.pcap" -n "127.0.0.1:$P" >/dev/null 2>&1
	local total per_pkt
	total=$(callgrind_annotate "$W/cg.out" 2>/dev/null | sed -n 's/^ *\([0-9,]*\) .*PROGRAM TOTALS.*/\1/p' | tr -d ,)
	per_pkt=$(callgrind_annotate --inclusive=yes "$W/cg.out" 2>/dev/null | awk '/worker_packet/ {gsub(",","",$1); print $1; exit}')
	printf '  tapflow-probe whole process      %6d instructions/packet\n' $((total / 100000))
	printf '  parse + flow update (worker_packet, inclusive) %d instructions/packet\n' $((per_pkt / 100000))
	valgrind --tool=callgrind --callgrind-out-file="$W/cg2.out" softflowd -r "$W/c.pcap" -n "127.0.0.1:$P" -v 9 -c none -m 1000000 -d >/dev/null 2>&1
	total=$(callgrind_annotate "$W/cg2.out" 2>/dev/null | sed -n 's/^ *\([0-9,]*\) .*PROGRAM TOTALS.*/\1/p' | tr -d ,)
	printf '  softflowd whole process          %6d instructions/packet\n' $((total / 100000))
	valgrind --tool=callgrind --callgrind-out-file="$W/cg3.out" nfpcapd -r "$W/c.pcap" -w "$W/nfp" >/dev/null 2>&1
	total=$(callgrind_annotate "$W/cg3.out" 2>/dev/null | sed -n 's/^ *\([0-9,]*\) .*PROGRAM TOTALS.*/\1/p' | tr -d ,)
	printf '  nfpcapd whole process            %6d instructions/packet\n' $((total / 100000))
	echo "== probe: flow table memory"
	"$B/tapflow-probe" -r "$W/tiny.pcap" -n "127.0.0.1:$P" --max-flows 1000000 2>&1 | grep -E 'flow_table' | sed 's/^/  /'
}

bench_live() {
	echo "== probe: live capture on a veth pair (tcpreplay), 2 workers"
	ip netns add tfbench-a; ip netns add tfbench-b
	ip link add vtfa netns tfbench-a mtu 1600 type veth peer name vtfb netns tfbench-b mtu 1600
	for n in tfbench-a tfbench-b; do
		ip -n $n link set lo up
		ip netns exec $n sysctl -qw net.ipv6.conf.all.disable_ipv6=1
	done
	ip -n tfbench-a link set vtfa up; ip -n tfbench-b link set vtfb up
	"$B/tools/genpcap" -o "$W/live.pcap" -n 300000 -s 9 >/dev/null
	for pps in 100000 200000 400000 0; do
		ip netns exec tfbench-b "$B/tapflow-probe" -i vtfb -w 2 -n 127.0.0.1:9 2>"$W/live.log" &
		local pp=$!
		for _ in $(seq 100); do grep -q 'capturing on' "$W/live.log" && break; sleep 0.05; done
		local args=(--pps "$pps"); [ "$pps" = 0 ] && args=(--topspeed)
		local out sent
		out=$(ip netns exec tfbench-a tcpreplay -q -K "${args[@]}" -i vtfa "$W/live.pcap" 2>&1)
		sent=$(echo "$out" | sed -nE 's/.*Actual: ([0-9]+) packets.*/\1/p')
		local achieved
		achieved=$(echo "$out" | sed -nE 's/.*Rated: .* ([0-9.]+) pps.*/\1/p')
		for _ in $(seq 40); do
			kill -USR1 $pp; sleep 0.05
			[ "$(sed -n 's/^  frames: //p' "$W/live.log" | tail -n 1)" -ge "$sent" ] 2>/dev/null && break
		done
		kill -TERM $pp; wait $pp || true
		local got drops
		got=$(sed -n 's/^  frames: //p' "$W/live.log" | tail -n 1)
		drops=$(sed -n 's/^  kernel_drops: //p' "$W/live.log" | tail -n 1)
		printf '  rate %-9s achieved %8.0f pkt/s: sent %d, captured %d, kernel drops %d, lost %d\n' \
			"$([ "$pps" = 0 ] && echo top || echo "$pps")" "$achieved" "$sent" "$got" "$drops" $((sent - got))
	done
}

# bench_memory: the probe's resident memory (VmRSS) holding 100k and 1M active flows, and
# bytes per flow, from which rpi/*.conf size max_flows. One UDP packet per flow (distinct
# source addresses), timeouts of a day, --max-flows equal to the flows so the table ends
# exactly full. The probe reads the capture from a FIFO kept open, so it waits at the end
# of the data, before its end-of-file flush: VmRSS is read there.
bench_memory() {
	echo "== probe: resident memory holding N active flows (VmRSS at end of input, before the flush)"
	python3 - "$W/flows.pcap" 1000000 <<'PY'
import struct, sys
path, n = sys.argv[1], int(sys.argv[2])
eth = bytes.fromhex('020000000002020000000001') + b'\x08\x00'
rec, ip, udp = struct.Struct('<IIII'), struct.Struct('!BBHHHBBH4s4s'), struct.Struct('!HHHH')
with open(path, 'wb') as out:
    out.write(struct.pack('<IHHiIII', 0xa1b2c3d4, 2, 4, 0, 0, 65535, 1))
    buf = bytearray()
    for i in range(n):
        frame = (eth + ip.pack(0x45, 0, 28, 0, 0, 64, 17, 0, struct.pack('!I', 0x0a000000 + i),
                               b'\xc6\x33\x64\x01') + udp.pack(40000 + (i & 0xfff), 53, 8, 0) + bytes(18))
        buf += rec.pack(1767225600 + i // 1000000, i % 1000000, 60, 60) + frame
        if len(buf) >= 1 << 20:
            out.write(buf)
            buf = bytearray()
    out.write(buf)
PY
	# rss_kb FLOWS MAX_FLOWS: VmRSS in kB of a probe that has read the first FLOWS packets.
	rss_kb() {
		local n=$1 max=$2 fifo=$W/mem.fifo size pid rss="" r=0 i
		size=$((24 + n * 76))
		rm -f "$fifo"; mkfifo "$fifo"
		"$B/tapflow-probe" -u root -r "$fifo" -n "127.0.0.1:$P" --max-flows "$max" \
			--active-timeout 86400 --inactive-timeout 86400 2>"$W/mem.log" &
		pid=$!
		exec 3>"$fifo"
		head -c "$size" "$W/flows.pcap" >&3
		# At the end of the data once it has read every byte and sleeps in the pipe.
		for i in $(seq 1200); do
			r=$(awk '/^rchar/ {print $2}' "/proc/$pid/io")
			if [ "$r" -ge "$size" ] && grep -q pipe_read "/proc/$pid/wchan"; then
				rss=$(awk '/^VmRSS/ {print $2}' "/proc/$pid/status")
				break
			fi
			sleep 0.05
		done
		exec 3>&-
		wait "$pid" || true
		local made
		made=$(sed -n 's/^  flows_created: //p' "$W/mem.log")
		[ "$made" = "$n" ] || { echo "  (probe created $made flows of $n)" >&2; rss=""; }
		echo "${rss:-0}"
	}
	local base r100k r1m r100k_big tb
	base=$(rss_kb 1 16)
	r100k=$(rss_kb 100000 100000)
	r1m=$(rss_kb 1000000 1000000)
	tb=$(sed -n 's/^  flow_table_bytes: //p' "$W/mem.log")
	r100k_big=$(rss_kb 100000 1000000)
	printf '  %-44s %8.1f MiB\n' "1 flow, --max-flows 16" "$(echo "$base / 1024" | bc -l)"
	printf '  %-44s %8.1f MiB  %6.1f bytes/flow over the empty probe\n' "100000 flows, --max-flows 100000" \
		"$(echo "$r100k / 1024" | bc -l)" "$(echo "($r100k - $base) * 1024 / 100000" | bc -l)"
	printf '  %-44s %8.1f MiB  %6.1f bytes/flow over the empty probe\n' "1000000 flows, --max-flows 1000000" \
		"$(echo "$r1m / 1024" | bc -l)" "$(echo "($r1m - $base) * 1024 / 1000000" | bc -l)"
	printf '  %-44s %8.1f MiB  (the index of the whole budget is touched)\n' \
		"100000 flows, --max-flows 1000000" "$(echo "$r100k_big / 1024" | bc -l)"
	echo "  probe's own count at 1M: flow_table_bytes $tb"
}

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# collector_run NAME CMD...: starts a collector on port $CP, blasts $EXPORT at $RATE,
# stops it; prints "cpu_seconds" into $W/NAME.cpu.
collector_run() {
	local name=$1
	shift
	"$@" >"$W/$name.log" 2>&1 &
	local pid=$!
	for _ in $(seq 100); do ss -Hlnu "sport = :$CP" | grep -q . && break; sleep 0.05; done
	local c0 c1
	c0=$(cpu_ticks $pid)
	"$B/tools/nfblast" -r "$EXPORT" -d "127.0.0.1:$CP" --rate "$RATE" --loop "$LOOPS" >"$W/$name.blast"
	for _ in $(seq 200); do
		[ "$(ss -Hlnu "sport = :$CP" | awk '{s+=$2} END{print s+0}')" = 0 ] && break
		sleep 0.05
	done
	sleep 0.5
	c1=$(cpu_ticks $pid)
	kill -INT $pid; wait $pid || true
	echo "scale=3; ($c1 - $c0) / $(getconf CLK_TCK)" | bc -l >"$W/$name.cpu"
}

bench_collector() {
	echo "== collector: a softflowd NetFlow v9 export replayed at fixed rates (nfblast)"
	"$B/tools/genpcap" -o "$W/col.pcap" -n 2000000 -f 40000 --rate 40000 -s 21 >/dev/null
	CP=$(python3 -c 'import socket; s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
	python3 "$TOP/tests/tools/udpsink.py" "$CP" "$W/export.pcap" "$W/sink.ready" --idle 3 &
	local sink=$!
	for _ in $(seq 100); do [ -f "$W/sink.ready" ] && break; sleep 0.05; done
	softflowd -r "$W/col.pcap" -n "127.0.0.1:$CP" -v 9 -c none -m 1000000 -d >/dev/null 2>&1
	wait $sink || true
	EXPORT=$W/export.pcap
	local dgrams flows
	dgrams=$(tshark -r "$EXPORT" 2>/dev/null | wc -l)
	mkdir -p "$W/ref"; nfcapd -w "$W/ref" -p "$CP" -b 127.0.0.1 -B 67108864 -t 3600 >/dev/null 2>&1 &
	local np=$!
	for _ in $(seq 100); do ss -Hlnu "sport = :$CP" | grep -q . && break; sleep 0.05; done
	"$B/tools/nfblast" -r "$EXPORT" -d "127.0.0.1:$CP" --rate 20000 >/dev/null
	sleep 1; kill -INT $np; wait $np || true
	flows=$(nfdump -R "$W/ref" -I | sed -n 's/^Flows: //p')
	echo "  export: $dgrams datagrams, $flows flows per pass"
	local old_rmem
	old_rmem=$(sysctl -n net.core.rmem_max)
	sysctl -qw net.core.rmem_max=67108864
	for RATE in 20000 40000 80000; do
		LOOPS=$(( RATE * 4 / dgrams + 1 ))
		for coll in tapflow-lz4 tapflow-zstd nfcapd-B64M nfcapd-lz4; do
			local dir=$W/c-$coll-$RATE; mkdir -p "$dir"
			case $coll in
			tapflow-lz4) collector_run "$coll" "$B/tapflow-collector" -l "$dir" -p "$CP" -b 127.0.0.1 ;;
			tapflow-zstd) collector_run "$coll" "$B/tapflow-collector" -l "$dir" -p "$CP" -b 127.0.0.1 -z zstd ;;
			nfcapd-B64M) collector_run "$coll" nfcapd -w "$dir" -p "$CP" -b 127.0.0.1 -B 67108864 -t 3600 ;;
			nfcapd-lz4) collector_run "$coll" nfcapd -w "$dir" -p "$CP" -b 127.0.0.1 -B 67108864 -t 3600 -y ;;
			esac
			local stored size cpu sent
			sent=$((flows * LOOPS))
			case $coll in
			tapflow*) stored=$("$B/tapflow-query" -R "$dir" -o json | python3 -c 'import json,sys; print(json.load(sys.stdin)["summary"]["flows"])') ;;
			*) stored=$(nfdump -R "$dir" -I | sed -n 's/^Flows: //p') ;;
			esac
			size=$(du -sb "$dir" | cut -f1)
			cpu=$(cat "$W/$coll.cpu")
			printf '  %-13s %6s dgram/s (%8s flows/s): stored %9s of %9s (loss %5.2f%%), %7.0f flows per CPU-second, %5.1f bytes/flow\n' \
				"$coll" "$RATE" "$((RATE * flows / dgrams))" "$stored" "$sent" \
				"$(echo "100 * ($sent - $stored) / $sent" | bc -l)" \
				"$(echo "if ($cpu > 0) $stored / $cpu else 0" | bc -l)" "$(echo "$size / ($stored + 1)" | bc -l)"
			rm -rf "$dir"
		done
	done
	sysctl -qw net.core.rmem_max="$old_rmem"
	echo "== collector: a burst of about 200k flows at full speed, default sysctls"
	RATE=0 LOOPS=$(( 200000 / flows + 1 ))
	for coll in tapflow nfcapd; do
		local dir=$W/b-$coll; mkdir -p "$dir"
		case $coll in
		tapflow) collector_run "$coll" "$B/tapflow-collector" -l "$dir" -p "$CP" -b 127.0.0.1 ;;
		nfcapd) collector_run "$coll" nfcapd -w "$dir" -p "$CP" -b 127.0.0.1 -t 3600 ;;
		esac
		local stored sent=$((flows * LOOPS))
		case $coll in
		tapflow) stored=$("$B/tapflow-query" -R "$dir" -o json | python3 -c 'import json,sys; print(json.load(sys.stdin)["summary"]["flows"])') ;;
		*) stored=$(nfdump -R "$dir" -I | sed -n 's/^Flows: //p') ;;
		esac
		printf '  %-13s stored %8s of %8s (loss %5.2f%%)\n' "$coll" "$stored" "$sent" "$(echo "100 * ($sent - $stored) / $sent" | bc -l)"
	done
	echo "== collector: bytes per flow on disk, one pass of the export"
	RATE=20000 LOOPS=1
	for coll in tapflow-lz4 tapflow-zstd nfcapd-raw nfcapd-lz4 nfcapd-lzo; do
		local dir=$W/d-$coll; mkdir -p "$dir"
		case $coll in
		tapflow-lz4) collector_run "$coll" "$B/tapflow-collector" -l "$dir" -p "$CP" -b 127.0.0.1 ;;
		tapflow-zstd) collector_run "$coll" "$B/tapflow-collector" -l "$dir" -p "$CP" -b 127.0.0.1 -z zstd ;;
		nfcapd-raw) collector_run "$coll" nfcapd -w "$dir" -p "$CP" -b 127.0.0.1 -B 67108864 -t 3600 ;;
		nfcapd-lz4) collector_run "$coll" nfcapd -w "$dir" -p "$CP" -b 127.0.0.1 -B 67108864 -t 3600 -y ;;
		nfcapd-lzo) collector_run "$coll" nfcapd -w "$dir" -p "$CP" -b 127.0.0.1 -B 67108864 -t 3600 -z ;;
		esac
		local size
		size=$(find "$dir" -type f -name '*tf*' -o -type f -name 'nfcapd.2*' | xargs cat | wc -c)
		printf '  %-13s %6.1f bytes/flow\n' "$coll" "$(echo "$size / $flows" | bc -l)"
	done
}

# Whole-machine busy CPU (user + nice + system + irq + softirq), in clock ticks.
cpu_busy() { awk '/^cpu /{print $2 + $3 + $4 + $7 + $8}' /proc/stat; }
# CPU ticks (user + system) of the given processes; softirq work done in a task's
# context is charged to it (tick accounting), the rest runs in ksoftirqd.
task_ticks() {
	local t=0 p
	for p in "$@"; do
		[ -r "/proc/$p/stat" ] && t=$((t + $(sed 's/.*) //' "/proc/$p/stat" | awk '{print $12 + $13}')))
	done
	echo $t
}
secs_of() { echo "$1" | awk '{ split($0, a, /[ms]/); print a[1] * 60 + a[2] }'; } # 0m1.25s
median3() { printf '%s\n' "$@" | sort -g | sed -n 2p; }

# The eBPF backend against AF_PACKET and softflowd, live on a veth pair at fixed replay
# rates: packets each one lost, and CPU seconds per million packets with the sender's
# own share (a run without any probe, same rate) subtracted: the whole machine's
# (user+system+softirq from /proc/stat), and, as other work on a shared machine swamps
# that, the participants' alone (sender + probe + ksoftirqd threads). Median of 3 runs.
bench_ebpf() {
	echo "== probe: live capture cost, eBPF vs AF_PACKET vs softflowd (veth, tcpreplay)"
	echo "   CPU s per million packets (= us per packet), sender's own share subtracted:"
	echo "   'tasks' = sender + probe + ksoftirqd, 'machine' = all of /proc/stat; median of 3"
	local na=tfbench-ea nb=tfbench-eb hz npk=${BENCH_LIVE_PACKETS:-300000} ksi
	hz=$(getconf CLK_TCK)
	ksi=$(pgrep '^ksoftirqd/' | tr '\n' ' ')
	ip netns add $na; ip netns add $nb
	ip link add vtfea netns $na mtu 1600 type veth peer name vtfeb netns $nb mtu 1600
	for n in $na $nb; do
		ip -n $n link set lo up
		ip netns exec $n sysctl -qw net.ipv6.conf.all.disable_ipv6=1
	done
	ip -n $na link set vtfea up; ip -n $nb link set vtfeb up
	"$B/tools/genpcap" -o "$W/ebpf.pcap" -n "$npk" -s 9 >/dev/null
	local pps who rep
	for pps in 100000 200000 400000 0; do
		local -A tk=() mc=() lost=()
		local achieved=0
		for rep in 1 2 3; do
			for who in none ebpf ebpf-xdp afpacket softflowd; do
				local log=$W/eb-$who.log pp="" i
				rm -f "$W/sf.ctl"
				case $who in
				ebpf) ip netns exec $nb "$B/tapflow-probe" -i vtfeb --capture ebpf -n 127.0.0.1:9 2>"$log" & pp=$! ;;
				ebpf-xdp) ip netns exec $nb "$B/tapflow-probe" -i vtfeb --xdp native -n 127.0.0.1:9 2>"$log" & pp=$! ;;
				afpacket) ip netns exec $nb "$B/tapflow-probe" -i vtfeb --capture afpacket -n 127.0.0.1:9 2>"$log" & pp=$! ;;
				softflowd) ip netns exec $nb softflowd -i vtfeb -n 127.0.0.1:9 -v 9 -d -m 1000000 \
					-B 67108864 -c "$W/sf.ctl" -p "$W/sf.pid" >"$log" 2>&1 & pp=$! ;;
				esac
				for i in $(seq 200); do
					case $who in
					none) break ;;
					softflowd) [ -S "$W/sf.ctl" ] && { sleep 0.5; break; } ;;
					*) grep -q 'capturing on' "$log" && break ;;
					esac
					sleep 0.05
				done
				local args=(--pps "$pps") sent c0 c1 t0 t1 snd got=0
				[ "$pps" = 0 ] && args=(--topspeed)
				c0=$(cpu_busy); t0=$(task_ticks $pp $ksi)
				snd=$( (ip netns exec $na tcpreplay -q -K "${args[@]}" -i vtfea "$W/ebpf.pcap" \
					>"$W/replay.out" 2>&1; times) | tail -n 1)
				sleep 1 # the probe drains what it has queued; idle time does not count
				c1=$(cpu_busy); t1=$(task_ticks $pp $ksi)
				sent=$(sed -nE 's/.*Actual: ([0-9]+) packets.*/\1/p' "$W/replay.out")
				snd=$(echo "$(secs_of "${snd% *}") + $(secs_of "${snd#* }")" | bc -l)
				case $who in
				none) achieved=$(sed -nE 's/.*Rated: .* ([0-9.]+) pps.*/\1/p' "$W/replay.out") ;;
				softflowd) got=$(ip netns exec $nb softflowctl -c "$W/sf.ctl" statistics 2>/dev/null |
						awk '/^Packets processed:/{p=$3} /^Fragments:/{f=$2} END{print p + f}')
					ip netns exec $nb softflowctl -c "$W/sf.ctl" shutdown >/dev/null 2>&1 ;;
				*) for i in $(seq 40); do
						kill -USR1 $pp; sleep 0.05
						got=$(sed -n 's/^  packets: //p' "$log" | tail -n 1)
						[ "${got:-0}" -ge "$sent" ] 2>/dev/null && break
					done
					kill -TERM $pp ;;
				esac
				[ -n "$pp" ] && { wait $pp 2>/dev/null || true; }
				# seconds per million packets
				tk[$who,$rep]=$(echo "(($t1 - $t0) / $hz + $snd) * 1000000 / $sent" | bc -l)
				mc[$who,$rep]=$(echo "($c1 - $c0) / $hz * 1000000 / $sent" | bc -l)
				[ "$who" = none ] || lost[$who]=$(( ${lost[$who]:-0} + sent - ${got:-0} ))
			done
		done
		local bt bm
		bt=$(median3 "${tk[none,1]}" "${tk[none,2]}" "${tk[none,3]}")
		bm=$(median3 "${mc[none,1]}" "${mc[none,2]}" "${mc[none,3]}")
		printf '  rate %-7s achieved %7.0f pkt/s; the sender alone: tasks %5.2f, machine %5.2f\n' \
			"$([ "$pps" = 0 ] && echo top || echo "$pps")" "$achieved" "$bt" "$bm"
		for who in ebpf ebpf-xdp afpacket softflowd; do
			printf '    %-10s lost %7d of %d   tasks %6.2f   machine %6.2f\n' "$who" "${lost[$who]}" \
				$((3 * sent)) \
				"$(echo "$(median3 "${tk[$who,1]}" "${tk[$who,2]}" "${tk[$who,3]}") - $bt" | bc -l)" \
				"$(echo "$(median3 "${mc[$who,1]}" "${mc[$who,2]}" "${mc[$who,3]}") - $bm" | bc -l)"
		done
	done
	ip netns del $na; ip netns del $nb
}

case $what in
probe) bench_probe ;;
live) bench_live ;;
collector) bench_collector ;;
memory) bench_memory ;;
ebpf) bench_ebpf ;;
all) bench_probe; bench_live; bench_ebpf; bench_collector; bench_memory ;;
esac
