#!/usr/bin/env python3
"""cmpflows: compare genpcap's ground truth with the flows a collector stored.

    TZ=UTC nfdump -R DIR -q -o csv > stored.csv        (or -r FILE; -o json also works)
    cmpflows.py TRUTH.csv stored.csv [--time-tolerance-ms N] [--no-vlan]
    cmpflows.py TRUTH.csv --pcap FILE.pcap
    cmpflows.py --self-test [TRUTH.csv [--pcap FILE.pcap]]

nfdump prints times in local time: run it with TZ=UTC. Its CSV (nfdump 1.7.1) has ts/te
to the second only, plus the duration td to the millisecond: first/last are then checked
as "same second" and the duration to the ms (single records). `-o json` carries ms times
and is checked to the ms. ICMP dp may be type<<8|code ("2048") or "type.code" ("8.0").

Records are matched on (src, dst, sport, dport, proto, tos, vlan), vlan left out with
--no-vlan; several records with one key are summed (a split flow; reported). Exit 0 only
if every truth flow is there with the same packets and bytes and first/last within the
tolerance (default 0 ms), and nothing else is; 1 if not; 2 on bad input.
TCP flag differences and splits are reported but do not fail the comparison.

--pcap rebuilds the flows from the capture itself (a reference reader in Python, for
classic pcap of Ethernet frames: 802.1Q, QinQ, IPv4 with fragments, IPv6), compares them
with the truth to the ms, TCP flags included, and checks what genpcap promises: timestamps
never go backwards, gaps < 10 s and spans < 50 s within a flow, TCP opens with SYN and ends
with FIN, frames >= 60 bytes, valid IPv4 and transport checksums. It tests the generator,
not a probe.
"""
import argparse
import calendar
import collections
import ipaddress
import json
import os
import struct
import sys
import tempfile
import time

# nfdump 1.7.1 `-o csv` columns; `-q` drops the header line, so this is the default.
NFDUMP_CSV_HEADER = ('ts,te,td,sa,da,sp,dp,pr,flg,fwd,stos,ipkt,ibyt,opkt,obyt,in,out,sas,'
                     'das,smk,dmk,dtos,dir,nh,nhb,svln,dvln,ismc,odmc,idmc,osmc,mpls1,mpls2,'
                     'mpls3,mpls4,mpls5,mpls6,mpls7,mpls8,mpls9,mpls10,cl,sl,al,ra,eng,exid,tr')

# Protocol names nfdump prints (its own table, not /etc/protocols).
PROTO_NAMES = {'ICMP': 1, 'IGMP': 2, 'GGP': 3, 'IPIP': 4, 'ST': 5, 'TCP': 6, 'EGP': 8,
               'IGP': 9, 'UDP': 17, 'DCCP': 33, 'IPV6': 41, 'RSVP': 46, 'GRE': 47,
               'ESP': 50, 'AH': 51, 'ICMP6': 58, 'EIGRP': 88, 'OSPF': 89, 'ETHIP': 97,
               'PIM': 103, 'VRRP': 112, 'L2TP': 115, 'SCTP': 132}
PROTO_LABEL = {v: k for k, v in PROTO_NAMES.items()}
TCP_FLAG_BITS = {'C': 0x80, 'E': 0x40, 'U': 0x20, 'A': 0x10, 'P': 0x08, 'R': 0x04,
                 'S': 0x02, 'F': 0x01}
ICMP_PROTOS = (1, 58)


class InputError(Exception):
    pass


class Flow:
    """Counters of one key; several stored records add up here."""
    __slots__ = ('packets', 'bytes', 'first', 'last', 'dur', 'records', 'flags')

    def __init__(self, packets, nbytes, first, last, dur, flags):
        self.packets, self.bytes = packets, nbytes
        self.first, self.last, self.dur = first, last, dur
        self.records, self.flags = 1, flags

    def add(self, o):
        self.packets += o.packets
        self.bytes += o.bytes
        self.first = min(self.first, o.first)
        self.last = max(self.last, o.last)
        self.dur = None  # a duration means nothing across split records
        self.records += 1
        self.flags |= o.flags


def norm_addr(s):
    a = ipaddress.ip_address(s.strip())
    if a.version == 6 and a.ipv4_mapped:
        a = a.ipv4_mapped
    return a


