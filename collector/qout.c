/* qout.c: see qout.h. Text is built in a private buffer with hand-written number,
 * address and time formatting: listings of millions of rows must not spend their time
 * in printf, inet_ntop and localtime. */
#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "qout.h"

#define BUF_SIZE (256 * 1024)
#define BATCH 16384             /* rows formatted at once by the helpers */
#define MIN_PARALLEL 2048       /* fewer rows: not worth waking threads */
#define MAX_HELPERS 8

struct qout {
	FILE *out;
	enum qout_fmt fmt;
	int plain;
	int err;
	char *b;
	size_t n;
	struct query_sink sink;
	const struct query_table *cur;  /* table whose rows are being written */
	unsigned tables;                /* tables begun */
	uint64_t rows;                  /* rows of cur written */
	/* local time: zone offsets of recent 15-minute periods (direct-mapped) */
	int64_t tz_period[64];
	int64_t tz_off[64];
	/* Long listings: rows are batched and the batch formatted by several threads, each
	 * into a helper qout whose buffer grows in memory (mem), then written in order. */
	size_t cap;
	int mem;
	struct query_row *batch;
	uint32_t nbatch;
	const struct query_table *bt;
	unsigned nhelp;
	struct qout *help;
};

/* ---- buffered writing ---- */

static void flush_buf(struct qout *o)
{
	if (o->n && fwrite(o->b, 1, o->n, o->out) != o->n)
		o->err = -EIO;
	o->n = 0;
}

static void grow_buf(struct qout *o, size_t need)
{
	size_t cap = o->cap * 2 > o->n + need ? o->cap * 2 : o->n + need;
	char *b = realloc(o->b, cap);
	if (!b) {
		o->err = -ENOMEM;
		o->n = 0; /* what was formatted is lost; the error is reported */
		return;
	}
	o->b = b;
	o->cap = cap;
}

static inline char *room(struct qout *o, size_t need)
{
	if (o->n + need > o->cap) {
		if (o->mem)
			grow_buf(o, need);
		else
			flush_buf(o);
	}
	return o->b + o->n;
}

static void puts_long(struct qout *o, const char *s, size_t len)
{
	while (len) {
		size_t k = len < BUF_SIZE / 2 ? len : BUF_SIZE / 2;
		memcpy(room(o, k), s, k);
		o->n += k;
		s += k;
		len -= k;
	}
}

static inline void puts_n(struct qout *o, const char *s, size_t len)
{
	if (len > BUF_SIZE / 2) {
		puts_long(o, s, len);
		return;
	}
	memcpy(room(o, len), s, len);
	o->n += len;
}

static inline void put(struct qout *o, const char *s)
{
	puts_n(o, s, strlen(s));
}

static inline void putc_(struct qout *o, char c)
{
	*room(o, 1) = c;
	o->n++;
}

static void __attribute__((format(printf, 2, 3))) putf(struct qout *o, const char *fmt, ...)
{
	char tmp[512];
	va_list ap;
	va_start(ap, fmt);
	int len = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	if (len > 0)
		puts_n(o, tmp, (size_t)len < sizeof(tmp) ? (size_t)len : sizeof(tmp) - 1);
}

/* Right-aligns s in width (nothing cut). */
static void put_r(struct qout *o, const char *s, size_t len, int width)
{
	size_t pad = (int)len < width ? (size_t)width - len : 0;
	if (len > BUF_SIZE / 4) {
		puts_n(o, s, len);
		return;
	}
	char *p = room(o, pad + len);
	memset(p, ' ', pad);
	memcpy(p + pad, s, len);
	o->n += pad + len;
}

static void put_l(struct qout *o, const char *s, size_t len, int width)
{
	size_t pad = (int)len < width ? (size_t)width - len : 0;
	if (len > BUF_SIZE / 4) {
		puts_n(o, s, len);
		return;
	}
	char *p = room(o, pad + len);
	memcpy(p, s, len);
	memset(p + len, ' ', pad);
	o->n += pad + len;
}

/* ---- formatting ---- */

static const char digit_pairs[201] =
	"00010203040506070809101112131415161718192021222324252627282930313233343536373839"
	"40414243444546474849505152535455565758596061626364656667686970717273747576777879"
	"8081828384858687888990919293949596979899";

static size_t fmt_u64(char *p, uint64_t v)
{
	char t[24];
	size_t n = sizeof(t);
	while (v >= 100) {
		unsigned d = (unsigned)(v % 100) * 2;
		v /= 100;
		t[--n] = digit_pairs[d + 1];
		t[--n] = digit_pairs[d];
	}
	if (v >= 10) {
		t[--n] = digit_pairs[v * 2 + 1];
		t[--n] = digit_pairs[v * 2];
	} else {
		t[--n] = (char)('0' + v);
	}
	size_t len = sizeof(t) - n;
	memcpy(p, t + n, len);
	p[len] = 0;
	return len;
}

static inline size_t put_octet(char *p, unsigned v)
{
	if (v >= 100) {
		p[0] = (char)('0' + v / 100);
		p[1] = digit_pairs[(v % 100) * 2];
		p[2] = digit_pairs[(v % 100) * 2 + 1];
		return 3;
	}
	if (v >= 10) {
		p[0] = digit_pairs[v * 2];
		p[1] = digit_pairs[v * 2 + 1];
		return 2;
	}
	p[0] = (char)('0' + v);
	return 1;
}

