/* test_nf9enc.c: decodes what the NetFlow v9 encoder writes with a small independent
 * decoder (header, template / options template / data flowsets, padding) and checks
 * templates against the encoder's table, every field of IPv4 and IPv6 records, the
 * time reconstruction, sequence numbers and the -ENOSPC edge.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "bytes.h"
#include "nf9enc.h"

/* ---- a little NetFlow v9 decoder, written from RFC 3954, not from the encoder ---- */

#define MAXF 32
#define MAXREC 1200

struct dtpl {
	uint16_t id;
	int nscope;
	int n;
	struct nf9enc_field f[MAXF];
	size_t reclen;
};

struct drec {
	const struct dtpl *t;
	const uint8_t *p;
};

struct dec {
	/* header */
	uint16_t version, count;
	uint32_t uptime, unix_secs, sequence, source_id;
	/* templates learnt, kept across datagrams like a collector's cache */
	struct dtpl tpl[8];
	int ntpl;
	/* this datagram */
	int templates;     /* template and options template records */
	int nrec;          /* data and options data records */
	struct drec rec[MAXREC];
};

static struct dtpl *dec_tpl(struct dec *d, uint16_t id)
{
	for (int i = 0; i < d->ntpl; i++)
		if (d->tpl[i].id == id)
			return &d->tpl[i];
	return NULL;
}

static struct dtpl *dec_tpl_new(struct dec *d, uint16_t id)
{
	struct dtpl *t = dec_tpl(d, id);
	if (!t) {
		assert_true(d->ntpl < 8);
		t = &d->tpl[d->ntpl++];
	}
	memset(t, 0, sizeof(*t));
	t->id = id;
	return t;
}

static void assert_zero(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		assert_int_equal(p[i], 0);
}

/* Decodes one datagram into d, failing the test on anything malformed. */
static void decode(struct dec *d, const uint8_t *buf, size_t len)
{
	struct cur c = cur_make(buf, len);
	const uint8_t *h = cur_take(&c, 20);
	assert_non_null(h);
	d->version = ld_be16(h);
	d->count = ld_be16(h + 2);
	d->uptime = ld_be32(h + 4);
	d->unix_secs = ld_be32(h + 8);
	d->sequence = ld_be32(h + 12);
	d->source_id = ld_be32(h + 16);
	d->templates = 0;
	d->nrec = 0;
	assert_int_equal(d->version, 9);

	while (cur_left(&c) > 0) {
		assert_int_equal((size_t)(c.p - buf) % 4, 0); /* flowsets start aligned */
		const uint8_t *sh = cur_take(&c, 4);
		assert_non_null(sh);
		uint16_t id = ld_be16(sh), slen = ld_be16(sh + 2);
		assert_true(slen >= 4);
		assert_int_equal(slen % 4, 0);
		const uint8_t *body = cur_take(&c, slen - 4u);
		assert_non_null(body);
		struct cur b = cur_make(body, slen - 4u);
		if (id == 0) {
			while (cur_left(&b) >= 4) {
				const uint8_t *th = cur_take(&b, 4);
				struct dtpl *t = dec_tpl_new(d, ld_be16(th));
				assert_true(t->id >= 256);
				t->n = ld_be16(th + 2);
				assert_true(t->n > 0 && t->n <= MAXF);
				for (int i = 0; i < t->n; i++) {
					const uint8_t *f = cur_take(&b, 4);
					assert_non_null(f);
					t->f[i].type = ld_be16(f);
					t->f[i].len = ld_be16(f + 2);
					t->reclen += t->f[i].len;
				}
				d->templates++;
			}
		} else if (id == 1) {
			while (cur_left(&b) >= 6) {
				const uint8_t *th = cur_take(&b, 6);
				struct dtpl *t = dec_tpl_new(d, ld_be16(th));
				uint16_t sl = ld_be16(th + 2), ol = ld_be16(th + 4);
				assert_int_equal(sl % 4, 0);
				assert_int_equal(ol % 4, 0);
				t->nscope = sl / 4;
				t->n = (sl + ol) / 4;
				assert_true(t->n <= MAXF);
				for (int i = 0; i < t->n; i++) {
					const uint8_t *f = cur_take(&b, 4);
					assert_non_null(f);
					t->f[i].type = ld_be16(f);
					t->f[i].len = ld_be16(f + 2);
					t->reclen += t->f[i].len;
				}
				d->templates++;
			}
		} else {
			assert_true(id >= 256);
			const struct dtpl *t = dec_tpl(d, id);
			assert_non_null(t); /* data only after its template */
			assert_true(t->reclen > 0);
			while (cur_left(&b) >= t->reclen) {
				assert_true(d->nrec < MAXREC);
				d->rec[d->nrec].t = t;
				d->rec[d->nrec].p = cur_take(&b, t->reclen);
				d->nrec++;
			}
			/* RFC 3954 erratum 2096: padding shorter than any record */
			assert_true(cur_left(&b) < t->reclen);
		}
		assert_true(cur_left(&b) < 4);
		assert_zero(b.p, cur_left(&b));
	}
	assert_int_equal(d->count, d->templates + d->nrec);
}

