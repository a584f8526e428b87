#!/usr/bin/env bash
# Runs every test: unit tests (cmocka, under ASan+UBSan), fuzz targets for a bounded
# time, then the integration tests (network namespaces, peer tools). Prints each
# result and a closing "N passed, N failed" line; exits non-zero if anything failed.
#   tests/run.sh [unit|fuzz|integ]... [-k PATTERN]
set -u
cd "$(dirname "$0")/.."
TOP=$PWD
export TOP
FUZZ_SECS=${FUZZ_SECS:-30}
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

kinds=()
pat=""
while [ $# -gt 0 ]; do
	case "$1" in
	-k) pat=$2; shift 2 ;;
	*) kinds+=("$1"); shift ;;
	esac
done
[ ${#kinds[@]} -eq 0 ] && kinds=(unit fuzz integ)

pass=0; fail=0; skip=0; failed=()
logdir=$TOP/build/test-logs
mkdir -p "$logdir"

record() { # name rc seconds
	local rc=$2
	# A skip is exit 77 with the reason on a "SKIP: " line (tests/integ/lib.sh skip):
	# a tool inside a test that happens to exit 77 must not pass as a skip.
	if [ "$rc" = 77 ] && ! grep -q '^SKIP: ' "$logdir/$1.log"; then
		echo "exit 77 without a 'SKIP: reason' line: not a skip" >>"$logdir/$1.log"
		rc=1
	fi
	case $rc in
	0) pass=$((pass + 1)); printf 'PASS  %-40s %4ss\n' "$1" "$3" ;;
	77) skip=$((skip + 1)); printf 'SKIP  %-40s %s\n' "$1" "$(grep '^SKIP: ' "$logdir/$1.log" | tail -n 1)" ;;
	*) fail=$((fail + 1)); failed+=("$1"); printf 'FAIL  %-40s %4ss (log: %s)\n' "$1" "$3" "$logdir/$1.log"
	   tail -n 30 "$logdir/$1.log" | sed 's/^/      | /' ;;
	esac
}

run_one() { # name cmd...
	local name=$1; shift
	[ -n "$pat" ] && [[ "$name" != *$pat* ]] && return
	local t0=$SECONDS
	"$@" >"$logdir/$name.log" 2>&1
	local rc=$?
	record "$name" $rc $((SECONDS - t0))
}

for kind in "${kinds[@]}"; do
case $kind in
unit)
	for t in build-san/tests/test_*; do
		[ -x "$t" ] || continue
		name=unit/$(basename "$t")
		[ -n "$pat" ] && [[ "$name" != *$pat* ]] && continue
		t0=$SECONDS
		mkdir -p "$logdir/unit"
		# a directory of its own for the test's files (tests/unit/tmpdir.h): gone when
		# it passes, kept for a look when it fails
		tdir=$(mktemp -d "${TMPDIR:-/tmp}/tf-$(basename "$t").XXXXXX")
		TMPDIR=$tdir "$t" >"$logdir/$name.log" 2>&1; rc=$?
		if [ $rc = 0 ]; then rm -rf "$tdir"; else echo "test files kept in $tdir" >>"$logdir/$name.log"; fi
		grep -E '^\[  (PASSED|FAILED)  \]' "$logdir/$name.log" | sed "s|^|      $name: |"
		record "$name" $rc $((SECONDS - t0))
	done ;;
fuzz)
	# As many at once as there are CPUs (each fuzzer is one process): the same fuzzing
	# per target in a fraction of the wall time. Results print in target order.
	par=$(nproc 2>/dev/null || echo 1)
	fnames=(); fpids=()
	fuzz_reap() { # waits for the oldest running target and records it
		wait "${fpids[0]}"
		local rc=$?
		record "${fnames[0]}" $rc "$(cat "$logdir/${fnames[0]}.secs" 2>/dev/null || echo '?')"
		fnames=("${fnames[@]:1}"); fpids=("${fpids[@]:1}")
	}
	for f in build-fuzz/fuzz/fuzz_*; do
		[ -x "$f" ] || continue
		b=$(basename "$f")
		[ -n "$pat" ] && [[ "fuzz/$b" != *$pat* ]] && continue
		corpus=$TOP/build/fuzz-corpus/$b
		mkdir -p "$corpus" "$logdir/fuzz"
		seeds=()
		[ -d "tests/fuzz/seeds/$b" ] && seeds+=("tests/fuzz/seeds/$b")
		[ -x "tests/fuzz/$b.seeds.sh" ] && { "tests/fuzz/$b.seeds.sh" "$corpus" >/dev/null 2>&1 || true; }
		[ ${#fpids[@]} -ge "$par" ] && fuzz_reap
		( t0=$SECONDS
		  # -error_exitcode: libFuzzer's own default, 77, is this script's "skipped"
		  "$f" -max_total_time="$FUZZ_SECS" -timeout=10 -rss_limit_mb=2048 -error_exitcode=1 \
			-print_final_stats=1 "$corpus" "${seeds[@]}" >"$logdir/fuzz/$b.log" 2>&1
		  rc=$?
		  echo $((SECONDS - t0)) >"$logdir/fuzz/$b.secs"
		  exit $rc ) &
		fnames+=("fuzz/$b"); fpids+=($!)
	done
	while [ ${#fpids[@]} -gt 0 ]; do fuzz_reap; done ;;
integ)
	mkdir -p "$logdir/integ"
	for t in tests/integ/*.sh; do
		[ -f "$t" ] || continue
		[ "$(basename "$t")" = lib.sh ] && continue  # sourced by the tests, not one
		run_one "integ/$(basename "$t" .sh)" bash "$t"
	done ;;
esac
done

echo
if [ $fail -gt 0 ]; then echo "failed: ${failed[*]}"; fi
echo "$pass passed, $fail failed, $skip skipped"
[ $fail -eq 0 ]
