#!/usr/bin/env bash
# make bench: tapflow against its peers, each figure measured in the same run on the
# same input (this machine is noisy: compare the ratios, not the absolute numbers).
#   tests/bench/run.sh [probe|live|ebpf|collector|memory|query|all]
# Sizes and repeats from the environment: BENCH_PACKETS (pcap-file probe runs),
# BENCH_LIVE_PACKETS (the ebpf section's capture), BENCH_EBPF_RATES (packets a second, 0 for top
# speed, "one" for the one-CPU pass), BENCH_EBPF_REPS, BENCH_QUERY_FLOWS,
# BENCH_QUERY_REAL_FLOWS.
set -eu
TOP=$(cd "$(dirname "$0")/../.." && pwd)
B=$TOP/build
W=$(mktemp -d /tmp/tapflow-bench.XXXXXX)
RMEM0=$(sysctl -n net.core.rmem_max)
BPFSTATS0=$(sysctl -n kernel.bpf_stats_enabled 2>/dev/null || echo 0)
cleanup() {
	# a section that failed halfway leaves the machine's settings as they were too
	sysctl -qw net.core.rmem_max="$RMEM0" || true
	sysctl -qw kernel.bpf_stats_enabled="$BPFSTATS0" 2>/dev/null || true
	# this shell's children still running (never a reaped PID: another process may
	# have it by now), whatever section started them
	for p in $(jobs -pr); do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
	# (set -e holds in the trap too: nothing here may end it early)
	for n in tfbench-a tfbench-b tfbench-ea tfbench-eb; do ip netns del $n 2>/dev/null || true; done
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

bench_probe() {
	echo "== probe: pcap file -> NetFlow, $NPKT packets (genpcap), packets per second (best of 3)"
	"$B/tools/genpcap" -o "$W/in.pcap" -n "$NPKT" -s 3 >/dev/null
	"$B/tools/genpcap" -o "$W/tiny.pcap" -n 10 -s 3 >/dev/null
	cat "$W/in.pcap" >/dev/null # page cache warm for everyone
	local t_tf=999 t_sf=999 t_nf=999 c_tf=999 c_sf=999 t_pm t_pm0 r t c
	mkdir -p "$W/nfp"
	# best of 3 each, interleaved (the machine is noisy); CPU seconds of all threads too
	cpu() { /usr/bin/time -f '%U %S' -o "$W/cpu" "$@" >/dev/null 2>&1 || true; awk '{print $1 + $2}' "$W/cpu"; }
	for r in 1 2 3; do
		t=$(secs "$B/tapflow-probe" -r "$W/in.pcap" -n "127.0.0.1:$P")
		t_tf=$(echo "if ($t < $t_tf) $t else $t_tf" | bc -l)
		c=$(cpu "$B/tapflow-probe" -r "$W/in.pcap" -n "127.0.0.1:$P")
		c_tf=$(echo "if ($c < $c_tf) $c else $c_tf" | bc -l)
		t=$(secs softflowd -r "$W/in.pcap" -n "127.0.0.1:$P" -v 9 -c none -m 1000000 -d)
		t_sf=$(echo "if ($t < $t_sf) $t else $t_sf" | bc -l)
		c=$(cpu softflowd -r "$W/in.pcap" -n "127.0.0.1:$P" -v 9 -c none -m 1000000 -d)
		c_sf=$(echo "if ($c < $c_sf) $c else $c_sf" | bc -l)
		rm -rf "$W/nfp"; mkdir -p "$W/nfp"
		t=$(secs nfpcapd -r "$W/in.pcap" -w "$W/nfp")
		t_nf=$(echo "if ($t < $t_nf) $t else $t_nf" | bc -l)
	done
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
	printf '  %-34s %10s pkt/s  %6.2fs  (%.2f CPU-s: parser plus a thread reading the file ahead)\n' "tapflow-probe -r" "$r_tf" "$t_tf" "$c_tf"
	printf '  %-34s %10s pkt/s  %6.2fs  (tapflow %.1fx; %.2f CPU-s, %.1fx tapflow'"'"'s)\n' "softflowd -r -c none -m 1000000" "$r_sf" "$t_sf" "$(echo "$r_tf/$r_sf" | bc -l)" "$c_sf" "$(echo "$c_sf/$c_tf" | bc -l)"
	printf '  %-34s %10s pkt/s  %6.2fs  (tapflow %.1fx)\n' "nfpcapd -r" "$r_nf" "$t_nf" "$(echo "$r_tf/$r_nf" | bc -l)"
	printf '  %-34s %10s pkt/s  %6.2fs  (tapflow %.1fx; start-up %.1fs subtracted)\n' "pmacctd nfprobe (savefile)" "$r_pm" "$t_pm" "$(echo "$r_tf/$r_pm" | bc -l)" "$t_pm0"

	echo "== probe: instructions per packet (callgrind, 100k packets)"
	"$B/tools/genpcap" -o "$W/c.pcap" -n 100000 -s 3 >/dev/null
	valgrind --tool=callgrind --callgrind-out-file="$W/cg.out" "$B/tapflow-probe" -u root -r "$W/c.pcap" -n "127.0.0.1:$P" >/dev/null 2>&1
	local total per_pkt
	total=$(callgrind_annotate "$W/cg.out" 2>/dev/null | sed -n 's/^ *\([0-9,]*\) .*PROGRAM TOTALS.*/\1/p' | tr -d ,)
	local incl parse update
	# inclusive cost of a function: the sum of the calls to it (the "=> file:fn (Nx)"
	# lines), or its line in the inclusive listing where callgrind shows no call lines
	# for it; the larger (the listing may split inlined code by file, the call lines may
	# miss calls from code inlined elsewhere)
	incl() { callgrind_annotate --auto=yes --inclusive=yes "$W/cg.out" 2>/dev/null | awk -v f=".c:$1 (" -v g=".c:$1" '
		index($0, "=> ") && index($0, f) {x = $1; gsub(",", "", x); s += x; next}
		!index($0, "=> ") && match($0, /[^ ]*\.c:[A-Za-z0-9_.]+/) {n = substr($0, RSTART, RLENGTH)
			if (substr(n, length(n) - length(g) + 1) == g) {x = $1; gsub(",", "", x); if (x + 0 > m) m = x + 0}}
		END {print (s > m ? s : m) + 0}'; }
	# the update runs in steps over a batch (flowtab.h): hash and slot prefetch, entry
	# prefetch, the update itself (flowtab_update: fragments whose ports changed)
	per_pkt=$(incl worker_packets); parse=$(incl pkt_parse)
	update=$(( $(incl flowtab_prefetch) + $(incl flowtab_prefetch_entry) + $(incl flowtab_update_hashed) + $(incl flowtab_update) ))
	printf '  tapflow-probe whole process      %6d instructions/packet (reading the file included)\n' $((total / 100000))
	printf '  parse (pkt_parse) %d + flow update (flowtab_prefetch, _prefetch_entry, _update_hashed, with the expiry it causes) %d = %d instructions/packet\n' \
		$((parse / 100000)) $((update / 100000)) $(((parse + update) / 100000))
	printf '  worker_packets, inclusive (adds sampling, counters, fragments, timed expiry, export) %d instructions/packet\n' $((per_pkt / 100000))
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
	local old_rmem
	old_rmem=$(sysctl -n net.core.rmem_max)
	sysctl -qw net.core.rmem_max=67108864 # the sink's buffer too: softflowd sends at full speed
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
	local nrep=5
	echo "  (each figure the median of $nrep runs, interleaved; loss: the worst of them)"
	for RATE in 20000 40000 80000; do
		LOOPS=$(( RATE * 4 / dgrams + 1 ))
		local -A fpc=() worst=() bpf=()
		local rep sent=$((flows * LOOPS))
		for rep in $(seq $nrep); do
			for coll in tapflow-lz4 tapflow-zstd nfcapd-B64M nfcapd-lz4; do
				local dir=$W/c-$coll-$RATE; rm -rf "$dir"; mkdir -p "$dir"
				case $coll in
				tapflow-lz4) collector_run "$coll" "$B/tapflow-collector" -l "$dir" -p "$CP" -b 127.0.0.1 ;;
				tapflow-zstd) collector_run "$coll" "$B/tapflow-collector" -l "$dir" -p "$CP" -b 127.0.0.1 -z zstd ;;
				nfcapd-B64M) collector_run "$coll" nfcapd -w "$dir" -p "$CP" -b 127.0.0.1 -B 67108864 -t 3600 ;;
				nfcapd-lz4) collector_run "$coll" nfcapd -w "$dir" -p "$CP" -b 127.0.0.1 -B 67108864 -t 3600 -y ;;
				esac
				local stored size cpu
				case $coll in
				tapflow*) stored=$("$B/tapflow-query" -R "$dir" -o json | python3 -c 'import json,sys; print(json.load(sys.stdin)["summary"]["flows"])') ;;
				*) stored=$(nfdump -R "$dir" -I | sed -n 's/^Flows: //p') ;;
				esac
				case $stored in
				'' | *[!0-9]*)
					echo "  $coll stored nothing readable; its log:" >&2
					tail -n 5 "$W/$coll.log" >&2
					stored=0 ;;
				esac
				size=$(du -sb "$dir" | cut -f1)
				cpu=$(cat "$W/$coll.cpu")
				fpc[$coll,$rep]=$(echo "if ($cpu > 0) $stored / $cpu else 0" | bc -l)
				[ $((sent - stored)) -gt "${worst[$coll]:--1}" ] && worst[$coll]=$((sent - stored))
				bpf[$coll]=$(echo "$size / ($stored + 1)" | bc -l)
				rm -rf "$dir"
			done
		done
		local -A med=()
		for coll in tapflow-lz4 tapflow-zstd nfcapd-B64M nfcapd-lz4; do
			local v=()
			for rep in $(seq $nrep); do v+=("${fpc[$coll,$rep]}"); done
			med[$coll]=$(median "${v[@]}")
			printf '  %-13s %6s dgram/s (%8s flows/s): lost %7s of %9s (%5.2f%%), %7.0f flows per CPU-second, %5.1f bytes/flow\n' \
				"$coll" "$RATE" "$((RATE * flows / dgrams))" "${worst[$coll]}" "$sent" \
				"$(echo "100 * ${worst[$coll]} / $sent" | bc -l)" "${med[$coll]}" "${bpf[$coll]}"
		done
		printf '  tapflow-lz4 flows per CPU-second: %.2fx nfcapd -B 67108864, %.2fx nfcapd -y (LZ4)\n' \
			"$(echo "${med[tapflow-lz4]} / ${med[nfcapd-B64M]}" | bc -l)" \
			"$(echo "${med[tapflow-lz4]} / ${med[nfcapd-lz4]}" | bc -l)"
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

