/* test_flowtab.c: the probe's flow table against what a user of the records checks:
 * counts, flags and times per flow, each timeout at its exact boundary, the budget when
 * full, expiry cost, and a randomized run against a naive reference model. The clock is
 * injected: it is the now_ms each call passes. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "flowtab.h"

#define TCP_FIN 0x01
#define TCP_SYN 0x02
#define TCP_RST 0x04
#define TCP_PSH 0x08
#define TCP_ACK 0x10

/* --- helpers ------------------------------------------------------------------ */

struct sink {
	struct flow_rec *recs;
	size_t n;
	size_t cap;
};

static void sink_emit(const struct flow_rec *rec, void *arg)
{
	struct sink *s = arg;

	if (s->n == s->cap) {
		s->cap = s->cap ? 2 * s->cap : 64;
		s->recs = realloc(s->recs, s->cap * sizeof(*s->recs));
		assert_non_null(s->recs);
	}
	s->recs[s->n++] = *rec;
}

static void sink_free(struct sink *s)
{
	free(s->recs);
	memset(s, 0, sizeof(*s));
}

/* Flow id -> a distinct IPv4 TCP (even id) or UDP (odd id) key, as pkt_parse would
 * build it: zeroed, v4-mapped addresses. */
static void mkpkt(struct pkt_info *pi, uint32_t id, uint8_t flags, uint32_t ip_len)
{
	uint8_t a[4] = { 10, (uint8_t)(id >> 16), (uint8_t)(id >> 8), (uint8_t)id };
	uint8_t b[4] = { 192, 0, 2, (uint8_t)(id * 7) };

	memset(pi, 0, sizeof(*pi));
	flowrec_addr4(pi->key.src, a);
	flowrec_addr4(pi->key.dst, b);
	pi->key.sport = (uint16_t)(1024 + id);
	pi->key.dport = 443;
	pi->key.proto = (id & 1) ? 17 : 6;
	pi->key.ipver = 4;
	pi->key.in_if = 2;
	pi->tcp_flags = (id & 1) ? 0 : flags;
	pi->ip_len = ip_len;
}

/* Recovers the id mkpkt put in a record. */
static uint32_t rec_id(const struct flow_rec *r)
{
	return (uint32_t)r->sport - 1024;
}

static struct flowtab *mktab(uint32_t max, uint32_t active, uint32_t inactive,
			     uint32_t grace)
{
	struct flowtab_cfg cfg = { .max_flows = max, .active_ms = active,
				   .inactive_ms = inactive, .fin_grace_ms = grace };
	struct flowtab *ft = flowtab_new(&cfg);

	assert_non_null(ft);
	return ft;
}

static void upd(struct flowtab *ft, uint32_t id, uint8_t flags, uint32_t len, uint64_t now,
		struct sink *s)
{
	struct pkt_info pi;

	mkpkt(&pi, id, flags, len);
	/* Half the packets take the batch path's steps (flowtab.h): every test, the
	 * model comparison among them, holds for both. */
	if ((id ^ (uint32_t)now) & 1) {
		uint32_t tag = flowtab_prefetch(ft, &pi.key);
		assert_int_equal(tag, flowtab_hash(ft, &pi.key));
		flowtab_prefetch_entry(ft, tag);
		flowtab_update_hashed(ft, &pi, tag, now, sink_emit, s);
	} else {
		flowtab_update(ft, &pi, now, sink_emit, s);
	}
}

/* --- construction and memory --------------------------------------------------- */

static void test_new_rejects(void **state)
{
	struct flowtab_cfg cfg = { .max_flows = 0, .active_ms = 1, .inactive_ms = 1 };

	(void)state;
	errno = 0;
	assert_null(flowtab_new(&cfg));
	assert_int_equal(errno, EINVAL);
	assert_null(flowtab_new(NULL));
	cfg.max_flows = FLOWTAB_MAX_FLOWS + 1;
	assert_null(flowtab_new(&cfg));
	flowtab_free(NULL);
}

static void test_mem_per_flow(void **state)
{
	static const uint32_t sizes[] = { 1000, 4096, 49152, 65536, 98304, 100000, 131073,
					  1000000, 1u << 20 };

	(void)state;
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		struct flowtab *ft = mktab(sizes[i], 60000, 15000, 2000);
		double per = (double)flowtab_mem_bytes(ft) / sizes[i];

		printf("# max_flows %8u: %.1f bytes per flow\n", sizes[i], per);
		assert_true(per >= 104.0);
		assert_true(per < 128.0);
		flowtab_free(ft);
	}
}

/* --- counters ------------------------------------------------------------------ */

