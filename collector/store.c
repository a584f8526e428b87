/* store.c: the flow store (format in store.h). */
#define _FILE_OFFSET_BITS 64    /* 64-bit off_t and st_size on 32-bit Pi builds too */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <lz4.h>
#include <zstd.h>
#define XXH_INLINE_ALL          /* header only: nothing to link, on any target */
#include <xxhash.h>

#include "bytes.h"
#include "store.h"
#include "sys.h"

#define FILE_MAGIC "TFST"
#define BLK_MAGIC "TFB1"
#define BLK_DATA 1
#define BLK_FOOTER 2
#define BLK_FIXED 124                   /* header bytes before the directory */
#define DIRENT_LEN 12
#define COL_MIRROR STORE_NCOLS          /* internal column: mirror references */
#define COL_TDICT (STORE_NCOLS + 1)     /* internal column: the tuple dictionary */
#define COL_TIDX (STORE_NCOLS + 2)      /* internal column: each record's tuple */
#define NCOLS_ALL (STORE_NCOLS + 3)
#define MIRROR_MAX 255                  /* how far back a mirror reference reaches */
#define MIRROR_TAB_BITS 14
#define MIRROR_TAB (1u << MIRROR_TAB_BITS)
#define BLK_HDR_MAX (BLK_FIXED + DIRENT_LEN * NCOLS_ALL + 4)
#define FOOTER_PAYLOAD 16
#define FOOTER_LEN (STORE_BLK_HDR_MIN + FOOTER_PAYLOAD)
#define SLACK 32            /* readable bytes past any column chunk (bit unpacking) */
#define MIN_COMPRESS 64     /* smaller chunks are stored as they are */
#define DICT_SAMPLE 4096    /* a dictionary attempt gives up if 3/4 of a sample differ */

/* Encodings 1-7 are version 1's; 8-13 came with version 2 (writers use only 1, 2, 5 and
 * 8-13 now; readers take them all). */
enum {
	ENC_CONST = 1, ENC_FOR, ENC_DICT, ENC_VARINT, ENC_ADDR_RAW, ENC_ADDR_DICT, ENC_PDICT,
	ENC_HUF, ENC_BITLEN, ENC_HDICT, ENC_HPDICT, ENC_ADDR_DICT2, ENC_TDICT
};
enum { XF_NONE = 0, XF_DELTA, XF_LASTDIFF };
enum { K_ADDR, K_INT, K_TDICT };

static const uint8_t zero_addr[16];
static const size_t dir_digits[3] = { 4, 2, 2 };      /* YYYY/MM/DD */

/* ---- little-endian access (the format's byte order) ---- */

static inline uint16_t ld_le16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static inline uint32_t ld_le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

static inline uint64_t ld_le64(const uint8_t *p)
{
	return (uint64_t)ld_le32(p) | (uint64_t)ld_le32(p + 4) << 32;
}

static inline void st_le16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static inline void st_le32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

static inline void st_le64(uint8_t *p, uint64_t v)
{
	st_le32(p, (uint32_t)v);
	st_le32(p + 4, (uint32_t)(v >> 32));
}

/* ---- XXH32 ---- */

#define XP1 2654435761U
#define XP2 2246822519U
#define XP3 3266489917U
#define XP4 668265263U
#define XP5 374761393U

static inline uint32_t rotl32(uint32_t x, unsigned r)
{
	return x << r | x >> (32 - r);
}

static inline uint32_t xxh_round(uint32_t acc, uint32_t in)
{
	return rotl32(acc + in * XP2, 13) * XP1;
}

uint32_t store_hash32(const void *data, size_t len, uint32_t seed)
{
	const uint8_t *p = data, *end = p + len;
	uint32_t h;

	if (len >= 16) {
		uint32_t v1 = seed + XP1 + XP2, v2 = seed + XP2, v3 = seed, v4 = seed - XP1;
		const uint8_t *lim = end - 16;
		do {
			v1 = xxh_round(v1, ld_le32(p));
			v2 = xxh_round(v2, ld_le32(p + 4));
			v3 = xxh_round(v3, ld_le32(p + 8));
			v4 = xxh_round(v4, ld_le32(p + 12));
			p += 16;
		} while (p <= lim);
		h = rotl32(v1, 1) + rotl32(v2, 7) + rotl32(v3, 12) + rotl32(v4, 18);
	} else {
		h = seed + XP5;
	}
	h += (uint32_t)len;
	for (; end - p >= 4; p += 4)
		h = rotl32(h + ld_le32(p) * XP3, 17) * XP4;
	for (; p < end; p++)
		h = rotl32(h + *p * XP5, 11) * XP1;
	h ^= h >> 15;
	h *= XP2;
	h ^= h >> 13;
	h *= XP3;
	h ^= h >> 16;
	return h;
}

uint32_t store_payload_hash(unsigned phash, const void *p, size_t len)
{
	return phash == STORE_PHASH_XXH3 ? (uint32_t)XXH3_64bits(p, len) :
	       store_hash32(p, len, 0);
}

unsigned store_phash_default(void)
{
#if UINTPTR_MAX > 0xffffffffu || defined(__ARM_NEON)
	return STORE_PHASH_XXH3;
#else
	return STORE_PHASH_XXH32;
#endif
}

/* ---- civil time (UTC) without time_t: 32-bit Pi builds ---- */

struct civil {
	int64_t y;
	unsigned mo, d, h, mi, s, ms;
};

static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	unsigned yoe = (unsigned)(y - era * 400);
	unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
	unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (int64_t)doe - 719468;
}

static void civil_of_ms(uint64_t ms, struct civil *c)
{
	int64_t z = (int64_t)(ms / 86400000) + 719468;
	uint64_t rem = ms % 86400000;
	int64_t era = z / 146097;
	unsigned doe = (unsigned)(z - era * 146097);
	unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	unsigned mp = (5 * doy + 2) / 153;

	c->d = doy - (153 * mp + 2) / 5 + 1;
	c->mo = mp < 10 ? mp + 3 : mp - 9;
	c->y = (int64_t)yoe + era * 400 + (c->mo <= 2);
	c->h = (unsigned)(rem / 3600000);
	c->mi = (unsigned)(rem / 60000 % 60);
	c->s = (unsigned)(rem / 1000 % 60);
	c->ms = (unsigned)(rem % 1000);
}

char *store_time_str(uint64_t ms, char *buf, size_t len)
{
	struct civil c;

	civil_of_ms(ms, &c);
	snprintf(buf, len, "%04lld-%02u-%02uT%02u:%02u:%02u.%03uZ", (long long)c.y, c.mo, c.d,
		 c.h, c.mi, c.s, c.ms);
	return buf;
}

/* ---- columns ---- */

struct colinfo {
	uint8_t kind;
	uint8_t size;       /* bytes per value */
	uint8_t xforms;     /* transforms worth trying besides none (bit per XF_) */
};

static const struct colinfo colinfo[NCOLS_ALL] = {
	[STORE_COL_SRC] = { K_ADDR, 16, 0 },
	[STORE_COL_DST] = { K_ADDR, 16, 0 },
	[STORE_COL_NEXTHOP] = { K_ADDR, 16, 0 },
	[STORE_COL_EXPORTER] = { K_ADDR, 16, 0 },
	[STORE_COL_PACKETS] = { K_INT, 8, 0 },
	[STORE_COL_BYTES] = { K_INT, 8, 0 },
	[STORE_COL_FIRST] = { K_INT, 8, 1 << XF_DELTA | 1 << XF_LASTDIFF },
	[STORE_COL_LAST] = { K_INT, 8, 1 << XF_DELTA },
	[STORE_COL_IN_IF] = { K_INT, 4, 0 },
	[STORE_COL_OUT_IF] = { K_INT, 4, 0 },
	[STORE_COL_SRC_AS] = { K_INT, 4, 0 },
	[STORE_COL_DST_AS] = { K_INT, 4, 0 },
	[STORE_COL_DOMAIN_ID] = { K_INT, 4, 0 },
	[STORE_COL_SAMPLING] = { K_INT, 4, 0 },
	[STORE_COL_SPORT] = { K_INT, 2, 0 },
	[STORE_COL_DPORT] = { K_INT, 2, 0 },
	[STORE_COL_VLAN] = { K_INT, 2, 0 },
	[STORE_COL_PROTO] = { K_INT, 1, 0 },
	[STORE_COL_TOS] = { K_INT, 1, 0 },
	[STORE_COL_TCP_FLAGS] = { K_INT, 1, 0 },
	[STORE_COL_IPVER] = { K_INT, 1, 0 },
	[STORE_COL_SRC_MASK] = { K_INT, 1, 0 },
	[STORE_COL_DST_MASK] = { K_INT, 1, 0 },
	[STORE_COL_END_REASON] = { K_INT, 1, 0 },
	[COL_MIRROR] = { K_INT, 1, 0 },
	[COL_TDICT] = { K_TDICT, 1, 0 },
	[COL_TIDX] = { K_INT, 4, 0 },
};

void *store_cols_array(const struct store_cols *c, int id)
{
	switch (id) {
	case STORE_COL_SRC: return c->src;
	case STORE_COL_DST: return c->dst;
	case STORE_COL_NEXTHOP: return c->nexthop;
	case STORE_COL_EXPORTER: return c->exporter;
	case STORE_COL_PACKETS: return c->packets;
	case STORE_COL_BYTES: return c->bytes;
	case STORE_COL_FIRST: return c->first_ms;
	case STORE_COL_LAST: return c->last_ms;
	case STORE_COL_IN_IF: return c->in_if;
	case STORE_COL_OUT_IF: return c->out_if;
	case STORE_COL_SRC_AS: return c->src_as;
	case STORE_COL_DST_AS: return c->dst_as;
	case STORE_COL_DOMAIN_ID: return c->domain_id;
	case STORE_COL_SAMPLING: return c->sampling;
	case STORE_COL_SPORT: return c->sport;
	case STORE_COL_DPORT: return c->dport;
	case STORE_COL_VLAN: return c->vlan;
	case STORE_COL_PROTO: return c->proto;
	case STORE_COL_TOS: return c->tos;
	case STORE_COL_TCP_FLAGS: return c->tcp_flags;
	case STORE_COL_IPVER: return c->ipver;
	case STORE_COL_SRC_MASK: return c->src_mask;
	case STORE_COL_DST_MASK: return c->dst_mask;
	case STORE_COL_END_REASON: return c->end_reason;
	}
	return NULL;
}

static void cols_set_arr(struct store_cols *c, int id, void *p)
{
	switch (id) {
	case STORE_COL_SRC: c->src = p; break;
	case STORE_COL_DST: c->dst = p; break;
	case STORE_COL_NEXTHOP: c->nexthop = p; break;
	case STORE_COL_EXPORTER: c->exporter = p; break;
	case STORE_COL_PACKETS: c->packets = p; break;
	case STORE_COL_BYTES: c->bytes = p; break;
	case STORE_COL_FIRST: c->first_ms = p; break;
	case STORE_COL_LAST: c->last_ms = p; break;
	case STORE_COL_IN_IF: c->in_if = p; break;
	case STORE_COL_OUT_IF: c->out_if = p; break;
	case STORE_COL_SRC_AS: c->src_as = p; break;
	case STORE_COL_DST_AS: c->dst_as = p; break;
	case STORE_COL_DOMAIN_ID: c->domain_id = p; break;
	case STORE_COL_SAMPLING: c->sampling = p; break;
	case STORE_COL_SPORT: c->sport = p; break;
	case STORE_COL_DPORT: c->dport = p; break;
	case STORE_COL_VLAN: c->vlan = p; break;
	case STORE_COL_PROTO: c->proto = p; break;
	case STORE_COL_TOS: c->tos = p; break;
	case STORE_COL_TCP_FLAGS: c->tcp_flags = p; break;
	case STORE_COL_IPVER: c->ipver = p; break;
	case STORE_COL_SRC_MASK: c->src_mask = p; break;
	case STORE_COL_DST_MASK: c->dst_mask = p; break;
	case STORE_COL_END_REASON: c->end_reason = p; break;
	}
}

void store_cols_init(struct store_cols *c)
{
	memset(c, 0, sizeof(*c));
}

void store_cols_free(struct store_cols *c)
{
	sys_big_free(c->region, c->region_len);
	store_cols_init(c);
}

/* n bytes rounded up to a cache line: where the next array carved from a block starts */
static inline size_t al64(size_t n)
{
	return (n + 63) & ~(size_t)63;
}

/* Room for every column at once, in one allocation, the columns of mask handed out: the
 * pages of columns never used are never touched (from 2 MiB up, sys_big_zalloc maps
 * them), and the used ones come in few huge pages rather than many small ones. */
int store_cols_reserve(struct store_cols *c, uint32_t cap, uint32_t mask)
{
	size_t off[STORE_NCOLS], len = 0;

	if (!c->region || cap > c->cap) {
		uint32_t n = c->n;
		store_cols_free(c);
		c->n = n;
		c->cap = cap ? cap : 1;
	}
	for (int i = 0; i < STORE_NCOLS; i++) {
		off[i] = len;
		len += al64((size_t)c->cap * colinfo[i].size);
	}
	if (!c->region) {
		if (!(c->region = sys_big_zalloc(len)))
			return -ENOMEM;
		c->region_len = len;
	}
	for (int i = 0; i < STORE_NCOLS; i++) {
		if ((mask & STORE_COLBIT(i)) && !(c->alloc & STORE_COLBIT(i))) {
			cols_set_arr(c, i, (uint8_t *)c->region + off[i]);
			c->alloc |= STORE_COLBIT(i);
		}
	}
	return 0;
}

void store_cols_get(const struct store_cols *c, uint32_t i, struct flow_rec *r)
{
	uint32_t m = c->mask;

	memset(r, 0, sizeof(*r));
	if (m & STORE_COLBIT(STORE_COL_SRC))
		memcpy(r->src, c->src[i], 16);
	if (m & STORE_COLBIT(STORE_COL_DST))
		memcpy(r->dst, c->dst[i], 16);
	for (int k = 0; k < 2; k++) {
		if (!(c->codes & STORE_COLBIT(k ? STORE_COL_DST : STORE_COL_SRC)))
			continue;
		uint64_t x = c->code[k] ? c->code[k][i] : store_packed_get(&c->cpk[k], i);
		if (x < c->nd[k])       /* packed codes are not checked: one out of range reads 0 */
			memcpy(k ? r->dst : r->src, c->dict[k][x], 16);
	}
	if (m & STORE_COLBIT(STORE_COL_NEXTHOP))
		memcpy(r->nexthop, c->nexthop[i], 16);
	if (m & STORE_COLBIT(STORE_COL_EXPORTER))
		memcpy(r->exporter, c->exporter[i], 16);
	if (m & STORE_COLBIT(STORE_COL_PACKETS))
		r->packets = c->packets[i];
	if (m & STORE_COLBIT(STORE_COL_BYTES))
		r->bytes = c->bytes[i];
	if (m & STORE_COLBIT(STORE_COL_FIRST))
		r->first_ms = c->first_ms[i];
	if (m & STORE_COLBIT(STORE_COL_LAST))
		r->last_ms = c->last_ms[i];
	if (m & STORE_COLBIT(STORE_COL_IN_IF))
		r->in_if = c->in_if[i];
	if (m & STORE_COLBIT(STORE_COL_OUT_IF))
		r->out_if = c->out_if[i];
	if (m & STORE_COLBIT(STORE_COL_SRC_AS))
		r->src_as = c->src_as[i];
	if (m & STORE_COLBIT(STORE_COL_DST_AS))
		r->dst_as = c->dst_as[i];
	if (m & STORE_COLBIT(STORE_COL_DOMAIN_ID))
		r->domain_id = c->domain_id[i];
	if (m & STORE_COLBIT(STORE_COL_SAMPLING))
		r->sampling = c->sampling[i];
	if (m & STORE_COLBIT(STORE_COL_SPORT))
		r->sport = c->sport[i];
	if (m & STORE_COLBIT(STORE_COL_DPORT))
		r->dport = c->dport[i];
	if (m & STORE_COLBIT(STORE_COL_VLAN))
		r->vlan = c->vlan[i];
	if (m & STORE_COLBIT(STORE_COL_PROTO))
		r->proto = c->proto[i];
	if (m & STORE_COLBIT(STORE_COL_TOS))
		r->tos = c->tos[i];
	if (m & STORE_COLBIT(STORE_COL_TCP_FLAGS))
		r->tcp_flags = c->tcp_flags[i];
	if (m & STORE_COLBIT(STORE_COL_IPVER))
		r->ipver = c->ipver[i];
	if (m & STORE_COLBIT(STORE_COL_SRC_MASK))
		r->src_mask = c->src_mask[i];
	if (m & STORE_COLBIT(STORE_COL_DST_MASK))
		r->dst_mask = c->dst_mask[i];
	if (m & STORE_COLBIT(STORE_COL_END_REASON))
		r->end_reason = c->end_reason[i];
	for (int k = 0; k < 2; k++) {
		if (!(c->pcodes & STORE_COLBIT(STORE_COL_SPORT + k)))
			continue;
		uint64_t x = c->pcode[k][i];
		uint32_t e = 0;
		for (uint32_t j = 0; j < i; j++)
			e += c->pcode[k][j] == 0;
		uint16_t v = x ? c->pdict[k][x - 1] : e < c->pne[k] ? c->pexc[k][e] : 0;
		if (k)
			r->dport = v;
		else
			r->sport = v;
	}
	if (c->tuple) {
		/* members handed out as the tuple dictionary: that entry's values */
		struct flow_rec t;
		uint32_t tm = c->tuple;
		store_cols_get(c->tdict, c->tidx ? c->tidx[i] : (uint32_t)store_packed_get(&c->tpk, i),
			       &t);
#define TUPLE_TAKE(f, col) if (tm & STORE_COLBIT(col)) r->f = t.f
		TUPLE_TAKE(in_if, STORE_COL_IN_IF); TUPLE_TAKE(out_if, STORE_COL_OUT_IF);
		TUPLE_TAKE(vlan, STORE_COL_VLAN); TUPLE_TAKE(proto, STORE_COL_PROTO);
		TUPLE_TAKE(tos, STORE_COL_TOS); TUPLE_TAKE(tcp_flags, STORE_COL_TCP_FLAGS);
		TUPLE_TAKE(ipver, STORE_COL_IPVER); TUPLE_TAKE(src_mask, STORE_COL_SRC_MASK);
		TUPLE_TAKE(dst_mask, STORE_COL_DST_MASK);
		TUPLE_TAKE(end_reason, STORE_COL_END_REASON);
#undef TUPLE_TAKE
	}
}

const uint16_t *store_cols_port_values(const struct store_cols *c, int k)
{
	const uint64_t *code = c->pcode[k];
	const uint16_t *dict = c->pdict[k], *exc = c->pexc[k];
	uint16_t *v = c->pval[k];
	uint32_t e = 0, ne = c->pne[k];

	/* the decoder checked that the codes 0 are as many as the exceptions */
	for (uint32_t i = 0; i < c->n; i++) {
		uint64_t x = code[i];
		v[i] = x ? dict[x - 1] : exc[e < ne ? e : 0];
		e += x == 0;
	}
	return v;
}

/* ---- zone maps ---- */

static void zone_empty(struct store_zone *z)
{
	memset(z, 0, sizeof(*z));
	z->first_min = UINT64_MAX;
	z->last_min = UINT64_MAX;
	z->sport_min = UINT16_MAX;
	z->dport_min = UINT16_MAX;
}

static void zone_merge(struct store_zone *z, const struct store_zone *b)
{
	if (b->first_min < z->first_min) z->first_min = b->first_min;
	if (b->first_max > z->first_max) z->first_max = b->first_max;
	if (b->last_min < z->last_min) z->last_min = b->last_min;
	if (b->last_max > z->last_max) z->last_max = b->last_max;
	if (b->sport_min < z->sport_min) z->sport_min = b->sport_min;
	if (b->sport_max > z->sport_max) z->sport_max = b->sport_max;
	if (b->dport_min < z->dport_min) z->dport_min = b->dport_min;
	if (b->dport_max > z->dport_max) z->dport_max = b->dport_max;
	/* saturating: the sums are upper bounds for filters */
	z->packets = z->packets + b->packets < z->packets ? UINT64_MAX : z->packets + b->packets;
	z->bytes = z->bytes + b->bytes < z->bytes ? UINT64_MAX : z->bytes + b->bytes;
	for (int i = 0; i < 32; i++)
		z->proto[i] |= b->proto[i];
	z->ipver |= b->ipver;
}

static void zone_put(uint8_t *h, const struct store_zone *z)
{
	st_le64(h + 24, z->first_min);
	st_le64(h + 32, z->first_max);
	st_le64(h + 40, z->last_min);
	st_le64(h + 48, z->last_max);
	st_le64(h + 56, z->packets);
	st_le64(h + 64, z->bytes);
	st_le16(h + 72, z->sport_min);
	st_le16(h + 74, z->sport_max);
	st_le16(h + 76, z->dport_min);
	st_le16(h + 78, z->dport_max);
	memcpy(h + 80, z->proto, 32);
	h[112] = z->ipver;
}

static void zone_get(const uint8_t *h, struct store_zone *z)
{
	z->first_min = ld_le64(h + 24);
	z->first_max = ld_le64(h + 32);
	z->last_min = ld_le64(h + 40);
	z->last_max = ld_le64(h + 48);
	z->packets = ld_le64(h + 56);
	z->bytes = ld_le64(h + 64);
	z->sport_min = ld_le16(h + 72);
	z->sport_max = ld_le16(h + 74);
	z->dport_min = ld_le16(h + 76);
	z->dport_max = ld_le16(h + 78);
	memcpy(z->proto, h + 80, 32);
	z->ipver = h[112];
}

int store_zone_overlaps(const struct store_zone *z, const struct store_window *w)
{
	if (z->first_min > z->first_max)
		return 0;
	if (!w)
		return 1;
	return z->first_min <= w->to_ms && z->last_max >= w->from_ms;
}

/* ---- integer coding primitives ---- */

static inline unsigned bits64(uint64_t x)
{
	return x ? 64 - (unsigned)__builtin_clzll(x) : 0;
}

static inline unsigned round8(unsigned w)
{
	return (w + 7) & ~7u;
}

static inline uint64_t packed_len(uint64_t n, unsigned w, unsigned layout)
{
	return layout ? n * (w / 8) : (n * w + 7) / 8;
}

static inline int addr_eq(const uint8_t *a, const uint8_t *b)
{
	return ld_le64(a) == ld_le64(b) && ld_le64(a + 8) == ld_le64(b + 8);
}

static inline uint64_t zigzag(uint64_t d)
{
	return d << 1 ^ (uint64_t)-(int64_t)(d >> 63);
}

static inline uint64_t unzigzag(uint64_t z)
{
	return z >> 1 ^ (uint64_t)-(int64_t)(z & 1);
}

static size_t pack_bits(uint8_t *out, const uint64_t *v, size_t n, uint64_t base, unsigned w)
{
	uint8_t *o = out;
	uint64_t acc = 0, mask = w >= 64 ? ~0ULL : (1ULL << w) - 1;
	unsigned nb = 0;

	if (!w)
		return 0;
	for (size_t i = 0; i < n; i++) {
		uint64_t x = (v[i] - base) & mask;
		acc |= x << nb;
		if (nb + w >= 64) {
			st_le64(o, acc);
			o += 8;
			acc = nb ? x >> (64 - nb) : 0;
			nb = nb + w - 64;
		} else {
			nb += w;
		}
	}
	for (; nb > 0; nb = nb > 8 ? nb - 8 : 0) {
		*o++ = (uint8_t)acc;
		acc >>= 8;
	}
	return (size_t)(o - out);
}

/* Groups of 8 values of W bits (a constant at each call: offsets and shifts fold, one
 * load, shift, mask and add a value) into T; returns the values done, a multiple of 8. */
#define UNPACK8(name, T)                                                                    \
static inline __attribute__((always_inline)) size_t name(const uint8_t *p, size_t n,       \
							 unsigned W, uint64_t base, T *out)  \
{                                                                                           \
	const uint64_t mask = (1ULL << W) - 1;                                              \
	size_t i = 0;                                                                       \
	for (; i + 8 <= n; i += 8, p += W) {                                                \
		_Pragma("GCC unroll 8")                                                     \
		for (unsigned k = 0; k < 8; k++)                                            \
			out[i + k] = (T)(base + (ld_le64(p + k * W / 8) >> (k * W % 8) & mask)); \
	}                                                                                   \
	return i;                                                                           \
}
UNPACK8(unpack8, uint64_t)
UNPACK8(unpack8_32, uint32_t)
#undef UNPACK8

/* n values of w <= 32 bits over base into 32 bits (tuple indices); reads as unpack_bits. */
static void unpack_bits32(const uint8_t *p, size_t n, unsigned w, uint64_t base, uint32_t *out)
{
	uint64_t mask = (1ULL << w) - 1, bp = 0;
	size_t done = 0;

	switch (w) {
#define W(x) case x: done = unpack8_32(p, n, x, base, out); break;
	W(1) W(2) W(3) W(4) W(5) W(6) W(7) W(8) W(9) W(10) W(11) W(12)
#undef W
	}
	p += done / 8 * w;
	for (size_t i = done; i < n; i++, bp += w)
		out[i] = (uint32_t)(base + (ld_le64(p + (bp >> 3)) >> (bp & 7) & mask));
}

/* Reads up to 9 bytes past the last value's first byte: callers guarantee SLACK. */
static void unpack_bits(const uint8_t *p, size_t n, unsigned w, uint64_t base, uint64_t *out)
{
	uint64_t mask = w >= 64 ? ~0ULL : (1ULL << w) - 1, bp = 0;
	size_t done = 0;

	/* the widths dictionary indices, counters and time deltas take, specialised */
	switch (w) {
#define W(x) case x: done = unpack8(p, n, x, base, out); break;
	W(1) W(2) W(3) W(4) W(5) W(6) W(7) W(9) W(10) W(11) W(12) W(13) W(14) W(15) W(16)
	W(17) W(18) W(19) W(20) W(21) W(22) W(23) W(24) W(25) W(26) W(27) W(28) W(29) W(30)
	W(31) W(32)
#undef W
	}
	if (done) {
		p += done / 8 * w;
		out += done;
		n -= done;
	}
	if (!w) {
		for (size_t i = 0; i < n; i++)
			out[i] = base;
	} else if (w == 8) {
		for (size_t i = 0; i < n; i++)
			out[i] = base + p[i];
	} else if (w <= 56) {
		for (size_t i = 0; i < n; i++, bp += w)
			out[i] = base + (ld_le64(p + (bp >> 3)) >> (bp & 7) & mask);
	} else {
		for (size_t i = 0; i < n; i++, bp += w) {
			size_t b = (size_t)(bp >> 3);
			unsigned s = (unsigned)(bp & 7);
			uint64_t x = ld_le64(p + b) >> s;
			if (s)
				x |= (uint64_t)p[b + 8] << (64 - s);
			out[i] = base + (x & mask);
		}
	}
}

