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

#include "bytes.h"
#include "store.h"

#define FILE_MAGIC "TFST"
#define BLK_MAGIC "TFB1"
#define BLK_DATA 1
#define BLK_FOOTER 2
#define BLK_FIXED 124                   /* header bytes before the directory */
#define DIRENT_LEN 12
#define COL_MIRROR STORE_NCOLS          /* internal column: mirror references */
#define NCOLS_ALL (STORE_NCOLS + 1)
#define MIRROR_MAX 255                  /* how far back a mirror reference reaches */
#define MIRROR_TAB_BITS 14
#define MIRROR_TAB (1u << MIRROR_TAB_BITS)
#define BLK_HDR_MAX (BLK_FIXED + DIRENT_LEN * NCOLS_ALL + 4)
#define FOOTER_PAYLOAD 16
#define FOOTER_LEN (STORE_BLK_HDR_MIN + FOOTER_PAYLOAD)
#define SLACK 16            /* readable bytes past any column chunk (bit unpacking) */
#define MIN_COMPRESS 64     /* smaller chunks are stored as they are */
#define DICT_SAMPLE 4096    /* a dictionary attempt gives up if 3/4 of a sample differ */
#define VARINT_UNDONE ((size_t)1 << (sizeof(size_t) * 8 - 1))  /* write_pick() fell back */

enum { ENC_CONST = 1, ENC_FOR, ENC_DICT, ENC_VARINT, ENC_ADDR_RAW, ENC_ADDR_DICT, ENC_PDICT };
enum { XF_NONE = 0, XF_DELTA, XF_LASTDIFF };
enum { K_ADDR, K_INT };

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
	uint8_t varint;     /* LEB128 worth trying (skewed 64-bit counters, times) */
};

static const struct colinfo colinfo[NCOLS_ALL] = {
	[STORE_COL_SRC] = { K_ADDR, 16, 0, 0 },
	[STORE_COL_DST] = { K_ADDR, 16, 0, 0 },
	[STORE_COL_NEXTHOP] = { K_ADDR, 16, 0, 0 },
	[STORE_COL_EXPORTER] = { K_ADDR, 16, 0, 0 },
	[STORE_COL_PACKETS] = { K_INT, 8, 0, 1 },
	[STORE_COL_BYTES] = { K_INT, 8, 0, 1 },
	[STORE_COL_FIRST] = { K_INT, 8, 1 << XF_DELTA | 1 << XF_LASTDIFF, 1 },
	[STORE_COL_LAST] = { K_INT, 8, 1 << XF_DELTA, 1 },
	[STORE_COL_IN_IF] = { K_INT, 4, 0, 0 },
	[STORE_COL_OUT_IF] = { K_INT, 4, 0, 0 },
	[STORE_COL_SRC_AS] = { K_INT, 4, 0, 0 },
	[STORE_COL_DST_AS] = { K_INT, 4, 0, 0 },
	[STORE_COL_DOMAIN_ID] = { K_INT, 4, 0, 0 },
	[STORE_COL_SAMPLING] = { K_INT, 4, 0, 0 },
	[STORE_COL_SPORT] = { K_INT, 2, 0, 0 },
	[STORE_COL_DPORT] = { K_INT, 2, 0, 0 },
	[STORE_COL_VLAN] = { K_INT, 2, 0, 0 },
	[STORE_COL_PROTO] = { K_INT, 1, 0, 0 },
	[STORE_COL_TOS] = { K_INT, 1, 0, 0 },
	[STORE_COL_TCP_FLAGS] = { K_INT, 1, 0, 0 },
	[STORE_COL_IPVER] = { K_INT, 1, 0, 0 },
	[STORE_COL_SRC_MASK] = { K_INT, 1, 0, 0 },
	[STORE_COL_DST_MASK] = { K_INT, 1, 0, 0 },
	[STORE_COL_END_REASON] = { K_INT, 1, 0, 0 },
	[COL_MIRROR] = { K_INT, 1, 0, 0 },
};

static void *cols_arr(const struct store_cols *c, int id)
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
	for (int i = 0; i < STORE_NCOLS; i++)
		free(cols_arr(c, i));
	store_cols_init(c);
}

int store_cols_reserve(struct store_cols *c, uint32_t cap, uint32_t mask)
{
	if (cap > c->cap) {
		uint32_t n = c->n;
		store_cols_free(c);
		c->n = n;
		c->cap = cap;
	}
	for (int i = 0; i < STORE_NCOLS; i++) {
		if (!(mask & STORE_COLBIT(i)) || (c->alloc & STORE_COLBIT(i)))
			continue;
		void *p = calloc(c->cap ? c->cap : 1, colinfo[i].size);
		if (!p)
			return -ENOMEM;
		cols_set_arr(c, i, p);
		c->alloc |= STORE_COLBIT(i);
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
}

/* Writer side: every array is there. */
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
	z->packets += b->packets;
	z->bytes += b->bytes;
	for (int i = 0; i < 32; i++)
		z->proto[i] |= b->proto[i];
	z->ipver |= b->ipver;
}

