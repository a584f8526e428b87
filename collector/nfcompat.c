/* nfcompat.c: see nfcompat.h. Widths, headers and quirks are nfdump 1.7.1's as it
 * prints them on this machine (checked by tests/integ/nfdump_compat.sh). */
#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "addr.h"
#include "bytes.h"
#include "nfcompat.h"

#define NUM_PROTOS 138
#define MAX_TOKENS 128

/* nfdump's protocol names; entry 0 is a masked (aggregated away) protocol. */
static const char *const proto_names[NUM_PROTOS] = {
	"0", "ICMP", "IGMP", "GGP", "IPIP", "ST", "TCP", "CBT", "EGP", "IGP",
	"BBN", "NVPII", "PUP", "ARGUS", "ENCOM", "XNET", "CHAOS", "UDP", "MUX", "DCN",
	"HMP", "PRM", "XNS", "Trnk1", "Trnk2", "Leaf1", "Leaf2", "RDP", "IRTP", "ISO-4",
	"NETBK", "MFESP", "MEINP", "DCCP", "3PC", "IDPR", "XTP", "DDP", "IDPR", "TP++",
	"IL", "IPv6", "SDRP", "Rte6", "Frag6", "IDRP", "RSVP", "GRE", "MHRP", "BNA",
	"ESP", "AH", "INLSP", "SWIPE", "NARP", "MOBIL", "TLSP", "SKIP", "ICMP6", "NOHE6",
	"OPTS6", "HOST", "CFTP", "NET", "SATNT", "KLAN", "RVD", "IPPC", "FS", "SATM",
	"VISA", "IPCV", "CPNX", "CPHB", "WSN", "PVP", "BSATM", "SUNND", "WBMON", "WBEXP",
	"ISOIP", "VMTP", "SVMTP", "VINES", "TTP", "NSIGP", "DGP", "TCF", "EIGRP", "OSPF",
	"S-RPC", "LARP", "MTP", "AX.25", "IPIP", "MICP", "SCCSP", "ETHIP", "ENCAP", "99",
	"GMTP", "IFMP", "PNNI", "PIM", "ARIS", "SCPS", "QNX", "A/N", "IPcmp", "SNP",
	"CpqPP", "IPXIP", "VRRP", "PGM", "0hop", "L2TP", "DDX", "IATP", "STP", "SRP",
	"UTI", "SMP", "SM", "PTP", "ISIS4", "FIRE", "CRTP", "CRUDP", "128", "IPLT",
	"SPS", "PIPE", "SCTP", "FC", "134", "MHEAD", "UDP-L", "MPLS",
};

char *nfc_number(uint64_t n, int plain, char *buf)
{
	double f = (double)n;
	if (plain || f < 1e6)
		snprintf(buf, NFC_NUM_LEN, "%llu", (unsigned long long)n);
	else if (f >= 1e12)
		snprintf(buf, NFC_NUM_LEN, "%.1f T", f / 1e12);
	else if (f >= 1e9)
		snprintf(buf, NFC_NUM_LEN, "%.1f G", f / 1e9);
	else
		snprintf(buf, NFC_NUM_LEN, "%.1f M", f / 1e6);
	return buf;
}

const char *nfc_proto(uint8_t proto, int plain, char *buf)
{
	if (plain || proto >= NUM_PROTOS) {
		snprintf(buf, 8, "%-5u", proto);
		return buf;
	}
	return proto_names[proto];
}

static int zero16(const uint8_t a[16])
{
	for (int i = 0; i < 16; i++)
		if (a[i])
			return 0;
	return 1;
}

int nfc_is6(const struct flow_rec *r)
{
	if (r->ipver == 6)
		return 1;
	if (r->ipver == 4)
		return 0;
	return (!zero16(r->src) && !flowrec_is4(r->src)) ||
	       (!zero16(r->dst) && !flowrec_is4(r->dst));
}