static size_t fmt_addr(char *p, const uint8_t a[16])
{
	if (flowrec_is4(a)) {
		size_t n = put_octet(p, a[12]);
		p[n++] = '.';
		n += put_octet(p + n, a[13]);
		p[n++] = '.';
		n += put_octet(p + n, a[14]);
		p[n++] = '.';
		n += put_octet(p + n, a[15]);
		p[n] = 0;
		return n;
	}
	inet_ntop(AF_INET6, a, p, 46);
	return strlen(p);
}

/* Human units as nfdump prints them: plain below a million, then "1.2 M". */
static size_t fmt_num(char *p, uint64_t v, int plain)
{
	static const struct { double d; const char *u; } u[] = {
		{ 1e12, "T" }, { 1e9, "G" }, { 1e6, "M" } };
	if (!plain && v >= 1000000 && v < 1000000000 && v % 100000 != 50000) {
		/* what printf("%.1f M") prints, without printf: only exact halves need it */
		uint64_t tenths = (v + 50000) / 100000;
		size_t n = fmt_u64(p, tenths / 10);
		p[n++] = '.';
		p[n++] = (char)('0' + tenths % 10);
		memcpy(p + n, " M", 3);
		return n + 2;
	}
	if (!plain)
		for (int i = 0; i < 3; i++)
			if ((double)v >= u[i].d)
				return (size_t)snprintf(p, 32, "%.1f %s", (double)v / u[i].d, u[i].u);
	return fmt_u64(p, v);
}

static void civil(int64_t days, int *y, int *m, int *d)
{
	days += 719468;
	int64_t era = (days >= 0 ? days : days - 146096) / 146097;
	unsigned doe = (unsigned)(days - era * 146097);
	unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	unsigned mp = (5 * doy + 2) / 153;
	*d = (int)(doy - (153 * mp + 2) / 5 + 1);
	*m = (int)(mp < 10 ? mp + 3 : mp - 9);
	*y = (int)(yoe + era * 400 + (*m <= 2));
}

static inline void two(char *p, int v)
{
	v %= 100;
	p[0] = digit_pairs[v * 2];
	p[1] = digit_pairs[v * 2 + 1];
}

/* "YYYY-MM-DD hh:mm:ss.mmm" (sep ' ') or "YYYY-MM-DDThh:mm:ss.mmmZ" (sep 'T'), 23/24
 * chars, for Unix ms plus offset seconds. */
static size_t fmt_time(char *p, uint64_t ms, int64_t off, char sep)
{
	int64_t s = (int64_t)(ms / 1000) + off;
	int64_t days = s >= 0 ? s / 86400 : (s - 86399) / 86400;
	int64_t sod = s - days * 86400;
	int y, m, d;
	civil(days, &y, &m, &d);
	if (y < 0 || y > 9999)
		y = 0;
	two(p, y / 100);
	two(p + 2, y);
	p[4] = '-';
	two(p + 5, m);
	p[7] = '-';
	two(p + 8, d);
	p[10] = sep;
	two(p + 11, (int)(sod / 3600));
	p[13] = ':';
	two(p + 14, (int)(sod / 60 % 60));
	p[16] = ':';
	two(p + 17, (int)(sod % 60));
	p[19] = '.';
	p[20] = (char)('0' + ms % 1000 / 100);
	two(p + 21, (int)(ms % 100));
	if (sep == 'T') {
		p[23] = 'Z';
		p[24] = 0;
		return 24;
	}
	p[23] = 0;
	return 23;
}

/* Local time as nfdump prints it; the zone offset is looked up once per 15 minutes
 * (every zone changes its offset on such a boundary). */
static size_t fmt_local(struct qout *o, char *p, uint64_t ms)
{
	int64_t s = (int64_t)(ms / 1000), period = s / 900;
	unsigned slot = (unsigned)(period & 63);
	if (period != o->tz_period[slot]) {
		struct tm tm;
		time_t t = (time_t)(period * 900);
		o->tz_off[slot] = localtime_r(&t, &tm) ? tm.tm_gmtoff : 0;
		o->tz_period[slot] = period;
	}
	return fmt_time(p, ms, o->tz_off[slot], ' ');
}

static size_t fmt_dur(char *p, uint64_t ms)
{
	uint64_t s = ms / 1000;
	size_t n = 2;
	if (s < 360000)
		two(p, (int)(s / 3600));
	else
		n = fmt_u64(p, s / 3600);
	p[n] = ':';
	two(p + n + 1, (int)(s / 60 % 60));
	p[n + 3] = ':';
	two(p + n + 4, (int)(s % 60));
	p[n + 6] = '.';
	p[n + 7] = (char)('0' + ms % 1000 / 100);
	two(p + n + 8, (int)(ms % 100));
	p[n + 10] = 0;
	return n + 10;
}

static const char *proto_name(uint8_t p, char *buf)
{
	switch (p) {
	case 1: return "ICMP";
	case 2: return "IGMP";
	case 6: return "TCP";
	case 17: return "UDP";
	case 41: return "IPv6";
	case 47: return "GRE";
	case 50: return "ESP";
	case 51: return "AH";
	case 58: return "ICMP6";
	case 89: return "OSPF";
	case 132: return "SCTP";
	default:
		fmt_u64(buf, p);
		return buf;
	}
}