static void test_counters_and_flags(void **state)
{
	struct flowtab *ft = mktab(16, 60000, 15000, 2000);
	struct sink s = { 0 };
	struct pkt_info v6;
	const struct flowtab_stats *st = flowtab_stats(ft);

	(void)state;
	upd(ft, 2, TCP_SYN, 60, 1000, &s);
	upd(ft, 2, TCP_ACK, 52, 1010, &s);
	upd(ft, 2, TCP_PSH | TCP_ACK, 1500, 1020, &s);

	/* An IPv6 UDP flow with a VLAN and ToS: every key field must reach the record. */
	memset(&v6, 0, sizeof(v6));
	for (int i = 0; i < 16; i++) {
		v6.key.src[i] = (uint8_t)(0x20 + i);
		v6.key.dst[i] = (uint8_t)(0x80 + i);
	}
	v6.key.sport = 5353;
	v6.key.dport = 53;
	v6.key.proto = 17;
	v6.key.tos = 0xb8;
	v6.key.vlan = 100;
	v6.key.ipver = 6;
	v6.key.in_if = 7;
	/* 70000 packets of 65535 bytes: more than 2^32 bytes, so the counter must be 64-bit. */
	for (uint32_t k = 0; k < 70000; k++) {
		v6.ip_len = 65535;
		flowtab_update(ft, &v6, 2000 + k / 10, sink_emit, &s);
	}
	assert_int_equal(s.n, 0);
	assert_int_equal(st->active, 2);
	assert_int_equal(st->created, 2);

	assert_int_equal(flowtab_flush(ft, sink_emit, &s), 2);
	assert_int_equal(s.n, 2);
	/* Flush goes in creation order. */
	const struct flow_rec *r = &s.recs[0];
	struct pkt_info k2;
	mkpkt(&k2, 2, 0, 0);
	assert_memory_equal(r->src, k2.key.src, 16);
	assert_memory_equal(r->dst, k2.key.dst, 16);
	assert_int_equal(r->sport, 1026);
	assert_int_equal(r->dport, 443);
	assert_int_equal(r->proto, 6);
	assert_int_equal(r->ipver, 4);
	assert_int_equal(r->in_if, 2);
	assert_int_equal(r->packets, 3);
	assert_int_equal(r->bytes, 60 + 52 + 1500);
	assert_int_equal(r->first_ms, 1000);
	assert_int_equal(r->last_ms, 1020);
	assert_int_equal(r->tcp_flags, TCP_SYN | TCP_PSH | TCP_ACK);
	assert_int_equal(r->end_reason, FLOW_END_FORCED);
	assert_int_equal(r->sampling, 1);
	assert_int_equal(r->out_if, 0);
	assert_int_equal(r->src_as, 0);
	assert_int_equal(r->dst_as, 0);
	assert_int_equal(r->domain_id, 0);
	assert_int_equal(r->src_mask, 0);
	assert_int_equal(r->dst_mask, 0);
	static const uint8_t zero[16];
	assert_memory_equal(r->nexthop, zero, 16);
	assert_memory_equal(r->exporter, zero, 16);

	r = &s.recs[1];
	assert_memory_equal(r->src, v6.key.src, 16);
	assert_memory_equal(r->dst, v6.key.dst, 16);
	assert_int_equal(r->sport, 5353);
	assert_int_equal(r->dport, 53);
	assert_int_equal(r->proto, 17);
	assert_int_equal(r->tos, 0xb8);
	assert_int_equal(r->vlan, 100);
	assert_int_equal(r->ipver, 6);
	assert_int_equal(r->in_if, 7);
	assert_int_equal(r->packets, 70000);
	assert_true(r->bytes == 70000ull * 65535);
	assert_true(r->bytes > UINT32_MAX);
	assert_int_equal(r->first_ms, 2000);
	assert_int_equal(r->last_ms, 2000 + 69999 / 10);
	assert_int_equal(r->tcp_flags, 0);

	assert_int_equal(st->active, 0);
	assert_int_equal(st->expired[FLOW_END_FORCED], 2);
	/* An empty table flushes nothing; and it is usable again. */
	assert_int_equal(flowtab_flush(ft, sink_emit, &s), 0);
	upd(ft, 2, TCP_SYN, 60, 5000, &s);
	assert_int_equal(st->active, 1);
	assert_int_equal(st->created, 3);
	sink_free(&s);
	flowtab_free(ft);
}

static void test_keys_distinct(void **state)
{
	struct flowtab *ft = mktab(64, 60000, 15000, 2000);
	struct sink s = { 0 };
	struct pkt_info a, b;

	(void)state;
	/* Keys that differ only in one field each must be separate flows. */
	mkpkt(&a, 4, 0, 100);
	for (int f = 0; f < 8; f++) {
		b = a;
		switch (f) {
		case 0: b.key.src[15] ^= 1; break;
		case 1: b.key.dst[0] ^= 0x80; break;
		case 2: b.key.sport++; break;
		case 3: b.key.dport++; break;
		case 4: b.key.proto = 17; break;
		case 5: b.key.tos = 4; break;
		case 6: b.key.vlan = 5; break;
		case 7: b.key.in_if = 3; break;
		}
		flowtab_update(ft, &b, 10, sink_emit, &s);
	}
	flowtab_update(ft, &a, 10, sink_emit, &s);
	flowtab_update(ft, &a, 11, sink_emit, &s);
	assert_int_equal(flowtab_stats(ft)->active, 9);
	assert_int_equal(flowtab_flush(ft, sink_emit, &s), 9);
	assert_int_equal(s.recs[8].packets, 2);
	for (int i = 0; i < 8; i++)
		assert_int_equal(s.recs[i].packets, 1);
	sink_free(&s);
	flowtab_free(ft);
}

struct tagged {
	uint32_t tag;
	uint32_t j;
};

static int tagged_cmp(const void *a, const void *b)
{
	const struct tagged *x = a, *y = b;

	if (x->tag != y->tag)
		return x->tag < y->tag ? -1 : 1;
	return x->j < y->j ? -1 : x->j > y->j;
}

