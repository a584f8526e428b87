#!/usr/bin/env bash
# tapflow-nfdump as a drop-in for nfdump 1.7.1: one generated pcap goes through
# `tapflow-probe -r` to nfcapd and tapflow-collector at once; then every command line
# below (the way monitoring consoles such as Pandora FMS call nfdump: -N -R. -M DIR,
# -q, -o csv, -o line|long|extended, -o fmt:..., -s ELEM/ORDER, -s record/bytes, -A, -O, -c, -n, -t, filters)
# runs through nfdump on nfcapd's store and through tapflow-nfdump on ours, with TZ=UTC,
# and the outputs must be equal byte for byte, except where documented; and -M DIR1:DIR2
# over two copies of each store, compared as sorted rows. Documented differences:
#   sorted    rows nfdump prints in hash order (-A without -O), or long sorted lists
#             whose equal keys (ties) nfdump orders its own way: compared as sorted sets;
#   csv48     the flow CSV's last column "tr" (time nfcapd received the flow): tapflow
#             does not record it and prints the zero time nfdump prints when unset;
#   record    -s record without -A: nfdump keeps the first flow's other fields (flags,
#             router ip "ra", exporter id "exid", "tr"); tapflow's aggregate carries
#             only the key fields, so columns 9, 45, 47, 48 are left out;
#   summary   the text summary's last two lines: "Total flows processed ... Bytes read"
#             counts nfdump's file records and bytes (tapflow: records in the blocks it
#             decoded, bytes of its own files), "Sys: ... Wall" are run times. Their
#             positions and labels are compared, not their values.
# Known differences left out on purpose: -A on fields without an address prints the
# address family of whichever flow nfdump met first (tapflow: IPv4); nfdump 1.7.1's
# -O bps/pps listings are not in bps order (tapflow's are); tapflow also accepts
# -s exporter and srcnet/N, which nfdump 1.7.1 refuses; -A srctos groups as -A tos and
# is titled Tos (nfdump: STos, another column for the same value).
. "$(dirname "$0")/lib.sh"
need_root
big_rcvbuf
command -v nfdump >/dev/null || skip "nfdump not installed"
NFD=${TF_NFDUMP_BIN:-$BIN/tapflow-nfdump}
[ -x "$NFD" ] || fail "$NFD not built"
export TZ=UTC

"$TOOLS/genpcap" -o "$T/in.pcap" -t "$T/truth.csv" -n 20000 -s 7 >"$T/gen.txt"
note "generated: $(cat "$T/gen.txt")"

P1=$(free_udp_port)
start_nfcapd "$T/nf" "$P1"
P2=$(free_udp_port)
mkdir -p "$T/tf"
start_tapflow_collector "$T/tf" "$P2"
"$BIN/tapflow-probe" -r "$T/in.pcap" -n "127.0.0.1:$P1" -n "127.0.0.1:$P2" \
	2>"$T/probe.log" || { cat "$T/probe.log"; fail "probe exited non-zero"; }
grep -q "^  export_send_errors: 0\$" "$T/probe.log" || fail "probe send errors"
wait_for "udp_drained $P1" 30 || fail "nfcapd does not drain its socket"
wait_for "udp_drained $P2" 30 || fail "tapflow-collector does not drain its socket"
stop_pid "$NFCAPD_PID" TERM || true
stop_pid "$COLL_PID" TERM || fail "tapflow-collector exit status non-zero"

read -r nf_fl nf_pk nf_by <<<"$(nfdump_totals "$T/nf")"
note "nfdump store: flows=$nf_fl packets=$nf_pk bytes=$nf_by"
[ "$nf_fl" -gt 1000 ] || fail "nfcapd stored only $nf_fl flows"

n=0 bad=0
# check MODE ARGS...: runs both tools (nfdump on -M nf, ours on -M tf) and compares.
check() {
	local mode=$1
	shift
	n=$((n + 1))
	nfdump -M "$T/nf" "$@" >"$T/a.$n" 2>&1 || true
	"$NFD" -M "$T/tf" "$@" >"$T/b.$n" 2>&1 || { echo "tapflow-nfdump failed: $*"; cat "$T/b.$n"; }
	local a=$T/a.$n b=$T/b.$n
	case $mode in
	exact) ;;
	sorted) sort "$a" >"$a.x"; sort "$b" >"$b.x"; a=$a.x b=$b.x ;;
	csv48) cut -d, -f1-47 "$a" >"$a.x"; cut -d, -f1-47 "$b" >"$b.x"; a=$a.x b=$b.x ;;
	record)
		cut -d, -f1-8,10-44,46,49- "$a" >"$a.x"; cut -d, -f1-8,10-44,46,49- "$b" >"$b.x"
		a=$a.x b=$b.x ;;
	summary)
		sed -E 's/^(Total flows processed:).*/\1/; s/^(Sys:).*/\1/' "$a" >"$a.x"
		sed -E 's/^(Total flows processed:).*/\1/; s/^(Sys:).*/\1/' "$b" >"$b.x"
		a=$a.x b=$b.x ;;
	esac
	[ -s "$T/a.$n" ] || { echo "nfdump printed nothing for: $*"; bad=$((bad + 1)); return; }
	if diff "$a" "$b" >"$T/d.$n"; then
		echo "ok $n ($mode): $*"
	else
		echo "DIFF $n ($mode): $*"
		head -6 "$T/d.$n" | cut -c1-200
		bad=$((bad + 1))
	fi
}