char *nfc_addr(const uint8_t a[16], int is6, int condense, char *buf)
{
	if (is6) {
		inet_ntop(AF_INET6, a, buf, 46);
		size_t len = strlen(buf);
		if (condense && len > 16) {
			/* nfdump's CondenseV6: 7 characters, "..", the last 7 */
			memmove(buf + 9, buf + len - 7, 8);
			buf[7] = '.';
			buf[8] = '.';
		}
	} else {
		inet_ntop(AF_INET, a + 12, buf, 46);
	}
	return buf;
}

/* "YYYY-MM-DD hh:mm:ss" in local time. */
static void fmt_time(uint64_t ms, char *buf, size_t len)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;
	if (!localtime_r(&t, &tm) || !strftime(buf, len, "%Y-%m-%d %H:%M:%S", &tm))
		snprintf(buf, len, "?");
}

/* ---- fmt: ---- */

enum tok {
	T_LIT, T_TS, T_TE, T_TD, T_PR, T_SA, T_DA, T_SAP, T_DAP, T_SP, T_DP, T_PKT, T_IPKT,
	T_BYT, T_IBYT, T_FL, T_BPS, T_PPS, T_BPP, T_FLG, T_TOS, T_IN, T_OUT,
	T_SAS, T_DAS, T_SVLN, T_RA, T_SN, T_DN, T_NH, T_SMK, T_DMK,
};

static const struct tokdef {
	const char *name;
	uint8_t id;
	const char *header;
} tokdefs[] = {
	/* longest first where one name is a prefix of another */
	{ "%ts", T_TS, "Date first seen        " },
	{ "%te", T_TE, "Date last seen         " },
	{ "%td", T_TD, "    Duration    " },
	{ "%pr", T_PR, "Proto" },
	{ "%sap", T_SAP, "     Src IP Addr:Port " },
	{ "%dap", T_DAP, "     Dst IP Addr:Port " },
	{ "%sa", T_SA, "     Src IP Addr" },
	{ "%da", T_DA, "     Dst IP Addr" },
	{ "%sp", T_SP, "Src Pt" },
	{ "%dp", T_DP, "Dst Pt" },
	{ "%pkt", T_PKT, " Packets" },
	{ "%ipkt", T_IPKT, "  In Pkt" },
	{ "%byt", T_BYT, "   Bytes" },
	{ "%ibyt", T_IBYT, " In Byte" },
	{ "%flg", T_FLG, "   Flags" },
	{ "%fl", T_FL, "Flows" },
	{ "%bps", T_BPS, "     bps" },
	{ "%pps", T_PPS, "     pps" },
	{ "%bpp", T_BPP, "   Bpp" },
	{ "%tos", T_TOS, "Tos" },
	{ "%in", T_IN, " Input" },
	{ "%out", T_OUT, "Output" },
	{ "%sas", T_SAS, "Src AS" },
	{ "%das", T_DAS, "Dst AS" },
	{ "%svln", T_SVLN, "SVlan" },
	{ "%ra", T_RA, "       Router IP" },
	{ "%sn", T_SN, "        Src Network" },
	{ "%dn", T_DN, "        Dst Network" },
	{ "%nh", T_NH, "     Next-hop IP" },
	{ "%smk", T_SMK, "SMask" },
	{ "%dmk", T_DMK, "DMask" },
};

struct nfc_tok {
	uint8_t id;
	char *lit;              /* T_LIT: the text (owned) */
};

struct nfc_fmt {
	int plain;
	unsigned n;
	struct nfc_tok t[MAX_TOKENS];
	char *header;
};

void nfc_fmt_free(struct nfc_fmt *f)
{
	if (!f)
		return;
	for (unsigned i = 0; i < f->n; i++)
		free(f->t[i].lit);
	free(f->header);
	free(f);
}

/* Length of the token name at s: '%' then letters and digits (nfdump: a token ends at
 * the first character that is not alphanumeric). */
static size_t tok_len(const char *s)
{
	size_t n = 1;
	while ((s[n] >= 'a' && s[n] <= 'z') || (s[n] >= 'A' && s[n] <= 'Z') ||
	       (s[n] >= '0' && s[n] <= '9'))
		n++;
	return n;
}

