/* test_query.c: the query engine against a brute-force model of the same flows.
 * A store is written with the store writer (several files and blocks); every answer
 * is checked exactly: totals, -s on every element and order, -A, flow listings,
 * series buckets, window edges, limits, and that a tiny memory limit (hash partitions,
 * bounds) or another thread count gives the very same rows. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bytes.h"
#include "qout.h"
#include "query.h"
#include "store.h"
#include "tmpdir.h"

#define NFLOWS 12000
#define T0 1767225600000ULL     /* 2026-01-01T00:00:00Z */

static char dir[TEST_PATH_MAX];
static struct flow_rec flows[NFLOWS];
/* the flows the model answers from: flows, or a test's own store's */
static const struct flow_rec *mflows = flows;
static int mnflows = NFLOWS;

static uint64_t rng_state = 0x853c49e6748fea9bULL;

static uint64_t rnd(void)
{
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static void addr4(uint8_t a[16], uint32_t v)
{
	uint8_t b[4] = { (uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v };
	flowrec_addr4(a, b);
}

/* Deterministic flows: sources among ~1500 addresses (some IPv6), ports, protocols,
 * interfaces, masks; times from T0 over ~2 hours, in time order; some replies to the
 * flow before (mirrored blocks). */
static void make_flows(void)
{
	for (int i = 0; i < NFLOWS; i++) {
		struct flow_rec *r = &flows[i];
		uint64_t h = rnd();
		memset(r, 0, sizeof(*r));
		if (h % 10 == 0) {
			static const uint8_t p6[16] = { 0x20, 0x01, 0x0d, 0xb8 };
			memcpy(r->src, p6, 16);
			r->src[15] = (uint8_t)(h >> 8);
			r->src[9] = (uint8_t)(h >> 16 & 3);
			memcpy(r->dst, p6, 16);
			r->dst[15] = (uint8_t)(h >> 24 & 7);
			r->ipver = 6;
		} else {
			/* ~150 of them in each block of 500: dictionary coded */
			addr4(r->src, 0x0a000000u +
				      ((uint32_t)i / 500 * 61 + (uint32_t)(h >> 8) % 150) % 1500 * 7);
			addr4(r->dst, 0xc0a80000u + (uint32_t)(h >> 24) % 64);
			r->ipver = 4;
		}
		addr4(r->exporter, 0x7f000001u + (uint32_t)(h >> 32) % 3);
		static const uint8_t protos[] = { 6, 6, 6, 17, 17, 1, 47 };
		r->proto = protos[(h >> 36) % 7];
		r->sport = r->proto == 1 || r->proto == 47 ? 0 : (uint16_t)(1024 + (h >> 40) % 50);
		static const uint16_t dports[] = { 443, 80, 53, 22, 8080 };
		r->dport = r->proto == 47 ? 0 : dports[(h >> 44) % 5];
		r->tos = (h >> 47) % 3 == 0 ? 0xb8 : 0;
		r->in_if = (uint32_t)(h >> 49) % 4 + 1;
		r->out_if = (uint32_t)(h >> 51) % 3 + 10;
		r->src_as = (uint32_t)(h >> 53) % 5 * 100;
		r->dst_as = (uint32_t)(h >> 55) % 2 * 65000;
		r->vlan = (uint16_t)((h >> 57) % 3 * 10);
		r->src_mask = (uint8_t)((h >> 59) % 3 == 0 ? 0 : 16 + (h >> 61) % 9);
		r->dst_mask = 24;
		uint64_t h2 = rnd();
		r->packets = 1 + h2 % 40;
		r->bytes = r->packets * (40 + (h2 >> 8) % 1400);
		r->first_ms = T0 + (uint64_t)i * 600 + (h2 >> 20) % 500;
		r->last_ms = r->first_ms + (h2 >> 32) % 90000;
		r->tcp_flags = r->proto == 6 ? 0x1b : 0;
		r->sampling = 1;
		if (i % 4 == 3 && flows[i - 1].proto == r->proto) {
			/* a reply: the store keeps it as a mirror of the request */
			const struct flow_rec *q = &flows[i - 1];
			memcpy(r->src, q->dst, 16);
			memcpy(r->dst, q->src, 16);
			r->sport = q->dport;
			r->dport = q->sport;
			r->ipver = q->ipver;
		}
	}
}

/* A writer under d: blocks of 500, files of interval_s. */
static struct store_writer *open_writer(const char *d, uint32_t interval_s)
{
	struct store_cfg cfg;
	store_cfg_default(&cfg, d);
	cfg.nosync = 1;
	cfg.block_recs = 500;
	cfg.interval_s = interval_s;
	return store_writer_open(&cfg, T0);
}

/* Stores v[0..n) (in time order) under d: blocks of 500, files of 30 minutes. */
static int write_store(const char *d, const struct flow_rec *v, int n)
{
	struct store_writer *w = open_writer(d, 1800);
	if (!w)
		return -1;
	for (int i = 0; i < n; i++) {
		if (store_writer_rotate(w, v[i].first_ms) < 0 || store_writer_add(w, &v[i]) < 0)
			return -1;
	}
	return store_writer_close(w);
}

/* Removes a test's own store directory d. */
static void rm_dir(const char *d)
{
	char cmd[3 * TEST_PATH_MAX];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", d);
	assert_int_equal(system(cmd), 0);
}

static int setup_store(void **st)
{
	(void)st;
	if (!test_mkdtemp(dir, sizeof(dir), "tf-query"))
		return -1;
	make_flows();
	return write_store(dir, flows, NFLOWS);
}

static int teardown_store(void **st)
{
	(void)st;
	char cmd[3 * TEST_PATH_MAX];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	return system(cmd) == 0 ? 0 : -1;
}

/* ---- the model ---- */

struct mkey {
	uint8_t b[48];
};

struct mrow {
	struct mkey k;
	uint64_t flows, packets, bytes, first, last;
};

static void be16(uint8_t *p, uint16_t v) { st_be16(p, v); }
static void be32(uint8_t *p, uint32_t v) { st_be32(p, v); }

static void masked(uint8_t *out, const uint8_t *a, unsigned m4, unsigned m6, uint8_t *mlen)
{
	int v4 = flowrec_is4(a);
	unsigned m = v4 ? m4 : m6, bits = v4 ? 96 + m : m;
	for (unsigned i = 0; i < 16; i++) {
		unsigned keep = bits > i * 8 ? bits - i * 8 : 0;
		out[i] = keep >= 8 ? a[i] : (uint8_t)(a[i] & (0xff00u >> keep));
	}
	*mlen = (uint8_t)m;
}

/* Key bytes of field k for flow r (side 1: the destination side of ip/port), laid
 * out as the engine documents its order: addresses bytewise, numbers big-endian. */
static size_t mkey_put(uint8_t *p, const struct query_key *k, const struct flow_rec *r, int side)
{
	switch (k->field) {
	case QF_SRCIP: memcpy(p, r->src, 16); return 16;
	case QF_DSTIP: memcpy(p, r->dst, 16); return 16;
	case QF_IP: memcpy(p, side ? r->dst : r->src, 16); return 16;
	case QF_EXPORTER: memcpy(p, r->exporter, 16); return 16;
	case QF_SRCPORT: be16(p, r->sport); return 2;
	case QF_DSTPORT: be16(p, r->dport); return 2;
	case QF_PORT: be16(p, side ? r->dport : r->sport); return 2;
	case QF_PROTO: p[0] = r->proto; return 1;
	case QF_TOS: p[0] = r->tos; return 1;
	case QF_INIF: be32(p, r->in_if); return 4;
	case QF_OUTIF: be32(p, r->out_if); return 4;
	case QF_SRCAS: be32(p, r->src_as); return 4;
	case QF_DSTAS: be32(p, r->dst_as); return 4;
	case QF_IF: be32(p, side ? r->out_if : r->in_if); return 4;
	case QF_AS: be32(p, side ? r->dst_as : r->src_as); return 4;
	case QF_VLAN: be16(p, r->vlan); return 2;
	case QF_SRCNET:
	case QF_DSTNET: {
		const uint8_t *a = k->field == QF_SRCNET ? r->src : r->dst;
		unsigned fm = k->field == QF_SRCNET ? r->src_mask : r->dst_mask;
		if (k->mask4 != QUERY_MASK_FLOW)
			masked(p, a, k->mask4, k->mask6, p + 16);
		else if (fm)
			masked(p, a, fm > 32 ? 32 : fm, fm, p + 16);
		else {
			memcpy(p, a, 16);
			p[16] = 0;
		}
		return 17;
	}
	}
	fail();
	return 0;
}

static int mrow_key_cmp(const void *a, const void *b)
{
	return memcmp(((const struct mrow *)a)->k.b, ((const struct mrow *)b)->k.b, 48);
}

static int in_window(const struct flow_rec *r, const struct query_req *rq)
{
	if (!rq->has_window)
		return 1;
	switch (rq->win_mode) {
	case QUERY_WIN_OVERLAP:
		return r->first_ms <= rq->win.to_ms && r->last_ms >= rq->win.from_ms;
	case QUERY_WIN_FIRST:
		return r->first_ms >= rq->win.from_ms && r->first_ms <= rq->win.to_ms;
	default:
		return r->first_ms >= rq->win.from_ms && r->last_ms <= rq->win.to_ms;
	}
}

typedef int (*mfilter)(const struct flow_rec *);

/* Groups the matching flows by the table's keys: returns rows in key order. */
static struct mrow *model(const struct query_req *rq, const struct query_table_req *t,
			  mfilter f, size_t *n)
{
	struct mrow *v = calloc(2 * NFLOWS + 1, sizeof(*v));
	size_t k = 0, m = 0;
	int f0 = t->key[0].field;
	int both = t->kind == QK_STAT &&
		   (f0 == QF_IP || f0 == QF_PORT || f0 == QF_IF || f0 == QF_AS);
	assert_non_null(v);
	for (int i = 0; i < mnflows; i++) {
		const struct flow_rec *r = &mflows[i];
		if (!in_window(r, rq) || (f && !f(r)))
			continue;
		for (int side = 0; side <= both; side++) {
			struct mrow *x = &v[k++];
			size_t off = 0;
			for (unsigned j = 0; j < t->nkey; j++)
				off += mkey_put(x->k.b + off, &t->key[j], r, side);
			x->flows = 1;
			x->packets = r->packets;
			x->bytes = r->bytes;
			x->first = r->first_ms;
			x->last = r->last_ms;
		}
	}
	qsort(v, k, sizeof(*v), mrow_key_cmp);
	for (size_t i = 0; i < k; i++) {
		if (m && !memcmp(v[m - 1].k.b, v[i].k.b, 48)) {
			struct mrow *g = &v[m - 1];
			g->flows += v[i].flows;
			g->packets += v[i].packets;
			g->bytes += v[i].bytes;
			if (v[i].first < g->first)
				g->first = v[i].first;
			if (v[i].last > g->last)
				g->last = v[i].last;
		} else {
			v[m++] = v[i];
		}
	}
	*n = m;
	return v;
}

static uint64_t mmetric(const struct mrow *r, int order)
{
	uint64_t bps, pps, bpp;
	query_rates(r->packets, r->bytes, r->last - r->first, &bps, &pps, &bpp);
	switch (order) {
	case QO_FLOWS: return r->flows;
	case QO_PACKETS: return r->packets;
	case QO_BYTES: return r->bytes;
	case QO_BPS: return bps;
	case QO_PPS: return pps;
	case QO_BPP: return bpp;
	case QO_TSTART: return r->first;
	case QO_TEND: return r->last;
	default: return r->last - r->first;
	}
}

static int g_order;

static int mrow_order_cmp(const void *a, const void *b)
{
	const struct mrow *x = a, *y = b;
	uint64_t mx = mmetric(x, g_order), my = mmetric(y, g_order);
	int asc = g_order == QO_TSTART || g_order == QO_TEND;
	if (mx != my)
		return (mx < my) == asc ? -1 : 1;
	return memcmp(x->k.b, y->k.b, 48);
}

/* The engine's key bytes of a result row, rebuilt through the model's layout. */
static void row_key(const struct query_table_req *t, const struct query_row *r, struct mkey *k)
{
	size_t off = 0;
	memset(k, 0, sizeof(*k));
	for (unsigned j = 0; j < t->nkey; j++)
		off += mkey_put(k->b + off, &t->key[j], &r->f, 0);
}

/* Rows equal the model's, in the model's order (when ordered) and up to the limit. */
static void check_table(const struct query_req *rq, const struct query_result *res, unsigned ti,
			mfilter f)
{
	const struct query_table *qt = &res->table[ti];
	const struct query_table_req *t = &rq->table[ti];
	size_t n;
	struct mrow *m = model(rq, t, f, &n);
	if (qt->groups != QUERY_GROUPS_UNKNOWN)
		assert_int_equal(qt->groups, n);
	if (t->order != QO_NONE) {
		g_order = t->order;
		qsort(m, n, sizeof(*m), mrow_order_cmp);
	}
	size_t want = t->limit && t->limit < n ? t->limit : n;
	assert_int_equal(qt->nrows, want);
	for (size_t i = 0; i < want; i++) {
		const struct query_row *r = &qt->rows[i];
		struct mkey k;
		const struct mrow *x = NULL;
		row_key(t, r, &k);
		if (t->order != QO_NONE) {
			x = &m[i];
		} else {
			struct mrow probe;
			memset(&probe, 0, sizeof(probe));
			probe.k = k;
			x = bsearch(&probe, m, n, sizeof(*m), mrow_key_cmp);
			assert_non_null(x);
		}
		assert_memory_equal(k.b, x->k.b, 48);
		assert_int_equal(r->flows, x->flows);
		assert_int_equal(r->f.packets, x->packets);
		assert_int_equal(r->f.bytes, x->bytes);
		assert_int_equal(r->f.first_ms, x->first);
		assert_int_equal(r->f.last_ms, x->last);
	}
	free(m);
}

static void check_summary(const struct query_req *rq, const struct query_result *res, mfilter f)
{
	uint64_t fl = 0, pk = 0, by = 0, first = UINT64_MAX, last = 0;
	for (int i = 0; i < mnflows; i++) {
		const struct flow_rec *r = &mflows[i];
		if (!in_window(r, rq) || (f && !f(r)))
			continue;
		fl++;
		pk += r->packets;
		by += r->bytes;
		if (r->first_ms < first)
			first = r->first_ms;
		if (r->last_ms > last)
			last = r->last_ms;
	}
	assert_int_equal(res->sum.flows, fl);
	assert_int_equal(res->sum.packets, pk);
	assert_int_equal(res->sum.bytes, by);
	if (fl) {
		assert_int_equal(res->sum.first_ms, first);
		assert_int_equal(res->sum.last_ms, last);
	}
}

static void run_ok(const struct query_req *rq, struct query_result *res)
{
	int rc = query_run(rq, res);
	if (rc != 0)
		fail_msg("query_run: %d (%s)", rc, res->err);
}

static struct query_table_req stat_req(int field, int order, uint64_t limit)
{
	struct query_table_req t;
	memset(&t, 0, sizeof(t));
	t.kind = QK_STAT;
	t.order = (uint8_t)order;
	t.nkey = 1;
	t.key[0].field = (uint8_t)field;
	t.limit = limit;
	return t;
}

/* -A SPEC as a table request. */
static struct query_table_req aggr_req(const char *spec, int order, uint64_t limit)
{
	struct query_table_req t;
	char err[256];
	unsigned n;
	memset(&t, 0, sizeof(t));
	t.kind = QK_AGGR;
	t.order = (uint8_t)order;
	assert_int_equal(query_parse_aggr(spec, t.key, &n, err, sizeof(err)), 0);
	t.nkey = (uint8_t)n;
	t.limit = limit;
	return t;
}

/* ---- tests ---- */

static void test_totals(void **st)
{
	(void)st;
	struct query_req rq;
	struct query_result res;
	query_req_init(&rq, dir);
	run_ok(&rq, &res);
	check_summary(&rq, &res, NULL);
	assert_int_equal(res.sum.flows, NFLOWS);
	assert_int_equal(res.sum.flows_scanned, NFLOWS);
	assert_true(res.sum.files >= 4);
	assert_int_equal(res.sum.blocks_skipped, 0);
	assert_int_equal(res.sum.bad_blocks, 0);
	assert_int_equal(res.ntables, 0);
	query_result_free(&res);

	/* more stores read as one: the first 1000 flows again, in a second one */
	char d2[TEST_PATH_MAX];
	const char *more[] = { d2 };
	uint64_t by = 0;
	assert_non_null(test_mkdtemp(d2, sizeof(d2), "tf-query-more"));
	assert_int_equal(write_store(d2, flows, 1000), 0);
	for (int i = 0; i < 1000; i++)
		by += flows[i].bytes;
	rq.more_paths = more;
	rq.nmore = 1;
	rq.ntables = 1;
	rq.table[0] = stat_req(QF_PROTO, QO_FLOWS, 0);
	run_ok(&rq, &res);
	uint64_t all = by;
	for (int i = 0; i < NFLOWS; i++)
		all += flows[i].bytes;
	assert_int_equal(res.sum.flows, NFLOWS + 1000);
	assert_int_equal(res.sum.bytes, all);
	uint64_t rows = 0;
	for (uint64_t i = 0; i < res.table[0].nrows; i++)
		rows += res.table[0].rows[i].flows;
	assert_int_equal(rows, NFLOWS + 1000);
	query_result_free(&res);
	more[0] = "/nonexistent/store";
	query_req_init(&rq, dir);
	rq.more_paths = more;
	rq.nmore = 1;
	assert_true(query_run(&rq, &res) < 0);
	assert_non_null(strstr(res.err, "/nonexistent/store"));
	query_result_free(&res);
	rm_dir(d2);
}

static void test_stat_every_element_and_order(void **st)
{
	(void)st;
	static const int fields[] = { QF_SRCIP, QF_DSTIP, QF_IP, QF_SRCPORT, QF_DSTPORT, QF_PORT,
				      QF_PROTO, QF_TOS, QF_INIF, QF_OUTIF, QF_IF, QF_SRCAS,
				      QF_DSTAS, QF_AS, QF_VLAN, QF_EXPORTER, QF_SRCNET, QF_DSTNET };
	for (size_t fi = 0; fi < sizeof(fields) / sizeof(fields[0]); fi++) {
		struct query_req rq;
		struct query_result res;
		query_req_init(&rq, dir);
		for (int o = QO_FLOWS; o <= QO_BPP; o++) {
			rq.table[rq.ntables] = stat_req(fields[fi], o, o == QO_BYTES ? 0 : 7);
			if (fields[fi] == QF_SRCNET)
				rq.table[rq.ntables].key[0].mask4 = QUERY_MASK_FLOW;
			rq.ntables++;
		}
		run_ok(&rq, &res);
		check_summary(&rq, &res, NULL);
		for (unsigned t = 0; t < rq.ntables; t++) {
			check_table(&rq, &res, t, NULL);
			assert_int_equal(res.table[t].flows, NFLOWS);
		}
		query_result_free(&res);
	}
}

static void test_stat_fixed_masks(void **st)
{
	(void)st;
	struct query_req rq;
	struct query_result res;
	char err[256];
	query_req_init(&rq, dir);
	assert_int_equal(query_parse_stat("srcnet/20/48/bytes", NULL, 0, 0, &rq, err,
					  sizeof(err)), 0);
	assert_int_equal(query_parse_stat("dstnet/bytes/flows", NULL, 0, 5, &rq, err,
					  sizeof(err)), 0);
	assert_int_equal(rq.ntables, 3);
	assert_int_equal(rq.table[0].key[0].mask4, 20);
	assert_int_equal(rq.table[0].key[0].mask6, 48);
	assert_int_equal(rq.table[1].key[0].mask4, QUERY_MASK_FLOW);
	run_ok(&rq, &res);
	for (unsigned t = 0; t < rq.ntables; t++)
		check_table(&rq, &res, t, NULL);
	/* 10.0.0.0/20 holds sources 10.0.0.0 .. 10.0.15.255 */
	char buf[64];
	const struct query_row *r = NULL;
	for (uint64_t i = 0; i < res.table[0].nrows; i++)
		if (!strcmp(query_key_str(&rq.table[0].key[0], &res.table[0].rows[i], buf,
					  sizeof(buf)), "10.0.0.0/20"))
			r = &res.table[0].rows[i];
	assert_non_null(r);
	query_result_free(&res);
}

static void test_aggregate(void **st)
{
	(void)st;
	static const char *const specs[] = { "srcip,dstip", "proto,dstport", "srcnet/16,dstport",
					     "inif,outif,tos,vlan", "srcip4/24", "exporter,srcas" };
	for (size_t i = 0; i < sizeof(specs) / sizeof(specs[0]); i++) {
		for (int o = QO_NONE; o < QO__COUNT; o += 3) {
			struct query_req rq;
			struct query_result res;
			query_req_init(&rq, dir);
			rq.ntables = 1;
			rq.table[0] = aggr_req(specs[i], o, o == QO_FLOWS ? 25 : 0);
			run_ok(&rq, &res);
			check_table(&rq, &res, 0, NULL);
			query_result_free(&res);
		}
	}
}

static void test_record_stat_default_five_tuple(void **st)
{
	(void)st;
	struct query_req rq;
	struct query_result res;
	char err[256];
	query_req_init(&rq, dir);
	assert_int_equal(query_parse_stat("record/bytes", NULL, 0, 10, &rq, err, sizeof(err)), 0);
	assert_int_equal(rq.table[0].kind, QK_AGGR);
	assert_int_equal(rq.table[0].nkey, 5);
	run_ok(&rq, &res);
	check_table(&rq, &res, 0, NULL);
	assert_int_equal(res.table[0].nrows, 10);
	query_result_free(&res);
}

static int is_tcp(const struct flow_rec *r)
{
	return r->proto == 6;
}

static int tcp_443(const struct flow_rec *r)
{
	return r->proto == 6 && r->dport == 443;
}

static void test_filter(void **st)
{
	(void)st;
	struct query_req rq;
	struct query_result res;
	query_req_init(&rq, dir);
	rq.filter = "proto tcp and dst port 443";
	rq.table[0] = stat_req(QF_DSTIP, QO_BYTES, 10);
	rq.table[1] = stat_req(QF_SRCPORT, QO_FLOWS, 0);
	rq.ntables = 2;
	run_ok(&rq, &res);
	check_summary(&rq, &res, tcp_443);
	check_table(&rq, &res, 0, tcp_443);
	check_table(&rq, &res, 1, tcp_443);
	assert_int_equal(res.sum.flows_scanned, NFLOWS);
	query_result_free(&res);

	query_req_init(&rq, dir);
	rq.filter = "proto tcp";
	run_ok(&rq, &res);
	check_summary(&rq, &res, is_tcp);
	query_result_free(&res);

	/* a filter no block can match is answered from the zone maps alone */
	query_req_init(&rq, dir);
	rq.filter = "proto 132";
	run_ok(&rq, &res);
	assert_int_equal(res.sum.flows, 0);
	assert_int_equal(res.sum.blocks, 0);
	assert_int_equal(res.sum.blocks_skipped, (NFLOWS + 499) / 500);
	query_result_free(&res);
}

static void test_bad_filter_and_requests(void **st)
{
	(void)st;
	struct query_req rq;
	struct query_result res;
	query_req_init(&rq, dir);
	rq.filter = "proto tcp and dst prt 443";
	assert_int_equal(query_run(&rq, &res), -EINVAL);
	assert_int_equal(res.err_pos, 18);
	assert_non_null(strstr(res.err, "prt"));
	query_result_free(&res);

	query_req_init(&rq, "/nonexistent/store");
	assert_int_equal(query_run(&rq, &res), -ENOENT);
	query_result_free(&res);

	query_req_init(&rq, dir);
	rq.ntables = 1;
	rq.table[0].kind = QK_FLOWS; /* a listing needs a limit */
	assert_int_equal(query_run(&rq, &res), -EINVAL);
	query_result_free(&res);

	query_req_init(&rq, dir);
	rq.ntables = 1;
	rq.table[0] = stat_req(QF_IP, QO_FLOWS, 10);
	rq.table[0].kind = QK_AGGR; /* either-side fields only count, never group */
	assert_int_equal(query_run(&rq, &res), -EINVAL);
	query_result_free(&res);
}

static void test_window_edges(void **st)
{
	(void)st;
	const struct flow_rec *a = &flows[1000], *b = &flows[1200];
	static const int modes[] = { QUERY_WIN_INSIDE, QUERY_WIN_OVERLAP, QUERY_WIN_FIRST };
	for (int m = 0; m < 3; m++) {
		struct query_req rq;
		struct query_result res;
		query_req_init(&rq, dir);
		rq.has_window = 1;
		rq.win_mode = (uint8_t)modes[m];
		/* edges exactly on flows' times: inclusive at both ends */
		rq.win.from_ms = a->first_ms;
		rq.win.to_ms = b->last_ms;
		rq.table[0] = stat_req(QF_SRCIP, QO_BYTES, 0);
		rq.ntables = 1;
		run_ok(&rq, &res);
		check_summary(&rq, &res, NULL);
		check_table(&rq, &res, 0, NULL);
		assert_true(res.sum.blocks_skipped > 0 || res.sum.files_skipped > 0);
		if (modes[m] != QUERY_WIN_OVERLAP)
			assert_true(res.sum.first_ms >= a->first_ms);
		query_result_free(&res);

		rq.win.from_ms = a->first_ms + 1;
		rq.win.to_ms = b->last_ms - 1;
		run_ok(&rq, &res);
		check_summary(&rq, &res, NULL);
		query_result_free(&res);
	}
}

static void test_flow_listing(void **st)
{
	(void)st;
	struct query_req rq;
	struct query_result res;
	query_req_init(&rq, dir);
	rq.ntables = 1;
	rq.table[0].kind = QK_FLOWS;
	rq.table[0].limit = 17;
	rq.filter = "proto udp";
	run_ok(&rq, &res);
	/* the first 17 UDP flows in store order, whole */
	int k = 0;
	for (int i = 0; i < NFLOWS && k < 17; i++) {
		if (flows[i].proto != 17)
			continue;
		const struct flow_rec *g = &res.table[0].rows[k].f;
		assert_memory_equal(g->src, flows[i].src, 16);
		assert_int_equal(g->sport, flows[i].sport);
		assert_int_equal(g->bytes, flows[i].bytes);
		assert_int_equal(g->in_if, flows[i].in_if);
		assert_int_equal(g->vlan, flows[i].vlan);
		k++;
	}
	assert_int_equal(res.table[0].nrows, 17);
	query_result_free(&res);

	/* ordered: the 5 biggest, ties by store order */
	query_req_init(&rq, dir);
	rq.ntables = 1;
	rq.table[0].kind = QK_FLOWS;
	rq.table[0].limit = 5;
	rq.table[0].order = QO_BYTES;
	run_ok(&rq, &res);
	uint64_t prev = UINT64_MAX;
	for (int i = 0; i < 5; i++) {
		uint64_t by = res.table[0].rows[i].f.bytes;
		assert_true(by <= prev);
		prev = by;
	}
	int bigger = 0;
	for (int i = 0; i < NFLOWS; i++)
		bigger += flows[i].bytes > prev;
	assert_true(bigger < 5);
	query_result_free(&res);
}

/* Checks streamed rows against the store, in order. */
struct list_check {
	int k;
	int stop_after;
};

static int list_row(void *arg, const struct query_table *t, const struct query_row *r)
{
	struct list_check *c = arg;
	(void)t;
	assert_true(c->k < NFLOWS);
	assert_memory_equal(r->f.src, flows[c->k].src, 16);
	assert_int_equal(r->f.sport, flows[c->k].sport);
	assert_int_equal(r->f.bytes, flows[c->k].bytes);
	assert_int_equal(r->flows, 1);
	c->k++;
	return c->stop_after && c->k >= c->stop_after;
}

/* A listing far longer than the memory limit holds streams out whole, in store order;
 * a sink that refuses a row ends the query with its error. */
static void test_long_listing_streams(void **st)
{
	(void)st;
	struct query_req rq;
	struct query_result res;
	struct list_check c = { 0, 0 };
	struct query_sink sk = { NULL, list_row, &c };
	query_req_init(&rq, dir);
	rq.ntables = 1;
	rq.table[0].kind = QK_FLOWS;
	rq.table[0].limit = UINT64_MAX;
	rq.max_memory = 64 << 10;       /* room for a few hundred kept flows */
	rq.sink = &sk;
	run_ok(&rq, &res);
	assert_int_equal(c.k, NFLOWS);
	assert_int_equal(res.table[0].nrows, NFLOWS);
	assert_int_equal(res.table[0].groups, NFLOWS);
	assert_int_equal(res.sum.flows, NFLOWS);
	assert_int_equal(res.sum.threads, 1);
	assert_true(res.sum.mem_bytes < 8 << 20);
	query_result_free(&res);

	c = (struct list_check){ 0, 7 };
	assert_int_equal(query_run(&rq, &res), -ECANCELED);
	assert_int_equal(c.k, 7);
	assert_int_equal(res.sum.bad_blocks, 0);
	query_result_free(&res);

	/* without a sink the rows are kept, within the limit */
	rq.sink = NULL;
	assert_int_equal(query_run(&rq, &res), -E2BIG);
	assert_non_null(strstr(res.err, "more rows than fit in the memory limit"));
	query_result_free(&res);
}

static void test_max_flows_like_nfdump_c(void **st)
{
	(void)st;
	struct query_req rq;
	struct query_result res;
	query_req_init(&rq, dir);
	rq.max_flows = 1234;
	run_ok(&rq, &res);
	assert_int_equal(res.sum.flows, 1234);
	assert_true(res.sum.limited);
	uint64_t by = 0;
	for (int i = 0; i < 1234; i++)
		by += flows[i].bytes;
	assert_int_equal(res.sum.bytes, by);
	query_result_free(&res);
}

static void test_series(void **st)
{
	(void)st;
	struct query_req rq;
	struct query_result res;
	query_req_init(&rq, dir);
	rq.series_s = 300;
	rq.has_window = 1;
	rq.win.from_ms = T0 + 600000;
	rq.win.to_ms = T0 + 3600000 - 1;
	rq.win_mode = QUERY_WIN_FIRST;
	rq.table[0] = stat_req(QF_DSTPORT, QO_BYTES, 3);
	rq.table[0].series = 1;
	rq.ntables = 1;
	run_ok(&rq, &res);
	check_summary(&rq, &res, NULL);
	check_table(&rq, &res, 0, NULL);
	/* buckets of the window, a flow whole in the bucket of its first time */
	assert_int_equal(res.npoints, 10);
	uint64_t tot = 0;
	for (uint64_t p = 0; p < res.npoints; p++) {
		uint64_t t = res.points[p].t_ms, fl = 0, by = 0;
		assert_int_equal(t, T0 + 600000 + p * 300000);
		for (int i = 0; i < NFLOWS; i++) {
			if (!in_window(&flows[i], &rq) || flows[i].first_ms < t ||
			    flows[i].first_ms >= t + 300000)
				continue;
			fl++;
			by += flows[i].bytes;
		}
		assert_int_equal(res.points[p].flows, fl);
		assert_int_equal(res.points[p].bytes, by);
		tot += fl;
	}
	assert_int_equal(tot, res.sum.flows);
	/* and per top row */
	for (uint64_t r = 0; r < res.table[0].nrows; r++) {
		const struct query_row *row = &res.table[0].rows[r];
		uint64_t sum = 0;
		assert_int_equal(row->npoints, 10);
		for (uint64_t p = 0; p < row->npoints; p++) {
			uint64_t t = row->points[p].t_ms, by = 0;
			for (int i = 0; i < NFLOWS; i++)
				if (in_window(&flows[i], &rq) && flows[i].dport == row->f.dport &&
				    flows[i].first_ms >= t && flows[i].first_ms < t + 300000)
					by += flows[i].bytes;
			assert_int_equal(row->points[p].bytes, by);
			sum += row->points[p].bytes;
		}
		assert_int_equal(sum, row->f.bytes);
	}
	query_result_free(&res);
}

/* Every row (keys, counters, order) of two results. */
static void same_rows(const struct query_result *a, const struct query_result *b)
{
	assert_int_equal(a->ntables, b->ntables);
	assert_int_equal(a->sum.flows, b->sum.flows);
	assert_int_equal(a->sum.bytes, b->sum.bytes);
	for (unsigned t = 0; t < a->ntables; t++) {
		assert_int_equal(a->table[t].nrows, b->table[t].nrows);
		for (uint64_t i = 0; i < a->table[t].nrows; i++) {
			const struct query_row *x = &a->table[t].rows[i], *y = &b->table[t].rows[i];
			assert_memory_equal(&x->f, &y->f, sizeof(x->f));
			assert_int_equal(x->flows, y->flows);
		}
	}
}

struct keeper {
	struct query_row *rows;
	uint64_t n, cap;
};

static int keep_cb(void *arg, const struct query_table *t, const struct query_row *r)
{
	struct keeper *k = arg;
	(void)t;
	if (k->n == k->cap) {
		k->cap = k->cap ? 2 * k->cap : 256;
		k->rows = realloc(k->rows, k->cap * sizeof(*r));
		assert_non_null(k->rows);
	}
	k->rows[k->n++] = *r;
	return 0;
}

static void fill_tables(struct query_req *rq)
{
	rq->table[0] = stat_req(QF_SRCIP, QO_BYTES, 10);  /* found through bounds */
	rq->table[1] = stat_req(QF_IP, QO_BPS, 10);       /* through partitions */
	rq->table[2] = stat_req(QF_PORT, QO_FLOWS, 0);
	rq->ntables = 3;
}

static int is_v4(const struct flow_rec *r)
{
	return r->ipver == 4;
}

/* Address keys are 4 bytes per IPv4 address unless the zone maps show IPv6 in the
 * window; an address that is neither (found while keys are built) sends the query round
 * again with full addresses. Every way gives the model's rows, also in hash partitions. */
static void test_compact_address_keys(void **st)
{
	(void)st;
	static const char *const specs[] = { "srcip,dstip", "dstip,srcport", "srcip" };
	for (size_t i = 0; i < sizeof(specs) / sizeof(specs[0]); i++) {
		for (int v4 = 0; v4 <= 1; v4++) {
			struct query_req rq;
			struct query_result res;
			query_req_init(&rq, dir);
			rq.filter = v4 ? "inet" : NULL;
			rq.ntables = 2;
			rq.table[0] = aggr_req(specs[i], QO_BYTES, 0);
			rq.table[1] = stat_req(QF_IP, QO_FLOWS, 20);
			run_ok(&rq, &res);
			check_table(&rq, &res, 0, v4 ? is_v4 : NULL);
			check_table(&rq, &res, 1, v4 ? is_v4 : NULL);
			assert_int_equal(res.sum.passes, 1); /* the zone maps tell of IPv6 */
			query_result_free(&res);
		}
	}
	/* a record with no addresses (neither IPv4 nor IPv6) only shows when its keys are
	 * built: the query goes round again, and the row keeps its all-zero address */
	char d2[TEST_PATH_MAX];
	assert_non_null(test_mkdtemp(d2, sizeof(d2), "tf-query-z"));
	struct flow_rec z[3];
	size_t k4 = 0;
	while (flows[k4].ipver != 4)
		k4++;
	z[0] = z[1] = z[2] = flows[k4];
	memset(z[2].src, 0, 16);
	memset(z[2].dst, 0, 16);
	z[2].ipver = 0;
	assert_int_equal(write_store(d2, z, 3), 0);
	struct query_req rz;
	struct query_result resz;
	query_req_init(&rz, d2);
	rz.ntables = 1;
	rz.table[0] = aggr_req("srcip,dstip", QO_FLOWS, 0);
	run_ok(&rz, &resz);
	assert_int_equal(resz.sum.passes, 2);
	assert_int_equal(resz.table[0].nrows, 2);
	assert_int_equal(resz.table[0].rows[0].flows, 2);
	assert_memory_equal(resz.table[0].rows[0].f.src, z[0].src, 16);
	assert_memory_equal(resz.table[0].rows[0].f.dst, z[0].dst, 16);
	assert_int_equal(resz.table[0].rows[1].flows, 1);
	assert_memory_equal(resz.table[0].rows[1].f.src, z[2].src, 16);
	query_result_free(&resz);
	char cmd[3 * TEST_PATH_MAX];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", d2);
	assert_int_equal(system(cmd), 0);

	/* compact keys in hash partitions (rows streamed into the test's own memory) */
	struct query_req rq;
	struct query_result res;
	struct keeper kp;
	struct query_sink sk = { NULL, keep_cb, &kp };
	memset(&kp, 0, sizeof(kp));
	query_req_init(&rq, dir);
	rq.filter = "inet";
	rq.ntables = 1;
	rq.table[0].kind = QK_AGGR;
	rq.table[0].nkey = 2;
	rq.table[0].key[0].field = QF_SRCIP;
	rq.table[0].key[1].field = QF_DSTIP;
	rq.max_memory = 256 << 10;
	rq.sink = &sk;
	run_ok(&rq, &res);
	res.table[0].rows = kp.rows;
	check_table(&rq, &res, 0, is_v4);
	assert_true(res.sum.partitions > 1);
	query_result_free(&res);
}

static int is_few(const struct flow_rec *r)
{
	return r->proto == 6 && r->sport == 1030 && r->dport == 22;
}

/* Blocks whose counters and times are stored as plain bit-packed values (ends spread
 * over the block's time in no order, FIRST coded against LAST, wide counters): tables
 * keyed by address read them where they are stored when most of a block's addresses
 * are selected, and unpack them when few are. Either way, the model's rows. */
static void test_packed_counters(void **st)
{
	(void)st;
	static struct flow_rec alt[NFLOWS];
	static const struct { const char *filter; mfilter f; } sel[] = {
		{ NULL, NULL }, { "proto tcp", is_tcp },
		{ "proto tcp and src port 1030 and dst port 22", is_few },
	};
	char d2[TEST_PATH_MAX];

	assert_non_null(test_mkdtemp(d2, sizeof(d2), "tf-query-packed"));
	for (int i = 0; i < NFLOWS; i++) {
		uint64_t h = rnd();
		alt[i] = flows[i];
		alt[i].last_ms = T0 + (uint64_t)(i / 500) * 300000 + h % 300000;
		alt[i].first_ms = alt[i].last_ms - (h >> 20) % 4;
		alt[i].packets = 1 + (h >> 24) % (1u << 20);
		alt[i].bytes = alt[i].packets * (40 + (h >> 44) % 1400);
	}
	assert_int_equal(write_store(d2, alt, NFLOWS), 0);
	mflows = alt;
	for (size_t f = 0; f < sizeof(sel) / sizeof(sel[0]); f++) {
		for (uint64_t mem = 0; mem <= 1; mem++) {
			struct query_req rq;
			struct query_result res;
			query_req_init(&rq, d2);
			rq.filter = sel[f].filter;
			rq.ntables = 5;
			rq.table[0] = stat_req(QF_SRCIP, QO_BYTES, 10);
			rq.table[1] = stat_req(QF_DSTIP, QO_FLOWS, 0);
			rq.table[2] = stat_req(QF_IP, QO_BPS, 20);
			rq.table[3] = stat_req(QF_DSTNET, QO_TSTART, 0);
			rq.table[3].key[0].mask4 = 24;
			rq.table[3].key[0].mask6 = 64;
			rq.table[4] = aggr_req("srcip", QO_PACKETS, 0);
			if (mem) {      /* a bound on the top 10 first, then the answer */
				rq.ntables = 1;
				rq.max_memory = 48 << 10;
			}
			run_ok(&rq, &res);
			check_summary(&rq, &res, sel[f].f);
			for (unsigned t = 0; t < rq.ntables; t++)
				check_table(&rq, &res, t, sel[f].f);
			if (mem && !sel[f].filter)
				assert_true(res.sum.passes > 1);
			query_result_free(&res);
		}
	}
	mflows = flows;
	rm_dir(d2);
}

/* An ordered listing longer than the memory limit holds: refused without a spill
 * directory; with one, the same rows in the same order as with memory enough (a long
 * list by bytes; a short one by start time, where flows after the last of the first
 * runs are dropped unwritten). */
static void test_long_ordered_listing_spills(void **st)
{
	(void)st;
	static const struct { int order; uint64_t limit; } cases[] = {
		{ QO_BYTES, NFLOWS - 1000 }, { QO_TSTART, 2000 }, { QO_DURATION, 1900 },
	};
	const char *t = getenv("TMPDIR");
	for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
		struct query_req rq;
		struct query_result big, small;
		struct keeper k;
		struct query_sink sk = { NULL, keep_cb, &k };
		query_req_init(&rq, dir);
		rq.ntables = 1;
		rq.table[0].kind = QK_FLOWS;
		rq.table[0].order = (uint8_t)cases[c].order;
		rq.table[0].limit = cases[c].limit;
		run_ok(&rq, &big);
		assert_int_equal(big.table[0].nrows, cases[c].limit);

		rq.max_memory = 256 << 10;      /* room for about 1800 flows */
		assert_int_equal(query_run(&rq, &small), -E2BIG);
		query_result_free(&small);
		memset(&k, 0, sizeof(k));
		rq.spill_dir = t && *t ? t : "/tmp";
		rq.sink = &sk;
		run_ok(&rq, &small);
		assert_int_equal(k.n, cases[c].limit);
		assert_int_equal(small.table[0].groups, NFLOWS);
		for (uint64_t i = 0; i < k.n; i++) {
			assert_int_equal(k.rows[i].f.bytes, big.table[0].rows[i].f.bytes);
			assert_int_equal(k.rows[i].f.first_ms, big.table[0].rows[i].f.first_ms);
			assert_int_equal(k.rows[i].f.last_ms, big.table[0].rows[i].f.last_ms);
			assert_memory_equal(k.rows[i].f.src, big.table[0].rows[i].f.src, 16);
			assert_int_equal(k.rows[i].f.sport, big.table[0].rows[i].f.sport);
		}
		small.table[0].rows = k.rows;   /* freed with the result */
		query_result_free(&small);
		query_result_free(&big);
	}
}

static void test_memory_cap_gives_same_answer(void **st)
{
	(void)st;
	struct query_req rq;
	struct query_result big, small, one;
	query_req_init(&rq, dir);
	fill_tables(&rq);
	run_ok(&rq, &big);
	assert_int_equal(big.sum.partitions, 1);
	for (unsigned t = 0; t < 3; t++)
		check_table(&rq, &big, t, NULL);

	rq.max_memory = 384 << 10;
	run_ok(&rq, &small);
	assert_true(small.sum.passes > 1);
	same_rows(&big, &small);
	/* no source stands out in these flows: bounds would keep most keys, so partitions
	 * alone find the answer, and count every group */
	assert_int_equal(small.table[0].groups, big.table[0].groups);

	rq.threads = 1;
	run_ok(&rq, &one);
	same_rows(&big, &one);
	query_result_free(&big);
	query_result_free(&small);
	query_result_free(&one);

	/* an unordered listing of every group comes in the same hash order whatever the
	 * memory and the threads (rows streamed into the test's own memory) */
	struct query_result r[3];
	struct keeper kp[3];
	for (int i = 0; i < 3; i++) {
		struct query_sink sk = { NULL, keep_cb, &kp[i] };
		memset(&kp[i], 0, sizeof(kp[i]));
		query_req_init(&rq, dir);
		rq.ntables = 1;
		rq.table[0].kind = QK_AGGR;
		rq.table[0].nkey = 2;
		rq.table[0].key[0].field = QF_SRCIP;
		rq.table[0].key[1].field = QF_DSTPORT;
		rq.max_memory = i == 0 ? 0 : 256 << 10;
		rq.threads = i == 2 ? 3 : 2;
		rq.sink = &sk;
		run_ok(&rq, &r[i]);
		r[i].table[0].rows = kp[i].rows; /* as if kept: check and compare them */
		check_table(&rq, &r[i], 0, NULL);
	}
	assert_int_equal(r[0].sum.partitions, 1);
	assert_true(r[1].sum.partitions > 1);
	same_rows(&r[0], &r[1]);
	same_rows(&r[0], &r[2]);
	for (int i = 0; i < 3; i++)
		query_result_free(&r[i]);

	/* an ordered list of everything that does not fit is refused, with a reason */
	query_req_init(&rq, dir);
	rq.table[0] = stat_req(QF_SRCIP, QO_BPP, 0);
	rq.ntables = 1;
	rq.max_memory = 64 << 10;
	assert_int_equal(query_run(&rq, &big), -E2BIG);
	assert_true(strlen(big.err) > 10);
	query_result_free(&big);

	/* ... unless it may spill: sorted runs on disk, merged as the rows go out, give
	 * the model's rows in its order, with or without a limit (many runs here; the
	 * top 3000 fit in memory without spilling too) */
	for (int i = 0; i < 4; i++) {
		struct keeper k;
		struct query_sink sk = { NULL, keep_cb, &k };
		const char *t = getenv("TMPDIR");
		memset(&k, 0, sizeof(k));
		query_req_init(&rq, dir);
		rq.table[0] = aggr_req("srcip,dstport", QO_BPP, i & 1 ? 3000 : 0);
		rq.ntables = 1;
		rq.max_memory = 256 << 10;
		rq.sink = &sk;
		if (i >= 2)
			rq.spill_dir = t && *t ? t : "/tmp";
		if (i == 0) {
			assert_int_equal(query_run(&rq, &big), -E2BIG);
			assert_non_null(strstr(big.err, "rows to keep in order"));
		} else {
			run_ok(&rq, &big);
			big.table[0].rows = k.rows;
			check_table(&rq, &big, 0, NULL);
		}
		query_result_free(&big);
	}
	rq.sink = NULL;
	rq.spill_dir = "/nonexistent/dir";     /* a top 3000 that spills: it cannot here */
	assert_int_equal(query_run(&rq, &big), -ENOENT);
	assert_non_null(strstr(big.err, "/nonexistent/dir"));
	query_result_free(&big);
}

/* Top sources by bytes over nsrc sources, nheavy of them heavy (heavy bytes a flow, the
 * rest 100), at max_memory mem with one thread (the estimates then do not depend on
 * how threads share the blocks): the same rows as without a limit.
 * Gives the limited run's summary and table 0's groups, and the groups there are. */
static void skewed_top(unsigned nsrc, unsigned nheavy, uint64_t heavy, uint64_t mem,
		       struct query_summary *sum, uint64_t *groups, uint64_t *all_groups)
{
	char d[TEST_PATH_MAX];
	static struct flow_rec v[NFLOWS];
	struct query_req rq;
	struct query_result all, lim;
	assert_non_null(test_mkdtemp(d, sizeof(d), "tf-query-skew"));
	for (int i = 0; i < NFLOWS; i++) {
		uint32_t src = (uint32_t)(rnd() % nsrc);
		v[i] = flows[i];
		addr4(v[i].src, 0x0a000000u + src);
		addr4(v[i].dst, 0xc0a80001u);
		v[i].ipver = 4;
		v[i].bytes = src < nheavy ? heavy + src : 100;
	}
	assert_int_equal(write_store(d, v, NFLOWS), 0);
	query_req_init(&rq, d);
	rq.table[0] = stat_req(QF_SRCIP, QO_BYTES, 5);
	rq.ntables = 1;
	rq.threads = 1;
	run_ok(&rq, &all);
	assert_int_equal(all.sum.partitions, 1);
	rq.max_memory = mem;
	run_ok(&rq, &lim);
	same_rows(&all, &lim);
	*sum = lim.sum;
	*groups = lim.table[0].groups;
	*all_groups = all.table[0].groups;
	query_result_free(&all);
	query_result_free(&lim);
	rm_dir(d);
}

/* Whether bounds pay: a few heavy sources among many light ones are found through
 * bounds in one more scan; many keys above the bound still need partitions, with the
 * bounds filtering; evenly spread values leave the bounds out for more room, and the
 * partitions are as few as the memory allows. */
static void test_bounds_or_partitions(void **st)
{
	(void)st;
	struct query_summary s;
	uint64_t groups, all;

	skewed_top(6000, 8, 100000000, 128 << 10, &s, &groups, &all);
	assert_int_equal(s.partitions, 1);
	assert_int_equal(s.passes, 3);  /* a part of the store, bounds, the answer */
	assert_int_equal(groups, QUERY_GROUPS_UNKNOWN);

	skewed_top(6000, 300, 1000000, 32 << 10, &s, &groups, &all);
	assert_true(s.partitions > 1);
	assert_int_equal(groups, QUERY_GROUPS_UNKNOWN);

	skewed_top(6000, 0, 0, 64 << 10, &s, &groups, &all);
	assert_true(s.partitions > 1);
	assert_int_equal(groups, all);
	/* 8 passes here; an estimate of the keys from a small part of the store, or one
	 * counted once per thread and doubled at every retry, takes more */
	assert_true(s.passes <= 10);
}

struct sink_log {
	unsigned begins;
	uint64_t rows;
	uint64_t stop_after;
	uint64_t bytes;
};

static int log_begin(void *arg, const struct query_table *t)
{
	struct sink_log *l = arg;
	assert_int_equal(t->index, l->begins);
	l->begins++;
	return 0;
}

static int log_row(void *arg, const struct query_table *t, const struct query_row *r)
{
	struct sink_log *l = arg;
	(void)t;
	l->rows++;
	l->bytes += r->f.bytes;
	return l->stop_after && l->rows >= l->stop_after;
}

/* -A srcip over d into sk, in memory so small that partitions stream out one after
 * the other. */
static void streamed_req(struct query_req *rq, const char *d, const struct query_sink *sk)
{
	query_req_init(rq, d);
	rq->ntables = 1;
	rq->table[0] = aggr_req("srcip", QO_NONE, 0); /* unordered: streamed */
	rq->sink = sk;
	rq->max_memory = 48 << 10;
}

static void test_sink_deadline(void **st)
{
	(void)st;
	struct query_req rq;
	struct query_result res;
	struct sink_log lg = { 0, 0, 0, 0 };
	struct query_sink sk = { log_begin, log_row, &lg };
	streamed_req(&rq, dir, &sk);
	run_ok(&rq, &res);
	assert_int_equal(lg.begins, 1);
	assert_int_equal(lg.rows, res.table[0].groups);
	assert_int_equal(lg.bytes, res.sum.bytes);
	assert_null(res.table[0].rows);
	query_result_free(&res);

	lg = (struct sink_log){ 0, 0, 5, 0 };
	assert_int_equal(query_run(&rq, &res), -ECANCELED);
	query_result_free(&res);

	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	query_req_init(&rq, dir);
	rq.deadline_ms = (uint64_t)ts.tv_sec * 1000 - 1;
	assert_int_equal(query_run(&rq, &res), -ETIMEDOUT);
	query_result_free(&res);
}

/* A sink that does something to the store once, at the first row, while the query
 * runs, and adds up the bytes of the rows. */
struct midway {
	void (*act)(void *arg);
	void *arg;
	int done;
	uint64_t rows_bytes;
};

static int midway_row(void *arg, const struct query_table *t, const struct query_row *r)
{
	struct midway *m = arg;
	(void)t;
	if (!m->done) {
		m->act(m->arg);
		m->done = 1;
	}
	m->rows_bytes += r->f.bytes;
	return 0;
}

static void add_second_half(void *arg)
{
	struct store_writer *w = arg;
	for (int i = NFLOWS / 2; i < NFLOWS; i++)
		assert_int_equal(store_writer_add(w, &flows[i]), 0);
	assert_int_equal(store_writer_flush(w), 0);
}

/* A query over a file the collector is still writing: every pass reads the file as it
 * was when the query began, so rows and summary agree, and blocks written while the
 * query runs wait for the next query. The writer adds the second half of the flows
 * while the first partition's rows stream out. */
static void test_live_file_snapshot(void **st)
{
	(void)st;
	char d[TEST_PATH_MAX];
	struct query_req rq;
	struct query_result res;
	struct store_writer *w;
	struct midway g = { add_second_half, NULL, 0, 0 };
	struct query_sink sk = { NULL, midway_row, &g };
	uint64_t half = 0, all = 0;
	assert_non_null(test_mkdtemp(d, sizeof(d), "tf-query-live"));
	g.arg = w = open_writer(d, 86400); /* one file */
	assert_non_null(w);
	for (int i = 0; i < NFLOWS; i++) {
		if (i < NFLOWS / 2)
			assert_int_equal(store_writer_add(w, &flows[i]), 0);
		all += flows[i].bytes;
		if (i < NFLOWS / 2)
			half += flows[i].bytes;
	}
	assert_int_equal(store_writer_flush(w), 0);

	streamed_req(&rq, d, &sk);
	run_ok(&rq, &res);
	assert_true(res.sum.passes > 1);
	assert_int_equal(g.done, 1);
	assert_int_equal(res.sum.flows, NFLOWS / 2);
	assert_int_equal(res.sum.bytes, half);
	assert_int_equal(g.rows_bytes, half);
	query_result_free(&res);

	/* the next query sees what came since */
	g.rows_bytes = 0;
	run_ok(&rq, &res);
	assert_int_equal(res.sum.flows, NFLOWS);
	assert_int_equal(g.rows_bytes, all);
	query_result_free(&res);
	assert_int_equal(store_writer_close(w), 0);
	rm_dir(d);
}

static int warned;

static void count_warn(const char *path, int err, const char *what, void *arg)
{
	(void)path;
	(void)err;
	(void)what;
	(void)arg;
	warned++;
}

static void unlink_file(void *arg)
{
	assert_int_equal(unlink(arg), 0);
}

/* Retention deletes the oldest file while a query runs: every pass still reads it (the
 * query holds its files open), so rows and summary agree and nothing is reported
 * unreadable. The next query no longer sees it, and does not call it missing. */
static void test_file_deleted_during_query(void **st)
{
	(void)st;
	char d[TEST_PATH_MAX];
	struct query_req rq;
	struct query_result res;
	struct store_list files = { NULL, 0 };
	struct midway dm = { unlink_file, NULL, 0, 0 };
	struct query_sink sk = { NULL, midway_row, &dm };
	uint64_t all = 0, gone = 0;
	assert_non_null(test_mkdtemp(d, sizeof(d), "tf-query-ret"));
	assert_int_equal(write_store(d, flows, NFLOWS), 0);
	assert_int_equal(store_list_files(d, &files), 0);
	assert_true(files.n > 2);
	dm.arg = files.v[0].path;
	struct store_reader *r = store_reader_open(files.v[0].path);
	assert_non_null(r);
	struct store_block_info bi;
	while (store_reader_next(r, &bi) > 0)
		gone += bi.zone.bytes;
	store_reader_close(r);
	for (int i = 0; i < NFLOWS; i++)
		all += flows[i].bytes;
	assert_true(gone > 0 && gone < all);

	warned = 0;
	streamed_req(&rq, d, &sk);
	rq.warn = count_warn;
	run_ok(&rq, &res);
	assert_int_equal(dm.done, 1);
	assert_true(res.sum.passes > 1);
	assert_int_equal(res.sum.bad_files, 0);
	assert_int_equal(warned, 0);
	assert_int_equal(res.sum.flows, NFLOWS);
	assert_int_equal(res.sum.bytes, all);
	assert_int_equal(dm.rows_bytes, all);
	query_result_free(&res);

	dm.rows_bytes = 0;
	run_ok(&rq, &res);
	assert_int_equal(res.sum.bad_files, 0);
	assert_int_equal(warned, 0);
	assert_int_equal(res.sum.bytes, all - gone);
	assert_int_equal(dm.rows_bytes, all - gone);
	query_result_free(&res);
	store_list_free(&files);
	rm_dir(d);
}

static void test_damaged_block_is_skipped(void **st)
{
	(void)st;
	char copy[TEST_PATH_MAX + 16], cmd[4 * TEST_PATH_MAX], path[2 * TEST_PATH_MAX] = "";
	snprintf(copy, sizeof(copy), "%s-damaged", dir);
	snprintf(cmd, sizeof(cmd), "rm -rf %s && cp -r %s %s", copy, dir, copy);
	assert_int_equal(system(cmd), 0);
	struct store_list l;
	assert_int_equal(store_list_files(copy, &l), 0);
	assert_true(l.n > 1);
	snprintf(path, sizeof(path), "%s", l.v[1].path);
	store_list_free(&l);
	/* flip a payload byte of the file's first block */
	FILE *f = fopen(path, "r+b");
	assert_non_null(f);
	assert_int_equal(fseek(f, STORE_FILE_HDR_LEN + 700, SEEK_SET), 0);
	int c = fgetc(f);
	assert_int_equal(fseek(f, STORE_FILE_HDR_LEN + 700, SEEK_SET), 0);
	fputc(c ^ 0x55, f);
	fclose(f);

	struct query_req rq;
	struct query_result res;
	query_req_init(&rq, copy);
	rq.warn = count_warn;
	rq.table[0] = stat_req(QF_SRCIP, QO_FLOWS, 3);
	rq.ntables = 1;
	warned = 0;
	run_ok(&rq, &res);
	assert_int_equal(res.sum.bad_blocks, 1);
	assert_int_equal(res.sum.flows, NFLOWS - 500);
	assert_true(warned >= 1);
	query_result_free(&res);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", copy);
	assert_int_equal(system(cmd), 0);
}

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void put_le32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint8_t odd_src[16];     /* the record a filter leaves out (not_odd) */

static int not_odd(const struct flow_rec *r)
{
	return memcmp(r->src, odd_src, 16) != 0;
}

static int few_srcs(const struct flow_rec *r)
{
	uint8_t a[16], b[16];
	addr4(a, 0x0a000007);
	addr4(b, 0x0a000009);
	return !memcmp(r->src, a, 16) || !memcmp(r->src, b, 16);
}

/* A block whose hash holds but one of whose destination codes is past its dictionary
 * (what a faulty writer would leave): wherever the query reads that code, the block is
 * reported damaged and none of it is counted (packed codes read by the table, or
 * unpacked for a few records, or addresses for -A); a query that selects around it
 * reads the rest. */
static void test_damaged_code_is_caught(void **st)
{
	(void)st;
	enum { N = 1000, BAD = 7 };
	static struct flow_rec f[N];
	char d2[TEST_PATH_MAX];
	uint64_t h = 0x9e3779b97f4a7c15ULL;

	assert_non_null(test_mkdtemp(d2, sizeof(d2), "tf-query-code"));
	for (int i = 0; i < N; i++) {
		h = h * 6364136223846793005ULL + 1442695040888963407ULL;
		memset(&f[i], 0, sizeof(f[i]));
		addr4(f[i].src, 0x0a000000u + (uint32_t)i);
		/* 50 addresses varying in every byte: a dictionary, 6-bit codes */
		addr4(f[i].dst, 0x9e3779b1u * (1 + (uint32_t)(h >> 33) % 50));
		f[i].ipver = 4;
		f[i].proto = 17;
		f[i].packets = 1 + (h >> 20) % 9;
		f[i].bytes = 100 * f[i].packets;
		f[i].first_ms = f[i].last_ms = T0 + (uint64_t)i * 10;
	}
	struct store_cfg cfg;
	store_cfg_default(&cfg, d2);
	cfg.nosync = 1;
	cfg.block_recs = 500;
	cfg.codec = STORE_CODEC_NONE;
	struct store_writer *w = store_writer_open(&cfg, T0);
	assert_non_null(w);
	for (int i = 0; i < N; i++)
		assert_int_equal(store_writer_add(w, &f[i]), 0);
	assert_int_equal(store_writer_close(w), 0);

	/* the first block's DST codes (a plain FOR): record BAD's set to all ones, then
	 * the payload and header hashes made right again */
	struct store_list l;
	assert_int_equal(store_list_files(d2, &l), 0);
	assert_int_equal(l.n, 1);
	FILE *fp = fopen(l.v[0].path, "r+b");
	store_list_free(&l);
	assert_non_null(fp);
	static uint8_t b[1 << 20];
	size_t len = fread(b, 1, sizeof(b), fp);
	assert_true(len > STORE_FILE_HDR_LEN + 200);
	uint8_t *bh = b + STORE_FILE_HDR_LEN;
	unsigned ncols = bh[5], hlen = bh[6] | bh[7] << 8;
	uint32_t plen = le32(bh + 12);
	uint8_t *pay = bh + hlen, *chunk = pay;
	const uint8_t *de = NULL;
	for (unsigned k = 0; k < ncols; k++) {
		if (bh[124 + 12 * k] == STORE_COL_DST) {
			de = bh + 124 + 12 * k;
			break;
		}
		chunk += le32(bh + 124 + 12 * k + 4);
	}
	assert_non_null(de);
	assert_int_equal(de[2], STORE_CODEC_NONE);
	assert_true(de[1] == 6 || de[1] == 12);         /* ADDR_DICT, ADDR_DICT2 */
	uint32_t nd = le32(chunk);
	uint8_t *fr = chunk + 4 + 16 * nd;
	if (de[1] == 12)
		assert_int_equal(*fr++, 2);             /* its codes a FOR block */
	unsigned wd = fr[8];
	assert_int_equal(fr[9], 0);
	assert_true((1u << wd) - 1 >= nd);             /* room for a code past nd */
	for (unsigned bit = BAD * wd; bit < (BAD + 1) * wd; bit++)
		fr[10 + bit / 8] |= (uint8_t)(1u << bit % 8);
	put_le32(bh + 16, store_payload_hash(b[37] ? b[37] : STORE_PHASH_XXH32, pay, plen));
	put_le32(bh + hlen - 4, store_hash32(bh, hlen - 4, 0));
	assert_int_equal(fseek(fp, 0, SEEK_SET), 0);
	assert_int_equal(fwrite(b, 1, len, fp), len);
	fclose(fp);

	static const struct {
		const char *filter;
		mfilter f;
		int aggr, bad;
	} cases[] = {
		{ NULL, NULL, 0, 1 },                   /* packed codes, counted */
		{ "not src host 10.0.0.7", not_odd, 0, 0 },   /* selected around */
		{ "src host 10.0.0.7 or src host 10.0.0.9", few_srcs, 0, 1 },   /* unpacked */
		{ NULL, NULL, 1, 1 },                   /* -A: addresses */
	};
	memcpy(odd_src, f[BAD].src, 16);
	for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
		struct query_req rq;
		struct query_result res;
		query_req_init(&rq, d2);
		rq.filter = cases[c].filter;
		rq.warn = count_warn;
		rq.ntables = 1;
		rq.table[0] = cases[c].aggr ? aggr_req("srcip,dstip", QO_FLOWS, 0)
					    : stat_req(QF_DSTIP, QO_FLOWS, 0);
		warned = 0;
		run_ok(&rq, &res);
		assert_int_equal(res.sum.bad_blocks, cases[c].bad);
		assert_int_equal(warned, cases[c].bad);
		mflows = cases[c].bad ? f + 500 : f;    /* a damaged block: the second only */
		mnflows = cases[c].bad ? 500 : N;
		check_summary(&rq, &res, cases[c].f);
		check_table(&rq, &res, 0, cases[c].f);
		mflows = flows;
		mnflows = NFLOWS;
		query_result_free(&res);
	}
	rm_dir(d2);
}

