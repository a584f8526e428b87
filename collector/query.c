/* query.c: see query.h. Sections: vocabulary (names, parsers), key layout, the
 * aggregation hash table, the block scan, partitioned passes over threads, ordering
 * and delivery of rows, time series. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "addr.h"
#include "bytes.h"
#include "filt.h"
#include "opts.h"
#include "query.h"
#include "sys.h"

#define COL(c) STORE_COLBIT(STORE_COL_##c)
#define COUNTER_COLS (COL(PACKETS) | COL(BYTES) | COL(FIRST) | COL(LAST))
#define NCTR 5                  /* entry words before the key: flows packets bytes first last */
#define MAX_KW 16               /* key words: 12 fields of at most 17 bytes, plus a bucket */
#define MAX_THREADS 64
#define LOAD_NUM 17             /* tables grow beyond 17/20 full */
#define LOAD_DEN 20
#define PREFETCH 8
#define PREFETCH_FAR 32          /* the bound sketch: far larger than the caches */
#define POS_BLOCK_BITS 22
#define POS_REC_BITS 18
#define QUERY_HOLD_FILES 4096   /* store files a query holds open (see list_store) */

static _Atomic uint64_t held_files;     /* by all queries running, of their share */

/* ---- vocabulary ---- */

struct fdef {
	const char *name;
	const char *title;
	uint8_t width;          /* bytes in a key */
	uint8_t both;           /* counts source and destination */
	uint32_t cols;          /* store columns it reads */
};

static const struct fdef fdefs[QF__COUNT] = {
	[QF_SRCIP] = { "srcip", "Src IP Addr", 16, 0, COL(SRC) },
	[QF_DSTIP] = { "dstip", "Dst IP Addr", 16, 0, COL(DST) },
	[QF_IP] = { "ip", "IP Addr", 16, 1, COL(SRC) | COL(DST) },
	[QF_SRCPORT] = { "srcport", "Src Port", 2, 0, COL(SPORT) },
	[QF_DSTPORT] = { "dstport", "Dst Port", 2, 0, COL(DPORT) },
	[QF_PORT] = { "port", "Port", 2, 1, COL(SPORT) | COL(DPORT) },
	[QF_PROTO] = { "proto", "Protocol", 1, 0, COL(PROTO) },
	[QF_TOS] = { "tos", "Tos", 1, 0, COL(TOS) },
	[QF_INIF] = { "inif", "Input If", 4, 0, COL(IN_IF) },
	[QF_OUTIF] = { "outif", "Output If", 4, 0, COL(OUT_IF) },
	[QF_SRCAS] = { "srcas", "Src AS", 4, 0, COL(SRC_AS) },
	[QF_DSTAS] = { "dstas", "Dst AS", 4, 0, COL(DST_AS) },
	[QF_VLAN] = { "vlan", "Vlan", 2, 0, COL(VLAN) },
	[QF_EXPORTER] = { "exporter", "Exporter IP", 16, 0, COL(EXPORTER) },
	[QF_SRCNET] = { "srcnet", "Src Net", 17, 0, COL(SRC) | COL(SRC_MASK) },
	[QF_DSTNET] = { "dstnet", "Dst Net", 17, 0, COL(DST) | COL(DST_MASK) },
	[QF_IF] = { "if", "In/Out If", 4, 1, COL(IN_IF) | COL(OUT_IF) },
	[QF_AS] = { "as", "AS", 4, 1, COL(SRC_AS) | COL(DST_AS) },
};

static const char *const onames[QO__COUNT] = {
	[QO_NONE] = "none", [QO_FLOWS] = "flows", [QO_PACKETS] = "packets",
	[QO_BYTES] = "bytes", [QO_BPS] = "bps", [QO_PPS] = "pps", [QO_BPP] = "bpp",
	[QO_TSTART] = "tstart", [QO_TEND] = "tend", [QO_DURATION] = "duration",
};

const char *query_field_name(int field)
{
	return field >= 0 && field < QF__COUNT ? fdefs[field].name : "?";
}

const char *query_field_title(int field)
{
	return field >= 0 && field < QF__COUNT ? fdefs[field].title : "?";
}

const char *query_order_name(int order)
{
	return order >= 0 && order < QO__COUNT ? onames[order] : "?";
}

int query_parse_order(const char *s)
{
	static const struct { const char *n; int o; } alias[] = {
		{ "ipkg", QO_PACKETS }, { "ipackets", QO_PACKETS }, { "ibyte", QO_BYTES },
		{ "ibytes", QO_BYTES }, { "ipps", QO_PPS }, { "ibps", QO_BPS },
		{ "ibpp", QO_BPP }, { NULL, 0 } };
	for (int o = QO_FLOWS; o < QO__COUNT; o++)
		if (!strcmp(s, onames[o]))
			return o;
	for (int i = 0; alias[i].n; i++)
		if (!strcmp(s, alias[i].n))
			return alias[i].o;
	return -1;
}

static int all_digits(const char *s)
{
	if (!*s)
		return 0;
	for (; *s; s++)
		if (*s < '0' || *s > '9')
			return 0;
	return 1;
}

/* "srcnet/24/64" style masks following a net element: mask4 then mask6 (default 64). */
static int net_masks(char **parts, int np, int *used, struct query_key *k, char *err,
		     size_t errlen, const char *s)
{
	unsigned long m4, m6 = 64;
	*used = 0;
	if (np < 1 || !all_digits(parts[0])) {
		k->mask4 = QUERY_MASK_FLOW;
		k->mask6 = 0;
		return 0;
	}
	m4 = strtoul(parts[0], NULL, 10);
	*used = 1;
	if (np > 1 && all_digits(parts[1])) {
		m6 = strtoul(parts[1], NULL, 10);
		*used = 2;
	}
	if (m4 > 32) {
		snprintf(err, errlen, "'%s': the first mask is IPv4's, 0..32 (an IPv6 mask, "
			 "0..128, comes second: NET/24/64)", s);
		return -1;
	}
	if (m6 > 128) {
		snprintf(err, errlen, "'%s': the second mask is IPv6's, 0..128", s);
		return -1;
	}
	k->mask4 = (uint8_t)m4;
	k->mask6 = (uint8_t)m6;
	return 0;
}

/* Splits a copy of s at '/' into at most 8 parts; returns the count. */
static int split_slash(char *buf, char **parts)
{
	int n = 0;
	char *p = buf;
	while (n < 8) {
		parts[n++] = p;
		p = strchr(p, '/');
		if (!p)
			break;
		*p++ = 0;
	}
	return n;
}

/* A field by its name or nfdump's other name for it (router, srctos, srcvlan: the
 * store keeps one tos and one vlan a flow). */
static int field_by_name(const char *name)
{
	if (!strcmp(name, "router"))
		return QF_EXPORTER;
	if (!strcmp(name, "srctos"))
		return QF_TOS;
	if (!strcmp(name, "srcvlan"))
		return QF_VLAN;
	for (int f = 0; f < QF__COUNT; f++)
		if (!strcmp(name, fdefs[f].name))
			return f;
	return -1;
}

int query_parse_stat(const char *s, const struct query_key *aggr, unsigned naggr,
		     uint64_t top_n, struct query_req *rq, char *err, size_t errlen)
{
	char buf[128], *parts[8];
	struct query_table_req t;
	int np, used = 0, f, record = 0;

	if (strlen(s) >= sizeof(buf)) {
		snprintf(err, errlen, "-s '%.60s...': too long", s);
		return -1;
	}
	strcpy(buf, s);
	np = split_slash(buf, parts);
	memset(&t, 0, sizeof(t));
	t.limit = top_n;
	if (!strcmp(parts[0], "record")) {
		record = 1;
		t.kind = QK_AGGR;
		if (naggr) {
			memcpy(t.key, aggr, naggr * sizeof(*aggr));
			t.nkey = (uint8_t)naggr;
		} else {
			static const uint8_t five[] = { QF_PROTO, QF_SRCIP, QF_SRCPORT, QF_DSTIP,
							QF_DSTPORT };
			for (unsigned i = 0; i < 5; i++)
				t.key[i].field = five[i];
			t.nkey = 5;
		}
	} else {
		f = field_by_name(parts[0]);
		if (f < 0) {
			snprintf(err, errlen, "-s '%s': unknown element '%s' (srcip dstip ip srcport "
				 "dstport port proto tos inif outif if srcas dstas as vlan exporter "
				 "srcnet dstnet record)", s, parts[0]);
			return -1;
		}
		t.kind = QK_STAT;
		t.nkey = 1;
		t.key[0].field = (uint8_t)f;
		if ((f == QF_SRCNET || f == QF_DSTNET) &&
		    net_masks(parts + 1, np - 1, &used, &t.key[0], err, errlen, s) < 0)
			return -1;
	}
	int norders = 0;
	for (int i = 1 + used; i < np; i++) {
		int o = query_parse_order(parts[i]);
		if (o < 0 || o == QO_TSTART || o == QO_TEND || o == QO_DURATION) {
			snprintf(err, errlen, "-s '%s': unknown order '%s' (flows packets bytes bps "
				 "pps bpp)%s", s, parts[i], all_digits(parts[i]) && !record &&
				 t.key[0].field != QF_SRCNET && t.key[0].field != QF_DSTNET ?
				 "; a /N mask needs srcnet or dstnet" : "");
			return -1;
		}
		if (rq->ntables >= QUERY_MAX_TABLES) {
			snprintf(err, errlen, "at most %d statistics", QUERY_MAX_TABLES);
			return -1;
		}
		t.order = (uint8_t)o;
		rq->table[rq->ntables++] = t;
		norders++;
	}
	if (!norders) {
		if (rq->ntables >= QUERY_MAX_TABLES) {
			snprintf(err, errlen, "at most %d statistics", QUERY_MAX_TABLES);
			return -1;
		}
		t.order = QO_FLOWS;
		rq->table[rq->ntables++] = t;
	}
	return 0;
}

int query_parse_aggr(const char *s, struct query_key *key, unsigned *n, char *err,
		     size_t errlen)
{
	char buf[256];
	char *save = NULL, *tok;
	unsigned k = 0;

	if (strlen(s) >= sizeof(buf)) {
		snprintf(err, errlen, "-A '%.60s...': too long", s);
		return -1;
	}
	strcpy(buf, s);
	for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		char *parts[8];
		int np = split_slash(tok, parts), used = 0, f;
		struct query_key q = { 0, 0, 0 };
		const char *name = parts[0];
		int fam = 0; /* nfdump's srcip4/N (4), srcip6/N (6) */

		if (!strcmp(name, "srcip4") || !strcmp(name, "srcip6") ||
		    !strcmp(name, "dstip4") || !strcmp(name, "dstip6")) {
			fam = name[5] - '0';
			f = name[0] == 's' ? QF_SRCNET : QF_DSTNET;
		} else {
			f = field_by_name(name);
		}
		if (f < 0 || fdefs[f].both) {
			snprintf(err, errlen, "-A: unknown field '%s' (srcip dstip srcport dstport "
				 "proto tos inif outif srcas dstas vlan exporter srcnet dstnet, "
				 "srcnet/N)", name);
			return -1;
		}
		q.field = (uint8_t)f;
		if (fam) {
			unsigned long m;
			if (np != 2 || !all_digits(parts[1]) ||
			    (m = strtoul(parts[1], NULL, 10)) > (fam == 4 ? 32u : 128u)) {
				snprintf(err, errlen, "-A: '%s' needs a prefix length, e.g. %s/%s",
					 name, name, fam == 4 ? "24" : "64");
				return -1;
			}
			q.mask4 = fam == 4 ? (uint8_t)m : 32;
			q.mask6 = fam == 6 ? (uint8_t)m : 128;
			used = 1;
		} else if ((f == QF_SRCNET || f == QF_DSTNET) &&
			   net_masks(parts + 1, np - 1, &used, &q, err, errlen, tok) < 0) {
			return -1;
		}
		if (np > 1 + used) {
			snprintf(err, errlen, "-A: '%s': unexpected '/%s'", name, parts[1 + used]);
			return -1;
		}
		for (unsigned i = 0; i < k; i++) {
			if (key[i].field == q.field) {
				snprintf(err, errlen, "-A: '%s' given twice", name);
				return -1;
			}
		}
		if (k >= QUERY_MAX_FIELDS) {
			snprintf(err, errlen, "-A: at most %d fields", QUERY_MAX_FIELDS);
			return -1;
		}
		key[k++] = q;
	}
	if (!k) {
		snprintf(err, errlen, "-A: no fields given");
		return -1;
	}
	*n = k;
	return 0;
}

/* ---- time windows ---- */

static int digits(const char **p, int min, int max, int *v)
{
	int n = 0, x = 0;
	while (n < max && **p >= '0' && **p <= '9') {
		x = x * 10 + (**p - '0');
		(*p)++;
		n++;
	}
	*v = x;
	return n >= min;
}

static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
	y -= m <= 2;
	const int64_t era = (y >= 0 ? y : y - 399) / 400;
	const unsigned yoe = (unsigned)(y - era * 400);
	const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (int64_t)doe - 719468;
}

/* Broken-down time to Unix ms: UTC plus offset when utc, else local time (mktime). */
static int to_ms(int y, int mo, int d, int h, int mi, int s, int ms, int utc, int off_min,
		 uint64_t *out)
{
	int64_t secs;
	if (y < 1970 || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || s > 60)
		return -1;
	if (utc) {
		secs = days_from_civil(y, (unsigned)mo, (unsigned)d) * 86400 + h * 3600 +
		       mi * 60 + s - (int64_t)off_min * 60;
	} else {
		struct tm tm;
		memset(&tm, 0, sizeof(tm));
		tm.tm_year = y - 1900;
		tm.tm_mon = mo - 1;
		tm.tm_mday = d;
		tm.tm_hour = h;
		tm.tm_min = mi;
		tm.tm_sec = s;
		tm.tm_isdst = -1;
		time_t t = mktime(&tm);
		if (t == (time_t)-1 && !(y == 1969 || (y == 1970 && mo == 1 && d == 1)))
			return -1;
		secs = (int64_t)t;
	}
	if (secs < 0)
		return -1;
	*out = (uint64_t)secs * 1000 + (uint64_t)ms;
	return 0;
}

/* One absolute time, all of s: nfdump's YYYY[/MM[/DD[.hh[:mm[:ss]]]]] or ISO 8601. */
static int parse_abs(const char *s, uint64_t *out)
{
	const char *p = s;
	int y, mo = 1, d = 1, h = 0, mi = 0, sec = 0, ms = 0, utc = 0, off = 0;

	if (!digits(&p, 4, 4, &y))
		return -1;
	if (*p == '/' || *p == 0) { /* nfdump */
		if (*p == '/' && (p++, !digits(&p, 1, 2, &mo)))
			return -1;
		if (*p == '/' && (p++, !digits(&p, 1, 2, &d)))
			return -1;
		if (*p == '.' && (p++, !digits(&p, 1, 2, &h)))
			return -1;
		if (*p == ':' && (p++, !digits(&p, 1, 2, &mi)))
			return -1;
		if (*p == ':' && (p++, !digits(&p, 1, 2, &sec)))
			return -1;
		if (*p)
			return -1;
		return to_ms(y, mo, d, h, mi, sec, 0, 0, 0, out);
	}
	if (*p != '-')
		return -1;
	p++;
	if (!digits(&p, 2, 2, &mo) || *p++ != '-' || !digits(&p, 2, 2, &d))
		return -1;
	if (*p == 'T' || *p == 't' || *p == ' ') {
		p++;
		if (!digits(&p, 2, 2, &h))
			return -1;
		if (*p == ':' && (p++, !digits(&p, 2, 2, &mi)))
			return -1;
		if (*p == ':' && (p++, !digits(&p, 2, 2, &sec)))
			return -1;
		if (*p == '.' || *p == ',') {
			int n = 0;
			p++;
			while (*p >= '0' && *p <= '9') {
				if (n < 3)
					ms = ms * 10 + (*p - '0');
				n++;
				p++;
			}
			if (!n)
				return -1;
			for (; n < 3; n++)
				ms *= 10;
		}
	}
	if (*p == 'Z' || *p == 'z') {
		utc = 1;
		p++;
	} else if (*p == '+' || *p == '-') {
		int sign = *p == '-' ? -1 : 1, oh, om = 0;
		p++;
		if (!digits(&p, 2, 2, &oh))
			return -1;
		if (*p == ':')
			p++;
		if (*p && !digits(&p, 2, 2, &om))
			return -1;
		if (oh > 23 || om > 59)
			return -1;
		utc = 1;
		off = sign * (oh * 60 + om);
	}
	if (*p)
		return -1;
	return to_ms(y, mo, d, h, mi, sec, ms, utc, off, out);
}

/* "-N{s|m|h|d|w}" -> ms before now. */
static int parse_rel(const char *s, size_t len, uint64_t *ago)
{
	static const char units[] = "smhdw";
	static const uint64_t mul[] = { 1000, 60000, 3600000, 86400000, 604800000 };
	uint64_t n = 0;
	size_t i = 1;

	if (len < 3 || s[0] != '-')
		return -1;
	for (; i < len - 1; i++) {
		if (s[i] < '0' || s[i] > '9' || n > UINT64_MAX / 100)
			return -1;
		n = n * 10 + (uint64_t)(s[i] - '0');
	}
	const char *u = strchr(units, s[len - 1]);
	if (!u || !s[len - 1] || n > UINT64_MAX / mul[u - units])
		return -1;
	*ago = n * mul[u - units];
	return 0;
}

int query_parse_time(const char *s, uint64_t now_ms, struct store_window *w, char *err,
		     size_t errlen)
{
	size_t len = strlen(s);
	uint64_t a, b;
	char buf[128];

	if (len == 0 || len >= sizeof(buf))
		goto bad;
	if (s[0] == '-') {
		const char *dd = strstr(s + 1, "--");
		if (!dd && parse_rel(s, len, &a) == 0) {
			w->from_ms = now_ms > a ? now_ms - a : 0;
			w->to_ms = now_ms;
			return 0;
		}
		if (dd && parse_rel(s, (size_t)(dd - s), &a) == 0 &&
		    parse_rel(dd + 1, strlen(dd + 1), &b) == 0) {
			w->from_ms = now_ms > a ? now_ms - a : 0;
			w->to_ms = now_ms > b ? now_ms - b : 0;
			goto check;
		}
		if (all_digits(s + 1)) {
			snprintf(err, errlen, "-t '%s': give a unit: -%ss, -%sm, -%sh, -%sd or -%sw "
				 "(the last N units)", s, s + 1, s + 1, s + 1, s + 1, s + 1);
			return -1;
		}
		goto bad;
	}
	if (parse_abs(s, &a) == 0) {
		w->from_ms = a;
		w->to_ms = UINT64_MAX;
		return 0;
	}
	/* A pair: the split at the one '-' where both sides are times. */
	int found = 0;
	for (size_t i = 1; i + 1 < len; i++) {
		uint64_t x, y;
		if (s[i] != '-')
			continue;
		memcpy(buf, s, i);
		buf[i] = 0;
		if (parse_abs(buf, &x) == 0 && parse_abs(s + i + 1, &y) == 0) {
			a = x;
			b = y;
			found++;
		}
	}
	if (found != 1)
		goto bad;
	w->from_ms = a;
	w->to_ms = b;
check:
	if (w->from_ms > w->to_ms) {
		snprintf(err, errlen, "-t '%s': the window ends before it starts", s);
		return -1;
	}
	return 0;
bad:
	snprintf(err, errlen, "-t '%s': not a time window (YYYY/MM/DD.hh:mm:ss[-YYYY/MM/DD."
		 "hh:mm:ss], ISO 8601 2026-01-31T12:00:00Z[-...], or -1h, -30m, -2d)", s);
	return -1;
}