struct nfc_fmt *nfc_fmt_new(const char *fmt, int plain, char *err, size_t errlen)
{
	struct nfc_fmt *f = calloc(1, sizeof(*f));
	size_t hcap = strlen(fmt) * 32 + 1;
	if (!f || !(f->header = calloc(1, hcap)))
		goto nomem;
	f->plain = plain;
	size_t hl = 0;
	const char *p = fmt;
	while (*p) {
		if (f->n == MAX_TOKENS) {
			snprintf(err, errlen, "output format: more than %d elements", MAX_TOKENS);
			goto fail;
		}
		struct nfc_tok *t = &f->t[f->n];
		if (*p == '%') {
			size_t len = tok_len(p);
			const struct tokdef *d = NULL;
			for (size_t i = 0; i < sizeof(tokdefs) / sizeof(tokdefs[0]); i++)
				if (strlen(tokdefs[i].name) == len && !strncmp(tokdefs[i].name, p, len))
					d = &tokdefs[i];
			if (!d) {
				snprintf(err, errlen, "Output format parse error at: %s", p);
				goto fail;
			}
			t->id = d->id;
			hl += (size_t)snprintf(f->header + hl, hcap - hl, "%s", d->header);
			p += len;
		} else {
			/* literal text up to the next '%'; blanks of its length in the header */
			size_t len = strcspn(p, "%");
			if (!(t->lit = strndup(p, len)))
				goto nomem;
			t->id = T_LIT;
			memset(f->header + hl, ' ', len);
			hl += len;
			p += len;
		}
		f->n++;
	}
	return f;
nomem:
	snprintf(err, errlen, "out of memory");
fail:
	nfc_fmt_free(f);
	return NULL;
}

int nfc_aggr_fmt(const struct query_key *k, unsigned n, char *buf, size_t len)
{
	static const char *const el[QF__COUNT] = {
		[QF_SRCIP] = "%sa", [QF_DSTIP] = "%da", [QF_SRCPORT] = "%sp",
		[QF_DSTPORT] = "%dp", [QF_PROTO] = "%pr", [QF_TOS] = "%tos", [QF_INIF] = "%in",
		[QF_OUTIF] = "%out", [QF_SRCAS] = "%sas", [QF_DSTAS] = "%das",
		[QF_VLAN] = "%svln", [QF_EXPORTER] = "%ra",
	};
	size_t l = (size_t)snprintf(buf, len, "%%ts %%td ");
	for (unsigned i = 0; i < n && l < len; i++) {
		const char *e = el[k[i].field];
		/* srcnet: the flow's own mask shown (%sn); srcip4/24 and the like: the
		 * masked address (%sa) */
		if (k[i].field == QF_SRCNET || k[i].field == QF_DSTNET)
			e = k[i].mask4 != QUERY_MASK_FLOW ? (k[i].field == QF_SRCNET ? "%sa" : "%da") :
			    k[i].field == QF_SRCNET ? "%sn" : "%dn";
		if (!e)
			return -1;
		l += (size_t)snprintf(buf + l, len - l, " %s", e);
	}
	if (l < len)
		l += (size_t)snprintf(buf + l, len - l, "  %%pkt %%byt %%bps %%bpp %%fl");
	return l < len ? 0 : -1;
}

int nfc_fmt_header(const struct nfc_fmt *f, FILE *out)
{
	return fprintf(out, "%s\n", f->header) < 0 ? -EIO : 0;
}

/* nfdump's DurationString (a float for the seconds, as it does). */
char *nfc_duration(double d, int plain, char *buf)
{
	const size_t len = 32;
	if (plain) {
		snprintf(buf, len, "%16.3f", d);
		return buf;
	}
	if (d == 0.0) {
		snprintf(buf, len, "    00:00:00.000");
		return buf;
	}
	int days = (int)(d / 86400);
	int sum = 86400 * days;
	int hours = (int)((d - sum) / 3600);
	sum += 3600 * hours;
	int min = (int)((d - sum) / 60);
	sum += 60 * min;
	float sec = (float)(d - sum);
	if (days == 0)
		snprintf(buf, len, "    %02d:%02d:%06.3f", hours, min, sec);
	else
		snprintf(buf, len, "%2dd %02d:%02d:%06.3f", days, hours, min, sec);
	return buf;
}