static void zone_of_cols(struct store_zone *z, const struct store_cols *c, uint32_t n)
{
	uint64_t fmin = UINT64_MAX, fmax = 0, lmin = UINT64_MAX, lmax = 0, pk = 0, by = 0;
	uint16_t smin = UINT16_MAX, smax = 0, dmin = UINT16_MAX, dmax = 0;
	uint8_t ipver = 0;

	zone_empty(z);
	for (uint32_t i = 0; i < n; i++) {
		fmin = c->first_ms[i] < fmin ? c->first_ms[i] : fmin;
		fmax = c->first_ms[i] > fmax ? c->first_ms[i] : fmax;
		lmin = c->last_ms[i] < lmin ? c->last_ms[i] : lmin;
		lmax = c->last_ms[i] > lmax ? c->last_ms[i] : lmax;
		pk += c->packets[i];
		by += c->bytes[i];
	}
	for (uint32_t i = 0; i < n; i++) {
		smin = c->sport[i] < smin ? c->sport[i] : smin;
		smax = c->sport[i] > smax ? c->sport[i] : smax;
		dmin = c->dport[i] < dmin ? c->dport[i] : dmin;
		dmax = c->dport[i] > dmax ? c->dport[i] : dmax;
		ipver |= c->ipver[i] == 6 ? 2 : 1;
	}
	for (uint32_t i = 0; i < n; i++)
		z->proto[c->proto[i] >> 3] |= (uint8_t)(1u << (c->proto[i] & 7));
	z->first_min = fmin;
	z->first_max = fmax;
	z->last_min = lmin;
	z->last_max = lmax;
	z->packets = pk;
	z->bytes = by;
	z->sport_min = smin;
	z->sport_max = smax;
	z->dport_min = dmin;
	z->dport_max = dmax;
	z->ipver = ipver;
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

static inline unsigned varint_len(uint64_t x)
{
	return (bits64(x | 1) + 6) / 7;
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

/* Reads up to 9 bytes past the last value's first byte: callers guarantee SLACK. */
static void unpack_bits(const uint8_t *p, size_t n, unsigned w, uint64_t base, uint64_t *out)
{
	uint64_t mask = w >= 64 ? ~0ULL : (1ULL << w) - 1, bp = 0;

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

static size_t put_varint(uint8_t *o, uint64_t x)
{
	size_t i = 0;
	while (x >= 0x80) {
		o[i++] = (uint8_t)(x | 0x80);
		x >>= 7;
	}
	o[i++] = (uint8_t)x;
	return i;
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

/* ---- writer ---- */

struct hslot {
	uint32_t gen;
	uint32_t idx;
};

struct store_writer {
	struct store_cfg cfg;
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
	struct store_cols buf;  /* records of the next block */
	/* encoding scratch, sized for one block */
	int zstd;               /* byte planes pay only under an entropy coder */
	uint64_t *t0, *t1, *t2; /* transformed values, codes, exceptions */
	uint64_t *idx;          /* dictionary index of each record */
	uint64_t *dictv;        /* dictionary values, first-appearance order */
	uint32_t *dcnt;         /* occurrences of each dictionary entry */
	uint64_t *dkey;         /* sort keys */
	uint32_t *rank;         /* dictionary entry -> position after reordering */
	uint8_t *dicta, *dicta2; /* address dictionaries, 16 bytes an entry */
	struct hslot *hs;       /* hash for 32/64-bit values and addresses */
	uint32_t hbits, hgen;
	uint32_t *sgen, *sidx;  /* direct map for 8/16-bit values */
	uint32_t sgen_cur;
	uint8_t *mref;          /* mirror reference of each record, 0: none */
	uint32_t *mtab;         /* mirror_plan()'s table */
	uint8_t (*msrc)[16], (*mdst)[16];  /* the four columns without mirrored records */
	uint16_t *msport, *mdport;
	uint8_t *raw;
	uint8_t *payload;
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

/* Dictionary of 8/16-bit values (direct map, never gives up): fills w->dictv in
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

/* Same for 32/64-bit values through a hash; returns 0 once more than limit distinct
 * values turn up or a sample says the dictionary will not pay. */
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
		uint32_t h = (uint32_t)((v[i] * 0x9E3779B97F4A7C15ULL) >> shift);
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
		if (i && addr_eq(a[i], a[i - 1])) {
			w->idx[i] = w->idx[i - 1];
			w->dcnt[w->idx[i]]++;
			continue;
		}
		uint64_t k = ld_le64(a[i]) ^ ld_le64(a[i] + 8) * 0xC2B2AE3D27D4EB4FULL;
		uint32_t h = (uint32_t)((k * 0x9E3779B97F4A7C15ULL) >> shift);
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
			if (addr_eq(w->dicta + (size_t)s->idx * 16, a[i])) {
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

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* Sorts entries [0, nd) of the dictionary by falling count (ties: first appearance) into
 * w->dkey; w->rank[entry] = its position. */
static void dict_order(struct store_writer *w, uint32_t nd)
{
	for (uint32_t j = 0; j < nd; j++)
		w->dkey[j] = (uint64_t)(UINT32_MAX - w->dcnt[j]) << 32 | j;
	qsort(w->dkey, nd, sizeof(*w->dkey), cmp_u64);
	for (uint32_t p = 0; p < nd; p++)
		w->rank[(uint32_t)w->dkey[p]] = p;
}

/* Reorders the dictionary most frequent first so the indices' high bytes are mostly
 * zero (worth it under zstd only). */
static void dict_by_freq(struct store_writer *w, uint32_t nd, uint32_t n, int addr)
{
	dict_order(w, nd);
	if (addr) {
		for (uint32_t p = 0; p < nd; p++)
			memcpy(w->dicta2 + (size_t)p * 16, w->dicta + (w->dkey[p] & 0xffffffff) * 16, 16);
		uint8_t *t = w->dicta;
		w->dicta = w->dicta2;
		w->dicta2 = t;
	} else {
		for (uint32_t p = 0; p < nd; p++)
			w->t2[p] = w->dictv[(uint32_t)w->dkey[p]];
		memcpy(w->dictv, w->t2, nd * sizeof(*w->dictv));
	}
	for (uint32_t i = 0; i < n; i++)
		w->idx[i] = w->rank[w->idx[i]];
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

/* The cheapest way found so far to code one integer column. */
struct pick {
	const uint64_t *v;
	uint8_t xform, enc;
	unsigned w;
	uint64_t v0, min, size;
	uint32_t nd;            /* DICT, PDICT: dictionary entries used */
	unsigned dw;            /* width of the dictionary values */
	uint64_t dmin;
	uint64_t nexc, emin;    /* PDICT exceptions */
	unsigned ew;
};

static void pick_consider(struct pick *b, const uint64_t *v, uint32_t n, uint64_t mn,
			  uint64_t mx, uint8_t xform, uint64_t v0, int varint, int zstd)
{
	uint64_t hdr = xform == XF_DELTA ? 8 : 0, size, vs = 0;
	unsigned w = bits64(mx - mn);
	uint8_t enc = ENC_FOR;

	if (mn == mx) {
		enc = ENC_CONST;
		size = hdr + 8;
	} else {
		size = hdr + for_size(n, w, zstd);
		if (varint && w > 8) {  /* LEB128 spends a byte at least */
			/* estimated from every 8th value; write_pick() checks the real size */
			uint32_t k = 0;
			for (uint32_t i = 0; i < n; i += 8, k++)
				vs += varint_len(v[i] - mn);
			vs = vs * n / k;
			if (hdr + 8 + vs < size) {
				enc = ENC_VARINT;
				size = hdr + 8 + vs;
			}
		}
	}
	if (size < b->size) {
		b->v = v;
		b->xform = xform;
		b->enc = enc;
		b->w = w;
		b->v0 = v0;
		b->min = mn;
		b->size = size;
	}
}

/* A dictionary of the frequent values (code c >= 1 is entry c-1) plus the rest listed as
 * exceptions (code 0): service ports among random ephemeral ones. Needs full counts
 * (dict_small). Returns its size, UINT64_MAX if it cannot pay. */
static uint64_t pdict_plan(struct store_writer *w, uint32_t nd, uint32_t n, struct pick *p)
{
	uint32_t nf = 0;
	uint64_t covered = 0, dmin = UINT64_MAX, dmax = 0, emin = UINT64_MAX, emax = 0;

	for (uint32_t j = 0; j < nd; j++)
		if (w->dcnt[j] >= 3)
			w->dkey[nf++] = (uint64_t)(UINT32_MAX - w->dcnt[j]) << 32 | j;
	if (nf == 0 || nf == nd)
		return UINT64_MAX;
	qsort(w->dkey, nf, sizeof(*w->dkey), cmp_u64);
	if (nf > 255)
		nf = 255;
	for (uint32_t j = 0; j < nd; j++)
		w->rank[j] = 0;
	for (uint32_t k = 0; k < nf; k++) {
		uint32_t j = (uint32_t)w->dkey[k];
		w->rank[j] = k + 1;
		covered += w->dcnt[j];
		dmin = w->dictv[j] < dmin ? w->dictv[j] : dmin;
		dmax = w->dictv[j] > dmax ? w->dictv[j] : dmax;
	}
	for (uint32_t j = 0; j < nd; j++) {
		if (w->rank[j])
			continue;
		emin = w->dictv[j] < emin ? w->dictv[j] : emin;
		emax = w->dictv[j] > emax ? w->dictv[j] : emax;
	}
	p->nd = nf;
	p->dmin = dmin;
	p->dw = bits64(dmax - dmin);
	p->nexc = n - covered;
	p->emin = emin;
	p->ew = bits64(emax - emin);
	return 4 + for_size(nf, p->dw, w->zstd) + for_size(n, bits64(nf), w->zstd) + 4 +
	       for_size(p->nexc, p->ew, w->zstd);
}

static size_t write_pick(struct store_writer *w, const struct pick *p, uint32_t n)
{
	uint8_t *o = w->raw;
	int z = w->zstd;

	if (p->xform == XF_DELTA) {
		st_le64(o, p->v0);
		o += 8;
	}
	switch (p->enc) {
	case ENC_CONST:
		st_le64(o, p->v[0]);
		o += 8;
		break;
	case ENC_FOR:
		o += put_for_auto(o, p->v, n, p->min, p->w, z);
		break;
	case ENC_VARINT: {
		uint8_t *start = o;
		st_le64(o, p->min);
		o += 8;
		for (uint32_t i = 0; i < n; i++)
			o += put_varint(o, p->v[i] - p->min);
		/* the choice was made on a sample: never end up larger than FOR */
		if ((uint64_t)(o - start) > for_size(n, p->w, z)) {
			o = start;
			o += put_for_auto(o, p->v, n, p->min, p->w, z);
			return (size_t)(o - w->raw) | VARINT_UNDONE;
		}
		break;
	}
	case ENC_DICT:
		st_le32(o, p->nd);
		o += 4;
		o += put_for_auto(o, w->dictv, p->nd, p->dmin, p->dw, z);
		o += put_for_auto(o, w->idx, n, 0, bits64(p->nd - 1), z);
		break;
	case ENC_PDICT: {
		uint64_t ne = 0;
		for (uint32_t k = 0; k < p->nd; k++)
			w->t2[k] = w->dictv[(uint32_t)w->dkey[k]];
		st_le32(o, p->nd);
		o += 4;
		o += put_for_auto(o, w->t2, p->nd, p->dmin, p->dw, z);
		for (uint32_t i = 0; i < n; i++) {
			w->t1[i] = w->rank[w->idx[i]];
			if (!w->t1[i])
				w->t2[ne++] = p->v[i];
		}
		o += put_for_auto(o, w->t1, n, 0, bits64(p->nd), z);
		st_le32(o, (uint32_t)ne);
		o += 4;
		o += put_for_auto(o, w->t2, ne, p->emin, p->ew, z);
		break;
	}
	}
	return (size_t)(o - w->raw);
}

/* Encodes integer column c of the pending block into w->raw. Returns the chunk length,
 * 0 if the column is all zero (left out). */
static size_t enc_int(struct store_writer *w, int c, const void *src, uint32_t n, uint8_t *enc,
		      uint8_t *xform)
{
	const struct colinfo *ci = &colinfo[c];
	const uint64_t *x;
	uint64_t mn, mx;
	struct pick b = { .size = UINT64_MAX };

	switch (ci->size) {
	case 8:
		x = src;
		minmax(x, n, &mn, &mx);
		break;
	case 4:
		widen32(w->t0, src, n, &mn, &mx);
		x = w->t0;
		break;
	case 2:
		widen16(w->t0, src, n, &mn, &mx);
		x = w->t0;
		break;
	default:
		widen8(w->t0, src, n, &mn, &mx);
		x = w->t0;
		break;
	}
	if (mn == mx && mn == 0)
		return 0;
	pick_consider(&b, x, n, mn, mx, XF_NONE, 0, ci->varint, w->zstd);
	if (ci->xforms & 1 << XF_DELTA && b.enc != ENC_CONST) {
		uint64_t lo = 0, hi = 0;
		w->t0[0] = 0;
		for (uint32_t i = 1; i < n; i++) {
			uint64_t d = zigzag(x[i] - x[i - 1]);
			w->t0[i] = d;
			hi = d > hi ? d : hi;
		}
		pick_consider(&b, w->t0, n, lo, hi, XF_DELTA, x[0], ci->varint, w->zstd);
	}
	if (ci->xforms & 1 << XF_LASTDIFF && b.enc != ENC_CONST) {
		const uint64_t *last = w->buf.last_ms;
		uint64_t lo = UINT64_MAX, hi = 0;
		/* durations: never negative in sane data, so no zigzag */
		for (uint32_t i = 0; i < n; i++) {
			uint64_t d = last[i] - x[i];
			w->t1[i] = d;
			lo = d < lo ? d : lo;
			hi = d > hi ? d : hi;
		}
		pick_consider(&b, w->t1, n, lo, hi, XF_LASTDIFF, 0, ci->varint, w->zstd);
	}
	/* Dictionaries pay when few distinct values spread over a wide range (ports,
	 * interface indexes, AS numbers, flags). */
	if (b.xform == XF_NONE && b.enc != ENC_CONST && b.w >= 3) {
		uint32_t nd;
		if (ci->size <= 2) {
			nd = dict_small(w, x, n);
		} else {
			uint32_t limit = n / 2;
			if (b.w - 1 < 32 && (1u << (b.w - 1)) < limit)
				limit = 1u << (b.w - 1);
			nd = dict_u64(w, x, n, limit);
		}
		if (nd > 1) {
			uint64_t dmin, dmax;
			minmax(w->dictv, nd, &dmin, &dmax);
			unsigned dw = bits64(dmax - dmin), iw = bits64(nd - 1);
			uint64_t size = 4 + for_size(nd, dw, w->zstd) + for_size(n, iw, w->zstd);
			if (size < b.size) {
				b.v = x;
				b.enc = ENC_DICT;
				b.nd = nd;
				b.dmin = dmin;
				b.dw = dw;
				b.size = size;
			}
			struct pick pd = b;
			if (ci->size == 2 && (size = pdict_plan(w, nd, n, &pd)) < b.size) {
				b = pd;
				b.v = x;
				b.enc = ENC_PDICT;
				b.size = size;
			} else if (b.enc == ENC_DICT && w->zstd && for_layout(iw, 1)) {
				dict_by_freq(w, nd, n, 0);
				minmax(w->dictv, nd, &b.dmin, &dmax);
			}
		}
	}
	size_t len = write_pick(w, &b, n);
	*enc = len & VARINT_UNDONE ? ENC_FOR : b.enc;
	*xform = b.xform;
	return len & ~VARINT_UNDONE;
}

static size_t enc_addr(struct store_writer *w, const uint8_t (*a)[16], uint32_t n, uint8_t *enc)
{
	uint8_t *o = w->raw;
	uint32_t nd = dict_addr(w, a, n, n / 2 > 1 ? n / 2 : 1);

	if (nd == 1) {
		if (!memcmp(a[0], zero_addr, 16))
			return 0;
		*enc = ENC_CONST;
		memcpy(o, a[0], 16);
		return 16;
	}
	if (nd) {
		unsigned iw = bits64(nd - 1);
		uint64_t size = 4 + 16ULL * nd + for_size(n, iw, w->zstd);
		if (size < 16ULL * n) {
			if (w->zstd && for_layout(iw, 1))
				dict_by_freq(w, nd, n, 1);
			*enc = ENC_ADDR_DICT;
			st_le32(o, nd);
			o += 4;
			/* byte planes: the 12 constant bytes of v4-mapped addresses become runs */
			for (unsigned k = 0; k < 16; k++)
				for (uint32_t j = 0; j < nd; j++)
					*o++ = w->dicta[(size_t)j * 16 + k];
			o += put_for_auto(o, w->idx, n, 0, iw, w->zstd);
			return (size_t)(o - w->raw);
		}
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
			  uint8_t *codec)
{
	if (len >= MIN_COMPRESS && w->cfg.codec == STORE_CODEC_LZ4) {
		int r = LZ4_compress_fast((const char *)raw, (char *)dst, (int)len, (int)len - 1,
					  w->cfg.level > 0 ? w->cfg.level : 1);
		if (r > 0) {
			*codec = STORE_CODEC_LZ4;
			return (size_t)r;
		}
	} else if (len >= MIN_COMPRESS && w->cfg.codec == STORE_CODEC_ZSTD) {
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

static struct store_reader *rd_new_fd(int fd, int own);
static char *join(const char *a, const char *b);
static int rd_recover(struct store_reader *r, uint64_t *end, struct store_zone *z,
		      uint64_t *nblocks, uint64_t *nrecs);

/* Takes over an existing file at w->path/fd: cuts it back to its last complete block
 * (also dropping a footer) so that blocks can be appended. */
static int wr_attach(struct store_writer *w, int fd)
{
	struct stat sb;
	struct store_reader *r;
	uint64_t end, size;
	int rc;

	if (fstat(fd, &sb) < 0)
		return -errno;
	size = (uint64_t)sb.st_size;
	r = rd_new_fd(fd, 0);
	if (!r)
		return -errno;
	rc = rd_recover(r, &end, &w->fzone, &w->fblocks, &w->frecs);
	store_reader_close(r);
	if (rc < 0)
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

static inline uint64_t conv_hash(const uint8_t *a, const uint8_t *b, uint16_t pa, uint16_t pb)
{
	uint64_t h = ld_le64(a) * 0x9E3779B97F4A7C15ULL ^ ld_le64(a + 8);
	h = h * 0xC2B2AE3D27D4EB4FULL ^ ld_le64(b);
	h = h * 0x9E3779B97F4A7C15ULL ^ ld_le64(b + 8);
	h = h * 0xC2B2AE3D27D4EB4FULL ^ ((uint64_t)pa << 16 | pb);
	return h * 0x9E3779B97F4A7C15ULL;
}

/* Replies come shortly after their requests with source and destination swapped: finds,
 * for each record, a record at most MIRROR_MAX back whose src, dst, sport, dport are this
 * one's dst, src, dport, sport. Only that window matters, so a small direct-mapped table
 * (in cache; a collision costs a missed mirror, never a wrong one) does. Fills w->mref and
 * the four compacted columns; returns how many records those hold (n if it does not pay). */
static uint32_t mirror_plan(struct store_writer *w, uint32_t n)
{
	const struct store_cols *c = &w->buf;
	uint32_t *tab = w->mtab, m = 0;

	memset(tab, 0, MIRROR_TAB * sizeof(*tab));
	for (uint32_t i = 0; i < n; i++) {
		uint32_t h = (uint32_t)(conv_hash(c->dst[i], c->src[i], c->dport[i], c->sport[i]) >>
					(64 - MIRROR_TAB_BITS));
		uint32_t j = tab[h] - 1;        /* tab holds row + 1, 0 = empty */
		w->mref[i] = 0;
		if (tab[h] && i - j <= MIRROR_MAX && addr_eq(c->src[j], c->dst[i]) &&
		    addr_eq(c->dst[j], c->src[i]) && c->sport[j] == c->dport[i] &&
		    c->dport[j] == c->sport[i])
			w->mref[i] = (uint8_t)(i - j);
		h = (uint32_t)(conv_hash(c->src[i], c->dst[i], c->sport[i], c->dport[i]) >>
			       (64 - MIRROR_TAB_BITS));
		tab[h] = i + 1;
		m += !w->mref[i];
	}
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

static int wr_write_block(struct store_writer *w)
{
	uint32_t n = w->buf.n;
	unsigned ncols = 0;
	size_t pl = 0, hl;
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
	zone_of_cols(&z, &w->buf, n);
	uint32_t m = mirror_plan(w, n);
	for (int c = 0; c < NCOLS_ALL; c++) {
		uint8_t enc = 0, xf = XF_NONE, codec;
		const void *src = c == COL_MIRROR ? w->mref : cols_arr(&w->buf, c);
		uint32_t cn = n;
		size_t rl;
		if (m < n && (c == STORE_COL_SRC || c == STORE_COL_DST || c == STORE_COL_SPORT ||
			      c == STORE_COL_DPORT)) {
			src = c == STORE_COL_SRC ? (const void *)w->msrc
			    : c == STORE_COL_DST ? (const void *)w->mdst
			    : c == STORE_COL_SPORT ? (const void *)w->msport : (const void *)w->mdport;
			cn = m;
		}
		rl = colinfo[c].kind == K_ADDR ? enc_addr(w, src, cn, &enc)
					       : enc_int(w, c, src, cn, &enc, &xf);
		if (!rl)
			continue;
		size_t dl = wr_compress(w, w->raw, rl, w->payload + pl, &codec);
		uint8_t *d = w->hdr + BLK_FIXED + DIRENT_LEN * ncols++;
		d[0] = (uint8_t)c;
		d[1] = enc;
		d[2] = codec;
		d[3] = xf;
		st_le32(d + 4, (uint32_t)dl);
		st_le32(d + 8, (uint32_t)rl);
		pl += dl;
		if (c < STORE_NCOLS)
			w->st.col_bytes[c] += dl + DIRENT_LEN;
		else
			w->st.mirror_bytes += dl + DIRENT_LEN;
	}
	blk_hdr(w->hdr, BLK_DATA, ncols, n, (uint32_t)pl, store_hash32(w->payload, pl, 0), &z,
		w->cfg.codec);
	hl = blk_seal(w->hdr, ncols);
	rc = wr_append(w, w->hdr, hl, w->payload, pl);
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
	free(w->t1);
	free(w->t2);
	free(w->idx);
	free(w->dictv);
	free(w->dcnt);
	free(w->dkey);
	free(w->rank);
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

	rc = store_list_files(w->dir, NULL, 0, &l);
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
	    cfg->codec > STORE_CODEC_ZSTD) {
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
	w->dir = strdup(cfg->dir);
	w->cfg.dir = w->dir;
	w->interval_ms = (uint64_t)cfg->interval_s * 1000;
	w->cur_start = interval_start(w, now_ms);
	w->created_ms = now_ms;
	n = cfg->block_recs;
	for (w->hbits = 6; (1u << w->hbits) < 2 * n; w->hbits++)
		;
	for (int c = 0; c < NCOLS_ALL; c++)
		payload_cap += (size_t)colinfo[c].size * n + 32;
	rc = -ENOMEM;
	w->zstd = cfg->codec == STORE_CODEC_ZSTD;
	w->t0 = malloc(sizeof(uint64_t) * n);
	w->t1 = malloc(sizeof(uint64_t) * n);
	w->t2 = malloc(sizeof(uint64_t) * n);
	w->idx = malloc(sizeof(uint64_t) * n);
	w->dictv = malloc(sizeof(uint64_t) * n);
	w->dcnt = malloc(sizeof(uint32_t) * n);
	w->dkey = malloc(sizeof(uint64_t) * n);
	w->rank = malloc(sizeof(uint32_t) * n);
	w->dicta = malloc((size_t)16 * n);
	w->dicta2 = malloc((size_t)16 * n);
	w->hs = calloc((size_t)1 << w->hbits, sizeof(*w->hs));
	w->sgen = calloc(65536, sizeof(*w->sgen));
	w->sidx = malloc(65536 * sizeof(*w->sidx));
	w->mref = malloc(n);
	w->mtab = malloc(MIRROR_TAB * sizeof(*w->mtab));
	w->msrc = malloc((size_t)16 * n);
	w->mdst = malloc((size_t)16 * n);
	w->msport = malloc(sizeof(uint16_t) * n);
	w->mdport = malloc(sizeof(uint16_t) * n);
	w->raw = malloc((size_t)16 * n + 64);
	w->payload = malloc(payload_cap);
	if (!w->mref || !w->mtab || !w->msrc || !w->mdst || !w->msport || !w->mdport)
		goto fail;
	if (!w->dir || !w->t0 || !w->t1 || !w->t2 || !w->idx || !w->dictv || !w->dcnt ||
	    !w->dkey || !w->rank || !w->dicta || !w->dicta2 || !w->hs || !w->sgen || !w->sidx ||
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

int store_writer_add(struct store_writer *w, const struct flow_rec *rec)
{
	cols_put(&w->buf, w->buf.n++, rec);
	w->st.records++;
	if (w->buf.n == w->cfg.block_recs)
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
	uint32_t hdr_len, nrec, plen, phash;
	uint8_t codec;
	struct store_zone zone;
	struct rd_col col[NCOLS_ALL];
};

struct store_reader {
	int fd, own_fd;
	const uint8_t *mem;
	size_t mem_len;
	uint64_t size;          /* file size when last looked at */
	struct store_file_hdr hdr;
	int verify, done;
	uint64_t off;           /* next block */
	/* current block */
	int cur, cur_loaded, cur_err;
	uint64_t cur_off;
	struct blkhdr b;
	uint8_t *pay;
	size_t pay_cap;
	uint8_t *raw;
	size_t raw_cap;
	uint64_t *t0, *t1, *t2, *dv;
	uint8_t *dicta;
	uint8_t *mref;
	uint8_t (*ma)[16], (*mb)[16];   /* compacted mirrored columns */
	uint16_t *mpa, *mpb;
	size_t t_cap;
	ZSTD_DCtx *zd;
	struct store_read_stats st;
};

/* Reads up to len bytes at off; returns the count (short at end of file) or -errno. */
static ssize_t rd_pread(struct store_reader *r, void *buf, size_t len, uint64_t off)
{
	size_t got = 0;

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
	return r->size;
}

static int enc_ok(int col, unsigned enc, unsigned xform)
{
	if (colinfo[col].kind == K_ADDR)
		return xform == XF_NONE &&
		       (enc == ENC_CONST || enc == ENC_ADDR_RAW || enc == ENC_ADDR_DICT);
	if (enc != ENC_CONST && enc != ENC_FOR && enc != ENC_DICT && enc != ENC_VARINT &&
	    enc != ENC_PDICT)
		return 0;
	if (xform == XF_NONE)
		return 1;
	return xform <= XF_LASTDIFF && (colinfo[col].xforms & 1u << xform);
}

/* Parses a block header from h[0..n). Returns its length, 0 if n bytes do not hold all of
 * it, -EILSEQ no block magic, -EBADMSG hash mismatch, -EPROTO malformed. */
static int parse_blkhdr(const uint8_t *h, size_t n, int verify, struct blkhdr *b)
{
	uint64_t sum = 0;
	int prev = -1;

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
		    rc->raw_len > 16 * b->nrec + 64 || rc->disk_len > rc->raw_len + 64 ||
		    (rc->codec == STORE_CODEC_NONE && rc->disk_len != rc->raw_len))
			return -EPROTO;
		sum += rc->disk_len;
	}
	if (sum != b->plen)
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
	free(r->t0);
	free(r->t1);
	free(r->t2);
	free(r->dv);
	free(r->dicta);
	free(r->mref);
	free(r->ma);
	free(r->mb);
	free(r->mpa);
	free(r->mpb);
}

static int rd_scratch(struct store_reader *r, uint32_t n)
{
	if (n <= r->t_cap)
		return 0;
	rd_free_scratch(r);
	r->t0 = calloc(n, sizeof(uint64_t));
	r->t1 = calloc(n, sizeof(uint64_t));
	r->t2 = calloc(n, sizeof(uint64_t));
	r->dv = calloc(n, sizeof(uint64_t));
	r->dicta = calloc(n, 16);
	r->mref = calloc(n, 1);
	r->ma = calloc(n, 16);
	r->mb = calloc(n, 16);
	r->mpa = calloc(n, sizeof(uint16_t));
	r->mpb = calloc(n, sizeof(uint16_t));
	r->t_cap = r->t0 && r->t1 && r->t2 && r->dv && r->dicta && r->mref && r->ma && r->mb &&
		   r->mpa && r->mpb ? n : 0;
	return r->t_cap ? 0 : -ENOMEM;
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
		uint32_t nf, ne, k = 0;
		if (!(p = cur_take(c, 4)) || (nf = ld_le32(p)) < 1 || nf > n)
			return -EPROTO;
		if ((err = get_for(c, nf, r->dv)) < 0 || (err = get_for(c, n, r->t1)) < 0)
			return err;
		if (!(p = cur_take(c, 4)) || (ne = ld_le32(p)) > n)
			return -EPROTO;
		if ((err = get_for(c, ne, r->t2)) < 0)
			return err;
		for (uint32_t i = 0; i < n; i++) {
			uint64_t code = r->t1[i];
			if (code > nf || (!code && k == ne))
				return -EPROTO;
			v[i] = code ? r->dv[code - 1] : r->t2[k++];
		}
		if (k != ne)
			return -EPROTO;
		break;
	}
	default:
		return -EPROTO;
	}
	if (rc->xform == XF_DELTA) {
		v[0] = v0;
		for (uint32_t i = 1; i < n; i++)
			v[i] = v[i - 1] + unzigzag(v[i]);
	}
	return 0;
}

static int dec_addr(struct store_reader *r, struct cur *c, uint32_t n, const struct rd_col *rc,
		    uint8_t (*a)[16])
{
	const uint8_t *p;
	int err;

	switch (rc->enc) {
	case ENC_CONST:
		if (!(p = cur_take(c, 16)))
			return -EPROTO;
		for (uint32_t i = 0; i < n; i++)
			memcpy(a[i], p, 16);
		return 0;
	case ENC_ADDR_RAW:
		if (!(p = cur_take(c, (size_t)16 * n)))
			return -EPROTO;
		for (unsigned k = 0; k < 16; k++)
			for (uint32_t i = 0; i < n; i++)
				a[i][k] = p[(size_t)k * n + i];
		return 0;
	case ENC_ADDR_DICT: {
		if (!(p = cur_take(c, 4)))
			return -EPROTO;
		uint32_t nd = ld_le32(p);
		if (nd < 1 || nd > n || !(p = cur_take(c, (size_t)16 * nd)))
			return -EPROTO;
		for (unsigned k = 0; k < 16; k++)
			for (uint32_t j = 0; j < nd; j++)
				r->dicta[(size_t)j * 16 + k] = p[(size_t)k * nd + j];
		if ((err = get_for(c, n, r->t1)) < 0)
			return err;
		for (uint32_t i = 0; i < n; i++) {
			if (r->t1[i] >= nd)
				return -EPROTO;
			memcpy(a[i], r->dicta + r->t1[i] * 16, 16);
		}
		return 0;
	}
	}
	return -EPROTO;
}

/* Decodes column c's chunk of n values into arr (last: the LAST column, for FIRST). */
static int dec_chunk(struct store_reader *r, int c, void *arr, uint32_t n, const uint64_t *last)
{
	const struct rd_col *rc = &r->b.col[c];
	const struct colinfo *ci = &colinfo[c];
	const uint8_t *p;
	size_t len;
	struct cur cu;
	int err;

	if (!rc->present) {
		memset(arr, 0, (size_t)n * ci->size);
		return 0;
	}
	p = r->pay + rc->off;
	len = rc->disk_len;
	if (rc->codec != STORE_CODEC_NONE) {
		if (grow((void **)&r->raw, &r->raw_cap, (size_t)rc->raw_len + SLACK, 1) < 0)
			return -ENOMEM;
		if (rc->codec == STORE_CODEC_LZ4) {
			int got = LZ4_decompress_safe((const char *)p, (char *)r->raw, (int)len,
						      (int)rc->raw_len);
			if (got < 0 || (uint32_t)got != rc->raw_len)
				return -EIO;
		} else {
			size_t got = ZSTD_decompressDCtx(r->zd, r->raw, rc->raw_len, p, len);
			if (ZSTD_isError(got) || got != rc->raw_len)
				return -EIO;
		}
		p = r->raw;
		len = rc->raw_len;
	}
	cu = cur_make(p, len);
	if (ci->kind == K_ADDR) {
		err = dec_addr(r, &cu, n, rc, arr);
	} else {
		uint64_t *v = ci->size == 8 ? arr : r->t0;
		err = dec_int(r, &cu, n, rc, v);
		if (err == 0 && rc->xform == XF_LASTDIFF)
			for (uint32_t i = 0; i < n; i++)
				v[i] = last[i] - v[i];
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

/* Rebuilds a mirrored pair of columns (a, b: src/dst or sport/dport) of n records from
 * their m compacted values ca, cb: a mirrored record takes b and a of the one it mirrors. */
static int mirror_expand(const uint8_t *mref, uint32_t n, uint32_t m, void *a, void *b,
			 const void *ca, const void *cb, size_t sz)
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
	return dec_chunk(r, c, cols_arr(out, c), r->b.nrec, out->last_ms);
}

/* Decodes a mirrored pair of columns (c1 < c2) into out. */
static int dec_mirrored(struct store_reader *r, int c1, int c2, uint32_t m, struct store_cols *out)
{
	int addr = colinfo[c1].kind == K_ADDR, err;
	void *ca = addr ? (void *)r->ma : (void *)r->mpa, *cb = addr ? (void *)r->mb : (void *)r->mpb;

	if ((err = dec_chunk(r, c1, ca, m, NULL)) < 0 || (err = dec_chunk(r, c2, cb, m, NULL)) < 0)
		return err;
	return mirror_expand(r->mref, r->b.nrec, m, cols_arr(out, c1), cols_arr(out, c2), ca, cb,
			     colinfo[c1].size);
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
	if (r->verify && store_hash32(r->pay, r->b.plen, 0) != r->b.phash)
		return -EBADMSG;
	r->cur_loaded = 1;
	return 0;
}

int store_reader_decode(struct store_reader *r, uint32_t mask, struct store_cols *out)
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
	if (store_cols_reserve(out, r->b.nrec, mask) < 0 || rd_scratch(r, r->b.nrec) < 0)
		return -ENOMEM;
	out->n = 0;
	out->mask = 0;
	if (mirrored) {
		if ((err = dec_chunk(r, COL_MIRROR, r->mref, r->b.nrec, NULL)) < 0)
			goto bad;
		m = 0;
		for (uint32_t i = 0; i < r->b.nrec; i++)
			m += !r->mref[i];
		if ((mirrored & addrs &&
		     (err = dec_mirrored(r, STORE_COL_SRC, STORE_COL_DST, m, out)) < 0) ||
		    (mirrored & ports &&
		     (err = dec_mirrored(r, STORE_COL_SPORT, STORE_COL_DPORT, m, out)) < 0))
			goto bad;
	}
	/* LAST first: FIRST may be coded against it */
	if (mask & STORE_COLBIT(STORE_COL_LAST) && (err = dec_col(r, STORE_COL_LAST, out)) < 0)
		goto bad;
	for (int c = 0; c < STORE_NCOLS; c++) {
		if (c == STORE_COL_LAST || !(mask & STORE_COLBIT(c)) || (mirrored & STORE_COLBIT(c)))
			continue;
		if ((err = dec_col(r, c, out)) < 0)
			goto bad;
	}
	out->n = r->b.nrec;
	out->mask = mask;
	return 0;
bad:
	if (err == -ENOMEM)
		return err;
	r->cur_err = err;
	rd_count_bad(r, err);
	return err;
}

static struct store_reader *rd_alloc(void)
{
	struct store_reader *r = calloc(1, sizeof(*r));

	if (!r)
		return NULL;
	r->fd = -1;
	r->verify = 1;
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
	if (r->hdr.version != STORE_VERSION)
		return -ENOTSUP;
	if (ld_le16(h + 10) != STORE_FILE_HDR_LEN)
		return -EPROTO;
	r->hdr.interval_s = ld_le32(h + 12);
	r->hdr.start_ms = ld_le64(h + 16);
	r->hdr.created_ms = ld_le64(h + 24);
	r->hdr.block_recs = ld_le32(h + 32);
	r->hdr.codec = h[36];
	return 0;
}

static struct store_reader *rd_new_fd(int fd, int own)
{
	struct store_reader *r = rd_alloc();
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

struct store_reader *store_reader_open(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return NULL;
	return rd_new_fd(fd, 1);
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
	rd_free_scratch(r);
	ZSTD_freeDCtx(r->zd);
	free(r);
}

void store_reader_set_verify(struct store_reader *r, int verify)
{
	r->verify = verify;
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
	case ENOTSUP: return "unsupported store version or byte order";
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

int store_list_files(const char *dir, const struct store_window *w, uint64_t slack_ms,
		     struct store_list *out)
{
	size_t cap = 0, k = 0;
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
	if (!w)
		return 0;
	/* A file named S, followed by one named S', holds what arrived in [S, S'). */
	for (size_t i = 0; i < out->n; i++) {
		uint64_t s = out->v[i].start_ms;
		uint64_t next = i + 1 < out->n ? out->v[i + 1].start_ms : UINT64_MAX;
		int late = s > slack_ms && s - slack_ms > w->to_ms;
		int early = next < UINT64_MAX - slack_ms && next + slack_ms < w->from_ms;
		if (late || early)
			free(out->v[i].path);
		else
			out->v[k++] = out->v[i];
	}
	out->n = k;
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
	rc = store_list_files(dir, NULL, 0, &l);
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

static int scan_file(const char *path, const struct store_scan_opts *o, struct store_cols *cols,
		     struct store_scan_stats *st)
{
	struct store_reader *r = store_reader_open(path);
	struct store_block_info bi;
	struct store_zone z;
	int rc, stop = 0;

	if (!r) {
		st->bad_files++;
		scan_warn(o, path, -errno, "file skipped");
		return 0;
	}
	if (o->win && store_reader_file_zone(r, &z) == 1 && !store_zone_overlaps(&z, o->win)) {
		st->files_skipped++;
		store_reader_close(r);
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
	store_reader_close(r);
	return stop;
}

int store_scan(const char *path, const struct store_scan_opts *o, struct store_scan_stats *st)
{
	struct store_scan_stats dummy;
	struct store_list l;
	struct store_cols cols;
	struct stat sb;
	int rc = 0;

	if (!st)
		st = &dummy;
	memset(st, 0, sizeof(*st));
	if (stat(path, &sb) < 0)
		return -errno;
	store_cols_init(&cols);
	if (S_ISREG(sb.st_mode)) {
		rc = scan_file(path, o, &cols, st);
	} else {
		rc = store_list_files(path, o->win, o->slack_ms, &l);
		if (rc < 0)
			return rc;
		for (size_t i = 0; i < l.n && rc == 0; i++)
			rc = scan_file(l.v[i].path, o, &cols, st);
		store_list_free(&l);
	}
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
		.slack_ms = STORE_NAME_SLACK_MS,
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