static size_t pack_planes(uint8_t *out, const uint64_t *v, size_t n, uint64_t base,
			  unsigned nplanes)
{
	for (unsigned k = 0; k < nplanes; k++) {
		uint8_t *pl = out + (size_t)k * n;
		for (size_t i = 0; i < n; i++)
			pl[i] = (uint8_t)((v[i] - base) >> (8 * k));
	}
	return (size_t)nplanes * n;
}

static void unpack_planes(const uint8_t *p, size_t n, unsigned nplanes, uint64_t base,
			  uint64_t *out)
{
	for (size_t i = 0; i < n; i++)
		out[i] = base;
	for (unsigned k = 0; k < nplanes; k++) {
		const uint8_t *pl = p + (size_t)k * n;
		for (size_t i = 0; i < n; i++)
			out[i] += (uint64_t)pl[i] << (8 * k);
	}
}

/* FOR block: u64 base, u8 width, u8 layout, data. */
static size_t put_for(uint8_t *o, const uint64_t *v, size_t n, uint64_t base, unsigned w,
		      unsigned layout)
{
	st_le64(o, base);
	o[8] = (uint8_t)w;
	o[9] = (uint8_t)layout;
	if (layout)
		return 10 + pack_planes(o + 10, v, n, base, w / 8);
	return 10 + pack_bits(o + 10, v, n, base, w);
}

static int get_for(struct cur *c, size_t n, uint64_t *out)
{
	const uint8_t *h = cur_take(c, 10), *d;
	unsigned w, layout;
	uint64_t len;

	if (!h)
		return -EPROTO;
	w = h[8];
	layout = h[9];
	if (w > 64 || layout > 1 || (layout && w % 8))
		return -EPROTO;
	len = packed_len(n, w, layout);
	if (len > cur_left(c) || !(d = cur_take(c, (size_t)len)))
		return -EPROTO;
	if (layout)
		unpack_planes(d, n, w / 8, ld_le64(h), out);
	else
		unpack_bits(d, n, w, ld_le64(h), out);
	return 0;
}

/* A FOR block of n values at c as a packed view (store_packed_get) instead of unpacked:
 * 1 with c past it, 0 when its layout or width is not one store_packed_get reads or
 * (vmax below UINT64_MAX) a value of its width could pass vmax, -EPROTO if short. */
static int packed_view(struct cur *c, size_t n, uint64_t vmax, struct store_packed *v)
{
	const uint8_t *h = cur_take(c, 10), *d;

	if (!h)
		return -EPROTO;
	unsigned w = h[8];
	uint64_t base = ld_le64(h), mask = w >= 64 ? ~0ULL : (1ULL << w) - 1;
	if (h[9] || (w > 56 && w != 64) ||
	    (vmax != UINT64_MAX && (base > vmax || mask > vmax - base)))
		return 0;
	uint64_t len = packed_len(n, w, 0);
	if (len > cur_left(c) || !(d = cur_take(c, (size_t)len)))
		return -EPROTO;
	v->p = d;       /* SLACK readable bytes follow any chunk */
	v->base = base;
	v->mask = mask;
	v->w = w;
	return 1;
}

static int get_varints(struct cur *c, size_t n, uint64_t base, uint64_t *out)
{
	const uint8_t *p = c->p, *end = c->end;

	for (size_t i = 0; i < n; i++) {
		uint64_t x = 0;
		unsigned sh = 0;
		for (;;) {
			if (p == end || sh > 63)
				return -EPROTO;
			uint8_t b = *p++;
			x |= (uint64_t)(b & 0x7f) << sh;
			if (!(b & 0x80))
				break;
			sh += 7;
		}
		out[i] = base + x;
	}
	c->p = p;
	return 0;
}

/* ---- entropy coding: canonical Huffman over small alphabets ----
 *
 * LZ4 finds repeats but codes no probabilities, so skewed columns (counters, time deltas,
 * dictionary indices, the tuple) are Huffman coded here and stored as they are. A stream:
 * u16 A (alphabet size), A 4-bit code lengths (low nibble first, 0: symbol unused),
 * u32 nbytes, then nbytes of codes, LSB first. Codes are canonical (deflate's order). */

#define HUF_MAXSYM 1024         /* largest alphabet */
_Static_assert(STORE_PDICT_MAX == HUF_MAXSYM - 1, "port codes: HPDICT's frequent values");
#define HUF_MAXLEN 12           /* longest code: decoding tables of 4096 entries */
#define BITLEN_SYMS 65          /* BITLEN codes bit lengths 0..64 */

/* Moffat and Katajainen's in-place minimum-redundancy code: a[0..n) holds weights in
 * ascending order (n >= 2) and gets the code lengths (a[0] the longest). */
