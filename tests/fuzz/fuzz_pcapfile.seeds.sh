#!/usr/bin/env bash
# Seeds for fuzz_pcapfile: the first 4 KB of a few dozen capture files (classic pcap of
# both byte orders and precisions, pcapng) from the shared test data, into $1.
#   tests/fuzz/fuzz_pcapfile.seeds.sh OUTDIR
set -eu
out=${1:?usage: $0 OUTDIR}
pcaps=${TAPFLOW_TESTDATA:-$(cd "$(dirname "$0")/../../.." && pwd)/shared/testdata}/pcaps
[ -d "$pcaps" ] || { echo "no test data at $pcaps" >&2; exit 0; }
mkdir -p "$out"
n=0
for f in "$pcaps"/*; do
	[ $((n % 12)) -eq 0 ] && head -c 4096 "$f" >"$out/file-$(basename "$f")"
	n=$((n + 1))
done
