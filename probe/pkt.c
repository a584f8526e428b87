/* pkt.c: the probe's packet parser (see pkt.h). One pass, top to bottom: link header
 * and VLAN tags -> IPv4 or IPv6 (with its extension headers) -> the first bytes of the
 * transport header. Every read goes through a struct cur; the cursor's end is pulled in
 * to the IP length so that Ethernet padding is never taken for header bytes.
 */
#include <string.h>

#include "bytes.h"
#include "pkt.h"

#define ETH_HLEN 14
#define SLL_HLEN 16
#define SLL2_HLEN 20
#define NULL_HLEN 4

#define ET_IPV4 0x0800
#define ET_IPV6 0x86dd
#define ET_8021Q 0x8100
#define ET_8021AD 0x88a8
#define ET_QINQ_OLD 0x9100  /* pre-standard QinQ, still seen on some switches */

/* BSD loopback address families: AF_INET everywhere; AF_INET6 is 24 on
 * NetBSD/OpenBSD, 28 on FreeBSD/DragonFly, 30 on Darwin. */
#define BSD_AF_INET 2
#define BSD_AF_INET6_NET 24
#define BSD_AF_INET6_FREE 28
#define BSD_AF_INET6_DARWIN 30

#define IP4_MF 0x2000
#define IP4_OFFMASK 0x1fff

/* IP protocol / IPv6 next-header numbers (IANA), named here rather than taken from
 * <netinet/in.h>, whose set varies between libcs. */
#define PROTO_HOPOPTS 0
#define PROTO_ICMP 1
#define PROTO_TCP 6
#define PROTO_UDP 17
#define PROTO_ROUTING 43
#define PROTO_FRAGMENT 44
#define PROTO_AH 51
#define PROTO_ICMPV6 58
#define PROTO_DSTOPTS 60
#define PROTO_SCTP 132
#define PROTO_UDPLITE 136

/* ::ffff:a.b.c.d into a zeroed a: flowrec_addr4 without re-zeroing what memset did. */
static inline void pkt_addr4(uint8_t a[16], const uint8_t *v4)
{
	a[10] = 0xff;
	a[11] = 0xff;
	memcpy(a + 12, v4, 4);
}

/* IP length as a uint32_t: the captured length when the header says 0 (TSO/GSO,
 * jumbograms). Captures never reach 4 GiB; the clamp only keeps the cast honest. */
static inline uint32_t pkt_caplen32(size_t n)
{
	return n < 0xffffffffu ? (uint32_t)n : 0xffffffffu;
}

/* Follows 802.1Q/802.1ad tags while *et names one; the outermost id goes in vlan. */
static inline int pkt_vlan(struct cur *c, uint16_t *et, struct pkt_key *k)
{
	for (int n = 0; *et == ET_8021Q || *et == ET_8021AD || *et == ET_QINQ_OLD; n++) {
		if (n == PKT_MAX_TAGS)
			return PKT_TOO_MANY_TAGS;
		const uint8_t *t = cur_take(c, 4);
		if (!t)
			return PKT_TRUNC_L2;
		if (n == 0)
			k->vlan = ld_be16(t) & 0x0fff;
		*et = ld_be16(t + 2);
	}
	return PKT_OK;
}

/* Ports (or ICMP type/code) and TCP flags from the transport header at c. Tests in
 * order of traffic share rather than a switch: TCP, then UDP, costs one compare each. */
static inline int pkt_l4(struct cur *c, struct pkt_info *o)
{
	const uint8_t *l = c->p;
	size_t left = cur_left(c);
	uint8_t proto = o->key.proto;

	if (proto == PROTO_TCP) {
		if (left < 4)
			return PKT_TRUNC_L4;
		o->key.sport = ld_be16(l);
		o->key.dport = ld_be16(l + 2);
		/* Data offset and flags only when captured: the key needs the ports alone. */
		if (left >= 14) {
			if (l[12] >> 4 < 5)
				return PKT_BAD_L4;
			o->tcp_flags = l[13];
		} else if (left == 13 && l[12] >> 4 < 5) {
			return PKT_BAD_L4;
		}
		return PKT_OK;
	}
	if (proto == PROTO_UDP || proto == PROTO_SCTP || proto == PROTO_UDPLITE) {
		if (left < 4)
			return PKT_TRUNC_L4;
		o->key.sport = ld_be16(l);
		o->key.dport = ld_be16(l + 2);
		return PKT_OK;
	}
	if (proto == PROTO_ICMP || proto == PROTO_ICMPV6) {
		if (left < 2)
			return PKT_TRUNC_L4;
		o->key.dport = ld_be16(l);  /* type << 8 | code */
		return PKT_OK;
	}
	return PKT_OK;
}