/* Text of key field k of r: addresses, nets, numbers (table: protocol names). */
static size_t fmt_key(char *p, const struct query_key *k, const struct query_row *r, int names)
{
	const struct flow_rec *f = &r->f;
	size_t n;
	switch (k->field) {
	case QF_SRCIP:
	case QF_IP:
		return fmt_addr(p, f->src);
	case QF_DSTIP:
		return fmt_addr(p, f->dst);
	case QF_EXPORTER:
		return fmt_addr(p, f->exporter);
	case QF_SRCNET:
	case QF_DSTNET:
		n = fmt_addr(p, k->field == QF_SRCNET ? f->src : f->dst);
		p[n++] = '/';
		return n + fmt_u64(p + n, k->field == QF_SRCNET ? f->src_mask : f->dst_mask);
	case QF_PROTO:
		if (names) {
			char nb[8];
			const char *s = proto_name(f->proto, nb);
			strcpy(p, s);
			return strlen(s);
		}
		return fmt_u64(p, f->proto);
	default: {
		char t[64];
		query_key_str(k, r, t, sizeof(t));
		strcpy(p, t);
		return strlen(t);
	}
	}
}

static int is_text_key(int field)
{
	return field == QF_SRCIP || field == QF_DSTIP || field == QF_IP || field == QF_EXPORTER ||
	       field == QF_SRCNET || field == QF_DSTNET;
}

static void json_str(struct qout *o, const char *s, size_t n)
{
	putc_(o, '"');
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '"' || c == '\\') {
			putc_(o, '\\');
			putc_(o, (char)c);
		} else if (c < 0x20) {
			putf(o, "\\u%04x", c);
		} else {
			putc_(o, (char)c);
		}
	}
	putc_(o, '"');
}

static void json_u64(struct qout *o, const char *key, uint64_t v)
{
	char t[24];
	size_t n = fmt_u64(t, v);
	putc_(o, '"');
	put(o, key);
	put(o, "\":");
	puts_n(o, t, n);
}

/* ---- table descriptions ---- */

static const char *kind_name(int kind)
{
	return kind == QK_STAT ? "stat" : kind == QK_AGGR ? "aggregate" : "flows";
}

static void json_table_head(struct qout *o, const struct query_table *t)
{
	put(o, "\"kind\":\"");
	put(o, kind_name(t->req.kind));
	put(o, "\",\"fields\":[");
	for (unsigned i = 0; t->req.kind != QK_FLOWS && i < t->req.nkey; i++) {
		char nm[48];
		const struct query_key *k = &t->req.key[i];
		if ((k->field == QF_SRCNET || k->field == QF_DSTNET) && k->mask4 != QUERY_MASK_FLOW)
			snprintf(nm, sizeof(nm), "%s/%u/%u", query_field_name(k->field), k->mask4,
				 k->mask6);
		else
			snprintf(nm, sizeof(nm), "%s", query_field_name(k->field));
		if (i)
			putc_(o, ',');
		json_str(o, nm, strlen(nm));
	}
	put(o, "],\"order\":\"");
	put(o, query_order_name(t->req.order));
	put(o, "\",");
	json_u64(o, "limit", t->req.limit);
	put(o, ",\"rows\":[");
}

static void table_head(struct qout *o, const struct query_table *t)
{
	const struct query_table_req *q = &t->req;
	if (o->tables > 1)
		putc_(o, '\n');
	if (q->kind == QK_STAT) {
		char n[24];
		if (q->limit)
			fmt_u64(n, q->limit);
		putf(o, "Top %s %s ordered by %s:\n", q->limit ? n : "all",
		     query_field_title(q->key[0].field), query_order_name(q->order));
		put(o, "Date first seen                 Duration ");
		put_r(o, query_field_title(q->key[0].field), strlen(query_field_title(q->key[0].field)),
		      is_text_key(q->key[0].field) ? 16 : 8);
		put(o, "    Flows(%)     Packets(%)       Bytes(%)         pps      bps   bpp\n");
	} else if (q->kind == QK_AGGR) {
		put(o, "Date first seen             Duration");
		for (unsigned i = 0; i < q->nkey; i++) {
			const char *s = query_field_title(q->key[i].field);
			putc_(o, ' ');
			put_r(o, s, strlen(s), is_text_key(q->key[i].field) ? 16 : 8);
		}
		put(o, "  Packets    Bytes      bps    Bpp Flows\n");
	} else {
		put(o, "Date first seen             Duration Proto      Src IP Addr:Port          "
		    "Dst IP Addr:Port   Packets    Bytes Flows\n");
	}
}

static void csv_head(struct qout *o, const struct query_table *t)
{
	const struct query_table_req *q = &t->req;
	if (o->tables > 1)
		putc_(o, '\n');
	put(o, "first,last,duration_ms,");
	if (q->kind == QK_FLOWS) {
		put(o, "proto,srcip,srcport,dstip,dstport,tos,tcp_flags,inif,outif,srcas,dstas,"
		    "vlan,exporter,packets,bytes\n");
		return;
	}
	for (unsigned i = 0; i < q->nkey; i++) {
		put(o, query_field_name(q->key[i].field));
		putc_(o, ',');
	}
	put(o, "flows,packets,bytes,bps,pps,bpp\n");
}