W=2026/01/01.00:00:10-2026/01/01.00:00:30
# Pandora FMS style: plain numbers, quiet, the store under -M.
check exact -N -R. -q -o csv -s srcip/bytes -n 10
check exact -N -R. -q -o csv -s dstip/bytes -n 10 -t "$W"
check exact -N -R. -q -o csv -s dstport/bytes -n 10
check exact -N -R. -q -o csv -s srcport/packets -n 5
check exact -N -R. -q -o csv -s proto/bytes
check exact -N -R. -q -o csv -s ip/bytes -n 10
check exact -N -R. -o csv -s srcip/bytes -n 5
check record -N -R. -q -o csv -s record/bytes -n 10
check exact -N -R. -q -o csv -s record/bytes -A srcip,dstip -n 10
check exact -N -R. -q -o "fmt:%sap,%dap,%ibyt,%bps" -s record/bytes -n 10
check exact -R. -q -o "fmt:%sap,%dap,%ibyt,%bps" -s record/bytes -n 10 -t "$W"
check exact -N -R. -q -o csv -s dstip/bytes -n 10 'proto tcp and dst port 443'
check exact -N -R. -q -o csv -s srcport/bytes -n 5 'src net 10.0.0.0/8'
check exact -N -R. -q -o csv -s srcip/bytes -n 5 '(port 80) or (port 443)'
check exact -N -R. -q -o csv -s dstip/bytes -n 5 'not port 53'
# a host name: nfdump looks it up and says so on stdout, before the answer
check exact -N -R. -q -o csv -s srcip/bytes -n 5 'host localhost or proto udp'
check exact -R. -q -o csv -A srcip,dstport -O bytes -n 20
check sorted -R. -q -o "fmt:%sa,%da,%byt,%fl" -A srcip,dstip -O bytes
check exact -R. -q -o "fmt:%sa,%da,%byt,%fl" -A srcip,dstip -O bytes -n 20
check sorted -R. -q -o csv -A srcip,dstip -c 500
check sorted -R. -q -o "fmt:%sa,%pkt,%byt,%fl" -A srcip
# Listings in store order, every fmt token, scaled and plain numbers.
check csv48 -R. -o csv -c 50
check csv48 -R. -q -o csv 'proto udp'
check exact -R. -q -o "fmt:%ts|%te|%td|%pr|%sa|%da|%sp|%dp|%pkt|%ipkt|%byt|%ibyt|%fl|%bps|%pps|%bpp|%flg|%tos|%in|%out"
check exact -N -R. -q -o "fmt:%ts|%te|%td|%pr|%sap|%dap|%pkt|%byt|%fl|%bps|%pps|%bpp"
check exact -R. -q -o line 'proto icmp or proto 58'
check exact -R. -q -o line -O bytes -n 10
check exact -R. -q -o line -a -O bytes -n 10
check csv48 -R. -q -o csv -O packets -n 5 'proto udp'
check exact -R. -q -o line -O tstart -c 30
check exact -R. -q -o long -O bytes -n 10
check exact -R. -q -o extended -O packets -n 10 'proto tcp'
check summary -R. -o extended -c 20
check summary -R. -o line -c 20
check summary -R. -o line -c 5 'proto udp'
check summary -R. -o line -t "$W" 'proto tcp'
check summary -R. -o "fmt:%sap,%dap,%ibyt,%bps" -s record/bytes -n 10
check summary -R. -s srcip/bytes -s proto -s dstport/bytes/packets -n 5
check summary -N -R. -s dstip/bps -n 5
# -A without -o: groups in a format of their keys ("%ts %td  %sa %dp  %pkt ..."), no
# "Top N" title (that is -s record's)
check summary -R. -A srcip,dstport -O bytes -n 10
check summary -R. -A srcip,srcport,dstip,dstport,proto -O bytes -n 10
check summary -R. -A srcas,dstas,srcvlan,router,inif,tos -O bytes -n 5
check summary -R. -s record/bytes -A srcip,dstport -n 5
check summary -R. -A srcip4/24 -O bytes -n 5
check exact -R. -q -o "fmt:%ts %sas %das %svln %ra %sn %dn %nh %smk %dmk %pr" -c 40
# -o pipe: rows alone, '|' between numbers (a statistic's IPv6 address in nfdump's
# byte-swapped words)
check exact -R. -o pipe -c 50
check exact -R. -o pipe 'proto icmp or inet6'
check exact -R. -o pipe -s proto -s srcip/bytes -n 5
check exact -R. -o pipe -s srcip/bytes -n 5 inet6
check exact -R. -o pipe -A srcip,dstport -O bytes -n 5
check exact -R. -o pipe -s tos -s if -s srcas -n 3
check exact -R. -o pipe 'proto 99'
# -I: the store's totals by protocol, first and last (nfdump: its files' statistics)
check exact -R. -I
check exact -R. -I 'proto udp'
# -o null: statistics and summary, no flows or groups
check summary -R. -o null 'proto udp'
check summary -R. -o null -s proto -s record/bytes -n 3
check summary -R. -o null -A srcip -O bytes -n 5
# nfsen's "Any interface" and "Any AS": each flow counts for both sides
check summary -R. -s if/bytes -s as/flows -n 5
check exact -N -R. -q -o csv -s if/packets
check summary -R. -o line 'proto 99'
check exact -N -R. -o csv -s srcip/bytes 'proto 99'
check exact -R. -o csv 'proto 99'
# -r FILE: both stores hold one file here (nfcapd -t 3600; one collector file).
n=$((n + 1))
[ "$(find "$T/nf" -name 'nfcapd.*' | wc -l)" = 1 ] || fail "nfcapd wrote more than one file"
[ "$(find "$T/tf" -name '*.tfs' | wc -l)" = 1 ] || fail "tapflow-collector wrote more than one file"
nfdump -r "$(find "$T/nf" -name 'nfcapd.*')" -N -q -o csv -s proto/bytes >"$T/a.$n"
"$NFD" -r "$(find "$T/tf" -name '*.tfs')" -N -q -o csv -s proto/bytes >"$T/b.$n"
if cmp -s "$T/a.$n" "$T/b.$n"; then
	echo "ok $n: -r FILE"