/* Destination port as nfdump shows it: "type.code" for ICMP and ICMPv6. */
static void fmt_dport(const struct flow_rec *r, char *buf, size_t len)
{
	if (r->proto == 1 || r->proto == 58)
		snprintf(buf, len, "%u.%u", r->dport >> 8, r->dport & 0xff);
	else
		snprintf(buf, len, "%u", r->dport);
}

/* "ADDR/MASK " as nfdump's %sn and %dn show a flow's network. Mask 0 keeps an IPv4
 * address whole, and an IPv6 one's first 64 bits (nfdump masks the halves of an IPv6
 * address apart, and a shift by 64 leaves a word as it is on the CPUs it runs on). */
static int put_net(FILE *out, const uint8_t a[16], unsigned mask, int is6)
{
	uint8_t m[16];
	char s[64];
	addr_prefix(m, a, is6 ? (mask ? mask : 64) : 96 + (mask ? mask : 32));
	return fprintf(out, "%16s/%-2u", nfc_addr(m, is6, 1, s), mask);
}

static void flags_str(uint8_t fl, char *s)
{
	static const char names[] = "CEUAPRSF";
	for (int i = 0; i < 8; i++)
		s[i] = (fl & (0x80 >> i)) ? names[i] : '.';
	s[8] = 0;
}

int nfc_fmt_row(const struct nfc_fmt *f, const struct flow_rec *r, uint64_t flows, FILE *out)
{
	char a[64], b[NFC_NUM_LEN], tb[32];
	int is6 = nfc_is6(r);
	uint64_t ms = r->last_ms >= r->first_ms ? r->last_ms - r->first_ms : 0;
	double dur = (double)ms / 1000.0;
	int rc = 0;
	for (unsigned i = 0; i < f->n && rc >= 0; i++) {
		const struct nfc_tok *t = &f->t[i];
		switch (t->id) {
		case T_LIT:
			rc = fputs(t->lit, out);
			break;
		case T_TS:
		case T_TE: {
			uint64_t v = t->id == T_TS ? r->first_ms : r->last_ms;
			if (!v) {
				rc = fputs("0000-00-00 00:00:00.000", out);
				break;
			}
			fmt_time(v, tb, sizeof(tb));
			rc = fprintf(out, "%s.%03u", tb, (unsigned)(v % 1000));
			break;
		}
		case T_TD:
			rc = fputs(nfc_duration(dur, f->plain, a), out);
			break;
		case T_PR:
			rc = fprintf(out, "%-5s", nfc_proto(r->proto, f->plain, b));
			break;
		case T_SA:
		case T_DA:
			rc = fprintf(out, "%16s", nfc_addr(t->id == T_SA ? r->src : r->dst, is6, 1, a));
			break;
		case T_SAP:
			rc = fprintf(out, "%16s%c%-5u", nfc_addr(r->src, is6, 1, a), is6 ? '.' : ':',
				     r->sport);
			break;
		case T_DAP:
			fmt_dport(r, b, sizeof(b));
			rc = fprintf(out, "%16s%c%-5s", nfc_addr(r->dst, is6, 1, a), is6 ? '.' : ':', b);
			break;
		case T_SP:
			rc = fprintf(out, "%6u", r->sport);
			break;
		case T_DP:
			fmt_dport(r, b, sizeof(b));
			rc = fprintf(out, "%6s", b);
			break;
		case T_PKT:
		case T_IPKT:
			rc = fprintf(out, "%8s", nfc_number(r->packets, f->plain, b));
			break;
		case T_BYT:
		case T_IBYT:
			rc = fprintf(out, "%8s", nfc_number(r->bytes, f->plain, b));
			break;
		case T_FL:
			rc = fprintf(out, "%5llu", (unsigned long long)flows);
			break;
		case T_BPS:
		case T_PPS: {
			uint64_t v = 0;
			if (dur != 0.0)
				v = t->id == T_BPS ? (uint64_t)((double)(r->bytes << 3) / dur)
						   : (uint64_t)((double)r->packets / dur);
			rc = fprintf(out, "%8s", nfc_number(v, f->plain, b));
			break;
		}
		case T_BPP:
			rc = fprintf(out, "%6u", r->packets ? (uint32_t)(r->bytes / r->packets) : 0u);
			break;
		case T_FLG:
			flags_str(r->proto == 6 ? r->tcp_flags : 0, b);
			rc = fprintf(out, "%8s", b);
			break;
		case T_TOS:
			rc = fprintf(out, "%3u", r->tos);
			break;
		case T_IN:
			rc = fprintf(out, "%6u", r->in_if);
			break;
		case T_OUT:
			rc = fprintf(out, "%6u", r->out_if);
			break;
		case T_SAS:
		case T_DAS:
			rc = fprintf(out, "%6u", t->id == T_SAS ? r->src_as : r->dst_as);
			break;
		case T_SVLN:
			rc = fprintf(out, "%5u", r->vlan);
			break;
		case T_RA:
			rc = fprintf(out, "%16s", nfc_addr(r->exporter, !flowrec_is4(r->exporter), 1, a));
			break;
		case T_NH:
			rc = fprintf(out, "%16s", nfc_addr(r->nexthop, is6, 1, a));
			break;
		case T_SN:
			rc = put_net(out, r->src, r->src_mask, is6);
			break;
		case T_DN:
			rc = put_net(out, r->dst, r->dst_mask, is6);
			break;
		case T_SMK:
		case T_DMK:
			rc = fprintf(out, "%5u", t->id == T_SMK ? r->src_mask : r->dst_mask);
			break;
		}
	}
	if (rc >= 0)
		rc = fputc('\n', out);
	return rc < 0 ? -EIO : 0;
}