/* ---- rates ---- */

void query_rates(uint64_t packets, uint64_t bytes, uint64_t ms, uint64_t *bps, uint64_t *pps,
		 uint64_t *bpp)
{
	/* doubles, as nfdump computes them, so the integers printed are the same */
	double secs = (double)ms / 1000.0;
	*bps = ms ? (uint64_t)(8.0 * (double)bytes / secs) : 0;
	*pps = ms ? (uint64_t)((double)packets / secs) : 0;
	*bpp = packets ? bytes / packets : 0;
}

/* ---- key layout ---- */

struct kfield {
	uint8_t field, mask4, mask6;
	uint8_t off;            /* byte offset in the key */
	uint8_t width;          /* bytes in the key: fdefs' width, or 4 for a compact address */
};

/* Keys with addresses start compact: an IPv4 address as its 4 bytes instead of the
 * v4-mapped 16, a third of the entry for srcip,dstip, so a third more keys fit in each
 * pass. The first address that is not IPv4 fails the scan with this code and the query
 * runs again with full addresses. */
#define EWIDE (-EXDEV)

static inline int compact_addr(int field)
{
	return field == QF_SRCIP || field == QF_DSTIP || field == QF_IP;
}

/* Bounds for a top N by an additive order (flows, packets, bytes), found in a scan of
 * its own: the sum of the order's values per hash bucket bounds the total of every key
 * in the bucket from above, and the N-th best of a few keys' partial sums bounds the
 * N-th best total from below (thr). A key whose bucket stays below thr cannot be in the
 * top N, so the exact scan counts only the keys of the other buckets: two scans instead
 * of one per hash partition when the keys do not fit in memory. */
struct bound {
	_Atomic uint64_t *b;    /* nb bucket sums, shared by the threads */
	uint64_t nb;
	uint64_t thr;
};

static inline uint64_t bound_idx(uint64_t h, uint64_t nb)
{
	return ((h & 0xffffffffu) * nb) >> 32; /* low hash bits: independent of partitions */
}

/* One table being filled: a user table, the totals series, or a per-row series. */
struct tspec {
	int user;               /* index of the user table, -1 for the totals series */
	uint8_t order;
	uint64_t limit;
	unsigned nf;
	struct kfield f[QUERY_MAX_FIELDS];
	int both;               /* QF_IP, QF_PORT, QF_IF, QF_AS: two keys per flow */
	int bucket;             /* the key ends with a bucket word */
	unsigned kw;            /* key words */
	unsigned kw_pre;        /* words before the bucket */
	unsigned ew;            /* entry words: NCTR + kw */
	uint32_t cols;
	int keep_all;           /* every entry wanted, unordered (series) */
	struct htab *only;      /* keep only keys whose first kw_pre words are in here */
	struct bound *bnd;      /* keep only keys whose bucket reaches bnd->thr */
};

static int spec_init(struct tspec *ts, const struct query_key *key, unsigned nkey,
		     int bucket, int v4)
{
	unsigned off = 0;
	memset(ts, 0, sizeof(*ts));
	for (unsigned i = 0; i < nkey; i++) {
		const struct fdef *d = &fdefs[key[i].field];
		ts->f[i].field = key[i].field;
		ts->f[i].mask4 = key[i].mask4;
		ts->f[i].mask6 = key[i].mask6;
		ts->f[i].off = (uint8_t)off;
		ts->f[i].width = v4 && compact_addr(key[i].field) ? 4 : d->width;
		off += ts->f[i].width;
		ts->both |= d->both;
		ts->cols |= d->cols;
	}
	ts->nf = nkey;
	ts->kw_pre = (off + 7) / 8;
	ts->bucket = bucket;
	ts->kw = ts->kw_pre + (bucket ? 1 : 0);
	if (!ts->kw)
		ts->kw = 1;
	ts->ew = NCTR + ts->kw;
	ts->cols |= COUNTER_COLS;
	return ts->kw <= MAX_KW ? 0 : -1;
}

static inline void mask_addr(uint8_t *dst, const uint8_t *a, unsigned m4, unsigned m6,
			     uint8_t *mlen)
{
	int v4 = flowrec_is4(a);
	unsigned m = v4 ? m4 : m6;
	addr_prefix(dst, a, v4 ? 96 + m : m);
	*mlen = (uint8_t)m;
}

/* Writes field kf of the n selected records into their keys (stride bytes apart).
 * Returns 0, or EWIDE for an address that does not fit a compact key. */
static int put_field(const struct kfield *kf, const struct store_cols *c,
		     const uint32_t *sel, uint32_t n, int side, uint8_t *k, size_t stride)
{
	k += kf->off;
	switch (kf->field) {
	case QF_SRCIP:
	case QF_DSTIP:
	case QF_IP:
	case QF_EXPORTER: {
		const uint8_t (*a)[16] = kf->field == QF_EXPORTER ? c->exporter :
					 kf->field == QF_DSTIP || side ? c->dst : c->src;
		if (kf->width == 4) {
			for (uint32_t i = 0; i < n; i++, k += stride) {
				if (!flowrec_is4(a[sel[i]]))
					return EWIDE;
				memcpy(k, a[sel[i]] + 12, 4);
			}
			break;
		}
		for (uint32_t i = 0; i < n; i++, k += stride)
			memcpy(k, a[sel[i]], 16);
		break;
	}
	case QF_SRCNET:
	case QF_DSTNET: {
		int s = kf->field == QF_SRCNET;
		const uint8_t (*a)[16] = s ? c->src : c->dst;
		const uint8_t *fm = s ? c->src_mask : c->dst_mask;
		for (uint32_t i = 0; i < n; i++, k += stride) {
			uint32_t j = sel[i];
			if (kf->mask4 != QUERY_MASK_FLOW) {
				mask_addr(k, a[j], kf->mask4, kf->mask6, k + 16);
			} else if (fm[j]) {
				unsigned m = fm[j];
				mask_addr(k, a[j], m > 32 ? 32 : m, m > 128 ? 128 : m, k + 16);
			} else {
				memcpy(k, a[j], 16); /* no mask known: the whole address, /0 */
				k[16] = 0;
			}
		}
		break;
	}
	case QF_SRCPORT:
	case QF_DSTPORT:
	case QF_PORT: {
		const uint16_t *p = kf->field == QF_DSTPORT || side ? c->dport : c->sport;
		for (uint32_t i = 0; i < n; i++, k += stride)
			st_be16(k, p[sel[i]]);
		break;
	}
	case QF_PROTO:
	case QF_TOS: {
		const uint8_t *p = kf->field == QF_PROTO ? c->proto : c->tos;
		for (uint32_t i = 0; i < n; i++, k += stride)
			k[0] = p[sel[i]];
		break;
	}
	case QF_INIF:
	case QF_OUTIF:
	case QF_IF:
	case QF_SRCAS:
	case QF_DSTAS:
	case QF_AS: {
		int f = kf->field == QF_IF ? (side ? QF_OUTIF : QF_INIF) :
			kf->field == QF_AS ? (side ? QF_DSTAS : QF_SRCAS) : kf->field;
		const uint32_t *p = f == QF_INIF ? c->in_if : f == QF_OUTIF ? c->out_if :
				    f == QF_SRCAS ? c->src_as : c->dst_as;
		for (uint32_t i = 0; i < n; i++, k += stride)
			st_be32(k, p[sel[i]]);
		break;
	}
	case QF_VLAN:
		for (uint32_t i = 0; i < n; i++, k += stride)
			st_be16(k, c->vlan[sel[i]]);
		break;
	}
	return 0;
}

/* Key bytes of field kf back into the row. */
static void get_field(const struct kfield *kf, const uint8_t *k, struct query_row *r)
{
	k += kf->off;
	switch (kf->field) {
	case QF_SRCIP:
	case QF_IP:
	case QF_DSTIP:
	case QF_EXPORTER: {
		uint8_t *a = kf->field == QF_EXPORTER ? r->f.exporter :
			     kf->field == QF_DSTIP ? r->f.dst : r->f.src;
		if (kf->width == 4)
			flowrec_addr4(a, k);
		else
			memcpy(a, k, 16);
		break;
	}
	case QF_SRCNET:
		memcpy(r->f.src, k, 16);
		r->f.src_mask = k[16];
		break;
	case QF_DSTNET:
		memcpy(r->f.dst, k, 16);
		r->f.dst_mask = k[16];
		break;
	case QF_SRCPORT:
	case QF_PORT:
		r->f.sport = ld_be16(k);
		break;
	case QF_DSTPORT:
		r->f.dport = ld_be16(k);
		break;
	case QF_PROTO:
		r->f.proto = k[0];
		break;
	case QF_TOS:
		r->f.tos = k[0];
		break;
	case QF_INIF:
	case QF_IF:
		r->f.in_if = ld_be32(k);
		break;
	case QF_OUTIF:
		r->f.out_if = ld_be32(k);
		break;
	case QF_SRCAS:
	case QF_AS:
		r->f.src_as = ld_be32(k);
		break;
	case QF_DSTAS:
		r->f.dst_as = ld_be32(k);
		break;
	case QF_VLAN:
		r->f.vlan = ld_be16(k);
		break;
	}
}

char *query_key_str(const struct query_key *k, const struct query_row *r, char *buf,
		    size_t len)
{
	char a[64];
	const struct flow_rec *f = &r->f;
	switch (k->field) {
	case QF_SRCIP:
	case QF_IP:
		addr_str(f->src, buf, len);
		break;
	case QF_DSTIP:
		addr_str(f->dst, buf, len);
		break;
	case QF_EXPORTER:
		addr_str(f->exporter, buf, len);
		break;
	case QF_SRCNET:
		snprintf(buf, len, "%s/%u", addr_str(f->src, a, sizeof(a)), f->src_mask);
		break;
	case QF_DSTNET:
		snprintf(buf, len, "%s/%u", addr_str(f->dst, a, sizeof(a)), f->dst_mask);
		break;
	case QF_SRCPORT:
	case QF_PORT:
		snprintf(buf, len, "%u", f->sport);
		break;
	case QF_DSTPORT:
		snprintf(buf, len, "%u", f->dport);
		break;
	case QF_PROTO:
		snprintf(buf, len, "%u", f->proto);
		break;
	case QF_TOS:
		snprintf(buf, len, "%u", f->tos);
		break;
	case QF_INIF:
	case QF_IF:
		snprintf(buf, len, "%u", f->in_if);
		break;
	case QF_OUTIF:
		snprintf(buf, len, "%u", f->out_if);
		break;
	case QF_SRCAS:
	case QF_AS:
		snprintf(buf, len, "%u", f->src_as);
		break;
	case QF_DSTAS:
		snprintf(buf, len, "%u", f->dst_as);
		break;
	case QF_VLAN:
		snprintf(buf, len, "%u", f->vlan);
		break;
	default:
		snprintf(buf, len, "?");
	}
	return buf;
}

/* ---- the aggregation table: open addressing, linear probing, entries inline ---- */

static inline uint64_t hash_key(const uint64_t *k, unsigned kw)
{
	uint64_t h = 0x9e3779b97f4a7c15ull ^ kw;
	for (unsigned i = 0; i < kw; i++) {
		h = (h ^ k[i]) * 0xff51afd7ed558ccdull;
		h ^= h >> 32;
	}
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ull;
	h ^= h >> 33;
	return h;
}

/* Entry words: [0] flows (0: empty slot), [1] packets, [2] bytes, [3] first, [4] last,
 * then the key. Hash partitioning takes contiguous ranges of the hash (partition p of
 * np holds the keys whose top 32 hash bits h32 have h32 * np >> 32 == p), and a key's
 * home slot scales its place within the range to the table's size, so tables of any
 * size use their memory fully and walking the slots visits keys nearly in hash order,
 * partition after partition. */
struct htab {
	uint64_t *e;
	uint8_t *tag;           /* per slot: 0 empty, else 0x80 | 7 hash bits, so probing
				   reads a line of tags and an entry only when its tag fits */
	uint64_t cap, n, grow_at;
	uint64_t limit;         /* bytes e may take */
	unsigned ew, kw;
	uint32_t np;            /* partitions the hash space is cut into */
	_Atomic uint64_t *mem;  /* shared accounting of table bytes, and its peak */
	_Atomic uint64_t *peak;
	/* A first pass's table: the store's bytes the threads have claimed and are done
	 * with so far, and in all, to tell early that the keys will not fit (ht_grow).
	 * NULL otherwise. */
	_Atomic uint64_t *claimed, *done;
	uint64_t total;
};

static inline uint32_t h_part(uint64_t h, uint32_t np)
{
	return (uint32_t)(((h >> 32) * np) >> 32);
}

static inline uint8_t h_tag(uint64_t h)
{
	return (uint8_t)(0x80 | (h >> 8 & 0x7f));
}

/* Bytes a table of cap slots takes. */
static inline uint64_t slot_bytes(uint64_t cap, unsigned ew)
{
	return cap * ((uint64_t)ew * 8 + 1);
}

static inline uint64_t ht_home(const struct htab *t, uint64_t h)
{
	uint64_t frac = (uint32_t)((h >> 32) * t->np); /* place within the partition */
	return (frac * t->cap) >> 32;
}

static void mem_add(struct htab *t, int64_t d)
{
	if (!t->mem)
		return;
	uint64_t now = atomic_fetch_add(t->mem, (uint64_t)d) + (uint64_t)d;
	uint64_t p = atomic_load(t->peak);
	while (now > p && !atomic_compare_exchange_weak(t->peak, &p, now))
		;
}

static int ht_alloc(struct htab *t, uint64_t cap)
{
	if (cap < 16 || cap > UINT32_MAX || slot_bytes(cap, t->ew) > t->limit)
		return -ENOSPC;
	uint64_t *e = sys_big_zalloc(cap * t->ew * 8);
	uint8_t *tag = sys_big_zalloc(cap);
	if (!e || !tag) {
		sys_big_free(e, cap * t->ew * 8);
		sys_big_free(tag, cap);
		return -ENOMEM;
	}
	t->e = e;
	t->tag = tag;
	t->cap = cap;
	t->n = 0;
	t->grow_at = cap * LOAD_NUM / LOAD_DEN;
	mem_add(t, (int64_t)slot_bytes(cap, t->ew));
	return 0;
}

/* Sized for `want` keys (as far as limit allows), at least 64 slots. */
static int ht_init(struct htab *t, unsigned ew, unsigned kw, uint32_t np, uint64_t limit,
		   uint64_t want, _Atomic uint64_t *mem, _Atomic uint64_t *peak)
{
	uint64_t cap = want * LOAD_DEN / LOAD_NUM + 1, most = limit / ((uint64_t)ew * 8 + 1);
	memset(t, 0, sizeof(*t));
	t->ew = ew;
	t->kw = kw;
	t->np = np ? np : 1;
	t->limit = limit;
	t->mem = mem;
	t->peak = peak;
	if (cap < 64)
		cap = 64;
	if (cap > most)
		cap = most;
	return ht_alloc(t, cap);
}

/* Empties t, keeping its memory (a new round of the same partitioned scan). */
static void ht_clear(struct htab *t)
{
	memset(t->tag, 0, t->cap);
	t->n = 0;
}

static void ht_free(struct htab *t)
{
	if (t->e)
		mem_add(t, -(int64_t)slot_bytes(t->cap, t->ew));
	sys_big_free(t->e, t->cap * t->ew * 8);
	sys_big_free(t->tag, t->cap);
	t->e = NULL;
	t->tag = NULL;
	t->cap = t->n = 0;
}

static inline int key_eq(const uint64_t *a, const uint64_t *b, unsigned kw)
{
	for (unsigned i = 0; i < kw; i++)
		if (a[i] != b[i])
			return 0;
	return 1;
}

/* Adds counters c[0..4] under key k (hash h); the table must have room. */
static inline void ht_add(struct htab *t, const uint64_t *k, uint64_t h, const uint64_t *c)
{
	uint64_t i = ht_home(t, h);
	const uint8_t tg = h_tag(h);
	for (;;) {
		uint8_t x = t->tag[i];
		uint64_t *e = t->e + i * t->ew;
		if (!x) {
			t->tag[i] = tg;
			memcpy(e, c, NCTR * 8);
			memcpy(e + NCTR, k, t->kw * 8);
			t->n++;
			return;
		}
		if (x == tg && key_eq(e + NCTR, k, t->kw)) {
			e[0] += c[0];
			e[1] += c[1];
			e[2] += c[2];
			if (c[3] < e[3])
				e[3] = c[3];
			if (c[4] > e[4])
				e[4] = c[4];
			return;
		}
		if (++i == t->cap)
			i = 0;
	}
}

static const uint64_t *ht_find(const struct htab *t, const uint64_t *k, uint64_t h)
{
	uint64_t i = ht_home(t, h);
	const uint8_t tg = h_tag(h);
	for (;;) {
		uint8_t x = t->tag[i];
		const uint64_t *e = t->e + i * t->ew;
		if (!x)
			return NULL;
		if (x == tg && key_eq(e + NCTR, k, t->kw))
			return e;
		if (++i == t->cap)
			i = 0;
	}
}

/* Bytes of the store the threads have read, as far as keys go: the blocks they are
 * done with and, on average, half of those they are still in. */
static uint64_t read_so_far(_Atomic uint64_t *claimed, _Atomic uint64_t *done)
{
	uint64_t c = atomic_load_explicit(claimed, memory_order_relaxed);
	uint64_t d = atomic_load_explicit(done, memory_order_relaxed);
	return d + (c > d ? (c - d) / 2 : 0);
}

/* Doubles the table, or grows it as far as its limit allows with the old array still
 * there while keys move over. -ENOSPC when it cannot grow by an eighth, -ENOMEM. */
