/* flowrec.h: the flow record both sides share (types only).
 *
 * The probe's exporter encodes it, the collector's decoders produce it and the store
 * keeps it. Fixed-width types only: this struct crosses 32- and 64-bit builds.
 * Addresses are 16 bytes; IPv4 is held v4-mapped (::ffff:a.b.c.d) so one layout serves
 * both families, and ipver says which the exporter meant.
 */
#ifndef TF_FLOWREC_H
#define TF_FLOWREC_H

#include <stdint.h>
#include <string.h>

/* Why a flow record ended (probe side; carried as IPFIX flowEndReason values). */
enum flow_end {
	FLOW_END_UNKNOWN = 0,
	FLOW_END_IDLE = 1,     /* inactive timeout */
	FLOW_END_ACTIVE = 2,   /* active timeout */
	FLOW_END_EOF = 3,      /* TCP FIN/RST seen (end of flow detected) */
	FLOW_END_FORCED = 4,   /* shutdown, end of capture file */
	FLOW_END_RESOURCE = 5, /* table full: expired early */
};

struct flow_rec {
	uint8_t src[16];
	uint8_t dst[16];
	uint8_t nexthop[16];  /* zero when unknown */
	uint8_t exporter[16]; /* collector side: the exporter's address */
	uint64_t packets;
	uint64_t bytes;       /* IP-layer bytes */
	uint64_t first_ms;    /* Unix time in milliseconds */
	uint64_t last_ms;
	uint32_t in_if;
	uint32_t out_if;
	uint32_t src_as;
	uint32_t dst_as;
	uint32_t domain_id;   /* NetFlow v9 source ID / IPFIX observation domain */
	uint32_t sampling;    /* sampling interval applied (1: unsampled) */
	uint16_t sport;
	uint16_t dport;       /* ICMP: type << 8 | code, as Cisco does */
	uint16_t vlan;
	uint8_t proto;
	uint8_t tos;
	uint8_t tcp_flags;
	uint8_t ipver;        /* 4 or 6 */
	uint8_t src_mask;
	uint8_t dst_mask;
	uint8_t end_reason;   /* enum flow_end */
	uint8_t pad[3];
};

/* Sets *a to the v4-mapped form of the IPv4 address at v4 (network byte order). */
static inline void flowrec_addr4(uint8_t a[16], const uint8_t v4[4])
{
	for (int i = 0; i < 10; i++)
		a[i] = 0;
	a[10] = 0xff;
	a[11] = 0xff;
	a[12] = v4[0];
	a[13] = v4[1];
	a[14] = v4[2];
	a[15] = v4[3];
}

/* True if a is v4-mapped. */
static inline int flowrec_is4(const uint8_t a[16])
{
	static const uint8_t pre[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
	uint64_t x, y;
	uint32_t u, v;

	/* two loads, not twelve byte tests: queries call this per record */
	memcpy(&x, a, 8);
	memcpy(&y, pre, 8);
	memcpy(&u, a + 8, 4);
	memcpy(&v, pre + 8, 4);
	return x == y && u == v;
}

#endif