static void mk_lengths(uint32_t *a, int n)
{
	int root = 0, leaf = 2, next, avbl, used, dpth;

	a[0] += a[1];
	for (next = 1; next < n - 1; next++) {
		if (leaf >= n || a[root] < a[leaf]) {
			a[next] = a[root];
			a[root++] = (uint32_t)next;
		} else {
			a[next] = a[leaf++];
		}
		if (leaf >= n || (root < next && a[root] < a[leaf])) {
			a[next] += a[root];
			a[root++] = (uint32_t)next;
		} else {
			a[next] += a[leaf++];
		}
	}
	a[n - 2] = 0;
	for (next = n - 3; next >= 0; next--)
		a[next] = a[a[next]] + 1;
	avbl = 1;
	used = dpth = 0;
	root = n - 2;
	next = n - 1;
	while (avbl > 0) {
		while (root >= 0 && (int)a[root] == dpth) {
			used++;
			root--;
		}
		while (avbl > used) {
			a[next--] = (uint32_t)dpth;
			avbl--;
		}
		avbl = 2 * used;
		dpth++;
		used = 0;
	}
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* Scratch for building codes (writer side). */
struct hufwork {
	uint64_t key[HUF_MAXSYM];
	uint32_t wt[HUF_MAXSYM];
};

/* Code lengths len[0..A) for counts cnt[0..A) (A >= 2), none longer than HUF_MAXLEN;
 * unused symbols get 0. A lone used symbol gets a partner so that the code is always
 * complete (what readers insist on). Returns the coded size in bits. */
static uint64_t huf_lengths(struct hufwork *hw, const uint32_t *cnt, unsigned A, uint8_t *len)
{
	unsigned m = 0;
	uint64_t bits = 0;

	memset(len, 0, A);
	for (unsigned s = 0; s < A; s++)
		if (cnt[s])
			hw->key[m++] = (uint64_t)cnt[s] << 32 | s;
	if (m < 2) {
		unsigned s = m ? (uint32_t)hw->key[0] : 0;
		len[s] = 1;
		len[s + 1 < A ? s + 1 : s - 1] = 1;
		return m ? (uint64_t)cnt[s] : 0;
	}
	qsort(hw->key, m, sizeof(*hw->key), cmp_u64);
	/* too deep a tree: flatten the weights (order kept) until it fits */
	for (unsigned shift = 0;; shift++) {
		for (unsigned i = 0; i < m; i++) {
			uint32_t x = (uint32_t)(hw->key[i] >> 32) >> shift;
			hw->wt[i] = x ? x : 1;
		}
		mk_lengths(hw->wt, (int)m);
		if (hw->wt[0] <= HUF_MAXLEN)
			break;
	}
	for (unsigned i = 0; i < m; i++) {
		unsigned s = (uint32_t)hw->key[i];
		len[s] = (uint8_t)hw->wt[i];
		bits += (uint64_t)cnt[s] * hw->wt[i];
	}
	return bits;
}

/* Canonical codes for len[0..A), bit-reversed for LSB-first streams. */
static void huf_codes(const uint8_t *len, unsigned A, uint16_t *code)
{
	unsigned cnt[HUF_MAXLEN + 1] = { 0 }, next[HUF_MAXLEN + 1], c = 0;

	for (unsigned s = 0; s < A; s++)
		cnt[len[s]]++;
	cnt[0] = 0;
	for (unsigned l = 1; l <= HUF_MAXLEN; l++) {
		c = (c + cnt[l - 1]) << 1;
		next[l] = c;
	}
	for (unsigned s = 0; s < A; s++) {
		unsigned l = len[s], v;
		if (!l)
			continue;
		/* the code goes out LSB first: its l bits reversed */
		v = next[l]++;
		v = (v >> 1 & 0x5555) | (v & 0x5555) << 1;
		v = (v >> 2 & 0x3333) | (v & 0x3333) << 2;
		v = (v >> 4 & 0x0f0f) | (v & 0x0f0f) << 4;
		v = (v >> 8 & 0x00ff) | (v & 0x00ff) << 8;
		code[s] = (uint16_t)(v >> (16 - l));
	}
}

/* Decoding table for len[0..A): entry sym << 4 | length for every index whose low bits
 * are the symbol's code. Returns the table's bits (the longest code), -EPROTO if the
 * lengths are not a complete code. */
static int huf_table(const uint8_t *len, unsigned A, uint16_t *code, uint16_t *tab)
{
	uint32_t kraft = 0;
	unsigned maxl = 0;

	for (unsigned s = 0; s < A; s++) {
		if (!len[s])
			continue;
		if (len[s] > HUF_MAXLEN)
			return -EPROTO;
		kraft += 1u << (HUF_MAXLEN - len[s]);
		maxl = len[s] > maxl ? len[s] : maxl;
	}
	if (kraft != 1u << HUF_MAXLEN)
		return -EPROTO;
	huf_codes(len, A, code);
	for (unsigned s = 0; s < A; s++) {
		/* l in a register: len is bytes, which any store to tab might change */
		unsigned l = len[s];
		uint16_t e = (uint16_t)(s << 4 | l);
		if (l)
			for (unsigned j = code[s]; j < 1u << maxl; j += 1u << l)
				tab[j] = e;
	}
	return (int)maxl;
}

static inline uint64_t huf_hdr_size(unsigned A)
{
	return 2 + (A + 1) / 2 + 4;
}

/* A Huffman or BITLEN stream of n >= HUF_SYNC_MIN values in a block flagged
 * BLK_F_HSYNC (every block of version 3) also holds, before its u32 nbytes, the u32 bit
 * offset of value huf_half(n): a reader may then decode the two halves as two chains
 * side by side (one chain a step waits for a load; two overlap). */
#define HUF_SYNC_MIN 4096
#define BLK_F_HSYNC 1u          /* block header flags: the only one */

static inline uint32_t huf_half(uint32_t n)
{
	return (n + 1) / 2;
}

static inline uint64_t huf_sync_size(uint32_t n)
{
	return n >= HUF_SYNC_MIN ? 4 : 0;
}

/* Bit writer: n <= 56 bits at a time; writes up to 8 bytes past its position. */
struct bitw {
	uint8_t *p;
	uint64_t acc;
	unsigned cnt;
};

/* Always inlined: the writer's state must live in registers in the coding loops. */
#define BW_INLINE static inline __attribute__((always_inline))

BW_INLINE void bw_put(struct bitw *b, uint64_t v, unsigned n)
{
	b->acc |= v << b->cnt;
	b->cnt += n;
	st_le64(b->p, b->acc);
	b->p += b->cnt >> 3;
	b->acc >>= b->cnt & ~7u;
	b->cnt &= 7;
}

/* The stream's header at o; returns where the codes go (after the u32 nbytes). */
static uint8_t *huf_put_hdr(uint8_t *o, const uint8_t *len, unsigned A)
{
	st_le16(o, (uint16_t)A);
	o += 2;
	for (unsigned s = 0; s < A; s += 2)
		*o++ = (uint8_t)(len[s] | (s + 1 < A ? len[s + 1] << 4 : 0));
	return o + 4;
}

/* Ends a stream begun at hdr_end (huf_put_hdr's result): returns its end. */
static uint8_t *huf_put_end(uint8_t *body, struct bitw *b)
{
	uint8_t *end = b->p + (b->cnt ? 1 : 0);
	st_le32(body - 4, (uint32_t)(end - body));
	return end;
}

/* Codes of v[i] - base for i in [from, to) onto b (ct: code << 4 | length). Codes are at
 * most 12 bits, so four go in before each flush. */
static void huf_put_codes(struct bitw *b, const uint32_t *ct, const uint64_t *v,
			  uint32_t from, uint32_t to, uint64_t base)
{
	uint8_t *p = b->p;
	uint64_t acc = b->acc;
	unsigned cnt = b->cnt;
	uint32_t i = from;

	for (; i + 4 <= to; i += 4) {
		for (unsigned k = 0; k < 4; k++) {
			uint32_t e = ct[(uint32_t)(v[i + k] - base)];
			acc |= (uint64_t)(e >> 4) << cnt;
			cnt += e & 15;
		}
		st_le64(p, acc);
		p += cnt >> 3;
		acc >>= cnt & ~7u;
		cnt &= 7;
	}
	*b = (struct bitw){ p, acc, cnt };
	for (; i < to; i++) {
		uint32_t e = ct[(uint32_t)(v[i] - base)];
		bw_put(b, e >> 4, e & 15);
	}
}

/* Writes the sync point (huf_sync_size) of a stream begun at body: where b is now. */
static void huf_put_sync(uint8_t *body, const struct bitw *b)
{
	st_le32(body - 8, (uint32_t)((uint64_t)(b->p - body) * 8 + b->cnt));
}

/* Stream of symbols v[i] - base, with its sync point (huf_sync_size). */
static size_t put_huf(uint8_t *o, const uint64_t *v, uint32_t n, uint64_t base,
		      const uint8_t *len, unsigned A, uint16_t *code)
{
	const uint32_t sync = (uint32_t)huf_sync_size(n), half = sync ? huf_half(n) : n;
	uint8_t *body = huf_put_hdr(o, len, A) + sync;
	uint32_t ct[HUF_MAXSYM] = { 0 };  /* only [0, A) is used; gcc -O1 cannot tell */
	struct bitw b = { body, 0, 0 };

	huf_codes(len, A, code);
	for (unsigned s = 0; s < A; s++)
		ct[s] = (uint32_t)code[s] << 4 | len[s];
	huf_put_codes(&b, ct, v, 0, half, base);
	if (sync) {
		huf_put_sync(body, &b);
		huf_put_codes(&b, ct, v, half, n, base);
	}
	return (size_t)(huf_put_end(body, &b) - o);
}

/* BITLEN coding of one symbol (bit length k): its code and widths, and the top bit the
 * mantissa leaves out. */
struct blsym {
	uint64_t top;           /* 1 << (k - 1), 0 for k = 0 */
	uint32_t code;
	uint16_t len, total;    /* code length; code plus mantissa */
};

enum { CAND_NONE, CAND_DELTA, CAND_LASTDIFF };

static inline uint8_t cand_xform(int c)
{
	return c == CAND_DELTA ? XF_DELTA : c == CAND_LASTDIFF ? XF_LASTDIFF : XF_NONE;
}

static void bl_table(const uint8_t *len, uint16_t *code, struct blsym *t)
{
	huf_codes(len, BITLEN_SYMS, code);
	for (unsigned k = 0; k < BITLEN_SYMS; k++) {
		t[k].top = k ? 1ULL << (k - 1) : 0;
		t[k].code = code[k];
		t[k].len = len[k];
		t[k].total = (uint8_t)(len[k] + (k ? k - 1 : 0));
	}
}

BW_INLINE void bl_put(struct bitw *b, const struct blsym *t, uint64_t x)
{
	const struct blsym *e = &t[bits64(x)];
	uint64_t mant = x ^ e->top;

	if (__builtin_expect(e->total <= 56, 1)) {
		bw_put(b, e->code | mant << e->len, e->total);
	} else {
		bw_put(b, e->code, e->len);
		bw_put(b, mant & 0xffffffffu, 32);
		bw_put(b, mant >> 32, e->total - e->len - 32u);
	}
}

/* Codes values [from, to) of candidate c (v, and last for LASTDIFF) onto b. */
static void bl_put_cand(struct bitw *b, const struct blsym *t, int c, const uint64_t *v,
			const uint64_t *last, uint64_t base, uint32_t from, uint32_t to)
{
	switch (c) {
	case CAND_NONE:
		for (uint32_t i = from; i < to; i++)
			bl_put(b, t, v[i] - base);
		break;
	case CAND_DELTA:
		for (uint32_t i = from; i < to; i++)
			bl_put(b, t, (i ? zigzag(v[i] - v[i - 1]) : 0) - base);
		break;
	default:
		for (uint32_t i = from; i < to; i++)
			bl_put(b, t, last[i] - v[i] - base);
		break;
	}
}

/* All n values of candidate c, with the sync point where there is one. */
static void bl_put_all(uint8_t *body, struct bitw *b, const struct blsym *t, int c,
		       const uint64_t *v, const uint64_t *last, uint64_t base, uint32_t n)
{
	uint32_t half = huf_sync_size(n) ? huf_half(n) : n;

	bl_put_cand(b, t, c, v, last, base, 0, half);
	if (half < n) {
		huf_put_sync(body, b);
		bl_put_cand(b, t, c, v, last, base, half, n);
	}
}

/* BITLEN stream: v - base as its bit length k (Huffman coded), then its k-1 bits below
 * the top one: near the entropy for counters, durations and deltas whatever their
 * spread. */
static size_t put_bitlen(uint8_t *o, const uint64_t *v, uint32_t n, uint64_t base,
			 const uint8_t *len, uint16_t *code)
{
	uint8_t *body = huf_put_hdr(o, len, BITLEN_SYMS) + huf_sync_size(n);
	struct blsym t[BITLEN_SYMS];
	struct bitw b = { body, 0, 0 };

	bl_table(len, code, t);
	bl_put_all(body, &b, t, CAND_NONE, v, NULL, base, n);
	return (size_t)(huf_put_end(body, &b) - o);
}

/* Bits of a BITLEN stream from the histogram of bit lengths, given code lengths. */
static uint64_t bitlen_bits(const uint32_t *hist, const uint8_t *len)
{
	uint64_t bits = 0;
	for (unsigned k = 0; k < BITLEN_SYMS; k++)
		bits += (uint64_t)hist[k] * (len[k] + (k ? k - 1 : 0));
	return bits;
}

/* Reader side: a parsed stream. */
struct hufrd {
	const uint8_t *p;       /* codes; SLACK readable bytes follow */
	uint64_t nbits;
	unsigned A, tb;
	uint16_t tab[1u << HUF_MAXLEN];
	uint16_t code[HUF_MAXSYM];
	uint8_t len[HUF_MAXSYM];
	/* huf_decode's pair table: an entry decodes the one or two symbols whose codes fit
	 * in the next HUF_MAXLEN bits. Bits 0-3: the bits they take; 4-13: the first
	 * symbol; 14-23: the second; bit 24: there is a second. */
	uint32_t tab2[1u << HUF_MAXLEN];
	/* For codes of a few bits: the up to four symbols whose codes fit in the next
	 * HUF_QUAD_BITS bits. Bits 0-3: the bits they take; 4-6: how many (0: the first
	 * code is longer, decode it from tab); 7-16, 17-26, 27-36, 37-46: the symbols. */
	uint64_t tab4[1u << 10];
	/* the sync point (huf_sync_size): symbol half starts at bit sync; half = 0: none */
	uint64_t sync;
	uint32_t half;
};

/* Parses a stream header at c (alphabet at most maxA) and builds its table; a stream of
 * n symbols in a block with sync points (BLK_F_HSYNC) may have one. */
static int huf_get_n(struct cur *c, unsigned maxA, uint32_t n, uint32_t flags, struct hufrd *h)
{
	const uint8_t *p = cur_take(c, 2), *q;
	int tb;

	if (!p)
		return -EPROTO;
	h->A = ld_le16(p);
	if (h->A < 2 || h->A > maxA || !(q = cur_take(c, (h->A + 1) / 2)))
		return -EPROTO;
	for (unsigned s = 0; s < h->A; s++)
		h->len[s] = (uint8_t)(q[s / 2] >> (s & 1) * 4 & 15);
	if ((tb = huf_table(h->len, h->A, h->code, h->tab)) < 0)
		return -EPROTO;
	h->half = 0;
	if ((flags & BLK_F_HSYNC) && huf_sync_size(n)) {
		if (!(p = cur_take(c, 4)))
			return -EPROTO;
		h->sync = ld_le32(p);
		h->half = huf_half(n);
	}
	if (!(p = cur_take(c, 4)))
		return -EPROTO;
	uint32_t nb = ld_le32(p);
	if (nb > cur_left(c) || !(h->p = cur_take(c, nb)))
		return -EPROTO;
	h->nbits = (uint64_t)nb * 8;
	h->tb = (unsigned)tb;
	if (h->half && h->sync > h->nbits)
		return -EPROTO;
	return 0;
}

static inline uint64_t br_peek(const uint8_t *p, uint64_t pos)
{
	return ld_le64(p + (pos >> 3)) >> (pos & 7);      /* 57 valid bits */
}

#define HUF_PAIRS_MIN 4096      /* symbols a stream needs to pay for its pair table */
#define HUF_QUAD_BITS 10        /* tab4's window: 8 KiB, in the L1 cache */
#define HUF_QUAD_AVG 3          /* codes of at most this many bits on average: tab4 */

static void huf_quads(struct hufrd *h)
{
	const unsigned m = (1u << h->tb) - 1;

	for (unsigned j = 0; j < 1u << HUF_QUAD_BITS; j++) {
		uint64_t e = 0;
		unsigned used = 0, cnt = 0;
		while (cnt < 4) {
			unsigned x = h->tab[j >> used & m], l = x & 15;
			if (used + l > HUF_QUAD_BITS)
				break;
			e |= (uint64_t)(x >> 4) << (7 + 10 * cnt++);
			used += l;
		}
		h->tab4[j] = e | cnt << 4 | used;
	}
}

static void huf_pairs(struct hufrd *h)
{
	const unsigned m = (1u << h->tb) - 1;

	for (unsigned j = 0; j < 1u << HUF_MAXLEN; j++) {
		unsigned e1 = h->tab[j & m], l1 = e1 & 15;
		unsigned e2 = h->tab[j >> l1 & m], l2 = e2 & 15;
		h->tab2[j] = l1 + l2 <= HUF_MAXLEN ?
			     (l1 + l2) | (e1 >> 4) << 4 | (e2 >> 4) << 14 | 1u << 24 :
			     l1 | (e1 >> 4) << 4;
	}
}

/* Where a run of steps from value i (of n) at bit pos must stop so that none reads past
 * the stream's nbits and the reach bits of slack after them, each step taking at most
 * maxbits bits and giving at least one value: no step of the run needs a check. */
static inline uint32_t run_end(uint64_t nbits, uint64_t pos, uint64_t reach, unsigned maxbits,
			       uint32_t i, uint32_t n)
{
	uint64_t room = (nbits - pos + reach) / maxbits + 1;
	return room < n - i ? i + (uint32_t)room : n;
}

#define HUF_REACH (8 * (SLACK - 8))

/* One quad step at the bottom of b (its next HUF_MAXLEN bits or more): up to four
 * symbols at out + *i; returns the bits taken. */
static inline __attribute__((always_inline)) unsigned huf_step4(const struct hufrd *h,
								uint64_t b, uint64_t base,
								uint64_t *out, uint32_t *i)
{
	uint64_t e = h->tab4[b & ((1u << HUF_QUAD_BITS) - 1)];
	if (__builtin_expect(!(e & 0x70), 0)) {
		unsigned x = h->tab[b & ((1u << h->tb) - 1)];
		out[(*i)++] = base + (x >> 4);
		return x & 15;
	}
	out[*i] = base + (e >> 7 & 1023);
	out[*i + 1] = base + (e >> 17 & 1023);
	out[*i + 2] = base + (e >> 27 & 1023);
	out[*i + 3] = base + (e >> 37 & 1023);
	*i += (uint32_t)(e >> 4 & 7);
	return e & 15;
}

/* One pair step: one or two symbols at out + *i; returns the bits taken. */
static inline __attribute__((always_inline)) unsigned huf_step2(const struct hufrd *h,
								uint64_t b, uint64_t base,
								uint64_t *out, uint32_t *i)
{
	uint32_t e = h->tab2[b & ((1u << HUF_MAXLEN) - 1)];
	out[*i] = base + (e >> 4 & 1023);
	out[*i + 1] = base + (e >> 14 & 1023);
	*i += 1 + (e >> 24);
	return e & 15;
}

/* Symbols i0 .. n - 1 from bit *pos on (tables built: mode 2 quads, 1 pairs, 0 neither).
 * A symbol starting at bit q reads bytes up to q / 8 + 8, within the SLACK after the
 * stream for any q up to nbits + 8 * (SLACK - 8): runs of steps that cannot go further
 * are decoded unchecked. */
static int huf_run(const struct hufrd *h, int mode, uint32_t i, uint32_t n, uint64_t *pos,
		   uint64_t base, uint64_t *out)
{
	const uint8_t *p = h->p;
	const uint64_t nbits = h->nbits, mask = (1u << h->tb) - 1;
	uint64_t q = *pos;

	while (i < n) {
		uint32_t end = run_end(nbits, q, HUF_REACH, HUF_MAXLEN, i, n);
		if (mode == 2)
			while (i + 3 < end)
				q += huf_step4(h, br_peek(p, q), base, out, &i);
		if (mode == 1)
			while (i + 1 < end)
				q += huf_step2(h, br_peek(p, q), base, out, &i);
		for (; i < end; i++) {
			unsigned e = h->tab[br_peek(p, q) & mask];
			q += e & 15;
			out[i] = base + (e >> 4);
		}
		if (q > nbits)
			return -EPROTO;
	}
	*pos = q;
	return 0;
}

/* n symbols into out[i] = base + sym. A step is a lookup in the pair or quad table
 * where the stream is long enough to pay for building it: decoding is a chain
 * (position, load, table, position) that the CPU cannot overlap, and the skewed
 * columns this codes have codes of a few bits, so several symbols a step shorten it.
 * A stream with a sync point is decoded as two chains side by side, which the CPU
 * overlaps; the first must end where the second begins. */
static int huf_decode(struct hufrd *h, uint32_t n, uint64_t base, uint64_t *out)
{
	const uint8_t *p = h->p;
	const uint64_t nbits = h->nbits;
	const int quads = n >= HUF_PAIRS_MIN && nbits <= (uint64_t)n * HUF_QUAD_AVG;
	const int pairs = n >= HUF_PAIRS_MIN && !quads;
	const int mode = quads ? 2 : pairs ? 1 : 0;
	const uint32_t half = h->half && h->half < n ? h->half : 0;
	uint64_t pa = 0, pb = h->sync;
	uint32_t i = 0, j = half;

	if (pairs)
		huf_pairs(h);
	if (quads)
		huf_quads(h);
	if (!half)
		return huf_run(h, mode, 0, n, &pa, base, out);
	while (mode) {
		uint32_t ea = run_end(nbits, pa, HUF_REACH, HUF_MAXLEN, i, half);
		uint32_t eb = run_end(nbits, pb, HUF_REACH, HUF_MAXLEN, j, n);
		if (i + 3 >= ea || j + 3 >= eb)
			break;
		if (mode == 2) {
			while (i + 3 < ea && j + 3 < eb) {
				pa += huf_step4(h, br_peek(p, pa), base, out, &i);
				pb += huf_step4(h, br_peek(p, pb), base, out, &j);
			}
		} else {
			while (i + 3 < ea && j + 3 < eb) {
				pa += huf_step2(h, br_peek(p, pa), base, out, &i);
				pb += huf_step2(h, br_peek(p, pb), base, out, &j);
			}
		}
		if (pa > nbits || pb > nbits)
			return -EPROTO;
	}
	if (huf_run(h, mode, i, half, &pa, base, out) < 0 || pa != h->sync ||
	    huf_run(h, mode, j, n, &pb, base, out) < 0)
		return -EPROTO;
	return 0;
}

/* BITLEN streams decode one value per step along a chain (load, table, add to the
 * position) that nothing else in the step waits on: bl_run() steps up to BL_STREAMS
 * streams side by side, so the CPU overlaps their chains (several columns of a block
 * in the time of about one). */
#define BL_STREAMS 4

struct blstream {
	const uint8_t *p;
	uint64_t nbits, base, mask;
	uint64_t *out;
	/* XF_DELTA: v0 and whether bl_run1() undid it (delta_done) */
	int delta, delta_done;
	uint64_t v0;
	uint64_t sync;          /* the stream's sync point (hufrd's); half = 0: none */
	uint32_t half;
	/* per code: k << 16 | code length << 8 | bits consumed in all (k: the bit length) */
	uint32_t st[1u << HUF_MAXLEN];
};

static void bl_stream(struct blstream *s, const struct hufrd *h, uint64_t base, uint64_t *out)
{
	s->p = h->p;
	s->nbits = h->nbits;
	s->base = base;
	s->out = out;
	s->delta = s->delta_done = 0;
	s->sync = h->sync;
	s->half = h->half;
	s->mask = (1u << h->tb) - 1;
	/* per symbol k (at most BITLEN_SYMS of them), then the table from the code table */
	uint32_t sym[BITLEN_SYMS] = { 0 };
	for (unsigned k = 0; k < h->A && k < BITLEN_SYMS; k++) {
		unsigned l = h->len[k];
		sym[k] = k << 16 | l << 8 | (l + k - (k != 0));
	}
	for (uint64_t j = 0; j <= s->mask; j++)
		s->st[j] = sym[h->tab[j] >> 4];
}

/* A value takes at most BL_MAXBITS bits (a 12-bit code and 63 more). A value starting at
 * bit q reads bytes up to (q + 44) / 8 + 8 (its wide path's second peek), so any q up to
 * nbits + BL_REACH stays within the SLACK bytes after the stream. */
#define BL_MAXBITS (HUF_MAXLEN + 63)
#define BL_REACH (8 * (SLACK - 8) - 44)
_Static_assert(BL_REACH > 0, "BITLEN's unchecked runs need SLACK");

static inline __attribute__((always_inline)) int bl_run(struct blstream *s, unsigned K,
							uint32_t n)
{
	/* Only positions and outputs in locals: with four streams their whole state does
	 * not fit in registers, and the rest (input, table, base, mask) read from s[j]
	 * costs a load from the L1 cache where a spilled local costs a load and a store. */
	uint64_t *out[BL_STREAMS], pos[BL_STREAMS];
	struct { uint64_t top, mm; } bl_k[BITLEN_SYMS];

	for (unsigned j = 0; j < K; j++) {
		out[j] = s[j].out;
		pos[j] = 0;
	}
	/* per bit length k: the top bit and the mask of the k - 1 bits below it (k <= 1:
	 * the value is k) */
	for (unsigned k = 0; k < BITLEN_SYMS; k++) {
		bl_k[k].top = k ? 1ULL << (k - 1) : 0;
		bl_k[k].mm = bl_k[k].top ? bl_k[k].top - 1 : 0;
	}
	for (uint32_t i = 0; i < n;) {
		/* runs of values that cannot read past the slack whatever their codes, each
		 * stream's position checked after the run instead of at every value */
		uint32_t m = n - i;
		for (unsigned j = 0; j < K; j++) {
			uint64_t room = (s[j].nbits - pos[j] + BL_REACH) / BL_MAXBITS + 1;
			if (room < m)
				m = (uint32_t)room;
		}
		for (uint32_t end = i + m; i < end; i++) {
#pragma GCC unroll 4
			for (unsigned j = 0; j < K; j++) {
				const uint8_t *p = s[j].p;
				uint64_t b = br_peek(p, pos[j]);
				uint32_t e = s[j].st[b & s[j].mask];
				unsigned l = (e >> 8) & 0xff, k = e >> 16, t = e & 0xff;
				uint64_t v;
				if (__builtin_expect(t <= 57, 1)) {
					v = bl_k[k].top | (b >> l & bl_k[k].mm);
				} else {
					uint64_t lo = br_peek(p, pos[j] + l) & 0xffffffffu;
					uint64_t hi = br_peek(p, pos[j] + l + 32) &
						      ((1ULL << (k - 33)) - 1);
					v = bl_k[k].top | hi << 32 | lo;
				}
				out[j][i] = s[j].base + v;
				pos[j] += t;
			}
		}
		for (unsigned j = 0; j < K; j++)
			if (pos[j] > s[j].nbits)
				return -EPROTO;
	}
	return 0;
}

/* One stream alone has nothing to overlap its chain with: bl_run1() shortens the chain
 * instead, with a table (from the stream's) that decodes several values a step: time
 * deltas and small counters mostly take a few bits. Streams of at most BL_SIX_AVG bits a
 * value on average (time deltas of a busy exporter: 1-2 bits) take the six-value table,
 * others the pair table. */
#define BL_FT_MIN 4096          /* values a stream needs to pay for building a table */
#define BL_SIX_BITS 10          /* six-value table window: 8 KiB, in the L1 cache */
#define BL_SIX_AVG 3
#define BL_SIX_VBITS 9          /* its values: below 2^9 */

#define BL_DSIX_VBITS 8         /* the delta table's coded values: below 2^8 */
#define BL_DSIX_SUM 11          /* its running sums (5 * 2^7 at most either way) ... */
#define BL_DSIX_BIAS 1024       /* ... plus this, so they are never negative */

struct bltab {
	/* pairs: bits 0-3 the bits they take, 4-5 how many (0: none fits, decode the slow
	 * way), 6-17 the first value, 18-29 the second */
	uint32_t ft[1u << HUF_MAXLEN];
	/* up to six values in the next BL_SIX_BITS bits: bits 0-3 the bits they take, 4-6
	 * how many (0: none fits), then the values, BL_SIX_VBITS bits each from bit 7 */
	uint64_t six[1u << BL_SIX_BITS];
	/* XF_DELTA over a base of 0, up to five values: bits 0-3 the bits they take, 4-6
	 * how many, then from bit 7 the running sums of their differences (unzigzagged)
	 * plus BL_DSIX_BIAS, BL_DSIX_SUM bits each: a step adds its sums to the last
	 * value, not one value after another */
	uint64_t dsix[1u << BL_SIX_BITS];
};

/* The value (or -1: it takes more than max bits, or is not below 2^vmax) coded at the
 * bottom of j, given the stream's table; *t: the bits it takes. */
static int64_t bl_small(const struct blstream *s, uint32_t j, unsigned max, unsigned vmax,
			uint32_t *t)
{
	uint32_t e = s->st[j & s->mask], l = e >> 8 & 0xff, k = e >> 16;
	*t = e & 0xff;
	if (*t > max || k > vmax)
		return -1;
	return k ? 1u << (k - 1) | (j >> l & ((1u << (k - 1)) - 1)) : 0;
}

static void bl_ft(const struct blstream *s, uint32_t *ft)
{
	for (uint32_t j = 0; j < 1u << HUF_MAXLEN; j++) {
		uint32_t t, t2;
		int64_t v1 = bl_small(s, j, HUF_MAXLEN, 12, &t), v2;
		if (v1 < 0) {
			ft[j] = 0;
			continue;
		}
		v2 = bl_small(s, j >> t, HUF_MAXLEN - t, 12, &t2);
		ft[j] = v2 >= 0 ? (t + t2) | 2u << 4 | (uint32_t)v1 << 6 | (uint32_t)v2 << 18 :
			t | 1u << 4 | (uint32_t)v1 << 6;
	}
}

static void bl_six(const struct blstream *s, uint64_t *six)
{
	for (uint32_t j = 0; j < 1u << BL_SIX_BITS; j++) {
		uint64_t e = 0;
		uint32_t used = 0, cnt = 0, t;
		int64_t v;
		while (cnt < 6 && (v = bl_small(s, j >> used, BL_SIX_BITS - used, BL_SIX_VBITS,
						&t)) >= 0) {
			e |= (uint64_t)v << (7 + BL_SIX_VBITS * cnt++);
			used += t;
		}
		six[j] = e | cnt << 4 | used;
	}
}

/* The value at pos the slow way (any bit length); *t: the bits it takes. */
static inline uint64_t bl_one(const struct blstream *s, const uint8_t *p, uint64_t pos,
			      uint64_t b, uint64_t *t)
{
	uint32_t e = s->st[b & s->mask];
	unsigned l = (e >> 8) & 0xff, k = e >> 16;
	uint64_t top = k ? 1ULL << (k - 1) : 0, mm = top ? top - 1 : 0;

	*t = e & 0xff;
	if (*t <= 57)
		return top | (b >> l & mm);
	uint64_t lo = br_peek(p, pos + l) & 0xffffffffu;
	uint64_t hi = br_peek(p, pos + l + 32) & ((1ULL << (k - 33)) - 1);
	return top | hi << 32 | lo;
}

static void bl_dsix(const struct blstream *s, uint64_t *dsix)
{
	for (uint32_t j = 0; j < 1u << BL_SIX_BITS; j++) {
		uint64_t e = 0;
		uint32_t used = 0, cnt = 0, t;
		int64_t v, sum = 0;
		while (cnt < 5 && (v = bl_small(s, j >> used, BL_SIX_BITS - used, BL_DSIX_VBITS,
						&t)) >= 0) {
			sum += (int64_t)unzigzag((uint64_t)v);
			e |= (uint64_t)(sum + BL_DSIX_BIAS) << (7 + BL_DSIX_SUM * cnt++);
			used += t;
		}
		dsix[j] = e | cnt << 4 | used;
	}
}

/* Running sum q of a dsix entry, plus BL_DSIX_BIAS. */
static inline uint64_t dsix_sum(uint64_t e, unsigned q)
{
	return e >> (7 + BL_DSIX_SUM * q) & ((1u << BL_DSIX_SUM) - 1);
}

/* One step of a DELTA stream through the dsix table: up to five values at out + *i, the
 * running value in *x; returns the bits taken. */
static inline __attribute__((always_inline)) uint64_t
bl_dsix_step(const struct blstream *s, const struct bltab *tb, const uint8_t *p, uint64_t pos,
	     uint64_t *x, uint64_t *out, uint32_t *i)
{
	uint64_t b = br_peek(p, pos), t;
	uint64_t e = tb->dsix[b & ((1u << BL_SIX_BITS) - 1)];

	if (__builtin_expect(!(e & 0x70), 0)) {
		out[(*i)++] = *x += unzigzag(bl_one(s, p, pos, b, &t));
		return t;
	}
	unsigned cnt = (unsigned)(e >> 4 & 7);
	uint64_t xb = *x - BL_DSIX_BIAS;
	for (unsigned q = 0; q < 5; q++)
		out[*i + q] = xb + dsix_sum(e, q);
	*x = xb + dsix_sum(e, cnt - 1);
	*i += cnt;
	return e & 15;
}

/* Values [i, n) of a DELTA stream from bit *pos, running on from *x. */
static int bl_dsix_run(const struct blstream *s, const struct bltab *tb, uint32_t i, uint32_t n,
		       uint64_t *pos, uint64_t *x, uint64_t *out)
{
	const uint8_t *p = s->p;
	const uint64_t nbits = s->nbits;
	uint64_t q = *pos, t;

	while (i < n) {
		uint32_t end = run_end(nbits, q, BL_REACH, BL_MAXBITS, i, n);
		while (i + 4 < end)
			q += bl_dsix_step(s, tb, p, q, x, out, &i);
		for (; i < end; i++) {
			out[i] = *x += unzigzag(bl_one(s, p, q, br_peek(p, q), &t));
			q += t;
		}
		if (q > nbits)
			return -EPROTO;
	}
	*pos = q;
	return 0;
}

/* bl_run1() for an XF_DELTA stream of base 0 and few bits a value: its values come out
 * with the transform undone, as undo_delta() would (the first value is v0 whatever
 * its slot codes). With a sync point, the halves run side by side, the second from 0;
 * it then gets the first's last value added. */
static int bl_run1_delta(struct blstream *s, uint32_t n, struct bltab *tb)
{
	const uint8_t *p = s->p;
	const uint64_t nbits = s->nbits;
	const uint32_t half = s->half > 1 && s->half < n ? s->half : 0;
	uint64_t *out = s->out, pa, pb = s->sync, xa = s->v0, xb = 0;
	uint32_t i = 1, j = half;

	bl_dsix(s, tb->dsix);
	bl_one(s, p, 0, br_peek(p, 0), &pa);    /* the first slot: read, not used */
	if (pa > nbits)
		return -EPROTO;
	out[0] = xa;
	if (!half) {
		if (bl_dsix_run(s, tb, 1, n, &pa, &xa, out) < 0)
			return -EPROTO;
		s->delta_done = 1;
		return 0;
	}
	for (;;) {
		uint32_t ea = run_end(nbits, pa, BL_REACH, BL_MAXBITS, i, half);
		uint32_t eb = run_end(nbits, pb, BL_REACH, BL_MAXBITS, j, n);
		if (i + 4 >= ea || j + 4 >= eb)
			break;
		while (i + 4 < ea && j + 4 < eb) {
			pa += bl_dsix_step(s, tb, p, pa, &xa, out, &i);
			pb += bl_dsix_step(s, tb, p, pb, &xb, out, &j);
		}
		if (pa > nbits || pb > nbits)
			return -EPROTO;
	}
	if (bl_dsix_run(s, tb, i, half, &pa, &xa, out) < 0 || pa != s->sync ||
	    bl_dsix_run(s, tb, j, n, &pb, &xb, out) < 0)
		return -EPROTO;
	for (uint32_t k = half; k < n; k++)
		out[k] += xa;
	s->delta_done = 1;
	return 0;
}

/* One value at pos the slow way: out[(*i)++]; returns the bits taken. */
static inline __attribute__((always_inline)) uint64_t
bl_step1(const struct blstream *s, const uint8_t *p, uint64_t pos, uint64_t b, uint64_t base,
	 uint64_t *out, uint32_t *i)
{
	uint64_t t;

	out[(*i)++] = base + bl_one(s, p, pos, b, &t);
	return t;
}

/* One step through the six-value table: up to six values at out + *i. */
static inline __attribute__((always_inline)) uint64_t
bl_step6(const struct blstream *s, const struct bltab *tb, const uint8_t *p, uint64_t pos,
	 uint64_t base, uint64_t *out, uint32_t *i)
{
	const uint64_t vm = (1u << BL_SIX_VBITS) - 1;
	uint64_t b = br_peek(p, pos), e = tb->six[b & ((1u << BL_SIX_BITS) - 1)];

	if (__builtin_expect(!(e & 0x70), 0))
		return bl_step1(s, p, pos, b, base, out, i);
	for (unsigned q = 0; q < 6; q++)
		out[*i + q] = base + (e >> (7 + BL_SIX_VBITS * q) & vm);
	*i += (uint32_t)(e >> 4 & 7);
	return e & 15;
}

/* One step through the pair table: one or two values at out + *i. */
static inline __attribute__((always_inline)) uint64_t
bl_step2(const struct blstream *s, const struct bltab *tb, const uint8_t *p, uint64_t pos,
	 uint64_t base, uint64_t *out, uint32_t *i)
{
	uint64_t b = br_peek(p, pos);
	uint32_t f = tb->ft[b & ((1u << HUF_MAXLEN) - 1)];

	if (__builtin_expect(!(f & 0x30), 0))
		return bl_step1(s, p, pos, b, base, out, i);
	out[*i] = base + (f >> 6 & 0xfff);
	out[*i + 1] = base + (f >> 18 & 0xfff);
	*i += f >> 4 & 3;
	return f & 15;
}

static int bl_run1(struct blstream *s, uint32_t n, struct bltab *tb)
{
	const uint8_t *p = s->p;
	uint64_t *out = s->out, pos = 0;
	const uint64_t nbits = s->nbits, base = s->base;
	const int six = nbits <= (uint64_t)n * BL_SIX_AVG;

	if (six && s->delta && base == 0)
		return bl_run1_delta(s, n, tb);
	if (six)
		bl_six(s, tb->six);
	else
		bl_ft(s, tb->ft);
	for (uint32_t i = 0; i < n;) {
		uint32_t end = run_end(nbits, pos, BL_REACH, BL_MAXBITS, i, n);
		if (six)
			while (i + 5 < end)
				pos += bl_step6(s, tb, p, pos, base, out, &i);
		else
			while (i + 1 < end)
				pos += bl_step2(s, tb, p, pos, base, out, &i);
		while (i < end)
			pos += bl_step1(s, p, pos, br_peek(p, pos), base, out, &i);
		if (pos > nbits)
			return -EPROTO;
	}
	return 0;
}

/* Decodes k (1..BL_STREAMS) streams of n values each (tb: room for bl_run1's tables). */
static int bitlen_decode_n(struct blstream *s, unsigned k, uint32_t n, struct bltab *tb)
{
	switch (k) {
	case 1: return n >= BL_FT_MIN ? bl_run1(s, n, tb) : bl_run(s, 1, n);
	case 2: return bl_run(s, 2, n);
	case 3: return bl_run(s, 3, n);
	case 4: return bl_run(s, 4, n);
	}
	return -EINVAL;
}

/* ---- writer ---- */

#define TUPLE_MAX STORE_TUPLE_MAX /* distinct tuples a block may hold; more: columns apart */
#define TUPLE_BITS 11           /* tuple hash: 2^11 slots */
#define TDICT_PLANES 17         /* proto .. end_reason, vlan (2), in_if (4), out_if (4) */
#define PDICT_ROUNDS 16         /* HPDICT gives up if its frequent set stays too big */
#define TDICT_MAX_LEN (4 + TDICT_PLANES * TUPLE_MAX)

struct hslot {
	uint32_t gen;
	uint32_t idx;
};

struct store_writer {
	struct store_cfg cfg;
	uint8_t phash;          /* the open file's payload hash (enum store_phash) */
	char *dir;
	uint64_t interval_ms;
	uint64_t cur_start;     /* interval of the current (open or next) file */
	uint64_t created_ms;
	int lockfd;             /* DIR/.tapflow.lock, held while open: one writer a store */
	int fd;                 /* -1: no file open */
	char *path;
	uint64_t off;           /* end of the last complete block */
	int dirty;              /* written since the last sync */
	struct store_zone fzone;
	uint64_t fblocks, frecs;
	/* Records of the next block, column by column. The tuple's members (proto .. end_reason,
	 * in_if, out_if) wait in tk0/tk1 and go to their buf arrays only if the tuple fails. */
	struct store_cols buf;
	uint64_t *tk0;          /* proto | tos << 8 | ... | end_reason << 48 */
	uint64_t *tk1;          /* in_if | out_if << 32 */
	/* encoding scratch, sized for one block */
	int zstd;               /* byte planes pay only under an entropy coder */
	uint64_t *t0;           /* values as coded (widened) */
	uint64_t *idx;          /* dictionary index (or code) of each record */
	uint64_t *dictv;        /* dictionary values, first-appearance order */
	uint32_t *dcnt;         /* occurrences of each dictionary entry */
	uint32_t *rank;         /* dictionary entry -> its code */
	uint64_t *t2;           /* dictionary values in code order, exceptions */
	uint8_t *dicta, *dicta2; /* address dictionaries, 16 bytes an entry */
	struct hslot *hs;       /* hash for 32/64-bit values and addresses */
	uint32_t hbits, hgen;
	uint32_t *sgen, *sidx;  /* direct map for 16-bit values */
	uint32_t sgen_cur;
	uint64_t *tdk0, *tdk1;  /* tuple dictionary */
	uint16_t *tdvl;
	uint32_t *tidx;         /* each record's tuple */
	uint32_t thist[TUPLE_MAX];
	struct hslot *ts;       /* tuple hash */
	uint32_t tgen;
	uint8_t *mref;          /* mirror reference of each record, 0: none */
	uint32_t *mtab;         /* mirror_plan()'s table */
	uint8_t (*msrc)[16], (*mdst)[16];  /* the four columns without mirrored records */
	uint16_t *msport, *mdport;
	uint32_t hist[HUF_MAXSYM], bhist[3][BITLEN_SYMS];
	uint8_t hlen[HUF_MAXSYM], blen[HUF_MAXSYM];  /* candidate and chosen code lengths */
	uint16_t hcode[HUF_MAXSYM];
	struct hufwork hw;
	uint8_t *raw;
	uint8_t *payload;
	size_t pl;              /* payload bytes so far */
	unsigned ncols;         /* directory entries so far */
	uint8_t hdr[BLK_HDR_MAX];
	ZSTD_CCtx *zc;
	struct store_writer_stats st;
};

void store_cfg_default(struct store_cfg *cfg, const char *dir)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->dir = dir;
	cfg->interval_s = STORE_DEFAULT_INTERVAL_S;
	cfg->block_recs = STORE_DEFAULT_BLOCK_RECS;
	cfg->codec = STORE_CODEC_LZ4;
	cfg->level = 0;
	cfg->phash = STORE_PHASH_AUTO;
}

/* Byte planes for wide values under zstd (its Huffman stage then sees each byte's own
 * distribution); bit packing otherwise, and for narrow values, where packing several to
 * a byte beats the entropy coder's one-bit-per-byte floor. */
static inline unsigned for_layout(unsigned w, int zstd)
{
	return zstd && w > 4;
}

static inline uint64_t for_size(uint64_t n, unsigned w, int zstd)
{
	unsigned l = for_layout(w, zstd);
	return 10 + packed_len(n, l ? round8(w) : w, l);
}

static size_t put_for_auto(uint8_t *o, const uint64_t *v, size_t n, uint64_t base,
			   unsigned w, int zstd)
{
	unsigned l = for_layout(w, zstd);
	return put_for(o, v, n, base, l ? round8(w) : w, l);
}

static void h_newgen(struct store_writer *w)
{
	if (++w->hgen == 0) {
		memset(w->hs, 0, sizeof(*w->hs) << w->hbits);
		w->hgen = 1;
	}
}

/* Dictionary of 16-bit values (direct map, never gives up): fills w->dictv in
 * first-appearance order, w->dcnt, w->idx. Returns the number of distinct values. */
static uint32_t dict_small(struct store_writer *w, const uint64_t *v, uint32_t n)
{
	uint32_t nd = 0, gen;

	if (++w->sgen_cur == 0) {
		memset(w->sgen, 0, 65536 * sizeof(*w->sgen));
		w->sgen_cur = 1;
	}
	gen = w->sgen_cur;
	for (uint32_t i = 0; i < n; i++) {
		uint32_t x = (uint32_t)v[i] & 0xffff, k;
		if (w->sgen[x] != gen) {
			w->sgen[x] = gen;
			w->sidx[x] = nd;
			w->dictv[nd] = x;
			w->dcnt[nd++] = 0;
		}
		k = w->sidx[x];
		w->idx[i] = k;
		w->dcnt[k]++;
	}
	return nd;
}

/* Hash slots of a wide value and of an address in the writer's slot table (w->hs). */
static inline uint32_t u64_slot(uint64_t v, unsigned shift)
{
	return (uint32_t)((v * 0x9E3779B97F4A7C15ULL) >> shift);
}

static inline uint32_t addr_slot(const uint8_t *a, unsigned shift)
{
	uint64_t lo = ld_le64(a), hi = ld_le64(a + 8);
	return u64_slot(lo ^ hi * 0xC2B2AE3D27D4EB4FULL, shift);
}

/* Rows ahead whose hash slot dict_u64 and dict_addr prefetch: the slot table is twice
 * a block's rows (1 MiB at 65536), cold when a block is written (the collector decoded
 * since the last one), and a slot found by hash is a cache miss more often than not. */
#define DICT_PREFETCH 8

/* Same for wider values through a hash; returns 0 once more than limit distinct values
 * turn up or a sample says the dictionary will not pay. */
static uint32_t dict_u64(struct store_writer *w, const uint64_t *v, uint32_t n, uint32_t limit)
{
	uint32_t nd = 0, hmask = (1u << w->hbits) - 1;
	unsigned shift = 64 - w->hbits;

	h_newgen(w);
	for (uint32_t i = 0; i < n; i++) {
		if (i && v[i] == v[i - 1]) {
			w->idx[i] = w->idx[i - 1];
			w->dcnt[w->idx[i]]++;
			continue;
		}
		uint32_t h = u64_slot(v[i], shift);
		if (i + DICT_PREFETCH < n)
			__builtin_prefetch(&w->hs[u64_slot(v[i + DICT_PREFETCH], shift)]);
		for (;;) {
			struct hslot *s = &w->hs[h];
			if (s->gen != w->hgen) {
				if (nd >= limit)
					return 0;
				s->gen = w->hgen;
				s->idx = nd;
				w->dictv[nd] = v[i];
				w->dcnt[nd] = 0;
				w->idx[i] = nd++;
				break;
			}
			if (w->dictv[s->idx] == v[i]) {
				w->idx[i] = s->idx;
				break;
			}
			h = (h + 1) & hmask;
		}
		w->dcnt[w->idx[i]]++;
		if (i == DICT_SAMPLE && nd > DICT_SAMPLE / 4 * 3)
			return 0;
	}
	return nd;
}