static void end_table(struct qout *o)
{
	if (!o->cur)
		return;
	if (o->fmt == QOUT_JSON) {
		put(o, "],");
		if (o->cur->groups == QUERY_GROUPS_UNKNOWN)
			put(o, "\"groups\":null");
		else
			json_u64(o, "groups", o->cur->groups);
		if (o->cur->index > 0)
			putc_(o, '}');
	}
	o->cur = NULL;
}

static void flush_batch(struct qout *o);

static int sink_begin(void *arg, const struct query_table *t)
{
	struct qout *o = arg;
	flush_batch(o);
	end_table(o);
	o->tables++;
	o->cur = t;
	o->rows = 0;
	switch (o->fmt) {
	case QOUT_JSON:
		if (t->index == 0) {
			putc_(o, '{');
		} else {
			put(o, t->index == 1 ? ",\"stats\":[{" : ",{");
		}
		json_table_head(o, t);
		break;
	case QOUT_CSV:
		csv_head(o, t);
		break;
	case QOUT_TABLE:
		table_head(o, t);
		break;
	}
	return o->err;
}

/* ---- rows ---- */

static void pct(struct qout *o, uint64_t v, uint64_t total, int width, int plain)
{
	char t[32];
	size_t n = fmt_num(t, v, plain);
	put_r(o, t, n, width);
	putf(o, "(%4.1f)", total ? 100.0 * (double)v / (double)total : 0.0);
}

static void row_table(struct qout *o, const struct query_table *t, const struct query_row *r)
{
	const struct query_table_req *q = &t->req;
	const struct flow_rec *f = &r->f;
	uint64_t dur = f->last_ms > f->first_ms ? f->last_ms - f->first_ms : 0, bps, pps, bpp;
	char a[96];
	size_t n;

	query_rates(f->packets, f->bytes, dur, &bps, &pps, &bpp);
	n = fmt_local(o, a, f->first_ms);
	puts_n(o, a, n);
	n = fmt_dur(a, dur);
	put_r(o, a, n, q->kind == QK_STAT ? 17 : 13);
	if (q->kind == QK_STAT) {
		putc_(o, ' ');
		n = fmt_key(a, &q->key[0], r, 1);
		put_r(o, a, n, is_text_key(q->key[0].field) ? 16 : 8);
		pct(o, r->flows, t->flows, 9, o->plain);
		pct(o, f->packets, t->packets, 9, o->plain);
		pct(o, f->bytes, t->bytes, 9, o->plain);
		n = fmt_num(a, pps, o->plain);
		put_r(o, a, n, 9);
		n = fmt_num(a, bps, o->plain);
		put_r(o, a, n, 9);
		n = fmt_num(a, bpp, o->plain);
		put_r(o, a, n, 6);
	} else if (q->kind == QK_AGGR) {
		for (unsigned i = 0; i < q->nkey; i++) {
			putc_(o, ' ');
			n = fmt_key(a, &q->key[i], r, 1);
			put_r(o, a, n, is_text_key(q->key[i].field) ? 16 : 8);
		}
		n = fmt_num(a, f->packets, o->plain);
		put_r(o, a, n, 9);
		n = fmt_num(a, f->bytes, o->plain);
		put_r(o, a, n, 9);
		n = fmt_num(a, bps, o->plain);
		put_r(o, a, n, 9);
		n = fmt_num(a, bpp, o->plain);
		put_r(o, a, n, 7);
		n = fmt_u64(a, r->flows);
		put_r(o, a, n, 6);
	} else {
		char nb[8];
		const char *pn = proto_name(f->proto, nb);
		putc_(o, ' ');
		put_l(o, pn, strlen(pn), 5);
		n = fmt_addr(a, f->src);
		a[n++] = flowrec_is4(f->src) ? ':' : '.';
		n += fmt_u64(a + n, f->sport);
		put_r(o, a, n, 22);
		put(o, " -> ");
		n = fmt_addr(a, f->dst);
		a[n++] = flowrec_is4(f->dst) ? ':' : '.';
		n += fmt_u64(a + n, f->dport);
		put_l(o, a, n, 22);
		n = fmt_num(a, f->packets, o->plain);
		put_r(o, a, n, 8);
		n = fmt_num(a, f->bytes, o->plain);
		put_r(o, a, n, 9);
		n = fmt_u64(a, r->flows);
		put_r(o, a, n, 6);
	}
	putc_(o, '\n');
}

static void csv_u64(struct qout *o, uint64_t v, char end)
{
	char t[24];
	puts_n(o, t, fmt_u64(t, v));
	putc_(o, end);
}