static void test_parse_time(void **st)
{
	(void)st;
	struct store_window w;
	char err[256];
	setenv("TZ", "UTC", 1);
	tzset();
	assert_int_equal(query_parse_time("2026/01/01.00:00:10-2026/01/01.00:00:20", 0, &w, err,
					  sizeof(err)), 0);
	assert_int_equal(w.from_ms, T0 + 10000);
	assert_int_equal(w.to_ms, T0 + 20000);
	assert_int_equal(query_parse_time("2026/01/01", 0, &w, err, sizeof(err)), 0);
	assert_int_equal(w.from_ms, T0);
	assert_int_equal(w.to_ms, UINT64_MAX);
	assert_int_equal(query_parse_time("2026/01/01.06", 0, &w, err, sizeof(err)), 0);
	assert_int_equal(w.from_ms, T0 + 6 * 3600000ULL);
	assert_int_equal(query_parse_time("2026/1/1.6:5", 0, &w, err, sizeof(err)), 0);
	assert_int_equal(w.from_ms, T0 + 6 * 3600000ULL + 5 * 60000);
	assert_int_equal(query_parse_time("2026-01-01T00:00:10Z-2026-01-01T01:00:00.250Z", 0, &w,
					  err, sizeof(err)), 0);
	assert_int_equal(w.from_ms, T0 + 10000);
	assert_int_equal(w.to_ms, T0 + 3600250);
	assert_int_equal(query_parse_time("2026-01-01T02:00:00+02:00-2026-01-01T00:30:00-01:00",
					  0, &w, err, sizeof(err)), 0);
	assert_int_equal(w.from_ms, T0);
	assert_int_equal(w.to_ms, T0 + 5400000);
	assert_int_equal(query_parse_time("-1h", T0 + 7200000, &w, err, sizeof(err)), 0);
	assert_int_equal(w.from_ms, T0 + 3600000);
	assert_int_equal(w.to_ms, T0 + 7200000);
	assert_int_equal(query_parse_time("-30m", T0, &w, err, sizeof(err)), 0);
	assert_int_equal(w.from_ms, T0 - 1800000);
	assert_int_equal(query_parse_time("-2d--1d", T0, &w, err, sizeof(err)), 0);
	assert_int_equal(w.from_ms, T0 - 2 * 86400000ULL);
	assert_int_equal(w.to_ms, T0 - 86400000ULL);
	assert_int_equal(query_parse_time("-10", T0, &w, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "unit"));
	static const char *const bad[] = { "", "2026/13/01", "yesterday", "2026/01/01.25",
		"2026/01/02-2026/01/01", "2026-01-01T00:00:00Zjunk", "-1x", "--1h" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = 0;
		assert_int_equal(query_parse_time(bad[i], T0, &w, err, sizeof(err)), -1);
		assert_true(strlen(err) > 0);
	}
}

