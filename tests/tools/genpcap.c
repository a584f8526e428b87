/* genpcap: deterministic traffic generator with ground truth, for testing flow probes.
 *
 *   genpcap -o OUT.pcap [-t TRUTH.csv] [-n PACKETS] [-f CONCURRENT_FLOWS] [-s SEED]
 *           [--start UNIX_SECS] [--rate PPS] [--snaplen N] [-v]
 *
 * Writes a classic pcap (little-endian, microseconds, LINKTYPE_ETHERNET) of PACKETS frames
 * (default 100000) and, with -t, the flows in it as a NetFlow probe keyed on (src, dst,
 * sport, dport, proto, ToS, input interface) + VLAN must report them with inactive timeout
 * 15 s and active timeout 60 s, one CSV line per flow:
 *   ipver,src,dst,sport,dport,proto,tos,vlan,packets,bytes,first_ms,last_ms,tcp_flags
 * bytes are IP total lengths (never frame lengths: short frames are padded to 60 bytes);
 * vlan is the outer VLAN id (0 untagged); ICMP/ICMPv6 dport is type << 8 | code, sport 0;
 * ports are 0 for other protocols; first/last_ms are pcap timestamps truncated to ms.
 * Truth holds because every key (ignoring ToS and VLAN) is used by one flow only; within a
 * flow packets are < 10 s apart and the flow lasts < 50 s; TCP flows open with SYN (or
 * SYN|ACK) and their FIN is their last packet; fragments of a UDP datagram (IPv4) follow
 * its first fragment and belong to its flow. Same seed, same bytes.
 * Stdout gets one line: packets=N bytes=N flows=N first_ms=N last_ms=N; -v adds the mix
 * and the measured concurrency on stderr. Exit 0, or 1 with a message on error.
 *
 * Model: conversations (one flow, or a flow and its reverse) run one after another in
 * slots; -f (default 2000) is the mean number of flows in progress (between their first
 * and last packet) and --rate (default 2000) the packets per second of capture time, both
 * once the slots are under way: the first ~15 s ramp up and the last conversations drain,
 * so short captures run longer than PACKETS / rate. Gaps stay under ~3 s, so -f above
 * about 1.2 x rate is out of reach: genpcap warns and keeps the rate.
 * Mix: ~55% TCP, 27% UDP, 11% ICMP/ICMPv6, 7% GRE/ESP of packets; 30% IPv6; 20% 802.1Q
 * and 3% QinQ; ~1% IPv4 with options; ToS 0, 0x10, 0xb8; payloads are zeros.
 * Defaults: -n 100000 -f 2000 -s 1 --start 1767225600 --rate 2000 --snaplen 65535
 * (the snaplen cannot go below 96, so every header is captured and the truth holds).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_FRAME 1600
#define OUTBUF_SIZE (1u << 20)
#define MIN_SNAPLEN 96          /* every header we write fits: 14 + 8 + 40 + 24 = 86 */
#define GEN_MTU 1500
#define GAP_MAX_S 3.1           /* mean gap cap: 1.5 x 3.1 s < 4.7 s per event */
#define FLOW_SPAN_S 30.0        /* mean gaps x (events - 1) <= 30 s, so spans <= 45 s */
#define CAL_SAMPLES 8192        /* conversations simulated to calibrate */
#define CAL_SIZE_SAMPLES (1 << 20)

/* ---- PRNG: xoshiro256** seeded through splitmix64, so runs never depend on libc. ---- */

struct rng {
	uint64_t s[4];
};