static inline int pkt_ip4(struct cur *c, struct pkt_info *o)
{
	size_t cap = cur_left(c);
	const uint8_t *h = cur_take(c, 20);

	if (!h)
		return PKT_TRUNC_IP;
	uint32_t hl = 20;
	uint32_t tot = ld_be16(h + 2);
	if (h[0] != 0x45) {  /* options, or not a valid IPv4 header at all */
		if (h[0] >> 4 != 4)
			return PKT_BAD_IP_VERSION;
		hl = (uint32_t)(h[0] & 0x0f) * 4;
		if (hl < 20)
			return PKT_BAD_IP_HDRLEN;
		if (tot && tot < hl)
			return PKT_BAD_IP_LEN;
		if (!cur_take(c, hl - 20))
			return PKT_TRUNC_IP;
	} else if (tot && tot < 20) {
		return PKT_BAD_IP_LEN;
	}
	if (tot == 0)
		tot = pkt_caplen32(cap);
	else if (tot < cap)
		c->end = h + tot;  /* drop link padding */

	o->ip_len = tot;
	o->key.ipver = 4;
	o->key.tos = h[1];
	o->key.proto = h[9];
	pkt_addr4(o->key.src, h + 12);
	pkt_addr4(o->key.dst, h + 16);

	uint16_t ff = ld_be16(h + 6);
	if (ff & IP4_OFFMASK) {
		o->frag = PKT_FRAG_LATER;
		o->frag_id = ld_be16(h + 4);
		return PKT_OK;
	}
	if (ff & IP4_MF) {
		o->frag = PKT_FRAG_FIRST;
		o->frag_id = ld_be16(h + 4);
	}
	return pkt_l4(c, o);
}

static inline int pkt_ip6(struct cur *c, struct pkt_info *o)
{
	size_t cap = cur_left(c);
	const uint8_t *h = cur_take(c, 40);

	if (!h)
		return PKT_TRUNC_IP;
	if (h[0] >> 4 != 6)
		return PKT_BAD_IP_VERSION;
	uint32_t plen = ld_be16(h + 4);
	if (plen == 0) {
		o->ip_len = pkt_caplen32(cap);
	} else {
		o->ip_len = plen + 40;
		if (plen < cur_left(c))
			c->end = c->p + plen;  /* drop link padding */
	}
	o->key.ipver = 6;
	o->key.tos = (uint8_t)(ld_be16(h) >> 4);
	memcpy(o->key.src, h + 8, 16);
	memcpy(o->key.dst, h + 24, 16);

	uint8_t nh = h[6];
	for (int n = 0;; n++) {
		const uint8_t *e;
		size_t len;

		switch (nh) {
		case PROTO_HOPOPTS:
		case PROTO_ROUTING:
		case PROTO_DSTOPTS:
		case PROTO_AH:
			if (n == PKT_MAX_EXTHDR)
				return PKT_TOO_MANY_EXTHDR;
			e = cur_take(c, 2);
			if (!e)
				return PKT_TRUNC_EXTHDR;
			/* AH counts 4-byte units minus 2, the others 8-byte units minus 1. */
			len = nh == PROTO_AH ? ((size_t)e[1] + 2) * 4 : ((size_t)e[1] + 1) * 8;
			if (!cur_take(c, len - 2))
				return PKT_TRUNC_EXTHDR;
			nh = e[0];
			break;
		case PROTO_FRAGMENT:
			if (n == PKT_MAX_EXTHDR)
				return PKT_TOO_MANY_EXTHDR;
			e = cur_take(c, 8);
			if (!e)
				return PKT_TRUNC_EXTHDR;
			nh = e[0];
			if (ld_be16(e + 2) >> 3) {
				o->key.proto = nh;
				o->frag = PKT_FRAG_LATER;
				o->frag_id = ld_be32(e + 4);
				return PKT_OK;
			}
			/* Offset 0 without M is an atomic fragment (RFC 6946): whole packet. */
			if (e[3] & 1) {
				o->frag = PKT_FRAG_FIRST;
				o->frag_id = ld_be32(e + 4);
			}
			break;
		default:
			o->key.proto = nh;
			return pkt_l4(c, o);
		}
	}
}