# The exact CPU time of one process in ns (/proc/PID/schedstat).
task_ns() { [ -r "/proc/$1/schedstat" ] && cut -d' ' -f1 "/proc/$1/schedstat" || echo 0; }
median() { printf '%s\n' "$@" | sort -g | sed -n "$(( ($# + 1) / 2 ))p"; }
# idle_snap: for each CPU, the clock, its idle time so far (us) and how often it went
# idle, on one line ("T0 IDLE0 N0 T1 IDLE1 N1 ..."). The idle time is what /proc/stat's
# idle column counts (nohz keeps it to the us and stops it for interrupts taken while
# idle), read to the us from cpuidle's residency counters where the kernel has them,
# else from /proc/stat (USER_HZ ticks; N is then 0). A residency counter moves when an
# idle period ends: each CPU's is read by a process running on that CPU, so its idle
# period has ended.
idle_snap() {
	local c n out=""
	n=$(nproc)
	if [ -r /sys/devices/system/cpu/cpu0/cpuidle/state0/time ]; then
		for ((c = 0; c < n; c++)); do
			out="$out $(taskset -c $c sh -c "date +%s%6N; cd /sys/devices/system/cpu/cpu$c/cpuidle &&
				cat state*/time; echo usage; cat state*/usage" |
				awk 'NR == 1 {t = $1; next} /usage/ {u = 1; next}
					u {e += $1; next} {s += $1} END{printf "%s %.0f %.0f", t, s, e}')"
		done
		echo "$out"
	else
		awk -v t="$(date +%s%6N)" -v hz="$(getconf CLK_TCK)" -v n="$n" \
			'/^cpu[0-9]/ && substr($1, 4) < n {o = o " " t " " sprintf("%.0f", ($5 + $6) * 1000000 / hz) " 0"}
			END{print o}' /proc/stat
	fi
}
# idle_busy SNAP0 SNAP1: ns CPU 1 and all CPUs were busy (not idle) between two snaps,
# and how often CPU 1 went idle.
idle_busy() {
	awk -v a="$1" -v b="$2" 'BEGIN{n = split(a, x, " "); split(b, y, " ")
		for (i = 1; i < n; i += 3) {
			u = (y[i] - x[i]) - (y[i + 1] - x[i + 1]); all += u
			if (i == 4) { c1 = u; e1 = y[i + 2] - x[i + 2] }
		}
		printf "%.0f %.0f %.0f\n", c1 * 1000, all * 1000, e1}'
}