/* ---- CSV ---- */

void nfc_csv_flow_header(FILE *out)
{
	fputs("ts,te,td,sa,da,sp,dp,pr,flg,fwd,stos,ipkt,ibyt,opkt,obyt,in,out,sas,das,smk,"
	      "dmk,dtos,dir,nh,nhb,svln,dvln,ismc,odmc,idmc,osmc,mpls1,mpls2,mpls3,mpls4,"
	      "mpls5,mpls6,mpls7,mpls8,mpls9,mpls10,cl,sl,al,ra,eng,exid,tr\n", out);
}

/* nfdump's exporter id: numbered from 1 in order of appearance; 0 for none. */
static unsigned exporter_id(struct nfc_csv *st, const uint8_t a[16])
{
	if (zero16(a))
		return 0;
	for (unsigned i = 0; i < st->nexp; i++)
		if (!memcmp(st->exp[i], a, 16))
			return i + 1;
	if (st->nexp == NFC_MAX_EXPORTERS)
		return 0;
	memcpy(st->exp[st->nexp], a, 16);
	return ++st->nexp;
}

int nfc_csv_flow_row(struct nfc_csv *st, const struct flow_rec *r, FILE *out)
{
	char ts[32], te[32], sa[64], da[64], nh[64], ra[64], fl[9], pr[8];
	int is6 = nfc_is6(r);
	uint64_t ms = r->last_ms >= r->first_ms ? r->last_ms - r->first_ms : 0;
	fmt_time(r->first_ms, ts, sizeof(ts));
	fmt_time(r->last_ms, te, sizeof(te));
	flags_str(r->tcp_flags, fl);
	/* an unset next hop prints in the flow's family, a set one in its own */
	int nh6 = zero16(r->nexthop) ? is6 : !flowrec_is4(r->nexthop);
	int ra6 = !zero16(r->exporter) && !flowrec_is4(r->exporter);
	int rc = fprintf(out,
			 "%s,%s,%.3f,%s,%s,%u,%u,%s,%s,0,%u,%llu,%llu,0,0,%u,%u,%u,%u,%u,%u,0,0,"
			 "%s,0.0.0.0,%u,0,00:00:00:00:00:00,00:00:00:00:00:00,"
			 "00:00:00:00:00:00,00:00:00:00:00:00,0-0-0,0-0-0,0-0-0,0-0-0,0-0-0,0-0-0,"
			 "0-0-0,0-0-0,0-0-0,0-0-0,    0.000,    0.000,    0.000,%s,0/0,%u,"
			 "1970-01-01 00:00:00.000\n",
			 ts, te, (double)ms / 1000.0, nfc_addr(r->src, is6, 0, sa),
			 nfc_addr(r->dst, is6, 0, da), r->sport, r->dport, nfc_proto(r->proto, 0, pr),
			 fl, r->tos, (unsigned long long)r->packets, (unsigned long long)r->bytes,
			 r->in_if, r->out_if, r->src_as, r->dst_as, r->src_mask, r->dst_mask,
			 nfc_addr(r->nexthop, nh6, 0, nh), r->vlan, nfc_addr(r->exporter, ra6, 0, ra),
			 exporter_id(st, r->exporter));
	return rc < 0 ? -EIO : 0;
}

