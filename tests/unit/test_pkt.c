/* test_pkt.c: the packet parser. Hand-built frames for every link type, header and
 * error case; every prefix of valid frames placed against a guard page; odd-aligned
 * input; result names.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "bytes.h"
#include "pkt.h"

/* ---- frame builder ---- */

struct fb {
	uint8_t b[2048];
	size_t n;
};

static void put(struct fb *f, const void *p, size_t n)
{
	assert_true(f->n + n <= sizeof(f->b));
	memcpy(f->b + f->n, p, n);
	f->n += n;
}

static void put8(struct fb *f, uint8_t v)
{
	put(f, &v, 1);
}

static void put16(struct fb *f, uint16_t v)
{
	uint8_t b[2];
	st_be16(b, v);
	put(f, b, 2);
}

static void put32(struct fb *f, uint32_t v)
{
	uint8_t b[4];
	st_be32(b, v);
	put(f, b, 4);
}

static void putz(struct fb *f, size_t n)
{
	assert_true(f->n + n <= sizeof(f->b));
	memset(f->b + f->n, 0, n);
	f->n += n;
}

static const uint8_t SRC4[4] = { 192, 0, 2, 1 };
static const uint8_t DST4[4] = { 198, 51, 100, 7 };
static const uint8_t SRC6[16] = { 0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1 };
static const uint8_t DST6[16] = { 0x20, 0x01, 0x0d, 0xb8, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x12, 0x34 };

static void eth(struct fb *f, uint16_t et)
{
	static const uint8_t macs[12] = { 0, 0x11, 0x22, 0x33, 0x44, 0x55, 0, 0x66, 0x77, 0x88, 0x99, 0xaa };
	put(f, macs, 12);
	put16(f, et);
}

/* One VLAN tag; the tag's TPID is the ethertype written before it. */
static void tag(struct fb *f, uint16_t vid, uint16_t et)
{
	put16(f, (uint16_t)(5 << 13 | vid));  /* priority bits must not leak into the id */
	put16(f, et);
}

static void sll(struct fb *f, uint16_t proto)
{
	put16(f, 0);      /* packet type: to us */
	put16(f, 1);      /* ARPHRD_ETHER */
	put16(f, 6);
	put(f, "\x00\x11\x22\x33\x44\x55\x00\x00", 8);
	put16(f, proto);
}

static void sll2(struct fb *f, uint16_t proto)
{
	put16(f, proto);
	put16(f, 0);      /* reserved */
	put32(f, 3);      /* ifindex */
	put16(f, 1);      /* ARPHRD_ETHER */
	put8(f, 4);       /* outgoing */
	put8(f, 6);
	put(f, "\x00\x11\x22\x33\x44\x55\x00\x00", 8);
}

/* IPv4 header of ihl words (options filled with NOPs); returns its offset so the
 * total length can be fixed once the payload is in. */
static size_t ip4(struct fb *f, unsigned ihl, uint8_t tos, uint8_t proto, uint16_t ff,
		  uint16_t id)
{
	size_t at = f->n;
	put8(f, (uint8_t)(0x40 | ihl));
	put8(f, tos);
	put16(f, 0);
	put16(f, id);
	put16(f, ff);
	put8(f, 64);
	put8(f, proto);
	put16(f, 0);
	put(f, SRC4, 4);
	put(f, DST4, 4);
	for (unsigned i = 20; i < ihl * 4; i++)
		put8(f, 1);
	return at;
}

static void ip4_len(struct fb *f, size_t at)
{
	st_be16(f->b + at + 2, (uint16_t)(f->n - at));
}

static size_t ip6(struct fb *f, uint8_t tclass, uint8_t nh)
{
	size_t at = f->n;
	put32(f, 6u << 28 | (uint32_t)tclass << 20 | 0xbeefu);
	put16(f, 0);
	put8(f, nh);
	put8(f, 64);
	put(f, SRC6, 16);
	put(f, DST6, 16);
	return at;
}

static void ip6_len(struct fb *f, size_t at)
{
	st_be16(f->b + at + 4, (uint16_t)(f->n - at - 40));
}

/* Extension header of the 8-byte-unit kind, 8 * (units + 1) bytes long. */
static void ext(struct fb *f, uint8_t nh, uint8_t units)
{
	put8(f, nh);
	put8(f, units);
	for (unsigned i = 2; i < 8u * (units + 1u); i++)
		put8(f, i == 2 ? 1 : 0);  /* PadN-ish filler */
}

static void frag6(struct fb *f, uint8_t nh, uint16_t off8, int more, uint32_t id)
{
	put8(f, nh);
	put8(f, 0);
	put16(f, (uint16_t)(off8 << 3 | (more ? 1 : 0)));
	put32(f, id);
}

static void tcp(struct fb *f, uint16_t sp, uint16_t dp, uint8_t flags, unsigned doff)
{
	put16(f, sp);
	put16(f, dp);
	put32(f, 1000);
	put32(f, 0);
	put8(f, (uint8_t)(doff << 4));
	put8(f, flags);
	put16(f, 65535);
	put16(f, 0);
	put16(f, 0);
	for (unsigned i = 20; i < doff * 4; i++)
		put8(f, 1);
}

static void udp(struct fb *f, uint16_t sp, uint16_t dp, size_t payload)
{
	put16(f, sp);
	put16(f, dp);
	put16(f, (uint16_t)(8 + payload));
	put16(f, 0);
	for (size_t i = 0; i < payload; i++)
		put8(f, (uint8_t)i);
}

/* ---- checks ---- */

