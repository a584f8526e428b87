/* nf9enc.c: NetFlow v9 (RFC 3954) export encoding into a caller's buffer.
 *
 * The template tables below are the single definition of what goes on the wire; the
 * record writers are straight-line code for speed (one call per flow) and the unit
 * test decodes their output through the tables, so the two cannot drift unnoticed.
 */
#include "nf9enc.h"

#include <errno.h>
#include <string.h>

#include "bytes.h"

/* Fixed-size fields first, largest first, so every multi-byte field sits at its natural
 * alignment within the record. */
static const struct nf9enc_field tpl_v4[] = {
	{ NF9ENC_IN_BYTES, 8 },
	{ NF9ENC_IN_PKTS, 8 },
	{ NF9ENC_FIRST_SWITCHED, 4 },
	{ NF9ENC_LAST_SWITCHED, 4 },
	{ NF9ENC_IPV4_SRC_ADDR, 4 },
	{ NF9ENC_IPV4_DST_ADDR, 4 },
	{ NF9ENC_IPV4_NEXT_HOP, 4 },
	{ NF9ENC_INPUT_SNMP, 4 },
	{ NF9ENC_OUTPUT_SNMP, 4 },
	{ NF9ENC_L4_SRC_PORT, 2 },
	{ NF9ENC_L4_DST_PORT, 2 },
	{ NF9ENC_ICMP_TYPE, 2 },
	{ NF9ENC_SRC_VLAN, 2 },
	{ NF9ENC_PROTOCOL, 1 },
	{ NF9ENC_SRC_TOS, 1 },
	{ NF9ENC_TCP_FLAGS, 1 },
	{ NF9ENC_IP_PROTOCOL_VERSION, 1 },
	{ NF9ENC_FLOW_END_REASON, 1 },
};

static const struct nf9enc_field tpl_v6[] = {
	{ NF9ENC_IN_BYTES, 8 },
	{ NF9ENC_IN_PKTS, 8 },
	{ NF9ENC_FIRST_SWITCHED, 4 },
	{ NF9ENC_LAST_SWITCHED, 4 },
	{ NF9ENC_IPV6_SRC_ADDR, 16 },
	{ NF9ENC_IPV6_DST_ADDR, 16 },
	{ NF9ENC_IPV6_NEXT_HOP, 16 },
	{ NF9ENC_INPUT_SNMP, 4 },
	{ NF9ENC_OUTPUT_SNMP, 4 },
	{ NF9ENC_L4_SRC_PORT, 2 },
	{ NF9ENC_L4_DST_PORT, 2 },
	{ NF9ENC_ICMP_TYPE, 2 },
	{ NF9ENC_SRC_VLAN, 2 },
	{ NF9ENC_PROTOCOL, 1 },
	{ NF9ENC_SRC_TOS, 1 },
	{ NF9ENC_TCP_FLAGS, 1 },
	{ NF9ENC_IP_PROTOCOL_VERSION, 1 },
	{ NF9ENC_FLOW_END_REASON, 1 },
};

/* Scope first (RFC 3954 section 6.1), then the options. */
static const struct nf9enc_field tpl_opt[] = {
	{ NF9ENC_SCOPE_SYSTEM, 4 },
	{ NF9ENC_SAMPLING_INTERVAL, 4 },
	{ NF9ENC_SYSTEM_INIT_MS, 8 },
	{ NF9ENC_SAMPLING_ALGORITHM, 1 },
};

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* Record lengths the writers produce; the tables must sum to these (unit test). */
#define V4_RECLEN 57
#define V6_RECLEN 93
#define OPT_RECLEN 17
#define OPT_NSCOPE 1
#define NF9_MAX_CAP 65532

const struct nf9enc_field *nf9enc_fields(uint16_t id, size_t *n, size_t *nscope)
{
	*nscope = 0;
	switch (id) {
	case NF9_TPL_V4:
		*n = NELEM(tpl_v4);
		return tpl_v4;
	case NF9_TPL_V6:
		*n = NELEM(tpl_v6);
		return tpl_v6;
	case NF9_TPL_OPTIONS:
		*n = NELEM(tpl_opt);
		*nscope = OPT_NSCOPE;
		return tpl_opt;
	}
	*n = 0;
	return NULL;
}