/* IP version (4 or 6) an ethertype announces, 0 for anything else. */
static inline int pkt_et_ver(uint16_t et)
{
	return et == ET_IPV4 ? 4 : et == ET_IPV6 ? 6 : 0;
}

/* IP version a BSD loopback family announces, 0 for anything else. */
static inline int pkt_af_ver(uint32_t af)
{
	if (af == BSD_AF_INET)
		return 4;
	if (af == BSD_AF_INET6_NET || af == BSD_AF_INET6_FREE || af == BSD_AF_INET6_DARWIN)
		return 6;
	return 0;
}

/* An MPLS label stack at c, to its bottom label: 4 or 6 from the payload's version
 * nibble, or minus a pkt_result. */
static int pkt_mpls(struct cur *c)
{
	for (int n = 0;; n++) {
		if (n == PKT_MAX_LABELS)
			return -PKT_TOO_MANY_TAGS;
		const uint8_t *l = cur_take(c, 4);
		if (!l)
			return -PKT_TRUNC_L2;
		if (l[2] & 1)
			break;  /* bottom of stack */
	}
	if (cur_left(c) < 1)
		return -PKT_TRUNC_IP;
	int v = c->p[0] >> 4;
	return v == 4 || v == 6 ? v : -PKT_NOT_IP;
}

/* A PPPoE session header at c: 4 or 6 from its PPP protocol, or minus a pkt_result. */
static int pkt_pppoe(struct cur *c)
{
	const uint8_t *h = cur_take(c, PKT_PPPOE_HLEN);
	if (!h)
		return -PKT_TRUNC_L2;
	uint16_t proto = ld_be16(h + 6);
	return proto == PKT_PPP_IPV4 ? 4 : proto == PKT_PPP_IPV6 ? 6 : -PKT_NOT_IP;
}

/* A PPP protocol field at c (1 byte when its low bit is set, RFC 1661 compression):
 * 4 or 6, an MPLS stack followed, or minus a pkt_result. */
static int pkt_ppp_proto(struct cur *c)
{
	const uint8_t *p = cur_take(c, 1);
	if (!p)
		return -PKT_TRUNC_L2;
	uint16_t proto = p[0];
	if (!(proto & 1)) {
		const uint8_t *q = cur_take(c, 1);
		if (!q)
			return -PKT_TRUNC_L2;
		proto = (uint16_t)(proto << 8 | q[0]);
	}
	if (proto == PKT_PPP_IPV4)
		return 4;
	if (proto == PKT_PPP_IPV6)
		return 6;
	if (proto == PKT_PPP_MPLS_UC || proto == PKT_PPP_MPLS_MC)
		return pkt_mpls(c);
	return -PKT_NOT_IP;
}

/* A Cisco HDLC header (address, control, ethertype): 0 with *et set, or minus a
 * pkt_result. */
static int pkt_chdlc(struct cur *c, uint16_t *et)
{
	const uint8_t *l = cur_take(c, 4);
	if (!l)
		return -PKT_TRUNC_L2;
	*et = ld_be16(l + 2);
	return 0;
}

/* Link headers other than Ethernet. Returns 4 or 6 when IP follows directly, minus a
 * pkt_result when the parse ends here, or 0 with *et set when an ethertype follows. */
