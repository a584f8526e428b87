/* fuzz_filt.c: filter expressions from untrusted text. Input: the expression, then
 * optionally a NUL byte and bytes that describe up to 64 records (16 bytes each, values
 * drawn from small pools so filters hit them). Every expression is compiled; one that
 * compiles is evaluated over the records as a column block, and the run traps if
 * filt_eval disagrees with filt_match on any record, if the selection is not strictly
 * increasing, if the zone map would skip a block holding a match, or if taking the
 * tuple columns as a dictionary (as the store hands them out) changes the selection.
 * Seeds: tests/fuzz/seeds/fuzz_filt/ (one filter per file, some with record bytes).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "filt.h"

enum { MAXREC = 64, RECLEN = 16 };

static const uint8_t v4s[][4] = { { 10, 0, 0, 1 }, { 10, 0, 0, 2 }, { 192, 168, 0, 1 },
				  { 172, 16, 1, 2 } };
static const uint16_t ports[] = { 0, 22, 53, 80, 443, 2048, 8080, 65535 };
static const uint8_t protos[] = { 6, 17, 1, 58, 47, 50, 0, 255 };
static const uint64_t counts[] = { 0, 1, 10, 999, 1000, 1001, 5000, UINT64_MAX };

static void addr_pick(uint8_t a[16], unsigned v, int v6)
{
	if (!v6) {
		flowrec_addr4(a, v4s[v & 3]);
		return;
	}
	memset(a, 0, 16);
	a[0] = 0x20;
	a[1] = 0x01;
	a[2] = 0x0d;
	a[3] = 0xb8;
	a[15] = (uint8_t)(v & 3);
	if (v & 4) { /* sometimes v4-mapped under an IPv6 record */
		flowrec_addr4(a, v4s[v & 3]);
	}
}

static void rec_of(struct flow_rec *r, const uint8_t *b)
{
	int v6 = b[0] & 1;

	memset(r, 0, sizeof(*r));
	r->ipver = v6 ? 6 : (b[0] & 2 ? 0 : 4);
	addr_pick(r->src, b[1], v6);
	addr_pick(r->dst, b[2], v6);
	addr_pick(r->nexthop, b[14], b[14] >> 4 & 1);
	addr_pick(r->exporter, b[14] >> 2, 0);
	r->proto = protos[b[3] & 7];
	r->sport = b[0] & 4 ? (uint16_t)(b[4] << 8 | b[5]) : ports[b[4] & 7];
	r->dport = b[0] & 8 ? (uint16_t)(b[6] << 8 | b[7]) : ports[b[6] & 7];
	r->tcp_flags = b[8];
	r->tos = b[9];
	r->packets = counts[b[10] & 7];
	r->bytes = counts[b[11] & 7] * (1 + (b[11] >> 3 & 3));
	r->first_ms = 1000000 + (b[12] & 0xf);
	r->last_ms = r->first_ms + counts[b[12] >> 4 & 7];
	r->in_if = b[13] & 3;
	r->out_if = b[13] >> 2 & 3;
	r->src_as = b[13] >> 4 & 1 ? 64500 : 0;
	r->dst_as = b[13] >> 5 & 1 ? 64500 : 0;
	r->vlan = (uint16_t)(b[13] >> 6 ? 100 : 0);
	r->src_mask = (uint8_t)(b[15] & 0x7f);
	r->dst_mask = (uint8_t)(b[15] >> 1);
	r->domain_id = b[15] >> 6;
}

static void cols_put(struct store_cols *c, uint32_t i, const struct flow_rec *r)
{
	memcpy(c->src[i], r->src, 16);
	memcpy(c->dst[i], r->dst, 16);
	memcpy(c->nexthop[i], r->nexthop, 16);
	memcpy(c->exporter[i], r->exporter, 16);
	c->packets[i] = r->packets;
	c->bytes[i] = r->bytes;
	c->first_ms[i] = r->first_ms;
	c->last_ms[i] = r->last_ms;
	c->in_if[i] = r->in_if;
	c->out_if[i] = r->out_if;
	c->src_as[i] = r->src_as;
	c->dst_as[i] = r->dst_as;
	c->domain_id[i] = r->domain_id;
	c->sampling[i] = r->sampling;
	c->sport[i] = r->sport;
	c->dport[i] = r->dport;
	c->vlan[i] = r->vlan;
	c->proto[i] = r->proto;
	c->tos[i] = r->tos;
	c->tcp_flags[i] = r->tcp_flags;
	c->ipver[i] = r->ipver;
	c->src_mask[i] = r->src_mask;
	c->dst_mask[i] = r->dst_mask;
	c->end_reason[i] = r->end_reason;
}