static void row_csv(struct qout *o, const struct query_table *t, const struct query_row *r)
{
	const struct query_table_req *q = &t->req;
	const struct flow_rec *f = &r->f;
	uint64_t dur = f->last_ms > f->first_ms ? f->last_ms - f->first_ms : 0, bps, pps, bpp;
	char a[96];

	puts_n(o, a, fmt_time(a, f->first_ms, 0, 'T'));
	putc_(o, ',');
	puts_n(o, a, fmt_time(a, f->last_ms, 0, 'T'));
	putc_(o, ',');
	csv_u64(o, dur, ',');
	if (q->kind == QK_FLOWS) {
		csv_u64(o, f->proto, ',');
		puts_n(o, a, fmt_addr(a, f->src));
		putc_(o, ',');
		csv_u64(o, f->sport, ',');
		puts_n(o, a, fmt_addr(a, f->dst));
		putc_(o, ',');
		csv_u64(o, f->dport, ',');
		csv_u64(o, f->tos, ',');
		csv_u64(o, f->tcp_flags, ',');
		csv_u64(o, f->in_if, ',');
		csv_u64(o, f->out_if, ',');
		csv_u64(o, f->src_as, ',');
		csv_u64(o, f->dst_as, ',');
		csv_u64(o, f->vlan, ',');
		puts_n(o, a, fmt_addr(a, f->exporter));
		putc_(o, ',');
		csv_u64(o, f->packets, ',');
		csv_u64(o, f->bytes, '\n');
		return;
	}
	for (unsigned i = 0; i < q->nkey; i++) {
		puts_n(o, a, fmt_key(a, &q->key[i], r, 0));
		putc_(o, ',');
	}
	query_rates(f->packets, f->bytes, dur, &bps, &pps, &bpp);
	csv_u64(o, r->flows, ',');
	csv_u64(o, f->packets, ',');
	csv_u64(o, f->bytes, ',');
	csv_u64(o, bps, ',');
	csv_u64(o, pps, ',');
	csv_u64(o, bpp, '\n');
}

static void json_time(struct qout *o, const char *key, uint64_t ms)
{
	char a[32];
	putc_(o, '"');
	put(o, key);
	put(o, "\":\"");
	puts_n(o, a, fmt_time(a, ms, 0, 'T'));
	putc_(o, '"');
}

static void json_addr(struct qout *o, const char *key, const uint8_t *addr)
{
	char a[64];
	putc_(o, '"');
	put(o, key);
	put(o, "\":");
	json_str(o, a, fmt_addr(a, addr));
}

static void json_points(struct qout *o, const struct query_point *p, uint64_t n)
{
	putc_(o, '[');
	for (uint64_t i = 0; i < n; i++) {
		put(o, i ? ",{" : "{");
		json_time(o, "t", p[i].t_ms);
		putc_(o, ',');
		json_u64(o, "t_ms", p[i].t_ms);
		putc_(o, ',');
		json_u64(o, "flows", p[i].flows);
		putc_(o, ',');
		json_u64(o, "packets", p[i].packets);
		putc_(o, ',');
		json_u64(o, "bytes", p[i].bytes);
		putc_(o, '}');
	}
	putc_(o, ']');
}

static void row_json(struct qout *o, const struct query_table *t, const struct query_row *r)
{
	const struct query_table_req *q = &t->req;
	const struct flow_rec *f = &r->f;
	uint64_t dur = f->last_ms > f->first_ms ? f->last_ms - f->first_ms : 0, bps, pps, bpp;
	char a[96];

	put(o, o->rows ? ",{" : "{");
	if (q->kind == QK_FLOWS) {
		json_u64(o, "proto", f->proto);
		putc_(o, ',');
		json_addr(o, "srcip", f->src);
		putc_(o, ',');
		json_u64(o, "srcport", f->sport);
		putc_(o, ',');
		json_addr(o, "dstip", f->dst);
		putc_(o, ',');
		json_u64(o, "dstport", f->dport);
		putc_(o, ',');
		json_u64(o, "tos", f->tos);
		putc_(o, ',');
		json_u64(o, "tcp_flags", f->tcp_flags);
		putc_(o, ',');
		json_u64(o, "inif", f->in_if);
		putc_(o, ',');
		json_u64(o, "outif", f->out_if);
		putc_(o, ',');
		json_u64(o, "srcas", f->src_as);
		putc_(o, ',');
		json_u64(o, "dstas", f->dst_as);
		putc_(o, ',');
		json_u64(o, "vlan", f->vlan);
		putc_(o, ',');
		json_addr(o, "exporter", f->exporter);
		putc_(o, ',');
	} else {
		for (unsigned i = 0; i < q->nkey; i++) {
			const struct query_key *k = &q->key[i];
			size_t n = fmt_key(a, k, r, 0);
			putc_(o, '"');
			put(o, query_field_name(k->field));
			put(o, "\":");
			if (is_text_key(k->field))
				json_str(o, a, n);
			else
				puts_n(o, a, n);
			putc_(o, ',');
		}
	}
	query_rates(f->packets, f->bytes, dur, &bps, &pps, &bpp);
	json_u64(o, "flows", r->flows);
	putc_(o, ',');
	json_u64(o, "packets", f->packets);
	putc_(o, ',');
	json_u64(o, "bytes", f->bytes);
	putc_(o, ',');
	json_time(o, "first", f->first_ms);
	putc_(o, ',');
	json_time(o, "last", f->last_ms);
	putc_(o, ',');
	json_u64(o, "first_ms", f->first_ms);
	putc_(o, ',');
	json_u64(o, "last_ms", f->last_ms);
	putc_(o, ',');
	json_u64(o, "bps", bps);
	putc_(o, ',');
	json_u64(o, "pps", pps);
	putc_(o, ',');
	json_u64(o, "bpp", bpp);
	if (r->points) {
		put(o, ",\"series\":");
		json_points(o, r->points, r->npoints);
	}
	putc_(o, '}');
}