static uint64_t splitmix64(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static void rng_seed(struct rng *r, uint64_t seed)
{
	for (int i = 0; i < 4; i++)
		r->s[i] = splitmix64(&seed);
}

static inline uint64_t rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

static uint64_t rng_next(struct rng *r)
{
	uint64_t *s = r->s;
	uint64_t res = rotl(s[1] * 5, 7) * 9;
	uint64_t t = s[1] << 17;

	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rotl(s[3], 45);
	return res;
}

/* Uniform in [0, n): multiply-shift on 32 bits (no __int128 on 32-bit ARM). */
static uint32_t rng_below(struct rng *r, uint32_t n)
{
	return (uint32_t)(((rng_next(r) >> 32) * (uint64_t)n) >> 32);
}

/* Uniform in [lo, hi], inclusive. */
static uint32_t rng_range(struct rng *r, uint32_t lo, uint32_t hi)
{
	return lo + rng_below(r, hi - lo + 1);
}

static int rng_chance(struct rng *r, uint32_t permille)
{
	return rng_below(r, 1000) < permille;
}

/* ---- Little helpers ---- */

static void st16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static void st32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static void st32le(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

/* Internet checksum pieces: sum 16-bit big-endian words of p[0..n), then fold. */
static uint32_t csum_add(uint32_t sum, const uint8_t *p, size_t n)
{
	size_t i;

	for (i = 0; i + 1 < n; i += 2)
		sum += (uint32_t)p[i] << 8 | p[i + 1];
	if (i < n)
		sum += (uint32_t)p[i] << 8;
	return sum;
}

static uint16_t csum_fold(uint32_t sum)
{
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

/* ---- Protocol kinds of a conversation ---- */

enum kind {
	K_TCP,      /* SYN .. FIN both ways */
	K_UDP,      /* generic UDP, one or two ways */
	K_DNS,      /* query and answer */
	K_FRAG,     /* IPv4 UDP datagrams larger than the MTU, one way */
	K_ECHO,     /* ICMP 8/0 or ICMPv6 128/129 */
	K_UNREACH,  /* ICMP 3/3, one way */
	K_GRE,
	K_ESP,
	K_NKINDS
};

static const char *const kind_name[K_NKINDS] = {
	"tcp", "udp", "dns", "udp-frag", "echo", "unreach", "gre", "esp",
};

/* What a conversation looks like before it gets addresses: kind, family, packets per
 * direction. Sampled both for calibration and for real. */
struct shape {
	uint8_t kind;
	uint8_t ipver;
	uint8_t bulk;     /* TCP: the direction that sends full segments */
	uint32_t n[2];
};

/* Packets in one direction: mostly tiny flows, a long tail up to a few thousand. */
static uint32_t flow_size(struct rng *r)
{
	uint32_t x = rng_below(r, 10000);

	if (x < 6080)
		return rng_range(r, 1, 3);
	if (x < 9580)
		return rng_range(r, 4, 30);
	if (x < 9980)
		return rng_range(r, 31, 300);
	return rng_range(r, 500, 3000);
}

static uint32_t max_u32(uint32_t a, uint32_t b)
{
	return a > b ? a : b;
}

static void shape_sample(struct rng *r, struct shape *s)
{
	uint32_t x = rng_below(r, 1000);

	memset(s, 0, sizeof(*s));
	s->ipver = rng_chance(r, 300) ? 6 : 4;
	if (x < 420) {
		uint32_t big = max_u32(2, flow_size(r));

		s->kind = K_TCP;
		s->bulk = rng_chance(r, 750);   /* mostly downloads: the server sends */
		s->n[s->bulk] = big;
		s->n[!s->bulk] = max_u32(2, big / 2 + rng_below(r, 2));
	} else if (x < 600) {
		s->kind = K_UDP;
		s->n[0] = flow_size(r);
		s->n[1] = rng_chance(r, 500) ? flow_size(r) : 0;
	} else if (x < 770) {
		s->kind = K_DNS;
		s->n[0] = rng_range(r, 1, 2);
		s->n[1] = rng_chance(r, 950) ? s->n[0] : 0;
	} else if (x < 778) {
		s->kind = K_FRAG;
		s->ipver = 4;
		s->n[0] = rng_chance(r, 900) ? rng_range(r, 2, 40) : rng_range(r, 41, 400);
	} else if (x < 940) {
		s->kind = K_ECHO;
		s->n[0] = rng_chance(r, 900) ? rng_range(r, 1, 10) : flow_size(r);
		s->n[1] = s->n[0] - (rng_chance(r, 100) ? 1 : 0);
	} else if (x < 960) {
		s->kind = K_UNREACH;
		s->ipver = 4;
		s->n[0] = rng_range(r, 1, 3);
	} else if (x < 980) {
		s->kind = K_GRE;
		s->n[0] = flow_size(r);
		s->n[1] = flow_size(r);
	} else {
		s->kind = K_ESP;
		s->n[0] = flow_size(r);
		s->n[1] = rng_chance(r, 900) ? flow_size(r) : 0;
	}
}

/* ---- Key set: 64-bit hashes of every key handed out, so none is used twice. ---- */

struct keyset {
	uint64_t *h;      /* 0 marks an empty slot */
	size_t cap, n;
};

static int keyset_grow(struct keyset *ks)
{
	size_t ncap = ks->cap ? ks->cap * 2 : 1u << 16;
	uint64_t *nh = calloc(ncap, sizeof(*nh));

	if (!nh)
		return -ENOMEM;
	for (size_t i = 0; i < ks->cap; i++) {
		uint64_t v = ks->h[i];
		size_t j;

		if (!v)
			continue;
		for (j = v & (ncap - 1); nh[j]; j = (j + 1) & (ncap - 1))
			;
		nh[j] = v;
	}
	free(ks->h);
	ks->h = nh;
	ks->cap = ncap;
	return 0;
}

static int keyset_has(const struct keyset *ks, uint64_t v)
{
	if (!ks->cap)
		return 0;
	for (size_t j = v & (ks->cap - 1); ks->h[j]; j = (j + 1) & (ks->cap - 1))
		if (ks->h[j] == v)
			return 1;
	return 0;
}

/* Adds v (not already present). Returns 0 or -ENOMEM. */
static int keyset_add(struct keyset *ks, uint64_t v)
{
	size_t j;

	if (2 * (ks->n + 1) > ks->cap) {
		int err = keyset_grow(ks);

		if (err)
			return err;
	}
	for (j = v & (ks->cap - 1); ks->h[j]; j = (j + 1) & (ks->cap - 1))
		;
	ks->h[j] = v;
	ks->n++;
	return 0;
}

/* ---- Conversations and their flows ---- */

struct host {
	uint8_t a[16];    /* IPv4 in a[0..3] */
};

/* Truth record of one flow. */
struct rec {
	uint8_t src[16];
	uint8_t dst[16];
	uint64_t packets;
	uint64_t bytes;
	uint64_t first_us;
	uint64_t last_us;
	uint32_t order;   /* creation order, a deterministic tie-break */
	uint16_t sport;
	uint16_t dport;
	uint16_t vlan;
	uint8_t proto;
	uint8_t tos;
	uint8_t ipver;
	uint8_t flags;
};

struct dir {
	uint32_t rec;     /* index of its truth record */
	uint32_t left;    /* packets still to send */
	uint32_t sent;
	uint32_t seq;     /* TCP sequence / ICMP echo sequence */
	uint64_t last_us;
	uint16_t ipid;
};

struct conv {
	struct dir d[2];
	uint8_t a[16];        /* source of direction 0 */
	uint8_t b[16];        /* source of direction 1 */
	uint64_t t_next;      /* time of the next packet */
	uint64_t t_after;     /* time of the one after: lets a direction claim it in time */
	uint64_t gap_us;      /* mean gap between packets of this conversation */
	uint32_t left;        /* packets still to send, both directions */
	uint32_t flabel;      /* IPv6 flow label */
	uint16_t aport, bport;
	uint16_t vlan, vlan_inner;
	uint16_t size_lo, size_hi;   /* payload range (UDP, GRE, ESP) or echo data size */
	uint16_t echo_id;
	uint16_t frag_len;    /* UDP length of the datagram being fragmented (0: none) */
	uint16_t frag_off;    /* bytes of it already sent */
	uint8_t kind, ipver, tos, ihl, tags, bulk;
};

struct stats {
	uint64_t convs[K_NKINDS];
	uint64_t pkts[K_NKINDS];
	uint64_t flows[K_NKINDS];
	uint64_t v6_pkts, tag1_pkts, tag2_pkts, opt_pkts, padded, frags_later, truncated;
	uint64_t active, active_max;
	double active_area;   /* flows in progress x seconds */
	uint64_t prev_us;
};

struct gen {
	struct rng rng;
	struct keyset keys;
	struct host *hosts;          /* v4 clients, v4 servers, v6 clients, v6 servers */
	uint32_t nh[4];
	uint32_t off[4];
	struct rec *recs;
	size_t nrecs, caprecs;
	struct conv *convs;          /* one per slot */
	uint32_t *heap;              /* slot indexes, min-heap on t_next */
	uint32_t nheap;
	uint64_t budget;             /* packets not yet given to a conversation */
	double gap_s;                /* calibrated mean gap cap */
	double idle_s;               /* mean idle time of a slot between conversations */
	double cycle_s;              /* mean time from one conversation start to the next */
	double mean_pkts;            /* mean packets per conversation */
	uint64_t start_us;
	uint32_t snaplen;
	FILE *out;
	uint8_t *buf;
	size_t blen;
	int werr;
	uint64_t packets, bytes, first_us, last_us;
	struct stats st;
};

/* ---- Host pools: a few thousand addresses in private and documentation ranges. ---- */

static int hosts_init(struct gen *g)
{
	static const uint32_t counts[4] = { 2400, 600, 900, 300 };
	struct rng r;
	uint32_t total = 0;

	rng_seed(&r, rng_next(&g->rng));
	for (int k = 0; k < 4; k++) {
		g->off[k] = total;
		g->nh[k] = counts[k];
		total += counts[k];
	}
	g->hosts = calloc(total, sizeof(*g->hosts));
	if (!g->hosts)
		return -ENOMEM;
	for (uint32_t i = 0; i < counts[0]; i++) {
		uint8_t *a = g->hosts[g->off[0] + i].a;

		if (i % 8 == 7) {   /* some clients in 172.16.0.0/12 */
			a[0] = 172;
			a[1] = (uint8_t)rng_range(&r, 16, 31);
		} else {
			a[0] = 10;
			a[1] = (uint8_t)rng_below(&r, 16);
		}
		a[2] = (uint8_t)rng_below(&r, 256);
		a[3] = (uint8_t)rng_range(&r, 1, 254);
	}
	for (uint32_t i = 0; i < counts[1]; i++) {
		static const uint8_t nets[4][3] = {
			{ 192, 0, 2 }, { 198, 51, 100 }, { 203, 0, 113 }, { 10, 200, 0 },
		};
		uint8_t *a = g->hosts[g->off[1] + i].a;
		const uint8_t *n = nets[i % 4];

		a[0] = n[0];
		a[1] = n[1];
		a[2] = n[2];
		if (i % 4 == 3)
			a[2] = (uint8_t)rng_below(&r, 8);
		a[3] = (uint8_t)rng_range(&r, 1, 254);
	}
	for (int k = 2; k < 4; k++) {
		for (uint32_t i = 0; i < counts[k]; i++) {
			uint8_t *a = g->hosts[g->off[k] + i].a;

			a[0] = 0x20;
			a[1] = 0x01;
			a[2] = 0x0d;
			a[3] = 0xb8;
			if (k == 2) {   /* 2001:db8:1xx:yyyy::zzzz */
				st16(a + 4, (uint16_t)(0x100 + rng_below(&r, 16)));
				st16(a + 6, (uint16_t)rng_next(&r));
				st16(a + 14, (uint16_t)rng_range(&r, 1, 0xfffe));
			} else {        /* 2001:db8:f00d:N::zzzz and a few full 64-bit IIDs */
				st16(a + 4, 0xf00d);
				st16(a + 6, (uint16_t)(i % 16));
				if (i % 5 == 0)
					st32(a + 8, (uint32_t)rng_next(&r));
				st32(a + 12, (uint32_t)rng_next(&r));
			}
		}
	}
	return 0;
}

static const uint8_t *host_pick(struct gen *g, int server, int v6)
{
	int k = (v6 ? 2 : 0) + (server ? 1 : 0);

	return g->hosts[g->off[k] + rng_below(&g->rng, g->nh[k])].a;
}

/* Server ports, skewed towards the usual ones. */
static uint16_t tcp_port(struct rng *r)
{
	static const uint16_t p[] = { 443, 443, 443, 443, 443, 443, 443, 443, 80, 80, 80, 80,
		22, 22, 25, 587, 993, 143, 110, 3306, 5432, 8080, 8443, 3389, 445, 179 };
	uint32_t x = rng_below(r, 100);

	if (x < 12)
		return (uint16_t)rng_range(r, 1024, 49151);
	return p[rng_below(r, sizeof(p) / sizeof(p[0]))];
}

static uint16_t udp_port(struct rng *r)
{
	static const uint16_t p[] = { 443, 443, 443, 443, 123, 123, 514, 161, 5060, 4500,
		1194, 51820, 3478, 67, 137, 1900 };
	uint32_t x = rng_below(r, 100);

	if (x < 20)
		return (uint16_t)rng_range(r, 1024, 49151);
	return p[rng_below(r, sizeof(p) / sizeof(p[0]))];
}

static uint16_t ephemeral(struct rng *r)
{
	if (rng_chance(r, 700))
		return (uint16_t)rng_range(r, 32768, 60999);   /* Linux */
	return (uint16_t)rng_range(r, 49152, 65535);        /* Windows, BSD */
}

static uint8_t conv_proto(const struct conv *c)
{
	switch (c->kind) {
	case K_TCP:
		return 6;
	case K_UDP:
	case K_DNS:
	case K_FRAG:
		return 17;
	case K_ECHO:
	case K_UNREACH:
		return c->ipver == 6 ? 58 : 1;
	case K_GRE:
		return 47;
	default:
		return 50;
	}
}

/* ICMP type and code sent by direction d. */
static void icmp_tc(const struct conv *c, int d, uint8_t *type, uint8_t *code)
{
	*code = 0;
	if (c->kind == K_UNREACH) {
		*type = 3;
		*code = 3;
	} else if (c->ipver == 6) {
		*type = d ? 129 : 128;
	} else {
		*type = d ? 0 : 8;
	}
}

/* The flow key of direction d, as the truth reports it. */
static void conv_key(const struct conv *c, int d, const uint8_t **src, const uint8_t **dst,
		     uint16_t *sport, uint16_t *dport)
{
	*src = d ? c->b : c->a;
	*dst = d ? c->a : c->b;
	*sport = 0;
	*dport = 0;
	if (c->kind == K_ECHO || c->kind == K_UNREACH) {
		uint8_t t, cd;

		icmp_tc(c, d, &t, &cd);
		*dport = (uint16_t)(t << 8 | cd);
	} else if (c->kind != K_GRE && c->kind != K_ESP) {
		*sport = d ? c->bport : c->aport;
		*dport = d ? c->aport : c->bport;
	}
}

/* FNV-1a over the parts of a key that must never repeat (ToS and VLAN left out on
 * purpose: a key stays unique even for a comparison that ignores them). tag separates
 * the host-pair reservation of fragmenting flows from real keys. */
static uint64_t key_hash(uint8_t ipver, uint8_t proto, const uint8_t *src, const uint8_t *dst,
			 uint16_t sport, uint16_t dport, uint8_t tag)
{
	uint8_t k[40];
	uint64_t h = 0xcbf29ce484222325ULL;

	memcpy(k, src, 16);
	memcpy(k + 16, dst, 16);
	st16(k + 32, sport);
	st16(k + 34, dport);
	k[36] = ipver;
	k[37] = proto;
	k[38] = tag;
	k[39] = 0;
	for (int i = 0; i < 40; i++) {
		h ^= k[i];
		h *= 0x100000001b3ULL;
	}
	return h ? h : 1;
}

static uint64_t conv_hash(const struct conv *c, int d)
{
	const uint8_t *s, *t;
	uint16_t sp, dp;

	conv_key(c, d, &s, &t, &sp, &dp);
	return key_hash(c->ipver, conv_proto(c), s, t, sp, dp, 0);
}

/* Picks hosts and ports until both directions' keys are fresh, then reserves them.
 * Returns 0, -EAGAIN if no fresh key was found, -ENOMEM. */
static int conv_assign_keys(struct gen *g, struct conv *c)
{
	struct rng *r = &g->rng;
	int v6 = c->ipver == 6;

	for (int tries = 0; tries < 64; tries++) {
		uint64_t h0, h1 = 0, hp = 0;
		int err;

		/* Direction 0 comes from a client, except ICMP errors that a server sends. */
		if (c->kind == K_UNREACH) {
			memcpy(c->a, host_pick(g, 1, v6), 16);
			memcpy(c->b, host_pick(g, 0, v6), 16);
		} else {
			memcpy(c->a, host_pick(g, 0, v6), 16);
			memcpy(c->b, host_pick(g, 1, v6), 16);
		}
		c->aport = ephemeral(r);
		switch (c->kind) {
		case K_TCP:
			c->bport = tcp_port(r);
			break;
		case K_DNS:
			c->bport = 53;
			break;
		case K_UDP:
		case K_FRAG:
			c->bport = udp_port(r);
			if (c->kind == K_FRAG && rng_chance(r, 500))
				c->bport = 2049;   /* NFS over UDP: where big datagrams live */
			break;
		default:
			c->aport = c->bport = 0;
		}
		h0 = conv_hash(c, 0);
		if (keyset_has(&g->keys, h0))
			continue;
		if (c->d[1].left) {
			h1 = conv_hash(c, 1);
			if (h1 == h0 || keyset_has(&g->keys, h1))
				continue;
		}
		if (c->kind == K_FRAG) {
			/* One fragmenting flow per host pair, so (src, dst, proto, IP id) of its
			 * fragments can never be confused with another flow's. */
			hp = key_hash(c->ipver, 17, c->a, c->b, 0, 0, 1);
			if (keyset_has(&g->keys, hp))
				continue;
		}
		if ((err = keyset_add(&g->keys, h0)) ||
		    (h1 && (err = keyset_add(&g->keys, h1))) ||
		    (hp && (err = keyset_add(&g->keys, hp))))
			return err;
		return 0;
	}
	return -EAGAIN;
}

static int rec_new(struct gen *g, const struct conv *c, int d, uint32_t *idx)
{
	struct rec *rc;
	const uint8_t *s, *t;

	if (g->nrecs == g->caprecs) {
		size_t ncap = g->caprecs ? g->caprecs * 2 : 4096;
		struct rec *n = realloc(g->recs, ncap * sizeof(*n));

		if (!n)
			return -ENOMEM;
		g->recs = n;
		g->caprecs = ncap;
	}
	*idx = (uint32_t)g->nrecs;
	rc = &g->recs[g->nrecs++];
	memset(rc, 0, sizeof(*rc));
	conv_key(c, d, &s, &t, &rc->sport, &rc->dport);
	memcpy(rc->src, s, 16);
	memcpy(rc->dst, t, 16);
	rc->proto = conv_proto(c);
	rc->tos = c->tos;
	rc->vlan = c->vlan;
	rc->ipver = c->ipver;
	rc->order = *idx;
	return 0;
}

/* Mean gap for a conversation of n packets: short enough that it ends within 45 s. */
static double conv_gap_s(double gap_cap, uint32_t n)
{
	double g = gap_cap;

	if (n > 1 && FLOW_SPAN_S / (n - 1) < g)
		g = FLOW_SPAN_S / (n - 1);
	return g;
}

static uint64_t draw_gap(struct rng *r, uint64_t mean)
{
	/* uniform in [mean/2, 3 mean/2]: gaps stay below 1.5 x the cap */
	return mean / 2 + (mean ? (uint64_t)rng_below(r, (uint32_t)mean + 1) : 0);
}

/* Sets up slot c with a fresh conversation whose first packet is at t. Returns 1 if it
 * got one, 0 if the packet budget is spent, or a negative errno. */
static int conv_start(struct gen *g, struct conv *c, uint64_t t)
{
	struct rng *r = &g->rng;
	struct shape s;
	uint32_t x;
	int err;

	if (!g->budget)
		return 0;
	shape_sample(r, &s);
	if ((uint64_t)s.n[0] + s.n[1] > g->budget) {
		/* The last conversations take what is left. */
		uint32_t left = (uint32_t)g->budget;

		if (s.kind == K_TCP && left >= 4) {
			s.n[0] = left / 2;
			s.n[1] = left - s.n[0];
		} else {
			s.kind = K_UDP;
			s.n[0] = left;
			s.n[1] = 0;
		}
	}
	memset(c, 0, sizeof(*c));
	c->kind = s.kind;
	c->ipver = s.ipver;
	c->bulk = s.bulk;
	c->d[0].left = s.n[0];
	c->d[1].left = s.n[1];
	c->left = s.n[0] + s.n[1];
	x = rng_below(r, 100);
	c->tos = x < 80 ? 0 : x < 90 ? 0x10 : 0xb8;
	x = rng_below(r, 1000);
	c->tags = x < 770 ? 0 : x < 970 ? 1 : 2;
	if (c->tags == 1) {
		static const uint16_t v[] = { 1, 10, 20, 30, 100, 101, 200, 300, 1000, 4094 };

		c->vlan = v[rng_below(r, sizeof(v) / sizeof(v[0]))];
		if (rng_chance(r, 300))
			c->vlan = (uint16_t)rng_range(r, 2, 4094);
	} else if (c->tags == 2) {
		c->vlan = (uint16_t)rng_range(r, 100, 4000);
		c->vlan_inner = (uint16_t)rng_range(r, 1, 4094);
	}
	c->ihl = (c->ipver == 4 && rng_chance(r, 15)) ? 6 : 5;
	c->flabel = rng_chance(r, 700) ? rng_below(r, 1u << 20) : 0;
	c->echo_id = (uint16_t)rng_next(r);
	c->d[0].seq = (uint32_t)rng_next(r);
	c->d[1].seq = (uint32_t)rng_next(r);
	c->d[0].ipid = (uint16_t)rng_next(r);
	c->d[1].ipid = (uint16_t)rng_next(r);
	switch (c->kind) {
	case K_UDP:
		x = rng_below(r, 3);
		c->size_lo = x == 0 ? 20 : x == 1 ? 100 : 1000;
		c->size_hi = x == 0 ? 200 : x == 1 ? 800 : 1452;
		break;
	case K_ECHO:
		c->size_lo = c->size_hi = rng_chance(r, 700) ? 56 : (uint16_t)rng_range(r, 0, 1400);
		break;
	case K_GRE:
	case K_ESP:
		c->size_lo = 16;
		c->size_hi = rng_chance(r, 500) ? 200 : 1400;
		break;
	default:
		break;
	}
	err = conv_assign_keys(g, c);
	if (err == -EAGAIN && c->kind != K_TCP) {
		/* Host pairs ran short (ICMP, GRE, ESP are keyed on them): use ports. */
		c->kind = K_UDP;
		c->size_lo = 20;
		c->size_hi = 200;
		err = conv_assign_keys(g, c);
	}
	if (err)
		return err;
	for (int d = 0; d < 2; d++)
		if (c->d[d].left && (err = rec_new(g, c, d, &c->d[d].rec)))
			return err;
	g->budget -= c->left;
	g->st.convs[c->kind]++;
	g->st.flows[c->kind] += (c->d[0].left > 0) + (c->d[1].left > 0);
	c->gap_us = (uint64_t)(conv_gap_s(g->gap_s, c->left) * 1e6);
	c->t_next = t;
	c->t_after = t + draw_gap(r, c->gap_us);
	return 1;
}

/* ---- Output ---- */

static int out_flush(struct gen *g)
{
	if (g->blen && fwrite(g->buf, 1, g->blen, g->out) != g->blen)
		g->werr = errno ? errno : EIO;
	g->blen = 0;
	return g->werr ? -g->werr : 0;
}

static void pcap_header(struct gen *g)
{
	uint8_t *p = g->buf + g->blen;

	st32le(p, 0xa1b2c3d4);   /* microsecond timestamps */
	p[4] = 2;                /* version 2.4 */
	p[5] = 0;
	p[6] = 4;
	p[7] = 0;
	st32le(p + 8, 0);        /* thiszone */
	st32le(p + 12, 0);       /* sigfigs */
	st32le(p + 16, g->snaplen);
	st32le(p + 20, 1);       /* LINKTYPE_ETHERNET */
	g->blen += 24;
}

static void put_mac(uint8_t *p, const uint8_t *addr, int v6)
{
	/* Locally administered, derived from the address so a host keeps its MAC. */
	const uint8_t *t = v6 ? addr + 12 : addr;

	p[0] = 0x02;
	p[1] = 0x00;
	memcpy(p + 2, t, 4);
}

/* What a transport builder wrote at the start of the IP payload. */
struct l4 {
	size_t hl;          /* header bytes written */
	size_t paylen;      /* payload bytes after them (zeros, filled by the caller) */
	size_t nz;          /* leading bytes that are not zero: all a checksum must sum */
	int csum_at;        /* offset of a checksum left to the caller, or -1 */
	uint16_t frag;      /* IPv4 flags + fragment offset */
	uint8_t tcp_flags;
};

/* Ethernet header with 0, 1 (802.1Q) or 2 (802.1ad + 802.1Q) tags. Returns its length. */
static size_t build_eth(const struct conv *c, uint8_t *f, const uint8_t *src,
			const uint8_t *dst)
{
	int v6 = c->ipver == 6;
	size_t l2 = 12;

	put_mac(f, dst, v6);
	put_mac(f + 6, src, v6);
	if (c->tags == 2) {
		st16(f + l2, 0x88a8);
		st16(f + l2 + 2, c->vlan);
		st16(f + l2 + 4, 0x8100);
		st16(f + l2 + 6, c->vlan_inner);
		l2 += 8;
	} else if (c->tags == 1) {
		st16(f + l2, 0x8100);
		st16(f + l2 + 2, (uint16_t)((c->tos >> 5) << 13 | c->vlan));   /* PCP from ToS */
		l2 += 4;
	}
	st16(f + l2, v6 ? 0x86dd : 0x0800);
	return l2 + 2;
}

/* TCP: SYN (SYN|ACK) first, FIN|ACK last, data or pure ACKs between. */
static void build_tcp(struct rng *r, struct conv *c, int d, uint8_t *p, size_t mss,
		      struct l4 *o)
{
	struct dir *dr = &c->d[d];
	uint8_t f;

	o->hl = 20;
	if (dr->sent == 0) {
		f = d ? 0x12 : 0x02;        /* SYN, SYN|ACK */
		o->hl = 24;                 /* MSS option */
	} else if (dr->left == 1) {
		f = 0x11;                   /* FIN|ACK: the last packet of the flow */
	} else if (d == c->bulk) {
		o->paylen = rng_chance(r, 700) ? mss : rng_range(r, 1, (uint32_t)mss);
		f = rng_chance(r, 300) ? 0x18 : 0x10;
	} else if (rng_chance(r, 300)) {
		o->paylen = rng_range(r, 1, 600);
		f = 0x18;                   /* PSH|ACK */
	} else {
		f = 0x10;                   /* pure ACK: a 40-byte IPv4 packet */
	}
	st16(p, d ? c->bport : c->aport);
	st16(p + 2, d ? c->aport : c->bport);
	st32(p + 4, dr->seq);
	st32(p + 8, f == 0x02 ? 0 : c->d[!d].seq);
	p[12] = (uint8_t)(o->hl / 4) << 4;
	p[13] = f;
	st16(p + 14, 64240);
	st16(p + 16, 0);
	st16(p + 18, 0);
	if (o->hl == 24) {
		p[20] = 2;
		p[21] = 4;
		st16(p + 22, (uint16_t)mss);
	}
	dr->seq += (uint32_t)o->paylen + ((f & 0x03) ? 1 : 0);
	o->tcp_flags = f;
	o->nz = o->hl;
	o->csum_at = 16;
}

static void put_udp(uint8_t *p, uint16_t sport, uint16_t dport, size_t udplen, struct l4 *o)
{
	st16(p, sport);
	st16(p + 2, dport);
	st16(p + 4, (uint16_t)udplen);
	st16(p + 6, 0);
	o->hl = 8;
	o->nz = 8;
	o->csum_at = 6;
}

/* UDP and DNS datagrams that fit in one packet. */
static void build_udp(struct rng *r, const struct conv *c, int d, uint8_t *p, size_t maxpay,
		      struct l4 *o)
{
	if (c->kind == K_DNS)
		o->paylen = d ? rng_range(r, 40, 400) : rng_range(r, 20, 80);
	else
		o->paylen = rng_range(r, c->size_lo, c->size_hi < maxpay ? c->size_hi :
				      (uint32_t)maxpay);
	put_udp(p, d ? c->bport : c->aport, d ? c->aport : c->bport, 8 + o->paylen, o);
}

/* One packet of a fragmenting UDP flow: a fragment of the current datagram, or the
 * first fragment of a new one (2 to 4 fragments, no more than the flow has left).
 * Fragments carry 8-byte multiples; only the first has the UDP header. */
static void build_frag(struct gen *g, struct conv *c, uint8_t *p, size_t iphl, struct l4 *o)
{
	struct rng *r = &g->rng;
	struct dir *dr = &c->d[0];
	size_t fds = (GEN_MTU - iphl) & ~(size_t)7, n;
	uint32_t sum;

	if (!c->frag_len) {
		uint32_t m = dr->left < 2 ? 1 : rng_range(r, 2, dr->left < 4 ? dr->left : 4);

		if (m > 2 && rng_chance(r, 500))
			m = 2;
		dr->ipid++;
		if (m == 1) {   /* the flow's last packet: a datagram that fits */
			o->paylen = rng_range(r, 20, 1000);
			put_udp(p, c->aport, c->bport, 8 + o->paylen, o);
			return;
		}
		c->frag_len = (uint16_t)((m - 1) * fds + rng_range(r, 1, (uint32_t)fds));
		c->frag_off = 0;
	}
	n = c->frag_len - c->frag_off;
	if (n > fds)
		n = fds;
	o->frag = (uint16_t)(c->frag_off / 8) | (c->frag_off + n < c->frag_len ? 0x2000 : 0);
	if (c->frag_off == 0) {
		/* The checksum covers the whole datagram; its payload is zeros, so the
		 * pseudo-header and the UDP header are the whole sum. */
		put_udp(p, c->aport, c->bport, c->frag_len, o);
		sum = csum_add(0, c->a, 4);
		sum = csum_add(sum, c->b, 4);
		sum = csum_add(sum + 17 + c->frag_len, p, 8);
		st16(p + 6, csum_fold(sum) ? csum_fold(sum) : 0xffff);
		o->csum_at = -1;
		o->paylen = n - 8;
	} else {
		o->paylen = n;
		g->st.frags_later++;
	}
	c->frag_off = (uint16_t)(c->frag_off + n);
	if (c->frag_off >= c->frag_len)
		c->frag_len = 0;
}

/* ICMP echo request/reply (v4 8/0, v6 128/129) and port unreachable (v4 3/3), which
 * quotes the IPv4 + UDP header of the datagram that caused it. */
static void build_icmp(struct rng *r, struct conv *c, int d, uint8_t *p, size_t maxpay,
		       struct l4 *o)
{
	uint8_t *q = p + 8;

	icmp_tc(c, d, &p[0], &p[1]);
	st16(p + 2, 0);
	o->hl = 8;
	o->nz = 8;
	o->csum_at = 2;
	if (c->kind == K_ECHO) {
		st16(p + 4, c->echo_id);
		st16(p + 6, (uint16_t)c->d[d].seq++);
		o->paylen = c->size_lo < maxpay ? c->size_lo : maxpay;
		return;
	}
	st32(p + 4, 0);
	memset(q, 0, 28);
	q[0] = 0x45;
	st16(q + 2, (uint16_t)rng_range(r, 28, 512));
	st16(q + 4, (uint16_t)rng_next(r));
	q[8] = 64;
	q[9] = 17;
	memcpy(q + 12, c->b, 4);   /* the client that sent it */
	memcpy(q + 16, c->a, 4);
	st16(q + 10, csum_fold(csum_add(0, q, 20)));
	st16(q + 20, ephemeral(r));
	st16(q + 22, (uint16_t)rng_range(r, 1024, 65535));
	st16(q + 24, 8);
	o->paylen = 28;
	o->nz = 36;
}

/* GRE (carrying IPv4) and ESP (SPI + sequence); their payloads are zeros. */
static void build_tunnel(struct rng *r, struct conv *c, int d, uint8_t *p, struct l4 *o)
{
	if (c->kind == K_GRE) {
		st16(p, 0);
		st16(p + 2, 0x0800);
		o->hl = 4;
		o->paylen = rng_range(r, c->size_lo, c->size_hi);
	} else {
		st32(p, 0x1000 + (uint32_t)d + (uint32_t)c->echo_id * 2);
		st32(p + 4, ++c->d[d].seq);
		o->hl = 8;
		o->paylen = rng_range(r, c->size_lo, c->size_hi) & ~(size_t)3;
	}
	o->nz = o->hl;
	o->csum_at = -1;
}

/* The transport checksum, pseudo-header included (none for ICMPv4). */
static void l4_csum(uint8_t *p, const struct l4 *o, uint8_t proto, const uint8_t *src,
		    const uint8_t *dst, size_t alen)
{
	uint32_t sum = 0;
	uint16_t v;

	if (o->csum_at < 0)
		return;
	if (proto != 1) {
		sum = csum_add(sum, src, alen);
		sum = csum_add(sum, dst, alen);
		sum += proto + (uint32_t)(o->hl + o->paylen);
	}
	v = csum_fold(csum_add(sum, p, o->nz));
	st16(p + o->csum_at, (proto == 17 && !v) ? 0xffff : v);
}

/* IPv4 (IHL 5, or 6 with a Router Alert option) or IPv6 header for l4len payload bytes. */
static void build_ip(const struct conv *c, struct dir *dr, uint8_t *ip, const uint8_t *src,
		     const uint8_t *dst, uint8_t proto, size_t l4len, uint16_t frag)
{
	if (c->ipver == 6) {
		ip[0] = (uint8_t)(0x60 | c->tos >> 4);
		ip[1] = (uint8_t)((c->tos & 0x0f) << 4 | (c->flabel >> 16 & 0x0f));
		st16(ip + 2, (uint16_t)c->flabel);
		st16(ip + 4, (uint16_t)l4len);
		ip[6] = proto;
		ip[7] = 64;
		memcpy(ip + 8, src, 16);
		memcpy(ip + 24, dst, 16);
		return;
	}
	ip[0] = (uint8_t)(0x40 | c->ihl);
	ip[1] = c->tos;
	st16(ip + 2, (uint16_t)(c->ihl * 4 + l4len));
	if (c->kind != K_FRAG)   /* fragmenting flows number datagrams, not packets */
		dr->ipid++;
	st16(ip + 4, dr->ipid);
	st16(ip + 6, c->kind == K_TCP ? 0x4000 : frag);   /* DF on TCP */
	ip[8] = 64;
	ip[9] = proto;
	st16(ip + 10, 0);
	memcpy(ip + 12, src, 4);
	memcpy(ip + 16, dst, 4);
	if (c->ihl == 6) {
		ip[20] = 0x94;
		ip[21] = 4;
		ip[22] = 0;
		ip[23] = 0;
	}
	st16(ip + 10, csum_fold(csum_add(0, ip, (size_t)c->ihl * 4)));
}

/* Counts a packet of iplen IP bytes for direction d at time t: truth and totals. */
static void account(struct gen *g, struct conv *c, int d, uint64_t t, size_t iplen,
		    uint8_t tcp_flags)
{
	struct dir *dr = &c->d[d];
	struct rec *rc = &g->recs[dr->rec];
	uint64_t abs_us = g->start_us + t;

	if (!rc->packets) {
		rc->first_us = abs_us;
		if (++g->st.active > g->st.active_max)
			g->st.active_max = g->st.active;
	}
	rc->packets++;
	rc->bytes += iplen;
	rc->last_us = abs_us;
	rc->flags |= tcp_flags;
	dr->sent++;
	dr->last_us = t;
	if (!--dr->left)
		g->st.active--;
	c->left--;
	if (!g->packets)
		g->first_us = abs_us;
	g->last_us = abs_us;
	g->packets++;
	g->bytes += iplen;
	g->st.pkts[c->kind]++;
	g->st.v6_pkts += c->ipver == 6;
	g->st.opt_pkts += c->ihl == 6;
	g->st.tag1_pkts += c->tags == 1;
	g->st.tag2_pkts += c->tags == 2;
}

/* Writes the next packet of direction d at time t into the output buffer (which has
 * room for 16 + MAX_FRAME bytes) and counts it. */
static void emit(struct gen *g, struct conv *c, int d, uint64_t t)
{
	uint8_t *rh = g->buf + g->blen, *f = rh + 16, *ip, *p;
	const uint8_t *src = d ? c->b : c->a, *dst = d ? c->a : c->b;
	size_t iphl = c->ipver == 6 ? 40 : (size_t)c->ihl * 4, maxpay, iplen, flen, caplen;
	uint8_t proto = conv_proto(c);
	uint64_t abs_us = g->start_us + t;
	struct l4 o = { .csum_at = -1 };

	ip = f + build_eth(c, f, src, dst);
	p = ip + iphl;
	maxpay = GEN_MTU - iphl - 8;
	switch (c->kind) {
	case K_TCP:
		build_tcp(&g->rng, c, d, p, GEN_MTU - iphl - 20, &o);
		break;
	case K_UDP:
	case K_DNS:
		build_udp(&g->rng, c, d, p, maxpay, &o);
		break;
	case K_FRAG:
		build_frag(g, c, p, iphl, &o);
		break;
	case K_ECHO:
	case K_UNREACH:
		build_icmp(&g->rng, c, d, p, maxpay, &o);
		break;
	default:
		build_tunnel(&g->rng, c, d, p, &o);
		break;
	}
	memset(p + o.hl, 0, o.paylen);
	l4_csum(p, &o, proto, src, dst, c->ipver == 6 ? 16 : 4);
	build_ip(c, &c->d[d], ip, src, dst, proto, o.hl + o.paylen, o.frag);
	iplen = iphl + o.hl + o.paylen;

	flen = (size_t)(ip - f) + iplen;
	if (flen < 60) {
		memset(f + flen, 0, 60 - flen);   /* Ethernet padding: not in the IP count */
		flen = 60;
		g->st.padded++;
	}
	caplen = flen < g->snaplen ? flen : g->snaplen;
	g->st.truncated += caplen < flen;
	st32le(rh, (uint32_t)(abs_us / 1000000));
	st32le(rh + 4, (uint32_t)(abs_us % 1000000));
	st32le(rh + 8, (uint32_t)caplen);
	st32le(rh + 12, (uint32_t)flen);
	g->blen += 16 + caplen;
	account(g, c, d, t, iplen, o.tcp_flags);
}

/* Which direction sends the packet at c->t_next. A direction that would otherwise wait
 * past 9.5 s (judged against the packet after this one) claims it; conversation gaps
 * are < 4.7 s, so two directions never need the same packet. */
static int pick_dir(struct rng *r, const struct conv *c)
{
	const uint64_t limit = 9500000;
	const struct dir *d0 = &c->d[0], *d1 = &c->d[1];

	if (!d0->sent || !d1->left)
		return 0;
	if (!d0->left)
		return 1;
	if (!d1->sent)
		return 1;   /* the reply comes right after the opener (SYN|ACK, echo reply) */
	if (c->t_after - d1->last_us > limit)
		return 1;
	if (c->t_after - d0->last_us > limit)
		return 0;
	return rng_below(r, d0->left + d1->left) < d1->left;
}

/* ---- Slot heap, ordered by (t_next, slot) so ties are deterministic ---- */

static int slot_less(const struct gen *g, uint32_t a, uint32_t b)
{
	uint64_t ta = g->convs[a].t_next, tb = g->convs[b].t_next;

	return ta < tb || (ta == tb && a < b);
}

static void heap_down(struct gen *g, uint32_t i)
{
	uint32_t n = g->nheap, *h = g->heap;

	for (;;) {
		uint32_t l = 2 * i + 1, m = i;

		if (l < n && slot_less(g, h[l], h[m]))
			m = l;
		if (l + 1 < n && slot_less(g, h[l + 1], h[m]))
			m = l + 1;
		if (m == i)
			return;
		uint32_t tmp = h[i];
		h[i] = h[m];
		h[m] = tmp;
		i = m;
	}
}

/* ---- Calibration: gaps and slot count so that the capture runs at --rate packets/s
 * with -f flows in progress (first to last packet) at once. ---- */

/* Plays one conversation's timing only, with the main loop's gap and direction rules
 * (fragment spacing left out: it is microseconds). Returns the conversation's span;
 * *flow_span gets the sum of its flows' spans. Seconds. */
static double conv_sim(struct rng *r, const struct shape *s, double gap_cap, double *flow_span)
{
	struct conv c;
	uint64_t first[2] = { 0, 0 };

	memset(&c, 0, sizeof(c));
	c.d[0].left = s->n[0];
	c.d[1].left = s->n[1];
	c.left = s->n[0] + s->n[1];
	c.gap_us = (uint64_t)(conv_gap_s(gap_cap, c.left) * 1e6);
	c.t_after = draw_gap(r, c.gap_us);
	for (;;) {
		int d = pick_dir(r, &c);

		if (!c.d[d].sent)
			first[d] = c.t_next;
		c.d[d].sent++;
		c.d[d].left--;
		c.d[d].last_us = c.t_next;
		if (!--c.left)
			break;
		c.t_next = c.t_after;
		c.t_after = c.t_next + draw_gap(r, c.gap_us);
	}
	*flow_span = (double)(c.d[0].last_us - first[0] + c.d[1].last_us - first[1]) / 1e6;
	return (double)c.t_next / 1e6;
}

struct calib {
	uint64_t seed;
	double mean_pkts;
	struct shape s[CAL_SAMPLES];
};

/* Mean conversation span and mean summed flow span at gap cap gap; each sample has its
 * own stream, so a sample whose gaps do not depend on the cap gives the same answer. */
static void calib_eval(const struct calib *cb, double gap, double *span, double *fspan)
{
	double sp = 0, fs = 0;

	for (uint32_t i = 0; i < CAL_SAMPLES; i++) {
		struct rng r;
		double f;

		rng_seed(&r, cb->seed + i);
		sp += conv_sim(&r, &cb->s[i], gap, &f);
		fs += f;
	}
	*span = sp / CAL_SAMPLES;
	*fspan = fs / CAL_SAMPLES;
}

/* Little's law twice: flows in progress / packet rate = E[flow spans] / E[packets] per
 * conversation fixes the gap cap; then slots = rate x E[cycle] / E[packets], a cycle
 * being a conversation's span plus an idle time (about the gap cap). If even the largest
 * gap cannot hold that many flows open, the rate wins. Returns the number of slots, or
 * 0 if out of memory. */
static uint32_t calibrate(struct gen *g, uint64_t seed, uint32_t flows, double rate)
{
	struct calib *cb = malloc(sizeof(*cb));
	struct rng r;
	double sp = 0, want, span, fspan, lo = 0, hi = GAP_MAX_S;
	uint32_t slots;

	if (!cb)
		return 0;
	cb->seed = seed ^ 0x5eed5eed5eedULL;
	rng_seed(&r, cb->seed);
	for (int i = 0; i < CAL_SAMPLES; i++)
		shape_sample(&r, &cb->s[i]);
	/* The mean size needs many more samples than the timing: a few conversations in a
	 * thousand carry a third of the packets. */
	for (int i = 0; i < CAL_SIZE_SAMPLES; i++) {
		struct shape s;

		shape_sample(&r, &s);
		sp += s.n[0] + s.n[1];
	}
	cb->mean_pkts = sp / CAL_SIZE_SAMPLES;
	g->mean_pkts = cb->mean_pkts;
	want = flows / rate * cb->mean_pkts;
	calib_eval(cb, hi, &span, &fspan);
	if (fspan < want) {
		fprintf(stderr, "genpcap: warning: %u flows in progress need --rate %.0f or more; "
			"this rate holds about %.0f\n", flows, flows * cb->mean_pkts / fspan,
			rate * fspan / cb->mean_pkts);
	} else {
		for (int i = 0; i < 30; i++) {
			double mid = (lo + hi) / 2;

			calib_eval(cb, mid, &span, &fspan);
			if (fspan < want)
				lo = mid;
			else
				hi = mid;
		}
		calib_eval(cb, hi, &span, &fspan);
	}
	g->gap_s = hi;
	slots = (uint32_t)(rate * (span + hi) / cb->mean_pkts + 0.5);
	if (!slots)
		slots = 1;
	/* The idle time absorbs the rounding of the slot count, so the rate holds. */
	g->cycle_s = slots * cb->mean_pkts / rate;
	g->idle_s = g->cycle_s > span ? g->cycle_s - span : 0;
	free(cb);
	return slots;
}

/* ---- The run ---- */

/* Schedules the packet after the one c just sent at t. */
static void conv_advance(struct gen *g, struct conv *c, uint64_t t)
{
	if (c->frag_len) {
		c->t_next = t + rng_range(&g->rng, 5, 100);   /* the datagram's next fragment */
	} else {
		c->t_next = c->t_after;
		c->t_after = c->t_next + draw_gap(&g->rng, c->gap_us);
	}
	if (c->t_next < t)   /* fragments ran past the planned time */
		c->t_next = t;
	if (c->t_after < c->t_next)
		c->t_after = c->t_next;
}

/* Starts every slot, then writes packets in time order until the budget is spent and
 * every conversation has ended. Returns 0 or a negative errno (g->werr is set when
 * writing failed). */
static int gen_run(struct gen *g, uint32_t slots)
{
	uint64_t cycle_us = (uint64_t)(g->cycle_s * 1e6) + 1;
	uint64_t idle = (uint64_t)(g->idle_s * 1e6);
	int err;

	/* Slots start spread over one cycle: concurrency ramps up instead of every slot
	 * opening at once. */
	for (uint32_t i = 0; i < slots; i++) {
		err = conv_start(g, &g->convs[i], rng_next(&g->rng) % cycle_us);
		if (err < 0)
			return err;
		if (err)
			g->heap[g->nheap++] = i;
	}
	for (uint32_t i = g->nheap / 2; i-- > 0;)
		heap_down(g, i);

	while (g->nheap) {
		struct conv *c = &g->convs[g->heap[0]];
		uint64_t t = c->t_next;

		g->st.active_area += (double)g->st.active * (double)(t - g->st.prev_us) / 1e6;
		g->st.prev_us = t;
		if (g->blen + 16 + MAX_FRAME > OUTBUF_SIZE && (err = out_flush(g)))
			return err;
		emit(g, c, pick_dir(&g->rng, c), t);
		if (c->left) {
			conv_advance(g, c, t);
		} else {
			err = conv_start(g, c, t + (idle ? rng_next(&g->rng) % (2 * idle + 1) : 0));
			if (err < 0)
				return err;
			if (!err)   /* budget spent: the slot retires */
				g->heap[0] = g->heap[--g->nheap];
		}
		if (g->nheap)
			heap_down(g, 0);
	}
	return out_flush(g);
}

/* ---- Truth CSV ---- */

static int rec_cmp(const void *a, const void *b)
{
	const struct rec *x = a, *y = b;

	if (x->first_us != y->first_us)
		return x->first_us < y->first_us ? -1 : 1;
	return x->order < y->order ? -1 : x->order > y->order;
}

static int write_truth(struct gen *g, const char *path)
{
	FILE *f = fopen(path, "w");
	char s[INET6_ADDRSTRLEN], t[INET6_ADDRSTRLEN];

	if (!f)
		return -errno;
	qsort(g->recs, g->nrecs, sizeof(*g->recs), rec_cmp);
	fprintf(f, "ipver,src,dst,sport,dport,proto,tos,vlan,packets,bytes,first_ms,last_ms,"
		"tcp_flags\n");
	for (size_t i = 0; i < g->nrecs; i++) {
		const struct rec *rc = &g->recs[i];
		int af = rc->ipver == 6 ? AF_INET6 : AF_INET;

		inet_ntop(af, rc->src, s, sizeof(s));
		inet_ntop(af, rc->dst, t, sizeof(t));
		fprintf(f, "%u,%s,%s,%u,%u,%u,%u,%u,%" PRIu64 ",%" PRIu64 ",%" PRIu64 ",%" PRIu64
			",%u\n", rc->ipver, s, t, rc->sport, rc->dport, rc->proto, rc->tos,
			rc->vlan, rc->packets, rc->bytes, rc->first_us / 1000, rc->last_us / 1000,
			rc->flags);
	}
	if (ferror(f)) {
		fclose(f);
		return -EIO;
	}
	return fclose(f) ? -errno : 0;
}

static void print_stats(const struct gen *g, uint32_t slots)
{
	const struct stats *st = &g->st;
	double span = (double)(g->last_us - g->first_us) / 1e6;

	fprintf(stderr, "slots=%u gap_cap_s=%.3f idle_s=%.3f cycle_s=%.2f mean_pkts=%.2f "
		"span_s=%.1f rate=%.0f\n", slots, g->gap_s, g->idle_s, g->cycle_s, g->mean_pkts,
		span, span > 0 ? g->packets / span : 0);
	for (int k = 0; k < K_NKINDS; k++)
		fprintf(stderr, "  %-9s convs=%-8" PRIu64 " flows=%-8" PRIu64 " packets=%-9" PRIu64
			" (%.1f%% of packets, %.1f%% of flows)\n", kind_name[k], st->convs[k],
			st->flows[k], st->pkts[k], g->packets ? 100.0 * st->pkts[k] / g->packets : 0,
			g->nrecs ? 100.0 * st->flows[k] / g->nrecs : 0);
	if (!g->packets)
		return;
	fprintf(stderr, "  ipv6 %.1f%%, 802.1Q %.1f%%, QinQ %.1f%%, IPv4 options %.2f%% of "
		"packets; padded frames %" PRIu64 ", later fragments %" PRIu64 ", truncated %"
		PRIu64 "\n", 100.0 * st->v6_pkts / g->packets, 100.0 * st->tag1_pkts / g->packets,
		100.0 * st->tag2_pkts / g->packets, 100.0 * st->opt_pkts / g->packets, st->padded,
		st->frags_later, st->truncated);
	fprintf(stderr, "  flows in progress: mean %.0f, max %" PRIu64 "\n",
		span > 0 ? st->active_area / span : 0, st->active_max);
}

static void usage(FILE *f)
{
	fprintf(f, "usage: genpcap -o OUT.pcap [-t TRUTH.csv] [-n PACKETS] [-f CONCURRENT_FLOWS]"
		" [-s SEED]\n               [--start UNIX_SECS] [--rate PPS] [--snaplen N] [-v]\n");
}

static int parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *v)
{
	char *end;
	unsigned long long x;

	errno = 0;
	x = strtoull(s, &end, 0);
	if (errno || end == s || *end || s[0] == '-' || x < min || x > max)
		return -EINVAL;
	*v = x;
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option lopts[] = {
		{ "start", required_argument, NULL, 'S' },
		{ "rate", required_argument, NULL, 'R' },
		{ "snaplen", required_argument, NULL, 'L' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct gen g;
	const char *outp = NULL, *truthp = NULL;
	uint64_t npk = 100000, flows = 2000, seed = 1, start = 1767225600, snap = 65535;
	double rate = 2000;
	uint32_t slots;
	int verbose = 0, opt, err = 0, rc = 1;

	while ((opt = getopt_long(argc, argv, "o:t:n:f:s:vh", lopts, NULL)) != -1) {
		char *end;

		switch (opt) {
		case 'o':
			outp = optarg;
			break;
		case 't':
			truthp = optarg;
			break;
		case 'n':
			err = parse_u64(optarg, 0, UINT32_MAX, &npk);
			break;
		case 'f':
			err = parse_u64(optarg, 1, 10000000, &flows);
			break;
		case 's':
			err = parse_u64(optarg, 0, UINT64_MAX, &seed);
			break;
		case 'S':
			err = parse_u64(optarg, 0, UINT32_MAX - 1000000, &start);
			break;
		case 'L':
			err = parse_u64(optarg, MIN_SNAPLEN, 262144, &snap);
			break;
		case 'R':
			errno = 0;
			rate = strtod(optarg, &end);
			if (errno || end == optarg || *end || !(rate >= 0.001 && rate <= 1e9))
				err = -EINVAL;
			break;
		case 'v':
			verbose = 1;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 1;
		}
		if (err) {
			fprintf(stderr, "genpcap: bad option value: %s%s\n", optarg,
				opt == 'L' ? " (snaplen must be 96..262144 so headers fit)" : "");
			return 1;
		}
	}
	if (!outp || optind != argc) {
		usage(stderr);
		return 1;
	}

	memset(&g, 0, sizeof(g));
	rng_seed(&g.rng, seed);
	g.budget = npk;
	g.start_us = start * 1000000;
	g.snaplen = (uint32_t)snap;
	slots = calibrate(&g, seed, (uint32_t)flows, rate);
	g.buf = malloc(OUTBUF_SIZE);
	g.convs = calloc(slots, sizeof(*g.convs));
	g.heap = calloc(slots, sizeof(*g.heap));
	if (!slots || !g.buf || !g.convs || !g.heap || hosts_init(&g)) {
		fprintf(stderr, "genpcap: out of memory\n");
		goto out;
	}
	g.out = fopen(outp, "wb");
	if (!g.out) {
		fprintf(stderr, "genpcap: %s: %s\n", outp, strerror(errno));
		goto out;
	}
	pcap_header(&g);

	err = gen_run(&g, slots);
	if (err) {
		if (g.werr)
			goto wfail;
		fprintf(stderr, "genpcap: %s\n", err == -EAGAIN ? "ran out of fresh flow keys" :
			strerror(-err));
		goto out;
	}
	if (g.last_us / 1000000 > UINT32_MAX) {
		fprintf(stderr, "genpcap: capture runs past 2106 (32-bit pcap seconds): lower "
			"--start or raise --rate\n");
		goto out;
	}
	if (fclose(g.out)) {
		g.out = NULL;
		goto wfail;
	}
	g.out = NULL;
	if (truthp && (err = write_truth(&g, truthp)) < 0) {
		fprintf(stderr, "genpcap: %s: %s\n", truthp, strerror(-err));
		goto out;
	}
	printf("packets=%" PRIu64 " bytes=%" PRIu64 " flows=%zu first_ms=%" PRIu64 " last_ms=%"
	       PRIu64 "\n", g.packets, g.bytes, g.nrecs, g.first_us / 1000, g.last_us / 1000);
	if (verbose)
		print_stats(&g, slots);
	rc = 0;
	goto out;
wfail:
	fprintf(stderr, "genpcap: %s: write failed: %s\n", outp, strerror(g.werr ? g.werr : errno));
out:
	if (g.out)
		fclose(g.out);
	free(g.buf);
	free(g.convs);
	free(g.heap);
	free(g.hosts);
	free(g.recs);
	free(g.keys.h);
	return rc;
}