void nfc_csv_stat_header(int order, FILE *out)
{
	if (order == QO_FLOWS)
		fputs("ts,te,td,pr,val,fl,flP,ipkt,ipktP,ibyt,ibytP,ipps,ibps,ibpp\n", out);
	else
		fputs("ts,te,td,pr,val,fl,flP,pkt,pktP,byt,bytP,pps,bps,bpp\n", out);
}

static double pct(uint64_t v, uint64_t total)
{
	return total ? (double)v * 100.0 / (double)total : 0.0;
}

/* ---- pipe ---- */

int nfc_pipe_flow_row(const struct flow_rec *r, FILE *out)
{
	int is6 = nfc_is6(r);
	int rc = fprintf(out, "%d|%llu|%llu|%u|%u|%u|%u|%u|%u|%u|%u|%u|%u|%u|%u|%u|%u|%u|%u|%u|"
			 "%llu|%llu\n", is6 ? 10 : 2, (unsigned long long)r->first_ms,
			 (unsigned long long)r->last_ms, r->proto,
			 is6 ? ld_be32(r->src) : 0, is6 ? ld_be32(r->src + 4) : 0,
			 is6 ? ld_be32(r->src + 8) : 0, ld_be32(r->src + 12), r->sport,
			 is6 ? ld_be32(r->dst) : 0, is6 ? ld_be32(r->dst + 4) : 0,
			 is6 ? ld_be32(r->dst + 8) : 0, ld_be32(r->dst + 12), r->dport, r->src_as,
			 r->dst_as, r->in_if, r->out_if, r->tcp_flags, r->tos,
			 (unsigned long long)r->packets, (unsigned long long)r->bytes);
	return rc < 0 ? -EIO : 0;
}

/* A statistic's IPv6 address as nfdump's pipe prints it: each 32-bit piece of its two
 * 64-bit halves as held in a little-endian host's memory, then byte-swapped. */
static uint32_t swapped_word(const uint8_t *a, unsigned i)
{
	const uint8_t *h = a + (i / 2) * 8 + (i % 2 ? 0 : 4);
	return (uint32_t)h[3] << 24 | (uint32_t)h[2] << 16 | (uint32_t)h[1] << 8 | h[0];
}