static void row_series_text(struct qout *o, const struct query_table *t, const struct query_row *r)
{
	const struct query_key *k = &t->req.key[0];
	char key[96], a[64];
	size_t kn = fmt_key(key, k, r, o->fmt == QOUT_TABLE);
	for (uint64_t i = 0; i < r->npoints; i++) {
		const struct query_point *p = &r->points[i];
		if (o->fmt == QOUT_CSV) {
			puts_n(o, a, fmt_time(a, p->t_ms, 0, 'T'));
			putc_(o, ',');
			puts_n(o, key, kn);
			putc_(o, ',');
			csv_u64(o, p->flows, ',');
			csv_u64(o, p->packets, ',');
			csv_u64(o, p->bytes, '\n');
		} else {
			puts_n(o, a, fmt_local(o, a, p->t_ms));
			putc_(o, ' ');
			put_r(o, key, kn, 16);
			size_t n = fmt_num(a, p->flows, o->plain);
			put_r(o, a, n, 9);
			n = fmt_num(a, p->packets, o->plain);
			put_r(o, a, n, 11);
			n = fmt_num(a, p->bytes, o->plain);
			put_r(o, a, n, 11);
			putc_(o, '\n');
		}
	}
}

static void format_row(struct qout *o, const struct query_table *t, const struct query_row *r)
{
	switch (o->fmt) {
	case QOUT_JSON:
		row_json(o, t, r);
		break;
	case QOUT_CSV:
		row_csv(o, t, r);
		break;
	case QOUT_TABLE:
		row_table(o, t, r);
		break;
	}
	o->rows++;
}

struct slice {
	struct qout *h;
	const struct query_table *t;
	const struct query_row *r;
	uint32_t n;
};

static void *format_slice(void *arg)
{
	struct slice *sl = arg;
	for (uint32_t i = 0; i < sl->n; i++)
		format_row(sl->h, sl->t, &sl->r[i]);
	return NULL;
}

static int make_helpers(struct qout *o)
{
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	unsigned n = cpus < 2 ? 1 : cpus > MAX_HELPERS ? MAX_HELPERS : (unsigned)cpus;
	o->help = calloc(n, sizeof(*o->help));
	if (!o->help)
		return -ENOMEM;
	for (unsigned i = 0; i < n; i++) {
		struct qout *h = &o->help[i];
		h->fmt = o->fmt;
		h->plain = o->plain;
		h->mem = 1;
		h->cap = BUF_SIZE;
		h->b = malloc(h->cap);
		for (int k = 0; k < 64; k++)
			h->tz_period[k] = INT64_MIN;
		if (!h->b)
			return -ENOMEM;
		o->nhelp = i + 1;
	}
	return 0;
}

/* Formats the batched rows: a slice per helper, in parallel, written out in order. */
static void flush_batch(struct qout *o)
{
	uint32_t n = o->nbatch;
	if (!n)
		return;
	o->nbatch = 0;
	if (n < MIN_PARALLEL || (!o->help && make_helpers(o) < 0) || o->nhelp < 2) {
		for (uint32_t i = 0; i < n; i++)
			format_row(o, o->bt, &o->batch[i]);
		return;
	}
	struct slice sl[MAX_HELPERS];
	pthread_t th[MAX_HELPERS];
	unsigned k = o->nhelp, started = 1;
	uint32_t per = (n + k - 1) / k, at = 0;
	for (unsigned i = 0; i < k; i++) {
		struct qout *h = &o->help[i];
		h->n = 0;
		h->rows = o->rows + at;
		sl[i] = (struct slice){ h, o->bt, o->batch + at, at < n ? (n - at < per ? n - at : per) : 0 };
		at += sl[i].n;
	}
	for (; started < k; started++)
		if (pthread_create(&th[started], NULL, format_slice, &sl[started]) != 0)
			break;
	format_slice(&sl[0]);
	for (unsigned i = started; i < k; i++)
		format_slice(&sl[i]); /* no thread for these: do them here */
	for (unsigned i = 1; i < started; i++)
		pthread_join(th[i], NULL);
	flush_buf(o);
	for (unsigned i = 0; i < k; i++) {
		struct qout *h = &o->help[i];
		if (h->err)
			o->err = h->err;
		if (h->n && fwrite(h->b, 1, h->n, o->out) != h->n)
			o->err = -EIO;
	}
	o->rows += n;
}

static int sink_row(void *arg, const struct query_table *t, const struct query_row *r)
{
	struct qout *o = arg;
	if (r->points) {
		/* its series belongs to the caller only for this call */
		flush_batch(o);
		format_row(o, t, r);
		return o->err;
	}
	if (!o->batch) {
		o->batch = malloc(BATCH * sizeof(*o->batch));
		if (!o->batch) {
			format_row(o, t, r);
			return o->err;
		}
	}
	if (o->bt != t)
		flush_batch(o);
	o->bt = t;
	o->batch[o->nbatch++] = *r;
	if (o->nbatch == BATCH)
		flush_batch(o);
	return o->err;
}

/* ---- series and summary ---- */