size_t nf9enc_reclen(uint16_t id)
{
	switch (id) {
	case NF9_TPL_V4:
		return V4_RECLEN;
	case NF9_TPL_V6:
		return V6_RECLEN;
	case NF9_TPL_OPTIONS:
		return OPT_RECLEN;
	}
	return 0;
}

static inline size_t pad4(size_t n)
{
	return (n + 3) & ~(size_t)3;
}

/* Bytes of the template flowset, the options template flowset and the options data
 * flowset together, padding included. */
static size_t templates_len(void)
{
	size_t t = NF9_SET_HDR_LEN + 4 + 4 * NELEM(tpl_v4) + 4 + 4 * NELEM(tpl_v6);
	size_t o = NF9_SET_HDR_LEN + 6 + 4 * NELEM(tpl_opt);
	size_t d = NF9_SET_HDR_LEN + OPT_RECLEN;
	return pad4(t) + pad4(o) + pad4(d);
}

size_t nf9enc_min_cap(void)
{
	return NF9_HDR_LEN + templates_len() + pad4(NF9_SET_HDR_LEN + V6_RECLEN);
}

void nf9enc_init(struct nf9enc *e, uint8_t *buf, size_t cap, uint32_t source_id,
		 uint64_t boot_ms)
{
	memset(e, 0, sizeof(*e));
	e->buf = buf;
	e->cap = cap > NF9_MAX_CAP ? NF9_MAX_CAP : cap;
	e->source_id = source_id;
	/* A whole second keeps unix_secs * 1000 - boot_ms >= 0 (see the header). */
	e->boot_ms = boot_ms - boot_ms % 1000;
	e->sampling_interval = 1;
	e->sampling_algorithm = 0;
}

void nf9enc_begin(struct nf9enc *e)
{
	if (e->len)
		return;
	e->len = NF9_HDR_LEN;
	e->set_off = 0;
	e->set_id = 0;
	e->count = 0;
}

void nf9enc_set_buf(struct nf9enc *e, uint8_t *buf)
{
	e->buf = buf;
}

/* Pads the open flowset with zeros to 4 bytes and writes its length. */
static void close_set(struct nf9enc *e)
{
	if (!e->set_off)
		return;
	size_t end = pad4(e->len);
	memset(e->buf + e->len, 0, end - e->len);
	st_be16(e->buf + e->set_off + 2, (uint16_t)(end - e->set_off));
	e->len = end;
	e->set_off = 0;
	e->set_id = 0;
}

static void open_set(struct nf9enc *e, uint16_t id)
{
	e->set_off = e->len;
	e->set_id = id;
	st_be16(e->buf + e->len, id);
	st_be16(e->buf + e->len + 2, 0);
	e->len += NF9_SET_HDR_LEN;
}

static uint8_t *put_fields(uint8_t *p, const struct nf9enc_field *f, size_t n)
{
	for (size_t i = 0; i < n; i++, p += 4) {
		st_be16(p, f[i].type);
		st_be16(p + 2, f[i].len);
	}
	return p;
}

int nf9enc_add_templates(struct nf9enc *e, uint64_t now_ms)
{
	(void)now_ms; /* the options record carries boot_ms, not the export time */
	nf9enc_begin(e);
	if (pad4(e->len) + templates_len() > e->cap)
		return -ENOSPC;
	close_set(e);

	/* Template flowset (id 0) with both data templates. */
	open_set(e, 0);
	uint8_t *p = e->buf + e->len;
	st_be16(p, NF9_TPL_V4);
	st_be16(p + 2, (uint16_t)NELEM(tpl_v4));
	p = put_fields(p + 4, tpl_v4, NELEM(tpl_v4));
	st_be16(p, NF9_TPL_V6);
	st_be16(p + 2, (uint16_t)NELEM(tpl_v6));
	p = put_fields(p + 4, tpl_v6, NELEM(tpl_v6));
	e->len = (size_t)(p - e->buf);
	close_set(e);

	/* Options template flowset (id 1): id, scope length, option length in bytes. */
	open_set(e, 1);
	p = e->buf + e->len;
	st_be16(p, NF9_TPL_OPTIONS);
	st_be16(p + 2, (uint16_t)(4 * OPT_NSCOPE));
	st_be16(p + 4, (uint16_t)(4 * (NELEM(tpl_opt) - OPT_NSCOPE)));
	p = put_fields(p + 6, tpl_opt, NELEM(tpl_opt));
	e->len = (size_t)(p - e->buf);
	close_set(e);

	/* Options data: scope System = source ID, then tpl_opt's fields in order. */
	open_set(e, NF9_TPL_OPTIONS);
	p = e->buf + e->len;
	st_be32(p, e->source_id);
	st_be32(p + 4, e->sampling_interval);
	st_be64(p + 8, e->boot_ms);
	p[16] = e->sampling_algorithm;
	e->len += OPT_RECLEN;
	close_set(e);

	e->count = (uint16_t)(e->count + 4);
	return 0;
}