static int ht_grow(struct htab *t)
{
	struct htab old = *t;
	uint64_t cap = old.cap * 2, most = old.limit / ((uint64_t)old.ew * 8 + 1);
	if (t->claimed && t->total) {
		/* This table's keys so far, in proportion to what the threads read, over
		 * three times what it can ever hold: it will fill; growing and reading on to
		 * find that out would only cost time and fresh memory. */
		uint64_t d = read_so_far(t->claimed, t->done);
		double keys = (double)most * LOAD_NUM / LOAD_DEN;
		if (d > t->total / 64 && (double)t->n * (double)t->total / (double)d > 3.0 * keys)
			return -ENOSPC;
	}
	most = most > old.cap ? most - old.cap : 0;
	if (cap > most)
		cap = most;
	if (cap < old.cap + old.cap / 8)
		return -ENOSPC;
	int rc = ht_alloc(t, cap);
	if (rc < 0) {
		*t = old;
		return rc;
	}
	for (uint64_t i = 0; i < old.cap; i++) {
		const uint64_t *e = old.e + i * old.ew;
		if (old.tag[i])
			ht_add(t, e + NCTR, hash_key(e + NCTR, t->kw), e);
	}
	ht_free(&old);
	return 0;
}

/* ht_add() that first makes room. */
static inline int ht_put(struct htab *t, const uint64_t *k, uint64_t h, const uint64_t *c)
{
	if (t->n >= t->grow_at) {
		int rc = ht_grow(t);
		if (rc < 0)
			return rc;
	}
	ht_add(t, k, h, c);
	return 0;
}

/* Entries nearly in hash order: from just after an empty slot, around once. */
static uint64_t ht_walk_start(const struct htab *t)
{
	for (uint64_t i = 0; i < t->cap; i++)
		if (!t->tag[i])
			return i + 1 == t->cap ? 0 : i + 1;
	return 0;
}

/* ---- shared state of a run ---- */

struct qfile {
	_Atomic uint32_t next;  /* next block index to claim (one partition) */
	uint64_t size;          /* length when the query began: every pass reads this much */
	int fd;                 /* held open from the start, or -1: opened by path */
};

/* A stored flow kept for a listing, with its place in the store. */
struct fcand {
	struct flow_rec f;
	uint64_t pos;
};

struct qctx;

/* Counters of one address code in a block, as an entry's first NCTR words. */
struct cacc {
	uint64_t flows, packets, bytes, first, last;
};
_Static_assert(sizeof(struct cacc) == NCTR * 8, "cacc is an entry's counters");
#define ADDR_KW 3               /* key words of one address or network (17 bytes) */
_Static_assert(ADDR_KW + NCTR <= MAX_KW + 1, "codes_keys' keys and counters fit in keys");

/* Per thread. */
struct worker {
	struct qctx *q;
	pthread_t th;
	unsigned tid;
	int claim;              /* share out blocks with the other threads */
	int count_blocks;       /* count summary and block stats */
	int sum_pending;        /* the block's summary not counted yet (see codes_keys) */
	int count_files;        /* count file stats, warn */
	uint32_t part, np;      /* the hash partition this worker keeps, of np */
	int bounding;           /* this scan finds bounds (struct bound) */
	struct lowb *lb[QUERY_MAX_TABLES + 1];
	struct htab tab[QUERY_MAX_TABLES + 1];
	struct store_cols fc, ac, xc;
	uint32_t *sel, *idx;
	uint64_t *keys, *hash;
	struct cacc *cacc;      /* per address code, flows 0 between blocks; 4 KiB pages */
	size_t cacc_cap;        /* (few codes: few pages touched) */
	struct cacc *cagg;      /* the codes a block used, in key order (in keys' room) */
	uint32_t scap;          /* rows they have room for, all in scr */
	uint8_t *scr;
	size_t scr_len;
	struct query_summary sum;
	uint64_t matched;       /* this pass, for max_flows */
	uint64_t done_bytes;    /* this pass, of the blocks it reads all of (!claim) */
	struct fcand *cand;     /* QK_FLOWS candidates */
	uint64_t ncand;         /* ... or, streaming, the flows listed */
	int sink_failed;        /* listing failed (a row refused, a run not written): its
				   error ends the query, no damaged block */
	int rc;                 /* 0, -ENOSPC (a table is full), -errno */
};

/* Elements in sorted runs, one after the other, in an unlinked file under
 * rq->spill_dir: an ordered answer longer than memory holds. */
struct spill {
	int open, fd;
	unsigned nruns;
	uint64_t *run_len;      /* elements of each run */
	uint64_t total;
};

typedef int (*elem_cmp)(const void *a, const void *b, void *arg);

static void spill_free(struct spill *sp)
{
	if (sp->open)
		close(sp->fd);
	free(sp->run_len);
	memset(sp, 0, sizeof(*sp));
}

struct qctx {
	const struct query_req *rq;
	struct query_result *res;
	struct filt *filt;
	uint32_t fcols;         /* columns the filter and window read */
	uint32_t ftuple;        /* ... of them, what may come as the tuple dictionary */
	uint32_t fport;         /* ... and as port codes */
	uint32_t acols;         /* columns the tables read */
	uint32_t bcols;         /* ... in a bounding scan: keys and the orders' values */
	struct store_list files;
	struct qfile *fs;
	uint64_t held;          /* of held_files: how many of fs[] may hold a descriptor */
	uint64_t total_bytes;
	_Atomic uint64_t claimed_bytes;  /* of the blocks claimed (shared scans) */
	_Atomic uint64_t finished_bytes; /* ... and done with */
	unsigned threads;
	uint64_t mem;
	unsigned nspec;
	struct tspec spec[QUERY_MAX_TABLES + 1];
	int flows_table;        /* user table listing flows, or -1 */
	uint64_t flows_limit;
	uint8_t flows_order;
	/* A listing in store order from one thread goes out as its blocks are read (st):
	 * memory does not grow with its length. */
	int flows_stream;
	int flows_streamed;     /* rows of it went out */
	struct runstate *st;
	/* An ordered listing longer than memory holds (one thread): its candidates,
	 * cand_cap at a time, go to sorted runs (rq->spill_dir), merged at the end. */
	int flows_spill;
	uint64_t cand_cap;
	struct spill *fspill;
	struct fcand fworst;    /* the last in order of all written: once flows_limit are
				   written, a flow after it cannot be listed */
	pthread_mutex_t lock;
	_Atomic int stop;
	_Atomic uint64_t mem_now, mem_peak;
	uint64_t tmem;          /* of mem, what tables may take */
	uint64_t bucket_ms;
	int v4keys;             /* compact IPv4 addresses in keys (EWIDE) */
};

static void qwarn(struct qctx *q, const char *path, int err, const char *what)
{
	if (!q->rq->warn)
		return;
	pthread_mutex_lock(&q->lock);
	q->rq->warn(path, err, what, q->rq->warn_arg);
	pthread_mutex_unlock(&q->lock);
}

/* ---- the block scan ---- */

static int zone_in_window(const struct query_req *rq, const struct store_zone *z)
{
	const struct store_window *w = &rq->win;
	if (!rq->has_window)
		return 1;
	if (z->first_min > z->first_max)
		return 0;
	switch (rq->win_mode) {
	case QUERY_WIN_OVERLAP:
		return store_zone_overlaps(z, w);
	case QUERY_WIN_FIRST:
		return z->first_max >= w->from_ms && z->first_min <= w->to_ms;
	default:
		return z->first_max >= w->from_ms && z->last_min <= w->to_ms;
	}
}

static uint32_t window_sel(const struct query_req *rq, const struct store_cols *c,
			   uint32_t *sel, uint32_t n)
{
	const uint64_t from = rq->win.from_ms, to = rq->win.to_ms;
	const uint64_t *f = c->first_ms, *l = c->last_ms;
	uint32_t k = 0;
	for (uint32_t i = 0; i < n; i++) {
		uint32_t j = sel[i];
		int in;
		if (rq->win_mode == QUERY_WIN_OVERLAP)
			in = f[j] <= to && l[j] >= from;
		else if (rq->win_mode == QUERY_WIN_FIRST)
			in = f[j] >= from && f[j] <= to;
		else
			in = f[j] >= from && l[j] <= to;
		sel[k] = j;
		k += (uint32_t)in;
	}
	return k;
}

/* The selection, key and hash arrays for n rows, in one allocation (sys_big_zalloc). */
static int scratch(struct worker *w, uint32_t n)
{
	size_t a4 = ((size_t)n * 4 + 63) & ~(size_t)63, a8 = 2 * a4;

	if (n <= w->scap)
		return 0;
	sys_big_free(w->scr, w->scr_len);
	w->scap = 0;
	w->scr_len = 2 * a4 + (MAX_KW + 1) * a8;
	if (!(w->scr = sys_big_zalloc(w->scr_len))) {
		w->scr_len = 0;
		return -ENOMEM;
	}
	w->sel = (uint32_t *)w->scr;
	w->idx = (uint32_t *)(w->scr + a4);
	w->hash = (uint64_t *)(w->scr + 2 * a4);
	w->keys = (uint64_t *)(w->scr + 2 * a4 + a8);
	/* codes_keys: keys of at most ADDR_KW words, then the counters (NCTR words each) */
	w->cagg = (struct cacc *)(w->keys + (size_t)ADDR_KW * n);
	w->scap = n;
	return 0;
}

/* The columns of a and b in one view (pointers only; nothing copied). */
static void cols_view(struct store_cols *v, const struct store_cols *a,
		      const struct store_cols *b)
{
	*v = *b;
#define TAKE(f, c) if (a->mask & COL(c)) v->f = a->f
	TAKE(src, SRC); TAKE(dst, DST); TAKE(nexthop, NEXTHOP); TAKE(exporter, EXPORTER);
	TAKE(packets, PACKETS); TAKE(bytes, BYTES); TAKE(first_ms, FIRST); TAKE(last_ms, LAST);
	TAKE(in_if, IN_IF); TAKE(out_if, OUT_IF); TAKE(src_as, SRC_AS); TAKE(dst_as, DST_AS);
	TAKE(domain_id, DOMAIN_ID); TAKE(sampling, SAMPLING); TAKE(sport, SPORT);
	TAKE(dport, DPORT); TAKE(vlan, VLAN); TAKE(proto, PROTO); TAKE(tos, TOS);
	TAKE(tcp_flags, TCP_FLAGS); TAKE(ipver, IPVER); TAKE(src_mask, SRC_MASK);
	TAKE(dst_mask, DST_MASK); TAKE(end_reason, END_REASON);
#undef TAKE
	v->mask = a->mask | b->mask;
}

/* Lower bound side of struct bound: up to N distinct keys with partial sums (each a
 * lower bound of its key's total). */
struct lowb {
	uint64_t *e;            /* n entries of 1 + kw words: sum, key */
	uint64_t n, cap;
	uint64_t min;           /* smallest sum when full */
	unsigned kw;
};

static void lowb_min(struct lowb *l)
{
	uint64_t m = UINT64_MAX;
	for (uint64_t i = 0; i < l->n; i++)
		if (l->e[i * (1 + l->kw)] < m)
			m = l->e[i * (1 + l->kw)];
	l->min = m;
}

/* A flow adding v to key k. Only flows that beat the smallest sum are looked at: the
 * others can only raise bounds that do not matter (or that we give up: still bounds). */
static void lowb_add(struct lowb *l, const uint64_t *k, uint64_t v)
{
	const unsigned w = 1 + l->kw;
	if (l->n == l->cap && v <= l->min)
		return;
	for (uint64_t i = 0; i < l->n; i++) {
		uint64_t *e = l->e + i * w;
		if (key_eq(e + 1, k, l->kw)) {
			int was_min = e[0] == l->min;
			e[0] += v;
			if (was_min && l->n == l->cap)
				lowb_min(l);
			return;
		}
	}
	if (l->n < l->cap) {
		uint64_t *e = l->e + l->n++ * w;
		e[0] = v;
		memcpy(e + 1, k, l->kw * 8);
		if (l->n == l->cap)
			lowb_min(l);
		return;
	}
	for (uint64_t i = 0; i < l->n; i++) {
		uint64_t *e = l->e + i * w;
		if (e[0] == l->min) {
			e[0] = v;
			memcpy(e + 1, k, l->kw * 8);
			break;
		}
	}
	lowb_min(l);
}

static inline uint64_t order_value(int order, const struct store_cols *c, uint32_t r)
{
	return order == QO_BYTES ? c->bytes[r] : order == QO_PACKETS ? c->packets[r] : 1;
}

/* The bounding scan for spec s over the nk keys already built in w->keys. */
static void bound_block(struct worker *w, unsigned s, const struct store_cols *c, uint32_t nk,
			const struct cacc *agg)
{
	const struct tspec *ts = &w->q->spec[s];
	struct bound *b = ts->bnd;
	const unsigned kw = ts->kw;
	for (uint32_t i = 0; i < nk; i++)
		w->hash[i] = hash_key(w->keys + (size_t)i * kw, kw);
	for (uint32_t i = 0; i < nk; i++) {
		if (i + PREFETCH_FAR < nk)
			__builtin_prefetch(&b->b[bound_idx(w->hash[i + PREFETCH_FAR], b->nb)], 1);
		uint64_t v = agg ? agg[i].bytes : order_value(ts->order, c, w->sel[i]);
		atomic_fetch_add_explicit(&b->b[bound_idx(w->hash[i], b->nb)], v,
					  memory_order_relaxed);
		lowb_add(w->lb[s], w->keys + (size_t)i * kw, v);
	}
}

/* A table keyed on one address (or network of a fixed mask) and nothing else can count
 * a block's flows per dictionary code of the address column, then add one entry per
 * code used (codes of one network add up in the table): a few instructions a flow
 * instead of a key, a hash and a table probe. */
static inline int code_key(const struct tspec *ts)
{
	const struct kfield *kf = &ts->f[0];
	unsigned f = kf->field;
	if (ts->nf != 1 || ts->bucket)
		return 0;
	if (f == QF_SRCNET || f == QF_DSTNET)
		return kf->mask4 != QUERY_MASK_FLOW;    /* else each flow's own mask */
	return f == QF_SRCIP || f == QF_DSTIP || f == QF_IP;
}

/* The address columns every table reading them keys on alone (see code_key). */
static uint32_t code_cols(const struct qctx *q)
{
	uint32_t cols = COL(SRC) | COL(DST), no = 0;
	for (unsigned s = 0; s < q->nspec; s++)
		if (!code_key(&q->spec[s]))
			no |= q->spec[s].cols;
	return cols & ~no;
}

/* The counter and time columns a block may hand out packed (store_cols.packed): those
 * of a scan whose every table counts by address code (codes_keys reads them packed);
 * none for a listing or a bounding scan. With one table of one address column, its
 * codes may come packed too (codes_keys checks them before any reaches the table). */
static uint32_t packed_cols(const struct worker *w)
{
	const struct qctx *q = w->q;
	if (w->bounding || q->flows_table >= 0 || !q->nspec)
		return 0;
	for (unsigned s = 0; s < q->nspec; s++)
		if (!code_key(&q->spec[s]))
			return 0;
	return COL(PACKETS) | COL(BYTES) | COL(FIRST) | COL(LAST) |
	       (q->nspec == 1 && !q->spec[0].both ? STORE_CODES_PACKED : 0);
}

/* 1 if c holds packed columns or codes. */
static inline int has_packed(const struct store_cols *c)
{
	return c->packed || ((c->codes & COL(SRC)) && !c->code[0]) ||
	       ((c->codes & COL(DST)) && !c->code[1]);
}

/* Side side's address column of spec ts as codes in c: 0 src, 1 dst; -1 when c has
 * the addresses themselves. */
static inline int code_side(const struct tspec *ts, const struct store_cols *c, int side)
{
	int k = ts->f[0].field == QF_DSTIP || ts->f[0].field == QF_DSTNET || side;
	if (!code_key(ts))
		return -1;
	return c->codes & (k ? COL(DST) : COL(SRC)) ? k : -1;
}

/* Adds a block's totals (first: its earliest first seen, last: its latest last) to s. */
static void sum_add(struct query_summary *s, uint64_t flows, uint64_t pk, uint64_t by,
		    uint64_t first, uint64_t last)
{
	if (!flows)
		return;
	if (!s->flows || first < s->first_ms)
		s->first_ms = first;
	if (last > s->last_ms)
		s->last_ms = last;
	s->flows += flows;
	s->packets += pk;
	s->bytes += by;
}

/* 1 if codes_keys counts the n selected records of c by code k into a zeroed array of
 * every code (most codes are used), 0 if it lists the codes as they come. */
static inline int codes_dense(const struct worker *w, const struct store_cols *c, uint32_t n,
			      int k)
{
	return !w->bounding && (uint64_t)n * 4 >= c->nd[k];
}

/* The used entries of acc[0 .. nd) (first kept as ~first) into w->cagg in code order,
 * their codes into w->idx (*nt of them), acc zeroed again. */
static void codes_collect(struct worker *w, struct cacc *acc, uint32_t nd, uint32_t *nt)
{
	uint32_t m = 0;
	for (uint32_t x = 0; x < nd; x++) {
		if (!acc[x].flows)
			continue;
		w->idx[m] = x;
		w->cagg[m] = acc[x];
		w->cagg[m++].first = ~acc[x].first;
		memset(&acc[x], 0, sizeof(acc[x]));
	}
	*nt = m;
}

/* Counts the n selected records per code of address column k into w->cagg, one key
 * per code used in w->keys (put_field over the dictionary); *nk: how many. A bounding
 * scan has only the order's column: its sum goes in bytes. Returns 0, EWIDE (as
 * put_field), or -EPROTO for a packed code past the dictionary (nothing counted). */