static void series_out(struct qout *o, const struct query_result *res)
{
	char a[64];
	if (o->fmt == QOUT_JSON) {
		put(o, o->tables ? ",\"series\":{" : "\"series\":{");
		json_u64(o, "secs", res->series_s);
		put(o, ",\"points\":");
		json_points(o, res->points, res->npoints);
		putc_(o, '}');
		return;
	}
	if (o->tables)
		putc_(o, '\n');
	if (o->fmt == QOUT_CSV) {
		put(o, "t,flows,packets,bytes\n");
	} else {
		putf(o, "Time series, %u s buckets (a flow counts in the bucket of its first seen "
		     "time):\n", res->series_s);
		put(o, "Bucket start                Flows    Packets      Bytes        bps      pps\n");
	}
	for (uint64_t i = 0; i < res->npoints; i++) {
		const struct query_point *p = &res->points[i];
		if (o->fmt == QOUT_CSV) {
			puts_n(o, a, fmt_time(a, p->t_ms, 0, 'T'));
			putc_(o, ',');
			csv_u64(o, p->flows, ',');
			csv_u64(o, p->packets, ',');
			csv_u64(o, p->bytes, '\n');
			continue;
		}
		uint64_t bps, pps, bpp;
		query_rates(p->packets, p->bytes, (uint64_t)res->series_s * 1000, &bps, &pps, &bpp);
		puts_n(o, a, fmt_local(o, a, p->t_ms));
		size_t n = fmt_num(a, p->flows, o->plain);
		put_r(o, a, n, 10);
		n = fmt_num(a, p->packets, o->plain);
		put_r(o, a, n, 11);
		n = fmt_num(a, p->bytes, o->plain);
		put_r(o, a, n, 11);
		n = fmt_num(a, bps, o->plain);
		put_r(o, a, n, 11);
		n = fmt_num(a, pps, o->plain);
		put_r(o, a, n, 9);
		putc_(o, '\n');
	}
}

/* Series of the rows of statistics that have them (text formats: after the tables). */
static void row_series_out(struct qout *o, const struct query_result *res)
{
	for (unsigned ti = 0; ti < res->ntables; ti++) {
		const struct query_table *t = &res->table[ti];
		if (!t->req.series || !t->rows)
			continue;
		putc_(o, '\n');
		if (o->fmt == QOUT_CSV) {
			putf(o, "t,%s,flows,packets,bytes\n", query_field_name(t->req.key[0].field));
		} else {
			putf(o, "Time series of the top %s by %s, %u s buckets:\n",
			     query_field_title(t->req.key[0].field), query_order_name(t->req.order),
			     res->series_s);
			putf(o, "Bucket start            %16s    Flows    Packets      Bytes\n",
			     query_field_title(t->req.key[0].field));
		}
		for (uint64_t i = 0; i < t->nrows; i++)
			row_series_text(o, t, &t->rows[i]);
	}
}

static void summary_json(struct qout *o, const struct query_req *rq,
			 const struct query_summary *s)
{
	uint64_t dur = s->last_ms > s->first_ms ? s->last_ms - s->first_ms : 0, bps, pps, bpp;
	put(o, o->tables || rq->series_s ? ",\"summary\":{" : "\"summary\":{");
	/* the first keys as tapflow-query has always printed them */
	json_u64(o, "flows", s->flows);
	putc_(o, ',');
	json_u64(o, "packets", s->packets);
	putc_(o, ',');
	json_u64(o, "bytes", s->bytes);
	putc_(o, ',');
	if (s->flows) {
		json_time(o, "first", s->first_ms);
		putc_(o, ',');
		json_time(o, "last", s->last_ms);
	} else {
		put(o, "\"first\":null,\"last\":null");
	}
	putc_(o, ',');
	json_u64(o, "first_ms", s->first_ms);
	putc_(o, ',');
	json_u64(o, "last_ms", s->last_ms);
	putc_(o, ',');
	json_u64(o, "files", s->files);
	putc_(o, ',');
	json_u64(o, "blocks", s->blocks);
	putc_(o, ',');
	json_u64(o, "bad_blocks", s->bad_blocks);
	query_rates(s->packets, s->bytes, dur, &bps, &pps, &bpp);
	putc_(o, ',');
	json_u64(o, "avg_bps", bps);
	putc_(o, ',');
	json_u64(o, "avg_pps", pps);
	putc_(o, ',');
	json_u64(o, "avg_bpp", bpp);
	putc_(o, ',');
	json_u64(o, "duration_ms", dur);
	putc_(o, ',');
	json_u64(o, "files_skipped", s->files_skipped);
	putc_(o, ',');
	json_u64(o, "bad_files", s->bad_files);
	putc_(o, ',');
	json_u64(o, "blocks_skipped", s->blocks_skipped);
	putc_(o, ',');
	json_u64(o, "flows_scanned", s->flows_scanned);
	putc_(o, ',');
	json_u64(o, "tail_bytes", s->tail_bytes);
	putc_(o, ',');
	json_u64(o, "passes", s->passes);
	putc_(o, ',');
	json_u64(o, "partitions", s->partitions);
	putc_(o, ',');
	json_u64(o, "threads", s->threads);
	putc_(o, ',');
	json_u64(o, "mem_bytes", s->mem_bytes);
	put(o, ",\"limited\":");
	put(o, s->limited ? "true" : "false");
	if (rq->has_window) {
		put(o, ",\"window\":{");
		json_time(o, "from", rq->win.from_ms);
		putc_(o, ',');
		if (rq->win.to_ms == UINT64_MAX)
			put(o, "\"to\":null");
		else
			json_time(o, "to", rq->win.to_ms);
		putc_(o, '}');
	}
	put(o, "}}\n");
}