static void is_v4(const struct pkt_key *k)
{
	static const uint8_t m[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
	assert_int_equal(k->ipver, 4);
	assert_memory_equal(k->src, m, 12);
	assert_memory_equal(k->src + 12, SRC4, 4);
	assert_memory_equal(k->dst, m, 12);
	assert_memory_equal(k->dst + 12, DST4, 4);
}

static void is_v6(const struct pkt_key *k)
{
	assert_int_equal(k->ipver, 6);
	assert_memory_equal(k->src, SRC6, 16);
	assert_memory_equal(k->dst, DST6, 16);
}

/* Parses with *pi prefilled with junk, so that fields the parser forgets show. */
static int parse(const struct fb *f, enum pkt_link link, struct pkt_info *pi)
{
	memset(pi, 0xa5, sizeof(*pi));
	int r = pkt_parse(f->b, f->n, link, 7, pi);
	if (r == PKT_OK) {
		static const uint8_t z[3];
		assert_memory_equal(pi->key.pad, z, 3);
		assert_int_equal(pi->key.in_if, 7);
	}
	return r;
}

/* ---- Ethernet, IPv4, transports ---- */

static void test_eth_ip4_tcp_options(void **state)
{
	(void)state;
	struct fb f = { .n = 0 };
	struct pkt_info pi;

	eth(&f, 0x0800);
	size_t at = ip4(&f, 7, 0xb8, 6, 0x4000 /* DF */, 0x1234);
	tcp(&f, 40000, 443, 0x12, 8);
	put(&f, "hello", 5);
	ip4_len(&f, at);

	assert_int_equal(parse(&f, PKT_LINK_ETH, &pi), PKT_OK);
	is_v4(&pi.key);
	assert_int_equal(pi.key.proto, 6);
	assert_int_equal(pi.key.tos, 0xb8);
	assert_int_equal(pi.key.sport, 40000);
	assert_int_equal(pi.key.dport, 443);
	assert_int_equal(pi.key.vlan, 0);
	assert_int_equal(pi.tcp_flags, 0x12);
	assert_int_equal(pi.ip_len, 28 + 32 + 5);
	assert_int_equal(pi.frag, PKT_FRAG_NONE);
}

static void test_tcp_cases(void **state)
{
	(void)state;
	struct fb f = { .n = 0 };
	struct pkt_info pi;

	/* Data offset below 5 is not TCP. */
	eth(&f, 0x0800);
	size_t at = ip4(&f, 5, 0, 6, 0, 1);
	tcp(&f, 1, 2, 0x02, 5);
	ip4_len(&f, at);
	f.b[at + 20 + 12] = 4 << 4;
	assert_int_equal(parse(&f, PKT_LINK_ETH, &pi), PKT_BAD_L4);

	/* Only the ports captured (snaplen): accepted, flags unknown = 0; IP length is
	 * still the header's. */
	f.b[at + 20 + 12] = 5 << 4;
	f.n = 14 + 20 + 4;
	assert_int_equal(parse(&f, PKT_LINK_ETH, &pi), PKT_OK);
	assert_int_equal(pi.key.sport, 1);
	assert_int_equal(pi.key.dport, 2);
	assert_int_equal(pi.tcp_flags, 0);
	assert_int_equal(pi.ip_len, 40);
	f.n = 14 + 20 + 3;
	assert_int_equal(parse(&f, PKT_LINK_ETH, &pi), PKT_TRUNC_L4);

	/* All flags including CWR/ECE come through. */
	f.n = 14 + 20 + 20;
	f.b[at + 20 + 13] = 0xff;
	assert_int_equal(parse(&f, PKT_LINK_ETH, &pi), PKT_OK);
	assert_int_equal(pi.tcp_flags, 0xff);
}

static void test_udp_sctp_udplite(void **state)
{
	(void)state;
	static const uint8_t protos[] = { 17, 132, 136 };

	for (size_t i = 0; i < sizeof(protos); i++) {
		struct fb f = { .n = 0 };
		struct pkt_info pi;

		eth(&f, 0x0800);
		size_t at = ip4(&f, 5, 0x10, protos[i], 0, 9);
		udp(&f, 5353, 53, 100);
		ip4_len(&f, at);
		assert_int_equal(parse(&f, PKT_LINK_ETH, &pi), PKT_OK);
		is_v4(&pi.key);
		assert_int_equal(pi.key.proto, protos[i]);
		assert_int_equal(pi.key.sport, 5353);
		assert_int_equal(pi.key.dport, 53);
		assert_int_equal(pi.key.tos, 0x10);
		assert_int_equal(pi.tcp_flags, 0);
		assert_int_equal(pi.ip_len, 20 + 8 + 100);
	}
}

static void test_icmp_type_code(void **state)
{
	(void)state;
	struct fb f = { .n = 0 };
	struct pkt_info pi;

	eth(&f, 0x0800);
	size_t at = ip4(&f, 5, 0, 1, 0, 3);
	put8(&f, 3);   /* destination unreachable */
	put8(&f, 13);  /* administratively prohibited */
	putz(&f, 6);
	ip4_len(&f, at);
	assert_int_equal(parse(&f, PKT_LINK_ETH, &pi), PKT_OK);
	assert_int_equal(pi.key.proto, 1);
	assert_int_equal(pi.key.sport, 0);
	assert_int_equal(pi.key.dport, 3 << 8 | 13);

	/* Type and code are all ICMP needs. */
	f.n = at + 20 + 2;
	assert_int_equal(parse(&f, PKT_LINK_ETH, &pi), PKT_OK);
	assert_int_equal(pi.key.dport, 3 << 8 | 13);
	f.n = at + 20 + 1;
	assert_int_equal(parse(&f, PKT_LINK_ETH, &pi), PKT_TRUNC_L4);

	/* ICMPv6 echo request. */
	f.n = 0;
	eth(&f, 0x86dd);
	at = ip6(&f, 0, 58);
	put8(&f, 128);
	put8(&f, 0);
	putz(&f, 6);
	ip6_len(&f, at);
	assert_int_equal(parse(&f, PKT_LINK_ETH, &pi), PKT_OK);
	is_v6(&pi.key);
	assert_int_equal(pi.key.proto, 58);
	assert_int_equal(pi.key.sport, 0);
	assert_int_equal(pi.key.dport, 128 << 8);
}

static void test_other_protocols(void **state)
{
	(void)state;
	static const uint8_t protos[] = { 47 /* GRE */, 50 /* ESP */, 89 /* OSPF */, 2 /* IGMP */ };

	for (size_t i = 0; i < sizeof(protos); i++) {
		struct fb f = { .n = 0 };
		struct pkt_info pi;

		eth(&f, 0x0800);
		size_t at = ip4(&f, 5, 0, protos[i], 0, 1);
		put32(&f, 0xdeadbeef);
		ip4_len(&f, at);
		assert_int_equal(parse(&f, PKT_LINK_ETH, &pi), PKT_OK);
		assert_int_equal(pi.key.proto, protos[i]);
		assert_int_equal(pi.key.sport, 0);
		assert_int_equal(pi.key.dport, 0);
		/* Nothing of theirs is needed: an empty payload is fine too. */
		f.n = at + 20;
		assert_int_equal(parse(&f, PKT_LINK_ETH, &pi), PKT_OK);
	}
}

static void test_ip4_bad(void **state)
{
	(void)state;
	struct fb f = { .n = 0 };
	struct pkt_info pi;

	eth(&f, 0x0800);
	size_t at = ip4(&f, 6, 0, 17, 0, 1);
	udp(&f, 1, 2, 10);
	ip4_len(&f, at);
	assert_int_equal(parse(&f, PKT_LINK_ETH, &pi), PKT_OK);

	f.b[at] = 0x44;  /* IHL 4 */
	assert_int_equal(parse(&f, PKT_LINK_ETH, &pi), PKT_BAD_IP_HDRLEN);
	f.b[at] = 0x40;
	assert_int_equal(parse(&f, PKT_LINK_ETH, &pi), PKT_BAD_IP_HDRLEN);
	f.b[at] = 0x46;
	st_be16(f.b + at + 2, 23);  /* total length shorter than the 24-byte header */
	assert_int_equal(parse(&f, PKT_LINK_ETH, &pi), PKT_BAD_IP_LEN);
	f.b[at] = 0x45;
	st_be16(f.b + at + 2, 19);  /* shorter than even an option-less header */
	assert_int_equal(parse(&f, PKT_LINK_ETH, &pi), PKT_BAD_IP_LEN);
	f.b[at] = 0x46;
	st_be16(f.b + at + 2, 24);  /* header alone: the UDP ports are outside the packet */
	assert_int_equal(parse(&f, PKT_LINK_ETH, &pi), PKT_TRUNC_L4);
	ip4_len(&f, at);
	f.b[at] = 0x66;  /* version 6 behind ethertype 0x0800 */
	assert_int_equal(parse(&f, PKT_LINK_ETH, &pi), PKT_BAD_IP_VERSION);
}

static void test_ip4_fragments(void **state)
{
	(void)state;
	struct fb f = { .n = 0 };
	struct pkt_info pi;

	/* First fragment: MF, offset 0, ports present. */
	eth(&f, 0x0800);
	size_t at = ip4(&f, 5, 0, 17, 0x2000, 0xabcd);
	udp(&f, 1111, 2222, 1472);
	ip4_len(&f, at);
	assert_int_equal(parse(&f, PKT_LINK_ETH, &pi), PKT_OK);
	assert_int_equal(pi.frag, PKT_FRAG_FIRST);
	assert_int_equal(pi.frag_id, 0xabcd);
	assert_int_equal(pi.key.sport, 1111);
	assert_int_equal(pi.key.dport, 2222);
	assert_int_equal(pi.ip_len, 1500);

	/* Later fragment (offset 185 * 8, last one): the payload looks like ports but is
	 * data. */
	f.n = 0;
	eth(&f, 0x0800);
	at = ip4(&f, 5, 0, 6, 185, 0xabcd);
	tcp(&f, 80, 8080, 0x02, 5);
	ip4_len(&f, at);
	assert_int_equal(parse(&f, PKT_LINK_ETH, &pi), PKT_OK);
	assert_int_equal(pi.frag, PKT_FRAG_LATER);
	assert_int_equal(pi.frag_id, 0xabcd);
	assert_int_equal(pi.key.proto, 6);
	assert_int_equal(pi.key.sport, 0);
	assert_int_equal(pi.key.dport, 0);
	assert_int_equal(pi.tcp_flags, 0);
	assert_int_equal(pi.ip_len, 40);
	/* A later fragment needs no transport bytes at all. */
	f.n = at + 20;
	assert_int_equal(parse(&f, PKT_LINK_ETH, &pi), PKT_OK);
	assert_int_equal(pi.frag, PKT_FRAG_LATER);

	/* Middle fragment: MF and an offset. */
	st_be16(f.b + at + 6, 0x2000 | 10);
	assert_int_equal(parse(&f, PKT_LINK_ETH, &pi), PKT_OK);
	assert_int_equal(pi.frag, PKT_FRAG_LATER);

	/* First fragment too short for the ports. */
	f.n = 0;
	eth(&f, 0x0800);
	at = ip4(&f, 5, 0, 6, 0x2000, 5);
	put16(&f, 80);
	ip4_len(&f, at);
	assert_int_equal(parse(&f, PKT_LINK_ETH, &pi), PKT_TRUNC_L4);
}

/* ---- IPv6 and its extension headers ---- */

static void test_ip6_tcp(void **state)
{
	(void)state;
	struct fb f = { .n = 0 };
	struct pkt_info pi;

	eth(&f, 0x86dd);
	size_t at = ip6(&f, 0xa1, 6);
	tcp(&f, 50000, 22, 0x18, 5);
	put(&f, "ssh", 3);
	ip6_len(&f, at);
	assert_int_equal(parse(&f, PKT_LINK_ETH, &pi), PKT_OK);
	is_v6(&pi.key);
	assert_int_equal(pi.key.proto, 6);
	assert_int_equal(pi.key.tos, 0xa1);
	assert_int_equal(pi.key.sport, 50000);
	assert_int_equal(pi.key.dport, 22);
	assert_int_equal(pi.tcp_flags, 0x18);
	assert_int_equal(pi.ip_len, 40 + 20 + 3);
	assert_int_equal(pi.frag, PKT_FRAG_NONE);

	f.b[at] = 0x45;
	assert_int_equal(parse(&f, PKT_LINK_ETH, &pi), PKT_BAD_IP_VERSION);
}

static void test_ip6_each_exthdr(void **state)
{
	(void)state;
	static const uint8_t kinds[] = { 0, 43, 60, 51 };

	for (size_t i = 0; i < sizeof(kinds); i++) {
		for (uint8_t units = 0; units < 3; units++) {
			struct fb f = { .n = 0 };
			struct pkt_info pi;

			eth(&f, 0x86dd);
			size_t at = ip6(&f, 0, kinds[i]);
			if (kinds[i] == 51) {
				/* AH: length in 4-byte units minus 2 (12 + 8 * units bytes). */
				put8(&f, 17);
				put8(&f, (uint8_t)(1 + 2 * units));
				putz(&f, 10 + 8u * units);
			} else {
				ext(&f, 17, units);
			}
			udp(&f, 546, 547, 20);
			ip6_len(&f, at);
			assert_int_equal(parse(&f, PKT_LINK_ETH, &pi), PKT_OK);
			is_v6(&pi.key);
			assert_int_equal(pi.key.proto, 17);
			assert_int_equal(pi.key.sport, 546);
			assert_int_equal(pi.key.dport, 547);
			assert_int_equal(pi.ip_len, f.n - 14);
			assert_int_equal(pi.frag, PKT_FRAG_NONE);
		}
	}
}

static void test_ip6_chain(void **state)
{
	(void)state;
	struct fb f = { .n = 0 };
	struct pkt_info pi;

	/* The whole zoo in RFC 8200 order. */
	eth(&f, 0x86dd);
	size_t at = ip6(&f, 0, 0);
	ext(&f, 43, 0);
	ext(&f, 44, 2);
	frag6(&f, 51, 0, 1, 0xfeedf00d);
	put8(&f, 60);
	put8(&f, 4);
	putz(&f, 22);
	ext(&f, 6, 1);
	tcp(&f, 1, 2, 0x01, 6);
	ip6_len(&f, at);
	assert_int_equal(parse(&f, PKT_LINK_ETH, &pi), PKT_OK);
	assert_int_equal(pi.key.proto, 6);
	assert_int_equal(pi.key.sport, 1);
	assert_int_equal(pi.key.dport, 2);
	assert_int_equal(pi.tcp_flags, 0x01);
	assert_int_equal(pi.frag, PKT_FRAG_FIRST);
	assert_int_equal(pi.frag_id, 0xfeedf00d);

	/* Eight extension headers are followed, nine are not. */
	for (int n = 8; n <= 9; n++) {
		f.n = 0;
		eth(&f, 0x86dd);
		at = ip6(&f, 0, 60);
		for (int i = 0; i < n; i++)
			ext(&f, i == n - 1 ? 17 : 60, 0);
		udp(&f, 9, 10, 0);
		ip6_len(&f, at);
		assert_int_equal(parse(&f, PKT_LINK_ETH, &pi),
				 n == 8 ? PKT_OK : PKT_TOO_MANY_EXTHDR);
		if (n == 8)
			assert_int_equal(pi.key.sport, 9);
	}

	/* ESP and no-next-header end the chain; they are the protocol. */
	static const uint8_t stops[] = { 50, 59 };
	for (size_t i = 0; i < sizeof(stops); i++) {
		f.n = 0;
		eth(&f, 0x86dd);
		at = ip6(&f, 0, 0);
		ext(&f, stops[i], 0);
		put32(&f, 0x1000);
		put32(&f, 1);
		ip6_len(&f, at);
		assert_int_equal(parse(&f, PKT_LINK_ETH, &pi), PKT_OK);
		assert_int_equal(pi.key.proto, stops[i]);
		assert_int_equal(pi.key.sport, 0);
		assert_int_equal(pi.key.dport, 0);
	}

	/* An extension header running past the capture. */
	f.n = 0;
	eth(&f, 0x86dd);
	at = ip6(&f, 0, 43);
	ext(&f, 17, 3);
	ip6_len(&f, at);
	f.n -= 1;
	assert_int_equal(parse(&f, PKT_LINK_ETH, &pi), PKT_TRUNC_EXTHDR);
}

static void test_ip6_fragments(void **state)
{
	(void)state;
	struct fb f = { .n = 0 };
	struct pkt_info pi;

	eth(&f, 0x86dd);
	size_t at = ip6(&f, 0, 44);
	frag6(&f, 17, 0, 1, 0x01020304);
	udp(&f, 4500, 4500, 1000);
	ip6_len(&f, at);
	assert_int_equal(parse(&f, PKT_LINK_ETH, &pi), PKT_OK);
	assert_int_equal(pi.frag, PKT_FRAG_FIRST);
	assert_int_equal(pi.frag_id, 0x01020304);
	assert_int_equal(pi.key.proto, 17);
	assert_int_equal(pi.key.sport, 4500);
	assert_int_equal(pi.key.dport, 4500);

	/* Later fragment behind a hop-by-hop header. */
	f.n = 0;
	eth(&f, 0x86dd);
	at = ip6(&f, 0, 0);
	ext(&f, 44, 0);
	frag6(&f, 17, 129, 0, 0x01020304);
	udp(&f, 4500, 4500, 100);
	ip6_len(&f, at);
	assert_int_equal(parse(&f, PKT_LINK_ETH, &pi), PKT_OK);
	assert_int_equal(pi.frag, PKT_FRAG_LATER);
	assert_int_equal(pi.frag_id, 0x01020304);
	assert_int_equal(pi.key.proto, 17);
	assert_int_equal(pi.key.sport, 0);
	assert_int_equal(pi.key.dport, 0);
	assert_int_equal(pi.ip_len, f.n - 14);

	/* Atomic fragment (offset 0, no M): a whole packet with its ports. */
	f.n = 0;
	eth(&f, 0x86dd);
	at = ip6(&f, 0, 44);
	frag6(&f, 6, 0, 0, 77);
	tcp(&f, 7, 8, 0x10, 5);
	ip6_len(&f, at);
	assert_int_equal(parse(&f, PKT_LINK_ETH, &pi), PKT_OK);
	assert_int_equal(pi.frag, PKT_FRAG_NONE);
	assert_int_equal(pi.key.sport, 7);
	assert_int_equal(pi.tcp_flags, 0x10);
}

/* ---- lengths: padding, TSO ---- */

static void test_padding_not_counted(void **state)
{
	(void)state;
	struct fb f = { .n = 0 };
	struct pkt_info pi;

	/* 46-byte IPv4 packet in a 60-byte minimum frame. */
	eth(&f, 0x0800);
	size_t at = ip4(&f, 5, 0, 17, 0, 1);
	udp(&f, 1, 2, 18);
	ip4_len(&f, at);
	assert_int_equal(f.n - at, 46);
	putz(&f, 60 - f.n);
	assert_int_equal(parse(&f, PKT_LINK_ETH, &pi), PKT_OK);
	assert_int_equal(pi.ip_len, 46);

	/* A 20-byte UDP "packet" with padding: the padding must not become the ports. */
	f.n = 0;
	eth(&f, 0x0800);
	at = ip4(&f, 5, 0, 17, 0, 1);
	ip4_len(&f, at);
	putz(&f, 60 - f.n);
	assert_int_equal(parse(&f, PKT_LINK_ETH, &pi), PKT_TRUNC_L4);

	/* IPv6 with a captured FCS trailer: payload length rules, and the trailer is
	 * not an extension header. */
	f.n = 0;
	eth(&f, 0x86dd);
	at = ip6(&f, 0, 59);
	putz(&f, 8);
	ip6_len(&f, at);
	put32(&f, 0x12345678);
	putz(&f, 10);
	assert_int_equal(parse(&f, PKT_LINK_ETH, &pi), PKT_OK);
	assert_int_equal(pi.ip_len, 48);
	assert_int_equal(pi.key.proto, 59);
	f.b[at + 6] = 60;
	assert_int_equal(parse(&f, PKT_LINK_ETH, &pi), PKT_TRUNC_EXTHDR);

	/* IPv6 UDP cut to 2 bytes by its payload length, then padding. */
	f.n = 0;
	eth(&f, 0x86dd);
	at = ip6(&f, 0, 17);
	put16(&f, 53);
	ip6_len(&f, at);
	putz(&f, 20);
	assert_int_equal(parse(&f, PKT_LINK_ETH, &pi), PKT_TRUNC_L4);
}

static void test_tso_zero_length(void **state)
{
	(void)state;
	struct fb f = { .n = 0 };
	struct pkt_info pi;

	eth(&f, 0x0800);
	size_t at = ip4(&f, 5, 0, 6, 0x4000, 1);
	tcp(&f, 1, 2, 0x10, 5);
	putz(&f, 900);
	assert_int_equal(parse(&f, PKT_LINK_ETH, &pi), PKT_OK);
	assert_int_equal(pi.ip_len, f.n - at);
	assert_int_equal(pi.key.dport, 2);

	f.n = 0;
	eth(&f, 0x86dd);
	at = ip6(&f, 0, 6);
	tcp(&f, 1, 2, 0x10, 5);
	putz(&f, 900);
	assert_int_equal(parse(&f, PKT_LINK_ETH, &pi), PKT_OK);
	assert_int_equal(pi.ip_len, f.n - at);
}

/* ---- link types ---- */

static void test_vlan_qinq(void **state)
{
	(void)state;
	static const uint16_t tpids[] = { 0x8100, 0x88a8, 0x9100 };

	for (size_t i = 0; i < 3; i++) {
		struct fb f = { .n = 0 };
		struct pkt_info pi;

		eth(&f, tpids[i]);
		tag(&f, 100, 0x8100);
		tag(&f, 200, 0x0800);
		size_t at = ip4(&f, 5, 0, 17, 0, 1);
		udp(&f, 1, 2, 0);
		ip4_len(&f, at);
		assert_int_equal(parse(&f, PKT_LINK_ETH, &pi), PKT_OK);
		assert_int_equal(pi.key.vlan, 100);
		assert_int_equal(pi.key.dport, 2);
		assert_int_equal(pi.ip_len, 28);
	}

	/* Four tags followed, five are not. */
	for (int n = 4; n <= 5; n++) {
		struct fb f = { .n = 0 };
		struct pkt_info pi;

		eth(&f, 0x88a8);
		for (int t = 0; t < n; t++)
			tag(&f, (uint16_t)(4000 + t), t == n - 1 ? 0x86dd : 0x8100);
		size_t at = ip6(&f, 0, 17);
		udp(&f, 1, 2, 0);
		ip6_len(&f, at);
		assert_int_equal(parse(&f, PKT_LINK_ETH, &pi),
				 n == 4 ? PKT_OK : PKT_TOO_MANY_TAGS);
		if (n == 4)
			assert_int_equal(pi.key.vlan, 4000);
	}
}

static void mpls(struct fb *f, uint32_t label, int bos)
{
	put32(f, label << 12 | 5u << 9 | (bos ? 1u << 8 : 0) | 64);
}

static void pppoe(struct fb *f, uint16_t proto)
{
	put8(f, 0x11);
	put8(f, 0);
	put16(f, 0x1234);  /* session */
	put16(f, 0);       /* length: not needed */
	put16(f, proto);
}

/* MPLS label stacks (after Ethernet, VLAN tags, SLL) and PPPoE sessions carry IP. */
static void test_mpls_pppoe(void **state)
{
	(void)state;
	struct fb f;
	struct pkt_info pi;

	/* 1 to 8 labels followed to the bottom of the stack; 9 are too many */
	for (int n = 1; n <= PKT_MAX_LABELS + 1; n++) {
		for (int v6 = 0; v6 < 2; v6++) {
			f.n = 0;
			eth(&f, 0x8100);
			tag(&f, 42, n & 1 ? 0x8847 : 0x8848);
			for (int i = 0; i < n; i++)
				mpls(&f, (uint32_t)(16 + i), i == n - 1);
			size_t at = v6 ? ip6(&f, 0, 6) : ip4(&f, 5, 0, 6, 0, 1);
			tcp(&f, 1000, 443, 0x12, 5);
			if (v6)
				ip6_len(&f, at);
			else
				ip4_len(&f, at);
			memset(&pi, 0, sizeof(pi));
			assert_int_equal(parse(&f, PKT_LINK_ETH, &pi),
					 n <= PKT_MAX_LABELS ? PKT_OK : PKT_TOO_MANY_TAGS);
			if (n > PKT_MAX_LABELS)
				continue;
			if (v6)
				is_v6(&pi.key);
			else
				is_v4(&pi.key);
			assert_int_equal(pi.key.vlan, 42);
			assert_int_equal(pi.key.dport, 443);
			assert_int_equal(pi.tcp_flags, 0x12);
			assert_int_equal(pi.ip_len, f.n - at);
		}
	}
	/* a pseudowire (control word, nibble 0) is not IP; cut short in and after the stack */
	f.n = 0;
	eth(&f, 0x8847);
	mpls(&f, 100, 1);
	put32(&f, 0);
	putz(&f, 40);
	assert_int_equal(parse(&f, PKT_LINK_ETH, &pi), PKT_NOT_IP);
	f.n = 0;
	eth(&f, 0x8847);
	mpls(&f, 100, 0);
	put16(&f, 0);
	assert_int_equal(parse(&f, PKT_LINK_ETH, &pi), PKT_TRUNC_L2);
	f.n = 0;
	eth(&f, 0x8847);
	mpls(&f, 100, 1);
	assert_int_equal(parse(&f, PKT_LINK_ETH, &pi), PKT_TRUNC_IP);
	/* through Linux cooked capture too */
	f.n = 0;
	sll(&f, 0x8847);
	mpls(&f, 7, 1);
	size_t at = ip4(&f, 5, 0, 17, 0, 1);
	udp(&f, 53, 5353, 10);
	ip4_len(&f, at);
	assert_int_equal(parse(&f, PKT_LINK_SLL, &pi), PKT_OK);
	assert_int_equal(pi.key.sport, 53);

	/* PPPoE sessions: IPv4 and IPv6 in, LCP and the rest not IP, a cut header */
	for (int v6 = 0; v6 < 2; v6++) {
		f.n = 0;
		eth(&f, 0x8864);
		pppoe(&f, v6 ? 0x0057 : 0x0021);
		at = v6 ? ip6(&f, 0, 17) : ip4(&f, 5, 0, 17, 0, 1);
		udp(&f, 1, 2, 3);
		if (v6)
			ip6_len(&f, at);
		else
			ip4_len(&f, at);
		putz(&f, 8);  /* link padding: not counted */
		assert_int_equal(parse(&f, PKT_LINK_ETH, &pi), PKT_OK);
		assert_int_equal(pi.key.ipver, v6 ? 6 : 4);
		assert_int_equal(pi.ip_len, f.n - 8 - at);
		assert_int_equal(pi.key.dport, 2);
	}
	f.n = 0;
	eth(&f, 0x8864);
	pppoe(&f, 0xc021);
	putz(&f, 20);
	assert_int_equal(parse(&f, PKT_LINK_ETH, &pi), PKT_NOT_IP);
	f.n = 0;
	eth(&f, 0x8864);
	put32(&f, 0x11000000);
	assert_int_equal(parse(&f, PKT_LINK_ETH, &pi), PKT_TRUNC_L2);
}

/* PPP links (HDLC framing or not, compressed protocol, MPLS in PPP, Cisco framing),
 * PPPoE without Ethernet, Cisco HDLC. */
static void test_ppp_hdlc(void **state)
{
	(void)state;
	struct fb f;
	struct pkt_info pi;
	size_t at;

	for (int form = 0; form < 6; form++) {
		enum pkt_link link = PKT_LINK_PPP;
		f.n = 0;
		switch (form) {
		case 0: put16(&f, 0xff03); put16(&f, 0x0021); break;   /* HDLC framing */
		case 1: put16(&f, 0x0021); break;                      /* none */
		case 2: put8(&f, 0x21); break;                         /* compressed */
		case 3: put16(&f, 0xff03); put16(&f, 0x0281); mpls(&f, 3, 1); break;
		case 4: link = PKT_LINK_CHDLC; put16(&f, 0x0f00); put16(&f, 0x0800); break;
		case 5: link = PKT_LINK_PPP_ETHER; pppoe(&f, 0x0021); break;
		}
		at = ip4(&f, 5, 0, 17, 0, 1);
		udp(&f, 7, 9, 4);
		ip4_len(&f, at);
		assert_int_equal(parse(&f, link, &pi), PKT_OK);
		is_v4(&pi.key);
		assert_int_equal(pi.key.dport, 9);
		assert_int_equal(pi.ip_len, f.n - at);
	}
	/* IPv6 over PPP; Cisco framing on a PPP link; LCP; cut short */
	f.n = 0;
	put16(&f, 0xff03);
	put16(&f, 0x0057);
	at = ip6(&f, 0, 6);
	tcp(&f, 1, 2, 0x02, 5);
	ip6_len(&f, at);
	assert_int_equal(parse(&f, PKT_LINK_PPP, &pi), PKT_OK);
	is_v6(&pi.key);
	f.n = 0;
	put16(&f, 0x8f00);
	put16(&f, 0x86dd);
	at = ip6(&f, 0, 17);
	udp(&f, 1, 2, 0);
	ip6_len(&f, at);
	assert_int_equal(parse(&f, PKT_LINK_PPP, &pi), PKT_OK);
	f.n = 0;
	put16(&f, 0xff03);
	put16(&f, 0xc021);
	putz(&f, 10);
	assert_int_equal(parse(&f, PKT_LINK_PPP, &pi), PKT_NOT_IP);
	f.n = 0;
	put8(&f, 0xff);
	assert_int_equal(parse(&f, PKT_LINK_PPP, &pi), PKT_TRUNC_L2);
	f.n = 0;
	put16(&f, 0xff03);
	put8(&f, 0x00);
	assert_int_equal(parse(&f, PKT_LINK_PPP, &pi), PKT_TRUNC_L2);
	f.n = 0;
	put16(&f, 0x0f00);
	assert_int_equal(parse(&f, PKT_LINK_CHDLC, &pi), PKT_TRUNC_L2);
	f.n = 0;
	put32(&f, 0x11000000);
	assert_int_equal(parse(&f, PKT_LINK_PPP_ETHER, &pi), PKT_TRUNC_L2);
}

static void test_non_ip(void **state)
{
	(void)state;
	static const uint16_t ets[] = { 0x0806 /* ARP */, 0x88cc /* LLDP */,
					0x8863 /* PPPoE discovery */, 0x0026 /* 802.3 length */ };
	for (size_t i = 0; i < sizeof(ets) / sizeof(ets[0]); i++) {
		struct fb f = { .n = 0 };
		struct pkt_info pi;

		eth(&f, ets[i]);
		putz(&f, 46);
		assert_int_equal(parse(&f, PKT_LINK_ETH, &pi), PKT_NOT_IP);
		f.n = 0;
		eth(&f, 0x8100);
		tag(&f, 5, ets[i]);
		putz(&f, 42);
		assert_int_equal(parse(&f, PKT_LINK_ETH, &pi), PKT_NOT_IP);
		f.n = 0;
		sll(&f, ets[i]);
		putz(&f, 46);
		assert_int_equal(parse(&f, PKT_LINK_SLL, &pi), PKT_NOT_IP);
		f.n = 0;
		sll2(&f, ets[i]);
		putz(&f, 46);
		assert_int_equal(parse(&f, PKT_LINK_SLL2, &pi), PKT_NOT_IP);
	}
}

static void test_sll(void **state)
{
	(void)state;
	struct fb f = { .n = 0 };
	struct pkt_info pi;

	sll(&f, 0x0800);
	size_t at = ip4(&f, 5, 0x20, 17, 0, 1);
	udp(&f, 123, 123, 48);
	ip4_len(&f, at);
	assert_int_equal(parse(&f, PKT_LINK_SLL, &pi), PKT_OK);
	is_v4(&pi.key);
	assert_int_equal(pi.key.sport, 123);
	assert_int_equal(pi.key.tos, 0x20);
	assert_int_equal(pi.ip_len, 76);
	assert_int_equal(pi.key.vlan, 0);

	/* A VLAN tag behind SLL's protocol field. */
	f.n = 0;
	sll(&f, 0x8100);
	tag(&f, 42, 0x86dd);
	at = ip6(&f, 0, 17);
	udp(&f, 123, 124, 48);
	ip6_len(&f, at);
	assert_int_equal(parse(&f, PKT_LINK_SLL, &pi), PKT_OK);
	is_v6(&pi.key);
	assert_int_equal(pi.key.vlan, 42);
	assert_int_equal(pi.key.dport, 124);

	f.n = 15;
	assert_int_equal(parse(&f, PKT_LINK_SLL, &pi), PKT_TRUNC_L2);
}

static void test_sll2(void **state)
{
	(void)state;
	struct fb f = { .n = 0 };
	struct pkt_info pi;

	sll2(&f, 0x86dd);
	size_t at = ip6(&f, 0, 6);
	tcp(&f, 1, 2, 0x11, 5);
	ip6_len(&f, at);
	assert_int_equal(parse(&f, PKT_LINK_SLL2, &pi), PKT_OK);
	is_v6(&pi.key);
	assert_int_equal(pi.key.dport, 2);
	assert_int_equal(pi.tcp_flags, 0x11);

	f.n = 0;
	sll2(&f, 0x8100);
	tag(&f, 7, 0x0800);
	at = ip4(&f, 5, 0, 6, 0, 1);
	tcp(&f, 3, 4, 0x04, 5);
	ip4_len(&f, at);
	assert_int_equal(parse(&f, PKT_LINK_SLL2, &pi), PKT_OK);
	is_v4(&pi.key);
	assert_int_equal(pi.key.vlan, 7);
	assert_int_equal(pi.tcp_flags, 0x04);

	f.n = 19;
	assert_int_equal(parse(&f, PKT_LINK_SLL2, &pi), PKT_TRUNC_L2);
}

static void test_raw(void **state)
{
	(void)state;
	struct fb f4 = { .n = 0 }, f6 = { .n = 0 };
	struct pkt_info pi;

	size_t at = ip4(&f4, 5, 0, 17, 0, 1);
	udp(&f4, 1, 2, 0);
	ip4_len(&f4, at);
	at = ip6(&f6, 0, 17);
	udp(&f6, 3, 4, 0);
	ip6_len(&f6, at);

	assert_int_equal(parse(&f4, PKT_LINK_RAW, &pi), PKT_OK);
	is_v4(&pi.key);
	assert_int_equal(pi.key.dport, 2);
	assert_int_equal(parse(&f4, PKT_LINK_IPV4, &pi), PKT_OK);
	is_v4(&pi.key);
	/* 28 bytes are too short for an IPv6 header; 48 are not IPv6. */
	assert_int_equal(parse(&f4, PKT_LINK_IPV6, &pi), PKT_TRUNC_IP);
	putz(&f4, 20);
	assert_int_equal(parse(&f4, PKT_LINK_IPV6, &pi), PKT_BAD_IP_VERSION);
	assert_int_equal(parse(&f4, PKT_LINK_RAW, &pi), PKT_OK);
	assert_int_equal(pi.ip_len, 28);

	assert_int_equal(parse(&f6, PKT_LINK_RAW, &pi), PKT_OK);
	is_v6(&pi.key);
	assert_int_equal(pi.key.dport, 4);
	assert_int_equal(parse(&f6, PKT_LINK_IPV6, &pi), PKT_OK);
	assert_int_equal(parse(&f6, PKT_LINK_IPV4, &pi), PKT_BAD_IP_VERSION);

	f4.b[0] = 0x55;
	assert_int_equal(parse(&f4, PKT_LINK_RAW, &pi), PKT_BAD_IP_VERSION);
	f4.n = 1;  /* the version nibble is all raw IP needs to be told apart */
	assert_int_equal(parse(&f4, PKT_LINK_RAW, &pi), PKT_BAD_IP_VERSION);
	f4.b[0] = 0x45;
	assert_int_equal(parse(&f4, PKT_LINK_RAW, &pi), PKT_TRUNC_IP);
	f4.n = 0;
	assert_int_equal(parse(&f4, PKT_LINK_RAW, &pi), PKT_TRUNC_IP);
	assert_int_equal(parse(&f4, PKT_LINK_ETH, &pi), PKT_TRUNC_L2);
}

static void test_null_loopback(void **state)
{
	(void)state;
	struct {
		uint32_t fam;
		int ver;
	} cases[] = { { 2, 4 }, { 24, 6 }, { 28, 6 }, { 30, 6 }, { 7, 0 }, { 10, 0 } };

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		for (int order = 0; order < 2; order++) {
			struct fb f = { .n = 0 };
			struct pkt_info pi;
			size_t at;
			uint8_t fam[4];

			st_be32(fam, cases[i].fam);
			if (order) {  /* little-endian capture */
				uint8_t t = fam[0];
				fam[0] = fam[3];
				fam[3] = t;
				t = fam[1];
				fam[1] = fam[2];
				fam[2] = t;
			}
			put(&f, fam, 4);
			if (cases[i].ver == 6) {
				at = ip6(&f, 0, 17);
				udp(&f, 1, 2, 0);
				ip6_len(&f, at);
			} else {
				at = ip4(&f, 5, 0, 17, 0, 1);
				udp(&f, 1, 2, 0);
				ip4_len(&f, at);
			}
			int r = parse(&f, PKT_LINK_NULL, &pi);
			if (cases[i].ver == 0) {
				assert_int_equal(r, PKT_NOT_IP);
				continue;
			}
			assert_int_equal(r, PKT_OK);
			assert_int_equal(pi.key.ipver, cases[i].ver);
			assert_int_equal(pi.key.dport, 2);
		}
	}
}