else
	echo "DIFF $n: -r FILE"; diff "$T/a.$n" "$T/b.$n" | head -6; bad=$((bad + 1))
fi
# -M /any/dir1:dir2 reads both directories as one (the stores copied twice here).
mkdir -p "$T/m"
cp -r "$T/nf" "$T/m/nfa"; cp -r "$T/nf" "$T/m/nfb"
cp -r "$T/tf" "$T/m/tfa"; cp -r "$T/tf" "$T/m/tfb"
# check_m FILTER ARGS...: both tools over -M DIR1:DIR2; rows compared as sorted sets
# (the files of both directories interleave by time, ties in either tool's order)
check_m() {
	local f=$1
	shift
	n=$((n + 1))
	nfdump -M "$T/m/nfa:nfb" -R. "$@" ${f:+"$f"} 2>&1 | cut -d, -f1-47 | sort >"$T/a.$n"
	"$NFD" -M "$T/m/tfa:tfb" -R. "$@" ${f:+"$f"} 2>&1 | cut -d, -f1-47 | sort >"$T/b.$n"
	[ "$(wc -l <"$T/a.$n")" -gt 3 ] || fail "nfdump -M printed $(wc -l <"$T/a.$n") lines: $*"
	if cmp -s "$T/a.$n" "$T/b.$n"; then
		echo "ok $n: -M DIR1:DIR2 $* $f"
	else
		echo "DIFF $n: -M DIR1:DIR2 $* $f"; diff "$T/a.$n" "$T/b.$n" | head -6; bad=$((bad + 1))
	fi
}
check_m "" -N -q -o csv -s srcip/bytes -n 10
check_m "" -N -q -o csv -s proto/packets
check_m "proto udp" -q -o csv
"$NFD" -M "$T/m/tfa:nosuch" -R. -q >/dev/null 2>"$T/e0" && fail "-M with a missing directory accepted"
grep -q "$T/m/nosuch" "$T/e0" || fail "-M error does not name the directory: $(cat "$T/e0")"
# -Z checks a filter's syntax and exits as nfdump does (0, or 254), reading nothing.
for f in "proto tcp and dst port 443" "(port 80) or (port 443)" "proto tcp and prt 80" "host"; do
	a=0 b=0
	nfdump -Z "$f" >/dev/null 2>&1 || a=$?
	"$NFD" -Z "$f" >/dev/null 2>&1 || b=$?
	[ "$a" = "$b" ] || fail "-Z '$f': nfdump exits $a, tapflow-nfdump $b"
done
"$NFD" -Z 'proto tcp and prt 80' 2>&1 | grep -q prt || fail "-Z does not name the bad token"
# Errors: a bad filter and a bad format fail, as in nfdump, with the token named
# (a bad filter with nfdump's status, 254).
rc=0
"$NFD" -M "$T/tf" -R. 'port foo' >/dev/null 2>"$T/e1" || rc=$?
[ "$rc" = 254 ] || fail "a bad filter exits $rc, not 254 as nfdump"
grep -q foo "$T/e1" || fail "filter error does not name the token: $(cat "$T/e1")"
"$NFD" -M "$T/tf" -R. -o 'fmt:%sa %nosuch' >/dev/null 2>"$T/e2" && fail "bad format accepted"
grep -q '%nosuch' "$T/e2" || fail "format error does not name the token"

[ "$bad" = 0 ] || fail "$bad of $n command lines differ from nfdump"
echo "ok: $n nfdump command lines print the same through tapflow-nfdump"