/* Key j of a family that varies only in the bytes [off, off + len) of the key. */
static void vary(struct pkt_key *k, const struct pkt_key *base, size_t off, size_t len,
		 uint32_t j)
{
	uint64_t v = (uint64_t)j * 0x9e3779b97f4a7c15ull;

	*k = *base;
	for (size_t b = 0; b < len; b++)
		((uint8_t *)k)[off + b] ^= (uint8_t)(v >> (8 * (b % 8)));
}

/* Two keys whose 32-bit hashes are equal (found by birthday search) must still be two
 * flows: the table compares every byte of the key, in each of its six words. */
static void test_hash_collisions(void **state)
{
	static const size_t words[][2] = { { 0, 8 }, { 8, 8 }, { 16, 8 }, { 24, 8 },
					   { 32, 8 }, { 40, 5 } };  /* 45..47: zero padding */
	const uint32_t n = 300000;
	struct flowtab *ft = mktab(64, 60000, 15000, 2000);
	struct tagged *t = malloc(n * sizeof(*t));
	struct pkt_info base;

	(void)state;
	assert_non_null(t);
	mkpkt(&base, 6, TCP_ACK, 100);
	for (size_t w = 0; w < 6; w++) {
		struct pkt_info a = base, b = base;
		struct sink s = { 0 };
		size_t found = 0;

		for (uint32_t j = 0; j < n; j++) {
			vary(&a.key, &base.key, words[w][0], words[w][1], j);
			t[j].tag = flowtab_hash(ft, &a.key);
			t[j].j = j;
		}
		qsort(t, n, sizeof(*t), tagged_cmp);
		for (uint32_t j = 1; j < n && !found; j++)
			if (t[j].tag == t[j - 1].tag)
				found = j;
		assert_true(found);  /* ~10 pairs expected among 300k keys */
		vary(&a.key, &base.key, words[w][0], words[w][1], t[found - 1].j);
		vary(&b.key, &base.key, words[w][0], words[w][1], t[found].j);
		assert_int_equal(flowtab_hash(ft, &a.key), flowtab_hash(ft, &b.key));
		assert_memory_not_equal(&a.key, &b.key, sizeof(a.key));
		flowtab_update(ft, &a, 10, sink_emit, &s);
		flowtab_update(ft, &b, 11, sink_emit, &s);
		flowtab_update(ft, &b, 12, sink_emit, &s);
		assert_int_equal(flowtab_stats(ft)->active, 2);
		assert_int_equal(flowtab_flush(ft, sink_emit, &s), 2);
		assert_int_equal(s.recs[0].packets, 1);
		assert_int_equal(s.recs[1].packets, 2);
		assert_memory_equal(s.recs[1].src, b.key.src, 16);
		sink_free(&s);
	}
	free(t);
	flowtab_free(ft);
}

/* --- timeouts ------------------------------------------------------------------ */

static void test_inactive_boundary(void **state)
{
	struct flowtab *ft = mktab(16, 600000, 15000, 2000);
	struct sink s = { 0 };

	(void)state;
	upd(ft, 1, 0, 100, 1000, &s);
	upd(ft, 3, 0, 100, 2000, &s);
	assert_int_equal(flowtab_expire(ft, 15999, sink_emit, &s), 0);
	assert_int_equal(flowtab_expire(ft, 16000, sink_emit, &s), 1);
	assert_int_equal(s.n, 1);
	assert_int_equal(rec_id(&s.recs[0]), 1);
	assert_int_equal(s.recs[0].end_reason, FLOW_END_IDLE);
	assert_int_equal(s.recs[0].last_ms, 1000);
	assert_int_equal(flowtab_expire(ft, 16999, sink_emit, &s), 0);
	assert_int_equal(flowtab_expire(ft, 17000, sink_emit, &s), 1);
	assert_int_equal(rec_id(&s.recs[1]), 3);
	assert_int_equal(flowtab_stats(ft)->expired[FLOW_END_IDLE], 2);
	assert_int_equal(flowtab_stats(ft)->active, 0);

	/* Without a tick in between, the packet 1 ms short of the timeout still joins the
	 * flow and the one at the boundary starts a new one (the old is emitted then). */
	upd(ft, 5, 0, 100, 20000, &s);
	upd(ft, 5, 0, 100, 34999, &s);
	assert_int_equal(s.n, 2);
	upd(ft, 5, 0, 100, 34999 + 15000, &s);
	assert_int_equal(s.n, 3);
	assert_int_equal(s.recs[2].packets, 2);
	assert_int_equal(s.recs[2].first_ms, 20000);
	assert_int_equal(s.recs[2].last_ms, 34999);
	assert_int_equal(s.recs[2].end_reason, FLOW_END_IDLE);
	assert_int_equal(flowtab_stats(ft)->active, 1);
	assert_int_equal(flowtab_stats(ft)->created, 4);
	assert_int_equal(flowtab_flush(ft, sink_emit, &s), 1);
	assert_int_equal(s.recs[3].packets, 1);
	assert_int_equal(s.recs[3].first_ms, 49999);
	sink_free(&s);
	flowtab_free(ft);
}

/* A busy flow (a packet every 100 ms for 10 minutes) under a 60 s active timeout, ticking
 * each second or never: the same records, ACTIVE splits whose packets sum to the input. */
