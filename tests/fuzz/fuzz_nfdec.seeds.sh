#!/usr/bin/env bash
# Seeds for fuzz_nfdec: every vendor NetFlow/IPFIX case in the shared test data, its UDP
# payloads in capture order framed as fuzz_nfdec.c reads them ([ctl][len16][datagram],
# one second apart, one exporter), one file per case, plus one file with all cases in a
# row through two exporters. Written into the directory $1.
#   tests/fuzz/fuzz_nfdec.seeds.sh OUTDIR
set -eu
out=${1:?usage: $0 OUTDIR}
top=${TOP:-$(cd "$(dirname "$0")/../.." && pwd)}
vendors=${TF_TESTDATA:-$top/../shared/testdata}/netflow-vendors
[ -d "$vendors" ] || { echo "no test data at $vendors" >&2; exit 0; }
mkdir -p "$out"
exec python3 - "$vendors" "$out" <<'PY'
import os, struct, sys

src, out = sys.argv[1], sys.argv[2]

def payloads(d):
    bo = {b'\xd4\xc3\xb2\xa1': '<', b'\xa1\xb2\xc3\xd4': '>'}.get(d[:4])
    if bo is None or struct.unpack(bo + 'I', d[20:24])[0] != 1:
        return
    off = 24
    while off + 16 <= len(d):
        incl = struct.unpack(bo + 'I', d[off + 8:off + 12])[0]
        f = d[off + 16:off + 16 + incl]
        off += 16 + incl
        if len(f) < 42 or f[12:14] != b'\x08\x00' or f[23] != 17:
            continue
        ip = 14 + (f[14] & 15) * 4
        ulen = struct.unpack('>H', f[ip + 4:ip + 6])[0]
        yield f[ip + 8:ip + ulen]

def frame(ctl, p):
    return bytes([ctl]) + struct.pack('>H', len(p)) + p

allin, n = b'', 0
for i, name in enumerate(sorted(os.listdir(src))):
    if not name.endswith('.pcap'):
        continue
    ps = list(payloads(open(os.path.join(src, name), 'rb').read()))
    open(os.path.join(out, 'vendor-' + name[:-5]), 'wb').write(
        b''.join(frame(4, p) for p in ps))
    allin += b''.join(frame(4 | (i & 1), p) for p in ps)
    n += 1
open(os.path.join(out, 'vendor-all'), 'wb').write(allin)
print(n + 1, 'seeds')
PY