static int codes_keys(struct worker *w, const struct tspec *ts, const struct store_cols *c,
		      uint32_t n, int k, int side, uint32_t *nk)
{
	const uint64_t *code = c->code[k];
	struct cacc *acc;
	const size_t need = 2 * (size_t)c->n > c->nd[k] ? 2 * (size_t)c->n : c->nd[k];
	struct store_cols d;
	const size_t stride = (size_t)ts->kw * 8;
	uint32_t nt = 0;

	if (w->cacc_cap < need) {       /* a mirrored block's 2 n codes, any packed code */
		free(w->cacc);
		w->cacc_cap = 0;
		if (!(w->cacc = calloc(need, sizeof(*w->cacc))))
			return -ENOMEM;
		w->cacc_cap = need;
	}
	acc = w->cacc;       /* all zeros between blocks */
	if (has_packed(c)) {
		/* dense (see codes_dense), codes and counters read where they are stored:
		 * a selected few of a block's records cost less than unpacking them all */
		struct store_packed cd, pk, by, fs, ls;
		const uint64_t ld = c->lastdiff ? ~0ULL : 0;
		store_cols_code_view(c, k, &cd);
		store_cols_packed_view(c, STORE_COL_PACKETS, &pk);
		store_cols_packed_view(c, STORE_COL_BYTES, &by);
		store_cols_packed_view(c, STORE_COL_FIRST, &fs);
		store_cols_packed_view(c, STORE_COL_LAST, &ls);
		for (uint32_t i = 0; i < n; i++) {
			uint32_t j = w->sel[i];
			struct cacc *e = &acc[store_packed_get(&cd, j)];       /* below 2 n */
			uint64_t l = store_packed_get(&ls, j), f = store_packed_get(&fs, j);
			uint64_t nf = ~(f ^ (ld & (f ^ (l - f))));      /* lastdiff: l - f */
			e->flows++;
			e->packets += store_packed_get(&pk, j);
			e->bytes += store_packed_get(&by, j);
			e->first = nf > e->first ? nf : e->first;
			e->last = l > e->last ? l : e->last;
		}
		uint64_t past = 0;      /* packed codes: none may pass the dictionary */
		for (uint64_t x = c->nd[k]; !code && x <= cd.base + cd.mask; x++) {
			past |= acc[x].flows;
			memset(&acc[x], 0, sizeof(acc[x]));
		}
		codes_collect(w, acc, c->nd[k], &nt);
		if (past)
			return -EPROTO;
	} else if (codes_dense(w, c, n, k)) {
		/* most codes are used: count without a branch on whether a code is new
		 * (it is for an unpredictable share of the records), then collect the
		 * used ones in code order. first is kept as ~first: a zero entry is empty. */
		for (uint32_t i = 0; i < n; i++) {
			uint32_t j = w->sel[i];
			struct cacc *e = &acc[code[j]];
			uint64_t nf = ~c->first_ms[j], l = c->last_ms[j];
			e->flows++;
			e->packets += c->packets[j];
			e->bytes += c->bytes[j];
			e->first = nf > e->first ? nf : e->first;
			e->last = l > e->last ? l : e->last;
		}
		codes_collect(w, acc, c->nd[k], &nt);
	} else {
		for (uint32_t i = 0; i < n; i++) {
			uint32_t j = w->sel[i];
			uint64_t x = code[j];
			struct cacc *e = &acc[x];
			if (!e->flows) {
				w->idx[nt++] = (uint32_t)x;
				e->first = UINT64_MAX;
			}
			e->flows++;
			if (w->bounding) {
				e->bytes += order_value(ts->order, c, j);
				continue;
			}
			e->packets += c->packets[j];
			e->bytes += c->bytes[j];
			e->first = c->first_ms[j] < e->first ? c->first_ms[j] : e->first;
			e->last = c->last_ms[j] > e->last ? c->last_ms[j] : e->last;
		}
		for (uint32_t i = 0; i < nt; i++) {
			w->cagg[i] = acc[w->idx[i]];
			memset(&acc[w->idx[i]], 0, sizeof(acc[0]));
		}
	}
	if (w->sum_pending && !w->bounding) {
		/* the block's summary from its codes' sums: one pass over the records less */
		uint64_t pk = 0, by = 0, first = UINT64_MAX, last = 0;
		for (uint32_t i = 0; i < nt; i++) {
			const struct cacc *e = &w->cagg[i];
			pk += e->packets;
			by += e->bytes;
			first = e->first < first ? e->first : first;
			last = e->last > last ? e->last : last;
		}
		sum_add(&w->sum, n, pk, by, first, last);
		w->sum_pending = 0;
	}
	/* the dictionary as the column the key reads (a fixed-mask net reads no mask column) */
	memset(&d, 0, sizeof(d));
	d.src = d.dst = (uint8_t (*)[16])c->dict[k];
	memset(w->keys, 0, nt * stride);
	*nk = nt;
	return put_field(&ts->f[0], &d, w->idx, nt, side, (uint8_t *)w->keys, stride);
}

/* Aggregates the n selected records of c into w's table for spec s. */
static int agg_block(struct worker *w, unsigned s, const struct store_cols *c, uint32_t n)
{
	const struct tspec *ts = &w->q->spec[s];
	struct htab *t = &w->tab[s];
	const unsigned kw = ts->kw;
	const size_t stride = (size_t)kw * 8;
	uint8_t *kb = (uint8_t *)w->keys;

	if (w->bounding && !ts->bnd)
		return 0;
	for (int side = 0; side <= ts->both; side++) {
		const struct cacc *agg = NULL;
		uint32_t m = 0, nk = n;
		int k = code_side(ts, c, side);
		if (k >= 0) {
			int rc = codes_keys(w, ts, c, n, k, side, &nk);
			if (rc)
				return rc;
			agg = w->cagg;
		} else {
			memset(kb, 0, n * stride);
			for (unsigned f = 0; f < ts->nf; f++) {
				int rc = put_field(&ts->f[f], c, w->sel, n, side, kb, stride);
				if (rc < 0)
					return rc;
			}
			if (ts->bucket) {
				uint64_t bms = w->q->bucket_ms;
				for (uint32_t i = 0; i < n; i++)
					st_be64(kb + i * stride + ts->kw_pre * 8,
						c->first_ms[w->sel[i]] / bms);
			}
		}
		if (w->bounding) {
			bound_block(w, s, c, nk, agg);
			continue;
		}
		/* hash, and keep what belongs to this partition, the only-set, the bounds
		 * (keys stay where they were built, at idx[]) */
		for (uint32_t i = 0; i < nk; i++) {
			const uint64_t *kp = w->keys + (size_t)i * kw;
			uint64_t h = hash_key(kp, kw);
			if (w->np > 1 && h_part(h, w->np) != w->part)
				continue;
			if (ts->only && !ht_find(ts->only, kp, hash_key(kp, ts->kw_pre)))
				continue;
			w->hash[m] = h;
			w->idx[m++] = i;
		}
		if (ts->bnd) {
			const struct bound *b = ts->bnd;
			uint32_t j = 0;
			for (uint32_t i = 0; i < m; i++) {
				if (i + PREFETCH_FAR < m)
					__builtin_prefetch(&b->b[bound_idx(w->hash[i + PREFETCH_FAR],
									 b->nb)]);
				uint64_t sum = atomic_load_explicit(&b->b[bound_idx(w->hash[i], b->nb)],
								    memory_order_relaxed);
				w->hash[j] = w->hash[i];
				w->idx[j] = w->idx[i];
				j += sum >= b->thr;
			}
			m = j;
		}
		for (uint32_t i = 0; i < m; i++) {
			if (i + PREFETCH < m) {
				uint64_t hm = ht_home(t, w->hash[i + PREFETCH]);
				__builtin_prefetch(t->tag + hm);
				__builtin_prefetch(t->e + hm * t->ew);
			}
			uint64_t row[NCTR];
			const uint64_t *ctr = row;
			if (agg) {
				ctr = &agg[w->idx[i]].flows;
			} else {
				uint32_t r = w->sel[w->idx[i]];
				row[0] = 1;
				row[1] = c->packets[r];
				row[2] = c->bytes[r];
				row[3] = c->first_ms[r];
				row[4] = c->last_ms[r];
			}
			int rc = ht_put(t, w->keys + (size_t)w->idx[i] * kw, w->hash[i], ctr);
			if (rc < 0)
				return rc;
		}
	}
	return 0;
}

static int flow_cmp(const struct fcand *a, const struct fcand *b, int order);

/* Keeps candidates for a flow listing: the first ones in store order, or the best by
 * order (a heap with the worst on top). */
static void heap_down(struct fcand *h, uint64_t n, uint64_t i, int order)
{
	for (;;) {
		uint64_t l = 2 * i + 1, r = l + 1, m = i;
		if (l < n && flow_cmp(&h[l], &h[m], order) > 0)
			m = l;
		if (r < n && flow_cmp(&h[r], &h[m], order) > 0)
			m = r;
		if (m == i)
			return;
		struct fcand x = h[i];
		h[i] = h[m];
		h[m] = x;
		i = m;
	}
}

static void heap_up(struct fcand *h, uint64_t i, int order)
{
	while (i) {
		uint64_t p = (i - 1) / 2;
		if (flow_cmp(&h[i], &h[p], order) <= 0)
			return;
		struct fcand x = h[i];
		h[i] = h[p];
		h[p] = x;
		i = p;
	}
}

struct runstate;
static int deliver(struct runstate *st, unsigned ti, struct query_row *r);

/* Streams the block's selected flows (q->flows_stream) until the listing's limit.
 * Returns 0, a decoding error, or the delivery's error with w->sink_failed set. */
static int list_stream(struct worker *w, struct store_reader *r, uint32_t n)
{
	struct qctx *q = w->q;
	int rc;

	if (w->ncand >= q->flows_limit)
		return 0;
	if ((rc = store_reader_decode(r, STORE_COLS_ALL, &w->xc)) < 0)
		return rc;
	for (uint32_t i = 0; i < n && w->ncand < q->flows_limit; i++) {
		struct query_row row;
		memset(&row, 0, sizeof(row));
		store_cols_get(&w->xc, w->sel[i], &row.f);
		row.flows = 1;
		q->flows_streamed = 1;
		if ((rc = deliver(q->st, (unsigned)q->flows_table, &row)) < 0) {
			w->sink_failed = 1;
			return rc;
		}
		w->ncand++;
	}
	return 0;
}

static int spill_add_run(struct qctx *q, struct spill *sp, const void *v, uint64_t n,
			 size_t esz, elem_cmp cmp, void *arg, void *last);
static int flow_cmp_r(const void *a, const void *b, void *arg);

/* Every selected flow of the block is a candidate (q->flows_spill): a full buffer
 * goes out as a sorted run. Returns 0, a decoding error, or the spill's error with
 * w->sink_failed set. */
static int list_spill(struct worker *w, struct store_reader *r, uint32_t n, uint64_t pos0)
{
	struct qctx *q = w->q;
	int order = q->flows_order;
	int rc = store_reader_decode(r, STORE_COLS_ALL, &w->xc);
	for (uint32_t i = 0; i < n && rc == 0; i++) {
		struct fcand *x = &w->cand[w->ncand];
		x->pos = pos0 | w->sel[i];
		store_cols_get(&w->xc, w->sel[i], &x->f);
		/* flows_limit written, all before fworst: this one cannot make the list */
		if (q->fspill->total >= q->flows_limit && flow_cmp(x, &q->fworst, order) > 0)
			continue;
		if (++w->ncand == q->cand_cap) {
			struct fcand last;
			int first = !q->fspill->total;
			rc = spill_add_run(q, q->fspill, w->cand, w->ncand, sizeof(*x), flow_cmp_r,
					   &order, &last);
			if (rc == 0 && (first || flow_cmp(&last, &q->fworst, order) > 0))
				q->fworst = last;
			w->ncand = 0;
			w->sink_failed = rc < 0;
		}
	}
	return rc;
}

static int list_block(struct worker *w, struct store_reader *r, const struct store_cols *c,
		      uint32_t n, uint64_t pos0)
{
	struct qctx *q = w->q;
	uint64_t lim = q->flows_limit;
	int order = q->flows_order, decoded = 0;

	if (q->flows_stream)
		return list_stream(w, r, n);
	if (q->flows_spill)
		return list_spill(w, r, n, pos0);
	if (order == QO_NONE && w->ncand >= lim)
		return 0;
	for (uint32_t i = 0; i < n; i++) {
		uint32_t j = w->sel[i];
		struct fcand x;
		if (order == QO_NONE && w->ncand >= lim)
			break;
		x.pos = pos0 | j;
		x.f.packets = c->packets[j];
		x.f.bytes = c->bytes[j];
		x.f.first_ms = c->first_ms[j];
		x.f.last_ms = c->last_ms[j];
		if (w->ncand >= lim && flow_cmp(&x, &w->cand[0], order) >= 0)
			continue; /* not better than the worst kept */
		if (!decoded) {
			int rc = store_reader_decode(r, STORE_COLS_ALL, &w->xc);
			if (rc < 0)
				return rc;
			decoded = 1;
		}
		store_cols_get(&w->xc, j, &x.f);
		if (order == QO_NONE) {
			w->cand[w->ncand++] = x;
		} else if (w->ncand < lim) {
			w->cand[w->ncand] = x;
			heap_up(w->cand, w->ncand++, order);
		} else {
			w->cand[0] = x;
			heap_down(w->cand, w->ncand, 0, order);
		}
	}
	return 0;
}

static void sum_block(struct query_summary *s, const struct store_cols *c, const uint32_t *sel,
		      uint32_t n)
{
	uint64_t pk = 0, by = 0, first = UINT64_MAX, last = 0;
	for (uint32_t i = 0; i < n; i++) {
		uint32_t j = sel[i];
		pk += c->packets[j];
		by += c->bytes[j];
		if (c->first_ms[j] < first)
			first = c->first_ms[j];
		if (c->last_ms[j] > last)
			last = c->last_ms[j];
	}
	sum_add(s, n, pk, by, first, last);
}

/* 1 if every table counts the n selected records of c by address code densely, the
 * one way that reads packed columns (see packed_cols). */
static int packed_fit(const struct worker *w, const struct store_cols *c, uint32_t n)
{
	const struct qctx *q = w->q;
	for (unsigned s = 0; s < q->nspec; s++) {
		const struct tspec *ts = &q->spec[s];
		for (int side = 0; side <= ts->both; side++) {
			int k = code_side(ts, c, side);
			if (k < 0 || !codes_dense(w, c, n, k))
				return 0;
		}
	}
	return 1;
}

/* One block: zone maps, filter columns, selection, then the rest. Returns 0, 1 when
 * max_flows is reached, or a negative errno (-ENOSPC: a table is full). */
static int scan_block(struct worker *w, struct store_reader *r, const struct store_block_info *bi,
		      uint64_t pos0, uint32_t *bad)
{
	struct qctx *q = w->q;
	const struct query_req *rq = q->rq;
	struct store_cols v;
	uint32_t n = bi->nrec;
	int rc, done = 0;

	if (!zone_in_window(rq, &bi->zone) || (q->filt && !filt_zone_may_match(q->filt, &bi->zone))) {
		if (w->count_blocks)
			w->sum.blocks_skipped++;
		return 0;
	}
	if ((rc = scratch(w, n)) < 0)
		return rc;
	if (q->fcols) {
		rc = store_reader_decode_codes(r, q->fcols, q->ftuple | q->fport, &w->fc);
		if (rc < 0)
			goto bad;
	} else {
		w->fc.n = n;
		w->fc.mask = 0;
	}
	if (w->count_blocks) {
		w->sum.blocks++;
		w->sum.flows_scanned += n;
	}
	if (q->filt) {
		n = filt_eval(q->filt, &w->fc, w->sel);
	} else {
		for (uint32_t i = 0; i < n; i++)
			w->sel[i] = i;
	}
	if (rq->has_window && n)
		n = window_sel(rq, &w->fc, w->sel, n);
	if (rq->max_flows && n) {
		if (w->matched + n >= rq->max_flows) {
			n = (uint32_t)(rq->max_flows - w->matched);
			done = 1;
		}
		w->matched += n;
	}
	if (!n)
		return done;
	uint32_t need = w->bounding ? q->bcols : q->acols;
	if (need & ~w->fc.mask) {
		rc = store_reader_decode_codes(r, need & ~w->fc.mask,
					       code_cols(q) | packed_cols(w), &w->ac);
		if (rc < 0)
			goto bad;
	} else {
		w->ac.mask = 0;
		w->ac.codes = 0;
		w->ac.packed = 0;
	}
	cols_view(&v, &w->fc, &w->ac);
	if (has_packed(&v) && !packed_fit(w, &v, n) && (rc = store_cols_unpack(&v)) < 0)
		goto bad;
	if (w->count_blocks && q->flows_table >= 0 && (rc = list_block(w, r, &v, n, pos0)) < 0) {
		if (w->sink_failed)
			return rc;
		goto bad;
	}
	w->sum_pending = w->count_blocks;
	for (unsigned s = 0; s < q->nspec; s++) {
		if ((rc = agg_block(w, s, &v, n)) == -EPROTO)
			goto bad;       /* a packed code past its dictionary, none counted */
		if (rc < 0)
			return rc;
	}
	if (w->sum_pending) {
		sum_block(&w->sum, &v, w->sel, n);
		w->sum_pending = 0;
	}
	return done;
bad:
	if (rc == -ENOMEM)
		return rc;
	(*bad)++;
	if (w->count_blocks) {
		char what[80];
		snprintf(what, sizeof(what), "damaged block at offset %llu skipped",
			 (unsigned long long)bi->off);
		qwarn(q, r ? q->files.v[pos0 >> (POS_BLOCK_BITS + POS_REC_BITS)].path : "", rc,
		      what);
	}
	return 0;
}

static uint64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* File i of the query as it was when the query began (NULL with errno), in spare (a
 * reader done with, or NULL; see store_reader_reopen). */
static struct store_reader *qfile_open(struct qctx *q, size_t i, struct store_reader *spare)
{
	struct store_reader *r = q->fs[i].fd >= 0 ? store_reader_reopen_fd(spare, q->fs[i].fd) :
			       store_reader_reopen(spare, q->files.v[i].path);
	if (r)
		store_reader_set_limit(r, q->fs[i].size);
	return r;
}

static void *worker_run(void *arg)
{
	struct worker *w = arg;
	struct qctx *q = w->q;
	const struct query_req *rq = q->rq;
	struct store_reader *r = NULL;  /* one reader, its buffers reused file after file */
	int rc = 0;

	for (size_t fi = 0; fi < q->files.n && rc == 0; fi++) {
		const char *path = q->files.v[fi].path;
		struct store_block_info bi;
		struct store_zone z;
		uint32_t bidx = 0, bad = 0;
		int nrc;

		if (atomic_load(&q->stop))
			break;
		r = qfile_open(q, fi, r);
		if (!r) {
			if (w->count_files) {
				w->sum.bad_files++;
				qwarn(q, path, -errno, "file skipped");
			}
			continue;
		}
		if (rq->has_window && store_reader_file_zone(r, &z) == 1 && !zone_in_window(rq, &z)) {
			if (w->count_files)
				w->sum.files_skipped++;
			continue;
		}
		if (w->count_files)
			w->sum.files++;
		while ((nrc = store_reader_next(r, &bi)) > 0) {
			uint32_t i = bidx++;
			if (w->claim) {
				uint32_t c = atomic_load(&q->fs[fi].next);
				if (c != i || !atomic_compare_exchange_strong(&q->fs[fi].next, &c, i + 1))
					continue;
				atomic_fetch_add(&q->claimed_bytes, bi.disk_bytes);
			} else {
				w->done_bytes += bi.disk_bytes;
			}
			if (atomic_load(&q->stop)) {
				rc = -ECANCELED;
				break;
			}
			if (rq->deadline_ms && mono_ms() > rq->deadline_ms) {
				rc = -ETIMEDOUT;
				break;
			}
			uint64_t pos = (uint64_t)fi << (POS_BLOCK_BITS + POS_REC_BITS) |
				       (uint64_t)i << POS_REC_BITS;
			rc = scan_block(w, r, &bi, pos, &bad);
			if (rc == 0 && w->claim)
				atomic_fetch_add(&q->finished_bytes, bi.disk_bytes);
			if (rc == 1) {
				w->sum.limited = 1;
				rc = 0;
				atomic_store(&q->stop, 2);
				break;
			}
			if (rc < 0)
				break;
		}
		if (nrc < 0 && w->count_files)
			qwarn(q, path, nrc, "read error");
		const struct store_read_stats *rs = store_reader_stats(r);
		if (w->count_blocks)
			w->sum.bad_blocks += bad;
		if (w->count_files) {
			/* damage found in headers: every thread saw it, this one counts it */
			uint64_t hdr_bad = rs->bad_blocks > bad ? rs->bad_blocks - bad : 0;
			w->sum.bad_blocks += hdr_bad;
			w->sum.tail_bytes += rs->tail_bytes;
			if (hdr_bad) {
				char what[64];
				snprintf(what, sizeof(what), "%llu damaged block(s) skipped",
					 (unsigned long long)hdr_bad);
				qwarn(q, path, rs->bad_hash ? -EBADMSG : -EPROTO, what);
			}
		}
	}
	store_reader_close(r);
	if (rc == -ECANCELED && !w->sink_failed)
		rc = 0;         /* another thread stopped the scan: its error tells */
	if (rc < 0 && rc != -ENOSPC)
		atomic_store(&q->stop, 1);
	if (rc == -ENOSPC)
		atomic_store(&q->stop, 1);
	w->rc = rc;
	return NULL;
}