/* ---- contract details ---- */

static void test_untouched_on_error(void **state)
{
	(void)state;
	struct fb f = { .n = 0 };
	struct pkt_info pi, junk;

	eth(&f, 0x0800);
	size_t at = ip4(&f, 5, 0, 6, 0, 1);
	tcp(&f, 1, 2, 0x02, 5);
	ip4_len(&f, at);
	f.n -= 7;  /* up to the data offset: the parse gets far before it fails */
	f.b[at + 20 + 12] = 0x10;
	memset(&pi, 0x5a, sizeof(pi));
	junk = pi;
	assert_int_equal(pkt_parse(f.b, f.n, PKT_LINK_ETH, 1, &pi), PKT_BAD_L4);
	assert_memory_equal(&pi, &junk, sizeof(pi));
}

static void test_key_is_comparable(void **state)
{
	(void)state;
	struct fb a = { .n = 0 }, b = { .n = 0 };
	struct pkt_info pa, pb;

	/* Same flow, different packets: keys equal byte for byte whatever was in pi. */
	eth(&a, 0x0800);
	size_t at = ip4(&a, 5, 0, 6, 0, 1);
	tcp(&a, 1, 2, 0x02, 5);
	ip4_len(&a, at);
	eth(&b, 0x0800);
	at = ip4(&b, 7, 0, 6, 0x4000, 99);
	tcp(&b, 1, 2, 0x10, 8);
	putz(&b, 100);
	ip4_len(&b, at);
	memset(&pa, 0x11, sizeof(pa));
	memset(&pb, 0xee, sizeof(pb));
	assert_int_equal(pkt_parse(a.b, a.n, PKT_LINK_ETH, 3, &pa), PKT_OK);
	assert_int_equal(pkt_parse(b.b, b.n, PKT_LINK_ETH, 3, &pb), PKT_OK);
	assert_memory_equal(&pa.key, &pb.key, sizeof(pa.key));
	assert_int_equal(pa.key.in_if, 3);
	assert_int_not_equal(pa.ip_len, pb.ip_len);

	/* ... and differ when the interface does. */
	assert_int_equal(pkt_parse(b.b, b.n, PKT_LINK_ETH, 4, &pb), PKT_OK);
	assert_memory_not_equal(&pa.key, &pb.key, sizeof(pa.key));
}