static void run_busy(int tick, struct sink *s)
{
	struct flowtab *ft = mktab(16, 60000, 15000, 2000);

	for (uint64_t t = 0; t < 600000; t += 100) {
		if (tick && t % 1000 == 0)
			flowtab_expire(ft, t, sink_emit, s);
		upd(ft, 8, TCP_ACK, 1000, t, s);
	}
	flowtab_flush(ft, sink_emit, s);
	flowtab_free(ft);
}

static void test_active_split(void **state)
{
	struct sink a = { 0 }, b = { 0 };
	uint64_t pk = 0, by = 0;

	(void)state;
	run_busy(1, &a);
	run_busy(0, &b);
	assert_int_equal(a.n, 10);
	for (size_t i = 0; i < a.n; i++) {
		const struct flow_rec *r = &a.recs[i];
		pk += r->packets;
		by += r->bytes;
		assert_int_equal(r->end_reason, i + 1 < a.n ? FLOW_END_ACTIVE : FLOW_END_FORCED);
		assert_int_equal(r->first_ms, i * 60000);
		assert_int_equal(r->last_ms, i * 60000 + 59900);
		assert_int_equal(r->packets, 600);
	}
	assert_int_equal(pk, 6000);
	assert_int_equal(by, 6000 * 1000);
	assert_int_equal(b.n, a.n);
	assert_memory_equal(a.recs, b.recs, a.n * sizeof(*a.recs));
	sink_free(&a);
	sink_free(&b);
}

static void test_fin_rst_grace(void **state)
{
	struct flowtab *ft = mktab(16, 600000, 15000, 2000);
	const struct flowtab_stats *st = flowtab_stats(ft);
	struct sink s = { 0 };

	(void)state;
	upd(ft, 10, TCP_SYN, 60, 0, &s);
	upd(ft, 10, TCP_ACK, 52, 100, &s);
	upd(ft, 10, TCP_FIN | TCP_ACK, 52, 1000, &s);
	upd(ft, 12, TCP_SYN, 60, 1000, &s);
	upd(ft, 12, TCP_RST, 40, 1200, &s);
	assert_int_equal(flowtab_expire(ft, 2999, sink_emit, &s), 0);
	/* After FIN the flow still counts packets, and its grace runs from the last one. */
	upd(ft, 10, TCP_ACK, 52, 1500, &s);
	assert_int_equal(flowtab_expire(ft, 3000, sink_emit, &s), 0);
	assert_int_equal(flowtab_expire(ft, 3199, sink_emit, &s), 0);
	assert_int_equal(flowtab_expire(ft, 3200, sink_emit, &s), 1);
	assert_int_equal(rec_id(&s.recs[0]), 12);
	assert_int_equal(s.recs[0].tcp_flags, TCP_SYN | TCP_RST);
	assert_int_equal(s.recs[0].end_reason, FLOW_END_EOF);
	assert_int_equal(flowtab_expire(ft, 3499, sink_emit, &s), 0);
	assert_int_equal(flowtab_expire(ft, 3500, sink_emit, &s), 1);
	assert_int_equal(rec_id(&s.recs[1]), 10);
	assert_int_equal(s.recs[1].packets, 4);
	assert_int_equal(s.recs[1].bytes, 60 + 52 + 52 + 52);
	assert_int_equal(s.recs[1].last_ms, 1500);
	assert_int_equal(s.recs[1].tcp_flags, TCP_SYN | TCP_ACK | TCP_FIN);
	assert_int_equal(s.recs[1].end_reason, FLOW_END_EOF);
	assert_int_equal(st->expired[FLOW_END_EOF], 2);

	/* A new connection on the same ports after the grace, with no tick in between,
	 * is a new flow: the finished one is emitted by the update. */
	upd(ft, 14, TCP_FIN, 52, 5000, &s);
	upd(ft, 14, TCP_SYN, 60, 7000, &s);
	assert_int_equal(s.n, 3);
	assert_int_equal(s.recs[2].packets, 1);
	assert_int_equal(s.recs[2].end_reason, FLOW_END_EOF);
	assert_int_equal(flowtab_flush(ft, sink_emit, &s), 1);
	assert_int_equal(s.recs[3].tcp_flags, TCP_SYN);
	assert_int_equal(s.recs[3].first_ms, 7000);

	/* RST after FIN: the flow is on the finished list already and must stay the only
	 * thing there; the unfinished flows around it keep their order. */
	s.n = 0;
	upd(ft, 30, TCP_ACK, 52, 10000, &s);
	upd(ft, 32, TCP_FIN, 52, 10000, &s);
	upd(ft, 34, TCP_ACK, 52, 10001, &s);
	upd(ft, 32, TCP_RST, 40, 10010, &s);
	upd(ft, 30, TCP_ACK, 52, 10020, &s);
	assert_int_equal(flowtab_expire(ft, 12010, sink_emit, &s), 1);
	assert_int_equal(rec_id(&s.recs[0]), 32);
	assert_int_equal(s.recs[0].tcp_flags, TCP_FIN | TCP_RST);
	assert_int_equal(s.recs[0].packets, 2);
	assert_int_equal(flowtab_expire(ft, 25001, sink_emit, &s), 1);
	assert_int_equal(rec_id(&s.recs[1]), 34);
	assert_int_equal(flowtab_expire(ft, 25020, sink_emit, &s), 1);
	assert_int_equal(rec_id(&s.recs[2]), 30);
	assert_int_equal(s.recs[2].packets, 2);
	assert_int_equal(st->active, 0);
	flowtab_free(ft);

	/* A grace longer than the inactive timeout: a finished flow waits for its grace and
	 * is not idle-expired; an unfinished one is. */
	ft = mktab(16, 600000, 1000, 20000);
	s.n = 0;
	upd(ft, 20, TCP_FIN, 52, 0, &s);
	upd(ft, 22, TCP_ACK, 52, 0, &s);
	assert_int_equal(flowtab_expire(ft, 1000, sink_emit, &s), 1);
	assert_int_equal(rec_id(&s.recs[0]), 22);
	assert_int_equal(s.recs[0].end_reason, FLOW_END_IDLE);
	assert_int_equal(flowtab_expire(ft, 19999, sink_emit, &s), 0);
	assert_int_equal(flowtab_expire(ft, 20000, sink_emit, &s), 1);
	assert_int_equal(rec_id(&s.recs[1]), 20);
	assert_int_equal(s.recs[1].end_reason, FLOW_END_EOF);
	sink_free(&s);
	flowtab_free(ft);
}

