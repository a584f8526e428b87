#!/usr/bin/env bash
# Seeds for fuzz_pkt: the first few packets of every pcap/pcapng in the shared test data
# whose link type the parser knows (Ethernet, raw IP, SLL, SLL2, BSD NULL/LOOP, PPP, HDLC), one
# file per distinct packet, written into the directory $1. The fuzz target parses each
# input as every link type, so the link type itself is not kept.
#   tests/fuzz/fuzz_pkt.seeds.sh OUTDIR
set -eu
out=${1:?usage: $0 OUTDIR}
pcaps=${TAPFLOW_TESTDATA:-/work/shared/testdata}/pcaps
[ -d "$pcaps" ] || { echo "no test data at $pcaps" >&2; exit 0; }
mkdir -p "$out"
exec python3 - "$pcaps" "$out" <<'EOF'
import hashlib, os, struct, sys

src, out = sys.argv[1], sys.argv[2]
LINKS = {0, 1, 9, 12, 50, 51, 101, 104, 108, 113, 228, 229, 276}  # + PPP, PPP_HDLC, PPP_ETHER, C_HDLC
PER_FILE = 4
MAXLEN = 4096

def classic(d):
    bo = {b'\xd4\xc3\xb2\xa1': '<', b'\x4d\x3c\xb2\xa1': '<',
          b'\xa1\xb2\xc3\xd4': '>', b'\xa1\xb2\x3c\x4d': '>'}.get(d[:4])
    if bo is None or len(d) < 24:
        return
    if struct.unpack(bo + 'I', d[20:24])[0] & 0xffff not in LINKS:
        return
    off = 24
    while off + 16 <= len(d):
        incl = struct.unpack(bo + 'I', d[off + 8:off + 12])[0]
        off += 16
        yield d[off:off + min(incl, MAXLEN)]
        off += incl

def pcapng(d):
    bo, links, off = '<', [], 0
    while off + 12 <= len(d):
        btype = struct.unpack(bo + 'I', d[off:off + 4])[0]
        if btype == 0x0a0d0d0a:
            bo = '<' if d[off + 8:off + 12] == b'\x4d\x3c\x2b\x1a' else '>'
            links = []
        blen = struct.unpack(bo + 'I', d[off + 4:off + 8])[0]
        if blen < 12:
            return
        body = d[off + 8:off + blen - 4]
        if btype == 1 and len(body) >= 2:
            links.append(struct.unpack(bo + 'H', body[:2])[0])
        elif btype == 6 and len(body) >= 20:
            ifc, _, _, cap, _ = struct.unpack(bo + 'IIIII', body[:20])
            if ifc < len(links) and links[ifc] in LINKS:
                yield body[20:20 + min(cap, MAXLEN)]
        off += blen

seen = set()
for name in sorted(os.listdir(src)):
    try:
        d = open(os.path.join(src, name), 'rb').read()
    except OSError:
        continue
    gen = pcapng(d) if d[:4] == b'\x0a\x0d\x0d\x0a' else classic(d)
    try:
        for i, pkt in zip(range(PER_FILE), gen):
            h = hashlib.sha1(pkt).hexdigest()
            if pkt and h not in seen:
                seen.add(h)
                open(os.path.join(out, 'pcap-' + h[:16]), 'wb').write(pkt)
    except struct.error:
        continue  # a deliberately broken file: keep what it gave
print(len(seen), 'seeds')
EOF