static inline int pkt_link_other(struct cur *c, enum pkt_link link, uint16_t *et)
{
	const uint8_t *l;
	int v;

	switch (link) {
	case PKT_LINK_SLL:
		l = cur_take(c, SLL_HLEN);
		if (!l)
			return -PKT_TRUNC_L2;
		*et = ld_be16(l + 14);
		return 0;
	case PKT_LINK_SLL2:
		l = cur_take(c, SLL2_HLEN);
		if (!l)
			return -PKT_TRUNC_L2;
		*et = ld_be16(l);
		return 0;
	case PKT_LINK_RAW:
		if (cur_left(c) < 1)
			return -PKT_TRUNC_IP;
		v = c->p[0] >> 4;
		return v == 4 || v == 6 ? v : -PKT_BAD_IP_VERSION;
	case PKT_LINK_IPV4:
		return 4;
	case PKT_LINK_IPV6:
		return 6;
	case PKT_LINK_NULL:
		l = cur_take(c, NULL_HLEN);
		if (!l)
			return -PKT_TRUNC_L2;
		/* Host order of the capturing machine, which may not be ours: try both. */
		v = pkt_af_ver(ld_be32(l));
		if (!v)
			v = pkt_af_ver((uint32_t)l[3] << 24 | (uint32_t)l[2] << 16 |
				       (uint32_t)l[1] << 8 | l[0]);
		return v ? v : -PKT_NOT_IP;
	case PKT_LINK_PPP:
		if (cur_left(c) < 2)
			return -PKT_TRUNC_L2;
		if (c->p[0] == 0x0f || c->p[0] == 0x8f)
			return pkt_chdlc(c, et);  /* Cisco framing on a PPP link */
		if (c->p[0] == 0xff && c->p[1] == 0x03)
			cur_take(c, 2);
		return pkt_ppp_proto(c);
	case PKT_LINK_PPP_ETHER:
		if (!cur_take(c, PKT_PPPOE_HLEN - 2))
			return -PKT_TRUNC_L2;
		return pkt_ppp_proto(c);
	case PKT_LINK_CHDLC:
		return pkt_chdlc(c, et);
	default:
		return -PKT_NOT_IP;
	}
}

/* Link header and VLAN tags at c. Returns 4 or 6, the IP version that follows (the IP
 * header then checks it agrees), or minus the pkt_result that ends the parse here. */
static inline int pkt_link(struct cur *c, enum pkt_link link, struct pkt_key *k)
{
	uint16_t et = 0; /* set wherever pkt_link_other returns 0; gcc cannot tell */
	int v;

	/* Ethernet outside the switch: one compare rather than a bounded jump table, and
	 * untagged IPv4 straight out, for what most probes see on every frame. */
	if (link == PKT_LINK_ETH) {
		const uint8_t *l = cur_take(c, ETH_HLEN);
		if (!l)
			return -PKT_TRUNC_L2;
		et = ld_be16(l + 12);
		if (et == ET_IPV4)
			return 4;
	} else {
		v = pkt_link_other(c, link, &et);
		if (v)
			return v;
	}
	v = pkt_et_ver(et);
	if (v)
		return v;
	v = pkt_vlan(c, &et, k);
	if (v != PKT_OK)
		return -v;
	v = pkt_et_ver(et);
	if (v)
		return v;
	if (et == PKT_ET_MPLS_UC || et == PKT_ET_MPLS_MC)
		return pkt_mpls(c);
	if (et == PKT_ET_PPPOE_S)
		return pkt_pppoe(c);
	return -PKT_NOT_IP;
}

int pkt_parse(const uint8_t *frame, size_t caplen, enum pkt_link link, uint32_t in_if,
	      struct pkt_info *pi)
{
	struct pkt_info o;
	struct cur c;
	int r;

	/* Zeroed as a whole: the key is hashed and compared as bytes, pad included. */
	memset(&o, 0, sizeof(o));
	o.key.in_if = in_if;
	/* An empty frame may come as NULL; NULL + 0 is not valid C. */
	c = caplen ? cur_make(frame, caplen) : (struct cur){ NULL, NULL };
	r = pkt_link(&c, link, &o.key);
	if (r == 4)
		r = pkt_ip4(&c, &o);
	else if (r == 6)
		r = pkt_ip6(&c, &o);
	else
		return -r;
	if (r == PKT_OK)
		*pi = o;
	return r;
}

const char *pkt_result_name(int r)
{
	static const char *const names[PKT_NRESULTS] = {
		[PKT_OK] = "ok",
		[PKT_NOT_IP] = "not_ip",
		[PKT_TRUNC_L2] = "trunc_l2",
		[PKT_TOO_MANY_TAGS] = "too_many_tags",
		[PKT_TRUNC_IP] = "trunc_ip",
		[PKT_BAD_IP_VERSION] = "bad_ip_version",
		[PKT_BAD_IP_HDRLEN] = "bad_ip_hdrlen",
		[PKT_BAD_IP_LEN] = "bad_ip_len",
		[PKT_TRUNC_EXTHDR] = "trunc_exthdr",
		[PKT_TOO_MANY_EXTHDR] = "too_many_exthdr",
		[PKT_TRUNC_L4] = "trunc_l4",
		[PKT_BAD_L4] = "bad_l4",
	};

	if (r < 0 || r >= PKT_NRESULTS)
		return "unknown";
	return names[r];
}