# The eBPF backend against AF_PACKET and softflowd, live on a veth pair at fixed replay
# rates. Per backend: packets lost (sent - counted); the CPU time the probe costs the
# machine per packet, softirq included, less the run without any probe of the same
# round at the same rate (the sender's own share; paired so that the host's drift
# between rounds cancels); the probe process's own CPU; and, for eBPF, the programs'
# run time in the kernel (kernel.bpf_stats_enabled, in a separate run: the stats cost
# time themselves). The sender is pinned to CPU 0 and RPS moves the receive path to
# CPU 1, where the probe runs too. CPU time is busy time: the time between two reads
# less what each CPU spent idle (idle_snap; /proc/stat's busy columns only sample who
# runs at each of 250 ticks a second on this kernel, and swung by more than the probes
# cost). At fixed rates the sender sends bursts of 32 packets, as a NIC's interrupt
# coalescing hands them on: one packet a wakeup made the wakeups of CPU 1 (an exit to
# the host in a guest, its cost moving with the host's load) most of what was
# measured. Even so, a probe that keeps CPU 1 busier saves some of its wakeups, so at
# these rates part of its cost is paid back; the last pass ("one": sender, receive
# path and probe on CPU 1 at top speed, RPS off) leaves no idle time to pay back, and
# gives each probe's cost per packet itself. Median of 5 runs (BENCH_EBPF_REPS),
# microseconds per packet.
bench_ebpf() {
	echo "== probe: live capture cost, eBPF vs AF_PACKET vs softflowd (veth, tcpreplay)"
	if [ "$(nproc)" -lt 2 ] || ! command -v taskset >/dev/null; then
		echo "   skipped: needs 2 CPUs and taskset"
		return 0
	fi
	echo "   us of CPU per packet, median of 5 rounds. The sender runs on CPU 0 (bursts of 32 at"
	echo "   fixed rates), the probe and the receive path (RPS) on CPU 1. CPU time is busy (not"
	echo "   idle) time, less the same round's run without any probe (range: over the rounds):"
	echo "   cpu1 = the probe's whole cost on its CPU (softirq included), machine = the same"
	echo "   over all CPUs (at fixed rates the sender spins between bursts: CPU 0 reads busy"
	echo "   whatever else runs there); process = the probe's threads (softirq that ran on"
	echo "   their time included); bpf = the program's own run time (bpf_stats, a run of its"
	echo "   own); wake = how often CPU 1 went idle, per packet. Work that keeps CPU 1 awake"
	echo "   saves wakeups (each an exit to the host in a guest): at fixed rates a probe's"
	echo "   cost is partly paid back that way. The last pass, \"one CPU\", has no idle time"
	echo "   to pay back: sender, receive path and probe all on CPU 1 at top speed, RPS off;"
	echo "   cpu1 there is the probe's cost per packet itself."
	echo "   ebpf attaches through tcx where the kernel has it (6.6+), ebpf-clsact as a filter"
	echo "   on a clsact qdisc (--tc-attach clsact, as on older kernels)"
	local na=tfbench-ea nb=tfbench-eb npk=${BENCH_LIVE_PACKETS:-300000} stats0
	local nrep=${BENCH_EBPF_REPS:-5}
	# reps ARRAY WHO: WHO's figure of each run
	reps() { local -n a=$1; local i; for i in $(seq "$nrep"); do echo "${a[$2,$i]}"; done; }
	# ratio WHO1 WHO2: "WHO1/WHO2 R" of their cpu1 medians (c1), or what it means when a
	# cost is at or below zero (paid back in wakeups): a quotient of such a figure reads
	# as nonsense
	ratio() { awk -v a="${c1[$1]}" -v b="${c1[$2]}" -v w1="$1" -v w2="$2" 'BEGIN{
		printf "%s/%s ", w1, w2
		if (b <= 0) printf "n/a (%s at or below 0)\n", w2
		else if (a <= 0) printf "0 (%s at or below 0)\n", w1
		else printf "%.2f\n", a / b}'; }
	# paired WHO ARRAY: WHO's figure less the run without a probe of the same round
	paired() { local -n a=$2; local i; for i in $(seq "$nrep"); do
		echo "${a[$1,$i]} - ${a[none,$i]}" | bc -l; done; }
	stats0=$(sysctl -n kernel.bpf_stats_enabled)
	ip netns add $na; ip netns add $nb
	ip link add vtfea netns $na mtu 1600 type veth peer name vtfeb netns $nb mtu 1600
	for n in $na $nb; do
		ip -n $n link set lo up
		ip netns exec $n sysctl -qw net.ipv6.conf.all.disable_ipv6=1
	done
	ip -n $na link set vtfea up; ip -n $nb link set vtfeb up
	"$B/tools/genpcap" -o "$W/ebpf.pcap" -n "$npk" -s 9 >/dev/null
	local pps who rep
	# the probes compared, and tapflow-probe's arguments for each of ours
	local whos=(ebpf ebpf-clsact ebpf-xdpgen afpacket softflowd)
	local -A pargs=([ebpf]="--capture ebpf" [ebpf-clsact]="--capture ebpf --tc-attach clsact"
		[ebpf-xdpgen]="--xdp generic" [afpacket]="--capture afpacket")
	for pps in ${BENCH_EBPF_RATES:-100000 200000 400000 0 one}; do
		local -A mc=() pc=() pr=() wk=() lost=()
		local achieved=0 sent=0 bpf=0 scpu=0 rps=2
		[ "$pps" = one ] && scpu=1 rps=0
		ip netns exec $nb sh -c "echo $rps >/sys/class/net/vtfeb/queues/rx-0/rps_cpus"
		for rep in $(seq "$nrep") stats; do
			# every other round in reverse: a drift of the host over a round falls on
			# each backend alike
			local order=(none "${whos[@]}")
			[ "$rep" != stats ] && [ $((rep % 2)) = 0 ] &&
				mapfile -t order < <(printf '%s\n' "${order[@]}" | tac)
			for who in "${order[@]}"; do
				[ "$rep" = stats ] && [ "$who" != ebpf ] && continue
				local log=$W/eb-$who.log pp="" i
				local run=(ip netns exec $nb taskset -c 1)
				rm -f "$W/sf.ctl"
				[ "$rep" = stats ] && sysctl -qw kernel.bpf_stats_enabled=1
				case $who in
				none) ;;
				softflowd) "${run[@]}" softflowd -i vtfeb -n 127.0.0.1:9 -v 9 -d -m 1000000 \
					-B 67108864 -c "$W/sf.ctl" -p "$W/sf.pid" >"$log" 2>&1 & pp=$! ;;
				*) # shellcheck disable=SC2086 # pargs holds several words
					"${run[@]}" "$B/tapflow-probe" -i vtfeb ${pargs[$who]} -n 127.0.0.1:9 \
						2>"$log" & pp=$! ;;
				esac
				for i in $(seq 200); do
					case $who in
					none) break ;;
					softflowd) [ -S "$W/sf.ctl" ] && { sleep 0.5; break; } ;;
					*) grep -q 'capturing on' "$log" && break ;;
					esac
					sleep 0.05
				done
				local args=(--pps "$pps" --pps-multi 32 --loop 2) s0 s1 b1 ball e1 t0=0 t1=0 got=0
				case $pps in 0 | one) args=(--topspeed --loop 2) ;; esac
				sleep 0.3 # the probe's start is over
				[ -n "$pp" ] && t0=$(task_ns $pp)
				s0=$(idle_snap)
				ip netns exec $na taskset -c $scpu tcpreplay -q -K "${args[@]}" -i vtfea \
					"$W/ebpf.pcap" >"$W/replay.out" 2>&1
				sleep 1 # the probe drains what it has queued; idle time does not count
				s1=$(idle_snap)
				[ -n "$pp" ] && t1=$(task_ns $pp)
				read -r b1 ball e1 <<<"$(idle_busy "$s0" "$s1")"
				sent=$(sed -nE 's/.*Actual: ([0-9]+) packets.*/\1/p' "$W/replay.out")
				case $who in
				none) achieved=$(sed -nE 's/.*Rated: .* ([0-9.]+) pps.*/\1/p' "$W/replay.out") ;;
				softflowd) # captured = received by libpcap less its drops (it skips QinQ frames
					# as non-IP: not a capture loss)
					got=$(ip netns exec $nb softflowctl -c "$W/sf.ctl" statistics 2>/dev/null |
						awk '/received by libpcap/{r=$NF} /dropped by libpcap/{d=$NF} END{print r - d}')
					ip netns exec $nb softflowctl -c "$W/sf.ctl" shutdown >/dev/null 2>&1 ;;
				*) for i in $(seq 40); do
						kill -USR1 $pp; sleep 0.05
						got=$(sed -n 's/^  frames: //p' "$log" | tail -n 1)
						[ "${got:-0}" -ge "$sent" ] 2>/dev/null && break
					done
					kill -TERM $pp ;;
				esac
				[ -n "$pp" ] && { wait $pp 2>/dev/null || true; }
				if [ "$rep" = stats ]; then
					sysctl -qw kernel.bpf_stats_enabled="$stats0"
					bpf=$(awk '/^  ebpf_prog_ns:/{n=$2} /^  ebpf_prog_runs:/{r=$2} END{print (r ? n / r / 1000 : 0)}' "$log")
					continue
				fi
				mc[$who,$rep]=$(echo "$ball / 1000 / $sent" | bc -l)
				pc[$who,$rep]=$(echo "$b1 / 1000 / $sent" | bc -l)
				pr[$who,$rep]=$(echo "($t1 - $t0) / 1000 / $sent" | bc -l)
				wk[$who,$rep]=$(echo "$e1 / $sent" | bc -l)
				[ "$who" = none ] || lost[$who]=$(( ${lost[$who]:-0} + sent - ${got:-0} ))
			done
		done
		local bm bp
		bm=$(median $(reps mc none))
		bp=$(median $(reps pc none))
		printf '  rate %-7s achieved %7.0f pkt/s; without a probe: cpu1 %5.2f, machine %5.2f, wake %4.2f\n' \
			"$(case $pps in 0) echo top ;; one) echo "one CPU" ;; *) echo "$pps" ;; esac)" \
			"$achieved" "$bp" "$bm" "$(median $(reps wk none))"
		local -A c1=()
		for who in "${whos[@]}"; do
			local lo hi d
			d=$(paired $who pc)
			c1[$who]=$(median $d)
			read -r lo hi <<<"$(sort -g <<<"$d" | awk 'NR == 1 {l = $1} {h = $1} END{printf "%.2f %.2f\n", l, h}')"
			printf '    %-11s lost %6d of %d   cpu1 %5.3f (%s..%s)   machine %6.3f   process %5.3f   wake %4.2f%s\n' "$who" \
				"${lost[$who]}" $((nrep * sent)) \
				"${c1[$who]}" "$lo" "$hi" \
				"$(median $(paired $who mc))" \
				"$(median $(reps pr $who))" "$(median $(reps wk $who))" \
				"$([ "$who" = ebpf ] && printf '   bpf %5.3f' "$bpf")"
		done
		printf '    cpu1 ratios (target: each at most 0.5): %s, %s\n' \
			"$(ratio ebpf afpacket)" "$(ratio afpacket softflowd)"
	done
	ip netns exec $nb sh -c 'echo 2 >/sys/class/net/vtfeb/queues/rx-0/rps_cpus'
	# The once-a-second map scan of an idle probe: the kernel's (scan.bpf.c) against
	# user space's batch lookups, for the flows of one pass of the capture left in the
	# map (100 s inactive timeout), alternating, median of 3.
	local mode hold=()
	local -A sc=()
	for rep in 1 2 3; do
		for mode in kernel user; do
			local log=$W/eb-scan.log pp t0 t1
			ip netns exec $nb taskset -c 1 "$B/tapflow-probe" -i vtfeb --capture ebpf \
				--bpf-scan $mode --inactive-timeout 100 --active-timeout 200 \
				-n 127.0.0.1:9 2>"$log" & pp=$!
			for i in $(seq 200); do grep -q 'capturing on' "$log" && break; sleep 0.05; done
			ip netns exec $na taskset -c 0 tcpreplay -q -K --pps 200000 -i vtfea \
				"$W/ebpf.pcap" >/dev/null 2>&1
			sleep 1.5
			t0=$(task_ns $pp); sleep 5; t1=$(task_ns $pp)
			kill -USR1 $pp; sleep 0.2
			hold+=("$(sed -n 's/^  flows_active: //p' "$log" | tail -n 1)")
			kill -TERM $pp; wait $pp 2>/dev/null || true
			sc[$mode,$rep]=$(( (t1 - t0) / 5000 ))
		done
	done
	printf '  map scan of an idle probe holding %s flows: in the kernel %s us of CPU a second,\n' \
		"$(median "${hold[@]}")" "$(median "${sc[kernel,1]}" "${sc[kernel,2]}" "${sc[kernel,3]}")"
	printf '    by batch lookups from user space (--bpf-scan user) %s us a second\n' \
		"$(median "${sc[user,1]}" "${sc[user,2]}" "${sc[user,3]}")"
	ip netns del $na; ip netns del $nb
}