/* ---- ordering ---- */

struct ordctx {
	const struct tspec *ts;
	int order;
};

static uint64_t metric(const uint64_t *e, int order)
{
	uint64_t bps, pps, bpp;
	switch (order) {
	case QO_FLOWS:
		return e[0];
	case QO_PACKETS:
		return e[1];
	case QO_BYTES:
		return e[2];
	case QO_TSTART:
		return e[3];
	case QO_TEND:
		return e[4];
	case QO_DURATION:
		return e[4] - e[3];
	default:
		query_rates(e[1], e[2], e[4] - e[3], &bps, &pps, &bpp);
		return order == QO_BPS ? bps : order == QO_PPS ? pps : bpp;
	}
}

static int ascending(int order)
{
	return order == QO_TSTART || order == QO_TEND;
}

/* <0 when entry a comes before b: by the order, then by key. */
static int ent_cmp(const uint64_t *a, const uint64_t *b, const struct tspec *ts, int order)
{
	if (order != QO_NONE) {
		uint64_t x = metric(a, order), y = metric(b, order);
		if (x != y)
			return (x < y) == ascending(order) ? -1 : 1;
	} else {
		uint64_t x = hash_key(a + NCTR, ts->kw), y = hash_key(b + NCTR, ts->kw);
		if (x != y)
			return x < y ? -1 : 1;
	}
	return memcmp(a + NCTR, b + NCTR, (size_t)ts->kw * 8);
}

static int ent_cmp_r(const void *a, const void *b, void *arg)
{
	const struct ordctx *o = arg;
	return ent_cmp(*(const uint64_t *const *)a, *(const uint64_t *const *)b, o->ts, o->order);
}

static int flow_cmp(const struct fcand *a, const struct fcand *b, int order)
{
	if (order != QO_NONE) {
		uint64_t x[NCTR] = { 1, a->f.packets, a->f.bytes, a->f.first_ms, a->f.last_ms };
		uint64_t y[NCTR] = { 1, b->f.packets, b->f.bytes, b->f.first_ms, b->f.last_ms };
		uint64_t mx = metric(x, order), my = metric(y, order);
		if (mx != my)
			return (mx < my) == ascending(order) ? -1 : 1;
	}
	return a->pos < b->pos ? -1 : a->pos > b->pos;
}

static int flow_cmp_r(const void *a, const void *b, void *arg)
{
	return flow_cmp(a, b, *(const int *)arg);
}

/* ---- delivering rows ---- */

/* What one spec produced while passes ran. */
struct tout {
	uint64_t *heap;         /* copies of entries: the best `limit` (worst on top), or
				   every entry of a kept-whole spec over several partitions */
	uint64_t nheap, cap;
	uint64_t *keep;         /* one partition, no limit: the table itself, kept ... */
	size_t keep_len;
	uint64_t **all;         /* ... and its entries in hash order */
	uint64_t nall;
	uint64_t groups;
	int bounded;            /* only keys that could make the top N were counted */
	struct spill sp;        /* entries the heap had no room for */
};

struct runstate {
	struct qctx *q;
	struct tout out[QUERY_MAX_TABLES + 1];
	int begun[QUERY_MAX_TABLES];
	uint64_t rows_bytes;    /* rows kept in the result (no sink) */
	int streamed0;          /* table 0 was delivered during the passes */
};

static void tout_free(struct tout *o)
{
	spill_free(&o->sp);
	free(o->heap);
	sys_big_free(o->keep, o->keep_len);
	free(o->all);
	memset(o, 0, sizeof(*o));
}

static void row_from_entry(const struct tspec *ts, const uint64_t *e, struct query_row *r)
{
	memset(r, 0, sizeof(*r));
	r->flows = e[0];
	r->f.packets = e[1];
	r->f.bytes = e[2];
	r->f.first_ms = e[3];
	r->f.last_ms = e[4];
	for (unsigned f = 0; f < ts->nf; f++)
		get_field(&ts->f[f], (const uint8_t *)(e + NCTR), r);
}

static int keep_row(struct runstate *st, struct query_table *t, const struct query_row *r)
{
	/* room for 16, 32, 64 ... rows: nrows at a power of two (from 16) means full */
	if (t->nrows == 0 || (t->nrows >= 16 && !(t->nrows & (t->nrows - 1)))) {
		uint64_t more = t->nrows ? t->nrows : 16;
		if (st->rows_bytes + more * sizeof(*r) > st->q->mem) {
			snprintf(st->q->res->err, QUERY_ERR_LEN, "more rows than fit in the memory "
				 "limit (%llu so far): give a limit (-n, -c) or raise --max-memory",
				 (unsigned long long)t->nrows);
			return -E2BIG;
		}
		struct query_row *n = realloc(t->rows, (t->nrows + more) * sizeof(*r));
		if (!n)
			return -ENOMEM;
		t->rows = n;
		st->rows_bytes += more * sizeof(*r);
	}
	t->rows[t->nrows] = *r;
	return 0;
}

static int deliver_begin(struct runstate *st, unsigned ti)
{
	struct qctx *q = st->q;
	struct query_table *t = &q->res->table[ti];
	const struct query_sink *sk = q->rq->sink;
	if (st->begun[ti])
		return 0;
	st->begun[ti] = 1;
	t->flows = q->res->sum.flows;
	t->packets = q->res->sum.packets;
	t->bytes = q->res->sum.bytes;
	if (sk && sk->begin && sk->begin(sk->arg, t))
		return -ECANCELED;
	return 0;
}

/* Hands one row of table ti to the sink, or keeps it (then the result owns its
 * points; with a sink they are freed here). */
static int deliver(struct runstate *st, unsigned ti, struct query_row *r)
{
	struct qctx *q = st->q;
	struct query_table *t = &q->res->table[ti];
	const struct query_sink *sk = q->rq->sink;
	int rc = deliver_begin(st, ti);
	if (rc == 0 && sk) {
		if (sk->row && sk->row(sk->arg, t, r))
			rc = -ECANCELED;
	} else if (rc == 0) {
		rc = keep_row(st, t, r);
		if (rc == 0)
			r->points = NULL; /* the result has it now */
	}
	free(r->points);
	r->points = NULL;
	if (rc == 0)
		t->nrows++;
	return rc;
}

static void eheap_swap(uint64_t *a, uint64_t *b, unsigned ew)
{
	uint64_t tmp[NCTR + MAX_KW];
	memcpy(tmp, a, ew * 8);
	memcpy(a, b, ew * 8);
	memcpy(b, tmp, ew * 8);
}

static void eheap_down(uint64_t *h, uint64_t n, uint64_t i, const struct tspec *ts, int o)
{
	const unsigned ew = ts->ew;
	for (;;) {
		uint64_t l = 2 * i + 1, r = l + 1, m = i;
		if (l < n && ent_cmp(h + l * ew, h + m * ew, ts, o) > 0)
			m = l;
		if (r < n && ent_cmp(h + r * ew, h + m * ew, ts, o) > 0)
			m = r;
		if (m == i)
			return;
		eheap_swap(h + i * ew, h + m * ew, ew);
		i = m;
	}
}

static void eheap_up(uint64_t *h, uint64_t i, const struct tspec *ts, int o)
{
	const unsigned ew = ts->ew;
	while (i) {
		uint64_t p = (i - 1) / 2;
		if (ent_cmp(h + i * ew, h + p * ew, ts, o) <= 0)
			return;
		eheap_swap(h + i * ew, h + p * ew, ew);
		i = p;
	}
}

/* Entries of t in hash order (then key): the walk from an empty slot is nearly
 * sorted already (linear probing only moves keys forward), so insertion sort. */
static uint64_t **hash_ordered(const struct htab *t, const struct tspec *ts)
{
	uint64_t **v = malloc((t->n ? t->n : 1) * sizeof(*v));
	uint64_t *hv = malloc((t->n ? t->n : 1) * sizeof(*hv));
	uint64_t k = 0, start = ht_walk_start(t);
	if (!v || !hv) {
		free(v);
		free(hv);
		return NULL;
	}
	for (uint64_t c = 0; c < t->cap; c++) {
		uint64_t i = start + c < t->cap ? start + c : start + c - t->cap;
		uint64_t *e = t->e + i * t->ew;
		if (!t->tag[i])
			continue;
		uint64_t h = hash_key(e + NCTR, ts->kw), j = k++;
		while (j > 0 && (hv[j - 1] > h || (hv[j - 1] == h &&
			memcmp(v[j - 1] + NCTR, e + NCTR, (size_t)ts->kw * 8) > 0))) {
			v[j] = v[j - 1];
			hv[j] = hv[j - 1];
			j--;
		}
		v[j] = e;
		hv[j] = h;
	}
	free(hv);
	return v;
}

#define SPILL_SHARE 4           /* the heap of a list that may spill: mem / 4 */
#define SPILL_RESERVE (256ull << 20)    /* free space a spill leaves, at least (or 5%) */

/* Room for one more entry in o's heap: 0, or 1 when a heap that may spill (spill) has
 * reached its share of memory (SPILL_SHARE): the caller writes it out as a run. */
static int heap_room(struct qctx *q, struct tout *o, unsigned ew, int spill)
{
	if (o->nheap < o->cap)
		return 0;
	uint64_t nc = o->cap ? o->cap * 2 : 64;
	if (spill && o->nheap && nc * ew * 8 > q->mem / SPILL_SHARE)
		return 1;
	if (nc * ew * 8 > q->mem) {
		snprintf(q->res->err, QUERY_ERR_LEN, "more than %llu rows to keep in order do "
			 "not fit in the memory limit: give a limit (-n/-c) or raise --max-memory",
			 (unsigned long long)o->nheap);
		return -E2BIG;
	}
	uint64_t *h = realloc(o->heap, nc * ew * 8);
	if (!h)
		return -ENOMEM;
	o->heap = h;
	o->cap = nc;
	return 0;
}

static int spill_fail(struct qctx *q, int err)
{
	snprintf(q->res->err, QUERY_ERR_LEN, "writing rows to sort under %s: %s",
		 q->rq->spill_dir, strerror(err));
	return -err;
}

static int write_all(int fd, const void *p, size_t n)
{
	while (n) {
		ssize_t k = write(fd, p, n);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return k < 0 ? errno : ENOSPC;
		p = (const uint8_t *)p + k;
		n -= (size_t)k;
	}
	return 0;
}

struct ecmp {                   /* an element order for qsort_r over pointers */
	elem_cmp cmp;
	void *arg;
};

static int ptr_cmp(const void *a, const void *b, void *arg)
{
	const struct ecmp *c = arg;
	return c->cmp(*(void *const *)a, *(void *const *)b, c->arg);
}

/* Sorts the n elements of esz bytes at v (through pointers: the elements stay put)
 * and writes them to sp as one more run; a copy of its last goes to last (NULL: none
 * wanted). */
static int spill_add_run(struct qctx *q, struct spill *sp, const void *v, uint64_t n,
			 size_t esz, elem_cmp cmp, void *arg, void *last)
{
	struct ecmp ec = { cmp, arg };
	int err = 0;

	if (!sp->open) {
		char *path;
		if (asprintf(&path, "%s/tapflow-query.XXXXXX", q->rq->spill_dir) < 0)
			return -ENOMEM;
		sp->fd = mkstemp(path);
		err = sp->fd < 0 ? errno : 0;
		if (sp->fd >= 0)
			unlink(path);
		free(path);
		if (err)
			return spill_fail(q, err);
		sp->open = 1;
	}
	/* the store may share the file system: a run must leave it room to keep writing */
	struct statvfs fs;
	if (fstatvfs(sp->fd, &fs) == 0) {
		uint64_t avail = (uint64_t)fs.f_bavail * fs.f_frsize;
		uint64_t size = (uint64_t)fs.f_blocks * fs.f_frsize, want = n * esz;
		uint64_t reserve = size / 20 > SPILL_RESERVE ? size / 20 : SPILL_RESERVE;
		if (avail < want || avail - want < reserve) {
			snprintf(q->res->err, QUERY_ERR_LEN, "sorting under %s would leave less "
				 "than %llu MiB free there: give a limit, or TMPDIR elsewhere",
				 q->rq->spill_dir, (unsigned long long)(reserve >> 20));
			return -E2BIG;  /* not -ENOSPC: that asks for more partitions */
		}
	}
	uint64_t *len = realloc(sp->run_len, (sp->nruns + 1) * sizeof(*len));
	const uint8_t **p = malloc((n ? n : 1) * sizeof(*p));
	uint8_t *buf = malloc(1 << 20);
	if (len)
		sp->run_len = len;
	if (!len || !p || !buf) {
		err = ENOMEM;
		goto out;
	}
	sp->run_len[sp->nruns++] = n;
	sp->total += n;
	for (uint64_t i = 0; i < n; i++)
		p[i] = (const uint8_t *)v + i * esz;
	qsort_r(p, n, sizeof(*p), ptr_cmp, &ec);
	if (last && n)
		memcpy(last, p[n - 1], esz);
	size_t fill = 0;
	for (uint64_t i = 0; i < n && !err; i++) {
		memcpy(buf + fill, p[i], esz);
		fill += esz;
		if (fill + esz > (1 << 20) || i + 1 == n) {
			err = write_all(sp->fd, buf, fill);
			fill = 0;
		}
	}
out:
	free(p);
	free(buf);
	return err == ENOMEM ? -ENOMEM : err ? spill_fail(q, err) : 0;
}

static int ent_cmp_e(const void *a, const void *b, void *arg)
{
	const struct ordctx *o = arg;
	return ent_cmp(a, b, o->ts, o->order);
}

/* Writes o's heap, sorted, as one more run; empties it. */
static int spill_run(struct qctx *q, struct tout *o, const struct tspec *ts)
{
	struct ordctx oc = { ts, ts->order };
	int rc = spill_add_run(q, &o->sp, o->heap, o->nheap, (size_t)ts->ew * 8, ent_cmp_e, &oc,
			       NULL);
	o->nheap = 0;
	return rc;
}

/* Takes what one partition's table t holds for spec s. Unordered listings of table 0
 * go out at once (partitions come in hash order); top-N keeps the best in a heap;
 * everything else is kept whole (one partition: the table itself). */
static int collect(struct runstate *st, unsigned s, struct htab *t, unsigned partitions)
{
	struct qctx *q = st->q;
	const struct tspec *ts = &q->spec[s];
	struct tout *o = &st->out[s];
	int rc;

	o->groups += t->n;
	if (!ts->keep_all && ts->order == QO_NONE && ts->user == 0) {
		struct query_table *qt = &q->res->table[0];
		uint64_t **v = hash_ordered(t, ts);
		if (!v)
			return -ENOMEM;
		st->streamed0 = 1;
		rc = deliver_begin(st, 0);
		for (uint64_t i = 0; i < t->n && rc == 0; i++) {
			struct query_row r;
			if (qt->req.limit && qt->nrows >= qt->req.limit)
				break;
			row_from_entry(ts, v[i], &r);
			rc = deliver(st, 0, &r);
		}
		free(v);
		return rc;
	}
	if (!ts->limit && partitions == 1) {
		sys_big_free(o->keep, o->keep_len);
		free(o->all);
		o->all = hash_ordered(t, ts);
		if (!o->all)
			return -ENOMEM;
		o->nall = t->n;
		o->keep = t->e; /* the entries stay where they are */
		o->keep_len = t->cap * t->ew * 8;
		sys_big_free(t->tag, t->cap);
		t->e = NULL;
		t->tag = NULL;
		t->mem = NULL;
		return 0;
	}
	/* several partitions: the best `limit` in a heap, or (no limit) every entry,
	 * sorted at the end; what memory has no room for goes to sorted runs on disk
	 * (rows with a series of their own excepted: that needs them all at hand) */
	int spill = q->rq->spill_dir && ts->user >= 0 && !q->rq->table[ts->user].series;
	for (uint64_t i = 0; i < t->cap; i++) {
		const uint64_t *e = t->e + i * t->ew;
		if (!t->tag[i])
			continue;
		if (!ts->limit || o->nheap < ts->limit) {
			if ((rc = heap_room(q, o, ts->ew, spill)) == 1)
				rc = spill_run(q, o, ts);
			if (rc < 0)
				return rc;
			memcpy(o->heap + o->nheap * ts->ew, e, ts->ew * 8);
			if (ts->limit)
				eheap_up(o->heap, o->nheap, ts, ts->order);
			o->nheap++;
		} else if (ent_cmp(e, o->heap, ts, ts->order) < 0) {
			memcpy(o->heap, e, ts->ew * 8);
			eheap_down(o->heap, o->nheap, 0, ts, ts->order);
		}
	}
	return 0;
}

/* The entries spec s produced, in its order, at most its limit. */
static uint64_t **spec_entries(const struct tspec *ts, const struct tout *o, uint64_t *n)
{
	uint64_t cnt = o->all ? o->nall : o->nheap;
	uint64_t **v = malloc((cnt ? cnt : 1) * sizeof(*v));
	struct ordctx oc = { ts, ts->order };
	if (!v)
		return NULL;
	if (o->all)
		memcpy(v, o->all, cnt * sizeof(*v));
	else
		for (uint64_t i = 0; i < cnt; i++)
			v[i] = o->heap + i * ts->ew;
	if (!(o->all && ts->order == QO_NONE))
		qsort_r(v, cnt, sizeof(*v), ent_cmp_r, &oc);
	if (ts->limit && cnt > ts->limit)
		cnt = ts->limit;
	*n = cnt;
	return v;
}

/* A spilled run being merged: its next elements in buf. */
struct mrun {
	uint64_t off, left;     /* in the file: where the rest starts, how many elements */
	uint8_t *buf;
	uint64_t nbuf, pos;
};

