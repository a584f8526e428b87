#!/usr/bin/env bash
# Cross build and qemu-user run for one target (arm64 here; cross_armhf.sh runs this for
# armhf): deploy/deps.sh --cross installs the toolchain and unpacks the sysroot, `make
# CROSS=...` builds programs, unit tests and tools into build-ARCH/, every unit test must
# pass under qemu, and the offline path must hold end to end with every binary under qemu:
# the target's genpcap writes the same bytes as the native one, tapflow-probe -r exports
# it over UDP on loopback to tapflow-collector, and tapflow-query finds the generator's
# flows, packets and bytes. The store written on the target must read the same natively
# (fixed-width on-disk format). Live capture and bpf() cannot run under qemu-user.
. "$(dirname "$0")/lib.sh"

arch=${1:-arm64}
case $arch in
arm64) cross=aarch64-linux-gnu- qemu=qemu-aarch64-static machine=AArch64 ;;
armhf) cross=arm-linux-gnueabihf- qemu=qemu-arm-static machine=ARM ;;
*) fail "unknown arch $arch" ;;
esac

t0=$SECONDS
if ! bash "$TOP/deploy/deps.sh" --cross "$arch" >"$T/deps.log" 2>&1; then
	cat "$T/deps.log"
	[ "$(id -u)" = 0 ] && fail "deploy/deps.sh --cross $arch failed"
	skip "cross toolchain for $arch missing (root installs it)"
fi
note "deps: $((SECONDS - t0)) s"

t0=$SECONDS
# The native build too (up to date under make check): its genpcap, query and eBPF
# object are what the target's are compared with.
make -C "$TOP" --no-print-directory -j"$(nproc)" all tools >"$T/make-native.log" 2>&1 ||
	{ tail -n 40 "$T/make-native.log"; fail "native build failed"; }
make -C "$TOP" --no-print-directory -j"$(nproc)" CROSS="$cross" all unit tools \
	>"$T/make.log" 2>&1 || { tail -n 40 "$T/make.log"; fail "cross build for $arch failed"; }
note "build: $((SECONDS - t0)) s"
XB=$TOP/build-$arch
SYSROOT=$TOP/build-$arch/sysroot
for p in tapflow-probe tapflow-collector tapflow-query; do
	readelf -h "$XB/$p" | grep -q "Machine: *$machine" || fail "$p is not an $arch binary"
done
# The eBPF object (when the probe has one) is the same bytes on every arch: BPF is one
# little-endian target for x86 and every Pi.
if [ -f "$XB/bpf/flow.bpf.o" ] && [ -f "$BIN/bpf/flow.bpf.o" ]; then
	cmp -s "$XB/bpf/flow.bpf.o" "$BIN/bpf/flow.bpf.o" || fail "the $arch build has another eBPF object"
	note "eBPF object identical to the native build's"
fi
Q=("$qemu" -L "$SYSROOT")
"${Q[@]}" "$XB/tapflow-probe" --version | grep -q "^tapflow-probe " || fail "probe --version under qemu"

# Unit tests, each one under qemu, from the top directory as tests/run.sh runs them.
t0=$SECONDS
cd "$TOP"
export TF_TESTDATA=$TESTDATA
nt=0
for t in "$XB"/tests/test_*; do
	[ -x "$t" ] || continue
	name=$(basename "$t")
	if ! "${Q[@]}" "$t" >"$T/$name.log" 2>&1; then
		tail -n 30 "$T/$name.log"
		fail "unit test $name fails on $arch"
	fi
	echo "  $arch $name: $(grep -E '^\[  PASSED  \]' "$T/$name.log")"
	nt=$((nt + 1))
done
[ $nt -gt 0 ] || fail "no unit test binaries in $XB/tests"
note "unit tests under qemu: $((SECONDS - t0)) s"

# Offline path end to end, every binary of this arch under qemu.
t0=$SECONDS
"${Q[@]}" "$XB/tools/genpcap" -o "$T/in.pcap" -n 30000 -s 5 >"$T/gen.txt"
"$TOOLS/genpcap" -o "$T/native.pcap" -n 30000 -s 5 >/dev/null
cmp -s "$T/in.pcap" "$T/native.pcap" || fail "genpcap on $arch writes other bytes than natively"
read -r gen_pk gen_by gen_fl <<<"$(sed -E 's/.*packets=([0-9]+) bytes=([0-9]+) flows=([0-9]+).*/\1 \2 \3/' "$T/gen.txt")"
note "generated: $(cat "$T/gen.txt")"

P=$(free_udp_port)
bg "${Q[@]}" "$XB/tapflow-collector" -l "$T/store" -p "$P" -b 127.0.0.1 2>"$T/coll.log"
COLL=$BGPID
wait_for "grep -q 'listening on' $T/coll.log" 30 || { cat "$T/coll.log"; fail "collector did not start under qemu"; }
"${Q[@]}" "$XB/tapflow-probe" -r "$T/in.pcap" -n "127.0.0.1:$P" -u "" 2>"$T/probe.log" ||
	{ cat "$T/probe.log"; fail "probe exited non-zero under qemu"; }
grep -q "^  packets: $gen_pk\$" "$T/probe.log" || { cat "$T/probe.log"; fail "probe did not account every packet"; }
grep -q "^  export_send_errors: 0\$" "$T/probe.log" || fail "probe send errors"
wait_for "udp_drained $P" 30 || fail "collector does not drain its socket"
stop_pid "$COLL" TERM || { cat "$T/coll.log"; fail "collector exited non-zero"; }

totals() { python3 -c 'import json,sys; s=json.load(sys.stdin)["summary"]; print(s["flows"], s["packets"], s["bytes"])'; }
read -r fl pk by <<<"$("${Q[@]}" "$XB/tapflow-query" -R "$T/store" -o json | totals)"
note "tapflow-query on $arch: flows=$fl packets=$pk bytes=$by"
[ "$pk" = "$gen_pk" ] || fail "query packets $pk != generator $gen_pk"
[ "$by" = "$gen_by" ] || fail "query bytes $by != generator $gen_by"
[ "$fl" = "$gen_fl" ] || fail "query flows $fl != generator $gen_fl"
read -r nfl npk nby <<<"$("$BIN/tapflow-query" -R "$T/store" -o json | totals)"
[ "$nfl $npk $nby" = "$fl $pk $by" ] || fail "native query reads the $arch store as $nfl $npk $nby"
note "end to end under qemu: $((SECONDS - t0)) s"
echo "cross $arch: build, $nt unit tests and the offline path pass under qemu"