def parse_proto(s):
    s = str(s).strip()
    if s.isdigit():
        return int(s)
    p = PROTO_NAMES.get(s.upper())
    if p is None:
        raise InputError('unknown protocol name %r' % s)
    return p


def parse_port(s, proto):
    s = str(s).strip()
    if '.' in s and proto in ICMP_PROTOS:
        t, c = s.split('.', 1)
        return int(t) << 8 | int(c)
    return int(float(s)) if s else 0


def parse_flags(s):
    s = str(s).strip()
    if s.isdigit():
        return int(s)
    if s.startswith('0x'):
        return int(s, 16)
    return sum(TCP_FLAG_BITS.get(ch, 0) for ch in s if ch != '.')


def parse_time(s):
    """'YYYY-MM-DD hh:mm:ss[.mmm]' (or ISO 'T') in UTC -> (epoch ms, has_ms)."""
    s = s.strip().replace('T', ' ')
    date, _, clock = s.partition(' ')
    y, mo, d = (int(x) for x in date.split('-'))
    hms, _, frac = clock.partition('.')
    h, mi, sec = (int(x) for x in hms.split(':'))
    ms = int((frac + '000')[:3]) if frac else 0
    return calendar.timegm((y, mo, d, h, mi, sec, 0, 0, 0)) * 1000 + ms, bool(frac)


def make_key(src, dst, sport, dport, proto, tos, vlan, use_vlan):
    k = (norm_addr(src), norm_addr(dst), int(sport), int(dport), int(proto), int(tos))
    return k + (int(vlan),) if use_vlan else k


def load_truth(path, use_vlan):
    flows = {}
    with open(path) as f:
        header = f.readline().strip().split(',')
        want = ['ipver', 'src', 'dst', 'sport', 'dport', 'proto', 'tos', 'vlan', 'packets',
                'bytes', 'first_ms', 'last_ms', 'tcp_flags']
        if header != want:
            raise InputError('%s: not a genpcap truth file (header %r)' % (path, header))
        for n, line in enumerate(f, 2):
            v = line.strip().split(',')
            if len(v) != len(want):
                raise InputError('%s:%d: %d fields' % (path, n, len(v)))
            k = make_key(v[1], v[2], v[3], v[4], v[5], v[6], v[7], use_vlan)
            fl = Flow(int(v[8]), int(v[9]), int(v[10]), int(v[11]),
                      int(v[11]) - int(v[10]), int(v[12]))
            if k in flows:
                raise InputError('%s:%d: key used twice: %s' % (path, n, fmt_key(k)))
            flows[k] = fl
    return flows


def add_stored(flows, k, fl):
    if k in flows:
        flows[k].add(fl)
    else:
        flows[k] = fl


def load_nfdump_csv(path, use_vlan):
    """Returns ({key: Flow}, ms_precision)."""
    flows, cols, has_ms = {}, None, None
    with open(path) as f:
        for n, line in enumerate(f, 1):
            line = line.rstrip('\r\n')
            if not line.strip():
                continue
            if line.startswith('ts,'):
                cols = {c: i for i, c in enumerate(line.split(','))}
                continue
            if line.strip() == 'Summary':
                break  # totals follow; -q leaves them out
            if cols is None:
                cols = {c: i for i, c in enumerate(NFDUMP_CSV_HEADER.split(','))}
            v = line.split(',')
            try:
                proto = parse_proto(v[cols['pr']])
                first, ms1 = parse_time(v[cols['ts']])
                last, ms2 = parse_time(v[cols['te']])
                vlan = int(v[cols['svln']]) if use_vlan and 'svln' in cols else 0
                k = make_key(v[cols['sa']], v[cols['da']], v[cols['sp']],
                             parse_port(v[cols['dp']], proto), proto, v[cols['stos']], vlan,
                             use_vlan)
                dur = round(float(v[cols['td']]) * 1000) if 'td' in cols else None
                fl = Flow(int(v[cols['ipkt']]), int(v[cols['ibyt']]), first, last, dur,
                          parse_flags(v[cols['flg']]) if 'flg' in cols else 0)
            except (ValueError, IndexError, KeyError, InputError) as e:
                raise InputError('%s:%d: cannot read record (%s): %.100s' % (path, n, e, line))
            has_ms = (ms1 or ms2) if has_ms is None else (has_ms or ms1 or ms2)
            add_stored(flows, k, fl)
    return flows, bool(has_ms)