static uint32_t dict_addr(struct store_writer *w, const uint8_t (*a)[16], uint32_t n,
			  uint32_t limit)
{
	uint32_t nd = 0, hmask = (1u << w->hbits) - 1;
	unsigned shift = 64 - w->hbits;

	h_newgen(w);
	for (uint32_t i = 0; i < n; i++) {
		uint64_t lo = ld_le64(a[i]), hi = ld_le64(a[i] + 8);
		uint32_t h = addr_slot(a[i], shift);
		if (i + DICT_PREFETCH < n)
			__builtin_prefetch(&w->hs[addr_slot(a[i + DICT_PREFETCH], shift)]);
		for (;;) {
			struct hslot *s = &w->hs[h];
			if (s->gen != w->hgen) {
				if (nd >= limit)
					return 0;
				s->gen = w->hgen;
				s->idx = nd;
				memcpy(w->dicta + (size_t)nd * 16, a[i], 16);
				w->dcnt[nd] = 0;
				w->idx[i] = nd++;
				break;
			}
			const uint8_t *d = w->dicta + (size_t)s->idx * 16;
			if (ld_le64(d) == lo && ld_le64(d + 8) == hi) {
				w->idx[i] = s->idx;
				break;
			}
			h = (h + 1) & hmask;
		}
		w->dcnt[w->idx[i]]++;
		if (i == DICT_SAMPLE && nd > DICT_SAMPLE / 4 * 3)
			return 0;
	}
	return nd;
}

static void minmax(const uint64_t *v, uint32_t n, uint64_t *mn, uint64_t *mx)
{
	uint64_t lo = v[0], hi = v[0];
	for (uint32_t i = 1; i < n; i++) {
		lo = v[i] < lo ? v[i] : lo;
		hi = v[i] > hi ? v[i] : hi;
	}
	*mn = lo;
	*mx = hi;
}

/* Copies narrow values out to 64 bits, with their range (one pass). */
static void widen32(uint64_t *o, const uint32_t *v, uint32_t n, uint64_t *mn, uint64_t *mx)
{
	uint32_t lo = UINT32_MAX, hi = 0;
	for (uint32_t i = 0; i < n; i++) {
		o[i] = v[i];
		lo = v[i] < lo ? v[i] : lo;
		hi = v[i] > hi ? v[i] : hi;
	}
	*mn = lo;
	*mx = hi;
}

static void widen16(uint64_t *o, const uint16_t *v, uint32_t n, uint64_t *mn, uint64_t *mx)
{
	uint16_t lo = UINT16_MAX, hi = 0;
	for (uint32_t i = 0; i < n; i++) {
		o[i] = v[i];
		lo = v[i] < lo ? v[i] : lo;
		hi = v[i] > hi ? v[i] : hi;
	}
	*mn = lo;
	*mx = hi;
}

static void widen8(uint64_t *o, const uint8_t *v, uint32_t n, uint64_t *mn, uint64_t *mx)
{
	uint8_t lo = UINT8_MAX, hi = 0;
	for (uint32_t i = 0; i < n; i++) {
		o[i] = v[i];
		lo = v[i] < lo ? v[i] : lo;
		hi = v[i] > hi ? v[i] : hi;
	}
	*mn = lo;
	*mx = hi;
}

/* 1 if the n values of size sz at v are all the same (glibc's memcmp is vectorized). */
static inline int all_same(const void *v, uint32_t n, size_t sz)
{
	return n < 2 || !memcmp(v, (const uint8_t *)v + sz, (size_t)(n - 1) * sz);
}

/* The cheapest coding found so far of one integer chunk; exact sizes, no trial runs. */
struct ipick {
	const uint64_t *v;      /* values as coded (transformed) */
	uint8_t xform, enc;
	unsigned w;             /* FOR width */
	unsigned A;             /* HUF alphabet (dictionary codes for HDICT/HPDICT) */
	uint64_t v0, min, size;
	uint32_t nd;            /* HDICT, HPDICT: dictionary entries */
	unsigned dw;            /* width of the dictionary values */
	uint64_t dmin;
	uint64_t nexc, emin;    /* HPDICT exceptions */
	unsigned ew;
	uint8_t stored;         /* FOR in place of an entropy coding: store it as it is */
};

static void pick_better(struct store_writer *w, struct ipick *b, const struct ipick *c)
{
	if (c->size >= b->size)
		return;
	*b = *c;
	if (c->enc == ENC_HUF || c->enc == ENC_BITLEN || c->enc == ENC_HDICT ||
	    c->enc == ENC_HPDICT)
		memcpy(w->blen, w->hlen, c->A);
}

static inline uint64_t xf_hdr(uint8_t xform)
{
	return xform == XF_DELTA ? 8 : 0;
}

/* CONST or FOR for v[0..n) in [mn, mx]. */
static void pick_for(struct store_writer *w, struct ipick *b, const uint64_t *v, uint32_t n,
		     uint64_t mn, uint64_t mx, uint8_t xform, uint64_t v0)
{
	struct ipick c = { .v = v, .xform = xform, .v0 = v0, .min = mn, .w = bits64(mx - mn) };

	c.enc = mn == mx ? ENC_CONST : ENC_FOR;
	c.size = xf_hdr(xform) + (mn == mx ? 8 : for_size(n, c.w, w->zstd));
	pick_better(w, b, &c);
}

/* HUF over v - mn for a narrow range; hist: counts of v - mn, or NULL to count here. */
static void pick_huf(struct store_writer *w, struct ipick *b, const uint64_t *v, uint32_t n,
		     uint64_t mn, uint64_t mx, uint8_t xform, uint64_t v0, const uint32_t *hist)
{
	struct ipick c = { .v = v, .xform = xform, .v0 = v0, .min = mn, .enc = ENC_HUF };

	if (mn == mx || mx - mn >= HUF_MAXSYM)
		return;
	c.A = (unsigned)(mx - mn) + 1;
	if (!hist) {
		memset(w->hist, 0, c.A * sizeof(*w->hist));
		for (uint32_t i = 0; i < n; i++)
			w->hist[v[i] - mn]++;
		hist = w->hist;
	}
	c.size = xf_hdr(xform) + 8 + huf_hdr_size(c.A) + huf_sync_size(n) +
		 (huf_lengths(&w->hw, hist, c.A, w->hlen) + 7) / 8;
	pick_better(w, b, &c);
}

/* BITLEN (base 0) from hist, the counts of bits64(v). */
static void pick_bitlen(struct store_writer *w, struct ipick *b, const uint64_t *v,
			uint32_t n, const uint32_t *hist, uint8_t xform, uint64_t v0)
{
	struct ipick c = { .v = v, .xform = xform, .v0 = v0, .enc = ENC_BITLEN,
			   .A = BITLEN_SYMS };

	huf_lengths(&w->hw, hist, BITLEN_SYMS, w->hlen);
	c.size = xf_hdr(xform) + 8 + huf_hdr_size(BITLEN_SYMS) + huf_sync_size(n) +
		 (bitlen_bits(hist, w->hlen) + 7) / 8;
	pick_better(w, b, &c);
}

/* HDICT: a dictionary of nd values (w->dictv, counts w->dcnt, w->idx) with Huffman coded
 * indices. */
static void pick_hdict(struct store_writer *w, struct ipick *b, const uint64_t *v,
		       uint32_t n, uint32_t nd)
{
	struct ipick c = { .v = v, .enc = ENC_HDICT, .nd = nd, .A = nd };
	uint64_t dmax;

	if (nd < 2 || nd > HUF_MAXSYM)
		return;
	minmax(w->dictv, nd, &c.dmin, &dmax);
	c.dw = bits64(dmax - c.dmin);
	c.size = 4 + for_size(nd, c.dw, w->zstd) + huf_hdr_size(nd) + huf_sync_size(n) +
		 (huf_lengths(&w->hw, w->dcnt, nd, w->hlen) + 7) / 8;
	pick_better(w, b, &c);
}

/* HPDICT: the values seen at least twice (at most HUF_MAXSYM - 1 of them) get Huffman
 * codes 1.., the rest code 0 and follow as FOR exceptions: service ports among random
 * ephemeral ones. Needs dict_small()'s counts; sets w->rank (entry -> code). */
static void pick_hpdict(struct store_writer *w, struct ipick *b, const uint64_t *v,
			uint32_t n, uint32_t nd)
{
	struct ipick c = { .v = v, .enc = ENC_HPDICT };
	uint32_t nf = 0, t = 2;
	uint64_t dmax = 0, emax = 0;

	for (unsigned round = 0;; round++, t++) {
		nf = 0;
		for (uint32_t j = 0; j < nd; j++)
			nf += w->dcnt[j] >= t;
		if (nf < HUF_MAXSYM)
			break;
		if (round == PDICT_ROUNDS)
			return;
	}
	if (nf == 0 || nf == nd)
		return;
	c.dmin = c.emin = UINT64_MAX;
	memset(w->hist, 0, (nf + 1) * sizeof(*w->hist));
	nf = 0;
	for (uint32_t j = 0; j < nd; j++) {
		uint64_t x = w->dictv[j];
		if (w->dcnt[j] >= t) {
			w->rank[j] = ++nf;
			w->hist[nf] = w->dcnt[j];
			c.dmin = x < c.dmin ? x : c.dmin;
			dmax = x > dmax ? x : dmax;
		} else {
			w->rank[j] = 0;
			w->hist[0] += w->dcnt[j];
			c.emin = x < c.emin ? x : c.emin;
			emax = x > emax ? x : emax;
		}
	}
	c.nd = nf;
	c.A = nf + 1;
	c.nexc = w->hist[0];
	c.dw = bits64(dmax - c.dmin);
	c.ew = bits64(emax - c.emin);
	c.size = 4 + for_size(nf, c.dw, w->zstd) + huf_hdr_size(c.A) + huf_sync_size(n) +
		 (huf_lengths(&w->hw, w->hist, c.A, w->hlen) + 7) / 8 + 4 +
		 for_size(c.nexc, c.ew, w->zstd);
	(void)n;
	pick_better(w, b, &c);
}

/* Writes the pick at out (w->raw, or inside it); returns the bytes written. */
static size_t write_pick(struct store_writer *w, const struct ipick *p, uint32_t n, uint8_t *out)
{
	uint8_t *o = out;
	int z = w->zstd;

	if (p->xform == XF_DELTA) {
		st_le64(o, p->v0);
		o += 8;
	}
	switch (p->enc) {
	case ENC_CONST:
		st_le64(o, p->min);
		o += 8;
		break;
	case ENC_FOR:
		o += put_for_auto(o, p->v, n, p->min, p->w, z);
		break;
	case ENC_HUF:
		st_le64(o, p->min);
		o += 8;
		o += put_huf(o, p->v, n, p->min, w->blen, p->A, w->hcode);
		break;
	case ENC_BITLEN:
		st_le64(o, 0);
		o += 8;
		o += put_bitlen(o, p->v, n, 0, w->blen, w->hcode);
		break;
	case ENC_HDICT:
		st_le32(o, p->nd);
		o += 4;
		o += put_for_auto(o, w->dictv, p->nd, p->dmin, p->dw, z);
		o += put_huf(o, w->idx, n, 0, w->blen, p->A, w->hcode);
		break;
	case ENC_HPDICT: {
		uint64_t ne = 0;
		uint32_t nf = 0;
		for (uint32_t j = 0; nf < p->nd; j++)
			if (w->rank[j])
				w->t2[nf++] = w->dictv[j];
		st_le32(o, p->nd);
		o += 4;
		o += put_for_auto(o, w->t2, p->nd, p->dmin, p->dw, z);
		for (uint32_t i = 0; i < n; i++) {
			uint32_t code = w->rank[w->idx[i]];
			w->idx[i] = code;
			if (!code)
				w->t2[ne++] = p->v[i];
		}
		o += put_huf(o, w->idx, n, 0, w->blen, p->A, w->hcode);
		st_le32(o, (uint32_t)ne);
		o += 4;
		o += put_for_auto(o, w->t2, ne, p->emin, p->ew, z);
		break;
	}
	}
	return (size_t)(o - out);
}

/* Entropy-coded chunks are stored as they are: a compressor would only spend time. */
static inline int pick_compressible(const struct ipick *p)
{
	return (p->enc == ENC_FOR || p->enc == ENC_CONST) && !p->stored;
}

/* BITLEN columns (counters, times) are planned from a sample of SAMPLE_STEP-spaced values
 * and coded in one pass that also gathers the zone's exact figures. Every bit length gets
 * a code, so values the sample missed still code (at some cost). */
#define SAMPLE_STEP 8
#define SAMPLE_FROM 4096        /* smaller blocks are planned from every value */

static inline uint32_t sample_step(uint32_t n)
{
	return n >= SAMPLE_FROM ? SAMPLE_STEP : 1;
}

/* Code lengths (into len) for BITLEN from the sample histogram hist; returns the bits
 * the sample costs with them. */
static uint64_t bl_plan(struct store_writer *w, const uint32_t *hist, uint8_t *len)
{
	uint32_t wt[BITLEN_SYMS];

	for (unsigned k = 0; k < BITLEN_SYMS; k++)
		wt[k] = hist[k] * 64 + 1;
	huf_lengths(&w->hw, wt, BITLEN_SYMS, len);
	return bitlen_bits(hist, len);
}

/* The value candidate c codes for record i (DELTA: zigzag difference, 0 for the first). */
static inline uint64_t cand_val(int c, const uint64_t *v, const uint64_t *last, uint32_t i)
{
	if (c == CAND_DELTA)
		return i ? zigzag(v[i] - v[i - 1]) : 0;
	if (c == CAND_LASTDIFF)
		return last[i] - v[i];
	return v[i];
}

/* Picks the cheapest of the candidates in cmask (bit per CAND_) for v from a sample:
 * returns it, with its base in *base, code lengths in w->blen and the bytes the whole
 * chunk is estimated to take in *size. */
static int bl_choose(struct store_writer *w, const uint64_t *v, const uint64_t *last,
		     uint32_t n, unsigned cmask, uint64_t *base, uint64_t *size)
{
	uint32_t step = sample_step(n), hist[BITLEN_SYMS];
	uint64_t best = UINT64_MAX;
	int pick = CAND_NONE;

	for (int c = CAND_NONE; c <= CAND_LASTDIFF; c++) {
		uint64_t mn = UINT64_MAX, bits;
		if (!(cmask & 1u << c))
			continue;
		for (uint32_t i = 0; i < n; i += step) {
			uint64_t x = cand_val(c, v, last, i);
			mn = x < mn ? x : mn;
		}
		memset(hist, 0, sizeof(hist));
		for (uint32_t i = 0; i < n; i += step)
			hist[bits64(cand_val(c, v, last, i) - mn)]++;
		bits = bl_plan(w, hist, w->hlen) * step + (c == CAND_DELTA ? 64 : 0);
		if (bits < best) {
			best = bits;
			pick = c;
			*base = mn;
			memcpy(w->blen, w->hlen, BITLEN_SYMS);
		}
	}
	*size = 8 + huf_hdr_size(BITLEN_SYMS) + huf_sync_size(n) + (best + 7) / 8;
	return pick;
}

/* BITLEN chunk header at w->raw (the DELTA transform's first value, base, code lengths,
 * room for the sync point of n values); returns where the codes start. */
static uint8_t *bl_begin(struct store_writer *w, int c, uint64_t v0, uint64_t base,
			 struct blsym *t, uint32_t n)
{
	uint8_t *o = w->raw;

	if (c == CAND_DELTA) {
		st_le64(o, v0);
		o += 8;
	}
	st_le64(o, base);
	bl_table(w->blen, w->hcode, t);
	return huf_put_hdr(o + 8, w->blen, BITLEN_SYMS) + huf_sync_size(n);
}

static size_t bl_end(struct store_writer *w, uint8_t *body, struct bitw *b, int c,
		     struct ipick *p)
{
	p->enc = ENC_BITLEN;
	p->xform = cand_xform(c);
	return (size_t)(huf_put_end(body, b) - w->raw);
}

static size_t put_const(struct store_writer *w, uint64_t x, struct ipick *p)
{
	p->enc = ENC_CONST;
	p->xform = XF_NONE;
	st_le64(w->raw, x);
	return 8;
}

/* Counters and times take FOR instead of BITLEN when it is at most 1/FOR_SLACK bigger
 * (evenly spread values): a FOR value decodes in about 2 instructions, a BITLEN one in
 * about 28, and queries decode these four columns for nearly every block they read. */
#define FOR_SLACK 16

static inline int for_beats(uint64_t for_size, uint64_t bl_size)
{
	return for_size <= bl_size + bl_size / FOR_SLACK;
}

/* Counters (packets, bytes), and their sum for the zone. */
static size_t enc_counter(struct store_writer *w, const uint64_t *v, uint32_t n,
			  uint64_t *sum, struct ipick *p)
{
	struct blsym t[BITLEN_SYMS];
	uint64_t base, blsize, s = 0, mn = UINT64_MAX, mx = 0;
	uint8_t *body;
	struct bitw b;

	if (all_same(v, n, sizeof(*v))) {
		/* Zone sums are upper bounds filters rely on: saturate, never wrap. */
		*sum = v[0] > UINT64_MAX / (n ? n : 1) ? UINT64_MAX : v[0] * n;
		return v[0] ? put_const(w, v[0], p) : 0;
	}
	for (uint32_t i = 0; i < n; i++) {
		s = s + v[i] < s ? UINT64_MAX : s + v[i];
		mn = v[i] < mn ? v[i] : mn;
		mx = v[i] > mx ? v[i] : mx;
	}
	*sum = s;
	bl_choose(w, v, NULL, n, 1u << CAND_NONE, &base, &blsize);
	if (for_beats(for_size(n, bits64(mx - mn), w->zstd), blsize)) {
		pick_for(w, p, v, n, mn, mx, XF_NONE, 0);
		p->stored = 1;
		return write_pick(w, p, n, w->raw);
	}
	body = bl_begin(w, CAND_NONE, 0, base, t, n);
	b = (struct bitw){ body, 0, 0 };
	bl_put_all(body, &b, t, CAND_NONE, v, NULL, base, n);
	return bl_end(w, body, &b, CAND_NONE, p);
}

/* LAST as it is or as deltas (records come roughly in end order); FIRST also as
 * last - first (durations, mostly short). The zone's range of the column on the way. */
static size_t enc_time(struct store_writer *w, const uint64_t *v, const uint64_t *last,
		       uint32_t n, uint64_t *zmin, uint64_t *zmax, struct ipick *p)
{
	struct blsym t[BITLEN_SYMS];
	uint64_t base, blsize, cmn[3], cmx[3] = { 0, 0, 0 }, fsize = UINT64_MAX;
	unsigned cmask = 1u << CAND_NONE | 1u << CAND_DELTA | (last ? 1u << CAND_LASTDIFF : 0);
	uint8_t *body;
	struct bitw b;
	int c, fc = CAND_NONE;

	if (all_same(v, n, sizeof(*v))) {
		*zmin = *zmax = v[0];
		return v[0] ? put_const(w, v[0], p) : 0;
	}
	/* each candidate's exact range (FOR's width; as is: the zone's) */
	for (int k = CAND_NONE; k <= CAND_LASTDIFF; k++) {
		uint64_t fs;
		if (!(cmask & 1u << k))
			continue;
		cmn[k] = UINT64_MAX;
		for (uint32_t i = 0; i < n; i++) {
			uint64_t x = cand_val(k, v, last, i);
			cmn[k] = x < cmn[k] ? x : cmn[k];
			cmx[k] = x > cmx[k] ? x : cmx[k];
		}
		fs = xf_hdr(cand_xform(k)) + for_size(n, bits64(cmx[k] - cmn[k]), w->zstd);
		if (fs < fsize) {
			fsize = fs;
			fc = k;
		}
	}
	*zmin = cmn[CAND_NONE];
	*zmax = cmx[CAND_NONE];
	c = bl_choose(w, v, last, n, cmask, &base, &blsize);
	if (for_beats(fsize, blsize)) {
		const uint64_t *x = v;
		if (fc != CAND_NONE) {
			for (uint32_t i = 0; i < n; i++)
				w->t0[i] = cand_val(fc, v, last, i);
			x = w->t0;
		}
		pick_for(w, p, x, n, cmn[fc], cmx[fc], cand_xform(fc), v[0]);
		p->stored = 1;
		return write_pick(w, p, n, w->raw);
	}
	body = bl_begin(w, c, v[0], base, t, n);
	b = (struct bitw){ body, 0, 0 };
	bl_put_all(body, &b, t, c, v, last, base, n);
	return bl_end(w, body, &b, c, p);
}

/* Other integer columns, widened into w->t0 with their range: FOR, HUF for narrow
 * ranges, dictionaries with Huffman coded indices for few values over a wide range. */
static size_t enc_other(struct store_writer *w, uint32_t n, uint64_t mn, uint64_t mx,
			unsigned size, struct ipick *b)
{
	const uint64_t *x = w->t0;

	if (mn == mx && mn == 0)
		return 0;
	pick_for(w, b, x, n, mn, mx, XF_NONE, 0);
	if (b->enc == ENC_CONST)
		return write_pick(w, b, n, w->raw);
	if (mx - mn < HUF_MAXSYM) {
		pick_huf(w, b, x, n, mn, mx, XF_NONE, 0, NULL);
	} else if (size == 2) {
		uint32_t nd = dict_small(w, x, n);
		if (nd <= HUF_MAXSYM)
			pick_hdict(w, b, x, n, nd);
		else
			pick_hpdict(w, b, x, n, nd);
	} else {
		uint32_t nd = dict_u64(w, x, n, HUF_MAXSYM);
		if (nd)
			pick_hdict(w, b, x, n, nd);
	}
	return write_pick(w, b, n, w->raw);
}

static size_t enc_u32(struct store_writer *w, const uint32_t *v, uint32_t n, struct ipick *b)
{
	uint64_t mn, mx;

	if (all_same(v, n, sizeof(*v))) {
		if (!v[0])
			return 0;
		w->t0[0] = v[0];
		return enc_other(w, n, v[0], v[0], 4, b);
	}
	widen32(w->t0, v, n, &mn, &mx);
	return enc_other(w, n, mn, mx, 4, b);
}

static size_t enc_u16(struct store_writer *w, const uint16_t *v, uint32_t n, struct ipick *b)
{
	uint64_t mn, mx;

	widen16(w->t0, v, n, &mn, &mx);
	return enc_other(w, n, mn, mx, 2, b);
}

static size_t enc_u8(struct store_writer *w, const uint8_t *v, uint32_t n, struct ipick *b)
{
	uint64_t mn, mx;

	widen8(w->t0, v, n, &mn, &mx);
	return enc_other(w, n, mn, mx, 1, b);
}

/* Addresses: a dictionary (byte planes: the 12 constant bytes of v4-mapped addresses
 * become runs) ordered by falling frequency class, so that the indices, BITLEN coded, cost
 * about their entropy; or the addresses as byte planes. */
static size_t enc_addr(struct store_writer *w, const uint8_t (*a)[16], uint32_t n, uint8_t *enc,
		       int *compressible)
{
	uint8_t *o = w->raw;
	uint32_t nd;

	*compressible = 1;
	if (all_same(a, n, 16)) {
		if (!memcmp(a[0], zero_addr, 16))
			return 0;
		*enc = ENC_CONST;
		memcpy(o, a[0], 16);
		return 16;
	}
	nd = dict_addr(w, a, n, n / 2 > 1 ? n / 2 : 1);
	if (nd > 1) {
		/* frequency classes 1..19 (counts < 2^19), most frequent first, stable */
		uint32_t start[21] = { 0 };
		uint32_t *h = w->bhist[0];
		for (uint32_t j = 0; j < nd; j++)
			start[20 - bits64(w->dcnt[j])]++;
		for (unsigned k = 0, s = 0; k < 21; k++) {
			uint32_t c = start[k];
			start[k] = s;
			s += c;
		}
		for (uint32_t j = 0; j < nd; j++) {
			uint32_t r = start[20 - bits64(w->dcnt[j])]++;
			w->rank[j] = r;
			memcpy(w->dicta2 + (size_t)r * 16, w->dicta + (size_t)j * 16, 16);
		}
		memset(h, 0, BITLEN_SYMS * sizeof(*h));
		for (uint32_t i = 0; i < n; i++) {
			uint32_t r = w->rank[w->idx[i]];
			w->idx[i] = r;
			h[bits64(r)]++;
		}
		struct ipick b = { .size = UINT64_MAX };
		pick_for(w, &b, w->idx, n, 0, nd - 1, XF_NONE, 0);
		pick_bitlen(w, &b, w->idx, n, h, XF_NONE, 0);
		*enc = ENC_ADDR_DICT2;
		st_le32(o, nd);
		o += 4;
		for (unsigned k = 0; k < 16; k++)
			for (uint32_t j = 0; j < nd; j++)
				*o++ = w->dicta2[(size_t)j * 16 + k];
		*o++ = b.enc;
		o += write_pick(w, &b, n, o);
		return (size_t)(o - w->raw);
	}
	*enc = ENC_ADDR_RAW;
	for (unsigned k = 0; k < 16; k++)
		for (uint32_t i = 0; i < n; i++)
			*o++ = a[i][k];
	return (size_t)(o - w->raw);
}

/* Compresses raw[0..len) to dst when that saves bytes; returns the bytes at dst and sets
 * *codec. dst has room for len bytes. */
static size_t wr_compress(struct store_writer *w, const uint8_t *raw, size_t len, uint8_t *dst,
			  int compressible, uint8_t *codec)
{
	if (compressible && len >= MIN_COMPRESS && w->cfg.codec == STORE_CODEC_LZ4) {
		int r = LZ4_compress_fast((const char *)raw, (char *)dst, (int)len, (int)len - 1,
					  w->cfg.level > 0 ? w->cfg.level : 1);
		if (r > 0) {
			*codec = STORE_CODEC_LZ4;
			return (size_t)r;
		}
	} else if (compressible && len >= MIN_COMPRESS && w->cfg.codec == STORE_CODEC_ZSTD) {
		size_t r = ZSTD_compressCCtx(w->zc, dst, len - 1, raw, len,
					     w->cfg.level ? w->cfg.level : 3);
		if (!ZSTD_isError(r)) {
			*codec = STORE_CODEC_ZSTD;
			return r;
		}
	}
	memcpy(dst, raw, len);
	*codec = STORE_CODEC_NONE;
	return len;
}