static int run_fill(struct qctx *q, const struct spill *sp, struct mrun *r, uint64_t per,
		    size_t esz)
{
	uint64_t cnt = r->left < per ? r->left : per;
	size_t want = (size_t)cnt * esz, got = 0;
	while (got < want) {
		ssize_t k = pread(sp->fd, r->buf + got, want - got, (off_t)(r->off + got));
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return spill_fail(q, k < 0 ? errno : EIO);
		got += (size_t)k;
	}
	r->off += want;
	r->left -= cnt;
	r->nbuf = cnt;
	r->pos = 0;
	return 0;
}

struct merge {
	struct mrun *r;
	size_t esz;
	struct ecmp c;
};

static int mrun_before(const struct merge *m, unsigned a, unsigned b)
{
	const struct mrun *x = &m->r[a], *y = &m->r[b];
	return m->c.cmp(x->buf + x->pos * m->esz, y->buf + y->pos * m->esz, m->c.arg) < 0;
}

/* Runs heap h (n of them, the one whose head comes first on top): sifts h[i] down. */
static void mheap_down(unsigned *h, unsigned n, unsigned i, const struct merge *m)
{
	for (;;) {
		unsigned l = 2 * i + 1, b = i;
		if (l < n && mrun_before(m, h[l], h[b]))
			b = l;
		if (l + 1 < n && mrun_before(m, h[l + 1], h[b]))
			b = l + 1;
		if (b == i)
			return;
		unsigned x = h[i];
		h[i] = h[b];
		h[b] = x;
		i = b;
	}
}

/* Hands the first n elements of sp's runs, merged in cmp's order, to emit (stops at
 * its error). Each run reads through its share of a quarter of the memory limit. */
static int spill_merge(struct qctx *q, const struct spill *sp, size_t esz, elem_cmp cmp,
		       void *arg, uint64_t n, int (*emit)(const void *e, void *earg), void *earg)
{
	const unsigned k = sp->nruns;
	uint64_t per = k ? q->mem / SPILL_SHARE / k / esz : 1, off = 0;
	struct merge m = { calloc(k ? k : 1, sizeof(struct mrun)), esz, { cmp, arg } };
	unsigned *h = malloc((k ? k : 1) * sizeof(*h)), nh = 0;
	int rc = 0;

	per = per < 1 ? 1 : per > 65536 ? 65536 : per;
	if (!m.r || !h) {
		rc = -ENOMEM;
		goto out;
	}
	for (unsigned i = 0; i < k && rc == 0; i++) {
		m.r[i].off = off;
		m.r[i].left = sp->run_len[i];
		off += sp->run_len[i] * esz;
		if (!(m.r[i].buf = malloc(per * esz)))
			rc = -ENOMEM;
		else if (m.r[i].left && (rc = run_fill(q, sp, &m.r[i], per, esz)) == 0)
			h[nh++] = i;
	}
	for (unsigned i = nh / 2; rc == 0 && i-- > 0;)
		mheap_down(h, nh, i, &m);
	for (uint64_t done = 0; done < n && nh && rc == 0; done++) {
		struct mrun *x = &m.r[h[0]];
		rc = emit(x->buf + x->pos * esz, earg);
		if (++x->pos == x->nbuf) {
			if (x->left)
				rc = rc ? rc : run_fill(q, sp, x, per, esz);
			else
				h[0] = h[--nh];
		}
		mheap_down(h, nh, 0, &m);
	}
out:
	for (unsigned i = 0; m.r && i < k; i++)
		free(m.r[i].buf);
	free(m.r);
	free(h);
	return rc;
}

struct spec_emit {
	struct runstate *st;
	unsigned ti;
	const struct tspec *rowspec;
};

static int emit_entry(const void *e, void *arg)
{
	const struct spec_emit *x = arg;
	struct query_row row;
	row_from_entry(x->rowspec, e, &row);
	return deliver(x->st, x->ti, &row);
}

/* Delivers the first n rows of spec ts's spilled runs, merged (rowspec: the table's
 * own spec, for the rows' fields). */
static int deliver_runs(struct runstate *st, unsigned ti, const struct tspec *ts,
			const struct tspec *rowspec, const struct tout *o, uint64_t n)
{
	struct ordctx oc = { ts, ts->order };
	struct spec_emit x = { st, ti, rowspec };
	int rc = deliver_begin(st, ti);
	return rc ? rc : spill_merge(st->q, &o->sp, (size_t)ts->ew * 8, ent_cmp_e, &oc, n,
				     emit_entry, &x);
}

const char *query_tmpdir(void)
{
	const char *d = getenv("TMPDIR");
	return d && *d ? d : "/tmp";
}

/* ---- passes ---- */

static unsigned online_cpus(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	return n < 1 ? 1 : n > MAX_THREADS ? MAX_THREADS : (unsigned)n;
}

static void worker_free(struct worker *w, unsigned nspec)
{
	for (unsigned s = 0; s < nspec; s++) {
		ht_free(&w->tab[s]);
		if (w->lb[s])
			free(w->lb[s]->e);
		free(w->lb[s]);
	}
	store_cols_free(&w->fc);
	store_cols_free(&w->ac);
	store_cols_free(&w->xc);
	sys_big_free(w->scr, w->scr_len);
	free(w->cacc);
	free(w->cand);
	memset(w, 0, sizeof(*w));
}

static void sum_merge(struct query_summary *a, const struct query_summary *b)
{
	if (b->flows && (!a->flows || b->first_ms < a->first_ms))
		a->first_ms = b->first_ms;
	if (b->last_ms > a->last_ms)
		a->last_ms = b->last_ms;
	a->flows += b->flows;
	a->packets += b->packets;
	a->bytes += b->bytes;
	a->files += b->files;
	a->files_skipped += b->files_skipped;
	a->bad_files += b->bad_files;
	a->blocks += b->blocks;
	a->blocks_skipped += b->blocks_skipped;
	a->bad_blocks += b->bad_blocks;
	a->flows_scanned += b->flows_scanned;
	a->tail_bytes += b->tail_bytes;
	a->limited |= b->limited;
}

/* Bytes one table may take with nthreads tables per spec alive at once; half of that
 * when the threads' tables are merged afterwards (the merged one needs the rest). */
static uint64_t table_budget(const struct qctx *q, unsigned nthreads, int merging)
{
	uint64_t b = q->tmem / ((uint64_t)nthreads * (q->nspec ? q->nspec : 1));
	return merging ? b / 2 : b;
}

/* Fewest partitions (>= at_least) in which distinct[] keys fit with a margin, the
 * threads each holding one; 0 if none up to QUERY_MAX_PARTITIONS. */
static unsigned pick_partitions(const struct qctx *q, const uint64_t *distinct, unsigned at_least)
{
	for (unsigned p = at_least; p <= QUERY_MAX_PARTITIONS; p++) {
		unsigned t = q->threads < p ? q->threads : p;
		uint64_t b = table_budget(q, t, 0);
		int ok = 1;
		for (unsigned s = 0; s < q->nspec; s++) {
			uint64_t keys = b / ((uint64_t)q->spec[s].ew * 8 + 1) * LOAD_NUM / LOAD_DEN;
			if (distinct[s] / p + distinct[s] / p / 10 + 16 > keys)
				ok = 0;
		}
		if (ok) /* whole rounds: every thread owns a partition in each */
			return p > q->threads ? (p + q->threads - 1) / q->threads * q->threads : p;
	}
	return 0;
}

/* One scan of the store by n workers set up by the caller. Returns 0, -ENOSPC when a
 * table filled up (distinct[] then holds estimates of the keys), or -errno. */
static int scan_pass(struct qctx *q, struct worker *w, unsigned n, uint64_t *distinct)
{
	for (unsigned t = 0; t < n && q->fspill; t++)
		if (w[t].count_blocks) /* a counting pass again: its flows anew */
			spill_free(q->fspill);
	atomic_store(&q->stop, 0);
	atomic_store(&q->claimed_bytes, 0);
	atomic_store(&q->finished_bytes, 0);
	for (size_t i = 0; i < q->files.n; i++)
		atomic_store(&q->fs[i].next, 0);
	if (n == 1) {
		worker_run(&w[0]);
	} else {
		unsigned started = 0;
		for (; started < n; started++)
			if (pthread_create(&w[started].th, NULL, worker_run, &w[started]) != 0)
				break;
		if (started < n)
			atomic_store(&q->stop, 1);
		for (unsigned t = 0; t < started; t++)
			pthread_join(w[t].th, NULL);
		if (started < n)
			return -EAGAIN;
	}
	q->res->sum.passes++;
	int full = 0;
	for (unsigned t = 0; t < n; t++) {
		if (w[t].rc == -ENOSPC)
			full = 1;
		else if (w[t].rc < 0)
			return w[t].rc;
	}
	if (!full)
		return 0;
	/* distinct keys so far, scaled by how much of the store was read */
	uint64_t done = read_so_far(&q->claimed_bytes, &q->finished_bytes), tot = q->total_bytes;
	for (unsigned s = 0; s < q->nspec; s++) {
		uint64_t k = 0;
		if (w[0].claim) {
			/* the threads shared the blocks: their keys add up (a key two of them
			 * saw counts twice: an overestimate, the safe side) */
			for (unsigned u = 0; u < n; u++)
				k += w[u].tab[s].n;
			if (done && tot > done)
				k = (uint64_t)((double)k * (double)tot / (double)done);
			else
				k *= 2;
		} else {
			/* each thread read every block for its own partition, one of np: each
			 * alone tells the whole, from as far as it got */
			for (unsigned u = 0; u < n; u++) {
				uint64_t ku = w[u].tab[s].n * (w[u].np ? w[u].np : 1);
				if (w[u].done_bytes && tot > w[u].done_bytes)
					ku = (uint64_t)((double)ku * (double)tot /
							(double)w[u].done_bytes);
				else
					ku *= 2;
				k = ku > k ? ku : k;
			}
		}
		if (k > distinct[s])
			distinct[s] = k;
	}
	return -ENOSPC;
}

static int worker_setup(struct qctx *q, struct worker *w, unsigned tid, uint32_t part,
			uint32_t np, uint64_t budget, const uint64_t *distinct)
{
	memset(w, 0, sizeof(*w));
	w->q = q;
	w->tid = tid;
	w->part = part;
	w->np = np;
	store_cols_init(&w->fc);
	store_cols_init(&w->ac);
	store_cols_init(&w->xc);
	for (unsigned s = 0; s < q->nspec; s++) {
		/* sized for the estimate up front: no rehashing while scanning */
		uint64_t want = distinct ? distinct[s] / np + distinct[s] / np / 8 : 0;
		int rc = ht_init(&w->tab[s], q->spec[s].ew, q->spec[s].kw, np, budget, want,
				 &q->mem_now, &q->mem_peak);
		if (rc == -ENOSPC) {
			snprintf(q->res->err, QUERY_ERR_LEN, "--max-memory is too small for this "
				 "query");
			return -E2BIG;
		}
		if (rc < 0)
			return rc;
	}
	if (q->flows_table >= 0 && !q->flows_stream) {
		w->cand = malloc((q->flows_spill ? q->cand_cap : q->flows_limit) * sizeof(*w->cand));
		if (!w->cand)
			return -ENOMEM;
	}
	return 0;
}

/* Merges the workers' tables into a new one for worker 0, sized for all their keys
 * up front: the sources come in hash order, and a table growing halfway would pile one
 * hash range into one region (quadratic probing). -ENOSPC if it cannot be that big. */
static int merge_tables(struct qctx *q, struct worker *w, unsigned n)
{
	for (unsigned s = 0; s < q->nspec; s++) {
		struct htab d;
		uint64_t keys = 0;
		for (unsigned t = 0; t < n; t++)
			keys += w[t].tab[s].n;
		const struct htab *t0 = &w[0].tab[s];
		int rc = ht_init(&d, t0->ew, t0->kw, 1, table_budget(q, 1, 1), keys, t0->mem,
				 t0->peak);
		if (rc == 0 && d.grow_at < keys) {
			ht_free(&d);
			rc = -ENOSPC;
		}
		if (rc < 0)
			return rc;
		for (unsigned t = 0; t < n; t++) {
			struct htab *src = &w[t].tab[s];
			for (uint64_t i = 0; i < src->cap; i++) {
				const uint64_t *e = src->e + i * src->ew;
				if (src->tag[i])
					ht_add(&d, e + NCTR, hash_key(e + NCTR, d.kw), e);
			}
			ht_free(src);
		}
		w[0].tab[s] = d;
	}
	return 0;
}

struct flow_emit {
	struct runstate *st;
	unsigned ti;
};

static int emit_flow(const void *e, void *arg)
{
	const struct flow_emit *x = arg;
	struct query_row row;
	memset(&row, 0, sizeof(row));
	row.f = ((const struct fcand *)e)->f;
	row.flows = 1;
	return deliver(x->st, x->ti, &row);
}

/* The flow listing: candidates of every worker, in order, the first `limit`. */
static int deliver_flows(struct qctx *q, struct worker *w, unsigned n, struct runstate *st)
{
	int order = q->flows_order, rc;
	uint64_t total = 0, k = 0;
	unsigned ti = (unsigned)q->flows_table;
	if (q->flows_stream) {  /* the rows went out during the scan */
		q->res->table[ti].groups = q->res->sum.flows;
		return deliver_begin(st, ti);
	}
	if (q->flows_spill && q->fspill->nruns) {   /* sorted runs, the last one still here */
		struct flow_emit x = { st, ti };
		q->res->table[ti].groups = q->res->sum.flows;
		if (w[0].ncand && (rc = spill_add_run(q, q->fspill, w[0].cand, w[0].ncand,
						      sizeof(struct fcand), flow_cmp_r, &order,
						      NULL)) < 0)
			return rc;
		w[0].ncand = 0;
		if ((rc = deliver_begin(st, ti)) < 0)
			return rc;
		return spill_merge(q, q->fspill, sizeof(struct fcand), flow_cmp_r, &order,
				   q->flows_limit, emit_flow, &x);
	}
	/* (a listing that could spill and never had to ends here too, in memory) */
	for (unsigned t = 0; t < n; t++)
		total += w[t].ncand;
	struct fcand *all = malloc((total ? total : 1) * sizeof(*all));
	if (!all)
		return -ENOMEM;
	for (unsigned t = 0; t < n; t++) {
		memcpy(all + k, w[t].cand, w[t].ncand * sizeof(*all));
		k += w[t].ncand;
	}
	qsort_r(all, total, sizeof(*all), flow_cmp_r, &order);
	q->res->table[ti].groups = q->res->sum.flows;
	rc = deliver_begin(st, ti);
	for (uint64_t i = 0; i < total && i < q->flows_limit && rc == 0; i++) {
		struct query_row r;
		memset(&r, 0, sizeof(r));
		r.f = all[i].f;
		r.flows = 1;
		rc = deliver(st, ti, &r);
	}
	free(all);
	return rc;
}

/* Takes the summary (and the flow listing) from the counting workers. */
static int take_counts(struct qctx *q, struct worker *w, unsigned n, struct runstate *st)
{
	struct query_summary *s = &q->res->sum;
	uint32_t passes = s->passes;
	memset(s, 0, sizeof(*s));
	s->passes = passes;
	for (unsigned t = 0; t < n; t++)
		sum_merge(s, &w[t].sum);
	return q->flows_table >= 0 ? deliver_flows(q, w, n, st) : 0;
}

static int bound_eligible(const struct qctx *q, const struct tspec *ts);

/* One scan with the threads sharing out the blocks, tables merged at the end.
 * Returns 0 (st->out filled), -ENOSPC (estimates in distinct[]), -errno. */
static int shared_pass(struct qctx *q, struct runstate *st, struct worker *w, int count,
		       uint64_t *distinct, int sized)
{
	unsigned n = q->threads, nw;
	uint64_t b = table_budget(q, n, n > 1);
	int rc = 0;

	/* A first pass may give up early when its tables are all top N: the bounds' scan
	 * that follows counts their keys again, where a listing of every key would be
	 * partitioned on an estimate from a small part of the store. */
	int early = !sized;
	for (unsigned s = 0; s < q->nspec; s++)
		early &= bound_eligible(q, &q->spec[s]);
	for (nw = 0; nw < n; nw++) {
		/* with an estimate, each table as big as it may need (one thread may see
		 * every key): no growing, whose old + new arrays would halve what fits */
		if ((rc = worker_setup(q, &w[nw], nw, 0, 1, b, sized ? distinct : NULL)) < 0)
			goto out;
		for (unsigned s = 0; s < q->nspec && early; s++) {
			w[nw].tab[s].claimed = &q->claimed_bytes;
			w[nw].tab[s].done = &q->finished_bytes;
			w[nw].tab[s].total = q->total_bytes;
		}
		w[nw].claim = 1;
		w[nw].count_blocks = count;
		w[nw].count_files = count && nw == 0;
	}
	rc = scan_pass(q, w, n, distinct);
	if (rc == 0 && n > 1)
		rc = merge_tables(q, w, n);
	if (rc == -ENOSPC) {
		/* the merge overflowed: every key seen is in the tables */
		for (unsigned s = 0; s < q->nspec; s++) {
			uint64_t k = 0;
			for (unsigned t = 0; t < n; t++)
				k += w[t].tab[s].n;
			if (k > distinct[s])
				distinct[s] = k;
		}
	}
	if (rc == 0 && count)
		rc = take_counts(q, w, n, st);
	for (unsigned s = 0; s < q->nspec && rc == 0; s++)
		rc = collect(st, s, &w[0].tab[s], 1);
	if (rc == 0)
		q->res->sum.partitions = 1;
out:
	for (unsigned t = 0; t < nw; t++)
		worker_free(&w[t], q->nspec);
	return rc;
}

/* Memory outside the tables (bound buckets) in the shared accounting. */
static void mem_acct(struct qctx *q, int64_t d)
{
	struct htab t;
	memset(&t, 0, sizeof(t));
	t.mem = &q->mem_now;
	t.peak = &q->mem_peak;
	mem_add(&t, d);
}

static int bound_eligible(const struct qctx *q, const struct tspec *ts)
{
	return ts->user >= 0 && !ts->keep_all && !ts->only && ts->limit &&
	       ts->limit <= 4096 &&
	       (ts->order == QO_FLOWS || ts->order == QO_PACKETS || ts->order == QO_BYTES) &&
	       !q->rq->table[ts->user].series;
}

static int lowb_cmp(const void *a, const void *b, void *arg)
{
	unsigned kw = *(const unsigned *)arg;
	return memcmp((const uint64_t *)a + 1, (const uint64_t *)b + 1, kw * 8);
}

static int u64_desc(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? 1 : x > y ? -1 : 0;
}

/* The N-th best of the workers' partial sums for spec s (sums of the same key added:
 * they come from different flows). 0 when fewer than N keys were seen. */