static void test_parse_vocabulary(void **st)
{
	(void)st;
	struct query_req rq;
	struct query_key k[QUERY_MAX_FIELDS];
	unsigned n;
	char err[256];
	query_req_init(&rq, dir);
	assert_int_equal(query_parse_stat("srcip", NULL, 0, 10, &rq, err, sizeof(err)), 0);
	assert_int_equal(rq.table[0].order, QO_FLOWS);
	assert_int_equal(rq.table[0].limit, 10);
	assert_int_equal(query_parse_stat("ip/bytes/packets", NULL, 0, 5, &rq, err, sizeof(err)), 0);
	assert_int_equal(rq.ntables, 3);
	assert_int_equal(rq.table[2].order, QO_PACKETS);
	assert_int_equal(query_parse_stat("router/bpp", NULL, 0, 5, &rq, err, sizeof(err)), 0);
	assert_int_equal(rq.table[3].key[0].field, QF_EXPORTER);
	assert_int_equal(query_parse_stat("srcip/bogus", NULL, 0, 5, &rq, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "bogus"));
	assert_int_equal(query_parse_stat("srcip/24", NULL, 0, 5, &rq, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "srcnet"));
	assert_int_equal(query_parse_stat("nosuch", NULL, 0, 5, &rq, err, sizeof(err)), -1);
	assert_int_equal(query_parse_stat("srcnet/33", NULL, 0, 5, &rq, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "first mask is IPv4's, 0..32"));  /* not "33 is in 0..128" */
	assert_int_equal(query_parse_stat("srcnet/24/129", NULL, 0, 5, &rq, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "second mask is IPv6's"));

	assert_int_equal(query_parse_aggr("srcip,dstport,srcnet/24/64,dstip6/48", k, &n, err,
					  sizeof(err)), 0);
	assert_int_equal(n, 4);
	assert_int_equal(k[2].field, QF_SRCNET);
	assert_int_equal(k[2].mask4, 24);
	assert_int_equal(k[3].field, QF_DSTNET);
	assert_int_equal(k[3].mask4, 32);
	assert_int_equal(k[3].mask6, 48);
	assert_int_equal(query_parse_aggr("srcip,srcip", k, &n, err, sizeof(err)), -1);
	assert_int_equal(query_parse_aggr("port", k, &n, err, sizeof(err)), -1);
	assert_int_equal(query_parse_aggr("srcip4", k, &n, err, sizeof(err)), -1);
	assert_int_equal(query_parse_aggr("", k, &n, err, sizeof(err)), -1);
	assert_int_equal(query_parse_order("tstart"), QO_TSTART);
	assert_int_equal(query_parse_order("ibyte"), QO_BYTES);
	assert_int_equal(query_parse_order("x"), -1);
	assert_string_equal(query_field_name(QF_DSTNET), "dstnet");
	assert_string_equal(query_order_name(QO_BPS), "bps");

	uint64_t bps, pps, bpp;
	query_rates(290, 373589, 28930, &bps, &pps, &bpp); /* a row nfdump printed */
	assert_int_equal(bps, 103308);
	assert_int_equal(pps, 10);
	assert_int_equal(bpp, 1288);
	query_rates(0, 0, 0, &bps, &pps, &bpp);
	assert_int_equal(bps + pps + bpp, 0);
}