/* --- budget -------------------------------------------------------------------- */

static void test_table_full(void **state)
{
	struct flowtab *ft = mktab(4, 600000, 150000, 20000);
	const struct flowtab_stats *st = flowtab_stats(ft);
	struct sink s = { 0 };

	(void)state;
	for (uint32_t id = 1; id <= 4; id++)
		upd(ft, 2 * id, TCP_ACK, 100, id, &s);
	upd(ft, 2, TCP_ACK, 100, 5, &s);  /* 2 is now the most recently seen */
	assert_int_equal(s.n, 0);
	upd(ft, 10, TCP_ACK, 100, 6, &s);
	assert_int_equal(s.n, 1);
	assert_int_equal(rec_id(&s.recs[0]), 4);  /* the least recently seen */
	assert_int_equal(s.recs[0].end_reason, FLOW_END_RESOURCE);
	assert_int_equal(st->table_full, 1);
	assert_int_equal(st->expired[FLOW_END_RESOURCE], 1);
	assert_int_equal(st->active, 4);

	/* A finished flow goes before an older unfinished one. */
	upd(ft, 8, TCP_FIN, 100, 7, &s);
	upd(ft, 12, TCP_ACK, 100, 8, &s);
	assert_int_equal(s.n, 2);
	assert_int_equal(rec_id(&s.recs[1]), 8);
	assert_int_equal(s.recs[1].tcp_flags, TCP_ACK | TCP_FIN);
	upd(ft, 14, TCP_ACK, 100, 9, &s);
	assert_int_equal(rec_id(&s.recs[2]), 6);

	/* A flood of new keys never grows the table; every packet is accounted. */
	for (uint32_t id = 100; id < 10100; id++) {
		upd(ft, id, TCP_SYN, 100, 10 + id, &s);
		assert_true(st->active <= 4);
	}
	assert_int_equal(st->active, 4);
	assert_int_equal(st->table_full, 3 + 10000);
	assert_int_equal(st->created, st->active + st->expired[FLOW_END_RESOURCE]);
	assert_int_equal(flowtab_flush(ft, sink_emit, &s), 4);
	uint64_t pk = 0;
	for (size_t i = 0; i < s.n; i++)
		pk += s.recs[i].packets;
	assert_int_equal(pk, 4 + 5 + 10000);
	/* The last four in are the ones left. */
	for (size_t i = s.n - 4; i < s.n; i++) {
		assert_int_equal(s.recs[i].end_reason, FLOW_END_FORCED);
		assert_true(rec_id(&s.recs[i]) >= 10096);
	}
	sink_free(&s);
	flowtab_free(ft);
}

/* --- expiry cost --------------------------------------------------------------- */

static void test_expire_cost(void **state)
{
	const uint32_t n = 100000;
	struct flowtab *ft = mktab(n, 2000000, 1000000, 2000);
	const struct flowtab_stats *st = flowtab_stats(ft);
	struct sink s = { 0 };
	uint64_t c0;

	(void)state;
	for (uint32_t id = 0; id < n; id++)
		upd(ft, id, TCP_ACK, 100, id, &s);
	assert_int_equal(st->active, n);
	assert_int_equal(st->expire_checks, 0);

	/* A tick where nothing is due looks at no more than each list's head. */
	for (uint64_t t = n; t < 1000000; t += 50000) {
		c0 = st->expire_checks;
		assert_int_equal(flowtab_expire(ft, t, sink_emit, &s), 0);
		assert_true(st->expire_checks - c0 <= 3);
	}
	/* A tick that expires k flows looks at k + at most 3. */
	c0 = st->expire_checks;
	assert_int_equal(flowtab_expire(ft, 1000000 + 99, sink_emit, &s), 100);
	assert_true(st->expire_checks - c0 <= 100 + 3);
	for (size_t i = 0; i < s.n; i++) {
		assert_int_equal(rec_id(&s.recs[i]), i);
		assert_int_equal(s.recs[i].end_reason, FLOW_END_IDLE);
	}
	c0 = st->expire_checks;
	assert_int_equal(flowtab_expire(ft, 1000000 + 99, sink_emit, &s), 0);
	assert_true(st->expire_checks - c0 <= 3);
	assert_int_equal(flowtab_flush(ft, NULL, NULL), n - 100);
	assert_int_equal(st->active, 0);
	sink_free(&s);
	flowtab_free(ft);
}