# tmeas OUT CMD...: runs CMD (output discarded) and prints "seconds peak_rss_kb".
tmeas() {
	# wall to the millisecond (time's %e has 10 ms steps: 12% of a 0.08 s query)
	local t0 t1
	t0=$(date +%s%N)
	/usr/bin/time -f '%M' -o "$W/tmeas" "$@" >/dev/null 2>"$W/tmeas.err" || true
	t1=$(date +%s%N)
	echo "$(echo "($t1 - $t0) / 1000000000" | bc -l) $(tail -n 1 "$W/tmeas")"
}

# q_fill NAME NFBLAST_ARGS...: stores what nfblast sends with NFBLAST_ARGS once through
# nfcapd (into $W/NAME-nf) and once through tapflow-collector ($W/NAME-tf).
q_fill() {
	local name=$1 port dir; shift
	for dir in nf tf; do
		port=$(python3 -c 'import socket; s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
		rm -rf "$W/$name-$dir"; mkdir -p "$W/$name-$dir"
		if [ $dir = nf ]; then
			nfcapd -w "$W/$name-nf" -p "$port" -b 127.0.0.1 -B 67108864 -t 3600 >/dev/null 2>&1 &
		else
			"$B/tapflow-collector" -l "$W/$name-tf" -p "$port" -b 127.0.0.1 2>/dev/null &
		fi
		local cp=$!
		for _ in $(seq 100); do ss -Hlnu "sport = :$port" | grep -q . && break; sleep 0.05; done
		"$B/tools/nfblast" "$@" -d "127.0.0.1:$port" --rate 1000000 >/dev/null
		for _ in $(seq 200); do
			[ "$(ss -Hlnu "sport = :$port" | awk '{s+=$2} END{print s+0}')" = 0 ] && break
			sleep 0.05
		done
		kill -INT $cp; wait $cp || true
	done
	local nf_n tf_n
	nf_n=$(nfdump -R "$W/$name-nf" -I | sed -n 's/^Flows: //p')
	tf_n=$("$B/tapflow-query" -R "$W/$name-tf" -o json | python3 -c 'import json,sys; print(json.load(sys.stdin)["summary"]["flows"])')
	echo "   stored: nfcapd $nf_n flows ($(du -sh "$W/$name-nf" | cut -f1)), tapflow $tf_n flows ($(du -sh "$W/$name-tf" | cut -f1))"
	cat "$W/$name"-nf/* "$W/$name"-tf/*/*/*/* >/dev/null # page cache warm for both
	QN=$nf_n QT=$tf_n
}

# q_compare NAME QUERY...: each query over NAME's two stores, best of alternating runs
# (the machine is noisy: a run of a tenth of a second can take twice that): five of
# each where nfdump's first took under 3 s, else two. A query is "ARGS" or
# "ARGS proto ..." (the filter starts at "proto").
q_compare() {
	local name=$1 q; shift
	for q in "$@"; do
		local args=(${q%% proto*}) f="" nf_s=999999 nf_m=0 tf_s=999999 tf_m=0 r s m reps=2
		[ "$q" != "${q#* proto}" ] && f="proto${q#* proto}"
		for ((r = 1; r <= reps; r++)); do
			read -r s m <<<"$(TZ=UTC tmeas nfdump -R "$W/$name-nf" "${args[@]}" ${f:+"$f"})"
			[ "$r" = 1 ] && [ "$(echo "$s < 3" | bc -l)" = 1 ] && reps=5
			if [ "$(echo "$s < $nf_s" | bc -l)" = 1 ]; then nf_s=$s; nf_m=$m; fi
			read -r s m <<<"$(TZ=UTC tmeas "$B/tapflow-query" -R "$W/$name-tf" "${args[@]}" ${f:+"$f"})"
			if [ "$(echo "$s < $tf_s" | bc -l)" = 1 ]; then tf_s=$s; tf_m=$m; fi
		done
		nf_s=$(echo "if ($nf_s < 0.01) 0.01 else $nf_s" | bc -l)
		tf_s=$(echo "if ($tf_s < 0.01) 0.01 else $tf_s" | bc -l)
		printf '  %-46s\n' "${args[*]}${f:+ '$f'}"
		printf '    nfdump         %7.3fs %6.1fM flows/s %7.0f MiB\n' "$nf_s" \
			"$(echo "$QN / $nf_s / 1000000" | bc -l)" "$(echo "$nf_m / 1024" | bc -l)"
		printf '    tapflow-query  %7.3fs %6.1fM flows/s %7.0f MiB  (%.1fx nfdump, %.2fx its memory)\n' \
			"$tf_s" "$(echo "$QT / $tf_s / 1000000" | bc -l)" "$(echo "$tf_m / 1024" | bc -l)" \
			"$(echo "$nf_s / $tf_s" | bc -l)" "$(echo "$tf_m / $nf_m" | bc -l)"
	done
}

bench_query() {
	local n=${BENCH_QUERY_FLOWS:-10000000} nr=${BENCH_QUERY_REAL_FLOWS:-5000000} old_rmem
	old_rmem=$(sysctl -n net.core.rmem_max)
	sysctl -qw net.core.rmem_max=67108864
	echo "== query: $n flows, one distinct source each (nfblast --synth --random-src), stored"
	echo "   by nfcapd and by tapflow-collector; each query timed for both in this run"
	q_fill q --synth "$n" --random-src "$n" --start-ms 1767225600000
	q_compare q "-s srcip/bytes -n 10" "-s dstip/bytes proto tcp and dst port 443" "-A srcip,dstip"
	# memory is a setting: the same top 10 in a small budget (exact, in more passes)
	local mm s m passes
	for mm in 64M 32M; do
		read -r s m <<<"$(TZ=UTC tmeas "$B/tapflow-query" -R "$W/q-tf" -s srcip/bytes -n 10 --max-memory "$mm")"
		passes=$("$B/tapflow-query" -R "$W/q-tf" -s srcip/bytes -n 10 --max-memory "$mm" -o json |
			python3 -c 'import json,sys; s=json.load(sys.stdin)["summary"]; print(s["passes"])')
		printf '  -s srcip/bytes -n 10 --max-memory %s: tapflow-query %6.2fs %7.0f MiB, %s passes\n' \
			"$mm" "$s" "$(echo "$m / 1024" | bc -l)" "$passes"
	done
	rm -rf "$W/q-nf" "$W/q-tf"
	echo "== query: $nr realistic flows (nfblast --realistic: an office uplink, both directions"
	echo "   of each connection, IPv4 and IPv6, skewed hosts and services), the same way"
	q_fill qr --synth "$nr" --realistic 1
	q_compare qr "-s srcip/bytes -n 10" "-s dstip/bytes proto tcp and dst port 443" \
		"-A srcip,dstip" "-s dstport/flows proto udp"
	rm -rf "$W/qr-nf" "$W/qr-tf"
	sysctl -qw net.core.rmem_max="$old_rmem"
}

case $what in
probe) bench_probe ;;
live) bench_live ;;
collector) bench_collector ;;
memory) bench_memory ;;
ebpf) bench_ebpf ;;
query) bench_query ;;
all) bench_probe; bench_live; bench_ebpf; bench_collector; bench_memory; bench_query ;;
*)
	echo "usage: tests/bench/run.sh [probe|live|ebpf|collector|memory|query|all]" >&2
	exit 2 ;;
esac