static int lower_bound(struct worker *w, unsigned n, unsigned s, uint64_t limit, uint64_t *thr)
{
	unsigned kw = w[0].lb[s]->kw, ew = 1 + kw;
	uint64_t total = 0, k = 0, m = 0;
	for (unsigned t = 0; t < n; t++)
		total += w[t].lb[s]->n;
	uint64_t *all = malloc((total ? total : 1) * ew * 8);
	uint64_t *sums = malloc((total ? total : 1) * 8);
	if (!all || !sums) {
		free(all);
		free(sums);
		return -ENOMEM;
	}
	for (unsigned t = 0; t < n; t++) {
		memcpy(all + k * ew, w[t].lb[s]->e, w[t].lb[s]->n * ew * 8);
		k += w[t].lb[s]->n;
	}
	qsort_r(all, total, ew * 8, lowb_cmp, &kw);
	for (uint64_t i = 0; i < total; i++) {
		if (m && key_eq(all + i * ew + 1, all + (i - 1) * ew + 1, kw))
			sums[m - 1] += all[i * ew];
		else
			sums[m++] = all[i * ew];
	}
	qsort(sums, m, 8, u64_desc);
	*thr = m >= limit ? sums[limit - 1] : 0;
	free(all);
	free(sums);
	return 0;
}

/* The bounding scan: bucket sums and lower bounds for every eligible spec. Gives each
 * its struct bound (thr set) and an estimate of the keys left in distinct[], and of all
 * its keys in all[] (from the empty buckets: linear counting). */
static int bound_pass(struct qctx *q, struct worker *w, struct bound *bnd, uint64_t *distinct,
		      uint64_t *all)
{
	unsigned n = q->threads, nw = 0, nb_specs = 0;
	int rc = 0;

	for (unsigned s = 0; s < q->nspec; s++)
		nb_specs += bound_eligible(q, &q->spec[s]);
	/* half the memory for the bucket sums, the rest for the tables after */
	uint64_t per = q->mem / 2 / nb_specs / 8;
	for (unsigned s = 0; s < q->nspec; s++) {
		if (!bound_eligible(q, &q->spec[s]))
			continue;
		bnd[s].nb = per < 1024 ? 1024 : per;
		bnd[s].b = sys_big_zalloc(bnd[s].nb * sizeof(*bnd[s].b));
		if (!bnd[s].b)
			return -ENOMEM;
		mem_acct(q, (int64_t)(bnd[s].nb * sizeof(*bnd[s].b)));
		q->spec[s].bnd = &bnd[s];
	}
	q->tmem = q->mem - q->mem / 2;
	q->bcols = 0;
	for (unsigned s = 0; s < q->nspec; s++) {
		const struct tspec *ts = &q->spec[s];
		if (!ts->bnd)
			continue;
		q->bcols |= ts->cols & ~COUNTER_COLS;
		q->bcols |= ts->order == QO_BYTES ? COL(BYTES) : ts->order == QO_PACKETS ?
			    COL(PACKETS) : 0;
	}
	for (nw = 0; nw < n; nw++) {
		struct worker *x = &w[nw];
		memset(x, 0, sizeof(*x));
		x->q = q;
		x->tid = nw;
		x->np = 1;
		x->claim = 1;
		x->bounding = 1;
		store_cols_init(&x->fc);
		store_cols_init(&x->ac);
		store_cols_init(&x->xc);
		for (unsigned s = 0; s < q->nspec; s++) {
			if (!q->spec[s].bnd)
				continue;
			x->lb[s] = calloc(1, sizeof(*x->lb[s]));
			if (x->lb[s]) {
				x->lb[s]->kw = q->spec[s].kw;
				x->lb[s]->cap = q->spec[s].limit;
				x->lb[s]->e = malloc(q->spec[s].limit * (1 + q->spec[s].kw) * 8);
			}
			if (!x->lb[s] || !x->lb[s]->e) {
				nw++;
				rc = -ENOMEM;
				goto out;
			}
		}
	}
	rc = scan_pass(q, w, n, distinct);
	for (unsigned s = 0; s < q->nspec && rc == 0; s++) {
		struct bound *b = q->spec[s].bnd;
		if (!b)
			continue;
		rc = lower_bound(w, n, s, q->spec[s].limit, &b->thr);
		uint64_t hot = 0, empty = 0;
		for (uint64_t i = 0; i < b->nb; i++) {
			uint64_t v = atomic_load_explicit(&b->b[i], memory_order_relaxed);
			hot += v >= b->thr;
			empty += v == 0;
		}
		if (empty)
			all[s] = (uint64_t)((double)b->nb * log((double)b->nb / (double)empty)) + 1;
		/* keys left: those of the buckets that reach thr (which tend to be the
		 * crowded ones) */
		uint64_t per_bucket = distinct[s] / b->nb + 2;
		if (hot * per_bucket < distinct[s])
			distinct[s] = hot * per_bucket;
	}
out:
	for (unsigned t = 0; t < nw; t++)
		worker_free(&w[t], q->nspec);
	return rc;
}

/* The specs leave their bounds and the sketches' memory goes. */
static void bounds_drop(struct qctx *q, struct bound *bnd)
{
	for (unsigned s = 0; s < q->nspec; s++) {
		q->spec[s].bnd = NULL;
		if (bnd[s].b)
			mem_acct(q, -(int64_t)(bnd[s].nb * sizeof(*bnd[s].b)));
		sys_big_free(bnd[s].b, bnd[s].nb * sizeof(*bnd[s].b));
		bnd[s].b = NULL;
	}
}

/* Runs q->spec[] over the store and leaves what each spec produced in st->out (table 0
 * unordered goes straight to the sink). With count, also the summary, the scan figures
 * and the flow listing. One scan when the keys fit in memory; else bounds for top-N
 * specs that allow them, and hash partitions for what still does not fit. */
static int run_scan(struct qctx *q, struct runstate *st, int count)
{
	struct worker *w = calloc(q->threads, sizeof(*w));
	struct bound bnd[QUERY_MAX_TABLES + 1];
	uint64_t distinct[QUERY_MAX_TABLES + 1] = { 0 };
	unsigned partitions = 1, n = q->threads, nw = 0;
	int rc = 0, eligible = 0;

	memset(bnd, 0, sizeof(bnd));
	if (!w)
		return -ENOMEM;
	q->tmem = q->mem;
	q->st = st;
	rc = shared_pass(q, st, w, count, distinct, 0);
	if (rc != -ENOSPC)
		goto out;
	for (unsigned s = 0; s < q->nspec; s++)
		eligible |= bound_eligible(q, &q->spec[s]);
	if (eligible) {
		uint64_t all[QUERY_MAX_TABLES + 1];
		memcpy(all, distinct, sizeof(all));
		for (unsigned s = 0; s < q->nspec; s++)
			tout_free(&st->out[s]);
		rc = bound_pass(q, w, bnd, distinct, all);
		if (rc < 0)
			goto out;
		rc = shared_pass(q, st, w, count, distinct, 1);
		if (rc != -ENOSPC)
			goto out;
		/* Bounds hold half the memory. When they leave most keys in (values spread
		 * evenly: no key stands out), the partitions are fewer without them. */
		uint64_t tmem = q->tmem;
		unsigned with = pick_partitions(q, distinct, 2);
		q->tmem = q->mem;
		unsigned without = pick_partitions(q, all, 2);
		if (without && (!with || without < with)) {
			bounds_drop(q, bnd);
			memcpy(distinct, all, sizeof(all));
		} else {
			q->tmem = tmem;
		}
	}
	/* keys that do not fit: partitions; each thread owns one a round and reads every
	 * block */
	for (;;) {
		if (st->streamed0 || q->flows_streamed) {  /* a pass again would repeat them */
			snprintf(q->res->err, QUERY_ERR_LEN, "more keys than estimated after rows "
				 "went out; raise --max-memory");
			rc = -E2BIG;
			break;
		}
		for (unsigned s = 0; s < q->nspec; s++)
			tout_free(&st->out[s]);
		partitions = pick_partitions(q, distinct, partitions + 1);
		if (!partitions) {
			snprintf(q->res->err, QUERY_ERR_LEN, "too many distinct keys for "
				 "--max-memory %llu MiB even in %d partitions",
				 (unsigned long long)(q->mem >> 20), QUERY_MAX_PARTITIONS);
			rc = -E2BIG;
			goto out;
		}
		unsigned per = n < partitions ? n : partitions;
		uint64_t b = table_budget(q, per, 0);
		rc = 0;
		/* the workers (tables, buffers) live through the rounds: a round only
		 * clears the tables' tags, no memory is mapped and zeroed again */
		for (nw = 0; nw < per; nw++) {
			rc = worker_setup(q, &w[nw], nw, nw, partitions, b, distinct);
			if (rc < 0) {
				nw++;
				goto out;
			}
		}
		for (unsigned r0 = 0; r0 < partitions && rc == 0; r0 += per) {
			unsigned now = partitions - r0 < per ? partitions - r0 : per;
			for (unsigned t = 0; t < now; t++) {
				struct worker *x = &w[t];
				if (r0) {
					for (unsigned s = 0; s < q->nspec; s++)
						ht_clear(&x->tab[s]);
					memset(&x->sum, 0, sizeof(x->sum));
					x->matched = x->ncand = x->done_bytes = 0;
					x->rc = 0;
				}
				x->part = r0 + t;
				x->count_blocks = count && r0 == 0 && t == 0;
				x->count_files = x->count_blocks;
			}
			rc = scan_pass(q, w, now, distinct);
			if (rc == 0 && r0 == 0 && count)
				rc = take_counts(q, w, 1, st);
			for (unsigned t = 0; t < now && rc == 0; t++)
				for (unsigned s = 0; s < q->nspec && rc == 0; s++)
					rc = collect(st, s, &w[t].tab[s], partitions);
		}
		for (unsigned t = 0; t < nw; t++)
			worker_free(&w[t], q->nspec);
		nw = 0;
		if (rc != -ENOSPC)
			break;
	}
	q->res->sum.partitions = partitions;
out:
	for (unsigned t = 0; t < nw; t++)
		worker_free(&w[t], q->nspec);
	for (unsigned s = 0; s < q->nspec; s++)
		if (q->spec[s].bnd)
			st->out[s].bounded = 1;
	bounds_drop(q, bnd);
	free(w);
	return rc;
}

/* ---- series ---- */

/* Bucket range [lo, hi]: the window when it is closed, else the matched flows' span.
 * Returns 1, 0 when there is nothing to show, or -E2BIG. */
static int series_range(struct qctx *q, uint64_t *lo, uint64_t *hi)
{
	const struct query_req *rq = q->rq;
	const uint64_t b = q->bucket_ms;
	if (rq->has_window && rq->win.to_ms != UINT64_MAX) {
		*lo = rq->win.from_ms / b;
		*hi = rq->win.to_ms / b;
	} else if (q->res->sum.flows) {
		*lo = q->res->sum.first_ms / b;
		*hi = q->res->sum.last_ms / b;
	} else {
		return 0;
	}
	if (*hi - *lo >= QUERY_MAX_POINTS) {
		snprintf(q->res->err, QUERY_ERR_LEN, "--series %llu: %llu points (at most %d): "
			 "use a longer interval or a shorter window", (unsigned long long)(b / 1000),
			 (unsigned long long)(*hi - *lo + 1), QUERY_MAX_POINTS);
		return -E2BIG;
	}
	return 1;
}

/* Adds entry e (key ending with a bucket word) to points p[0..] starting at bucket lo. */
static void add_point(const struct tspec *ts, const uint64_t *e, struct query_point *p,
		      uint64_t lo, uint64_t hi)
{
	uint64_t bk = ld_be64((const uint8_t *)(e + NCTR + ts->kw_pre));
	if (bk < lo || bk > hi)
		return;
	p[bk - lo].flows += e[0];
	p[bk - lo].packets += e[1];
	p[bk - lo].bytes += e[2];
}

static struct query_point *new_points(uint64_t lo, uint64_t hi, uint64_t bms)
{
	struct query_point *p = calloc(hi - lo + 1, sizeof(*p));
	for (uint64_t i = 0; p && i <= hi - lo; i++)
		p[i].t_ms = (lo + i) * bms;
	return p;
}

/* ---- the run ---- */

void query_req_init(struct query_req *rq, const char *path)
{
	memset(rq, 0, sizeof(*rq));
	rq->path = path;
	rq->win_mode = QUERY_WIN_INSIDE;
}

void query_result_free(struct query_result *res)
{
	for (unsigned t = 0; t < QUERY_MAX_TABLES; t++) {
		for (uint64_t i = 0; res->table[t].rows && i < res->table[t].nrows; i++)
			free(res->table[t].rows[i].points);
		free(res->table[t].rows);
		res->table[t].rows = NULL;
	}
	free(res->points);
	res->points = NULL;
}

static int check_req(const struct query_req *rq, char *err)
{
	int lists = 0;
	if (!rq->path) {
		snprintf(err, QUERY_ERR_LEN, "no store given");
		return -EINVAL;
	}
	if (rq->ntables > QUERY_MAX_TABLES || rq->win_mode > QUERY_WIN_FIRST) {
		snprintf(err, QUERY_ERR_LEN, "bad request: %u tables, window mode %u", rq->ntables,
			 rq->win_mode);
		return -EINVAL;
	}
	for (unsigned i = 0; i < rq->ntables; i++) {
		const struct query_table_req *t = &rq->table[i];
		if (t->kind > QK_FLOWS || t->order >= QO__COUNT ||
		    (t->kind != QK_FLOWS && (t->nkey < 1 || t->nkey > QUERY_MAX_FIELDS)) ||
		    (t->kind == QK_STAT && t->nkey != 1)) {
			snprintf(err, QUERY_ERR_LEN, "table %u: bad kind, order or key count", i);
			return -EINVAL;
		}
		for (unsigned k = 0; t->kind != QK_FLOWS && k < t->nkey; k++) {
			const struct query_key *key = &t->key[k];
			if (key->field >= QF__COUNT || (t->kind == QK_AGGR && fdefs[key->field].both) ||
			    ((key->field == QF_SRCNET || key->field == QF_DSTNET) &&
			     key->mask4 != QUERY_MASK_FLOW && (key->mask4 > 32 || key->mask6 > 128))) {
				snprintf(err, QUERY_ERR_LEN, "table %u: bad key field %u", i, k);
				return -EINVAL;
			}
			for (unsigned j = 0; j < k; j++) {
				if (t->key[j].field == key->field) {
					snprintf(err, QUERY_ERR_LEN, "table %u: field %s twice", i,
						 fdefs[key->field].name);
					return -EINVAL;
				}
			}
		}
		if (t->kind == QK_FLOWS) {
			lists++;
			if (!t->limit) {
				snprintf(err, QUERY_ERR_LEN, "a flow listing needs a limit");
				return -EINVAL;
			}
		}
		if (t->series && (t->kind != QK_STAT || !t->limit || !rq->series_s)) {
			snprintf(err, QUERY_ERR_LEN, "a series per row needs a top N statistic and "
				 "a series interval");
			return -EINVAL;
		}
	}
	if (lists && rq->ntables > 1) {
		snprintf(err, QUERY_ERR_LEN, "a flow listing comes alone");
		return -EINVAL;
	}
	if (rq->has_window && rq->win.from_ms > rq->win.to_ms) {
		snprintf(err, QUERY_ERR_LEN, "the time window ends before it starts");
		return -EINVAL;
	}
	return 0;
}

/* Adds the files of store p (a directory, or one store file) to q->files. */
static int list_path(struct qctx *q, const char *p)
{
	struct store_list l = { NULL, 0 };
	struct stat sb;
	int rc = store_check(p);
	if (rc == 0 && stat(p, &sb) < 0)
		rc = -errno;
	if (rc < 0) {
		snprintf(q->res->err, QUERY_ERR_LEN, "%s: %s", p,
			 rc == -EILSEQ ? "not a tapflow store" : store_strerror(rc));
		return rc;
	}
	if (S_ISREG(sb.st_mode)) {
		l.v = calloc(1, sizeof(*l.v));
		if (!l.v || !(l.v[0].path = strdup(p))) {
			free(l.v);
			return -ENOMEM;
		}
		l.n = 1;
	} else if ((rc = store_list_files(p, &l)) < 0) {
		/* No pruning by file name: names tell when flows arrived, and replayed or
		 * delayed exports carry flows of any age. Footer zones decide exactly. */
		snprintf(q->res->err, QUERY_ERR_LEN, "%s: %s", p, store_strerror(rc));
		return rc;
	}
	if (!l.n) {             /* an empty store */
		free(l.v);
		return 0;
	}
	struct store_file *v = realloc(q->files.v, (q->files.n + l.n) * sizeof(*v));
	if (!v) {
		store_list_free(&l);
		return -ENOMEM;
	}
	memcpy(v + q->files.n, l.v, l.n * sizeof(*v));  /* their paths move over */
	q->files.v = v;
	q->files.n += l.n;
	free(l.v);
	return 0;
}

static int list_store(struct qctx *q)
{
	const struct query_req *rq = q->rq;
	struct stat sb;
	int rc = list_path(q, rq->path);
	for (unsigned i = 0; i < rq->nmore && rc == 0; i++)
		rc = list_path(q, rq->more_paths[i]);
	if (rc < 0)
		return rc;
	if (rq->nmore)
		store_list_sort(&q->files);     /* several stores' files: one time order */
	q->fs = calloc(q->files.n ? q->files.n : 1, sizeof(*q->fs));
	if (!q->fs)
		return -ENOMEM;
	/* Each file is held open from here on, so that every pass reads the same files
	 * even when retention deletes some meanwhile (oldest first: the first files
	 * listed). Queries running at once (the HTTP API) share a quarter of the
	 * descriptors the process may have; files past a query's share are opened by name
	 * in each pass. A file gone before it could be opened was deleted since it was
	 * listed: it is no longer part of the store. */
	struct rlimit rl;
	uint64_t budget = getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY ?
			  (uint64_t)rl.rlim_cur / 4 : QUERY_HOLD_FILES;
	uint64_t want = q->files.n < QUERY_HOLD_FILES ? q->files.n : QUERY_HOLD_FILES;
	uint64_t cur = atomic_load(&held_files), hold;
	do
		hold = cur >= budget ? 0 : budget - cur < want ? budget - cur : want;
	while (!atomic_compare_exchange_weak(&held_files, &cur, cur + hold));
	q->held = hold;
	size_t n = 0;
	for (size_t i = 0; i < q->files.n; i++) {
		int fd = -1;
		int ok;
		if (i < hold) {
			fd = open(q->files.v[i].path, O_RDONLY | O_CLOEXEC);
			ok = fd >= 0 && fstat(fd, &sb) == 0;
		} else {
			ok = stat(q->files.v[i].path, &sb) == 0;
		}
		if (!ok && errno == ENOENT) {
			free(q->files.v[i].path);
			continue;
		}
		q->files.v[n] = q->files.v[i];
		q->fs[n].fd = fd;
		q->fs[n].size = UINT64_MAX;  /* unreadable: each pass says why */
		if (ok) {
			q->total_bytes += (uint64_t)sb.st_size;
			q->fs[n].size = (uint64_t)sb.st_size;
		}
		n++;
	}
	q->files.n = n;
	return 0;
}