/* --- out of order -------------------------------------------------------------- */

static void test_out_of_order(void **state)
{
	struct flowtab *ft = mktab(16, 60000, 15000, 2000);
	const struct flowtab_stats *st = flowtab_stats(ft);
	struct sink s = { 0 };

	(void)state;
	upd(ft, 2, TCP_ACK, 100, 1000, &s);
	upd(ft, 2, TCP_ACK, 100, 5000, &s);
	upd(ft, 2, TCP_ACK, 100, 3000, &s);   /* older than last: counted, last kept */
	upd(ft, 4, TCP_ACK, 100, 2000, &s);   /* a new flow behind a later one */
	upd(ft, 2, TCP_ACK, 100, 500, &s);    /* older than first: first moves back */
	/* A clock running backwards must not expire anything (no unsigned wrap). */
	assert_int_equal(flowtab_expire(ft, 0, sink_emit, &s), 0);
	assert_int_equal(flowtab_expire(ft, 4999, sink_emit, &s), 0);
	/* 4 is due at 17000 but waits behind 2 in the time list: late, never early. */
	assert_int_equal(flowtab_expire(ft, 17000, sink_emit, &s), 0);
	assert_int_equal(flowtab_expire(ft, 19999, sink_emit, &s), 0);
	assert_int_equal(flowtab_expire(ft, 20000, sink_emit, &s), 2);
	assert_int_equal(rec_id(&s.recs[0]), 2);
	assert_int_equal(s.recs[0].packets, 4);
	assert_int_equal(s.recs[0].first_ms, 500);
	assert_int_equal(s.recs[0].last_ms, 5000);
	assert_int_equal(s.recs[0].end_reason, FLOW_END_IDLE);
	assert_int_equal(rec_id(&s.recs[1]), 4);
	assert_int_equal(s.recs[1].packets, 1);
	assert_int_equal(s.recs[1].last_ms, 2000);

	/* A FIN arriving out of order still moves the flow to the finished list. */
	upd(ft, 6, TCP_ACK, 100, 30000, &s);
	upd(ft, 6, TCP_FIN, 100, 29000, &s);
	assert_int_equal(flowtab_expire(ft, 31999, sink_emit, &s), 0);
	assert_int_equal(flowtab_expire(ft, 32000, sink_emit, &s), 1);
	assert_int_equal(s.recs[2].end_reason, FLOW_END_EOF);
	assert_int_equal(s.recs[2].first_ms, 29000);
	assert_int_equal(s.recs[2].last_ms, 30000);
	assert_int_equal(st->active, 0);
	sink_free(&s);
	flowtab_free(ft);
}

/* --- randomized run against a naive model ------------------------------------- */

/* The model keeps one slot per key and recomputes everything by scanning: no index, no
 * lists. touch orders flows the way the table's lists should (last move wins). */
struct mflow {
	int live;
	int fin;
	uint64_t packets, bytes, first, last, touch;
	uint8_t flags;
};

struct model {
	struct flowtab_cfg cfg;
	struct mflow *f;
	uint32_t nkeys;
	uint64_t seq;
	uint64_t active, created, table_full, expired[6];
	struct sink out;
};

static int m_after(uint64_t now, uint64_t t, uint32_t span)
{
	return now >= t && now - t >= span;
}

static int m_due(const struct model *m, const struct mflow *f, uint64_t now)
{
	if (f->fin && m_after(now, f->last, m->cfg.fin_grace_ms))
		return FLOW_END_EOF;
	if (!f->fin && m_after(now, f->last, m->cfg.inactive_ms))
		return FLOW_END_IDLE;
	if (m_after(now, f->first, m->cfg.active_ms))
		return FLOW_END_ACTIVE;
	return 0;
}

static void m_end(struct model *m, uint32_t id, int reason)
{
	struct mflow *f = &m->f[id];
	struct pkt_info pi;
	struct flow_rec r;

	mkpkt(&pi, id, 0, 0);
	memset(&r, 0, sizeof(r));
	memcpy(r.src, pi.key.src, 16);
	memcpy(r.dst, pi.key.dst, 16);
	r.sport = pi.key.sport;
	r.dport = pi.key.dport;
	r.proto = pi.key.proto;
	r.ipver = pi.key.ipver;
	r.in_if = pi.key.in_if;
	r.packets = f->packets;
	r.bytes = f->bytes;
	r.first_ms = f->first;
	r.last_ms = f->last;
	r.tcp_flags = f->flags;
	r.sampling = 1;
	r.end_reason = (uint8_t)reason;
	sink_emit(&r, &m->out);
	f->live = 0;
	m->active--;
	m->expired[reason]++;
}

