#!/usr/bin/env bash
# Robustness: every capture of tcpdump's test corpus (hundreds of protocols, many
# deliberately malformed or truncated) through the ASan+UBSan build of tapflow-probe -r.
# Each run must exit 0, or 1 with a clear one-line error for a file it cannot read
# (an unsupported link type, a damaged file header); never a sanitizer report or crash.
# Then the captures on PPP/HDLC links and with MPLS or PPPoE count what tshark counts.
. "$(dirname "$0")/lib.sh"
PROBE=$SAN/tapflow-probe
[ -x "$PROBE" ] || fail "no sanitizer build at $PROBE"
[ -d "$TESTDATA/pcaps" ] || fail "no test corpus at $TESTDATA/pcaps"
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:exitcode=99
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1:exitcode=98
P=$(free_udp_port)
bg python3 "$TOP/tests/tools/udpsink.py" "$P" "$T/sink.pcap" "$T/ready"
wait_for "[ -f $T/ready ]" || fail "sink did not start"

n=0 ok=0 refused=0 bad=0 pk=0 perr=0
for f in "$TESTDATA"/pcaps/*; do
	case "$f" in *.pcap|*.pcapng|*.cap|*.pcap.gz) ;; *) continue ;; esac
	n=$((n + 1))
	rc=0
	"$PROBE" -r "$f" -n "127.0.0.1:$P" >"$T/out" 2>"$T/err" || rc=$?
	if grep -qE 'Sanitizer|runtime error|LeakSanitizer' "$T/err"; then
		echo "sanitizer report on $f:"; head -40 "$T/err"; bad=$((bad + 1)); continue
	fi
	case $rc in
	0) ok=$((ok + 1))
	   pk=$((pk + $(sed -n 's/^  frames: //p' "$T/err")))
	   perr=$((perr + $(sed -n 's/^  parse_errors: //p' "$T/err"))) ;;
	1) if grep -q '^tapflow-probe: error: ' "$T/err" && [ "$(grep -c . "$T/err")" -le 3 ]; then
		refused=$((refused + 1))
	   else
		echo "exit 1 without a clear error on $f:"; cat "$T/err"; bad=$((bad + 1))
	   fi ;;
	*) echo "exit $rc on $f:"; tail -20 "$T/err"; bad=$((bad + 1)) ;;
	esac
done
echo "files=$n read=$ok refused_with_error=$refused bad=$bad frames=$pk parse_errors=$perr"
[ "$n" -gt 100 ] || fail "corpus looks incomplete ($n files)"
[ "$bad" = 0 ] || fail "$bad files crashed, leaked or failed without a clear error"

# Packets and IP bytes of the captures on PPP and Cisco HDLC links and of those with
# MPLS or PPPoE, against tshark's own count of their IP packets.
checked=0
for f in "$TESTDATA"/pcaps/*; do
	case "$f" in *.pcap|*.pcapng) ;; *) continue ;; esac
	enc=$(capinfos -E "$f" 2>/dev/null | sed -n 's/^File encapsulation: *//p')
	case "$enc" in
	*PPP*|*HDLC*) ;;
	Ethernet) # the ethertypes' bytes anywhere first: tshark only where they may be
		LC_ALL=C grep -qaE $'\x88[\x47\x48\x64]' "$f" || continue
		[ "$(tshark -r "$f" -Y 'mpls || pppoes' 2>/dev/null | head -n 1)" ] || continue ;;
	*) continue ;;
	esac
	"$BIN/tapflow-probe" -r "$f" -n "127.0.0.1:$P" 2>"$T/err" >/dev/null || continue
	got="$(sed -n 's/^  packets: //p' "$T/err") $(sed -n 's/^  bytes: //p' "$T/err")"
	# (Arista's timestamp header, AVSP, is not followed: those frames are not IP to us)
	want=$(tshark -r "$f" -Y '(ip || ipv6) && !avsp' -T fields -e ip.len -e ipv6.plen 2>/dev/null |
		awk '{split($1, a, ","); split($2, c, ","); n++; s += (a[1] != "" ? a[1] : c[1] + 40)}
		     END {print n + 0, s + 0}')
	[ "$got" = "$want" ] || fail "$(basename "$f") ($enc): probe counted '$got', tshark '$want'"
	checked=$((checked + 1))
done
echo "PPP/HDLC/MPLS/PPPoE captures checked against tshark: $checked"
[ "$checked" -ge 10 ] || fail "only $checked PPP/HDLC/MPLS/PPPoE captures found"