/* Offset of field type in template t, failing if it is absent. */
static size_t field_off(const struct dtpl *t, uint16_t type, size_t *flen)
{
	size_t off = 0;
	for (int i = 0; i < t->n; i++) {
		if (t->f[i].type == type) {
			*flen = t->f[i].len;
			return off;
		}
		off += t->f[i].len;
	}
	fail_msg("field %u not in template %u", type, t->id);
	return 0;
}

static uint64_t fu(const struct drec *r, uint16_t type)
{
	size_t len;
	size_t off = field_off(r->t, type, &len);
	assert_true(len <= 8);
	return ld_beN(r->p + off, len);
}

static const uint8_t *fp(const struct drec *r, uint16_t type, size_t want_len)
{
	size_t len;
	size_t off = field_off(r->t, type, &len);
	assert_int_equal(len, want_len);
	return r->p + off;
}

static int has_field(const struct dtpl *t, uint16_t type)
{
	for (int i = 0; i < t->n; i++)
		if (t->f[i].type == type)
			return 1;
	return 0;
}

/* ---- helpers ---- */

#define BOOT 1700000000000ull

static uint64_t rng_next(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static void mk_v4(struct flow_rec *r, uint32_t src, uint32_t dst)
{
	uint8_t a[4];
	memset(r, 0, sizeof(*r));
	st_be32(a, src);
	flowrec_addr4(r->src, a);
	st_be32(a, dst);
	flowrec_addr4(r->dst, a);
	r->ipver = 4;
}

static void mk_v6(struct flow_rec *r, uint8_t seed)
{
	memset(r, 0, sizeof(*r));
	for (int i = 0; i < 16; i++) {
		r->src[i] = (uint8_t)(0x20 + i + seed);
		r->dst[i] = (uint8_t)(0x80 + i + seed);
		r->nexthop[i] = (uint8_t)(0xf0 ^ i ^ seed);
	}
	r->ipver = 6;
}

static void rand_rec(struct flow_rec *r, uint64_t *s)
{
	if (rng_next(s) & 1) {
		mk_v4(r, (uint32_t)rng_next(s), (uint32_t)rng_next(s));
		uint8_t nh[4];
		st_be32(nh, (uint32_t)rng_next(s));
		flowrec_addr4(r->nexthop, nh);
	} else {
		mk_v6(r, (uint8_t)rng_next(s));
	}
	static const uint8_t protos[] = { 6, 17, 1, 58, 47 };
	r->proto = protos[rng_next(s) % 5];
	r->bytes = rng_next(s);
	r->packets = rng_next(s) >> 20;
	r->first_ms = BOOT + rng_next(s) % 1000000000ull;
	r->last_ms = r->first_ms + rng_next(s) % 100000;
	r->in_if = (uint32_t)rng_next(s);
	r->out_if = (uint32_t)rng_next(s);
	r->sport = (uint16_t)rng_next(s);
	r->dport = (uint16_t)rng_next(s);
	r->vlan = (uint16_t)(rng_next(s) & 0xfff);
	r->tos = (uint8_t)rng_next(s);
	r->tcp_flags = (uint8_t)rng_next(s);
	r->end_reason = (uint8_t)(rng_next(s) % 6);
}

/* Checks every field of decoded record d against the flow it came from. */
static void check_rec(const struct drec *d, const struct flow_rec *r, uint64_t boot)
{
	int v4 = r->ipver == 4;
	assert_int_equal(d->t->id, v4 ? NF9_TPL_V4 : NF9_TPL_V6);
	assert_true(fu(d, NF9ENC_IN_BYTES) == r->bytes);
	assert_true(fu(d, NF9ENC_IN_PKTS) == r->packets);
	assert_int_equal(fu(d, NF9ENC_FIRST_SWITCHED), (uint32_t)(r->first_ms - boot));
	assert_int_equal(fu(d, NF9ENC_LAST_SWITCHED), (uint32_t)(r->last_ms - boot));
	if (v4) {
		assert_memory_equal(fp(d, NF9ENC_IPV4_SRC_ADDR, 4), r->src + 12, 4);
		assert_memory_equal(fp(d, NF9ENC_IPV4_DST_ADDR, 4), r->dst + 12, 4);
		assert_memory_equal(fp(d, NF9ENC_IPV4_NEXT_HOP, 4), r->nexthop + 12, 4);
		assert_false(has_field(d->t, NF9ENC_IPV6_SRC_ADDR));
	} else {
		assert_memory_equal(fp(d, NF9ENC_IPV6_SRC_ADDR, 16), r->src, 16);
		assert_memory_equal(fp(d, NF9ENC_IPV6_DST_ADDR, 16), r->dst, 16);
		assert_memory_equal(fp(d, NF9ENC_IPV6_NEXT_HOP, 16), r->nexthop, 16);
		assert_false(has_field(d->t, NF9ENC_IPV4_SRC_ADDR));
	}
	assert_int_equal(fu(d, NF9ENC_INPUT_SNMP), r->in_if);
	assert_int_equal(fu(d, NF9ENC_OUTPUT_SNMP), r->out_if);
	assert_int_equal(fu(d, NF9ENC_L4_SRC_PORT), r->sport);
	assert_int_equal(fu(d, NF9ENC_L4_DST_PORT), r->dport);
	int icmp = r->proto == 1 || r->proto == 58;
	assert_int_equal(fu(d, NF9ENC_ICMP_TYPE), icmp ? r->dport : 0);
	assert_int_equal(fu(d, NF9ENC_SRC_VLAN), r->vlan);
	assert_int_equal(fu(d, NF9ENC_PROTOCOL), r->proto);
	assert_int_equal(fu(d, NF9ENC_SRC_TOS), r->tos);
	assert_int_equal(fu(d, NF9ENC_TCP_FLAGS), r->tcp_flags);
	assert_int_equal(fu(d, NF9ENC_IP_PROTOCOL_VERSION), v4 ? 4 : 6);
	assert_int_equal(fu(d, NF9ENC_FLOW_END_REASON), r->end_reason);
}

/* ---- tests ---- */

/* The templates on the wire are exactly the encoder's table, lengths add up to the
 * record lengths the writers use, and the options record carries its values. */
static void test_templates_match_table(void **state)
{
	(void)state;
	uint8_t buf[1500];
	struct nf9enc e;
	struct dec d = { 0 };
	nf9enc_init(&e, buf, sizeof(buf), 0x01020304, BOOT + 789);
	e.sampling_interval = 100;
	e.sampling_algorithm = 2;
	assert_int_equal(nf9enc_add_templates(&e, BOOT + 5000), 0);
	size_t n = nf9enc_finish(&e, BOOT + 5000);
	assert_true(n > 20 && n <= nf9enc_min_cap());
	decode(&d, buf, n);
	assert_int_equal(d.count, 4);
	assert_int_equal(d.templates, 3);
	assert_int_equal(d.source_id, 0x01020304);

	const uint16_t ids[] = { NF9_TPL_V4, NF9_TPL_V6, NF9_TPL_OPTIONS };
	for (int k = 0; k < 3; k++) {
		size_t nf, ns;
		const struct nf9enc_field *f = nf9enc_fields(ids[k], &nf, &ns);
		const struct dtpl *t = dec_tpl(&d, ids[k]);
		assert_non_null(f);
		assert_non_null(t);
		assert_int_equal(t->n, nf);
		assert_int_equal(t->nscope, ns);
		size_t sum = 0;
		for (size_t i = 0; i < nf; i++) {
			assert_int_equal(t->f[i].type, f[i].type);
			assert_int_equal(t->f[i].len, f[i].len);
			sum += f[i].len;
		}
		assert_int_equal(sum, nf9enc_reclen(ids[k]));
		assert_int_equal(t->reclen, sum);
		/* records must be longer than any padding (RFC 3954 erratum 2096) */
		assert_true(sum > 3);
	}
	size_t nf, ns;
	assert_null(nf9enc_fields(259, &nf, &ns));
	assert_int_equal(nf9enc_reclen(259), 0);

	/* The options data record: scope System = source id, then the options. */
	assert_int_equal(d.nrec, 1);
	const struct drec *o = &d.rec[0];
	assert_int_equal(o->t->id, NF9_TPL_OPTIONS);
	assert_int_equal(o->t->f[0].type, NF9ENC_SCOPE_SYSTEM);
	assert_int_equal(fu(o, NF9ENC_SCOPE_SYSTEM), 0x01020304);
	assert_int_equal(fu(o, NF9ENC_SAMPLING_INTERVAL), 100);
	assert_int_equal(fu(o, NF9ENC_SAMPLING_ALGORITHM), 2);
	/* boot is kept on a whole second (see nf9enc.h) */
	assert_true(fu(o, NF9ENC_SYSTEM_INIT_MS) == BOOT);

	/* Both data templates carry the fields collectors need. */
	static const uint16_t need[] = {
		NF9ENC_IN_BYTES, NF9ENC_IN_PKTS, NF9ENC_FIRST_SWITCHED, NF9ENC_LAST_SWITCHED,
		NF9ENC_L4_SRC_PORT, NF9ENC_L4_DST_PORT, NF9ENC_PROTOCOL, NF9ENC_SRC_TOS,
		NF9ENC_TCP_FLAGS, NF9ENC_INPUT_SNMP, NF9ENC_OUTPUT_SNMP, NF9ENC_ICMP_TYPE,
		NF9ENC_SRC_VLAN, NF9ENC_IP_PROTOCOL_VERSION,
	};
	for (size_t i = 0; i < sizeof(need) / sizeof(need[0]); i++) {
		assert_true(has_field(dec_tpl(&d, NF9_TPL_V4), need[i]));
		assert_true(has_field(dec_tpl(&d, NF9_TPL_V6), need[i]));
	}
}

/* Multi-byte fields sit at offsets that are multiples of their size. */
static void test_field_alignment(void **state)
{
	(void)state;
	const uint16_t ids[] = { NF9_TPL_V4, NF9_TPL_V6, NF9_TPL_OPTIONS };
	for (int k = 0; k < 3; k++) {
		size_t nf, ns, off = 0;
		const struct nf9enc_field *f = nf9enc_fields(ids[k], &nf, &ns);
		for (size_t i = 0; i < nf; i++) {
			size_t a = f[i].len >= 8 ? 8 : f[i].len;
			assert_int_equal(off % a, 0);
			off += f[i].len;
		}
	}
}

static void test_v4_record(void **state)
{
	(void)state;
	uint8_t buf[1500];
	struct nf9enc e;
	struct dec d = { 0 };
	struct flow_rec r;
	mk_v4(&r, 0xc0000201, 0xc6336407);
	uint8_t nh[4] = { 10, 0, 0, 1 };
	flowrec_addr4(r.nexthop, nh);
	r.bytes = 0x0102030405060708ull;
	r.packets = 0x1122334455ull;
	r.first_ms = BOOT + 1234;
	r.last_ms = BOOT + 98765;
	r.in_if = 3;
	r.out_if = 0x80000001;
	r.sport = 51000;
	r.dport = 443;
	r.vlan = 4094;
	r.proto = 6;
	r.tos = 0xb8;
	r.tcp_flags = 0x1b;
	r.end_reason = FLOW_END_EOF;

	nf9enc_init(&e, buf, sizeof(buf), 7, BOOT);
	assert_int_equal(nf9enc_add_templates(&e, BOOT), 0);
	assert_int_equal(nf9enc_add_flow(&e, &r), 0);
	size_t n = nf9enc_finish(&e, BOOT + 100000);
	decode(&d, buf, n);
	assert_int_equal(d.nrec, 2); /* options data + the flow */
	assert_int_equal(d.count, 5);
	check_rec(&d.rec[1], &r, BOOT);
	assert_int_equal(fu(&d.rec[1], NF9ENC_ICMP_TYPE), 0);
}

static void test_v6_record(void **state)
{
	(void)state;
	uint8_t buf[1500];
	struct nf9enc e;
	struct dec d = { 0 };
	struct flow_rec r;
	mk_v6(&r, 3);
	r.bytes = 1500ull * 1000000;
	r.packets = 1000000;
	r.first_ms = BOOT + 1;
	r.last_ms = BOOT + 59999;
	r.in_if = 1;
	r.out_if = 2;
	r.sport = 53;
	r.dport = 33000;
	r.proto = 17;
	r.tos = 0;
	r.end_reason = FLOW_END_ACTIVE;

	nf9enc_init(&e, buf, sizeof(buf), 7, BOOT);
	assert_int_equal(nf9enc_add_templates(&e, BOOT), 0);
	assert_int_equal(nf9enc_add_flow(&e, &r), 0);
	size_t n = nf9enc_finish(&e, BOOT + 60000);
	decode(&d, buf, n);
	assert_int_equal(d.nrec, 2);
	check_rec(&d.rec[1], &r, BOOT);
}

/* ICMP type/code go in ICMP_TYPE (and stay in L4_DST_PORT, as Cisco does) for ICMP
 * and ICMPv6 only. */
static void test_icmp_type(void **state)
{
	(void)state;
	uint8_t buf[1500];
	struct nf9enc e;
	struct dec d = { 0 };
	struct flow_rec r[4];
	mk_v4(&r[0], 0x0a000001, 0x0a000002);
	r[0].proto = 1;
	r[0].dport = 3 << 8 | 3; /* port unreachable */
	mk_v4(&r[1], 0x0a000001, 0x0a000002);
	r[1].proto = 17;
	r[1].dport = 0x0303;
	mk_v6(&r[2], 1);
	r[2].proto = 58;
	r[2].dport = 128 << 8; /* echo request */
	mk_v6(&r[3], 1);
	r[3].proto = 6;
	r[3].dport = 0x8000;

	nf9enc_init(&e, buf, sizeof(buf), 7, BOOT);
	assert_int_equal(nf9enc_add_templates(&e, BOOT), 0);
	for (int i = 0; i < 4; i++) {
		r[i].first_ms = r[i].last_ms = BOOT;
		assert_int_equal(nf9enc_add_flow(&e, &r[i]), 0);
	}
	decode(&d, buf, nf9enc_finish(&e, BOOT));
	assert_int_equal(d.nrec, 5);
	assert_int_equal(fu(&d.rec[1], NF9ENC_ICMP_TYPE), 0x0303);
	assert_int_equal(fu(&d.rec[1], NF9ENC_L4_DST_PORT), 0x0303);
	assert_int_equal(fu(&d.rec[2], NF9ENC_ICMP_TYPE), 0);
	assert_int_equal(fu(&d.rec[2], NF9ENC_L4_DST_PORT), 0x0303);
	assert_int_equal(fu(&d.rec[3], NF9ENC_ICMP_TYPE), 0x8000);
	assert_int_equal(fu(&d.rec[4], NF9ENC_ICMP_TYPE), 0);
	for (int i = 0; i < 4; i++)
		check_rec(&d.rec[i + 1], &r[i], BOOT);
}

/* A collector's unix_secs * 1000 - sysUptime + FIRST_SWITCHED gives first_ms back to
 * the millisecond, whatever the sub-second parts of boot, first and export time. */
static void test_time_reconstruction(void **state)
{
	(void)state;
	const uint64_t boots[] = { BOOT, BOOT + 999, BOOT + 1, 1000 };
	const uint64_t offs[] = { 0, 1, 999, 1000, 1001, 59999, 86400123, 3000000007ull };
	const uint64_t lags[] = { 0, 1, 500, 999, 1000, 15001, 60999 };
	uint8_t buf[1500];
	for (size_t b = 0; b < 4; b++) {
		uint64_t boot = boots[b] - boots[b] % 1000; /* what the encoder keeps */
		for (size_t i = 0; i < 8; i++) {
			for (size_t j = 0; j < 7; j++) {
				struct nf9enc e;
				struct dec d = { 0 };
				struct flow_rec r;
				mk_v4(&r, 1, 2);
				r.first_ms = boot + offs[i];
				r.last_ms = r.first_ms + 777;
				uint64_t now = r.last_ms + lags[j];
				nf9enc_init(&e, buf, sizeof(buf), 1, boots[b]);
				assert_int_equal(e.boot_ms, boot);
				assert_int_equal(nf9enc_add_templates(&e, now), 0);
				assert_int_equal(nf9enc_add_flow(&e, &r), 0);
				decode(&d, buf, nf9enc_finish(&e, now));
				assert_int_equal(d.unix_secs, now / 1000);
				uint64_t base = (uint64_t)d.unix_secs * 1000 - d.uptime;
				assert_true(base == boot);
				assert_true(base + fu(&d.rec[1], NF9ENC_FIRST_SWITCHED) == r.first_ms);
				assert_true(base + fu(&d.rec[1], NF9ENC_LAST_SWITCHED) == r.last_ms);
			}
		}
	}
}

/* Times before boot read as boot; an export time before boot reads as boot too. */
static void test_time_clamp(void **state)
{
	(void)state;
	uint8_t buf[1500];
	struct nf9enc e;
	struct dec d = { 0 };
	struct flow_rec r;
	mk_v4(&r, 1, 2);
	r.first_ms = BOOT - 5000;
	r.last_ms = BOOT + 250;
	nf9enc_init(&e, buf, sizeof(buf), 1, BOOT);
	assert_int_equal(nf9enc_add_templates(&e, 0), 0);
	assert_int_equal(nf9enc_add_flow(&e, &r), 0);
	decode(&d, buf, nf9enc_finish(&e, BOOT + 3500));
	assert_int_equal(fu(&d.rec[1], NF9ENC_FIRST_SWITCHED), 0);
	assert_int_equal(fu(&d.rec[1], NF9ENC_LAST_SWITCHED), 250);
	assert_int_equal(d.uptime, 3000);

	assert_int_equal(nf9enc_add_flow(&e, &r), 0);
	decode(&d, buf, nf9enc_finish(&e, BOOT - 10000));
	assert_int_equal(d.uptime, 0);
	assert_true((uint64_t)d.unix_secs * 1000 == BOOT);
	assert_int_equal(fu(&d.rec[0], NF9ENC_LAST_SWITCHED), 250);
}

/* One sequence number per datagram; an empty finish sends nothing and uses none. */
static void test_sequence(void **state)
{
	(void)state;
	uint8_t buf[1500];
	struct nf9enc e;
	struct dec d = { 0 };
	struct flow_rec r;
	mk_v4(&r, 1, 2);
	r.first_ms = r.last_ms = BOOT;
	nf9enc_init(&e, buf, sizeof(buf), 42, BOOT);
	assert_int_equal(nf9enc_finish(&e, BOOT), 0);
	nf9enc_begin(&e);
	assert_int_equal(nf9enc_finish(&e, BOOT), 0);
	assert_int_equal(e.sequence, 0);
	for (uint32_t s = 0; s < 5; s++) {
		if (s == 0)
			assert_int_equal(nf9enc_add_templates(&e, BOOT), 0);
		for (uint32_t k = 0; k <= s; k++)
			assert_int_equal(nf9enc_add_flow(&e, &r), 0);
		decode(&d, buf, nf9enc_finish(&e, BOOT + s));
		assert_int_equal(d.sequence, s);
		assert_int_equal(d.source_id, 42);
		assert_int_equal(d.count, (s == 0 ? 4 : 0) + s + 1);
	}
	assert_int_equal(e.sequence, 5);
}

/* Padding: one IPv4 record (57 bytes) in a flowset of 64, three zero bytes. */
static void test_padding(void **state)
{
	(void)state;
	uint8_t buf[1500];
	struct nf9enc e;
	struct dec d = { 0 };
	struct flow_rec r;
	memset(buf, 0xee, sizeof(buf));
	mk_v4(&r, 1, 2);
	nf9enc_init(&e, buf, sizeof(buf), 1, BOOT);
	assert_int_equal(nf9enc_add_templates(&e, BOOT), 0);
	size_t tl = nf9enc_finish(&e, BOOT);
	decode(&d, buf, tl);
	assert_int_equal(nf9enc_add_flow(&e, &r), 0);
	size_t n = nf9enc_finish(&e, BOOT);
	assert_int_equal(n, 20 + 4 + 60);
	assert_int_equal(ld_be16(buf + 22), 64);
	assert_zero(buf + 20 + 4 + 57, 3);
	decode(&d, buf, n);
	assert_int_equal(d.nrec, 1);
	/* A v4 then a v6 record: two flowsets, each padded. */
	struct flow_rec r6;
	mk_v6(&r6, 0);
	assert_int_equal(nf9enc_add_flow(&e, &r), 0);
	assert_int_equal(nf9enc_add_flow(&e, &r6), 0);
	n = nf9enc_finish(&e, BOOT);
	assert_int_equal(n, 20 + 64 + 4 + 96);
	decode(&d, buf, n);
	assert_int_equal(d.nrec, 2);
}

/* Fills datagrams of many sizes with v4, v6 and mixed records until -ENOSPC: the
 * datagram never passes cap (guard bytes stay intact), stays decodable, and one
 * more record would really not have fitted. */
static void test_enospc_edge(void **state)
{
	(void)state;
	size_t min = nf9enc_min_cap();
	uint8_t *buf = malloc(min + 400 + 16);
	uint8_t *big = malloc(4096);
	assert_non_null(buf);
	assert_non_null(big);
	uint64_t seed = 0x9e3779b97f4a7c15ull;
	for (size_t cap = min; cap < min + 400; cap++) {
		for (int pat = 0; pat < 4; pat++) {
			struct nf9enc e, eb;
			struct dec d = { 0 }, db = { 0 };
			struct flow_rec recs[64];
			memset(buf, 0xaa, cap + 16);
			nf9enc_init(&e, buf, cap, 1, BOOT);
			nf9enc_init(&eb, big, 4096, 1, BOOT);
			assert_int_equal(nf9enc_add_templates(&e, BOOT), 0);
			assert_int_equal(nf9enc_add_templates(&eb, BOOT), 0);
			int k = 0, r;
			do {
				assert_true(k < 64);
				rand_rec(&recs[k], &seed);
				int v6 = pat == 0 ? 0 : pat == 1 ? 1 : pat == 2 ? k & 1
										 : recs[k].ipver == 6;
				if (v6)
					mk_v6(&recs[k], (uint8_t)k);
				else if (recs[k].ipver == 6)
					mk_v4(&recs[k], 1, 2);
				recs[k].first_ms = recs[k].last_ms = BOOT;
				r = nf9enc_add_flow(&e, &recs[k]);
				assert_int_equal(nf9enc_add_flow(&eb, &recs[k]), 0);
				k++;
			} while (r == 0);
			assert_int_equal(r, -ENOSPC);
			assert_true(k >= 2); /* min_cap takes one record after the templates */
			size_t n = nf9enc_finish(&e, BOOT);
			assert_true(n <= cap);
			for (size_t i = cap; i < cap + 16; i++)
				assert_int_equal(buf[i], 0xaa);
			decode(&d, buf, n);
			assert_int_equal(d.nrec, 1 + k - 1);
			for (int i = 0; i < k - 1; i++)
				check_rec(&d.rec[i + 1], &recs[i], BOOT);
			/* the same records plus the refused one need more than cap */
			size_t nb = nf9enc_finish(&eb, BOOT);
			decode(&db, big, nb);
			assert_int_equal(db.nrec, 1 + k);
			assert_true(nb > cap);
		}
	}
	free(buf);
	free(big);
}

/* 20,000 random flows through 1,472-byte datagrams decode back field for field. */
static void test_random_roundtrip(void **state)
{
	(void)state;
	enum { N = 20000 };
	uint8_t buf[1472];
	struct nf9enc e;
	struct dec d = { 0 };
	struct flow_rec *recs = calloc(N, sizeof(*recs));
	assert_non_null(recs);
	uint64_t seed = 12345;
	nf9enc_init(&e, buf, sizeof(buf), 9, BOOT);
	int next = 0, dgrams = 0;
	for (int i = 0; i < N; i++)
		rand_rec(&recs[i], &seed);
	while (next < N) {
		if (dgrams % 10 == 0)
			assert_int_equal(nf9enc_add_templates(&e, BOOT), 0);
		int first = next;
		while (next < N && nf9enc_add_flow(&e, &recs[next]) == 0)
			next++;
		assert_true(next > first);
		size_t n = nf9enc_finish(&e, BOOT + 2000000000ull);
		assert_true(n <= sizeof(buf));
		decode(&d, buf, n);
		assert_int_equal(d.sequence, (uint32_t)dgrams);
		int opt = dgrams % 10 == 0;
		assert_int_equal(d.nrec, opt + next - first);
		for (int i = first; i < next; i++)
			check_rec(&d.rec[opt + i - first], &recs[i], BOOT);
		dgrams++;
	}
	free(recs);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_templates_match_table),
		cmocka_unit_test(test_field_alignment),
		cmocka_unit_test(test_v4_record),
		cmocka_unit_test(test_v6_record),
		cmocka_unit_test(test_icmp_type),
		cmocka_unit_test(test_time_reconstruction),
		cmocka_unit_test(test_time_clamp),
		cmocka_unit_test(test_sequence),
		cmocka_unit_test(test_padding),
		cmocka_unit_test(test_enospc_edge),
		cmocka_unit_test(test_random_roundtrip),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