static void m_update(struct model *m, uint32_t id, uint8_t flags, uint32_t len, uint64_t now)
{
	struct mflow *f = &m->f[id];
	int reason;

	if (id & 1)
		flags = 0;  /* mkpkt: odd ids are UDP */
	if (f->live && (reason = m_due(m, f, now)) != 0)
		m_end(m, id, reason);
	if (!f->live) {
		if (m->active == m->cfg.max_flows) {
			/* Oldest finished flow, else oldest unfinished, by last move. */
			uint32_t best = UINT32_MAX;
			for (int want_fin = 1; want_fin >= 0 && best == UINT32_MAX; want_fin--)
				for (uint32_t k = 0; k < m->nkeys; k++)
					if (m->f[k].live && m->f[k].fin == want_fin &&
					    (best == UINT32_MAX || m->f[k].touch < m->f[best].touch))
						best = k;
			m_end(m, best, FLOW_END_RESOURCE);
			m->table_full++;
		}
		memset(f, 0, sizeof(*f));
		f->live = 1;
		f->first = f->last = now;
		f->touch = ++m->seq;
		m->active++;
		m->created++;
	}
	int was_fin = f->fin;
	f->packets++;
	f->bytes += len;
	f->flags |= flags;
	f->fin = (f->flags & (TCP_FIN | TCP_RST)) != 0;
	if (now < f->first)
		f->first = now;
	if (now >= f->last || f->fin != was_fin)
		f->touch = ++m->seq;
	if (now > f->last)
		f->last = now;
}

static void m_expire(struct model *m, uint64_t now)
{
	for (uint32_t k = 0; k < m->nkeys; k++) {
		int reason;
		if (m->f[k].live && (reason = m_due(m, &m->f[k], now)) != 0)
			m_end(m, k, reason);
	}
}

static int rec_cmp(const void *a, const void *b)
{
	return memcmp(a, b, sizeof(struct flow_rec));
}

/* Records of one call may come in a different order from the model's scan. Returns the
 * packets the batch held. */
static uint64_t compare_batch(struct sink *got, struct sink *want)
{
	uint64_t pk = 0;

	assert_int_equal(got->n, want->n);
	if (got->n == 0)
		return 0;
	for (size_t i = 0; i < got->n; i++)
		pk += got->recs[i].packets;
	qsort(got->recs, got->n, sizeof(*got->recs), rec_cmp);
	qsort(want->recs, want->n, sizeof(*want->recs), rec_cmp);
	assert_memory_equal(got->recs, want->recs, got->n * sizeof(*got->recs));
	got->n = 0;
	want->n = 0;
	return pk;
}

static uint64_t rnd(uint64_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 7;
	*x ^= *x << 17;
	return *x;
}

static void run_model(uint32_t max_flows, uint32_t nkeys, uint32_t npkts, uint32_t active,
		      uint32_t inactive, uint32_t grace, uint32_t max_step, uint64_t seed)
{
	struct model m = { .cfg = { .max_flows = max_flows, .active_ms = active,
				    .inactive_ms = inactive, .fin_grace_ms = grace } };
	struct flowtab *ft = flowtab_new(&m.cfg);
	const struct flowtab_stats *st;
	struct sink got = { 0 };
	uint64_t now = 1700000000000ull, x = seed, pk_in = 0, pk_out = 0, ticks = 0;
	uint32_t hot = nkeys / 500 + 1;

	assert_non_null(ft);
	st = flowtab_stats(ft);
	m.nkeys = nkeys;
	m.f = calloc(nkeys, sizeof(*m.f));
	assert_non_null(m.f);

	for (uint32_t p = 0; p < npkts; p++) {
		uint64_t r = rnd(&x);
		uint32_t id = (r & 1) ? (uint32_t)(r >> 8) % hot : (uint32_t)(r >> 8) % nkeys;
		uint32_t len = 40 + (uint32_t)(r >> 40) % 1461;
		uint8_t flags = (r >> 20) & 1 ? TCP_ACK : TCP_PSH | TCP_ACK;
		uint32_t roll = (uint32_t)(r >> 24) % 2000;

		if (roll < 7)
			flags |= TCP_FIN;
		else if (roll < 8)
			flags |= TCP_RST;
		else if (roll < 30)
			flags = TCP_SYN;
		/* Mostly small steps, some repeats of the same ms, rare long silences. */
		r = rnd(&x);
		if (r % 20000 == 0)
			now += r % (4ull * inactive + 1);
		else
			now += (r >> 16) % (max_step + 1);

		upd(ft, id, flags, len, now, &got);
		m_update(&m, id, flags, len, now);
		pk_in++;
		pk_out += compare_batch(&got, &m.out);
		assert_true(st->active <= max_flows);

		if (rnd(&x) % 16 == 0) {
			size_t n = flowtab_expire(ft, now, sink_emit, &got);
			ticks++;
			assert_int_equal(n, got.n);
			m_expire(&m, now);
			pk_out += compare_batch(&got, &m.out);
		}
	}
	assert_int_equal(flowtab_flush(ft, sink_emit, &got), m.active);
	for (uint32_t k = 0; k < nkeys; k++)
		if (m.f[k].live)
			m_end(&m, k, FLOW_END_FORCED);
	pk_out += compare_batch(&got, &m.out);
	assert_int_equal(pk_out, pk_in);

	assert_int_equal(st->created, m.created);
	assert_int_equal(st->table_full, m.table_full);
	assert_int_equal(st->active, 0);
	for (int r = 0; r < 6; r++)
		assert_int_equal(st->expired[r], m.expired[r]);
	printf("# %u pkts, %u keys, max %u: created %llu idle %llu active %llu eof %llu "
	       "resource %llu forced %llu, %llu ticks\n", npkts, nkeys, max_flows,
	       (unsigned long long)m.created, (unsigned long long)m.expired[FLOW_END_IDLE],
	       (unsigned long long)m.expired[FLOW_END_ACTIVE],
	       (unsigned long long)m.expired[FLOW_END_EOF],
	       (unsigned long long)m.expired[FLOW_END_RESOURCE],
	       (unsigned long long)m.expired[FLOW_END_FORCED], (unsigned long long)ticks);
	sink_free(&got);
	sink_free(&m.out);
	free(m.f);
	flowtab_free(ft);
}