static int fsync_dir_of(const char *path)
{
	char *d = strdup(path), *s;
	int fd, rc = 0;

	if (!d)
		return -ENOMEM;
	s = strrchr(d, '/');
	if (s)
		*(s == d ? s + 1 : s) = '\0';
	fd = open(s ? d : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || fsync(fd) < 0)
		rc = -errno;
	if (fd >= 0)
		close(fd);
	free(d);
	return rc;
}

/* mkdir -p of path's directory part, syncing each parent that gained an entry. */
static int mkdirs_for(const char *path, int nosync)
{
	char *d = strdup(path);
	int rc = 0;

	if (!d)
		return -ENOMEM;
	for (char *s = strchr(d + 1, '/'); s; s = strchr(s + 1, '/')) {
		*s = '\0';
		if (mkdir(d, 0755) == 0) {
			if (!nosync)
				fsync_dir_of(d);
		} else if (errno != EEXIST) {
			rc = -errno;
			break;
		}
		*s = '/';
	}
	free(d);
	return rc;
}

static char *file_path(const char *dir, uint64_t start_ms)
{
	struct civil c;
	size_t len = strlen(dir) + 48;
	char *p = malloc(len);

	if (!p)
		return NULL;
	civil_of_ms(start_ms, &c);
	snprintf(p, len, "%s/%04lld/%02u/%02u/tf-%04lld%02u%02u%02u%02u.tfs", dir, (long long)c.y,
		 c.mo, c.d, (long long)c.y, c.mo, c.d, c.h, c.mi);
	return p;
}

static int pwrite_all(int fd, const struct iovec *iov, int cnt, uint64_t off)
{
	struct iovec v[2];
	size_t total = 0, done = 0;

	for (int i = 0; i < cnt; i++) {
		v[i] = iov[i];
		total += iov[i].iov_len;
	}
	while (done < total) {
		ssize_t r = pwritev(fd, v, cnt, (off_t)(off + done));
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (r == 0)
			return -EIO;
		done += (size_t)r;
		/* drop what went out from the front of the vector */
		while (cnt && (size_t)r >= v[0].iov_len) {
			r -= (ssize_t)v[0].iov_len;
			v[0] = v[1];
			cnt--;
		}
		if (cnt) {
			v[0].iov_base = (uint8_t *)v[0].iov_base + r;
			v[0].iov_len -= (size_t)r;
		}
	}
	return 0;
}

/* Appends header+payload at w->off; on failure cuts the file back so no torn block
 * stays behind. */
static int wr_append(struct store_writer *w, const uint8_t *h, size_t hl, const uint8_t *p,
		     size_t pl)
{
	struct iovec iov[2] = { { (void *)h, hl }, { (void *)p, pl } };
	int rc = pwrite_all(w->fd, iov, pl ? 2 : 1, w->off);

	if (rc < 0) {
		if (ftruncate(w->fd, (off_t)w->off) < 0) {
			/* the next write overwrites from w->off anyway */
		}
		return rc;
	}
	w->off += hl + pl;
	w->st.file_bytes += hl + pl;
	w->dirty = 1;
	return 0;
}

static void blk_hdr(uint8_t *h, int kind, unsigned ncols, uint32_t nrec, uint32_t plen,
		    uint32_t phash, const struct store_zone *z, uint8_t codec)
{
	memset(h, 0, BLK_FIXED);
	memcpy(h, BLK_MAGIC, 4);
	h[4] = (uint8_t)kind;
	h[5] = (uint8_t)ncols;
	st_le16(h + 6, (uint16_t)(STORE_BLK_HDR_MIN + DIRENT_LEN * ncols));
	st_le32(h + 8, nrec);
	st_le32(h + 12, plen);
	st_le32(h + 16, phash);
	zone_put(h, z);
	h[113] = codec;
}

static size_t blk_seal(uint8_t *h, unsigned ncols)
{
	size_t hl = STORE_BLK_HDR_MIN + DIRENT_LEN * ncols;
	st_le32(h + hl - 4, store_hash32(h, hl - 4, 0));
	return hl;
}

static struct store_reader *rd_new_fd(int fd, int own, struct store_reader *spare);
static char *join(const char *a, const char *b);
static int rd_recover(struct store_reader *r, uint64_t *end, struct store_zone *z,
		      uint64_t *nblocks, uint64_t *nrecs);

/* Takes over an existing file at w->path/fd: cuts it back to its last complete block
 * (also dropping a footer) so that blocks can be appended. */
/* An older version's file the writer continues gets this version's number: its blocks
 * stay readable (every version's encodings are still read), the new ones need it. Its
 * blocks' payloads have XXH32, and so will the new ones'. */
static int wr_upgrade_header(int fd)
{
	uint8_t h[STORE_FILE_HDR_LEN];
	struct iovec iov = { h, sizeof(h) };

	if (pread(fd, h, sizeof(h), 0) != (ssize_t)sizeof(h))
		return -EIO;
	st_le16(h + 8, STORE_VERSION);
	h[37] = STORE_PHASH_XXH32;
	st_le32(h + 60, store_hash32(h, 60, 0));
	return pwrite_all(fd, &iov, 1, 0);
}

static int wr_attach(struct store_writer *w, int fd)
{
	struct stat sb;
	struct store_reader *r;
	uint64_t end, size;
	unsigned version;
	int rc;

	if (fstat(fd, &sb) < 0)
		return -errno;
	size = (uint64_t)sb.st_size;
	r = rd_new_fd(fd, 0, NULL);
	if (!r)
		return -errno;
	rc = rd_recover(r, &end, &w->fzone, &w->fblocks, &w->frecs);
	version = store_reader_hdr(r)->version;
	w->phash = store_reader_hdr(r)->phash;   /* the new blocks hash as the old ones */
	store_reader_close(r);
	if (rc < 0)
		return rc;
	if (version < STORE_VERSION && (rc = wr_upgrade_header(fd)) < 0)
		return rc;
	if (end < size) {
		if (ftruncate(fd, (off_t)end) < 0)
			return -errno;
		if (!w->cfg.nosync)
			fdatasync(fd);
		w->st.truncated_bytes += size - end;
	}
	w->off = end;
	return 0;
}

static int wr_new_header(struct store_writer *w, int fd)
{
	uint8_t h[STORE_FILE_HDR_LEN] = { 0 };
	struct iovec iov = { h, sizeof(h) };
	int rc;

	memcpy(h, FILE_MAGIC, 4);
	st_le32(h + 4, 0x01020304);
	st_le16(h + 8, STORE_VERSION);
	st_le16(h + 10, STORE_FILE_HDR_LEN);
	st_le32(h + 12, w->cfg.interval_s);
	st_le64(h + 16, w->cur_start);
	st_le64(h + 24, w->created_ms);
	st_le32(h + 32, w->cfg.block_recs);
	h[36] = w->cfg.codec;
	h[37] = w->cfg.phash;
	w->phash = w->cfg.phash;
	st_le32(h + 60, store_hash32(h, 60, 0));
	if (ftruncate(fd, 0) < 0)
		return -errno;
	rc = pwrite_all(fd, &iov, 1, 0);
	if (rc < 0)
		return rc;
	w->off = STORE_FILE_HDR_LEN;
	w->st.file_bytes += STORE_FILE_HDR_LEN;
	zone_empty(&w->fzone);
	w->fblocks = w->frecs = 0;
	return 0;
}

/* Opens path for appending under an exclusive lock, creating or recovering it. */
static int wr_open_path(struct store_writer *w, char *path)
{
	struct stat sb;
	int fd, rc;

	rc = mkdirs_for(path, w->cfg.nosync);
	if (rc < 0)
		goto fail;
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0) {
		rc = -errno;
		goto fail;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		rc = errno == EWOULDBLOCK ? -EBUSY : -errno;
		goto fail_fd;
	}
	if (fstat(fd, &sb) < 0) {
		rc = -errno;
		goto fail_fd;
	}
	if (sb.st_size < STORE_FILE_HDR_LEN) {
		/* new, or a crash before its header was complete */
		rc = wr_new_header(w, fd);
		if (rc == 0 && !w->cfg.nosync)
			rc = fsync_dir_of(path);
	} else {
		rc = wr_attach(w, fd);
		if (rc == 0)
			w->st.recovered_files++;
	}
	if (rc < 0)
		goto fail_fd;
	w->fd = fd;
	w->path = path;
	w->st.files_opened++;
	return 0;
fail_fd:
	close(fd);
fail:
	free(path);
	return rc;
}

/* Replies come shortly after their requests with source and destination swapped: finds,
 * for each record, a record at most MIRROR_MAX back whose src, dst, sport, dport are this
 * one's dst, src, dport, sport. Only that window matters, so a small direct-mapped table
 * (in cache; a collision costs a missed mirror, never a wrong one) keyed by a hash that
 * is the same both ways (the latest record of each conversation) does. Fills w->mref and
 * the four compacted columns, and the zone's port ranges; returns how many records those
 * columns hold (n if mirroring does not pay). */
static uint32_t mirror_plan(struct store_writer *w, uint32_t n, struct store_zone *z)
{
	const struct store_cols *c = &w->buf;
	uint32_t *tab = w->mtab, m = 0;
	uint16_t smin = UINT16_MAX, smax = 0, dmin = UINT16_MAX, dmax = 0;
	const unsigned sh = 64 - MIRROR_TAB_BITS;

	memset(tab, 0, MIRROR_TAB * sizeof(*tab));
	for (uint32_t i = 0; i < n; i++) {
		const uint8_t *sa = c->src[i], *da = c->dst[i];
		uint16_t sp = c->sport[i], dp = c->dport[i];
		uint64_t k = (ld_le64(sa) ^ ld_le64(sa + 8)) + (ld_le64(da) ^ ld_le64(da + 8)) +
			     ((uint64_t)(sp + dp) << 17 ^ (uint64_t)(sp ^ dp));
		uint32_t h = (uint32_t)(k * 0x9E3779B97F4A7C15ULL >> sh);
		uint32_t j = tab[h] - 1;        /* tab holds row + 1, 0 = empty */
		smin = sp < smin ? sp : smin;
		smax = sp > smax ? sp : smax;
		dmin = dp < dmin ? dp : dmin;
		dmax = dp > dmax ? dp : dmax;
		w->mref[i] = 0;
		if (tab[h] && i - j <= MIRROR_MAX && c->sport[j] == dp && c->dport[j] == sp &&
		    addr_eq(c->src[j], da) && addr_eq(c->dst[j], sa))
			w->mref[i] = (uint8_t)(i - j);
		tab[h] = i + 1;
		m += !w->mref[i];
	}
	z->sport_min = smin;
	z->sport_max = smax;
	z->dport_min = dmin;
	z->dport_max = dmax;
	if (n - m < n / 16) {
		memset(w->mref, 0, n);
		return n;
	}
	w->st.mirrored += n - m;
	m = 0;
	for (uint32_t i = 0; i < n; i++) {
		if (w->mref[i])
			continue;
		memcpy(w->msrc[m], c->src[i], 16);
		memcpy(w->mdst[m], c->dst[i], 16);
		w->msport[m] = c->sport[i];
		w->mdport[m] = c->dport[i];
		m++;
	}
	return m;
}

static inline int tuple_member(int c)
{
	return c == STORE_COL_IN_IF || c == STORE_COL_OUT_IF || c == STORE_COL_VLAN ||
	       (c >= STORE_COL_PROTO && c <= STORE_COL_END_REASON);
}

/* proto | tos << 8 | tcp_flags << 16 | ipver << 24 | src_mask << 32 | dst_mask << 40 |
 * end_reason << 48: the seven byte fields lie side by side in flow_rec, pad after them. */
static inline uint64_t tuple_key0(const struct flow_rec *r)
{
	_Static_assert(offsetof(struct flow_rec, end_reason) ==
		       offsetof(struct flow_rec, proto) + 6 &&
		       offsetof(struct flow_rec, pad) == offsetof(struct flow_rec, proto) + 7,
		       "flow_rec's byte fields moved");
	return ld_le64(&r->proto) & 0x00ffffffffffffffULL;
}

static void zone_tuple(struct store_zone *z, uint64_t k0)
{
	uint8_t proto = (uint8_t)k0;
	z->proto[proto >> 3] |= (uint8_t)(1u << (proto & 7));
	z->ipver |= (uint8_t)(k0 >> 24) == 6 ? 2 : 1;
}

/* The tuple (proto, tos, tcp_flags, ipver, masks, end_reason, vlan, in_if, out_if) as one
 * dictionary: these vary together and little. Fills w->tdk0/tdk1/tdvl, w->tidx, w->thist and
 * the zone's protocol and version sets; returns the entries, or 0 if more than TUPLE_MAX
 * turn up: then the members go to their own columns (w->buf). */
static uint32_t tuple_plan(struct store_writer *w, uint32_t n, struct store_zone *z)
{
	const uint64_t *k0 = w->tk0, *k1 = w->tk1;
	const uint16_t *vl = w->buf.vlan;
	const uint32_t mask = (1u << TUPLE_BITS) - 1;
	uint32_t nd = 0;

	if (++w->tgen == 0) {
		memset(w->ts, 0, sizeof(*w->ts) << TUPLE_BITS);
		w->tgen = 1;
	}
	for (uint32_t i = 0; i < n; i++) {
		uint64_t a = k0[i], b = k1[i];
		uint16_t v = vl[i];
		uint32_t h = (uint32_t)(((a ^ b * 0xC2B2AE3D27D4EB4FULL) + v) * 0x9E3779B97F4A7C15ULL >>
					(64 - TUPLE_BITS)), k;
		for (;;) {
			struct hslot *s = &w->ts[h];
			if (s->gen != w->tgen) {
				if (nd == TUPLE_MAX)
					goto apart;
				s->gen = w->tgen;
				s->idx = k = nd;
				w->tdk0[nd] = a;
				w->tdk1[nd] = b;
				w->tdvl[nd] = v;
				w->thist[nd++] = 0;
				break;
			}
			k = s->idx;
			if (w->tdk0[k] == a && w->tdk1[k] == b && w->tdvl[k] == v)
				break;
			h = (h + 1) & mask;
		}
		w->tidx[i] = k;
		w->thist[k]++;
	}
	for (uint32_t j = 0; j < nd; j++)
		zone_tuple(z, w->tdk0[j]);
	return nd;
apart:
	for (uint32_t i = 0; i < n; i++) {
		uint64_t a = k0[i];
		struct store_cols *c = &w->buf;
		c->proto[i] = (uint8_t)a;
		c->tos[i] = (uint8_t)(a >> 8);
		c->tcp_flags[i] = (uint8_t)(a >> 16);
		c->ipver[i] = (uint8_t)(a >> 24);
		c->src_mask[i] = (uint8_t)(a >> 32);
		c->dst_mask[i] = (uint8_t)(a >> 40);
		c->end_reason[i] = (uint8_t)(a >> 48);
		c->in_if[i] = (uint32_t)k1[i];
		c->out_if[i] = (uint32_t)(k1[i] >> 32);
		zone_tuple(z, a);
	}
	return 0;
}

/* The tuple dictionary: u32 entries, then TDICT_PLANES byte planes. */
static size_t enc_tdict(struct store_writer *w, uint32_t nd)
{
	uint8_t *o = w->raw;

	st_le32(o, nd);
	o += 4;
	for (unsigned k = 0; k < 7; k++)
		for (uint32_t j = 0; j < nd; j++)
			*o++ = (uint8_t)(w->tdk0[j] >> 8 * k);
	for (unsigned k = 0; k < 2; k++)
		for (uint32_t j = 0; j < nd; j++)
			*o++ = (uint8_t)(w->tdvl[j] >> 8 * k);
	for (unsigned k = 0; k < 8; k++)
		for (uint32_t j = 0; j < nd; j++)
			*o++ = (uint8_t)(w->tdk1[j] >> 8 * k);
	return (size_t)(o - w->raw);
}

/* Adds raw[0..rl) as column c's chunk (compressed when it pays) to the block. */
static void wr_chunk(struct store_writer *w, int c, size_t rl, uint8_t enc, uint8_t xf,
		     int compressible)
{
	uint8_t codec;
	size_t dl = wr_compress(w, w->raw, rl, w->payload + w->pl, compressible, &codec);
	uint8_t *d = w->hdr + BLK_FIXED + DIRENT_LEN * w->ncols++;

	d[0] = (uint8_t)c;
	d[1] = enc;
	d[2] = codec;
	d[3] = xf;
	st_le32(d + 4, (uint32_t)dl);
	st_le32(d + 8, (uint32_t)rl);
	w->pl += dl;
	if (c < STORE_NCOLS)
		w->st.col_bytes[c] += dl + DIRENT_LEN;
	else if (c == COL_MIRROR)
		w->st.mirror_bytes += dl + DIRENT_LEN;
	else
		w->st.tuple_bytes += dl + DIRENT_LEN;
}

/* Encodes column c of the pending block (n records, m after mirroring, nt tuple entries)
 * into w->raw and adds it; all-zero columns are left out. */
static void wr_column(struct store_writer *w, int c, uint32_t n, uint32_t m, uint32_t nt,
		      struct store_zone *z)
{
	struct store_cols *b = &w->buf;
	struct ipick p = { .size = UINT64_MAX };
	uint8_t enc = 0;
	size_t rl = 0;
	int cmp = 1, mir = m < n;

	switch (c) {
	case STORE_COL_SRC:
	case STORE_COL_DST:
	case STORE_COL_NEXTHOP:
	case STORE_COL_EXPORTER: {
		const uint8_t (*a)[16] = c == STORE_COL_SRC ? (mir ? w->msrc : b->src)
				       : c == STORE_COL_DST ? (mir ? w->mdst : b->dst)
				       : c == STORE_COL_NEXTHOP ? b->nexthop : b->exporter;
		rl = enc_addr(w, a, c < STORE_COL_NEXTHOP ? m : n, &enc, &cmp);
		break;
	}
	case STORE_COL_PACKETS:
		rl = enc_counter(w, b->packets, n, &z->packets, &p);
		break;
	case STORE_COL_BYTES:
		rl = enc_counter(w, b->bytes, n, &z->bytes, &p);
		break;
	case STORE_COL_FIRST:
		rl = enc_time(w, b->first_ms, b->last_ms, n, &z->first_min, &z->first_max, &p);
		break;
	case STORE_COL_LAST:
		rl = enc_time(w, b->last_ms, NULL, n, &z->last_min, &z->last_max, &p);
		break;
	case STORE_COL_SPORT:
		rl = enc_u16(w, mir ? w->msport : b->sport, m, &p);
		break;
	case STORE_COL_DPORT:
		rl = enc_u16(w, mir ? w->mdport : b->dport, m, &p);
		break;
	case STORE_COL_VLAN:
		rl = enc_u16(w, b->vlan, n, &p);
		break;
	case COL_MIRROR:
		if (mir)
			rl = enc_u8(w, w->mref, n, &p);
		break;
	case COL_TDICT:
		if (nt) {
			rl = enc_tdict(w, nt);
			enc = ENC_TDICT;
		}
		break;
	case COL_TIDX:
		if (nt > 1) {
			for (uint32_t i = 0; i < n; i++)
				w->t0[i] = w->tidx[i];
			pick_for(w, &p, w->t0, n, 0, nt - 1, XF_NONE, 0);
			pick_huf(w, &p, w->t0, n, 0, nt - 1, XF_NONE, 0, w->thist);
			rl = write_pick(w, &p, n, w->raw);
		}
		break;
	default:
		if (colinfo[c].size == 4)
			rl = enc_u32(w, store_cols_array(b, c), n, &p);
		else
			rl = enc_u8(w, store_cols_array(b, c), n, &p);
		break;
	}
	if (!rl)
		return;
	if (colinfo[c].kind == K_INT) {
		enc = p.enc;
		cmp = pick_compressible(&p);
	}
	wr_chunk(w, c, rl, enc, p.xform, cmp);
}

static int wr_write_block(struct store_writer *w)
{
	uint32_t n = w->buf.n, m, nt;
	size_t hl;
	struct store_zone z;
	int rc;

	if (!n)
		return 0;
	if (w->fd < 0) {
		char *path = file_path(w->dir, w->cur_start);
		rc = path ? wr_open_path(w, path) : -ENOMEM;
		if (rc < 0)
			goto drop;
	}
	zone_empty(&z);
	m = mirror_plan(w, n, &z);
	nt = tuple_plan(w, n, &z);
	w->pl = 0;
	w->ncols = 0;
	for (int c = 0; c < NCOLS_ALL; c++) {
		if (nt && tuple_member(c))
			continue;
		wr_column(w, c, n, m, nt, &z);
	}
	blk_hdr(w->hdr, BLK_DATA, w->ncols, n, (uint32_t)w->pl,
		store_payload_hash(w->phash, w->payload, w->pl), &z, w->cfg.codec);
	st_le32(w->hdr + 20, BLK_F_HSYNC);
	hl = blk_seal(w->hdr, w->ncols);
	rc = wr_append(w, w->hdr, hl, w->payload, w->pl);
	if (rc < 0)
		goto drop;
	zone_merge(&w->fzone, &z);
	w->fblocks++;
	w->frecs += n;
	w->st.blocks++;
	w->buf.n = 0;
	return 0;
drop:
	w->st.dropped += n;
	w->buf.n = 0;
	return rc;
}

static int wr_close_file(struct store_writer *w)
{
	uint8_t h[STORE_BLK_HDR_MIN], p[FOOTER_PAYLOAD];
	int rc;

	if (w->fd < 0)
		return 0;
	st_le64(p, w->fblocks);
	st_le64(p + 8, w->off);
	blk_hdr(h, BLK_FOOTER, 0,
		w->frecs > UINT32_MAX ? UINT32_MAX : (uint32_t)w->frecs, FOOTER_PAYLOAD,
		store_hash32(p, FOOTER_PAYLOAD, 0), &w->fzone, w->cfg.codec);
	blk_seal(h, 0);
	rc = wr_append(w, h, sizeof(h), p, sizeof(p));
	if (rc == 0 && !w->cfg.nosync) {
		if (fdatasync(w->fd) < 0)
			rc = -errno;
		else
			w->st.syncs++;
		int r2 = fsync_dir_of(w->path);
		if (rc == 0)
			rc = r2;
	}
	close(w->fd);
	w->fd = -1;
	free(w->path);
	w->path = NULL;
	w->dirty = 0;
	w->st.files_closed++;
	return rc;
}

static uint64_t interval_start(const struct store_writer *w, uint64_t now_ms)
{
	return now_ms - now_ms % w->interval_ms;
}

static void wr_free(struct store_writer *w)
{
	if (w->fd >= 0)
		close(w->fd);
	if (w->lockfd >= 0)
		close(w->lockfd);
	free(w->path);
	free(w->dir);
	store_cols_free(&w->buf);
	free(w->t0);
	free(w->t2);
	free(w->idx);
	free(w->dictv);
	free(w->dcnt);
	free(w->rank);
	free(w->tk0);
	free(w->tk1);
	free(w->tidx);
	free(w->tdk0);
	free(w->tdk1);
	free(w->tdvl);
	free(w->ts);
	free(w->dicta);
	free(w->dicta2);
	free(w->hs);
	free(w->sgen);
	free(w->sidx);
	free(w->mref);
	free(w->mtab);
	free(w->msrc);
	free(w->mdst);
	free(w->msport);
	free(w->mdport);
	free(w->raw);
	free(w->payload);
	ZSTD_freeCCtx(w->zc);
	free(w);
}

/* Repairs the newest file if a crash left it open: continue it when it is the current
 * interval's, else close it. */
static int wr_recover_newest(struct store_writer *w)
{
	struct store_list l;
	struct store_reader *r;
	struct store_zone z;
	int rc, closed;

	rc = store_list_files(w->dir, &l);
	if (rc < 0 || l.n == 0) {
		if (rc == 0)
			store_list_free(&l);
		return rc;
	}
	struct store_file *f = &l.v[l.n - 1];
	r = store_reader_open(f->path);
	closed = r ? store_reader_file_zone(r, &z) : 0;
	if (r)
		store_reader_close(r);
	if (r && closed == 0) {
		uint64_t keep = w->cur_start;
		char *path = strdup(f->path);
		w->cur_start = f->start_ms;
		rc = path ? wr_open_path(w, path) : -ENOMEM;
		w->cur_start = keep;
		if (rc == 0 && f->start_ms != keep)
			rc = wr_close_file(w);
	}
	store_list_free(&l);
	return rc;
}

struct store_writer *store_writer_open(const struct store_cfg *cfg, uint64_t now_ms)
{
	struct store_writer *w;
	uint32_t n;
	size_t payload_cap = 0;
	int rc = -EINVAL;