def load_nfdump_json(path, use_vlan):
    text = open(path).read().strip()
    if not text.startswith('['):
        text = '[' + text.rstrip(',') + ']'  # -q leaves the brackets out
    try:
        recs = json.loads(text)
    except ValueError as e:
        raise InputError('%s: bad JSON: %s' % (path, e))
    flows = {}
    for r in recs:
        if r.get('type', 'FLOW') != 'FLOW':
            continue
        try:
            proto = int(r['proto'])
            if proto in ICMP_PROTOS and 'icmp_type' in r:
                sport, dport = 0, int(r['icmp_type']) << 8 | int(r.get('icmp_code', 0))
            else:
                sport, dport = int(r.get('src_port', 0)), int(r.get('dst_port', 0))
            src = r.get('src4_addr') or r.get('src6_addr')
            dst = r.get('dst4_addr') or r.get('dst6_addr')
            k = make_key(src, dst, sport, dport, proto, r.get('src_tos', 0),
                         r.get('src_vlan', 0), use_vlan)
            first, _ = parse_time(r['first'])
            last, _ = parse_time(r['last'])
            fl = Flow(int(r['in_packets']), int(r['in_bytes']), first, last, last - first,
                      parse_flags(r.get('tcp_flags', '0')))
        except (ValueError, KeyError, TypeError, InputError) as e:
            raise InputError('%s: cannot read record (%s): %.200s' % (path, e, r))
        add_stored(flows, k, fl)
    return flows, True


def load_stored(path, use_vlan):
    with open(path) as f:
        head = f.read(64).lstrip()
    if head.startswith('[') or head.startswith('{'):
        return load_nfdump_json(path, use_vlan)
    return load_nfdump_csv(path, use_vlan)


def fmt_key(k):
    s = '%s -> %s sport %d dport %d proto %s tos %d' % (
        k[0], k[1], k[2], k[3], PROTO_LABEL.get(k[4], k[4]), k[5])
    if k[4] in ICMP_PROTOS:
        s = '%s -> %s icmp %d.%d proto %s tos %d' % (
            k[0], k[1], k[3] >> 8, k[3] & 255, PROTO_LABEL.get(k[4], k[4]), k[5])
    return s + (' vlan %d' % k[6] if len(k) > 6 else '')


def fmt_flow(f):
    return 'packets=%d bytes=%d first=%d last=%d%s' % (
        f.packets, f.bytes, f.first, f.last, ' records=%d' % f.records if f.records > 1 else '')


def time_diff(t, s, tol, has_ms):
    """Which of first/last differ beyond tol ms (second precision: same second)."""
    out = []
    for name, a, b in (('first', t.first, s.first), ('last', t.last, s.last)):
        if has_ms:
            bad = abs(a - b) > tol
        else:
            bad = not (b - tol <= a <= b + 999 + tol)
        if bad:
            out.append(name)
    if not has_ms and not out and s.dur is not None and abs((t.last - t.first) - s.dur) > 2 * tol:
        out.append('duration')
    return out