/* Renders a result in every format into memory. */
static char *render(const struct query_req *rq0, enum qout_fmt fmt)
{
	struct query_req rq = *rq0;
	struct query_result res;
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	assert_non_null(f);
	struct qout *o = qout_new(f, fmt, 0);
	assert_non_null(o);
	rq.sink = qout_sink(o);
	run_ok(&rq, &res);
	assert_int_equal(qout_finish(o, &rq, &res), 0);
	qout_free(o);
	query_result_free(&res);
	fclose(f);
	return buf;
}

static int count_char(const char *s, char c)
{
	int n = 0;
	for (; *s; s++)
		n += *s == c;
	return n;
}

static void test_output_formats(void **st)
{
	(void)st;
	struct query_req rq;
	query_req_init(&rq, dir);
	rq.table[0] = stat_req(QF_SRCIP, QO_BYTES, 4);
	rq.table[1] = stat_req(QF_PROTO, QO_FLOWS, 0);
	rq.ntables = 2;
	rq.series_s = 3600;
	char *j = render(&rq, QOUT_JSON);
	char want[96];
	snprintf(want, sizeof(want), "\"summary\":{\"flows\":%d,", NFLOWS);
	assert_non_null(strstr(j, want));
	assert_non_null(strstr(j, "\"kind\":\"stat\",\"fields\":[\"srcip\"],\"order\":\"bytes\""));
	assert_non_null(strstr(j, "\"stats\":[{\"kind\":\"stat\",\"fields\":[\"proto\"]"));
	assert_non_null(strstr(j, "\"series\":{\"secs\":3600,\"points\":["));
	assert_non_null(strstr(j, "\"blocks_skipped\":0"));
	assert_int_equal(count_char(j, '{'), count_char(j, '}'));
	assert_int_equal(count_char(j, '['), count_char(j, ']'));
	assert_int_equal(j[strlen(j) - 1], '\n');
	free(j);

	char *c = render(&rq, QOUT_CSV);
	assert_non_null(strstr(c, "first,last,duration_ms,srcip,flows,packets,bytes,bps,pps,bpp\n"));
	assert_non_null(strstr(c, "\nt,flows,packets,bytes\n2026-01-01T00:00:00.000Z,"));
	assert_non_null(strstr(c, "\nflows,packets,bytes,avg_bps"));
	free(c);

	setenv("TZ", "UTC", 1);
	tzset();
	char *t = render(&rq, QOUT_TABLE);
	assert_non_null(strstr(t, "Top 4 Src IP Addr ordered by bytes:"));
	assert_non_null(strstr(t, "Top all Protocol ordered by flows:"));
	snprintf(want, sizeof(want), "Summary: total flows: %d, total bytes: ", NFLOWS);
	assert_non_null(strstr(t, want));
	assert_non_null(strstr(t, "Time window: 2026-01-01 00:00:00."));
	assert_non_null(strstr(t, "Flows scanned: 12000, matched: 12000"));
	free(t);

	/* no tables: the summary alone, keys in the order tapflow-query always had */
	query_req_init(&rq, dir);
	j = render(&rq, QOUT_JSON);
	snprintf(want, sizeof(want), "{\"summary\":{\"flows\":%d,\"packets\":", NFLOWS);
	assert_int_equal(strncmp(j, want, strlen(want)), 0);
	assert_non_null(strstr(j, ",\"first_ms\":"));
	assert_non_null(strstr(j, ",\"files\":"));
	free(j);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_time),
		cmocka_unit_test(test_parse_vocabulary),
		cmocka_unit_test(test_totals),
		cmocka_unit_test(test_stat_every_element_and_order),
		cmocka_unit_test(test_stat_fixed_masks),
		cmocka_unit_test(test_aggregate),
		cmocka_unit_test(test_compact_address_keys),
		cmocka_unit_test(test_packed_counters),
		cmocka_unit_test(test_record_stat_default_five_tuple),
		cmocka_unit_test(test_filter),
		cmocka_unit_test(test_bad_filter_and_requests),
		cmocka_unit_test(test_window_edges),
		cmocka_unit_test(test_flow_listing),
		cmocka_unit_test(test_long_listing_streams),
		cmocka_unit_test(test_long_ordered_listing_spills),
		cmocka_unit_test(test_max_flows_like_nfdump_c),
		cmocka_unit_test(test_series),
		cmocka_unit_test(test_memory_cap_gives_same_answer),
		cmocka_unit_test(test_bounds_or_partitions),
		cmocka_unit_test(test_sink_deadline),
		cmocka_unit_test(test_live_file_snapshot),
		cmocka_unit_test(test_file_deleted_during_query),
		cmocka_unit_test(test_damaged_block_is_skipped),
		cmocka_unit_test(test_damaged_code_is_caught),
		cmocka_unit_test(test_output_formats),
	};
	return cmocka_run_group_tests(tests, setup_store, teardown_store);
}