/* FIRST/LAST_SWITCHED: ms since boot, clamped at boot; wraps mod 2^32 with sysUptime. */
static inline uint32_t since_boot(const struct nf9enc *e, uint64_t t_ms)
{
	return t_ms < e->boot_ms ? 0 : (uint32_t)(t_ms - e->boot_ms);
}

/* The fields both record layouts share, after the addresses: see tpl_v4/tpl_v6. */
static inline void put_tail(uint8_t *p, const struct flow_rec *r, uint8_t ipver)
{
	int icmp = r->proto == 1 || r->proto == 58;
	st_be32(p, r->in_if);
	st_be32(p + 4, r->out_if);
	st_be16(p + 8, r->sport);
	st_be16(p + 10, r->dport);
	st_be16(p + 12, icmp ? r->dport : 0);
	st_be16(p + 14, r->vlan);
	p[16] = r->proto;
	p[17] = r->tos;
	p[18] = r->tcp_flags;
	p[19] = ipver;
	p[20] = r->end_reason;
}

static inline void put_v4(uint8_t *p, const struct nf9enc *e, const struct flow_rec *r)
{
	st_be64(p, r->bytes);
	st_be64(p + 8, r->packets);
	st_be32(p + 16, since_boot(e, r->first_ms));
	st_be32(p + 20, since_boot(e, r->last_ms));
	memcpy(p + 24, r->src + 12, 4);
	memcpy(p + 28, r->dst + 12, 4);
	memcpy(p + 32, r->nexthop + 12, 4);
	put_tail(p + 36, r, 4);
}

static inline void put_v6(uint8_t *p, const struct nf9enc *e, const struct flow_rec *r)
{
	st_be64(p, r->bytes);
	st_be64(p + 8, r->packets);
	st_be32(p + 16, since_boot(e, r->first_ms));
	st_be32(p + 20, since_boot(e, r->last_ms));
	memcpy(p + 24, r->src, 16);
	memcpy(p + 40, r->dst, 16);
	memcpy(p + 56, r->nexthop, 16);
	put_tail(p + 72, r, 6);
}

int nf9enc_add_flow(struct nf9enc *e, const struct flow_rec *rec)
{
	int v4 = rec->ipver == 4 || (rec->ipver != 6 && flowrec_is4(rec->src));
	uint16_t id = v4 ? NF9_TPL_V4 : NF9_TPL_V6;
	size_t reclen = v4 ? V4_RECLEN : V6_RECLEN;

	nf9enc_begin(e);
	/* Room for the record and the padding that will close its flowset. */
	int same = e->set_off && e->set_id == id;
	size_t need = same ? pad4(e->len + reclen)
			   : pad4(e->len) + NF9_SET_HDR_LEN + pad4(reclen);
	if (need > e->cap)
		return -ENOSPC;
	if (!same) {
		close_set(e);
		open_set(e, id);
	}
	if (v4)
		put_v4(e->buf + e->len, e, rec);
	else
		put_v6(e->buf + e->len, e, rec);
	e->len += reclen;
	e->count++;
	return 0;
}

size_t nf9enc_finish(struct nf9enc *e, uint64_t now_ms)
{
	if (!e->len)
		return 0;
	if (!e->count) {
		e->len = 0;
		return 0;
	}
	close_set(e);
	/* Export time before boot reads as boot: sysUptime stays 0, times stay exact. */
	uint64_t now = now_ms < e->boot_ms ? e->boot_ms : now_ms;
	uint64_t secs = now / 1000;
	uint8_t *h = e->buf;
	st_be16(h, 9);
	st_be16(h + 2, e->count);
	st_be32(h + 4, (uint32_t)(secs * 1000 - e->boot_ms));
	st_be32(h + 8, (uint32_t)secs);
	st_be32(h + 12, e->sequence);
	st_be32(h + 16, e->source_id);
	e->sequence++;

	size_t n = e->len;
	e->len = 0;
	e->set_off = 0;
	e->count = 0;
	return n;
}