/* The store's zone map; counter sums saturate (what filt_zone_may_match relies on). */
static uint64_t sat_add(uint64_t a, uint64_t b)
{
	return a + b < a ? UINT64_MAX : a + b;
}

static void zone_of(struct store_zone *z, const struct flow_rec *r, uint32_t n)
{
	memset(z, 0, sizeof(*z));
	z->first_min = z->last_min = UINT64_MAX;
	z->sport_min = z->dport_min = UINT16_MAX;
	for (uint32_t i = 0; i < n; i++) {
		if (r[i].first_ms < z->first_min) z->first_min = r[i].first_ms;
		if (r[i].first_ms > z->first_max) z->first_max = r[i].first_ms;
		if (r[i].last_ms < z->last_min) z->last_min = r[i].last_ms;
		if (r[i].last_ms > z->last_max) z->last_max = r[i].last_ms;
		if (r[i].sport < z->sport_min) z->sport_min = r[i].sport;
		if (r[i].sport > z->sport_max) z->sport_max = r[i].sport;
		if (r[i].dport < z->dport_min) z->dport_min = r[i].dport;
		if (r[i].dport > z->dport_max) z->dport_max = r[i].dport;
		z->packets = sat_add(z->packets, r[i].packets);
		z->bytes = sat_add(z->bytes, r[i].bytes);
		z->proto[r[i].proto >> 3] |= (uint8_t)(1u << (r[i].proto & 7));
		z->ipver |= r[i].ipver == 6 ? 2 : 1;
	}
}

/* Names resolve without the network: by their length, to one, two or no addresses. */
static int fuzz_resolve(const char *name, uint8_t (*out)[16], int max, char *err,
			size_t errlen)
{
	size_t n = strlen(name) % 3;
	if (n == 0 || max < 2) {
		snprintf(err, errlen, "no such host");
		return -1;
	}
	memset(out, 0, 2 * 16);
	out[0][10] = out[0][11] = 0xff;
	out[0][12] = 10;
	out[0][15] = (uint8_t)name[0];
	out[1][0] = 0x20;
	out[1][1] = 0x01;
	out[1][15] = (uint8_t)name[0];
	return (int)n;
}

static int same_tuple(const struct flow_rec *a, const struct flow_rec *b)
{
	return a->in_if == b->in_if && a->out_if == b->out_if && a->vlan == b->vlan &&
	       a->proto == b->proto && a->tos == b->tos && a->tcp_flags == b->tcp_flags &&
	       a->ipver == b->ipver && a->src_mask == b->src_mask &&
	       a->dst_mask == b->dst_mask && a->end_reason == b->end_reason;
}

/* The same block with the filter's tuple columns as a dictionary of distinct tuples and
 * an index a record, as an array and bit-packed (as the store's reader hands them out,
 * the record arrays of those columns gone): the selection must not change. */
static void tuple_check(const struct filt *f, const struct store_cols *c,
			const struct flow_rec *rec, uint32_t n, const uint32_t *sel, uint32_t k,
			struct store_cols *d)
{
	uint32_t members = filt_tuple_columns(f), tidx[MAXREC], sel2[MAXREC], nd = 0;
	struct store_cols tv;