	if (!cfg || !cfg->dir || !cfg->dir[0] || cfg->interval_s < 60 || cfg->interval_s % 60 ||
	    cfg->block_recs < 1 || cfg->block_recs > STORE_MAX_BLOCK_RECS ||
	    cfg->codec > STORE_CODEC_ZSTD || cfg->phash > STORE_PHASH_XXH3) {
		errno = EINVAL;
		return NULL;
	}
	w = calloc(1, sizeof(*w));
	if (!w) {
		errno = ENOMEM;
		return NULL;
	}
	w->fd = -1;
	w->lockfd = -1;
	w->cfg = *cfg;
	if (w->cfg.phash == STORE_PHASH_AUTO)
		w->cfg.phash = (uint8_t)store_phash_default();
	w->phash = w->cfg.phash;
	w->dir = strdup(cfg->dir);
	w->cfg.dir = w->dir;
	w->interval_ms = (uint64_t)cfg->interval_s * 1000;
	w->cur_start = interval_start(w, now_ms);
	w->created_ms = now_ms;
	n = cfg->block_recs;
	for (w->hbits = 6; (1u << w->hbits) < 2 * n; w->hbits++)
		;
	/* a chunk is never larger than its values stored plainly plus headers (BITLEN, for
	 * 64-bit columns: 75 bits a value at worst); the tuple dictionary has its own bound */
	for (int c = 0; c < NCOLS_ALL; c++)
		payload_cap += (size_t)(colinfo[c].size == 8 ? 10 : colinfo[c].size) * n + 64;
	payload_cap += TDICT_MAX_LEN;
	rc = -ENOMEM;
	w->zstd = cfg->codec == STORE_CODEC_ZSTD;
	w->t0 = malloc(sizeof(uint64_t) * n);
	w->t2 = malloc(sizeof(uint64_t) * n);
	w->idx = malloc(sizeof(uint64_t) * n);
	w->dictv = malloc(sizeof(uint64_t) * n);
	w->dcnt = malloc(sizeof(uint32_t) * n);
	w->rank = malloc(sizeof(uint32_t) * n);
	w->dicta = malloc((size_t)16 * n);
	w->dicta2 = malloc((size_t)16 * n);
	w->hs = calloc((size_t)1 << w->hbits, sizeof(*w->hs));
	w->sgen = calloc(65536, sizeof(*w->sgen));
	w->sidx = malloc(65536 * sizeof(*w->sidx));
	w->tk0 = malloc(sizeof(uint64_t) * n);
	w->tk1 = malloc(sizeof(uint64_t) * n);
	w->tidx = malloc(sizeof(uint32_t) * n);
	w->tdk0 = malloc(sizeof(uint64_t) * TUPLE_MAX);
	w->tdk1 = malloc(sizeof(uint64_t) * TUPLE_MAX);
	w->tdvl = malloc(sizeof(uint16_t) * TUPLE_MAX);
	w->ts = calloc((size_t)1 << TUPLE_BITS, sizeof(*w->ts));
	w->mref = malloc(n);
	w->mtab = malloc(MIRROR_TAB * sizeof(*w->mtab));
	w->msrc = malloc((size_t)16 * n);
	w->mdst = malloc((size_t)16 * n);
	w->msport = malloc(sizeof(uint16_t) * n);
	w->mdport = malloc(sizeof(uint16_t) * n);
	w->raw = malloc((size_t)16 * n + 64 + TDICT_MAX_LEN);
	w->payload = malloc(payload_cap);
	if (!w->mref || !w->mtab || !w->msrc || !w->mdst || !w->msport || !w->mdport ||
	    !w->tk0 || !w->tk1 || !w->tidx || !w->tdk0 || !w->tdk1 || !w->tdvl || !w->ts)
		goto fail;
	if (!w->dir || !w->t0 || !w->t2 || !w->idx || !w->dictv || !w->dcnt ||
	    !w->rank || !w->dicta || !w->dicta2 || !w->hs || !w->sgen || !w->sidx ||
	    !w->raw || !w->payload || store_cols_reserve(&w->buf, n, STORE_COLS_ALL) < 0)
		goto fail;
	if (cfg->codec == STORE_CODEC_ZSTD && !(w->zc = ZSTD_createCCtx()))
		goto fail;
	if (mkdir(w->dir, 0755) < 0 && errno != EEXIST) {
		rc = -errno;
		goto fail;
	}
	char *lock = join(w->dir, ".tapflow.lock");
	w->lockfd = lock ? open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0644) : -1;
	free(lock);
	if (w->lockfd < 0) {
		rc = lock ? -errno : -ENOMEM;
		goto fail;
	}
	if (flock(w->lockfd, LOCK_EX | LOCK_NB) < 0) {
		rc = errno == EWOULDBLOCK ? -EBUSY : -errno;
		goto fail;
	}
	rc = wr_recover_newest(w);
	if (rc < 0)
		goto fail;
	return w;
fail:
	wr_free(w);
	errno = -rc;
	return NULL;
}

/* Straight into the column arrays; the tuple's members as two keys (see tuple_plan()). */
int store_writer_add(struct store_writer *w, const struct flow_rec *r)
{
	struct store_cols *c = &w->buf;
	uint32_t i = c->n;

	memcpy(c->src[i], r->src, 16);
	memcpy(c->dst[i], r->dst, 16);
	memcpy(c->nexthop[i], r->nexthop, 16);
	memcpy(c->exporter[i], r->exporter, 16);
	c->packets[i] = r->packets;
	c->bytes[i] = r->bytes;
	c->first_ms[i] = r->first_ms;
	c->last_ms[i] = r->last_ms;
	c->src_as[i] = r->src_as;
	c->dst_as[i] = r->dst_as;
	c->domain_id[i] = r->domain_id;
	c->sampling[i] = r->sampling;
	c->sport[i] = r->sport;
	c->dport[i] = r->dport;
	c->vlan[i] = r->vlan;
	w->tk0[i] = tuple_key0(r);
	w->tk1[i] = (uint64_t)r->in_if | (uint64_t)r->out_if << 32;
	c->n = i + 1;
	w->st.records++;
	if (i + 1 == w->cfg.block_recs)
		return wr_write_block(w);
	return 0;
}

int store_writer_flush(struct store_writer *w)
{
	int rc = wr_write_block(w);

	if (w->fd >= 0 && w->dirty && !w->cfg.nosync) {
		if (fdatasync(w->fd) < 0)
			return rc ? rc : -errno;
		w->st.syncs++;
	}
	w->dirty = 0;
	return rc;
}

int store_writer_rotate(struct store_writer *w, uint64_t now_ms)
{
	uint64_t s = interval_start(w, now_ms);
	int rc, rc2;

	if (s == w->cur_start)
		return 0;
	rc = wr_write_block(w);
	rc2 = wr_close_file(w);
	w->cur_start = s;
	w->created_ms = now_ms;
	return rc ? rc : rc2;
}

const char *store_writer_path(const struct store_writer *w)
{
	return w->fd >= 0 ? w->path : NULL;
}

const struct store_writer_stats *store_writer_stats(const struct store_writer *w)
{
	return &w->st;
}

int store_writer_close(struct store_writer *w)
{
	int rc, rc2;

	if (!w)
		return 0;
	rc = wr_write_block(w);
	rc2 = wr_close_file(w);
	wr_free(w);
	return rc ? rc : rc2;
}

/* ---- reader ---- */

struct rd_col {
	uint8_t present, enc, codec, xform;
	uint32_t disk_len, raw_len, off;
};

struct blkhdr {
	int kind;
	unsigned ncols;
	uint32_t hdr_len, nrec, plen, phash, flags;
	uint8_t codec;
	struct store_zone zone;
	struct rd_col col[NCOLS_ALL];
};

struct store_reader {
	int fd, own_fd;
	const uint8_t *mem;
	size_t mem_len;
	uint64_t size;          /* file size when last looked at, at most limit */
	uint64_t limit;         /* store_reader_set_limit() */
	struct store_file_hdr hdr;
	int verify, done;
	uint64_t off;           /* next block */
	/* current block */
	int cur, cur_loaded, cur_err;
	uint64_t cur_off;
	struct blkhdr b;
	uint32_t tnd;
	struct store_read_stats st;
	/* Buffers from here on: kept when the reader is reused for another file (rd_reuse) */
	uint8_t *pay;
	size_t pay_cap;
	uint8_t *raw;
	size_t raw_cap;
	uint8_t *craw[2];       /* src's and dst's chunk inflated, for packed codes */
	size_t craw_cap[2];
	uint8_t *traw;          /* the tuple indices' inflated, for them packed */
	size_t traw_cap;
	uint64_t *t0, *t1, *t2, *dv;
	uint8_t *dicta;
	uint64_t *cd[2];        /* address codes (store_reader_decode_codes) */
	uint8_t (*cdict)[16];   /* their dictionaries, 2 * t_cap entries */
	uint8_t *mref;
	uint8_t (*ma)[16], (*mb)[16];   /* compacted mirrored columns */
	uint16_t *mpa, *mpb;
	uint32_t *tidx;         /* each record's tuple */
	uint64_t *pcd[2];       /* port codes (store_reader_decode_codes) */
	uint16_t *pex[2], *pvl[2];      /* their exceptions, room for their values */
	uint16_t pdv[2][HUF_MAXSYM];    /* their frequent values */
	size_t t_cap;           /* records t0 .. tidx have room for, all in scr */
	uint8_t *scr;
	size_t scr_len;
	uint8_t tdict[TDICT_MAX_LEN];   /* the tuple dictionary's planes */
	struct hufrd huf;
	struct blstream bs[BL_STREAMS];
	struct bltab blt;               /* bl_run1()'s tables */
	ZSTD_DCtx *zd;
	/* the tuple dictionary's members as columns (store_reader_decode_codes) */
	struct store_cols tview;
	uint32_t tv_if[2][TUPLE_MAX];
	uint16_t tv_vlan[TUPLE_MAX];
	uint8_t tv_byte[7][TUPLE_MAX];
};

/* Reads up to len bytes at off; returns the count (short at end of file) or -errno. */
static ssize_t rd_pread(struct store_reader *r, void *buf, size_t len, uint64_t off)
{
	size_t got = 0;

	if (off >= r->limit)
		return 0;
	if (len > r->limit - off)
		len = (size_t)(r->limit - off);
	if (r->fd < 0) {
		if (off >= r->mem_len)
			return 0;
		got = r->mem_len - (size_t)off < len ? r->mem_len - (size_t)off : len;
		memcpy(buf, r->mem + off, got);
		return (ssize_t)got;
	}
	while (got < len) {
		ssize_t n = pread(r->fd, (uint8_t *)buf + got, len - got, (off_t)(off + got));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			break;
		got += (size_t)n;
	}
	return (ssize_t)got;
}

static uint64_t rd_size(struct store_reader *r)
{
	struct stat sb;

	if (r->fd < 0)
		r->size = r->mem_len;
	else if (fstat(r->fd, &sb) == 0)
		r->size = (uint64_t)sb.st_size;
	if (r->size > r->limit)
		r->size = r->limit;
	return r->size;
}

static int enc_ok(int col, unsigned enc, unsigned xform)
{
	if (colinfo[col].kind == K_TDICT)
		return enc == ENC_TDICT && xform == XF_NONE;
	if (colinfo[col].kind == K_ADDR)
		return xform == XF_NONE && (enc == ENC_CONST || enc == ENC_ADDR_RAW ||
					    enc == ENC_ADDR_DICT || enc == ENC_ADDR_DICT2);
	if (enc < ENC_CONST || enc > ENC_HPDICT || enc == ENC_ADDR_RAW || enc == ENC_ADDR_DICT)
		return 0;
	if (xform == XF_NONE)
		return 1;
	return xform <= XF_LASTDIFF && (colinfo[col].xforms & 1u << xform);
}

#define TUPLE_MEMBERS STORE_TUPLE_MEMBERS

/* Parses a block header from h[0..n). Returns its length, 0 if n bytes do not hold all of
 * it, -EILSEQ no block magic, -EBADMSG hash mismatch, -EPROTO malformed. */
static int parse_blkhdr(const uint8_t *h, size_t n, int verify, struct blkhdr *b)
{
	uint64_t sum = 0;
	int prev = -1, members = 0;

	if (memcmp(h, BLK_MAGIC, n < 4 ? n : 4))
		return -EILSEQ;
	if (n < 8)
		return 0;
	b->kind = h[4];
	b->ncols = h[5];
	b->hdr_len = ld_le16(h + 6);
	if ((b->kind != BLK_DATA && b->kind != BLK_FOOTER) || b->ncols > NCOLS_ALL ||
	    b->hdr_len != STORE_BLK_HDR_MIN + DIRENT_LEN * b->ncols)
		return -EPROTO;
	if (n < b->hdr_len)
		return 0;
	if (verify && store_hash32(h, b->hdr_len - 4, 0) != ld_le32(h + b->hdr_len - 4))
		return -EBADMSG;
	b->nrec = ld_le32(h + 8);
	b->plen = ld_le32(h + 12);
	b->phash = ld_le32(h + 16);
	b->flags = ld_le32(h + 20);
	if (b->flags & ~BLK_F_HSYNC)
		return -EPROTO;
	b->codec = h[113];
	zone_get(h, &b->zone);
	if (b->kind == BLK_FOOTER)
		return b->ncols == 0 && b->plen == FOOTER_PAYLOAD ? (int)b->hdr_len : -EPROTO;
	if (b->nrec == 0 || b->nrec > STORE_MAX_BLOCK_RECS)
		return -EPROTO;
	memset(b->col, 0, sizeof(b->col));
	for (unsigned i = 0; i < b->ncols; i++) {
		const uint8_t *d = h + BLK_FIXED + DIRENT_LEN * i;
		int c = d[0];
		struct rd_col *rc;
		if (c >= NCOLS_ALL || c <= prev)
			return -EPROTO;
		prev = c;
		rc = &b->col[c];
		rc->present = 1;
		rc->enc = d[1];
		rc->codec = d[2];
		rc->xform = d[3];
		rc->disk_len = ld_le32(d + 4);
		rc->raw_len = ld_le32(d + 8);
		rc->off = (uint32_t)sum;
		if (!enc_ok(c, rc->enc, rc->xform) || rc->codec > STORE_CODEC_ZSTD ||
		    rc->raw_len > (c == COL_TDICT ? TDICT_MAX_LEN : 16 * b->nrec + 64) ||
		    rc->disk_len > rc->raw_len + 64 ||
		    (rc->codec == STORE_CODEC_NONE && rc->disk_len != rc->raw_len))
			return -EPROTO;
		sum += rc->disk_len;
		if (c < STORE_NCOLS && (TUPLE_MEMBERS & STORE_COLBIT(c)))
			members = 1;
	}
	/* a tuple replaces its members; its indices need its dictionary */
	if (sum != b->plen || (b->col[COL_TDICT].present && members) ||
	    (b->col[COL_TIDX].present && !b->col[COL_TDICT].present))
		return -EPROTO;
	return (int)b->hdr_len;
}

static void rd_count_bad(struct store_reader *r, int err)
{
	r->st.bad_blocks++;
	if (err == -EBADMSG)
		r->st.bad_hash++;
	else if (err == -EIO)
		r->st.bad_inflate++;
	else
		r->st.bad_format++;
}

/* After damage at r->off: finds the next valid block header. Returns 1 found (r->off
 * moved there, the damaged stretch counted as one bad block), 0 none (the rest counts as
 * tail: damage at the very end cannot be told from a torn write), -errno. */
static int rd_resync(struct store_reader *r, int err)
{
	uint8_t buf[16384], h[BLK_HDR_MAX];
	uint64_t pos = r->off + 1;
	struct blkhdr b;

	for (;;) {
		ssize_t n = rd_pread(r, buf, sizeof(buf), pos);
		if (n < 0)
			return (int)n;
		for (size_t i = 0; i + 4 <= (size_t)n; i++) {
			if (buf[i] != 'T' || memcmp(buf + i, BLK_MAGIC, 4))
				continue;
			ssize_t m = rd_pread(r, h, sizeof(h), pos + i);
			if (m < 0)
				return (int)m;
			if (parse_blkhdr(h, (size_t)m, r->verify, &b) > 0) {
				rd_count_bad(r, err);
				r->off = pos + i;
				return 1;
			}
		}
		if ((size_t)n < sizeof(buf))
			break;
		pos += (uint64_t)n - 3;         /* a magic may straddle the chunks */
	}
	r->st.tail_bytes += rd_size(r) - r->off;
	r->done = 1;
	return 0;
}

static int rd_footer(struct store_reader *r, const struct blkhdr *b)
{
	uint8_t p[FOOTER_PAYLOAD];
	ssize_t n = rd_pread(r, p, sizeof(p), r->off + b->hdr_len);

	if (n < 0)
		return (int)n;
	if (n < FOOTER_PAYLOAD) {
		r->st.tail_bytes += rd_size(r) - r->off;
		r->done = 1;
		return 0;
	}
	if ((r->verify && store_hash32(p, sizeof(p), 0) != b->phash) || ld_le64(p + 8) != r->off)
		return -EBADMSG;
	r->st.closed = 1;
	r->done = 1;
	uint64_t end = r->off + FOOTER_LEN, size = rd_size(r);
	if (size > end)
		r->st.tail_bytes += size - end;
	return 0;
}

int store_reader_next(struct store_reader *r, struct store_block_info *bi)
{
	uint8_t h[BLK_HDR_MAX];

	r->cur = 0;
	for (;;) {
		if (r->done)
			return 0;
		ssize_t n = rd_pread(r, h, sizeof(h), r->off);
		if (n < 0)
			return (int)n;
		if (n == 0) {
			r->done = 1;
			return 0;
		}
		int rc = parse_blkhdr(h, (size_t)n, r->verify, &r->b);
		if (rc == 0) {
			r->st.tail_bytes += (uint64_t)n;
			r->done = 1;
			return 0;
		}
		if (rc > 0 && r->b.kind == BLK_FOOTER) {
			rc = rd_footer(r, &r->b);
			if (rc == 0)
				return 0;
		}
		if (rc < 0) {
			rc = rd_resync(r, rc);
			if (rc < 0)
				return rc;
			continue;
		}
		uint64_t end = r->off + r->b.hdr_len + r->b.plen;
		if (end > r->size && end > rd_size(r)) {
			r->st.tail_bytes += r->size - r->off;
			r->done = 1;
			return 0;
		}
		r->cur = 1;
		r->cur_loaded = 0;
		r->cur_err = 0;
		r->cur_off = r->off;
		r->off = end;
		r->st.blocks++;
		r->st.records += r->b.nrec;
		if (bi) {
			bi->off = r->cur_off;
			bi->nrec = r->b.nrec;
			bi->disk_bytes = r->b.hdr_len + r->b.plen;
			bi->codec = r->b.codec;
			bi->colmask = 0;
			for (int c = 0; c < STORE_NCOLS; c++)
				if (r->b.col[c].present)
					bi->colmask |= STORE_COLBIT(c);
			if (r->b.col[COL_MIRROR].present)
				bi->colmask |= STORE_COLBIT(STORE_COL_SRC) | STORE_COLBIT(STORE_COL_DST) |
					       STORE_COLBIT(STORE_COL_SPORT) |
					       STORE_COLBIT(STORE_COL_DPORT);
			if (r->b.col[COL_TDICT].present)
				bi->colmask |= TUPLE_MEMBERS;
			bi->zone = r->b.zone;
		}
		return 1;
	}
}

static int grow(void **p, size_t *cap, size_t need, size_t elem)
{
	if (need <= *cap)
		return 0;
	void *q = calloc(need, elem);
	if (!q)
		return -ENOMEM;
	free(*p);
	*p = q;
	*cap = need;
	return 0;
}

static void rd_free_scratch(struct store_reader *r)
{
	sys_big_free(r->scr, r->scr_len);
	r->scr = NULL;
	r->scr_len = 0;
	r->t_cap = 0;
}

/* The decoding scratch arrays for n records, carved from one allocation (one set of huge
 * pages, see sys_big_zalloc). */
static int rd_scratch(struct store_reader *r, uint32_t n)
{
	size_t a1 = al64(n), a2 = al64((size_t)n * 2), a4 = al64((size_t)n * 4);
	size_t a8 = al64((size_t)n * 8), a16 = al64((size_t)n * 16);

	if (n <= r->t_cap)
		return 0;
	rd_free_scratch(r);
	r->scr_len = 8 * a8 + 64 + 5 * a16 + a4 + 6 * a2 + a1;
	if (!(r->scr = sys_big_zalloc(r->scr_len))) {
		r->scr_len = 0;
		return -ENOMEM;
	}
	uint8_t *p = r->scr;
	r->t0 = (uint64_t *)p; p += a8;
	r->t1 = (uint64_t *)p; p += a8;
	r->t2 = (uint64_t *)p; p += a8;
	r->dv = (uint64_t *)p; p += a8 + 64;   /* one more entry: pdict_map() */
	r->dicta = p; p += a16;
	r->ma = (uint8_t (*)[16])p; p += a16;
	r->mb = (uint8_t (*)[16])p; p += a16;
	r->cd[0] = (uint64_t *)p; p += a8;
	r->cd[1] = (uint64_t *)p; p += a8;
	r->cdict = (uint8_t (*)[16])p; p += 2 * a16;
	r->tidx = (uint32_t *)p; p += a4;
	r->mpa = (uint16_t *)p; p += a2;
	r->mpb = (uint16_t *)p; p += a2;
	for (int k = 0; k < 2; k++) {
		r->pcd[k] = (uint64_t *)p; p += a8;
		r->pex[k] = (uint16_t *)p; p += a2;
		r->pvl[k] = (uint16_t *)p; p += a2;
	}
	r->mref = p;
	r->t_cap = n;
	return 0;
}

/* A Huffman coded body (ENC_HUF, ENC_BITLEN) of n values over base. */
/* A BITLEN body's code at c made ready as stream s, to decode into v over base. */
static int bitlen_open(struct store_reader *r, struct cur *c, uint32_t n, uint64_t base,
		       uint64_t *v, struct blstream *s)
{
	int err = huf_get_n(c, BITLEN_SYMS, n, r->b.flags, &r->huf);

	if (err == 0)
		bl_stream(s, &r->huf, base, v);
	return err;
}

static int dec_body(struct store_reader *r, struct cur *c, unsigned enc, uint32_t n,
		    uint64_t base, uint64_t *v)
{
	int err;

	if (enc == ENC_HUF) {
		if ((err = huf_get_n(c, HUF_MAXSYM, n, r->b.flags, &r->huf)) < 0)
			return err;
		return huf_decode(&r->huf, n, base, v);
	}
	if ((err = bitlen_open(r, c, n, base, v, &r->bs[0])) < 0)
		return err;
	return bitlen_decode_n(r->bs, 1, n, &r->blt);
}

/* The XF_DELTA transform undone: v[0] = v0, then zigzag differences. */
static void undo_delta(uint64_t *v, uint32_t n, uint64_t v0)
{
	uint64_t x = v0;        /* in a register: no store-to-load wait a value */

	v[0] = v0;
	for (uint32_t i = 1; i < n; i++)
		v[i] = x += unzigzag(v[i]);
}

/* The XF_LASTDIFF transform (FIRST coded as LAST - FIRST) undone. */
static void undo_lastdiff(uint64_t *v, const uint64_t *last, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++)
		v[i] = last[i] - v[i];
}

/* PDICT's and HPDICT's values from their codes r->t1 (each at most nf): code c >= 1 is
 * frequent value c - 1 (r->dv), 0 the next of the ne exceptions (r->t2). Without a
 * branch on the code: exceptions come unpredictably, and a mispredicted branch a few
 * records costs more than both loads. Returns 0, or -1 when the counts disagree. */
static int pdict_map(struct store_reader *r, uint32_t nf, uint32_t ne, uint32_t n, uint64_t *v)
{
	const uint64_t *code = r->t1, *exc = r->t2;
	uint64_t *dv = r->dv;
	uint32_t k = 0;

	/* dv[c - 1] as dv[c] (dv has room for n + 1), entry 0 an unused read */
	memmove(dv + 1, dv, (size_t)nf * sizeof(*dv));
	dv[0] = 0;
	for (uint32_t i = 0; i < n; i++) {
		uint64_t c = code[i], z = c == 0, sel = -z;
		/* k <= i < n: exc[k] is inside the scratch array even past the exceptions (a
		 * code 0 too many leaves k past ne, caught below) */
		v[i] = (exc[k] & sel) | (dv[c] & ~sel);
		k += (uint32_t)z;
	}
	return k != ne ? -1 : 0;
}

/* An HPDICT body of n records at c: its nf frequent values into r->dv, each record's
 * code (c >= 1: value c - 1, 0: the next exception) into codes, its ne exceptions into
 * r->t2. */
static int get_hpdict(struct store_reader *r, struct cur *c, uint32_t n, uint64_t *codes,
		      uint32_t *nf, uint32_t *ne)
{
	const uint8_t *p;
	int err;

	if (!(p = cur_take(c, 4)) || (*nf = ld_le32(p)) < 1 || *nf > n || *nf >= HUF_MAXSYM)
		return -EPROTO;
	if ((err = get_for(c, *nf, r->dv)) < 0 ||
	    (err = huf_get_n(c, *nf + 1, n, r->b.flags, &r->huf)) < 0 ||
	    r->huf.A != *nf + 1 || (err = huf_decode(&r->huf, n, 0, codes)) < 0)
		return err < 0 ? err : -EPROTO;
	if (!(p = cur_take(c, 4)) || (*ne = ld_le32(p)) > n)
		return -EPROTO;
	return get_for(c, *ne, r->t2);
}

static int dec_int(struct store_reader *r, struct cur *c, uint32_t n, const struct rd_col *rc,
		   uint64_t *v)
{
	const uint8_t *p;
	uint64_t v0 = 0;
	int err;

	if (rc->xform == XF_DELTA) {
		if (!(p = cur_take(c, 8)))
			return -EPROTO;
		v0 = ld_le64(p);
	}
	switch (rc->enc) {
	case ENC_CONST:
		if (!(p = cur_take(c, 8)))
			return -EPROTO;
		for (uint32_t i = 0; i < n; i++)
			v[i] = ld_le64(p);
		break;
	case ENC_FOR:
		if ((err = get_for(c, n, v)) < 0)
			return err;
		break;
	case ENC_VARINT:
		if (!(p = cur_take(c, 8)))
			return -EPROTO;
		if ((err = get_varints(c, n, ld_le64(p), v)) < 0)
			return err;
		break;
	case ENC_DICT: {
		if (!(p = cur_take(c, 4)))
			return -EPROTO;
		uint32_t nd = ld_le32(p);
		if (nd < 1 || nd > n)
			return -EPROTO;
		if ((err = get_for(c, nd, r->dv)) < 0 || (err = get_for(c, n, r->t1)) < 0)
			return err;
		for (uint32_t i = 0; i < n; i++) {
			if (r->t1[i] >= nd)
				return -EPROTO;
			v[i] = r->dv[r->t1[i]];
		}
		break;
	}
	case ENC_PDICT: {
		uint32_t nf, ne;
		if (!(p = cur_take(c, 4)) || (nf = ld_le32(p)) < 1 || nf > n)
			return -EPROTO;
		if ((err = get_for(c, nf, r->dv)) < 0 || (err = get_for(c, n, r->t1)) < 0)
			return err;
		if (!(p = cur_take(c, 4)) || (ne = ld_le32(p)) > n)
			return -EPROTO;
		if ((err = get_for(c, ne, r->t2)) < 0)
			return err;
		for (uint32_t i = 0; i < n; i++)
			if (r->t1[i] > nf)
				return -EPROTO;
		if (pdict_map(r, nf, ne, n, v) < 0)
			return -EPROTO;
		break;
	}
	case ENC_HUF:
	case ENC_BITLEN:
		if (!(p = cur_take(c, 8)))
			return -EPROTO;
		if ((err = dec_body(r, c, rc->enc, n, ld_le64(p), v)) < 0)
			return err;
		break;
	case ENC_HDICT: {
		if (!(p = cur_take(c, 4)))
			return -EPROTO;
		uint32_t nd = ld_le32(p);
		if (nd < 2 || nd > n || nd > HUF_MAXSYM)
			return -EPROTO;
		if ((err = get_for(c, nd, r->dv)) < 0 ||
		    (err = huf_get_n(c, nd, n, r->b.flags, &r->huf)) < 0 ||
		    r->huf.A != nd || (err = huf_decode(&r->huf, n, 0, r->t1)) < 0)
			return err < 0 ? err : -EPROTO;
		for (uint32_t i = 0; i < n; i++)
			v[i] = r->dv[r->t1[i]];         /* codes < A = nd */
		break;
	}
	case ENC_HPDICT: {
		uint32_t nf, ne;
		if ((err = get_hpdict(r, c, n, r->t1, &nf, &ne)) < 0)
			return err;
		if (pdict_map(r, nf, ne, n, v) < 0)     /* codes < A = nf + 1 */
			return -EPROTO;
		break;
	}
	default:
		return -EPROTO;
	}
	if (rc->xform == XF_DELTA)
		undo_delta(v, n, v0);
	return 0;
}