int nfc_pipe_stat_row(const struct query_table *t, const struct query_row *r, FILE *out)
{
	const struct flow_rec *f = &r->f;
	const struct query_key *k = &t->req.key[0];
	uint64_t ms = f->last_ms >= f->first_ms ? f->last_ms - f->first_ms : 0;
	uint64_t bps, pps, bpp;
	const uint8_t *a = NULL;
	char val[64];
	int rc;

	query_rates(f->packets, f->bytes, ms, &bps, &pps, &bpp);
	switch (k->field) {
	case QF_SRCIP: case QF_IP: case QF_SRCNET: a = f->src; break;
	case QF_DSTIP: case QF_DSTNET: a = f->dst; break;
	case QF_EXPORTER: a = f->exporter; break;
	}
	rc = fprintf(out, "%d|%llu|%llu|%u|", a ? (flowrec_is4(a) ? 2 : 10) : 0,
		     (unsigned long long)f->first_ms, (unsigned long long)f->last_ms,
		     k->field == QF_PROTO ? f->proto : 0);
	if (rc >= 0 && a && flowrec_is4(a))
		rc = fprintf(out, "0|0|0|%u|", ld_be32(a + 12));
	else if (rc >= 0 && a)
		rc = fprintf(out, "%u|%u|%u|%u|", swapped_word(a, 0), swapped_word(a, 1),
			     swapped_word(a, 2), swapped_word(a, 3));
	else if (rc >= 0)
		rc = fprintf(out, "%s|", query_key_str(k, r, val, sizeof(val)));
	if (rc >= 0)
		rc = fprintf(out, "%llu|%llu|%llu|%llu|%llu|%llu\n", (unsigned long long)r->flows,
			     (unsigned long long)f->packets, (unsigned long long)f->bytes,
			     (unsigned long long)pps, (unsigned long long)bps,
			     (unsigned long long)bpp);
	return rc < 0 ? -EIO : 0;
}

int nfc_csv_stat_row(const struct query_table *t, const struct query_row *r, int plain,
		     FILE *out)
{
	char ts[32], te[32], val[64], pr[8];
	const struct flow_rec *f = &r->f;
	const struct query_key *k = &t->req.key[0];
	uint64_t ms = f->last_ms >= f->first_ms ? f->last_ms - f->first_ms : 0;
	uint64_t bps, pps, bpp;
	query_rates(f->packets, f->bytes, ms, &bps, &pps, &bpp);
	fmt_time(f->first_ms, ts, sizeof(ts));
	fmt_time(f->last_ms, te, sizeof(te));
	query_key_str(k, r, val, sizeof(val));
	const char *prs = k->field == QF_PROTO ? nfc_proto(f->proto, plain, pr) : "any";
	int rc = fprintf(out, "%s,%s,%.3f,%s,%s,%llu,%.1f,%llu,%.1f,%llu,%.1f,%llu,%llu,%llu\n",
			 ts, te, (double)ms / 1000.0, prs, val, (unsigned long long)r->flows,
			 pct(r->flows, t->flows), (unsigned long long)f->packets,
			 pct(f->packets, t->packets), (unsigned long long)f->bytes,
			 pct(f->bytes, t->bytes), (unsigned long long)pps, (unsigned long long)bps,
			 (unsigned long long)bpp);
	return rc < 0 ? -EIO : 0;
}

int nfc_stat_text_header(const struct query_table *t, FILE *out)
{
	const char *title = query_field_title(t->req.key[0].field);
	int rc = fprintf(out, "Top %llu %s ordered by %s:\n"
			 "Date first seen                 Duration Proto %17s    Flows(%%)     "
			 "Packets(%%)       Bytes(%%)         pps      bps   bpp\n",
			 (unsigned long long)t->req.limit, title, query_order_name(t->req.order),
			 title);
	return rc < 0 ? -EIO : 0;
}