	if (store_cols_reserve(d, MAXREC, STORE_COLS_ALL) < 0)
		return;
	d->mask = STORE_TUPLE_MEMBERS;
	for (uint32_t i = 0; i < n; i++) {
		uint32_t j;
		for (j = 0; j < nd; j++) {
			struct flow_rec t;
			store_cols_get(d, j, &t);
			if (same_tuple(&t, &rec[i]))
				break;
		}
		if (j == nd)
			cols_put(d, nd++, &rec[i]);
		tidx[i] = j;
	}
	d->n = nd;
	tv = *c;
#define DROP(fl, col) if (members & STORE_COLBIT(col)) tv.fl = NULL
	DROP(in_if, STORE_COL_IN_IF); DROP(out_if, STORE_COL_OUT_IF); DROP(vlan, STORE_COL_VLAN);
	DROP(proto, STORE_COL_PROTO); DROP(tos, STORE_COL_TOS);
	DROP(tcp_flags, STORE_COL_TCP_FLAGS); DROP(ipver, STORE_COL_IPVER);
	DROP(src_mask, STORE_COL_SRC_MASK); DROP(dst_mask, STORE_COL_DST_MASK);
	DROP(end_reason, STORE_COL_END_REASON);
#undef DROP
	tv.mask &= ~members;
	tv.tuple = members;
	tv.tidx = tidx;
	tv.tdict = d;
	if (filt_eval(f, &tv, sel2) != k || memcmp(sel, sel2, k * sizeof(*sel)))
		__builtin_trap();
	/* and the indices bit-packed, as the store hands them out (tidx NULL) */
	uint8_t packed[MAXREC * 2 + 32];
	unsigned w = nd > 1 ? 32 - (unsigned)__builtin_clz(nd - 1) : 0;
	memset(packed, 0, sizeof(packed));
	for (uint32_t i = 0; i < n; i++)
		for (unsigned b = 0; b < w; b++)
			packed[(i * w + b) / 8] |= (uint8_t)((tidx[i] >> b & 1) << (i * w + b) % 8);
	tv.tidx = NULL;
	tv.tpk.p = packed;
	tv.tpk.base = 0;
	tv.tpk.mask = (1u << w) - 1;
	tv.tpk.w = w;
	if (filt_eval(f, &tv, sel2) != k || memcmp(sel, sel2, k * sizeof(*sel)))
		__builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint8_t dflt[4 * RECLEN] = {
		0, 2, 3, 0, 4, 0, 1, 0, 0x12, 16, 2, 3, 0x21, 0x15, 0, 24,
		1, 1, 2, 1, 2, 0, 3, 0, 0, 0, 1, 1, 0, 0x2a, 0x10, 48,
		0, 0, 2, 2, 0, 0, 5, 0, 0, 0, 3, 2, 0x30, 0xc0, 0x04, 0x41,
		2, 3, 1, 0, 1, 0, 4, 0, 0x02, 8, 1, 0, 0x13, 0x03, 0, 16,
	};
	struct flow_rec rec[MAXREC];
	uint32_t sel[MAXREC], n = 0, k, j = 0;
	const uint8_t *nul, *rb;
	size_t elen, rlen;
	struct store_cols c, d;
	struct store_zone z;
	struct filt *f;
	char *expr, err[256];
	size_t pos;
	int any = 0;

	if (size > 8192)
		return 0;
	nul = memchr(data, 0, size);
	elen = nul ? (size_t)(nul - data) : size;
	rb = nul ? nul + 1 : dflt;
	rlen = nul ? size - elen - 1 : sizeof(dflt);
	expr = malloc(elen + 1);
	if (!expr)
		return 0;
	memcpy(expr, data, elen);
	expr[elen] = 0;
	f = filt_compile_names(expr, fuzz_resolve, err, sizeof(err), &pos);
	if (f) {
		/* names spelled out (--remote): compiles without a resolver */
		char *x = filt_expand_names(expr, fuzz_resolve, err, sizeof(err), &pos);
		struct filt *g = x ? filt_compile(x, err, sizeof(err), &pos) : NULL;
		if (!g)
			__builtin_trap();
		filt_free(g);
		free(x);
	}
	free(expr);
	if (!f) {
		if (pos > elen || !memchr(err, 0, sizeof(err)))
			__builtin_trap();
		return 0;
	}
	for (; n < MAXREC && (n + 1) * RECLEN <= rlen; n++)
		rec_of(&rec[n], rb + n * RECLEN);
	store_cols_init(&c);
	store_cols_init(&d);
	if (store_cols_reserve(&c, MAXREC, STORE_COLS_ALL) == 0) {
		for (uint32_t i = 0; i < n; i++)
			cols_put(&c, i, &rec[i]);
		c.n = n;
		c.mask = STORE_COLS_ALL;
		k = filt_eval(f, &c, sel);
		if (k > n)
			__builtin_trap();
		for (uint32_t i = 0; i < n; i++) {
			int m = filt_match(f, &rec[i]);
			if (m != (j < k && sel[j] == i))
				__builtin_trap();
			if (j > 0 && j < k && sel[j] <= sel[j - 1])
				__builtin_trap();
			j += (uint32_t)m;
			any |= m;
		}
		zone_of(&z, rec, n);
		if (any && !filt_zone_may_match(f, &z))
			__builtin_trap();
		(void)filt_columns(f);
		if (n && filt_tuple_columns(f))
			tuple_check(f, &c, rec, n, sel, k, &d);
	}
	store_cols_free(&c);
	store_cols_free(&d);
	filt_free(f);
	return 0;
}