/* n addresses out of their 16 byte planes at p (plane k: byte k of each address).
 * Planes holding one byte throughout (the ::ffff:0:0/96 prefix of IPv4 addresses, a
 * network's IPv6 prefix) come from a template copied whole, so only the bytes that
 * vary are moved one by one. */
static void planes_to_addrs(uint8_t (*out)[16], const uint8_t *p, uint32_t n)
{
	uint8_t tmpl[16];
	unsigned var[16], nv = 0;

	for (unsigned k = 0; k < 16; k++) {
		const uint8_t *pl = p + (size_t)k * n;
		tmpl[k] = pl[0];
		if (n > 1 && memcmp(pl, pl + 1, n - 1))       /* equal neighbours: constant */
			var[nv++] = k;
	}
	for (uint32_t j = 0; j < n; j++) {
		memcpy(out[j], tmpl, 16);
		for (unsigned v = 0; v < nv; v++)
			out[j][var[v]] = p[(size_t)var[v] * n + j];
	}
}

/* A dictionary of the one address a (every code 0). */
static void dict_of_one(const uint8_t *a, uint32_t n, uint64_t *codes, uint8_t (*dict)[16],
			uint32_t *nd)
{
	memcpy(dict[0], a, 16);
	memset(codes, 0, (size_t)n * sizeof(*codes));
	*nd = 1;
}

/* 1 if a code of n is nd or more (nd >= 1). */
static inline uint64_t codes_past(const uint64_t *codes, uint32_t n, uint32_t nd)
{
	uint64_t bad = 0;
	/* codes[i] >= nd, as 64-bit subtraction, or and shift: one vector step for two
	 * codes on plain SSE2 or NEON (no 64-bit compares there); exact for any code */
	for (uint32_t i = 0; i < n; i++)
		bad |= (((uint64_t)nd - 1 - codes[i]) | codes[i]) >> 63;
	return bad;
}

/* An address column coded as a dictionary (ADDR_DICT, ADDR_DICT2; CONST: one entry):
 * its *ndp entries into dict, each record's index into codes (each checked < *ndp).
 * Returns 1, 0 for a column coded otherwise (nothing read), or -EPROTO. With pk (c in
 * a buffer that outlives the decode), codes stored as plain FOR of a width below 2 n
 * come as a packed view in *pk instead, unchecked: returns 2. */
static int dec_addr_dict(struct store_reader *r, struct cur *c, uint32_t n,
			 const struct rd_col *rc, uint64_t *codes, uint8_t (*dict)[16],
			 uint32_t *ndp, struct store_packed *pk)
{
	const uint8_t *p;
	uint32_t nd;
	int err;

	switch (rc->enc) {
	case ENC_CONST:
		if (!(p = cur_take(c, 16)))
			return -EPROTO;
		dict_of_one(p, n, codes, dict, ndp);
		return 1;
	case ENC_ADDR_DICT:
	case ENC_ADDR_DICT2:
		break;
	default:
		return 0;
	}
	if (!(p = cur_take(c, 4)))
		return -EPROTO;
	nd = ld_le32(p);
	if (nd < 1 || nd > n || !(p = cur_take(c, (size_t)16 * nd)))
		return -EPROTO;
	planes_to_addrs(dict, p, nd);
	if (pk && (rc->enc == ENC_ADDR_DICT || (c->p < c->end && *c->p == ENC_FOR))) {
		struct cur at = *c;
		if (rc->enc == ENC_ADDR_DICT2)
			cur_take(&at, 1);
		if ((err = packed_view(&at, n, 2 * (uint64_t)n, pk)) < 0)
			return err;
		if (err) {
			*c = at;
			*ndp = nd;
			return 2;
		}
	}
	if (rc->enc == ENC_ADDR_DICT) {
		err = get_for(c, n, codes);
	} else if (!(p = cur_take(c, 1))) {
		err = -EPROTO;
	} else if (*p == ENC_FOR) {
		err = get_for(c, n, codes);
	} else if (*p == ENC_BITLEN) {
		const uint8_t *b = cur_take(c, 8);
		err = b ? dec_body(r, c, ENC_BITLEN, n, ld_le64(b), codes) : -EPROTO;
	} else {
		err = -EPROTO;
	}
	if (err < 0)
		return err;
	if (codes_past(codes, n, nd))
		return -EPROTO;
	*ndp = nd;
	return 1;
}

static int dec_addr(struct store_reader *r, struct cur *c, uint32_t n, const struct rd_col *rc,
		    uint8_t (*a)[16])
{
	const uint8_t *p;
	uint32_t nd;
	int got;

	if (rc->enc == ENC_ADDR_RAW) {
		if (!(p = cur_take(c, (size_t)16 * n)))
			return -EPROTO;
		if (n)
			planes_to_addrs(a, p, n);
		return 0;
	}
	got = dec_addr_dict(r, c, n, rc, r->t1, (uint8_t (*)[16])r->dicta, &nd, NULL);
	if (got <= 0)
		return got < 0 ? got : -EPROTO;
	for (uint32_t i = 0; i < n; i++)
		memcpy(a[i], r->dicta + r->t1[i] * 16, 16);
	return 0;
}

/* A cursor over column c's chunk (present), inflated if it was compressed. */
/* Column c's chunk as a cursor: in the payload, or inflated into *buf (cap *cap). */
static int chunk_cur_in(struct store_reader *r, int c, struct cur *cu, uint8_t **buf,
			size_t *cap)
{
	const struct rd_col *rc = &r->b.col[c];
	const uint8_t *p;
	size_t len;

	p = r->pay + rc->off;
	len = rc->disk_len;
	if (rc->codec != STORE_CODEC_NONE) {
		if (grow((void **)buf, cap, (size_t)rc->raw_len + SLACK, 1) < 0)
			return -ENOMEM;
		if (rc->codec == STORE_CODEC_LZ4) {
			int got = LZ4_decompress_safe((const char *)p, (char *)*buf, (int)len,
						      (int)rc->raw_len);
			if (got < 0 || (uint32_t)got != rc->raw_len)
				return -EIO;
		} else {
			size_t got = ZSTD_decompressDCtx(r->zd, *buf, rc->raw_len, p, len);
			if (ZSTD_isError(got) || got != rc->raw_len)
				return -EIO;
		}
		p = *buf;
		len = rc->raw_len;
	}
	*cu = cur_make(p, len);
	return 0;
}

/* The same in the reader's buffer for one chunk at a time. */
static int chunk_cur(struct store_reader *r, int c, struct cur *cu)
{
	return chunk_cur_in(r, c, cu, &r->raw, &r->raw_cap);
}

/* Decodes column c's chunk of n values into arr (last: the LAST column, for FIRST). */
static int dec_chunk(struct store_reader *r, int c, void *arr, uint32_t n, const uint64_t *last)
{
	const struct rd_col *rc = &r->b.col[c];
	const struct colinfo *ci = &colinfo[c];
	struct cur cu;
	int err;

	if (!rc->present) {
		memset(arr, 0, (size_t)n * ci->size);
		return 0;
	}
	if ((err = chunk_cur(r, c, &cu)) < 0)
		return err;
	if (ci->kind == K_TDICT) {
		const uint8_t *q = cur_take(&cu, 4);
		r->tnd = q ? ld_le32(q) : 0;
		if (r->tnd < 1 || r->tnd > n || r->tnd > TUPLE_MAX ||
		    !(q = cur_take(&cu, (size_t)TDICT_PLANES * r->tnd)))
			return -EPROTO;
		memcpy(r->tdict, q, (size_t)TDICT_PLANES * r->tnd);
		err = 0;
	} else if (ci->kind == K_ADDR) {
		err = dec_addr(r, &cu, n, rc, arr);
	} else {
		uint64_t *v = ci->size == 8 ? arr : r->t0;
		err = dec_int(r, &cu, n, rc, v);
		if (err == 0 && rc->xform == XF_LASTDIFF && last)      /* NULL: left undone */
			undo_lastdiff(v, last, n);
		if (err == 0) {
			switch (ci->size) {
			case 4:
				for (uint32_t i = 0; i < n; i++)
					((uint32_t *)arr)[i] = (uint32_t)v[i];
				break;
			case 2:
				for (uint32_t i = 0; i < n; i++)
					((uint16_t *)arr)[i] = (uint16_t)v[i];
				break;
			case 1:
				for (uint32_t i = 0; i < n; i++)
					((uint8_t *)arr)[i] = (uint8_t)v[i];
				break;
			}
		}
	}
	if (err == 0 && cur_left(&cu))
		err = -EPROTO;
	return err;
}

/* The 64-bit BITLEN columns of mask (counters and times; never compressed further)
 * decoded side by side into out, DELTA undone (LASTDIFF is left to the caller: LAST
 * may not be among them). Sets *done to the columns decoded. */
static int dec_bitlen_cols(struct store_reader *r, uint32_t mask, struct store_cols *out,
			   uint32_t *done)
{
	int cols[BL_STREAMS];
	uint64_t v0[BL_STREAMS];
	unsigned k = 0;
	uint32_t n = r->b.nrec;
	int err;

	*done = 0;
	for (int c = 0; c < STORE_NCOLS && k < BL_STREAMS; c++) {
		const struct rd_col *rc = &r->b.col[c];
		const uint8_t *p;
		if (!(mask & STORE_COLBIT(c)) || !rc->present || rc->enc != ENC_BITLEN ||
		    rc->codec != STORE_CODEC_NONE || colinfo[c].kind != K_INT ||
		    colinfo[c].size != 8)
			continue;
		struct cur cu = cur_make(r->pay + rc->off, rc->disk_len);
		v0[k] = 0;
		if (rc->xform == XF_DELTA) {
			if (!(p = cur_take(&cu, 8)))
				return -EPROTO;
			v0[k] = ld_le64(p);
		}
		if (!(p = cur_take(&cu, 8)))
			return -EPROTO;
		if ((err = bitlen_open(r, &cu, n, ld_le64(p), store_cols_array(out, c),
				       &r->bs[k])) < 0)
			return err;
		r->bs[k].delta = rc->xform == XF_DELTA;
		r->bs[k].v0 = v0[k];
		if (cur_left(&cu))
			return -EPROTO;
		cols[k++] = c;
	}
	if (!k)
		return 0;
	if ((err = bitlen_decode_n(r->bs, k, n, &r->blt)) < 0)
		return err;
	for (unsigned j = 0; j < k; j++) {
		if (r->b.col[cols[j]].xform == XF_DELTA && !r->bs[j].delta_done)
			undo_delta(r->bs[j].out, n, v0[j]);
		*done |= STORE_COLBIT(cols[j]);
	}
	return 0;
}

/* Rebuilds a mirrored pair of columns (a, b: src/dst or sport/dport) of n records from
 * their m compacted values ca, cb: a mirrored record takes b and a of the one it mirrors.
 * Inlined with sz a constant (addresses, ports): each copy a move, not a size dispatch. */
static inline __attribute__((always_inline)) int mirror_expand(const uint8_t *mref,
							       uint32_t n, uint32_t m, void *a,
							       void *b, const void *ca,
							       const void *cb, size_t sz)
{
	uint8_t *pa = a, *pb = b;
	uint32_t k = 0;

	for (uint32_t i = 0; i < n; i++) {
		uint32_t ref = mref[i];
		if (!ref) {
			if (k == m)
				return -EPROTO;
			memcpy(pa + i * sz, (const uint8_t *)ca + k * sz, sz);
			memcpy(pb + i * sz, (const uint8_t *)cb + k * sz, sz);
			k++;
		} else {
			if (ref > i)
				return -EPROTO;
			memcpy(pa + i * sz, pb + (i - ref) * sz, sz);
			memcpy(pb + i * sz, pa + (i - ref) * sz, sz);
		}
	}
	return k == m ? 0 : -EPROTO;
}

static int dec_col(struct store_reader *r, int c, struct store_cols *out)
{
	return dec_chunk(r, c, store_cols_array(out, c), r->b.nrec, out->last_ms);
}

/* Decodes a mirrored pair of columns (c1 < c2) into out. */
static int dec_mirrored(struct store_reader *r, int c1, int c2, uint32_t m, struct store_cols *out)
{
	int addr = colinfo[c1].kind == K_ADDR, err;
	void *ca = addr ? (void *)r->ma : (void *)r->mpa, *cb = addr ? (void *)r->mb : (void *)r->mpb;

	if ((err = dec_chunk(r, c1, ca, m, NULL)) < 0 || (err = dec_chunk(r, c2, cb, m, NULL)) < 0)
		return err;
	void *a = store_cols_array(out, c1), *b = store_cols_array(out, c2);
	return addr ? mirror_expand(r->mref, r->b.nrec, m, a, b, ca, cb, 16) :
		      mirror_expand(r->mref, r->b.nrec, m, a, b, ca, cb, 2);
}

/* Member c of each tuple of the dictionary into d[0 .. r->tnd); returns its width in
 * bytes. */
static unsigned tuple_dict_col(const struct store_reader *r, int c, uint32_t *d)
{
	unsigned first, width;
	uint32_t nd = r->tnd;

	switch (c) {
	case STORE_COL_VLAN: first = 7; width = 2; break;
	case STORE_COL_IN_IF: first = 9; width = 4; break;
	case STORE_COL_OUT_IF: first = 13; width = 4; break;
	default: first = (unsigned)(c - STORE_COL_PROTO); width = 1; break;
	}
	for (uint32_t j = 0; j < nd; j++) {
		d[j] = 0;
		for (unsigned k = 0; k < width; k++)
			d[j] |= (uint32_t)r->tdict[(size_t)(first + k) * nd + j] << 8 * k;
	}
	return width;
}

/* Member c of the tuple (plane offset and width in TDICT_PLANES) into arr, for the
 * records' indices r->tidx (checked < r->tnd by the caller). */
static void tuple_expand(struct store_reader *r, int c, void *arr, uint32_t n)
{
	uint32_t d[TUPLE_MAX];

	switch (tuple_dict_col(r, c, d)) {
	case 1:
		for (uint32_t i = 0; i < n; i++)
			((uint8_t *)arr)[i] = (uint8_t)d[r->tidx[i]];
		break;
	case 2:
		for (uint32_t i = 0; i < n; i++)
			((uint16_t *)arr)[i] = (uint16_t)d[r->tidx[i]];
		break;
	default:
		for (uint32_t i = 0; i < n; i++)
			((uint32_t *)arr)[i] = d[r->tidx[i]];
		break;
	}
}

/* The tuple members of mask as columns of the dictionary's r->tnd entries (r->tview). */
static void tuple_view(struct store_reader *r, uint32_t mask)
{
	struct store_cols *v = &r->tview;
	uint32_t d[TUPLE_MAX], nd = r->tnd;

	memset(v, 0, sizeof(*v));
	v->n = v->cap = nd;
	v->in_if = r->tv_if[0];
	v->out_if = r->tv_if[1];
	v->vlan = r->tv_vlan;
	v->proto = r->tv_byte[0];
	v->tos = r->tv_byte[1];
	v->tcp_flags = r->tv_byte[2];
	v->ipver = r->tv_byte[3];
	v->src_mask = r->tv_byte[4];
	v->dst_mask = r->tv_byte[5];
	v->end_reason = r->tv_byte[6];
	for (int c = 0; c < STORE_NCOLS; c++) {
		if (!(mask & STORE_COLBIT(c)))
			continue;
		void *arr = store_cols_array(v, c);
		switch (tuple_dict_col(r, c, d)) {
		case 1:
			for (uint32_t j = 0; j < nd; j++)
				((uint8_t *)arr)[j] = (uint8_t)d[j];
			break;
		case 2:
			for (uint32_t j = 0; j < nd; j++)
				((uint16_t *)arr)[j] = (uint16_t)d[j];
			break;
		default:
			memcpy(arr, d, (size_t)nd * sizeof(*d));
			break;
		}
	}
	v->mask = mask;
}

static int rd_load(struct store_reader *r)
{
	ssize_t n;

	if (r->cur_loaded)
		return 0;
	if (grow((void **)&r->pay, &r->pay_cap, (size_t)r->b.plen + SLACK, 1) < 0)
		return -ENOMEM;
	n = rd_pread(r, r->pay, r->b.plen, r->cur_off + r->b.hdr_len);
	if (n < 0)
		return (int)n;
	if ((size_t)n != r->b.plen)
		return -EIO;            /* the file shrank under us */
	memset(r->pay + r->b.plen, 0, SLACK);
	if (r->verify && store_payload_hash(r->hdr.phash, r->pay, r->b.plen) != r->b.phash)
		return -EBADMSG;
	r->cur_loaded = 1;
	return 0;
}

/* Address column c (SRC, DST) of n values as dictionary codes: returns 1 with them in
 * codes and dict (*nd entries), 0 when the block codes it otherwise, or -errno. A column
 * left out is all zeros: one entry. */
static int dec_codes(struct store_reader *r, int c, uint32_t n, uint64_t *codes,
		     uint8_t (*dict)[16], uint32_t *nd, struct store_packed *pk)
{
	const struct rd_col *rc = &r->b.col[c];
	struct cur cu;
	int err;

	if (!rc->present) {
		static const uint8_t zero[16];
		dict_of_one(zero, n, codes, dict, nd);
		return 1;
	}
	if (rc->enc != ENC_CONST && rc->enc != ENC_ADDR_DICT && rc->enc != ENC_ADDR_DICT2)
		return 0;
	/* packed codes point into the chunk: an inflated one keeps a buffer of its own */
	if ((err = pk ? chunk_cur_in(r, c, &cu, &r->craw[c == STORE_COL_DST],
				     &r->craw_cap[c == STORE_COL_DST])
		      : chunk_cur(r, c, &cu)) < 0)
		return err;
	err = dec_addr_dict(r, &cu, n, rc, codes, dict, nd, pk);
	return err > 0 && cur_left(&cu) ? -EPROTO : err;
}

/* The address columns of want as codes (out->codes says which came so); with mirrored
 * records (mref decoded, m kept) both come or neither, in one code space: src's
 * dictionary, then dst's. */
static int dec_addr_codes(struct store_reader *r, uint32_t want, int mirrored, uint32_t m,
			  int pack, struct store_cols *out)
{
	uint32_t n = r->b.nrec;
	int got, err;

	out->codes = 0;
	out->code[0] = r->cd[0];
	out->code[1] = r->cd[1];
	if (mirrored) {
		uint32_t na, nb;
		if ((got = dec_codes(r, STORE_COL_SRC, m, r->t0, r->cdict, &na, NULL)) <= 0)
			return got;
		if ((got = dec_codes(r, STORE_COL_DST, m, r->t2, r->cdict + na, &nb, NULL)) <= 0)
			return got;
		for (uint32_t i = 0; i < m; i++)
			r->t2[i] += na;
		if ((err = mirror_expand(r->mref, n, m, r->cd[0], r->cd[1], r->t0, r->t2, 8)) < 0)
			return err;
		out->dict[0] = out->dict[1] = (const uint8_t (*)[16])r->cdict;
		out->nd[0] = out->nd[1] = na + nb;
		out->codes = want;
	} else {
		for (int k = 0; k < 2; k++) {
			int c = k ? STORE_COL_DST : STORE_COL_SRC;
			if (!(want & STORE_COLBIT(c)))
				continue;
			if ((got = dec_codes(r, c, n, r->cd[k], r->cdict + (size_t)k * n,
					     &out->nd[k], pack ? &out->cpk[k] : NULL)) < 0)
				return got;
			if (got) {
				out->dict[k] = (const uint8_t (*)[16])(r->cdict + (size_t)k * n);
				out->codes |= STORE_COLBIT(c);
			}
			if (got == 2)
				out->code[k] = NULL;
			out->cbuf[k] = r->cd[k];
		}
	}
	return 0;
}

int store_reader_decode(struct store_reader *r, uint32_t mask, struct store_cols *out)
{
	return store_reader_decode_codes(r, mask, 0, out);
}

/* Port column c (SPORT, DPORT) as its codes into out, if the block codes it as frequent
 * values and exceptions (HPDICT): returns 1, 0 when it codes it otherwise, or -errno. */
static int dec_port_codes(struct store_reader *r, int c, struct store_cols *out)
{
	const struct rd_col *rc = &r->b.col[c];
	const int k = c == STORE_COL_DPORT;
	const uint32_t n = r->b.nrec;
	uint32_t nf, ne;
	uint64_t zeros = 0;
	struct cur cu;
	int err;

	if (!rc->present || rc->enc != ENC_HPDICT || rc->xform != XF_NONE)
		return 0;
	if ((err = chunk_cur(r, c, &cu)) < 0 ||
	    (err = get_hpdict(r, &cu, n, r->pcd[k], &nf, &ne)) < 0)
		return err;
	if (cur_left(&cu))
		return -EPROTO;
	/* as pdict_map() checks them; codes are below 2^63, so only 0 - 1 has the top bit
	 * (a form SSE2 vectorizes) */
	for (uint32_t i = 0; i < n; i++)
		zeros += (r->pcd[k][i] - 1) >> 63;
	if (zeros != ne)
		return -EPROTO;
	for (uint32_t i = 0; i < nf; i++)
		r->pdv[k][i] = (uint16_t)r->dv[i];
	uint16_t lo = UINT16_MAX, hi = 0;
	for (uint32_t i = 0; i < ne; i++) {
		uint16_t x = (uint16_t)r->t2[i];
		r->pex[k][i] = x;
		lo = x < lo ? x : lo;
		hi = x > hi ? x : hi;
	}
	out->pemin[k] = ne ? lo : 1;
	out->pemax[k] = ne ? hi : 0;
	out->pcodes |= STORE_COLBIT(c);
	out->pcode[k] = r->pcd[k];
	out->pdict[k] = r->pdv[k];
	out->pexc[k] = r->pex[k];
	out->pnf[k] = nf;
	out->pne[k] = ne;
	out->pval[k] = r->pvl[k];
	return 1;
}

/* The tuple index column into r->tidx, each checked below r->tnd. Plain FOR of a
 * tuple index's width (the way writers store it) unpacks straight into 32 bits, and
 * needs no check when no value of that width can reach past the dictionary; then,
 * with pk, it is not unpacked at all but handed out as *pk: returns 1. */
static int dec_tidx(struct store_reader *r, struct store_packed *pk)
{
	const struct rd_col *rc = &r->b.col[COL_TIDX];
	uint32_t n = r->b.nrec, nd = r->tnd, oob = 0;
	struct store_packed v;
	int err, fast = 0;

	if (rc->present && rc->enc == ENC_FOR && rc->xform == XF_NONE) {
		struct cur cu;
		/* a packed view points into the chunk: inflated, it keeps a buffer of its own */
		if ((err = pk ? chunk_cur_in(r, COL_TIDX, &cu, &r->traw, &r->traw_cap)
			      : chunk_cur(r, COL_TIDX, &cu)) < 0 ||
		    (err = packed_view(&cu, n, UINT64_MAX, &v)) < 0)
			return err;
		fast = err && v.w <= 12 && v.base < nd && !cur_left(&cu);
	}
	if (fast) {
		if (pk && v.base + v.mask < nd) {
			*pk = v;
			return 1;
		}
		unpack_bits32(v.p, n, v.w, v.base, r->tidx);
		if (v.base + v.mask < nd)
			return 0;
	} else if ((err = dec_chunk(r, COL_TIDX, r->tidx, n, NULL)) < 0) {
		return err;
	}
	for (uint32_t i = 0; i < n; i++)
		oob |= r->tidx[i] >= nd;
	return oob ? -EPROTO : 0;
}

#define PACKABLE (STORE_COLBIT(STORE_COL_PACKETS) | STORE_COLBIT(STORE_COL_BYTES) | \
		  STORE_COLBIT(STORE_COL_FIRST) | STORE_COLBIT(STORE_COL_LAST))
#define PACK_HOST (__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__) /* store_packed_get's loads */

/* Column c (PACKETS .. LAST) as a packed view into the payload when the block stores it
 * as plain FOR bits (no transform but, with ld, LASTDIFF; not compressed; a width
 * store_packed_get reads): 1, 0 when coded otherwise (nothing read), or -EPROTO. */
static int dec_packed(struct store_reader *r, int c, int ld, struct store_cols *out)
{
	const struct rd_col *rc = &r->b.col[c];
	struct cur cu;
	int err;

	if (!rc->present || rc->enc != ENC_FOR || rc->codec != STORE_CODEC_NONE ||
	    (rc->xform != XF_NONE && !(ld && rc->xform == XF_LASTDIFF)))
		return 0;
	cu = cur_make(r->pay + rc->off, rc->disk_len);
	if ((err = packed_view(&cu, r->b.nrec, UINT64_MAX, &out->pk[c - STORE_COL_PACKETS])) <= 0)
		return err;
	if (cur_left(&cu))
		return -EPROTO;
	out->packed |= STORE_COLBIT(c);
	return 1;
}

/* An array of native u64 as a packed view (little-endian hosts: see store_packed_get). */
static struct store_packed array_view(const uint64_t *a)
{
	return (struct store_packed){ (const uint8_t *)a, 0, ~0ULL, 64 };
}

void store_cols_packed_view(const struct store_cols *c, int col, struct store_packed *v)
{
	*v = c->packed & STORE_COLBIT(col) ? c->pk[col - STORE_COL_PACKETS]
					   : array_view(store_cols_array(c, col));
}

void store_cols_code_view(const struct store_cols *c, int k, struct store_packed *v)
{
	*v = c->code[k] ? array_view(c->code[k]) : c->cpk[k];
}