static void summary_text(struct qout *o, const struct query_req *rq,
			 const struct query_summary *s)
{
	uint64_t dur = s->last_ms > s->first_ms ? s->last_ms - s->first_ms : 0, bps, pps, bpp;
	char a[32], b[32], c[32], d[32];
	query_rates(s->packets, s->bytes, dur, &bps, &pps, &bpp);
	if (o->fmt == QOUT_CSV) {
		if (o->tables || rq->series_s)
			putc_(o, '\n');
		put(o, "flows,packets,bytes,avg_bps,avg_pps,avg_bpp,first,last,files,files_skipped,"
		    "bad_files,blocks,blocks_skipped,bad_blocks,flows_scanned,passes,threads\n");
		csv_u64(o, s->flows, ',');
		csv_u64(o, s->packets, ',');
		csv_u64(o, s->bytes, ',');
		csv_u64(o, bps, ',');
		csv_u64(o, pps, ',');
		csv_u64(o, bpp, ',');
		if (s->flows) {
			puts_n(o, a, fmt_time(a, s->first_ms, 0, 'T'));
			putc_(o, ',');
			puts_n(o, a, fmt_time(a, s->last_ms, 0, 'T'));
			putc_(o, ',');
		} else {
			put(o, ",,");
		}
		csv_u64(o, s->files, ',');
		csv_u64(o, s->files_skipped, ',');
		csv_u64(o, s->bad_files, ',');
		csv_u64(o, s->blocks, ',');
		csv_u64(o, s->blocks_skipped, ',');
		csv_u64(o, s->bad_blocks, ',');
		csv_u64(o, s->flows_scanned, ',');
		csv_u64(o, s->passes, ',');
		csv_u64(o, s->threads, '\n');
		return;
	}
	if (o->tables || rq->series_s)
		putc_(o, '\n');
	fmt_num(a, s->bytes, o->plain);
	fmt_num(b, bps, o->plain);
	putf(o, "Summary: total flows: %llu, total bytes: %s, total packets: %llu, avg bps: %s, "
	     "avg pps: %llu, avg bpp: %llu\n", (unsigned long long)s->flows, a,
	     (unsigned long long)s->packets, b, (unsigned long long)pps, (unsigned long long)bpp);
	if (s->flows) {
		fmt_local(o, c, s->first_ms);
		fmt_local(o, d, s->last_ms);
		putf(o, "Time window: %s - %s\n", c, d);
	} else {
		put(o, "Time window: none\n");
	}
	putf(o, "Flows scanned: %llu, matched: %llu; files: %llu (skipped %llu, bad %llu); "
	     "blocks: %llu (skipped %llu, bad %llu); passes: %u, threads: %u\n",
	     (unsigned long long)s->flows_scanned, (unsigned long long)s->flows,
	     (unsigned long long)s->files, (unsigned long long)s->files_skipped,
	     (unsigned long long)s->bad_files, (unsigned long long)s->blocks,
	     (unsigned long long)s->blocks_skipped, (unsigned long long)s->bad_blocks,
	     s->passes, s->threads);
	if (s->limited)
		put(o, "(stopped at the flow limit)\n");
}

int qout_finish(struct qout *o, const struct query_req *rq, const struct query_result *res)
{
	/* rows kept in res (no sink was used) go out now */
	for (unsigned ti = 0; ti < res->ntables && o->tables < res->ntables; ti++) {
		const struct query_table *t = &res->table[ti];
		if (o->tables > ti)
			continue;
		sink_begin(o, t);
		for (uint64_t i = 0; i < t->nrows && t->rows; i++)
			format_row(o, t, &t->rows[i]);
	}
	flush_batch(o);
	end_table(o);
	if (o->fmt == QOUT_JSON) {
		if (o->tables > 1)
			putc_(o, ']');
		if (!o->tables)
			putc_(o, '{');
		if (res->series_s)
			series_out(o, res);
		summary_json(o, rq, &res->sum);
	} else {
		if (res->series_s)
			series_out(o, res);
		row_series_out(o, res);
		summary_text(o, rq, &res->sum);
	}
	flush_buf(o);
	if (fflush(o->out) != 0)
		o->err = -EIO;
	return o->err;
}

int qout_parse_fmt(const char *s)
{
	if (!strcmp(s, "table") || !strcmp(s, "line"))
		return QOUT_TABLE;
	if (!strcmp(s, "csv"))
		return QOUT_CSV;
	if (!strcmp(s, "json"))
		return QOUT_JSON;
	return -1;
}

struct qout *qout_new(FILE *out, enum qout_fmt fmt, int plain)
{
	struct qout *o = calloc(1, sizeof(*o));
	if (!o)
		return NULL;
	o->b = malloc(BUF_SIZE);
	if (!o->b) {
		free(o);
		return NULL;
	}
	o->out = out;
	o->fmt = fmt;
	o->plain = plain;
	o->cap = BUF_SIZE;
	for (int i = 0; i < 64; i++)
		o->tz_period[i] = INT64_MIN;
	o->sink.begin = sink_begin;
	o->sink.row = sink_row;
	o->sink.arg = o;
	return o;
}

const struct query_sink *qout_sink(struct qout *o)
{
	return &o->sink;
}

void qout_free(struct qout *o)
{
	if (!o)
		return;
	for (unsigned i = 0; o->help && i < o->nhelp; i++)
		free(o->help[i].b);
	free(o->help);
	free(o->batch);
	free(o->b);
	free(o);
}