/* Checked at each record: nothing leaves the table before its rule says so. */
struct jitter_ctx {
	struct flowtab_cfg cfg;
	uint64_t now;
	uint64_t packets;
	uint64_t records;
};

static void jitter_emit(const struct flow_rec *r, void *arg)
{
	struct jitter_ctx *c = arg;

	assert_true(r->first_ms <= r->last_ms);
	assert_true(r->packets > 0);
	switch (r->end_reason) {
	case FLOW_END_IDLE:
		assert_true(c->now >= r->last_ms + c->cfg.inactive_ms);
		break;
	case FLOW_END_EOF:
		assert_true(r->tcp_flags & (TCP_FIN | TCP_RST));
		assert_true(c->now >= r->last_ms + c->cfg.fin_grace_ms);
		break;
	case FLOW_END_ACTIVE:
		assert_true(c->now >= r->first_ms + c->cfg.active_ms);
		break;
	case FLOW_END_RESOURCE:
	case FLOW_END_FORCED:
		break;
	default:
		fail();
	}
	c->packets += r->packets;
	c->records++;
}

/* Timestamps jittered by up to 2 s either way (and ticks with them): nothing expires
 * early, every packet comes out once, the budget holds. */
static void test_out_of_order_random(void **state)
{
	struct jitter_ctx c = { .cfg = { .max_flows = 256, .active_ms = 10000,
					 .inactive_ms = 3000, .fin_grace_ms = 500 } };
	struct flowtab *ft = flowtab_new(&c.cfg);
	const struct flowtab_stats *st;
	uint64_t x = 4242, clock = 100000;
	struct pkt_info pi;

	(void)state;
	assert_non_null(ft);
	st = flowtab_stats(ft);
	for (uint32_t p = 0; p < 100000; p++) {
		uint64_t r = rnd(&x);
		uint32_t id = (uint32_t)(r >> 8) % 400;
		uint8_t flags = (r >> 30) % 300 == 0 ? TCP_FIN : (r >> 30) % 300 == 1 ? TCP_RST
										  : TCP_ACK;

		clock += (r >> 50) % 20;
		c.now = clock + 2000 - (r >> 20) % 4001;
		mkpkt(&pi, id, flags, 100);
		flowtab_update(ft, &pi, c.now, jitter_emit, &c);
		assert_true(st->active <= c.cfg.max_flows);
		if ((r & 15) == 0) {
			c.now = clock + 2000 - (rnd(&x) % 4001);
			flowtab_expire(ft, c.now, jitter_emit, &c);
		}
	}
	flowtab_flush(ft, jitter_emit, &c);
	assert_int_equal(c.packets, 100000);
	assert_int_equal(c.records, st->created);
	assert_int_equal(st->active, 0);
	flowtab_free(ft);
}

/* 200k packets over 5k keys, default timeouts: mostly idle and active ends. */
static void test_model_default(void **state)
{
	(void)state;
	run_model(8192, 5000, 200000, 60000, 15000, 2000, 20, 0x9e3779b97f4a7c15ull);
}

/* Short timeouts and equal-ms packets: many restarts inside update, every boundary. */
static void test_model_short(void **state)
{
	(void)state;
	run_model(8192, 5000, 200000, 500, 100, 50, 3, 0x2545f4914f6cdd1dull);
}

/* A table far smaller than the key set at load 3/4: evictions and heavy index churn
 * (backward-shift deletion, wrap-around of the probe sequence). */
static void test_model_full(void **state)
{
	(void)state;
	run_model(96, 300, 100000, 60000, 15000, 2000, 20, 0xdeadbeefcafef00dull);
	run_model(3, 8, 20000, 1000, 300, 100, 30, 12345);
	run_model(1, 3, 5000, 1000, 300, 100, 30, 777);
}

/* Zero timeouts: every packet is its own flow. */
static void test_model_zero(void **state)
{
	(void)state;
	run_model(64, 100, 20000, 0, 0, 0, 2, 99);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_new_rejects),
		cmocka_unit_test(test_mem_per_flow),
		cmocka_unit_test(test_counters_and_flags),
		cmocka_unit_test(test_keys_distinct),
		cmocka_unit_test(test_hash_collisions),
		cmocka_unit_test(test_inactive_boundary),
		cmocka_unit_test(test_active_split),
		cmocka_unit_test(test_fin_rst_grace),
		cmocka_unit_test(test_table_full),
		cmocka_unit_test(test_expire_cost),
		cmocka_unit_test(test_out_of_order),
		cmocka_unit_test(test_out_of_order_random),
		cmocka_unit_test(test_model_default),
		cmocka_unit_test(test_model_short),
		cmocka_unit_test(test_model_full),
		cmocka_unit_test(test_model_zero),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