/* 1 if a spec keys on addresses and a block in the window may hold an IPv6 flow (zone
 * maps: footers of closed files, block headers of open ones); compact keys would only
 * fail on it, maybe late in the scan. */
static int may_need_wide(struct qctx *q)
{
	int compact = 0;
	for (unsigned s = 0; s < q->nspec; s++)
		for (unsigned f = 0; f < q->spec[s].nf; f++)
			compact |= compact_addr(q->spec[s].f[f].field);
	if (!compact)
		return 0;
	struct store_reader *r = NULL;
	int v6 = 0;
	for (size_t i = 0; i < q->files.n && !v6; i++) {
		struct store_block_info bi;
		struct store_zone z;
		int zr;
		r = qfile_open(q, i, r);
		if (!r)
			continue; /* the scan reports it */
		zr = store_reader_file_zone(r, &z);
		if (zr == 1)
			v6 = zone_in_window(q->rq, &z) && (z.ipver & 2);
		else
			while (!v6 && store_reader_next(r, &bi) > 0)
				v6 = zone_in_window(q->rq, &bi.zone) && (bi.zone.ipver & 2);
	}
	store_reader_close(r);
	return v6;
}

/* Per-row series: a second scan aggregating (key, bucket) for the top rows of each
 * statistic that asked for one. rows[i] (entries in delivery order) gets pts[i]. */
struct rowseries {
	uint64_t **rows;
	uint64_t nrows;
	struct query_point *pts; /* nrows x npoints */
	int spilled;             /* rows in runs (spec s's tout): merged as they go out */
	unsigned s;
};

static int row_series(struct qctx *q, const struct tspec *spec1,
		      struct rowseries *rs, uint64_t lo, uint64_t hi)
{
	const struct query_req *rq = q->rq;
	struct htab only[QUERY_MAX_TABLES];
	unsigned map[QUERY_MAX_TABLES];
	struct runstate st2;
	uint64_t np = hi - lo + 1;
	int rc = 0;

	memset(only, 0, sizeof(only));
	memset(&st2, 0, sizeof(st2));
	st2.q = q;
	q->nspec = 0;
	q->flows_table = -1;
	for (unsigned i = 0; i < rq->ntables; i++) {
		if (!rq->table[i].series)
			continue;
		if (rs[i].nrows * np * sizeof(struct query_point) > q->mem) {
			snprintf(q->res->err, QUERY_ERR_LEN, "%llu rows x %llu points do not fit in "
				 "the memory limit", (unsigned long long)rs[i].nrows,
				 (unsigned long long)np);
			rc = -E2BIG;
			goto out;
		}
		rs[i].pts = calloc(rs[i].nrows * np + 1, sizeof(*rs[i].pts));
		if (!rs[i].pts) {
			rc = -ENOMEM;
			goto out;
		}
		for (uint64_t k = 0; k < rs[i].nrows * np; k++)
			rs[i].pts[k].t_ms = (lo + k % np) * q->bucket_ms;
		struct tspec *ts = &q->spec[q->nspec];
		spec_init(ts, rq->table[i].key, rq->table[i].nkey, 1, q->v4keys);
		ts->user = (int)i;
		ts->order = QO_NONE;
		ts->keep_all = 1;
		/* the rows' keys as a set; the counter word holds the row number + 1 */
		rc = ht_init(&only[i], spec1[i].ew, ts->kw_pre, 0, UINT64_MAX, rs[i].nrows + 1,
			     NULL, NULL);
		if (rc < 0)
			goto out;
		for (uint64_t k = 0; k < rs[i].nrows; k++) {
			uint64_t c[NCTR] = { k + 1, 0, 0, 0, 0 };
			const uint64_t *key = rs[i].rows[k] + NCTR;
			ht_add(&only[i], key, hash_key(key, ts->kw_pre), c);
		}
		ts->only = &only[i];
		map[q->nspec++] = i;
	}
	rc = run_scan(q, &st2, 0);
	for (unsigned s = 0; s < q->nspec && rc == 0; s++) {
		unsigned i = map[s];
		const struct tspec *ts = &q->spec[s];
		struct tout *o = &st2.out[s];
		uint64_t n = o->all ? o->nall : o->nheap;
		for (uint64_t k = 0; k < n; k++) {
			const uint64_t *e = o->all ? o->all[k] : o->heap + k * ts->ew;
			const uint64_t *r = ht_find(&only[i], e + NCTR, hash_key(e + NCTR, ts->kw_pre));
			if (r)
				add_point(ts, e, rs[i].pts + (r[0] - 1) * np, lo, hi);
		}
	}
out:
	for (unsigned s = 0; s < QUERY_MAX_TABLES + 1; s++)
		tout_free(&st2.out[s]);
	for (unsigned i = 0; i < QUERY_MAX_TABLES; i++)
		ht_free(&only[i]);
	return rc;
}

/* One run. *filt: the compiled filter, kept for a second run (compiled once: a host
 * name in it is looked up once); the caller frees it. */
static int run_query(const struct query_req *rq, struct query_result *res, int v4keys,
		     struct filt **filt)
{
	struct qctx q;
	struct runstate st;
	struct tspec spec1[QUERY_MAX_TABLES];   /* by table */
	struct rowseries rs[QUERY_MAX_TABLES];
	struct spill fspill;
	char ferr[QUERY_ERR_LEN];
	size_t fpos = 0;
	int rc, series_spec = -1;
	uint64_t lo = 0, hi = 0;

	memset(res, 0, sizeof(*res));
	memset(&q, 0, sizeof(q));
	memset(&st, 0, sizeof(st));
	memset(rs, 0, sizeof(rs));
	memset(&fspill, 0, sizeof(fspill));
	memset(spec1, 0, sizeof(spec1));
	res->err_pos = -1;
	q.v4keys = v4keys;
	rc = check_req(rq, res->err);
	if (rc < 0)
		return rc;
	q.rq = rq;
	q.res = res;
	st.q = &q;
	q.flows_table = -1;
	q.threads = rq->threads ? rq->threads : online_cpus();
	if (q.threads > MAX_THREADS)
		q.threads = MAX_THREADS;
	if (rq->max_flows)
		q.threads = 1; /* "the first N" means store order */
	q.mem = rq->max_memory ? rq->max_memory : QUERY_DEFAULT_MEMORY;
	if (q.mem > SIZE_MAX / 2)
		q.mem = SIZE_MAX / 2; /* 32-bit hosts: every size below must fit a size_t */
	q.bucket_ms = (uint64_t)rq->series_s * 1000;
	pthread_mutex_init(&q.lock, NULL);
	res->ntables = rq->ntables;
	res->series_s = rq->series_s;
	for (unsigned i = 0; i < rq->ntables; i++) {
		res->table[i].req = rq->table[i];
		res->table[i].index = i;
	}
	if (*filt) {
		q.filt = *filt;
		q.fcols = filt_columns(q.filt);
	} else if (rq->filter && rq->filter[strspn(rq->filter, " \t\r\n")]) {
		q.filt = *filt = filt_compile_names(rq->filter, rq->resolve, ferr, sizeof(ferr),
						   &fpos);
		if (!q.filt) {
			snprintf(res->err, QUERY_ERR_LEN, "%s", ferr);
			res->err_pos = (long)fpos;
			rc = -EINVAL;
			goto out;
		}
		q.fcols = filt_columns(q.filt);
	}
	if (q.filt) {
		q.ftuple = filt_tuple_columns(q.filt);
		q.fport = filt_port_code_columns(q.filt);
	}
	if (rq->has_window)
		q.fcols |= COL(FIRST) | COL(LAST);
	q.acols = COUNTER_COLS;
	/* phase 1: every table but a flow listing is a spec; and the totals series */
	for (unsigned i = 0; i < rq->ntables; i++) {
		const struct query_table_req *t = &rq->table[i];
		if (t->kind == QK_FLOWS) {
			q.flows_table = (int)i;
			q.flows_limit = t->limit;
			q.flows_order = t->order;
			continue;
		}
		struct tspec *ts = &q.spec[q.nspec++];
		if (spec_init(ts, t->key, t->nkey, 0, v4keys) < 0) {
			snprintf(res->err, QUERY_ERR_LEN, "table %u: key too long", i);
			rc = -EINVAL;
			goto out;
		}
		ts->user = (int)i;
		ts->order = t->order;
		ts->limit = t->limit;
		q.acols |= ts->cols;
		spec1[i] = *ts;
	}
	if (rq->series_s) {
		struct tspec *ts = &q.spec[series_spec = (int)q.nspec++];
		spec_init(ts, NULL, 0, 1, v4keys);
		ts->user = -1;
		ts->keep_all = 1;
	}
	/* In store order, one thread lists as it reads; so does a listing too long to
	 * keep, at the cost of scanning on one core. Ordered ones keep their best. */
	if (q.flows_table >= 0 && q.flows_order == QO_NONE &&
	    (q.threads == 1 || q.flows_limit > q.mem / sizeof(struct fcand) / q.threads)) {
		q.threads = 1;
		q.flows_stream = 1;
	}
	if (q.flows_table >= 0 && !q.flows_stream &&
	    q.flows_limit > q.mem / sizeof(struct fcand) / q.threads) {
		if (!rq->spill_dir) {
			snprintf(res->err, QUERY_ERR_LEN, "-c %llu: that many flows do not fit in "
				 "the memory limit", (unsigned long long)q.flows_limit);
			rc = -E2BIG;
			goto out;
		}
		q.threads = 1;
		q.flows_spill = 1;
		q.cand_cap = q.mem / SPILL_SHARE / sizeof(struct fcand);
		if (!q.cand_cap)
			q.cand_cap = 1;
		q.fspill = &fspill;
	}
	if ((rc = list_store(&q)) < 0)
		goto out;
	if (q.v4keys && may_need_wide(&q)) {
		rc = EWIDE;
		goto out;
	}
	if ((rc = run_scan(&q, &st, 1)) < 0)
		goto out;
	/* the totals series */
	if (series_spec >= 0 && (rc = series_range(&q, &lo, &hi)) > 0) {
		const struct tspec *ts = &q.spec[series_spec];
		struct tout *o = &st.out[series_spec];
		uint64_t n = o->all ? o->nall : o->nheap;
		res->points = new_points(lo, hi, q.bucket_ms);
		if (!res->points) {
			rc = -ENOMEM;
			goto out;
		}
		res->npoints = hi - lo + 1;
		for (uint64_t k = 0; k < n; k++)
			add_point(ts, o->all ? o->all[k] : o->heap + k * ts->ew, res->points, lo, hi);
	}
	if (rc < 0)
		goto out;
	rc = 0;
	/* rows of every table, in their order; series per row need another scan */
	int want_rows_series = 0;
	for (unsigned s = 0; s < q.nspec; s++) {
		const struct tspec *ts = &q.spec[s];
		if (ts->user == 0 && st.streamed0)
			res->table[0].groups = st.out[s].groups;
		if (ts->user < 0 || (ts->user == 0 && st.streamed0))
			continue;
		unsigned i = (unsigned)ts->user;
		res->table[i].groups = st.out[s].bounded ? QUERY_GROUPS_UNKNOWN : st.out[s].groups;
		if (st.out[s].sp.nruns) {
			struct tout *o = &st.out[s];
			if (o->nheap && (rc = spill_run(&q, o, ts)) < 0)
				goto out;
			uint64_t all = o->sp.total;
			rs[i].spilled = 1;
			rs[i].s = s;
			rs[i].nrows = ts->limit && ts->limit < all ? ts->limit : all;
			continue;
		}
		rs[i].rows = spec_entries(ts, &st.out[s], &rs[i].nrows);
		if (!rs[i].rows) {
			rc = -ENOMEM;
			goto out;
		}
		want_rows_series |= rq->table[i].series;
	}
	if (want_rows_series && series_range(&q, &lo, &hi) > 0) {
		struct tspec saved[QUERY_MAX_TABLES + 1];
		unsigned nsaved = q.nspec;
		memcpy(saved, q.spec, sizeof(saved));
		rc = row_series(&q, spec1, rs, lo, hi);
		memcpy(q.spec, saved, sizeof(saved));
		q.nspec = nsaved;
		if (rc < 0)
			goto out;
	}
	for (unsigned i = 0; i < rq->ntables && rc == 0; i++) {
		if ((int)i == q.flows_table || (i == 0 && st.streamed0)) {
			rc = deliver_begin(&st, i);
			continue;
		}
		if (rs[i].spilled) {
			rc = deliver_runs(&st, i, &q.spec[rs[i].s], &spec1[i], &st.out[rs[i].s],
					  rs[i].nrows);
			continue;
		}
		rc = deliver_begin(&st, i);
		for (uint64_t k = 0; k < rs[i].nrows && rc == 0; k++) {
			struct query_row r;
			row_from_entry(&spec1[i], rs[i].rows[k], &r);
			if (rs[i].pts) {
				r.npoints = hi - lo + 1;
				r.points = malloc(r.npoints * sizeof(*r.points));
				if (!r.points) {
					rc = -ENOMEM;
					break;
				}
				memcpy(r.points, rs[i].pts + k * r.npoints, r.npoints * sizeof(*r.points));
			}
			rc = deliver(&st, i, &r);
		}
	}
out:
	if (rc == EWIDE) {
		int begun = 0;
		for (unsigned i = 0; i < QUERY_MAX_TABLES; i++)
			begun |= st.begun[i];
		if (begun) { /* an IPv6 flow came in while a live store was read */
			snprintf(res->err, QUERY_ERR_LEN, "IPv6 flows arrived after rows went out; "
				 "run the query again");
			rc = -EAGAIN;
		}
	}
	for (unsigned i = 0; i < QUERY_MAX_TABLES; i++) {
		free(rs[i].rows);
		free(rs[i].pts);
	}
	for (unsigned s = 0; s < QUERY_MAX_TABLES + 1; s++)
		tout_free(&st.out[s]);
	res->sum.threads = q.threads;
	res->sum.mem_bytes = atomic_load(&q.mem_peak) + st.rows_bytes;
	for (size_t i = 0; q.fs && i < q.files.n; i++)
		if (q.fs[i].fd >= 0)
			close(q.fs[i].fd);
	atomic_fetch_sub(&held_files, q.held);
	store_list_free(&q.files);
	spill_free(&fspill);
	free(q.fs);
	pthread_mutex_destroy(&q.lock);
	return rc;
}

int query_run(const struct query_req *rq, struct query_result *res)
{
	struct filt *f = NULL;
	int rc = run_query(rq, res, 1, &f);
	if (rc == EWIDE) { /* not all IPv4: again with full addresses (the first pass or
			      part of it is lost) */
		uint32_t passes = res->sum.passes;
		query_result_free(res);
		rc = run_query(rq, res, 0, &f);
		res->sum.passes += passes;
	}
	filt_free(f);
	return rc;
}

/* ---- tapflow-query's command line ---- */

static const struct opt_def *short_def(const struct opt_def *defs, int c)
{
	for (const struct opt_def *d = defs; d->name; d++)
		if (d->shortopt == c)
			return d;
	return NULL;
}

static int takes_arg(const struct opt_def *d)
{
	return d && d->type != OPT_BOOL && d->type != OPT_ACTION;
}

int query_args_reorder(const struct opt_def *defs, int argc, char **argv, char **out,
		       int *n_given)
{
	char *wv[QUERY_MAX_ARGS];
	int no = 0, nw = 0, i;

	out[no++] = argv[0];
	for (i = 1; i < argc; i++) {
		char *a = argv[i];
		if (!strcmp(a, "--")) {
			for (i++; i < argc && nw < QUERY_MAX_ARGS; i++)
				wv[nw++] = argv[i];
			break;
		}
		if (a[0] != '-' || !a[1]) {
			if (nw < QUERY_MAX_ARGS)
				wv[nw++] = a;
			continue;
		}
		out[no++] = a;
		if (a[1] == '-') {
			const char *eq = strchr(a, '=');
			size_t len = eq ? (size_t)(eq - a - 2) : strlen(a + 2);
			for (const struct opt_def *d = defs; d->name; d++) {
				if (strlen(d->name) == len && !strncmp(a + 2, d->name, len)) {
					if (!strcmp(d->name, "top"))
						*n_given = 1;
					if (takes_arg(d) && !eq && i + 1 < argc)
						out[no++] = argv[++i];
				}
			}
			continue;
		}
		/* a cluster of short options; the first one taking an argument ends it */
		for (const char *p = a + 1; *p; p++) {
			const struct opt_def *d = short_def(defs, *p);
			if (*p == 'n')
				*n_given = 1;
			if (takes_arg(d)) {
				if (!p[1] && i + 1 < argc)
					out[no++] = argv[++i];
				break;
			}
		}
	}
	out[no++] = "--";
	for (int k = 0; k < nw; k++)
		out[no++] = wv[k];
	out[no] = NULL;
	return no;
}

char *query_filter_file(const char *path)
{
	FILE *f = fopen(path, "r");
	size_t n = 0;
	int c, comment = 0;
	char *buf;

	if (!f) {
		fprintf(stderr, "tapflow-query: -f %s: %s\n", path, strerror(errno));
		return NULL;
	}
	buf = malloc(QUERY_MAX_FILTER + 1);
	if (!buf) {
		fclose(f);
		return NULL;
	}
	while ((c = fgetc(f)) != EOF) {
		if (c == '#')
			comment = 1;
		if (c == '\n')
			comment = 0;
		if (comment)
			continue;
		if (n == QUERY_MAX_FILTER) {
			fprintf(stderr, "tapflow-query: -f %s: longer than %d bytes\n", path,
				QUERY_MAX_FILTER);
			free(buf);
			fclose(f);
			return NULL;
		}
		buf[n++] = (char)(c == '\n' || c == '\t' || c == '\r' ? ' ' : c);
	}
	buf[n] = 0;
	fclose(f);
	return buf;
}

int query_filter_cli(char *const *words, int n, const char *file, char **filter)
{
	size_t len = 1;

	*filter = NULL;
	if (n <= 0) {
		if (file && !(*filter = query_filter_file(file)))
			return -1;
		return 0;
	}
	for (int i = 0; i < n; i++)
		len += strlen(words[i]) + 1;
	if (!(*filter = malloc(len))) {
		fprintf(stderr, "tapflow-query: out of memory\n");
		return -1;
	}
	char *p = *filter;
	for (int i = 0; i < n; i++) {
		size_t l = strlen(words[i]);
		if (i)
			*p++ = ' ';
		memcpy(p, words[i], l);
		p += l;
	}
	*p = 0;
	if (file)
		fprintf(stderr, "tapflow-query: warning: the filter given as arguments takes "
			"precedence over -f %s\n", file);
	return 0;
}