def compare(truth, stored, tol, has_ms, out=None, examples=10):
    """Prints the report (to out, default stdout); returns True if the stored flows match
    the truth."""
    p = lambda *a: print(*a, file=out or sys.stdout)
    missing = [k for k in truth if k not in stored]
    extra = [k for k in stored if k not in truth]
    differ, why = [], collections.Counter()
    offsets = collections.Counter()
    flag_diff = split = 0
    for k, t in truth.items():
        s = stored.get(k)
        if s is None:
            continue
        bad = []
        if t.packets != s.packets:
            bad.append('packets')
        if t.bytes != s.bytes:
            bad.append('bytes')
        tbad = time_diff(t, s, tol, has_ms)
        if tbad:
            offsets[s.first - t.first] += 1
        bad += tbad
        if s.records > 1:
            split += 1
        if k[4] == 6 and (t.flags & 0x3f) != (s.flags & 0x3f):
            flag_diff += 1
        if bad:
            differ.append((k, bad))
            why.update(bad)
    tp = sum(f.packets for f in truth.values())
    tb = sum(f.bytes for f in truth.values())
    sp = sum(f.packets for f in stored.values())
    sb = sum(f.bytes for f in stored.values())
    nrec = sum(f.records for f in stored.values())
    p('truth:   flows=%d packets=%d bytes=%d' % (len(truth), tp, tb))
    p('stored:  flows=%d (records=%d) packets=%d bytes=%d' % (len(stored), nrec, sp, sb))
    p('times compared %s, tolerance %d ms' % (
        'to the ms' if has_ms else 'to the second, durations to the ms', tol))
    p('matched flows: %d' % (len(truth) - len(missing) - len(differ)))
    p('missing flows: %d' % len(missing))
    p('extra flows:   %d' % len(extra))
    p('differing:     %d (%s)' % (len(differ), ', '.join(
        '%s %d' % (w, why[w]) for w in ('packets', 'bytes', 'first', 'last', 'duration')
        if why[w]) or 'none'))
    p('split flows:   %d (several records summed; not an error by itself)' % split)
    p('tcp flags differ: %d (reported only)' % flag_diff)
    for k, bad in differ[:examples]:
        p('  differs (%s): %s\n    truth  %s\n    stored %s' % (
            ','.join(bad), fmt_key(k), fmt_flow(truth[k]), fmt_flow(stored[k])))
    for k in missing[:examples]:
        p('  missing: %s  %s' % (fmt_key(k), fmt_flow(truth[k])))
    for k in extra[:examples]:
        p('  extra:   %s  %s' % (fmt_key(k), fmt_flow(stored[k])))
    if offsets:
        # Local time instead of UTC shows as most times off by whole quarter hours.
        offs = sorted(offsets.elements())
        med = offs[len(offs) // 2]
        q = round(med / 900000) * 900000
        if q and abs(med - q) <= 60000 and len(offs) * 2 > len(truth):
            p('hint: times are off by about %+g h: was nfdump run with TZ=UTC?' % (q / 3600000))
    ok = not missing and not extra and not differ
    p('RESULT: %s' % ('PASS' if ok else 'FAIL'))
    return ok


# ---- self-test: the truth against CSV/JSON made from it, with and without edits ----

def fmt_time(ms, with_ms):
    s = time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime(ms // 1000))
    return s + ('.%03d' % (ms % 1000) if with_ms else '')


def write_nfdump_csv(path, rows, header=True, summary=True, ms=False, icmp_dot=False):
    """rows: dicts with the truth's fields. Mimics nfdump 1.7.1 -o csv."""
    cols = NFDUMP_CSV_HEADER.split(',')
    with open(path, 'w') as f:
        if header:
            f.write(NFDUMP_CSV_HEADER + '\n')
        for r in rows:
            v = dict.fromkeys(cols, '0')
            proto = int(r['proto'])
            v.update(ts=fmt_time(int(r['first_ms']), ms), te=fmt_time(int(r['last_ms']), ms),
                     td='%.3f' % ((int(r['last_ms']) - int(r['first_ms'])) / 1000),
                     sa=r['src'], da=r['dst'], sp=r['sport'], dp=r['dport'],
                     pr=PROTO_LABEL.get(proto, str(proto)), flg='........', stos=r['tos'],
                     ipkt=r['packets'], ibyt=r['bytes'], svln=r['vlan'],
                     nh='0.0.0.0', nhb='0.0.0.0', cl='    0.000', ra='127.0.0.1')
            if proto in ICMP_PROTOS and icmp_dot:
                v['dp'] = '%d.%d' % (int(r['dport']) >> 8, int(r['dport']) & 255)
            if proto == 6:
                v['flg'] = ''.join(c if int(r['tcp_flags']) & b else '.'
                                   for c, b in TCP_FLAG_BITS.items())
            f.write(','.join(str(v[c]) for c in cols) + '\n')
        if summary:
            f.write('Summary\nflows,bytes,packets,avg_bps,avg_pps,avg_bpp\n1,2,3,4,5,6\n')


def write_nfdump_json(path, rows, quiet=False):
    recs = []
    for r in rows:
        proto = int(r['proto'])
        v6 = ':' in r['src']
        j = {'type': 'FLOW', 'first': fmt_time(int(r['first_ms']), True).replace(' ', 'T'),
             'last': fmt_time(int(r['last_ms']), True).replace(' ', 'T'),
             'in_packets': int(r['packets']), 'in_bytes': int(r['bytes']), 'proto': proto,
             'src_tos': int(r['tos']),
             ('src6_addr' if v6 else 'src4_addr'): r['src'],
             ('dst6_addr' if v6 else 'dst4_addr'): r['dst']}
        if proto in ICMP_PROTOS:
            j['icmp_type'], j['icmp_code'] = int(r['dport']) >> 8, int(r['dport']) & 255
        else:
            j['src_port'], j['dst_port'] = int(r['sport']), int(r['dport'])
        if int(r['vlan']):
            j['src_vlan'] = int(r['vlan'])
        recs.append(j)
    text = ',\n'.join(json.dumps(j, indent=1) for j in recs)
    with open(path, 'w') as f:
        f.write(text + '\n' if quiet else '[\n' + text + ']\n')


def sample_truth():
    """A small truth covering the protocols and quirks, for --self-test without a file."""
    h = 'ipver,src,dst,sport,dport,proto,tos,vlan,packets,bytes,first_ms,last_ms,tcp_flags'
    rows = [
        '4,10.0.0.1,192.0.2.1,40000,443,6,0,0,12,9000,1767225600001,1767225612345,27',
        '4,192.0.2.1,10.0.0.1,443,40000,6,0,0,10,400,1767225600100,1767225612300,19',
        '6,2001:db8::1,2001:db8:f00d::2,0,32768,58,184,20,3,312,1767225600999,1767225601000,0',
        '4,10.0.0.2,198.51.100.7,0,2048,1,16,0,2,168,1767225601500,1767225602500,0',
        '4,203.0.113.9,10.0.0.2,0,771,1,0,300,1,56,1767225603000,1767225603000,0',
        '4,10.0.0.3,198.51.100.8,51000,2049,17,0,0,7,9520,1767225604000,1767225609999,0',
        '6,2001:db8::3,2001:db8:f00d::4,0,0,50,0,4000,4,800,1767225605000,1767225630000,0',
    ]
    return h + '\n' + '\n'.join(rows) + '\n'


def self_test(truth_path, pcap_path=None):
    tmp = tempfile.mkdtemp(prefix='cmpflows-')
    if not truth_path:
        truth_path = os.path.join(tmp, 'truth.csv')
        with open(truth_path, 'w') as f:
            f.write(sample_truth())
    with open(truth_path) as f:
        lines = f.read().splitlines()
    names = lines[0].split(',')
    rows = [dict(zip(names, l.split(','))) for l in lines[1:]]
    if len(rows) < 3:
        raise InputError('self-test needs a truth with at least 3 flows')
    # Edit targets: a multi-packet TCP flow if there is one, a tagged flow if any.
    multi = next((i for i, r in enumerate(rows) if int(r['packets']) > 1), 0)
    tagged = next((i for i, r in enumerate(rows) if int(r['vlan'])), None)
    icmp = next((i for i, r in enumerate(rows) if int(r['proto']) in ICMP_PROTOS), None)

    def edited(i, **chg):
        out = [dict(r) for r in rows]
        for k, fn in chg.items():
            out[i][k] = str(fn(int(out[i][k])))
        return out

    def split(i, lose=0):
        # Two records: the first packet, then the rest (less `lose` packets).
        out = [dict(r) for r in rows]
        r = out[i]
        a, b = dict(r), dict(r)
        a['packets'], b['packets'] = '1', str(int(r['packets']) - 1 - lose)
        a['bytes'], b['bytes'] = '40', str(int(r['bytes']) - 40)
        a['last_ms'] = a['first_ms']
        out[i:i + 1] = [a, b]
        return out

    extra = dict(rows[0], sport='1', dport='2')
    cases = [  # name, rows, writer, args, expected pass
        ('unedited csv', rows, 'csv', {}, True),
        ('unedited csv -q (no header, no summary)', rows, 'csv-q', {}, True),
        ('unedited csv, ICMP dp as type.code', rows, 'csv-dot', {}, True),
        ('unedited csv with ms times', rows, 'csv-ms', {}, True),
        ('unedited json', rows, 'json', {}, True),
        ('unedited json -q', rows, 'json-q', {}, True),
        ('one flow +1 packet', edited(multi, packets=lambda v: v + 1), 'csv', {}, False),
        ('one flow -1 byte', edited(multi, bytes=lambda v: v - 1), 'csv', {}, False),
        ('one flow missing', rows[:multi] + rows[multi + 1:], 'csv', {}, False),
        ('one extra flow', rows + [extra], 'csv', {}, False),
        ('first 1 s late', edited(multi, first_ms=lambda v: v + 1000), 'csv', {}, False),
        ('last 1 ms late (csv: duration)', edited(multi, last_ms=lambda v: v + 1), 'csv', {},
         False),
        ('last 1 ms late (json)', edited(multi, last_ms=lambda v: v + 1), 'json', {}, False),
        ('last 1 ms late, tolerance 1 ms', edited(multi, last_ms=lambda v: v + 1), 'json',
         {'tol': 1}, True),
        ('first 2 ms early, tolerance 1 ms', edited(multi, first_ms=lambda v: v - 2), 'json',
         {'tol': 1}, False),
        ('tos changed', edited(multi, tos=lambda v: v ^ 0x10), 'csv', {}, False),
        ('flow split in two records', split(multi), 'csv-ms', {}, True),
        ('split flow, a packet lost', split(multi, lose=1), 'csv-ms', {}, False),
        ('times 1 h off (no TZ=UTC)', [dict(r, first_ms=str(int(r['first_ms']) + 3600000),
                                            last_ms=str(int(r['last_ms']) + 3600000))
                                       for r in rows], 'csv', {}, False),
    ]
    if tagged is not None:
        cases += [
            ('vlan changed', edited(tagged, vlan=lambda v: v + 1), 'csv', {}, False),
            ('vlan changed, --no-vlan', edited(tagged, vlan=lambda v: v + 1), 'csv',
             {'use_vlan': False}, True),
            ('vlan lost (json)', edited(tagged, vlan=lambda v: 0), 'json', {}, False),
        ]
    if icmp is not None:
        cases.append(('icmp code changed', edited(icmp, dport=lambda v: v ^ 1), 'csv-dot', {},
                      False))
    failures = 0
    for name, rs, kind, args, want in cases:
        path = os.path.join(tmp, 'stored')
        if kind.startswith('json'):
            write_nfdump_json(path, rs, quiet=kind == 'json-q')
        else:
            write_nfdump_csv(path, rs, header=kind != 'csv-q', summary=kind != 'csv-q',
                             ms=kind == 'csv-ms', icmp_dot=kind == 'csv-dot')
        use_vlan = args.get('use_vlan', True)
        truth = load_truth(truth_path, use_vlan)
        stored, has_ms = load_stored(path, use_vlan)
        with open(os.devnull, 'w') as null:
            got = compare(truth, stored, args.get('tol', 0), has_ms, out=null)
        ok = got == want
        failures += not ok
        print('%s  %-45s expected %s, got %s' % ('ok  ' if ok else 'FAIL', name,
                                                  'pass' if want else 'fail',
                                                  'pass' if got else 'fail'))
    ncases = len(cases)
    if pcap_path:
        ncases, failures = self_test_pcap(truth_path, pcap_path, tmp, ncases, failures)
    for f in os.listdir(tmp):
        os.unlink(os.path.join(tmp, f))
    os.rmdir(tmp)
    print('%d passed, %d failed' % (ncases - failures, failures))
    return failures == 0


def self_test_pcap(truth_path, pcap_path, tmp, ncases, failures):
    """The --pcap reader against edited copies of a genpcap capture."""
    data = bytearray(open(pcap_path, 'rb').read())
    recs, off = [], 24
    while off < len(data):
        caplen = struct.unpack('<I', data[off + 8:off + 12])[0]
        recs.append((off, 16 + caplen))
        off += 16 + caplen
    if len(recs) < 3:
        raise InputError('self-test needs a capture of at least 3 packets')
    mid = len(recs) // 2

    def drop(d):
        o, n = recs[mid]
        return d[:o] + d[o + n:]

    def backwards(d):
        o = recs[mid][0]
        d[o:o + 8] = d[recs[mid - 1][0]:recs[mid - 1][0] + 8]   # same time as the previous
        sec, usec = struct.unpack('<II', d[o:o + 8])
        d[o:o + 8] = struct.pack('<II', sec - 1, usec)              # then one second earlier
        return d

    def flip_ttl(d):
        o = recs[mid][0] + 16
        et, p = struct.unpack('!H', d[o + 12:o + 14])[0], o + 14
        while et in (0x88a8, 0x8100):
            et, p = struct.unpack('!H', d[p + 2:p + 4])[0], p + 4
        d[p + (8 if et == 0x0800 else 7)] ^= 1   # TTL / hop limit: only the IPv4 sum sees it
        return d, et == 0x0800

    flipped, is4 = flip_ttl(bytearray(data))
    cases = [('pcap unedited', data, True), ('pcap one packet dropped', drop(data), False),
             ('pcap timestamp goes backwards', backwards(bytearray(data)), False)]
    if is4:
        cases.append(('pcap IPv4 header corrupted', flipped, False))
    path = os.path.join(tmp, 'edited.pcap')
    for name, d, want in cases:
        with open(path, 'wb') as f:
            f.write(d)
        with open(os.devnull, 'w') as null:
            old, sys.stdout = sys.stdout, null
            try:
                got = check_pcap(truth_path, path, True)
            finally:
                sys.stdout = old
        ok = got == want
        failures += not ok
        ncases += 1
        print('%s  %-45s expected %s, got %s' % ('ok  ' if ok else 'FAIL', name,
                                                  'pass' if want else 'fail',
                                                  'pass' if got else 'fail'))
    return ncases, failures


# ---- --pcap: a reference reader that rebuilds flows from genpcap's output ----

def csum_ok(b):
    if len(b) % 2:
        b += b'\0'
    s = sum(struct.unpack('!%dH' % (len(b) // 2), b))
    while s >> 16:
        s = (s & 0xffff) + (s >> 16)
    return s == 0xffff


def load_pcap(path, use_vlan):
    """Returns ({key: Flow}, [problems]) for a little-endian microsecond pcap."""
    data = open(path, 'rb').read()
    if len(data) < 24 or data[:4] != b'\xd4\xc3\xb2\xa1':
        raise InputError('%s: not a little-endian microsecond pcap' % path)
    snaplen, link = struct.unpack('<II', data[16:24])
    if link != 1:
        raise InputError('%s: link type %d, not Ethernet' % (path, link))
    flows, frags, why = {}, {}, collections.Counter()
    span = {}  # key -> [first, last] in microseconds
    off, prev, n = 24, -1, 0
    while off < len(data):
        if off + 16 > len(data):
            raise InputError('%s: truncated record header' % path)
        sec, usec, caplen, olen = struct.unpack('<IIII', data[off:off + 16])
        fr = data[off + 16:off + 16 + caplen]
        off += 16 + caplen
        n += 1
        if len(fr) != caplen or caplen != min(olen, snaplen):
            raise InputError('%s: record %d: bad lengths' % (path, n))
        us = sec * 1000000 + usec
        if us < prev:
            why['timestamp goes backwards'] += 1
        prev = us
        if olen < 60:
            why['frame shorter than 60 bytes'] += 1
        et, p, vlan = struct.unpack('!H', fr[12:14])[0], 14, 0
        while et in (0x88a8, 0x8100):
            if not vlan:
                vlan = struct.unpack('!H', fr[p:p + 2])[0] & 0xfff  # the outer tag
            et = struct.unpack('!H', fr[p + 2:p + 4])[0]
            p += 4
        mf = fo = 0
        if et == 0x0800:
            ihl, tos = (fr[p] & 15) * 4, fr[p + 1]
            iplen, ipid, ff = struct.unpack('!HHH', fr[p + 2:p + 8])
            proto, src, dst = fr[p + 9], fr[p + 12:p + 16], fr[p + 16:p + 20]
            if not csum_ok(fr[p:p + ihl]):
                why['bad IPv4 header checksum'] += 1
            fo, mf = (ff & 0x1fff) * 8, ff & 0x2000
            l4, pseudo = p + ihl, src + dst + struct.pack('!xB', proto)
        elif et == 0x86dd:
            tos = (fr[p] & 15) << 4 | fr[p + 1] >> 4
            iplen = struct.unpack('!H', fr[p + 4:p + 6])[0] + 40
            proto, src, dst, ihl = fr[p + 6], fr[p + 8:p + 24], fr[p + 24:p + 40], 40
            l4, pseudo = p + 40, src + dst + struct.pack('!xxxB', proto)
        else:
            why['not IP'] += 1
            continue
        if p + iplen > olen:
            why['IP length beyond the frame'] += 1
        src, dst = ipaddress.ip_address(src), ipaddress.ip_address(dst)
        sport = dport = flags = 0
        if fo:
            key = frags.get((src, dst, proto, ipid))
            if key is None:
                why['fragment without its first fragment'] += 1
                continue
            if not mf:
                del frags[(src, dst, proto, ipid)]
        else:
            if proto in (6, 17):
                sport, dport = struct.unpack('!HH', fr[l4:l4 + 4])
                if proto == 6:
                    flags = fr[l4 + 13]
            elif proto in ICMP_PROTOS:
                dport = fr[l4] << 8 | fr[l4 + 1]
            key = (src, dst, sport, dport, proto, tos) + ((vlan,) if use_vlan else ())
            if mf:
                frags[(src, dst, proto, ipid)] = key
            elif caplen == olen and proto in (1, 6, 17, 58):
                seg = fr[l4:p + iplen]
                ph = b'' if proto == 1 else pseudo + struct.pack('!H', len(seg))
                if et == 0x86dd and proto != 1:
                    ph = pseudo[:32] + struct.pack('!I', len(seg)) + pseudo[32:]
                if not csum_ok(ph + seg):
                    why['bad transport checksum'] += 1
        ms = us // 1000
        f = flows.get(key)
        if f is None:
            f = flows[key] = Flow(0, 0, ms, ms, 0, 0)
            span[key] = [us, us]
            if proto == 6 and not flags & 0x02:
                why['TCP flow does not open with SYN'] += 1
        else:
            if us - span[key][1] >= 10000000:
                why['gap of 10 s or more within a flow'] += 1
            if proto == 6 and f.flags & 0x01:
                why['TCP packet after FIN'] += 1
        f.packets += 1
        f.bytes += iplen
        f.last, span[key][1] = ms, us
        f.flags |= flags
    for k, f in flows.items():
        if span[k][1] - span[k][0] >= 50000000:
            why['flow lasting 50 s or more'] += 1
        if k[4] == 6 and not f.flags & 0x01:
            why['TCP flow without FIN'] += 1
        f.dur = f.last - f.first
    if frags:
        why['datagram missing its last fragment'] += len(frags)
    return flows, ['%s: %d' % (w, c) for w, c in why.items()]


def check_pcap(truth_path, pcap_path, use_vlan):
    truth = load_truth(truth_path, use_vlan)
    flows, problems = load_pcap(pcap_path, use_vlan)
    ok = compare(truth, flows, 0, True)
    flag_diff = sum(1 for k, t in truth.items() if k in flows and t.flags != flows[k].flags)
    for pr in problems:
        print('problem: %s' % pr)
    if flag_diff:
        print('problem: tcp flags differ from the truth: %d' % flag_diff)
    ok = ok and not problems and not flag_diff
    print('PCAP CHECK: %s' % ('PASS' if ok else 'FAIL'))
    return ok


def main(argv):
    ap = argparse.ArgumentParser(
        description='Compare genpcap truth with nfdump output (run nfdump with TZ=UTC).')
    ap.add_argument('truth', nargs='?', help='TRUTH.csv written by genpcap -t')
    ap.add_argument('stored', nargs='?', help='TZ=UTC nfdump -R DIR [-q] -o csv (or json)')
    ap.add_argument('--time-tolerance-ms', type=int, default=0, metavar='N')
    ap.add_argument('--no-vlan', action='store_true', help='leave VLAN out of the key')
    ap.add_argument('--pcap', metavar='FILE', help='rebuild flows from this genpcap capture '
                    'instead of reading nfdump output, and check its rules')
    ap.add_argument('--self-test', action='store_true',
                    help='check this script against edited copies of TRUTH (or a sample)')
    a = ap.parse_args(argv)
    try:
        if a.self_test:
            if a.pcap and not a.truth:
                raise InputError('--self-test --pcap needs the TRUTH.csv of that capture')
            return 0 if self_test(a.truth, a.pcap) else 1
        if a.pcap and a.truth and not a.stored:
            return 0 if check_pcap(a.truth, a.pcap, not a.no_vlan) else 1
        if not a.truth or not a.stored or a.pcap:
            ap.print_usage(sys.stderr)
            return 2
        truth = load_truth(a.truth, not a.no_vlan)
        stored, has_ms = load_stored(a.stored, not a.no_vlan)
        return 0 if compare(truth, stored, a.time_tolerance_ms, has_ms) else 1
    except (InputError, OSError, UnicodeDecodeError) as e:
        print('cmpflows: %s' % e, file=sys.stderr)
        return 2


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