int store_cols_unpack(struct store_cols *c)
{
	for (int col = STORE_COL_PACKETS; col <= STORE_COL_LAST; col++) {
		const struct store_packed *v = &c->pk[col - STORE_COL_PACKETS];
		if (c->packed & STORE_COLBIT(col))
			unpack_bits(v->p, c->n, v->w, v->base, store_cols_array(c, col));
	}
	if (c->lastdiff)
		undo_lastdiff(c->first_ms, c->last_ms, c->n);
	c->mask |= c->packed;
	c->packed = 0;
	c->lastdiff = 0;
	for (int k = 0; k < 2; k++) {
		const struct store_packed *v = &c->cpk[k];
		if (c->code[k] || !(c->codes & STORE_COLBIT(k ? STORE_COL_DST : STORE_COL_SRC)))
			continue;
		unpack_bits(v->p, c->n, v->w, v->base, c->cbuf[k]);
		if (codes_past(c->cbuf[k], c->n, c->nd[k])) {
			c->codes = 0;
			return -EPROTO;
		}
		c->code[k] = c->cbuf[k];
	}
	return 0;
}

int store_reader_decode_codes(struct store_reader *r, uint32_t mask, uint32_t codes,
			      struct store_cols *out)
{
	int err;

	if (!r->cur)
		return -EINVAL;
	if (r->cur_err)
		return r->cur_err;
	err = rd_load(r);
	if (err == -ENOMEM)
		return err;
	if (err < 0)
		goto bad;
	mask &= STORE_COLS_ALL;
	if ((mask & STORE_COLBIT(STORE_COL_FIRST)) && r->b.col[STORE_COL_FIRST].present &&
	    r->b.col[STORE_COL_FIRST].xform == XF_LASTDIFF)
		mask |= STORE_COLBIT(STORE_COL_LAST);
	const uint32_t addrs = STORE_COLBIT(STORE_COL_SRC) | STORE_COLBIT(STORE_COL_DST);
	const uint32_t ports = STORE_COLBIT(STORE_COL_SPORT) | STORE_COLBIT(STORE_COL_DPORT);
	uint32_t m = r->b.nrec, mirrored = 0;
	if (r->b.col[COL_MIRROR].present && (mask & (addrs | ports))) {
		/* a mirrored record's src comes from another's dst: decode the pairs whole */
		mirrored = (mask & addrs ? addrs : 0) | (mask & ports ? ports : 0);
		mask |= mirrored;
	}
	uint32_t tcodes = codes & mask & TUPLE_MEMBERS;
	uint32_t pcodes = codes & mask & ports & ~mirrored;
	uint32_t packs = PACK_HOST ? codes & mask & PACKABLE : 0;
	int pack_codes = !!(codes & STORE_CODES_PACKED);
	codes &= mask & addrs;
	if (store_cols_reserve(out, r->b.nrec, mask) < 0 || rd_scratch(r, r->b.nrec) < 0)
		return -ENOMEM;
	out->n = 0;
	out->mask = 0;
	out->codes = 0;
	out->tuple = 0;
	out->pcodes = 0;
	out->packed = 0;
	out->lastdiff = 0;
	if (mirrored) {
		if ((err = dec_chunk(r, COL_MIRROR, r->mref, r->b.nrec, NULL)) < 0)
			goto bad;
		m = 0;
		for (uint32_t i = 0; i < r->b.nrec; i++)
			m += !r->mref[i];
		/* codes for both or neither (they come in one code space) */
		if (codes && !(mask & addrs & ~codes) &&
		    (err = dec_addr_codes(r, addrs, 1, m, 0, out)) < 0)
			goto bad;
		if ((mirrored & addrs && !out->codes &&
		     (err = dec_mirrored(r, STORE_COL_SRC, STORE_COL_DST, m, out)) < 0) ||
		    (mirrored & ports &&
		     (err = dec_mirrored(r, STORE_COL_SPORT, STORE_COL_DPORT, m, out)) < 0))
			goto bad;
	}
	uint32_t joint;
	if ((err = dec_bitlen_cols(r, mask & ~mirrored, out, &joint)) < 0)
		goto bad;
	/* LAST before FIRST's LASTDIFF: FIRST may be coded against it. With LAST packed,
	 * FIRST is left as the difference (out->lastdiff), packed or not. */
	const struct rd_col *fc = &r->b.col[STORE_COL_FIRST];
	int first_ld = (mask & STORE_COLBIT(STORE_COL_FIRST)) && fc->present &&
		       fc->xform == XF_LASTDIFF;
	if (mask & STORE_COLBIT(STORE_COL_LAST) && !(joint & STORE_COLBIT(STORE_COL_LAST))) {
		int got = 0;
		if ((packs & STORE_COLBIT(STORE_COL_LAST)) &&
		    (got = dec_packed(r, STORE_COL_LAST, 0, out)) < 0) {
			err = got;
			goto bad;
		}
		if (!got && (err = dec_col(r, STORE_COL_LAST, out)) < 0)
			goto bad;
	}
	out->lastdiff = first_ld && (out->packed & STORE_COLBIT(STORE_COL_LAST));
	if ((joint & STORE_COLBIT(STORE_COL_FIRST)) && first_ld && !out->lastdiff)
		undo_lastdiff(out->first_ms, out->last_ms, r->b.nrec);
	uint32_t tuple = r->b.col[COL_TDICT].present ? mask & TUPLE_MEMBERS : 0;
	if (tuple) {
		/* the indices packed where no member is wanted as values (tuple_expand) */
		int tp = PACK_HOST && !(tuple & ~tcodes);
		if ((err = dec_chunk(r, COL_TDICT, NULL, r->b.nrec, NULL)) < 0 ||
		    (err = dec_tidx(r, tp ? &out->tpk : NULL)) < 0)
			goto bad;
		tp = err == 1;
		for (int c = 0; c < STORE_NCOLS; c++)
			if ((tuple & ~tcodes & STORE_COLBIT(c)))
				tuple_expand(r, c, store_cols_array(out, c), r->b.nrec);
		if (tuple & tcodes) {
			tuple_view(r, tuple & tcodes);
			out->tuple = tuple & tcodes;
			out->tidx = tp ? NULL : r->tidx;
			out->tdict = &r->tview;
		}
	}
	if (codes && !mirrored &&
	    (err = dec_addr_codes(r, codes, 0, 0, PACK_HOST && pack_codes, out)) < 0)
		goto bad;
	for (int c = STORE_COL_SPORT; c <= STORE_COL_DPORT; c++)
		if ((pcodes & STORE_COLBIT(c)) && (err = dec_port_codes(r, c, out)) < 0)
			goto bad;
	for (int c = 0; c < STORE_NCOLS; c++) {
		if (c == STORE_COL_LAST || !(mask & STORE_COLBIT(c)) ||
		    ((mirrored | tuple | joint | out->codes | out->pcodes) & STORE_COLBIT(c)))
			continue;
		int ld = c == STORE_COL_FIRST && out->lastdiff;
		if ((packs & STORE_COLBIT(c)) && (err = dec_packed(r, c, ld, out)) != 0) {
			if (err < 0)
				goto bad;
			continue;
		}
		err = ld ? dec_chunk(r, c, out->first_ms, r->b.nrec, NULL) : dec_col(r, c, out);
		if (err < 0)
			goto bad;
	}
	out->n = r->b.nrec;
	out->mask = mask & ~out->codes & ~out->tuple & ~out->pcodes & ~out->packed;
	return 0;
bad:
	out->codes = 0;
	out->tuple = 0;
	out->pcodes = 0;
	out->packed = 0;
	out->lastdiff = 0;
	if (err == -ENOMEM)
		return err;
	r->cur_err = err;
	rd_count_bad(r, err);
	return err;
}

/* A reader's state of its file (everything before its buffers) as before any file. */
static void rd_file_reset(struct store_reader *r)
{
	memset(r, 0, offsetof(struct store_reader, pay));
	r->fd = -1;
	r->verify = 1;
	r->limit = UINT64_MAX;
}

static struct store_reader *rd_alloc(void)
{
	struct store_reader *r = calloc(1, sizeof(*r));

	if (!r)
		return NULL;
	rd_file_reset(r);
	r->zd = ZSTD_createDCtx();
	if (!r->zd) {
		free(r);
		return NULL;
	}
	return r;
}

/* Reads and checks the file header; 0, or -errno as store_reader_open() documents. */
static int rd_start(struct store_reader *r)
{
	uint8_t h[STORE_FILE_HDR_LEN];
	ssize_t n = rd_pread(r, h, sizeof(h), 0);

	if (n < 0)
		return (int)n;
	rd_size(r);
	r->off = STORE_FILE_HDR_LEN;
	if (n < STORE_FILE_HDR_LEN) {
		/* a file being created: fine if what is there starts like a header */
		if (memcmp(h, FILE_MAGIC, n < 4 ? (size_t)n : 4))
			return -EILSEQ;
		r->st.tail_bytes = (uint64_t)n;
		r->done = 1;
		return 0;
	}
	if (memcmp(h, FILE_MAGIC, 4))
		return -EILSEQ;
	if (ld_be32(h + 4) == 0x01020304)
		return -ENOTSUP;
	if (ld_le32(h + 4) != 0x01020304)
		return -EILSEQ;
	if (r->verify && store_hash32(h, 60, 0) != ld_le32(h + 60))
		return -EBADMSG;
	r->hdr.version = ld_le16(h + 8);
	if (r->hdr.version < 1 || r->hdr.version > STORE_VERSION)
		return -ENOTSUP;
	if (ld_le16(h + 10) != STORE_FILE_HDR_LEN)
		return -EPROTO;
	r->hdr.interval_s = ld_le32(h + 12);
	r->hdr.start_ms = ld_le64(h + 16);
	r->hdr.created_ms = ld_le64(h + 24);
	r->hdr.block_recs = ld_le32(h + 32);
	r->hdr.codec = h[36];
	r->hdr.phash = r->hdr.version < 3 ? STORE_PHASH_XXH32 : h[37];
	if (r->hdr.phash != STORE_PHASH_XXH32 && r->hdr.phash != STORE_PHASH_XXH3)
		return -ENOTSUP;        /* a hash of a later writer */
	return 0;
}

/* spare, done with its file, ready for another: what a reader learnt of its file goes,
 * its buffers stay. */
static struct store_reader *rd_reuse(struct store_reader *r)
{
	if (r->own_fd && r->fd >= 0)
		close(r->fd);
	rd_file_reset(r);
	return r;
}

static struct store_reader *rd_new_fd(int fd, int own, struct store_reader *spare)
{
	struct store_reader *r = spare ? rd_reuse(spare) : rd_alloc();
	int rc;

	if (!r) {
		errno = ENOMEM;
		return NULL;
	}
	r->fd = fd;
	r->own_fd = own;
	rc = rd_start(r);
	if (rc < 0) {
		store_reader_close(r);
		errno = -rc;
		return NULL;
	}
	return r;
}

struct store_reader *store_reader_reopen(struct store_reader *spare, const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0) {
		int e = errno;
		store_reader_close(spare);
		errno = e;
		return NULL;
	}
	return rd_new_fd(fd, 1, spare);
}

struct store_reader *store_reader_reopen_fd(struct store_reader *spare, int fd)
{
	return rd_new_fd(fd, 0, spare);
}

struct store_reader *store_reader_open(const char *path)
{
	return store_reader_reopen(NULL, path);
}

struct store_reader *store_reader_open_fd(int fd)
{
	return rd_new_fd(fd, 0, NULL);
}

struct store_reader *store_reader_open_mem(const uint8_t *buf, size_t len)
{
	struct store_reader *r = rd_alloc();
	int rc;

	if (!r) {
		errno = ENOMEM;
		return NULL;
	}
	r->mem = buf;
	r->mem_len = len;
	rc = rd_start(r);
	if (rc < 0) {
		store_reader_close(r);
		errno = -rc;
		return NULL;
	}
	return r;
}

void store_reader_close(struct store_reader *r)
{
	if (!r)
		return;
	if (r->own_fd && r->fd >= 0)
		close(r->fd);
	free(r->pay);
	free(r->raw);
	free(r->craw[0]);
	free(r->craw[1]);
	free(r->traw);
	rd_free_scratch(r);
	ZSTD_freeDCtx(r->zd);
	free(r);
}

void store_reader_set_verify(struct store_reader *r, int verify)
{
	r->verify = verify;
}

void store_reader_set_limit(struct store_reader *r, uint64_t len)
{
	r->limit = len;
	if (r->size > len)
		r->size = len;
}

const struct store_file_hdr *store_reader_hdr(const struct store_reader *r)
{
	return &r->hdr;
}

const struct store_read_stats *store_reader_stats(const struct store_reader *r)
{
	return &r->st;
}

int store_reader_file_zone(struct store_reader *r, struct store_zone *z)
{
	uint8_t f[FOOTER_LEN];
	uint64_t size = rd_size(r);
	struct blkhdr b;
	ssize_t n;

	if (size < STORE_FILE_HDR_LEN + FOOTER_LEN)
		return 0;
	n = rd_pread(r, f, sizeof(f), size - FOOTER_LEN);
	if (n < 0)
		return (int)n;
	if ((size_t)n < sizeof(f) || parse_blkhdr(f, (size_t)n, r->verify, &b) <= 0 ||
	    b.kind != BLK_FOOTER || ld_le64(f + STORE_BLK_HDR_MIN + 8) != size - FOOTER_LEN ||
	    (r->verify && store_hash32(f + STORE_BLK_HDR_MIN, FOOTER_PAYLOAD, 0) != b.phash))
		return 0;
	*z = b.zone;
	return 1;
}

/* For a writer taking a file over: end of the last complete block whose payload checks
 * out, with zone and counts of the blocks before it. */
static int rd_recover(struct store_reader *r, uint64_t *end, struct store_zone *z,
		      uint64_t *nblocks, uint64_t *nrecs)
{
	struct store_block_info bi;
	struct store_zone prev;
	int rc;

	*end = STORE_FILE_HDR_LEN;
	zone_empty(z);
	*nblocks = *nrecs = 0;
	while ((rc = store_reader_next(r, &bi)) > 0) {
		prev = *z;
		zone_merge(z, &bi.zone);
		++*nblocks;
		*nrecs += bi.nrec;
		*end = bi.off + bi.disk_bytes;
	}
	if (rc < 0 || !*nblocks)
		return rc;
	/* The last block is the one a crash may have torn (size extended, data not all
	 * there): read it again and check its payload. */
	r->off = bi.off;
	r->done = 0;
	if (store_reader_next(r, &bi) != 1 || (rc = rd_load(r)) == -EBADMSG || rc == -EIO) {
		*z = prev;
		--*nblocks;
		*nrecs -= bi.nrec;
		*end = bi.off;
	} else if (rc < 0) {
		return rc;
	}
	return 0;
}

const char *store_strerror(int err)
{
	switch (err < 0 ? -err : err) {
	case EILSEQ: return "not a tapflow store file";
	case ENOTSUP: return "unsupported store version (a later tapflow's), hash or byte order";
	case EBADMSG: return "checksum mismatch";
	case EPROTO: return "malformed store data";
	case EIO: return "decompression failed or short read";
	default: return strerror(err < 0 ? -err : err);
	}
}

/* ---- listing, retention ---- */

static int all_digits(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (s[i] < '0' || s[i] > '9')
			return 0;
	return s[n] == '\0';
}

static unsigned num(const char *s, size_t n)
{
	unsigned v = 0;
	for (size_t i = 0; i < n; i++)
		v = v * 10 + (unsigned)(s[i] - '0');
	return v;
}

/* "tf-YYYYMMDDhhmm.tfs" -> interval start in Unix ms. */
static int parse_name(const char *name, uint64_t *ms)
{
	if (strncmp(name, "tf-", 3) || strlen(name) != 19 || strcmp(name + 15, ".tfs"))
		return -1;
	for (int i = 3; i < 15; i++)
		if (name[i] < '0' || name[i] > '9')
			return -1;
	unsigned y = num(name + 3, 4), mo = num(name + 7, 2), d = num(name + 9, 2),
		 h = num(name + 11, 2), mi = num(name + 13, 2);
	if (y < 1970 || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59)
		return -1;
	*ms = ((uint64_t)days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60) * 1000;
	return 0;
}

static char *join(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	char *p = malloc(la + lb + 2);
	if (!p)
		return NULL;
	memcpy(p, a, la);
	p[la] = '/';
	memcpy(p + la + 1, b, lb + 1);
	return p;
}

static int list_add(struct store_list *l, size_t *cap, char *path, uint64_t ms)
{
	if (l->n == *cap) {
		size_t nc = *cap ? *cap * 2 : 64;
		struct store_file *v = realloc(l->v, nc * sizeof(*v));
		if (!v)
			return -ENOMEM;
		l->v = v;
		*cap = nc;
	}
	l->v[l->n].path = path;
	l->v[l->n].start_ms = ms;
	l->n++;
	return 0;
}

/* Walks dir/YYYY/MM/DD (depth 0..2) collecting store files. */
static int walk(const char *dir, int depth, struct store_list *l, size_t *cap)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int rc = 0;

	if (!d)
		return depth == 0 ? -errno : 0;
	while (rc == 0 && (e = readdir(d))) {
		uint64_t ms;
		char *p;
		if (depth < 3) {
			if (!all_digits(e->d_name, dir_digits[depth]))
				continue;
			if (!(p = join(dir, e->d_name)))
				rc = -ENOMEM;
			else
				rc = walk(p, depth + 1, l, cap);
			free(p);
			continue;
		}
		if (parse_name(e->d_name, &ms) < 0)
			continue;
		if (!(p = join(dir, e->d_name)) || (rc = list_add(l, cap, p, ms)) < 0) {
			free(p);
			rc = -ENOMEM;
		}
	}
	closedir(d);
	return rc;
}

static int file_cmp(const void *a, const void *b)
{
	const struct store_file *x = a, *y = b;
	if (x->start_ms != y->start_ms)
		return x->start_ms < y->start_ms ? -1 : 1;
	return strcmp(x->path, y->path);
}

void store_list_sort(struct store_list *l)
{
	if (l->n)
		qsort(l->v, l->n, sizeof(*l->v), file_cmp);
}

int store_list_files(const char *dir, struct store_list *out)
{
	size_t cap = 0;
	int rc;

	out->v = NULL;
	out->n = 0;
	rc = walk(dir, 0, out, &cap);
	if (rc < 0) {
		store_list_free(out);
		return rc;
	}
	if (out->n)
		qsort(out->v, out->n, sizeof(*out->v), file_cmp);
	return 0;
}

void store_list_free(struct store_list *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i].path);
	free(l->v);
	l->v = NULL;
	l->n = 0;
}

int store_check(const char *path)
{
	struct stat sb;
	struct dirent *e;
	DIR *d;
	int entries = 0, store = 0;

	if (stat(path, &sb) < 0)
		return -errno;
	if (S_ISREG(sb.st_mode)) {
		struct store_reader *r = store_reader_open(path);
		if (!r)
			return -errno;
		store_reader_close(r);
		return 0;
	}
	if (!S_ISDIR(sb.st_mode))
		return -EILSEQ;
	if (!(d = opendir(path)))
		return -errno;
	while ((e = readdir(d))) {
		uint64_t ms;
		if (e->d_name[0] == '.')
			continue;
		entries++;
		if (all_digits(e->d_name, 4) || parse_name(e->d_name, &ms) == 0)
			store = 1;
	}
	closedir(d);
	return store || !entries ? 0 : -EILSEQ;
}

/* rmdir the file's day, month and year directories while they are empty. */
static uint64_t rm_empty_parents(const char *file, const char *root)
{
	char *p = strdup(file);
	uint64_t n = 0;

	if (!p)
		return 0;
	for (int i = 0; i < 3; i++) {
		char *s = strrchr(p, '/');
		if (!s || (size_t)(s - p) <= strlen(root))
			break;
		*s = '\0';
		if (rmdir(p) < 0)
			break;
		n++;
	}
	free(p);
	return n;
}

static uint64_t file_interval_ms(const char *path)
{
	struct store_reader *r = store_reader_open(path);
	uint64_t ms = 0;

	if (r) {
		ms = (uint64_t)store_reader_hdr(r)->interval_s * 1000;
		store_reader_close(r);
	}
	return ms;
}

int store_retention(const char *dir, uint64_t max_age_secs, uint64_t max_total_bytes,
		    uint64_t now_ms, struct store_retention_result *res)
{
	struct store_retention_result dummy;
	struct store_list l;
	uint64_t *size, total = 0, cutoff = 0;
	int rc;

	if (!res)
		res = &dummy;
	memset(res, 0, sizeof(*res));
	rc = store_list_files(dir, &l);
	if (rc < 0)
		return rc;
	size = calloc(l.n ? l.n : 1, sizeof(*size));
	if (!size) {
		store_list_free(&l);
		return -ENOMEM;
	}
	for (size_t i = 0; i < l.n; i++) {
		struct stat sb;
		if (stat(l.v[i].path, &sb) == 0)
			size[i] = (uint64_t)sb.st_size;
		total += size[i];
	}
	if (max_age_secs && now_ms / 1000 > max_age_secs)
		cutoff = now_ms - max_age_secs * 1000;
	for (size_t i = 0; i < l.n; i++) {
		const struct store_file *f = &l.v[i];
		int old = cutoff && f->start_ms < cutoff &&
			  f->start_ms + file_interval_ms(f->path) <= cutoff;
		int big = max_total_bytes && total > max_total_bytes;
		if (!old && !big)
			break;
		int fd = open(f->path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue;
		/* a writer's lock means the file is open: leave it */
		if (flock(fd, LOCK_EX | LOCK_NB) == 0 && unlink(f->path) == 0) {
			res->files++;
			res->bytes += size[i];
			total -= size[i];
			size[i] = 0;
			res->dirs += rm_empty_parents(f->path, dir);
		}
		close(fd);
	}
	for (size_t i = 0; i < l.n; i++) {
		if (size[i]) {
			res->kept_files++;
			res->kept_bytes += size[i];
		}
	}
	free(size);
	store_list_free(&l);
	return 0;
}

/* ---- scanning ---- */

static void scan_warn(const struct store_scan_opts *o, const char *path, int err,
		      const char *what)
{
	if (o->warn)
		o->warn(path, err, what, o->warn_arg);
}

/* *spare: the reader of the file before, reused (see store_reader_reopen), and the one
 * of this file after. */
static int scan_file(const char *path, const struct store_scan_opts *o, struct store_cols *cols,
		     struct store_scan_stats *st, struct store_reader **spare)
{
	struct store_reader *r = store_reader_reopen(*spare, path);
	struct store_block_info bi;
	struct store_zone z;
	int rc, stop = 0;

	*spare = r;
	if (!r) {
		st->bad_files++;
		scan_warn(o, path, -errno, "file skipped");
		return 0;
	}
	if (o->win && store_reader_file_zone(r, &z) == 1 && !store_zone_overlaps(&z, o->win)) {
		st->files_skipped++;
		return 0;
	}
	st->files++;
	while ((rc = store_reader_next(r, &bi)) > 0) {
		if (o->win && !store_zone_overlaps(&bi.zone, o->win)) {
			st->blocks_skipped++;
			continue;
		}
		rc = store_reader_decode(r, o->mask, cols);
		if (rc == -ENOMEM) {
			stop = rc;
			break;
		}
		if (rc < 0)
			continue;
		st->blocks++;
		if ((stop = o->block(cols, &bi, o->arg)) != 0)
			break;
	}
	if (rc < 0 && !stop)
		scan_warn(o, path, rc, "read error");
	const struct store_read_stats *rs = store_reader_stats(r);
	if (rs->bad_blocks) {
		char what[64];
		snprintf(what, sizeof(what), "%llu damaged block(s) skipped",
			 (unsigned long long)rs->bad_blocks);
		scan_warn(o, path, rs->bad_hash ? -EBADMSG : rs->bad_inflate ? -EIO : -EPROTO, what);
	}
	st->bad_blocks += rs->bad_blocks;
	st->tail_bytes += rs->tail_bytes;
	return stop;
}

int store_scan(const char *path, const struct store_scan_opts *o, struct store_scan_stats *st)
{
	struct store_scan_stats dummy;
	struct store_list l;
	struct store_cols cols;
	struct store_reader *r = NULL;
	struct stat sb;
	int rc = 0;

	if (!st)
		st = &dummy;
	memset(st, 0, sizeof(*st));
	if (stat(path, &sb) < 0)
		return -errno;
	store_cols_init(&cols);
	if (S_ISREG(sb.st_mode)) {
		rc = scan_file(path, o, &cols, st, &r);
	} else {
		rc = store_list_files(path, &l);
		if (rc < 0)
			return rc;
		for (size_t i = 0; i < l.n && rc == 0; i++)
			rc = scan_file(l.v[i].path, o, &cols, st, &r);
		store_list_free(&l);
	}
	store_reader_close(r);
	store_cols_free(&cols);
	return rc;
}

struct sum_ctx {
	struct store_summary *s;
	const struct store_window *win;
};

static int sum_block(const struct store_cols *c, const struct store_block_info *bi, void *arg)
{
	struct sum_ctx *x = arg;
	struct store_summary *s = x->s;
	uint64_t flows = 0, pk = 0, by = 0, first = UINT64_MAX, last = 0;

	(void)bi;
	for (uint32_t i = 0; i < c->n; i++) {
		if (x->win && (c->first_ms[i] > x->win->to_ms || c->last_ms[i] < x->win->from_ms))
			continue;
		flows++;
		pk += c->packets[i];
		by += c->bytes[i];
		if (c->first_ms[i] < first)
			first = c->first_ms[i];
		if (c->last_ms[i] > last)
			last = c->last_ms[i];
	}
	if (flows) {
		if (!s->flows || first < s->first_ms)
			s->first_ms = first;
		if (last > s->last_ms)
			s->last_ms = last;
	}
	s->flows += flows;
	s->packets += pk;
	s->bytes += by;
	return 0;
}

int store_summary(const char *path, const struct store_window *win,
		  void (*warn)(const char *path, int err, const char *what, void *arg),
		  void *arg, struct store_summary *s)
{
	struct sum_ctx x = { s, win };
	struct store_scan_opts o = {
		.win = win,
		.mask = STORE_COLBIT(STORE_COL_PACKETS) | STORE_COLBIT(STORE_COL_BYTES) |
			STORE_COLBIT(STORE_COL_FIRST) | STORE_COLBIT(STORE_COL_LAST),
		.block = sum_block,
		.arg = &x,
		.warn = warn,
		.warn_arg = arg,
	};

	memset(s, 0, sizeof(*s));
	return store_scan(path, &o, &s->scan);
}