int nfc_stat_text_row(const struct query_table *t, const struct query_row *r, int plain,
		      FILE *out)
{
	char val[64], dur[32], ts[32], pk[NFC_NUM_LEN], by[NFC_NUM_LEN], pp[NFC_NUM_LEN];
	char bp[NFC_NUM_LEN], prb[8];
	const struct flow_rec *f = &r->f;
	const struct query_key *k = &t->req.key[0];
	uint64_t ms = f->last_ms >= f->first_ms ? f->last_ms - f->first_ms : 0;
	uint64_t bps, pps, bpp;
	query_rates(f->packets, f->bytes, ms, &bps, &pps, &bpp);
	fmt_time(f->first_ms, ts, sizeof(ts));
	if (k->field == QF_SRCIP || k->field == QF_DSTIP || k->field == QF_IP ||
	    k->field == QF_EXPORTER) {
		/* addresses condensed, as in nfdump's text statistics */
		const uint8_t *a = k->field == QF_DSTIP ? f->dst :
				   k->field == QF_EXPORTER ? f->exporter : f->src;
		nfc_addr(a, !flowrec_is4(a), 1, val);
	} else {
		query_key_str(k, r, val, sizeof(val));
	}
	int rc = fprintf(out, "%s.%03u %s %-5s %17s %8llu(%4.1f) %8s(%4.1f) %8s(%4.1f) %8s %8s "
			 "%5llu\n", ts, (unsigned)(f->first_ms % 1000),
			 nfc_duration((double)ms / 1000.0, plain, dur),
			 k->field == QF_PROTO ? nfc_proto(f->proto, plain, prb) : "any", val,
			 (unsigned long long)r->flows, pct(r->flows, t->flows),
			 nfc_number(f->packets, plain, pk), pct(f->packets, t->packets),
			 nfc_number(f->bytes, plain, by), pct(f->bytes, t->bytes),
			 nfc_number(pps, plain, pp), nfc_number(bps, plain, bp),
			 (unsigned long long)bpp);
	return rc < 0 ? -EIO : 0;
}

/* Summary rates over the matched flows' whole span, as nfdump. */
static void sum_rates(const struct query_summary *s, uint64_t *bps, uint64_t *pps,
		      uint64_t *bpp)
{
	uint64_t ms = s->last_ms >= s->first_ms ? s->last_ms - s->first_ms : 0;
	query_rates(s->packets, s->bytes, ms, bps, pps, bpp);
}

int nfc_csv_summary(const struct query_summary *s, FILE *out)
{
	uint64_t bps, pps, bpp;
	sum_rates(s, &bps, &pps, &bpp);
	int rc = fprintf(out, "Summary\nflows,bytes,packets,avg_bps,avg_pps,avg_bpp\n"
			 "%llu,%llu,%llu,%llu,%llu,%llu\n",
			 (unsigned long long)s->flows, (unsigned long long)s->bytes,
			 (unsigned long long)s->packets, (unsigned long long)bps,
			 (unsigned long long)pps, (unsigned long long)bpp);
	return rc < 0 ? -EIO : 0;
}

int nfc_text_summary(const struct query_summary *s, const struct nfc_run *run, int plain,
		     FILE *out)
{
	char n1[NFC_NUM_LEN], n2[NFC_NUM_LEN], n3[NFC_NUM_LEN], n4[NFC_NUM_LEN];
	char n5[NFC_NUM_LEN], t1[32], t2[32];
	uint64_t bps, pps, bpp;
	sum_rates(s, &bps, &pps, &bpp);
	fmt_time(run->win_first_ms, t1, sizeof(t1));
	fmt_time(run->win_last_ms, t2, sizeof(t2));
	double wall = run->wall_s;
	int rc = fprintf(out,
			 "Summary: total flows: %s, total bytes: %s, total packets: %s, avg bps: "
			 "%s, avg pps: %s, avg bpp: %llu\n"
			 "Time window: %s - %s\n"
			 "Total flows processed: %llu, passed: %llu, Blocks skipped: %llu, Bytes "
			 "read: %llu\n"
			 "Sys: %.4fs User: %.4fs Wall: %.4fs flows/second: %.1f Runtime: %.4fs\n",
			 nfc_number(s->flows, plain, n1), nfc_number(s->bytes, plain, n2),
			 nfc_number(s->packets, plain, n3), nfc_number(bps, plain, n4),
			 nfc_number(pps, plain, n5), (unsigned long long)bpp, t1, t2,
			 (unsigned long long)s->flows_scanned, (unsigned long long)s->flows,
			 (unsigned long long)s->blocks_skipped,
			 (unsigned long long)run->bytes_read, run->sys_s, run->user_s, wall,
			 wall > 0 ? (double)s->flows_scanned / wall : 0.0, wall);
	return rc < 0 ? -EIO : 0;
}
