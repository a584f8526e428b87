/* pkt.h: the probe's packet parser. One pass over a frame, every field read through a
 * bounds-checked cursor (common/bytes.h), never an unaligned load. It turns a frame into
 * the flow key and the few per-packet facts the flow table needs, or names the reason
 * it could not.
 */
#ifndef TF_PKT_H
#define TF_PKT_H

#include <stddef.h>
#include <stdint.h>

#define PKT_MAX_TAGS 4    /* VLAN tags followed; one more is PKT_TOO_MANY_TAGS */
#define PKT_MAX_LABELS 8  /* MPLS labels followed; one more is PKT_TOO_MANY_TAGS */

/* Encapsulations between the link header (or its VLAN tags) and IP, followed by both
 * parsers (this one and the eBPF program's). */
#define PKT_ET_MPLS_UC 0x8847
#define PKT_ET_MPLS_MC 0x8848
#define PKT_ET_PPPOE_S 0x8864   /* PPPoE session stage; discovery (0x8863) is not IP */
#define PKT_PPP_IPV4 0x0021
#define PKT_PPP_IPV6 0x0057
#define PKT_PPP_MPLS_UC 0x0281
#define PKT_PPP_MPLS_MC 0x0283
#define PKT_PPPOE_HLEN 8        /* PPPoE header (6) and the PPP protocol (2) */
#define PKT_MAX_EXTHDR 8  /* IPv6 extension headers followed; one more is PKT_TOO_MANY_EXTHDR */

/* Link types the parser understands (our own numbering; capture backends map theirs). */
enum pkt_link {
	PKT_LINK_ETH = 0,   /* Ethernet II, 802.1Q / 802.1ad tags */
	PKT_LINK_RAW,       /* raw IP: version from the first nibble */
	PKT_LINK_IPV4,      /* raw IPv4 */
	PKT_LINK_IPV6,      /* raw IPv6 */
	PKT_LINK_SLL,       /* Linux cooked capture v1 (16-byte header) */
	PKT_LINK_SLL2,      /* Linux cooked capture v2 (20-byte header) */
	PKT_LINK_NULL,      /* BSD loopback: 4-byte host-order family */
	PKT_LINK_PPP,       /* PPP, with or without HDLC framing (ff 03), or Cisco HDLC in it */
	PKT_LINK_PPP_ETHER, /* PPPoE session header, then PPP (no Ethernet) */
	PKT_LINK_CHDLC,     /* Cisco HDLC: address, control, ethertype */
};

/* Outcome of parsing one frame. PKT_OK and PKT_NOT_IP are not errors; every other value
 * is a reason the frame was dropped, and each has its own counter. */
enum pkt_result {
	PKT_OK = 0,
	PKT_NOT_IP,          /* valid frame that carries no IP (ARP, LLDP, ...) */
	PKT_TRUNC_L2,        /* shorter than its link header or VLAN tags */
	PKT_TOO_MANY_TAGS,   /* more VLAN tags (or MPLS labels) than we follow */
	PKT_TRUNC_IP,        /* shorter than the IP header */
	PKT_BAD_IP_VERSION,  /* version nibble disagrees with the link type */
	PKT_BAD_IP_HDRLEN,   /* IPv4 IHL < 5, or header longer than the packet */
	PKT_BAD_IP_LEN,      /* IP total/payload length smaller than its header */
	PKT_TRUNC_EXTHDR,    /* IPv6 extension header runs past the capture */
	PKT_TOO_MANY_EXTHDR, /* extension header chain longer than we follow */
	PKT_TRUNC_L4,        /* transport header cut short by the capture (first fragment) */
	PKT_BAD_L4,          /* transport header invalid (TCP data offset < 5) */
	PKT_NRESULTS
};

/* The flow key: 7-tuple plus VLAN and IP version. Fixed layout, no padding holes left
 * undefined: pkt_parse zeroes the whole key first so it can be hashed and compared as
 * bytes. IPv4 addresses are v4-mapped. */