static void test_result_names(void **state)
{
	(void)state;
	assert_string_equal(pkt_result_name(PKT_OK), "ok");
	assert_string_equal(pkt_result_name(PKT_NOT_IP), "not_ip");
	assert_string_equal(pkt_result_name(PKT_TRUNC_L2), "trunc_l2");
	assert_string_equal(pkt_result_name(PKT_TRUNC_IP), "trunc_ip");
	assert_string_equal(pkt_result_name(PKT_TRUNC_L4), "trunc_l4");
	assert_string_equal(pkt_result_name(PKT_BAD_L4), "bad_l4");
	assert_string_equal(pkt_result_name(-1), "unknown");
	assert_string_equal(pkt_result_name(PKT_NRESULTS), "unknown");
	for (int i = 0; i < PKT_NRESULTS; i++) {
		const char *n = pkt_result_name(i);
		assert_non_null(n);
		assert_string_not_equal(n, "unknown");
		for (const char *p = n; *p; p++)
			assert_true((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_');
		for (int j = 0; j < i; j++)
			assert_string_not_equal(n, pkt_result_name(j));
	}
}

/* ---- every prefix against a guard page ---- */

struct guard {
	uint8_t *base;  /* two pages; the second is PROT_NONE */
	size_t page;
};

static struct guard guard_make(void)
{
	struct guard g;
	g.page = (size_t)sysconf(_SC_PAGESIZE);
	g.base = mmap(NULL, 2 * g.page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
		      -1, 0);
	assert_true(g.base != MAP_FAILED);
	assert_int_equal(mprotect(g.base + g.page, g.page, PROT_NONE), 0);
	return g;
}

static void guard_free(struct guard *g)
{
	munmap(g->base, 2 * g->page);
}

/* Copies n bytes so that they end exactly at the guard page; returns the copy. */
static const uint8_t *guard_put(struct guard *g, const uint8_t *p, size_t n)
{
	uint8_t *q = g->base + g->page - n;
	memcpy(q, p, n);
	return q;
}

/* A valid frame and where its layers end: prefixes shorter than l2 are TRUNC_L2,
 * than ip TRUNC_IP, than ext TRUNC_EXTHDR, than l4 TRUNC_L4; the rest parse, with
 * TCP flags 0 below fl and the whole frame's from fl on. */
struct pfx_case {
	const char *name;
	enum pkt_link link;
	struct fb f;
	size_t l2, ip, ext, l4, fl;
};

static void check_prefixes(struct guard *g, const struct pfx_case *pc)
{
	struct pkt_info full, pi;

	assert_int_equal(pkt_parse(pc->f.b, pc->f.n, pc->link, 1, &full), PKT_OK);
	for (size_t n = 0; n <= pc->f.n; n++) {
		const uint8_t *p = guard_put(g, pc->f.b, n);
		int want = n < pc->l2 ? PKT_TRUNC_L2 : n < pc->ip ? PKT_TRUNC_IP :
			   n < pc->ext ? PKT_TRUNC_EXTHDR : n < pc->l4 ? PKT_TRUNC_L4 : PKT_OK;
		int r = pkt_parse(p, n, pc->link, 1, &pi);
		if (r != want)
			fail_msg("%s: prefix %zu: %s, want %s", pc->name, n, pkt_result_name(r),
				 pkt_result_name(want));
		if (r != PKT_OK)
			continue;
		/* Same flow as the whole frame, same IP length; flags only once captured. */
		assert_memory_equal(&pi.key, &full.key, sizeof(pi.key));
		assert_int_equal(pi.ip_len, full.ip_len);
		assert_int_equal(pi.frag, full.frag);
		assert_int_equal(pi.frag_id, full.frag_id);
		assert_int_equal(pi.tcp_flags, n < pc->fl ? 0 : full.tcp_flags);
	}
	/* And the whole frame read as every other link type: any result, no over-read. */
	for (int link = PKT_LINK_ETH; link <= PKT_LINK_CHDLC + 1; link++)
		for (size_t n = 0; n <= pc->f.n; n++)
			(void)pkt_parse(guard_put(g, pc->f.b, n), n, (enum pkt_link)link, 1, &pi);
}

static void test_prefixes_guarded(void **state)
{
	(void)state;
	struct guard g = guard_make();
	static struct pfx_case pc[8];
	size_t at, n = 0;

	/* Ethernet, IPv4 with options, TCP with options. */
	pc[n] = (struct pfx_case){ .name = "eth-ip4opt-tcp", .link = PKT_LINK_ETH };
	eth(&pc[n].f, 0x0800);
	at = ip4(&pc[n].f, 9, 0, 6, 0, 1);
	tcp(&pc[n].f, 1, 2, 0x12, 7);
	put(&pc[n].f, "data", 4);
	ip4_len(&pc[n].f, at);
	pc[n].l2 = 14, pc[n].ip = pc[n].ext = 14 + 36, pc[n].l4 = 14 + 36 + 4;
	pc[n].fl = 14 + 36 + 14;
	n++;

	/* QinQ, IPv6, a chain of extension headers, TCP. */
	pc[n] = (struct pfx_case){ .name = "qinq-ip6ext-tcp", .link = PKT_LINK_ETH };
	eth(&pc[n].f, 0x88a8);
	tag(&pc[n].f, 10, 0x8100);
	tag(&pc[n].f, 20, 0x86dd);
	at = ip6(&pc[n].f, 0, 0);
	ext(&pc[n].f, 43, 1);
	ext(&pc[n].f, 44, 0);
	frag6(&pc[n].f, 51, 0, 1, 9);
	put8(&pc[n].f, 60);
	put8(&pc[n].f, 1);
	putz(&pc[n].f, 10);
	ext(&pc[n].f, 6, 0);
	tcp(&pc[n].f, 1, 2, 0x12, 5);
	ip6_len(&pc[n].f, at);
	pc[n].l2 = 22, pc[n].ip = 62, pc[n].ext = 62 + 16 + 8 + 8 + 12 + 8;
	pc[n].l4 = pc[n].ext + 4, pc[n].fl = pc[n].ext + 14;
	n++;

	/* Padded short frame: the padding never turns a prefix into OK early or late. */
	pc[n] = (struct pfx_case){ .name = "eth-ip4-udp-padded", .link = PKT_LINK_ETH };
	eth(&pc[n].f, 0x0800);
	at = ip4(&pc[n].f, 5, 0, 17, 0, 1);
	udp(&pc[n].f, 1, 2, 2);
	ip4_len(&pc[n].f, at);
	putz(&pc[n].f, 60 - pc[n].f.n);
	pc[n].l2 = 14, pc[n].ip = pc[n].ext = 34, pc[n].l4 = 38;
	n++;

	/* SLL with a VLAN tag, IPv4, UDP. */
	pc[n] = (struct pfx_case){ .name = "sll-vlan-ip4-udp", .link = PKT_LINK_SLL };
	sll(&pc[n].f, 0x8100);
	tag(&pc[n].f, 3, 0x0800);
	at = ip4(&pc[n].f, 5, 0, 17, 0x2000, 1);
	udp(&pc[n].f, 1, 2, 20);
	ip4_len(&pc[n].f, at);
	pc[n].l2 = 20, pc[n].ip = pc[n].ext = 40, pc[n].l4 = 44;
	n++;

	/* SLL2, IPv6, ICMPv6. */
	pc[n] = (struct pfx_case){ .name = "sll2-ip6-icmp6", .link = PKT_LINK_SLL2 };
	sll2(&pc[n].f, 0x86dd);
	at = ip6(&pc[n].f, 0, 58);
	put8(&pc[n].f, 135);
	put8(&pc[n].f, 0);
	putz(&pc[n].f, 22);
	ip6_len(&pc[n].f, at);
	pc[n].l2 = 20, pc[n].ip = pc[n].ext = 60, pc[n].l4 = 62;
	n++;

	/* BSD NULL, IPv4, ICMP. */
	pc[n] = (struct pfx_case){ .name = "null-ip4-icmp", .link = PKT_LINK_NULL };
	put(&pc[n].f, "\x02\x00\x00\x00", 4);
	at = ip4(&pc[n].f, 5, 0, 1, 0, 1);
	put16(&pc[n].f, 0x0800);
	putz(&pc[n].f, 30);
	ip4_len(&pc[n].f, at);
	pc[n].l2 = 4, pc[n].ip = pc[n].ext = 24, pc[n].l4 = 26;
	n++;

	/* Raw IPv6 with hop-by-hop, UDP. */
	pc[n] = (struct pfx_case){ .name = "raw-ip6hbh-udp", .link = PKT_LINK_RAW };
	at = ip6(&pc[n].f, 0, 0);
	ext(&pc[n].f, 17, 0);
	udp(&pc[n].f, 1, 2, 5);
	ip6_len(&pc[n].f, at);
	pc[n].l2 = 0, pc[n].ip = 40, pc[n].ext = 48, pc[n].l4 = 52;
	n++;

	/* Raw IPv4, later fragment: no transport bytes needed. */
	pc[n] = (struct pfx_case){ .name = "ipv4-later-frag", .link = PKT_LINK_IPV4 };
	at = ip4(&pc[n].f, 5, 0, 17, 100, 1);
	putz(&pc[n].f, 16);
	ip4_len(&pc[n].f, at);
	pc[n].l2 = 0, pc[n].ip = pc[n].ext = pc[n].l4 = 20;
	n++;

	for (size_t i = 0; i < n; i++)
		check_prefixes(&g, &pc[i]);

	/* An empty frame right at the guard, and a NULL one. */
	struct pkt_info pi;
	assert_int_equal(pkt_parse(g.base + g.page, 0, PKT_LINK_ETH, 0, &pi), PKT_TRUNC_L2);
	assert_int_equal(pkt_parse(NULL, 0, PKT_LINK_IPV6, 0, &pi), PKT_TRUNC_IP);
	guard_free(&g);
}

/* ---- alignment ---- */

static void test_odd_alignment(void **state)
{
	(void)state;
	struct fb f = { .n = 0 };
	uint8_t buf[sizeof(f.b) + 8];
	struct pkt_info want, pi;

	eth(&f, 0x8100);
	tag(&f, 9, 0x86dd);
	size_t at = ip6(&f, 0x2e, 0);
	ext(&f, 44, 0);
	frag6(&f, 6, 0, 1, 0x0badcafe);
	tcp(&f, 1234, 5678, 0x18, 5);
	putz(&f, 33);
	ip6_len(&f, at);
	assert_int_equal(pkt_parse(f.b, f.n, PKT_LINK_ETH, 1, &want), PKT_OK);
	for (size_t off = 1; off < 8; off++) {
		memcpy(buf + off, f.b, f.n);
		memset(&pi, 0, sizeof(pi));
		assert_int_equal(pkt_parse(buf + off, f.n, PKT_LINK_ETH, 1, &pi), PKT_OK);
		assert_memory_equal(&pi, &want, sizeof(pi));
	}
	assert_int_equal(want.key.tos, 0x2e);
	assert_int_equal(want.frag_id, 0x0badcafe);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_eth_ip4_tcp_options),
		cmocka_unit_test(test_tcp_cases),
		cmocka_unit_test(test_udp_sctp_udplite),
		cmocka_unit_test(test_icmp_type_code),
		cmocka_unit_test(test_other_protocols),
		cmocka_unit_test(test_ip4_bad),
		cmocka_unit_test(test_ip4_fragments),
		cmocka_unit_test(test_ip6_tcp),
		cmocka_unit_test(test_ip6_each_exthdr),
		cmocka_unit_test(test_ip6_chain),
		cmocka_unit_test(test_ip6_fragments),
		cmocka_unit_test(test_padding_not_counted),
		cmocka_unit_test(test_tso_zero_length),
		cmocka_unit_test(test_vlan_qinq),
		cmocka_unit_test(test_mpls_pppoe),
		cmocka_unit_test(test_ppp_hdlc),
		cmocka_unit_test(test_non_ip),
		cmocka_unit_test(test_sll),
		cmocka_unit_test(test_sll2),
		cmocka_unit_test(test_raw),
		cmocka_unit_test(test_null_loopback),
		cmocka_unit_test(test_untouched_on_error),
		cmocka_unit_test(test_key_is_comparable),
		cmocka_unit_test(test_result_names),
		cmocka_unit_test(test_prefixes_guarded),
		cmocka_unit_test(test_odd_alignment),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