struct pkt_key {
	uint8_t src[16];
	uint8_t dst[16];
	uint32_t in_if;
	uint16_t sport;
	uint16_t dport;   /* ICMP and ICMPv6: type << 8 | code */
	uint16_t vlan;    /* outermost 802.1Q/802.1ad VLAN id, 0 if untagged */
	uint8_t proto;
	uint8_t tos;      /* IPv4 ToS byte / IPv6 traffic class */
	uint8_t ipver;    /* 4 or 6 */
	uint8_t pad[3];
};

/* Fragment state of the packet. */
enum pkt_frag {
	PKT_FRAG_NONE = 0,  /* not fragmented */
	PKT_FRAG_FIRST,     /* offset 0, more fragments follow: ports are present */
	PKT_FRAG_LATER,     /* offset > 0: no transport header, ports are 0 */
};

struct pkt_info {
	struct pkt_key key;
	uint32_t ip_len;    /* IP-layer bytes: IPv4 total length, IPv6 payload length + 40 */
	uint32_t frag_id;   /* IPv4 identification or IPv6 fragment id, when fragmented */
	uint8_t tcp_flags;
	uint8_t frag;       /* enum pkt_frag */
};

/* Parses one frame of caplen bytes captured on a link of type link. in_if is the
 * input interface index to put in the key. Fills *pi on PKT_OK only; returns the
 * enum pkt_result. Never reads outside [frame, frame + caplen); *pi is not written
 * unless the result is PKT_OK. frame may be NULL when caplen is 0.
 * How the edge cases come out (for whoever reads the counters):
 * - Headers are read only up to the IP length (IPv4 total length, IPv6 payload length
 *   + 40), never into link padding; an IP length of 0 (TSO/GSO, jumbograms) means the
 *   captured length from the IP header on, and that is what ip_len then says.
 * - IPv4: IHL < 5 is PKT_BAD_IP_HDRLEN; total length < IHL * 4 is PKT_BAD_IP_LEN; a
 *   header (options included) cut by the capture is PKT_TRUNC_IP.
 * - IPv6: an extension header running past the capture or past the payload length is
 *   PKT_TRUNC_EXTHDR. Followed: hop-by-hop, routing, destination options, fragment,
 *   AH; key.proto is the first other next-header value (ESP 50 and 59 included).
 * - Fragments: IPv4 MF with offset 0, or an IPv6 fragment header with offset 0 and M
 *   set, is PKT_FRAG_FIRST and keeps its ports; a non-zero offset is PKT_FRAG_LATER
 *   (ports and flags 0, key.proto = the fragmented protocol). An IPv6 fragment header
 *   with offset 0 and M clear (atomic fragment, RFC 6946) is a whole packet:
 *   PKT_FRAG_NONE. frag_id is set for FIRST and LATER.
 * - Transport: ports need 4 bytes (ICMP type/code 2), else PKT_TRUNC_L4, also when the
 *   IP length rather than the capture cuts them. TCP with only the ports captured is
 *   PKT_OK with tcp_flags 0; the data offset (< 5: PKT_BAD_L4) is checked when byte 12
 *   is captured, the flags read when byte 13 is. Other protocols: ports 0, PKT_OK.
 * - VLAN tags (0x8100, 0x88a8, 0x9100) are followed after Ethernet and after SLL/SLL2,
 *   then an MPLS label stack (to the bottom of stack; the payload's version nibble
 *   says IPv4 or IPv6, anything else, a pseudowire say, is PKT_NOT_IP; a label cut
 *   short is PKT_TRUNC_L2, nothing after the stack PKT_TRUNC_IP) or a PPPoE session
 *   header (PPP protocol IPv4 or IPv6, else PKT_NOT_IP; cut short: PKT_TRUNC_L2).
 * - PPP links: the HDLC address/control bytes (ff 03) when present, a 1- or 2-byte
 *   protocol (IPv4, IPv6, MPLS; anything else PKT_NOT_IP). Cisco HDLC (and PPP links
 *   whose frames start 0f/8f, Cisco's own framing) carry an ethertype.
 *   BSD NULL families are read in both byte orders. A link value outside enum pkt_link
 *   is PKT_NOT_IP. */
int pkt_parse(const uint8_t *frame, size_t caplen, enum pkt_link link, uint32_t in_if,
	      struct pkt_info *pi);

/* Short stable name of a result, for statistics ("trunc_ip"). */
const char *pkt_result_name(int r);

#endif
