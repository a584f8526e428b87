/* test_filt.c: nfdump filter expressions mean what nfdump means (an expectation table
 * over hand-made records, as nfdump's nftest.c), the column program agrees with the
 * record-at-a-time matcher on random filters and records, the zone map never skips a
 * block that holds a match, and bad filters are refused with the offending token's
 * position and a message that says what was expected. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "filt.h"

/* ---- records ---- */

static void set_addr(uint8_t a[16], const char *s)
{
	uint8_t v4[4];

	if (inet_pton(AF_INET, s, v4) == 1)
		flowrec_addr4(a, v4);
	else
		assert_int_equal(inet_pton(AF_INET6, s, a), 1);
}

enum { RA, RB, RC, RD, RE, RF, RG, RH, RI, NREC };

/* A: IPv4 TCP 192.168.0.1:40000 -> 172.16.1.2:443, SYN+ACK, 10 pkts, 5000 B, 2 s.
 * B: IPv6 UDP [2001:db8::1]:5353 -> [2001:db8:1::53]:53, 2 pkts, 300 B, 0 s.
 * C: IPv4 ICMP echo request 10.1.2.3 -> 192.168.0.1 (type 8 code 0).
 * D: ICMPv6 destination unreachable, port unreachable fe80::2 -> ff02::1 (1/4).
 * E: IPv4 TCP SYN only 192.168.0.77:22 -> 192.168.0.1:51000, 1 pkt, 60 B, 3 ms.
 * F: a record exported as IPv6 whose addresses are v4-mapped.
 * G: IPv4 GRE. H: IPv6 ESP. I: IPv4 TCP, FIN only. */
static void make_records(struct flow_rec r[NREC])
{
	memset(r, 0, NREC * sizeof(*r));

	set_addr(r[RA].src, "192.168.0.1");
	set_addr(r[RA].dst, "172.16.1.2");
	set_addr(r[RA].nexthop, "192.168.0.254");
	set_addr(r[RA].exporter, "10.9.9.9");
	r[RA].sport = 40000;
	r[RA].dport = 443;
	r[RA].proto = 6;
	r[RA].tos = 16;
	r[RA].tcp_flags = 0x12;
	r[RA].packets = 10;
	r[RA].bytes = 5000;
	r[RA].first_ms = 1000000;
	r[RA].last_ms = 1002000;
	r[RA].in_if = 3;
	r[RA].out_if = 7;
	r[RA].src_as = 64500;
	r[RA].dst_as = 15169;
	r[RA].vlan = 100;
	r[RA].src_mask = 24;
	r[RA].dst_mask = 16;
	r[RA].domain_id = 42;
	r[RA].ipver = 4;

	set_addr(r[RB].src, "2001:db8::1");
	set_addr(r[RB].dst, "2001:db8:1::53");
	set_addr(r[RB].nexthop, "fe80::1");
	set_addr(r[RB].exporter, "2001:db8:ffff::1");
	r[RB].sport = 5353;
	r[RB].dport = 53;
	r[RB].proto = 17;
	r[RB].packets = 2;
	r[RB].bytes = 300;
	r[RB].first_ms = 5000;
	r[RB].last_ms = 5000;
	r[RB].in_if = 1;
	r[RB].out_if = 2;
	r[RB].dst_as = 64500;
	r[RB].src_mask = 48;
	r[RB].dst_mask = 64;
	r[RB].domain_id = 7;
	r[RB].ipver = 6;

	set_addr(r[RC].src, "10.1.2.3");
	set_addr(r[RC].dst, "192.168.0.1");
	r[RC].dport = 8 << 8;
	r[RC].proto = 1;
	r[RC].packets = 4;
	r[RC].bytes = 336;
	r[RC].ipver = 4;

	set_addr(r[RD].src, "fe80::2");
	set_addr(r[RD].dst, "ff02::1");
	r[RD].dport = 1 << 8 | 4;
	r[RD].proto = 58;
	r[RD].packets = 1;
	r[RD].bytes = 96;
	r[RD].ipver = 6;

	set_addr(r[RE].src, "192.168.0.77");
	set_addr(r[RE].dst, "192.168.0.1");
	r[RE].sport = 22;
	r[RE].dport = 51000;
	r[RE].proto = 6;
	r[RE].tcp_flags = 0x02;
	r[RE].packets = 1;
	r[RE].bytes = 60;
	r[RE].first_ms = 7;
	r[RE].last_ms = 10;
	r[RE].ipver = 4;

	set_addr(r[RF].src, "::ffff:192.168.0.1");
	set_addr(r[RF].dst, "::ffff:10.0.0.1");
	r[RF].proto = 17;
	r[RF].ipver = 6;

	set_addr(r[RG].src, "10.0.0.1");
	set_addr(r[RG].dst, "10.0.0.2");
	r[RG].proto = 47;
	r[RG].ipver = 4;

	set_addr(r[RH].src, "2001:db8::1");
	set_addr(r[RH].dst, "2001:db8::2");
	r[RH].proto = 50;
	r[RH].ipver = 6;

	set_addr(r[RI].src, "192.168.0.1");
	set_addr(r[RI].dst, "172.16.1.2");
	r[RI].proto = 6;
	r[RI].tcp_flags = 0x01;
	r[RI].ipver = 4;
}

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

static void cols_fill(struct store_cols *c, const struct flow_rec *r, uint32_t n)
{
	assert_int_equal(store_cols_reserve(c, n ? n : 1, STORE_COLS_ALL), 0);
	for (uint32_t i = 0; i < n; i++)
		cols_put(c, i, &r[i]);
	c->n = n;
	c->mask = STORE_COLS_ALL;
}

/* The zone map the store writes for a block (store.c zone_of_cols), with the counter
 * sums saturating rather than wrapping: what filt_zone_may_match relies on. */
static uint64_t sat_add(uint64_t a, uint64_t b)
{
	return a + b < a ? UINT64_MAX : a + b;
}

static void zone_of(struct store_zone *z, const struct flow_rec *r, uint32_t n)
{
	memset(z, 0, sizeof(*z));
	z->first_min = z->last_min = UINT64_MAX;
	z->sport_min = z->dport_min = UINT16_MAX;
	for (uint32_t i = 0; i < n; i++) {
		if (r[i].first_ms < z->first_min) z->first_min = r[i].first_ms;
		if (r[i].first_ms > z->first_max) z->first_max = r[i].first_ms;
		if (r[i].last_ms < z->last_min) z->last_min = r[i].last_ms;
		if (r[i].last_ms > z->last_max) z->last_max = r[i].last_ms;
		if (r[i].sport < z->sport_min) z->sport_min = r[i].sport;
		if (r[i].sport > z->sport_max) z->sport_max = r[i].sport;
		if (r[i].dport < z->dport_min) z->dport_min = r[i].dport;
		if (r[i].dport > z->dport_max) z->dport_max = r[i].dport;
		z->packets = sat_add(z->packets, r[i].packets);
		z->bytes = sat_add(z->bytes, r[i].bytes);
		z->proto[r[i].proto >> 3] |= (uint8_t)(1u << (r[i].proto & 7));
		z->ipver |= r[i].ipver == 6 ? 2 : 1;
	}
}

static struct filt *compile_ok(const char *expr)
{
	char err[256];
	size_t pos;
	struct filt *f = filt_compile(expr, err, sizeof(err), &pos);

	if (!f)
		fail_msg("'%s' did not compile: %s (position %zu)", expr, err, pos);
	return f;
}

/* ---- the expectation table ---- */

static const struct {
	const char *expr;
	int rec;
	int want;
} table[] = {
	/* the examples the brief names */
	{ "host 192.168.0.1", RA, 1 },
	{ "host 192.168.0.1", RC, 1 },
	{ "host 192.168.0.1", RB, 0 },
	{ "host 192.168.0.1", RF, 0 },          /* v4 filters match IPv4 records only */
	{ "dst host 192.168.0.1", RA, 0 },
	{ "dst host 192.168.0.1", RC, 1 },
	{ "src net 192.168.0.0/24", RA, 1 },
	{ "src net 192.168.0.0/24", RC, 0 },
	{ "src net 192.168.0.0/24", RE, 1 },
	{ "(port 80) or (port 443)", RA, 1 },
	{ "(port 80) or (port 443)", RB, 0 },
	{ "port not 53", RB, 0 },
	{ "port not 53", RA, 1 },
	{ "not port 53", RB, 0 },
	{ "not port 53", RA, 1 },
	{ "(port 22) and (dst host 192.168.0.1)", RE, 1 },
	{ "(port 22) and (dst host 192.168.0.1)", RA, 0 },
	{ "(port 22) and (dst host 192.168.0.1)", RC, 0 },
	/* host / ip, v4 and v6, qualifiers */
	{ "src host 192.168.0.1", RA, 1 },
	{ "src ip 192.168.0.1", RC, 0 },
	{ "ip 192.168.0.1", RC, 1 },
	{ "host 2001:db8::1", RB, 1 },
	{ "host 2001:db8::1", RA, 0 },
	{ "ip 2001:db8:1::53", RB, 1 },
	{ "dst ip 2001:db8::1", RB, 0 },
	{ "src ip 2001:db8::1", RB, 1 },
	{ "host ::ffff:192.168.0.1", RF, 1 },   /* a v6 filter: IPv6 records only */
	{ "host ::ffff:192.168.0.1", RA, 0 },
	{ "src or dst host 192.168.0.1", RC, 1 },
	{ "dst or src host 192.168.0.1", RA, 1 },
	{ "src and dst host 192.168.0.1", RA, 0 },
	{ "src and dst net 192.168.0.0/24", RE, 1 },
	{ "dst and src net 192.168.0.0/24", RA, 0 },
	{ "host in [ 192.168.0.1 2001:db8::1 ]", RA, 1 },
	{ "host in [ 192.168.0.1 2001:db8::1 ]", RB, 1 },
	{ "host in [ 192.168.0.1 2001:db8::1 ]", RC, 1 },
	{ "host in [ 192.168.0.1 2001:db8::1 ]", RF, 0 },
	{ "host in [192.168.0.1,2001:db8::1]", RB, 1 },
	{ "ip in [ 10.0.0.0/8, 2001:db8:1::/48 ]", RC, 1 },
	{ "src ip in [ 10.0.0.0/8 2001:db8:1::/48 ]", RB, 0 },
	{ "dst ip in [ 10.0.0.0/8 2001:db8:1::/48 ]", RB, 1 },
	{ "host in [ ::ffff:192.168.0.1 ]", RF, 1 },
	{ "host in [ ::ffff:192.168.0.1 ]", RA, 0 },
	{ "src and dst ip in [ 192.168.0.0/24 ]", RE, 1 },
	{ "src and dst ip in [ 192.168.0.0/24 ]", RC, 0 },
	/* net */
	{ "net 172.16.0.0/12", RA, 1 },
	{ "net 172.16.0.0 255.240.0.0", RA, 1 },
	{ "net 172.16.0.0 255.255.255.0", RA, 0 },
	{ "dst net 172.16.1.0 255.255.255.0", RA, 1 },
	{ "net 10.0.0.0/8", RC, 1 },
	{ "net 192.168.0.9/24", RA, 1 },        /* host bits are masked off */
	{ "net 192.168.0.1/32", RA, 1 },
	{ "net 192.168.0.2/32", RA, 0 },
	{ "net 192.168.0.0/32", RA, 0 },
	{ "src net 192.168.0.128/25", RE, 0 },
	{ "src net 192.168.0.0/25", RE, 1 },
	{ "net 2001:db8:1::/47", RB, 1 },
	{ "net 2001:db8:1::/48", RB, 1 },
	{ "src net 2001:db8:1::/48", RB, 0 },
	{ "net 0.0.0.0/0", RA, 1 },
	{ "net 0.0.0.0/0", RB, 0 },
	{ "net 0.0.0.0/0", RF, 0 },
	{ "net ::/0", RB, 1 },
	{ "net ::/0", RA, 0 },
	{ "net ::/0", RF, 1 },
	{ "net 2001:db8::/32", RB, 1 },
	{ "dst net 2001:db8:1::/48", RB, 1 },
	{ "src net 2001:db8:1::/48", RB, 0 },
	{ "net fe80::/10", RD, 1 },
	{ "net fe80::/10", RB, 0 },
	/* ports and every comparator */
	{ "port 443", RA, 1 },
	{ "src port 443", RA, 0 },
	{ "dst port 443", RA, 1 },
	{ "src port 40000", RA, 1 },
	{ "port 0x1bb", RA, 1 },
	{ "port > 1024", RA, 1 },
	{ "port < 100", RB, 1 },
	{ "dst port < 100", RA, 0 },
	{ "dst port = 443", RA, 1 },
	{ "dst port == 443", RA, 1 },
	{ "dst port eq 443", RA, 1 },
	{ "dst port < 443", RA, 0 },
	{ "dst port lt 444", RA, 1 },
	{ "dst port > 443", RA, 0 },
	{ "dst port gt 442", RA, 1 },
	{ "dst port <= 443", RA, 1 },
	{ "dst port le 442", RA, 0 },
	{ "dst port >= 443", RA, 1 },
	{ "dst port ge 444", RA, 0 },
	{ "dst port EQ 443", RA, 1 },
	{ "src and dst port > 50", RB, 1 },
	{ "src and dst port > 53", RB, 0 },
	{ "src or dst port 53", RB, 1 },
	{ "port < 0", RB, 0 },
	{ "port >= 0", RB, 1 },
	{ "port in [ 80 443 ]", RA, 1 },
	{ "port in [80,22]", RE, 1 },
	{ "port in [80,22]", RA, 0 },
	{ "dst port in [ 53 ]", RB, 1 },
	{ "src port in [ 53 ]", RB, 0 },
	{ "src and dst port in [ 53 5353 ]", RB, 1 },
	{ "port 2048", RC, 1 },                 /* ICMP type << 8 | code lives in dport */
	/* protocols */
	{ "proto tcp", RA, 1 },
	{ "proto tcp", RB, 0 },
	{ "proto udp", RB, 1 },
	{ "proto icmp", RC, 1 },
	{ "proto icmp6", RD, 1 },
	{ "proto icmp6", RC, 0 },
	{ "proto gre", RG, 1 },
	{ "proto esp", RH, 1 },
	{ "proto 6", RA, 1 },
	{ "proto 17", RA, 0 },
	{ "proto TCP", RA, 1 },
	{ "PROTO Udp", RB, 1 },
	{ "proto 47", RG, 1 },
	{ "proto ipip", RG, 0 },
	/* address families */
	{ "ipv4", RA, 1 },
	{ "ipv4", RB, 0 },
	{ "ipv4", RF, 0 },
	{ "inet", RC, 1 },
	{ "ipv6", RB, 1 },
	{ "ipv6", RA, 0 },
	{ "inet6", RF, 1 },
	/* tos */
	{ "tos 16", RA, 1 },
	{ "src tos 16", RA, 1 },
	{ "tos > 15", RA, 1 },
	{ "tos < 16", RA, 0 },
	{ "tos 0", RB, 1 },
	/* TCP flags: letters mean all of them, and imply proto tcp */
	{ "flags S", RA, 1 },
	{ "flags S", RE, 1 },
	{ "flags AS", RA, 1 },
	{ "flags SA", RA, 1 },
	{ "flags AS", RE, 0 },
	{ "flags A", RE, 0 },
	{ "flags F", RA, 0 },
	{ "flags F", RI, 1 },
	{ "flags X", RA, 0 },
	{ "flags s", RA, 1 },
	{ "flags S", RB, 0 },
	{ "flags 18", RA, 1 },
	{ "flags 2", RA, 0 },
	{ "flags 2", RE, 1 },
	{ "flags > 16", RA, 1 },
	{ "flags < 3", RE, 1 },
	{ "not flags S", RE, 0 },
	{ "not flags S", RB, 1 },               /* not TCP */
	/* nfdump: under NOT, flags test "any of"; its SYN-only idiom relies on it */
	{ "flags S and not flags AFRPU", RE, 1 },
	{ "flags S and not flags AFRPU", RA, 0 },
	{ "not flags AS", RE, 0 },
	{ "not flags AS", RI, 1 },
	{ "not not flags AS", RE, 0 },
	{ "flags not AS", RE, 0 },
	/* interfaces */
	{ "in if 3", RA, 1 },
	{ "out if 3", RA, 0 },
	{ "if 3", RA, 1 },
	{ "if 7", RA, 1 },
	{ "out if 7", RA, 1 },
	{ "if 8", RA, 0 },
	/* AS numbers */
	{ "as 64500", RA, 1 },
	{ "as 64500", RB, 1 },
	{ "src as 64500", RB, 0 },
	{ "dst as 64500", RB, 1 },
	{ "as > 60000", RA, 1 },
	{ "src as < 100", RB, 1 },
	{ "as in [ 15169 1 ]", RA, 1 },
	{ "src as in [ 15169 ]", RA, 0 },
	{ "src and dst as > 10000", RA, 1 },
	{ "src and dst as > 10000", RB, 0 },
	/* vlan, masks, domain */
	{ "vlan 100", RA, 1 },
	{ "src vlan 100", RA, 1 },
	{ "vlan 101", RA, 0 },
	{ "vlan 0", RB, 1 },
	{ "src mask 24", RA, 1 },
	{ "dst mask 24", RA, 0 },
	{ "mask 16", RA, 1 },
	{ "src and dst mask 16", RA, 0 },
	{ "observation domain id 42", RA, 1 },
	{ "observation domain id 42", RB, 0 },
	/* counters with scaling (powers of 1000) */
	{ "packets 10", RA, 1 },
	{ "packets > 9", RA, 1 },
	{ "packets < 10", RA, 0 },
	{ "in packets >= 10", RA, 1 },
	{ "bytes > 4k", RA, 1 },
	{ "bytes > 5k", RA, 0 },
	{ "bytes = 5K", RA, 1 },
	{ "bytes < 1M", RA, 1 },
	{ "in bytes > 1g", RA, 0 },
	{ "packets > 1t", RA, 0 },
	/* derived: duration in ms; pps, bps, bpp with nfdump's integer arithmetic */
	{ "duration 2000", RA, 1 },
	{ "duration > 1999", RA, 1 },
	{ "duration > 2000", RA, 0 },
	{ "duration 0", RB, 1 },
	{ "pps 5", RA, 1 },
	{ "pps > 4", RA, 1 },
	{ "pps 0", RB, 1 },                     /* zero duration */
	{ "pps 333", RE, 1 },                   /* 1000 * 1 / 3, truncated */
	{ "bps 160000", RE, 1 },                /* 8000 * 60 / 3 */
	{ "duration 3", RE, 1 },
	{ "bps 20000", RA, 1 },
	{ "bps > 19k", RA, 1 },
	{ "bps > 20k", RA, 0 },
	{ "bpp 500", RA, 1 },
	{ "bpp 150", RB, 1 },
	{ "bpp > 150", RB, 0 },
	/* ICMP type and code imply proto icmp or icmp6 */
	{ "icmp-type 8", RC, 1 },
	{ "icmp-code 0", RC, 1 },
	{ "icmp-type 1", RD, 1 },
	{ "icmp-code 4", RD, 1 },
	{ "icmp-type 1", RA, 0 },               /* 443 = 1 << 8 | 187, but TCP */
	{ "icmp-code 0", RD, 0 },
	/* next hop and exporter */
	{ "next ip 192.168.0.254", RA, 1 },
	{ "next ip 192.168.0.253", RA, 0 },
	{ "next ip fe80::1", RB, 1 },
	{ "next ip in [ 192.168.0.254 fe80::1 ]", RB, 1 },
	{ "router ip 10.9.9.9", RA, 1 },
	{ "router ip 10.9.9.9", RB, 0 },
	{ "router ip 2001:db8:ffff::1", RB, 1 },
	{ "router ip in [ 10.0.0.0/8 ]", RA, 1 },
	/* constants */
	{ "any", RA, 1 },
	{ "not any", RA, 0 },
	{ "flows 1", RA, 1 },
	{ "flows > 1", RA, 0 },
	{ "", RA, 1 },
	{ "  \t\n", RB, 1 },
	{ "# just a comment", RB, 1 },
	/* boolean structure, precedence, spelling */
	{ "not port 443 and proto tcp", RA, 0 },
	{ "not (port 443 and proto udp)", RA, 1 },
	{ "port 443 or port 53 and proto udp", RA, 1 },
	{ "(port 443 or port 53) and proto udp", RA, 0 },
	{ "proto tcp && port 443", RA, 1 },
	{ "proto udp || port 443", RA, 1 },
	{ "! proto tcp", RA, 0 },
	{ "!proto tcp", RB, 1 },
	{ "not not proto tcp", RA, 1 },
	{ "PORT 443 AND NOT HOST 10.0.0.1", RA, 1 },
	{ "Host 192.168.0.1 And Port 443", RA, 1 },
	{ "port 443 # https\n and proto tcp", RA, 1 },
	{ "port 443 and (proto udp or any)", RA, 1 },
	{ "port 443 and not (proto tcp or any)", RA, 0 },
	{ "src port 40000 and (dst port 443 or dst port 80) and not dst net 10.0.0.0/8", RA, 1 },
	{ "((((proto tcp))))", RA, 1 },
	{ "host not 192.168.0.1", RA, 0 },
	{ "port != 443", RA, 0 },
	{ "port != 80", RA, 1 },
	{ "proto tcp and (port 22 or port 443 or port 8080) and not ipv6", RA, 1 },
	{ "proto tcp and (port 22 or port 443 or port 8080) and not ipv6", RE, 1 },
	{ "proto tcp and (port 22 or port 443 or port 8080) and not ipv6", RI, 0 },
};

static int same_tuple(const struct flow_rec *a, const struct flow_rec *b)
{
	return a->in_if == b->in_if && a->out_if == b->out_if && a->vlan == b->vlan &&
	       a->proto == b->proto && a->tos == b->tos && a->tcp_flags == b->tcp_flags &&
	       a->ipver == b->ipver && a->src_mask == b->src_mask &&
	       a->dst_mask == b->dst_mask && a->end_reason == b->end_reason;
}

/* all's columns of members handed out as a dictionary of distinct tuples (dict) and an
 * index a record (tidx), as the store's reader does: *tv shares all's arrays. */
static void tuple_of(const struct store_cols *all, const struct flow_rec *r, uint32_t n,
		     uint32_t members, struct store_cols *tv, struct store_cols *dict,
		     uint32_t *tidx)
{
	uint32_t nd = 0;

	assert_int_equal(store_cols_reserve(dict, n ? n : 1, STORE_COLS_ALL), 0);
	dict->mask = STORE_TUPLE_MEMBERS;
	for (uint32_t i = 0; i < n; i++) {
		uint32_t j;
		for (j = 0; j < nd; j++) {
			struct flow_rec d;
			store_cols_get(dict, j, &d);
			if (same_tuple(&d, &r[i]))
				break;
		}
		if (j == nd)
			cols_put(dict, nd++, &r[i]);
		tidx[i] = j;
	}
	dict->n = nd;
	*tv = *all;
	/* the members' record arrays gone: a leaf that reads them anyway crashes */
#define DROP(f, c) if (members & STORE_COLBIT(c)) tv->f = NULL
	DROP(in_if, STORE_COL_IN_IF); DROP(out_if, STORE_COL_OUT_IF); DROP(vlan, STORE_COL_VLAN);
	DROP(proto, STORE_COL_PROTO); DROP(tos, STORE_COL_TOS);
	DROP(tcp_flags, STORE_COL_TCP_FLAGS); DROP(ipver, STORE_COL_IPVER);
	DROP(src_mask, STORE_COL_SRC_MASK); DROP(dst_mask, STORE_COL_DST_MASK);
	DROP(end_reason, STORE_COL_END_REASON);
#undef DROP
	tv->mask &= ~members;
	tv->tuple = members;
	tv->tidx = tidx;
	tv->tdict = dict;
}

/* Port codes as the store's reader hands them out (store_cols' pcodes) for the port
 * columns of pcols, sharing all's other arrays. kind 0: the even records' ports are the
 * frequent values, the others' exceptions; 1: every port an exception (one frequent
 * value no record has); 2: every port frequent. */
struct pview {
	uint64_t code[2][NREC];
	uint16_t dict[2][NREC + 1], exc[2][NREC], val[2][NREC];
};

static void ports_of(const struct store_cols *all, uint32_t pcols, int kind, struct pview *p,
		     struct store_cols *pv)
{
	*pv = *all;
	for (int k = 0; k < 2; k++) {
		const uint32_t bit = STORE_COLBIT(k ? STORE_COL_DPORT : STORE_COL_SPORT);
		const uint16_t *v = k ? all->dport : all->sport;
		uint32_t nf = 0, ne = 0;
		if (!(pcols & bit))
			continue;
		if (kind == 1)
			p->dict[k][nf++] = 65535;
		for (uint32_t i = 0; i < all->n; i++) {
			uint32_t j = 0;
			while (j < nf && p->dict[k][j] != v[i])
				j++;
			if (j == nf && (kind == 2 || (kind == 0 && i % 2 == 0)))
				p->dict[k][nf++] = v[i];
			if (j < nf) {
				p->code[k][i] = j + 1;
			} else {
				p->code[k][i] = 0;
				p->exc[k][ne++] = v[i];
			}
		}
		pv->pcode[k] = p->code[k];
		pv->pdict[k] = p->dict[k];
		pv->pexc[k] = p->exc[k];
		pv->pnf[k] = nf;
		pv->pne[k] = ne;
		pv->pemin[k] = 1;
		pv->pemax[k] = 0;
		for (uint32_t j = 0; j < ne; j++) {
			if (!j || p->exc[k][j] < pv->pemin[k])
				pv->pemin[k] = p->exc[k][j];
			if (!j || p->exc[k][j] > pv->pemax[k])
				pv->pemax[k] = p->exc[k][j];
		}
		pv->pval[k] = p->val[k];
		/* the record array gone: a leaf that reads it anyway crashes */
		if (k)
			pv->dport = NULL;
		else
			pv->sport = NULL;
		pv->mask &= ~bit;
		pv->pcodes |= bit;
	}
}

/* Each row through filt_match, through filt_eval on the record alone, in a block of
 * every record and in that block with tuple members as a dictionary (those the filter
 * takes so, and all of them: the record-by-record path) or ports as codes (likewise, in
 * each mix of frequent values and exceptions), and through the zone map of the record's
 * own block. */
static void test_table(void **st)
{
	struct flow_rec r[NREC];
	struct store_cols one, all, tv, dict;
	uint32_t sel[NREC], sel2[NREC], tidx[NREC];

	(void)st;
	make_records(r);
	store_cols_init(&one);
	store_cols_init(&all);
	store_cols_init(&dict);
	cols_fill(&all, r, NREC);
	for (size_t t = 0; t < sizeof(table) / sizeof(table[0]); t++) {
		struct filt *f = compile_ok(table[t].expr);
		struct store_zone z;
		int rec = table[t].rec, want = table[t].want, got, in_block = 0;
		uint32_t n;

		got = filt_match(f, &r[rec]);
		if (got != want)
			fail_msg("filt_match('%s', record %c) = %d, want %d", table[t].expr,
				 'A' + rec, got, want);
		cols_fill(&one, &r[rec], 1);
		n = filt_eval(f, &one, sel);
		if ((int)n != want)
			fail_msg("filt_eval('%s', record %c) = %u, want %d", table[t].expr,
				 'A' + rec, n, want);
		n = filt_eval(f, &all, sel);
		for (uint32_t i = 0; i < n; i++) {
			assert_true(i == 0 || sel[i] > sel[i - 1]);
			assert_int_equal(filt_match(f, &r[sel[i]]), 1);
			in_block |= sel[i] == (uint32_t)rec;
		}
		if (in_block != want)
			fail_msg("filt_eval('%s') over all records: %c %s", table[t].expr,
				 'A' + rec, want ? "missing" : "selected");
		for (int v = 0; v < 2; v++) {
			uint32_t members = v ? STORE_TUPLE_MEMBERS : filt_tuple_columns(f);
			if (!members)
				continue;
			tuple_of(&all, r, NREC, members, &tv, &dict, tidx);
			uint32_t n2 = filt_eval(f, &tv, sel2);
			if (n2 != n || memcmp(sel, sel2, n * sizeof(*sel)))
				fail_msg("filt_eval('%s') with tuple members %#x as the "
					 "dictionary: %u records, over the columns %u", table[t].expr,
					 members, n2, n);
			/* and with the indices packed as the store hands them out */
			uint8_t packed[NREC * 2 + 32];
			unsigned w = dict.n > 1 ? 32 - (unsigned)__builtin_clz(dict.n - 1) : 0;
			memset(packed, 0, sizeof(packed));
			for (uint32_t i = 0; i < NREC; i++)
				for (unsigned b = 0; b < w; b++)
					packed[(i * w + b) / 8] |= (uint8_t)((tidx[i] >> b & 1) <<
									     (i * w + b) % 8);
			tv.tidx = NULL;
			tv.tpk.p = packed;
			tv.tpk.base = 0;
			tv.tpk.mask = (1u << w) - 1;
			tv.tpk.w = w;
			n2 = filt_eval(f, &tv, sel2);
			if (n2 != n || memcmp(sel, sel2, n * sizeof(*sel)))
				fail_msg("filt_eval('%s') with tuple members %#x as the "
					 "dictionary, indices packed (%u bits): %u records, over the "
					 "columns %u", table[t].expr, members, w, n2, n);
		}
		for (int v = 0; v < 2; v++) {
			const uint32_t ports = STORE_COLBIT(STORE_COL_SPORT) |
					       STORE_COLBIT(STORE_COL_DPORT);
			uint32_t pcols = v ? ports : filt_port_code_columns(f);
			if (!(pcols & filt_columns(f)))
				continue;
			for (int kind = 0; kind < 3; kind++) {
				struct pview pvw;
				struct store_cols pv;
				ports_of(&all, pcols & filt_columns(f), kind, &pvw, &pv);
				uint32_t n2 = filt_eval(f, &pv, sel2);
				if (n2 != n || memcmp(sel, sel2, n * sizeof(*sel)))
					fail_msg("filt_eval('%s') with ports %#x as codes (%d): "
						 "%u records, over the columns %u", table[t].expr,
						 pcols, kind, n2, n);
			}
		}
		zone_of(&z, &r[rec], 1);
		if (want && !filt_zone_may_match(f, &z))
			fail_msg("'%s' skips the block of record %c", table[t].expr, 'A' + rec);
		filt_free(f);
	}
	store_cols_free(&one);
	store_cols_free(&all);
	store_cols_free(&dict);
}

/* Tuple indices handed out packed (store_cols.tpk; one bit a record, or none where the
 * block has one tuple): the records the columns give, whatever the block's length,
 * the indices' base (an entry of the dictionary no record uses), and the leaf's place
 * in the filter. */
static void test_tuple_packed(void **st)
{
	static const char *const exprs[] = {
		"proto tcp", "proto udp", "not proto tcp", "proto tcp or proto udp", "proto icmp",
		"port 80 and proto tcp", "proto udp and not port 80", "not (proto tcp or proto udp)",
	};
	static const uint32_t lens[] = { 1, 7, 8, 9, 63, 64, 65, 200 };
	struct flow_rec r[200], unused;
	struct store_cols all, tv, dict;
	uint32_t sel[200], sel2[200];
	uint8_t bits[200 / 8 + 8 + 32];         /* SLACK readable bytes after them */

	(void)st;
	store_cols_init(&all);
	store_cols_init(&dict);
	memset(&unused, 0, sizeof(unused));
	unused.proto = 1;
	for (int one = 0; one <= 1; one++) {
		for (uint32_t i = 0; i < 200; i++) {
			memset(&r[i], 0, sizeof(r[i]));
			r[i].ipver = 4;
			r[i].proto = one || (i * 7919) % 5 < 3 ? 6 : 17;
			r[i].dport = i % 4 ? (uint16_t)(1000 + i) : 80;
		}
		for (size_t li = 0; li < sizeof(lens) / sizeof(lens[0]); li++) {
			const uint32_t m = lens[li];
			cols_fill(&all, r, m);
			for (uint32_t base = 0; base <= 1; base++) {
				/* the dictionary: [unused], then the tuples in order of appearance */
				uint32_t nt = 0, w;
				assert_int_equal(store_cols_reserve(&dict, 4, STORE_COLS_ALL), 0);
				dict.mask = STORE_TUPLE_MEMBERS;
				if (base)
					cols_put(&dict, nt++, &unused);
				memset(bits, 0, sizeof(bits));
				for (uint32_t i = 0; i < m; i++) {
					uint32_t j = base;
					while (j < nt && dict.proto[j] != r[i].proto)
						j++;
					if (j == nt)
						cols_put(&dict, nt++, &r[i]);
					if (j > base)
						bits[i / 8] |= (uint8_t)(1u << i % 8);
				}
				dict.n = nt;
				w = nt - base > 1;
				assert_int_equal(w, !one && m > 1);
				for (size_t e = 0; e < sizeof(exprs) / sizeof(exprs[0]); e++) {
					struct filt *f = compile_ok(exprs[e]);
					assert_int_equal(filt_tuple_columns(f), STORE_COLBIT(STORE_COL_PROTO));
					tv = all;
					tv.proto = NULL;        /* a leaf that reads it anyway crashes */
					tv.mask &= ~STORE_COLBIT(STORE_COL_PROTO);
					tv.tuple = STORE_COLBIT(STORE_COL_PROTO);
					tv.tidx = NULL;
					tv.tpk.p = bits;
					tv.tpk.base = base;
					tv.tpk.mask = w;
					tv.tpk.w = w;
					tv.tdict = &dict;
					uint32_t n = filt_eval(f, &all, sel), n2 = filt_eval(f, &tv, sel2);
					if (n2 != n || memcmp(sel, sel2, n * sizeof(*sel)))
						fail_msg("'%s' over %u records (base %u, %u bits): %u "
							 "records packed, %u over the columns", exprs[e],
							 m, base, w, n2, n);
					filt_free(f);
				}
			}
		}
	}
	store_cols_free(&all);
	store_cols_free(&dict);
}

/* Which columns a filter can take as the tuple dictionary: tuple members that only
 * leaves on tuple members read. */
static void test_tuple_columns(void **st)
{
	static const struct {
		const char *expr;
		uint32_t want;
	} t[] = {
		{ "proto tcp and dst port 443", STORE_COLBIT(STORE_COL_PROTO) },
		{ "port 53", 0 },
		{ "bytes > 1k or duration < 10", 0 },
		{ "in if 3 or tos 4", STORE_COLBIT(STORE_COL_IN_IF) | STORE_COLBIT(STORE_COL_TOS) },
		{ "if 3", STORE_COLBIT(STORE_COL_IN_IF) | STORE_COLBIT(STORE_COL_OUT_IF) },
		{ "flags S and not flags AFRPU",
		  STORE_COLBIT(STORE_COL_TCP_FLAGS) | STORE_COLBIT(STORE_COL_PROTO) },
		{ "ipv6 and proto udp", STORE_COLBIT(STORE_COL_IPVER) | STORE_COLBIT(STORE_COL_PROTO) },
		/* an address leaf reads the IP version per record */
		{ "ipv6 and host 2001:db8::1", 0 },
		{ "any", 0 },
		{ "not any", 0 },
	};

	(void)st;
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		struct filt *f = compile_ok(t[i].expr);
		if (filt_tuple_columns(f) != t[i].want)
			fail_msg("filt_tuple_columns('%s') = %#x, want %#x", t[i].expr,
				 filt_tuple_columns(f), t[i].want);
		filt_free(f);
	}
}

/* Port leaves over codes whose exceptions are one range of ports and frequent values
 * others: a leaf clear of that range, one around it and one that cuts it each select
 * what they select over the values, by record and after another leaf. */
static void test_port_code_ranges(void **st)
{
	enum { N = 3000 };
	static const uint16_t freq[] = { 53, 443, 80, 5000 };
	static uint64_t code[N];
	static uint16_t exc[N], vals[N], room[N];
	static uint32_t sel[N], sel2[N];
	static const char *exprs[] = {
		"dst port 443", "dst port 1500", "dst port > 500", "dst port < 100",
		"dst port > 1500", "not dst port 443", "dst port in [ 53 1200 ]",
		"proto tcp and dst port 443", "proto tcp and not dst port > 999",
		"dst port >= 1000 and dst port <= 2000", "src port 7 or dst port 80",
	};
	struct store_cols all, pv;
	uint64_t r = 77;
	uint32_t ne = 0;
	(void)st;

	store_cols_init(&all);
	assert_int_equal(store_cols_reserve(&all, N, STORE_COLS_ALL), 0);
	all.mask = STORE_COLS_ALL;
	all.n = N;
	for (uint32_t i = 0; i < N; i++) {
		r = r * 6364136223846793005ULL + 1442695040888963407ULL;
		all.proto[i] = (uint8_t)(r >> 40 & 1 ? 6 : 17);
		all.sport[i] = (uint16_t)(r >> 20 & 7);
		if (r >> 33 & 1) {      /* frequent */
			code[i] = 1 + (r >> 34) % 4;
			all.dport[i] = freq[code[i] - 1];
		} else {                /* an exception, 1000 .. 2000 */
			code[i] = 0;
			all.dport[i] = exc[ne++] = (uint16_t)(1000 + (r >> 34) % 1001);
		}
	}
	pv = all;
	pv.dport = NULL;
	pv.mask &= ~STORE_COLBIT(STORE_COL_DPORT);
	pv.pcodes = STORE_COLBIT(STORE_COL_DPORT);
	pv.pcode[1] = code;
	pv.pdict[1] = freq;
	pv.pnf[1] = 4;
	pv.pexc[1] = exc;
	pv.pne[1] = ne;
	pv.pemin[1] = 1000;
	pv.pemax[1] = 2000;
	pv.pval[1] = room;
	memcpy(vals, all.dport, sizeof(vals));
	for (size_t t = 0; t < sizeof(exprs) / sizeof(exprs[0]); t++) {
		struct filt *f = compile_ok(exprs[t]);
		uint32_t n = filt_eval(f, &all, sel), n2 = filt_eval(f, &pv, sel2);
		if (n2 != n || memcmp(sel, sel2, n * sizeof(*sel)))
			fail_msg("filt_eval('%s') over port codes: %u records, over values %u",
				 exprs[t], n2, n);
		assert_memory_equal(all.dport, vals, sizeof(vals));
		filt_free(f);
	}
	store_cols_free(&all);
}

/* Which columns a filter can take as port codes: port columns that only leaves on that
 * one column read. */
static void test_port_code_columns(void **st)
{
	const uint32_t sp = STORE_COLBIT(STORE_COL_SPORT), dp = STORE_COLBIT(STORE_COL_DPORT);
	const struct {
		const char *expr;
		uint32_t want;
	} t[] = {
		{ "proto tcp and dst port 443", dp },
		{ "port 53", 0 },
		{ "src port 53 or dst port > 1023", sp | dp },
		{ "dst port 80 and port 443", 0 },
		{ "not src port in [ 22 80 443 ] and dst port 53", sp | dp },
		{ "host 10.0.0.1", 0 },
		{ "any", 0 },
	};

	(void)st;
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		struct filt *f = compile_ok(t[i].expr);
		if (filt_port_code_columns(f) != t[i].want)
			fail_msg("filt_port_code_columns('%s') = %#x, want %#x", t[i].expr,
				 filt_port_code_columns(f), t[i].want);
		filt_free(f);
	}
}

static void test_columns(void **st)
{
	struct filt *f;

	(void)st;
	f = compile_ok("proto tcp and dst port 443");
	assert_int_equal(filt_columns(f), STORE_COLBIT(STORE_COL_PROTO) | STORE_COLBIT(STORE_COL_DPORT));
	filt_free(f);
	f = compile_ok("host 10.0.0.1");
	assert_int_equal(filt_columns(f), STORE_COLBIT(STORE_COL_SRC) | STORE_COLBIT(STORE_COL_DST) |
			 STORE_COLBIT(STORE_COL_IPVER));
	filt_free(f);
	f = compile_ok("bps > 1k or router ip 10.0.0.1");
	assert_int_equal(filt_columns(f), STORE_COLBIT(STORE_COL_FIRST) | STORE_COLBIT(STORE_COL_LAST) |
			 STORE_COLBIT(STORE_COL_BYTES) | STORE_COLBIT(STORE_COL_EXPORTER));
	filt_free(f);
	f = compile_ok("port 80 or any");
	assert_int_equal(filt_columns(f), 0);
	filt_free(f);
	f = compile_ok("");
	assert_int_equal(filt_columns(f), 0);
	filt_free(f);
}

/* A block decoded without a column the filter reads: that column reads as zero. */
static void test_missing_column(void **st)
{
	struct flow_rec r[NREC];
	struct store_cols c;
	uint32_t sel[NREC], n;
	struct filt *f;

	(void)st;
	make_records(r);
	store_cols_init(&c);
	cols_fill(&c, r, NREC);
	c.mask &= ~STORE_COLBIT(STORE_COL_VLAN);
	f = compile_ok("vlan 0 and proto tcp");
	n = filt_eval(f, &c, sel);
	assert_int_equal(n, 3); /* A (vlan 100, not decoded), E, I */
	assert_int_equal(sel[0], RA);
	filt_free(f);
	store_cols_free(&c);
}

/* ---- errors ---- */

static const struct {
	const char *expr;
	size_t pos;
	const char *msg;
} errors[] = {
	{ "port 80 and nett 10/8", 12,
	  "unexpected 'nett' at position 12: expected a filter primitive (host, net, port, proto, ...)" },
	{ "port 65536", 5,
	  "number '65536' at position 5 out of range: expected a port number (0..65535)" },
	{ "port 80x", 5,
	  "bad number '80x' at position 5: expected a port number (0..65535)" },
	{ "packets > 1.5k", 10,
	  "bad number '1.5k' at position 10: expected a packet count (0..18446744073709551615)" },
	{ "bytes > 99999999999999999999", 8,
	  "number '99999999999999999999' at position 8 out of range: expected a byte count "
	  "(0..18446744073709551615)" },
	{ "tos 256", 4, "number '256' at position 4 out of range: expected a ToS value (0..255)" },
	{ "vlan 65536", 5, "number '65536' at position 5 out of range: expected a VLAN id (0..65535)" },
	{ "proto 256", 6,
	  "number '256' at position 6 out of range: expected a protocol name or number (0..255)" },
	{ "proto foo", 6,
	  "unknown protocol 'foo' at position 6: expected a protocol name (tcp, udp, icmp, icmp6, "
	  "gre, esp, ...) or number (0..255)" },
	{ "host 300.1.1.1", 5,
	  "bad address '300.1.1.1' at position 5: expected an IPv4 or IPv6 address" },
	{ "dst host gateway.example", 9,
	  "host name 'gateway.example' at position 9: names are not looked up here, give an "
	  "IPv4 or IPv6 address" },
	{ "host 10.1", 5,
	  "bad address '10.1' at position 5: expected an IPv4 or IPv6 address" },
	{ "host and port 80", 5, "bad address 'and' at position 5: expected an IPv4 or IPv6 address" },
	{ "net gateway.example/24", 4,
	  "bad address 'gateway.example' at position 4: expected an IPv4 or IPv6 address" },
	{ "src net 10.0.0.0/33", 17,
	  "bad prefix length '33' at position 17: an IPv4 prefix is 0..32 bits" },
	{ "net 2001:db8::/129", 15,
	  "bad prefix length '129' at position 15: an IPv6 prefix is 0..128 bits" },
	{ "net 10.0.0.0", 12,
	  "unexpected end of filter at position 12: expected '/' and a prefix length, or a netmask" },
	{ "net 2001:db8:: 255.0.0.0", 15,
	  "unexpected '255.0.0.0' at position 15: expected '/' and a prefix length" },
	{ "(port 80", 8,
	  "unexpected end of filter at position 8: expected 'and', 'or' or ')' to close '(' at "
	  "position 0" },
	{ "((port 80) and (proto tcp)", 26,
	  "unexpected end of filter at position 26: expected 'and', 'or' or ')' to close '(' at "
	  "position 0" },
	{ "port 80)", 7, "unexpected ')' at position 7: no '(' to close" },
	{ "()", 1,
	  "unexpected ')' at position 1: expected a filter primitive (host, net, port, proto, ...)" },
	{ "port 80 foo", 8, "unexpected 'foo' at position 8: expected 'and', 'or' or end of filter" },
	{ "port 80 and", 11,
	  "unexpected end of filter at position 11: expected a filter primitive (host, net, port, "
	  "proto, ...)" },
	{ "port 80 and or port 81", 12,
	  "unexpected 'or' at position 12: expected a filter primitive (host, net, port, proto, ...)" },
	{ "port", 4, "unexpected end of filter at position 4: expected a port number (0..65535)" },
	{ "port > ", 7, "unexpected end of filter at position 7: expected a port number (0..65535)" },
	{ "port in [ 80 443", 16,
	  "unexpected end of filter at position 16: expected a number or ']' to close '[' at "
	  "position 8" },
	{ "port in [ ]", 10, "unexpected ']' at position 10: expected a port number (0..65535)" },
	{ "flags SS", 6,
	  "bad TCP flags 'SS' at position 6: expected letters of UAPRSF (each once) or X for all" },
	{ "flags Z", 6,
	  "bad TCP flags 'Z' at position 6: expected letters of UAPRSF (each once) or X for all" },
	{ "flags 64", 6,
	  "number '64' at position 6 out of range: expected TCP flags as a number (0..63)" },
	{ "src proto tcp", 4,
	  "unexpected 'proto' at position 4: expected host, ip, net, port, as, mask, tos or vlan "
	  "after the direction" },
	{ "in port 80", 3,
	  "unexpected 'port' at position 3: expected 'if', 'packets' or 'bytes' after 'in'" },
	{ "src", 3,
	  "unexpected end of filter at position 3: expected host, ip, net, port, as, mask, tos or "
	  "vlan after the direction" },
	{ "dst tos 3", 0,
	  "'dst tos' at position 0 is not supported: tapflow records hold one ToS byte (use 'tos' "
	  "or 'src tos')" },
	{ "proto tcp and dst vlan 3", 14,
	  "'dst vlan' at position 14 is not supported: tapflow records hold one VLAN id (use "
	  "'vlan' or 'src vlan')" },
	{ "out bytes > 3", 0,
	  "'out bytes' at position 0 is not supported: tapflow records count one direction (use "
	  "'packets' or 'bytes')" },
	{ "mac 00:11:22:33:44:55", 0,
	  "'mac' at position 0 is an nfdump filter tapflow does not support: its flow records "
	  "have no such field" },
	{ "next as 3", 0,
	  "'next as' at position 0 is not supported: tapflow records carry no BGP adjacent AS" },
	{ "router 10.0.0.1", 7, "unexpected '10.0.0.1' at position 7: expected 'ip' after 'router'" },
	{ "port 80 @", 8, "unexpected '@' at position 8: expected 'and', 'or' or end of filter" },
	{ "vlan > 3", 5, "unexpected '>' at position 5: expected a VLAN id (0..65535)" },
};

static void test_errors(void **st)
{
	char err[512];
	size_t pos;

	(void)st;
	for (size_t t = 0; t < sizeof(errors) / sizeof(errors[0]); t++) {
		pos = 12345;
		struct filt *f = filt_compile(errors[t].expr, err, sizeof(err), &pos);
		if (f)
			fail_msg("'%s' compiled", errors[t].expr);
		if (strcmp(err, errors[t].msg) != 0 || pos != errors[t].pos)
			fail_msg("'%s':\n got  %zu %s\n want %zu %s", errors[t].expr, pos, err,
				 errors[t].pos, errors[t].msg);
	}
	/* a short buffer still gets a terminated prefix; NULL buffers are fine */
	assert_null(filt_compile("port 70000", err, 8, NULL));
	assert_int_equal(strlen(err), 7);
	assert_null(filt_compile("port 70000", NULL, 0, NULL));
}

/* A resolver for the tests: two names with fixed addresses, one that fails. */
static int fake_resolve(const char *name, uint8_t (*out)[16], int max, char *err,
			size_t errlen)
{
	assert_true(max >= 2);
	if (!strcmp(name, "gw.example")) {
		set_addr(out[0], "192.168.0.1");
		set_addr(out[1], "2001:db8::1");
		return 2;
	}
	if (!strcmp(name, "v6only.example")) {
		set_addr(out[0], "fe80::1");
		return 1;
	}
	snprintf(err, errlen, "no such host (test)");
	return -1;
}

/* A name stands for all its addresses, or'ed (as nfdump): each filter with names
 * matches exactly the records its spelled-out twin does, one by one and over a block. */
static void test_host_names(void **st)
{
	static const char *const pairs[][2] = {
		{ "host gw.example", "host 192.168.0.1 or host 2001:db8::1" },
		{ "src ip gw.example", "src ip 192.168.0.1 or src ip 2001:db8::1" },
		{ "dst host gw.example and proto icmp", "dst host 192.168.0.1 and proto icmp" },
		{ "not host gw.example", "not (host 192.168.0.1 or host 2001:db8::1)" },
		{ "ip v6only.example or port 53", "ip fe80::1 or port 53" },
		{ "src host in [gw.example, 10.1.2.3]",
		  "src host in [192.168.0.1, 2001:db8::1, 10.1.2.3]" },
	};
	struct flow_rec r[NREC];
	struct store_cols all;
	uint32_t sel_a[NREC], sel_b[NREC];
	char err[256];
	size_t pos;

	(void)st;
	make_records(r);
	store_cols_init(&all);
	cols_fill(&all, r, NREC);
	for (size_t i = 0; i < sizeof(pairs) / sizeof(pairs[0]); i++) {
		struct filt *a = filt_compile_names(pairs[i][0], fake_resolve, err, sizeof(err), &pos);
		struct filt *b = compile_ok(pairs[i][1]);
		if (!a)
			fail_msg("'%s' did not compile: %s", pairs[i][0], err);
		int some = 0;
		for (int k = 0; k < NREC; k++) {
			if (filt_match(a, &r[k]) != filt_match(b, &r[k]))
				fail_msg("'%s' and '%s' differ on record %c", pairs[i][0],
					 pairs[i][1], 'A' + k);
			some += filt_match(a, &r[k]);
		}
		assert_true(some > 0 && some < NREC);
		uint32_t na = filt_eval(a, &all, sel_a), nb = filt_eval(b, &all, sel_b);
		assert_int_equal(na, nb);
		assert_memory_equal(sel_a, sel_b, na * sizeof(*sel_a));
		filt_free(a);
		filt_free(b);
	}
	assert_null(filt_compile_names("port 80 and host nosuch.example", fake_resolve, err,
				       sizeof(err), &pos));
	assert_string_equal(err, "host name 'nosuch.example' at position 17: no such host (test)");
	assert_int_equal(pos, 17);
	/* as nfdump: names for hosts only, not for the next hop or the exporter */
	assert_null(filt_compile_names("router ip gw.example", fake_resolve, err, sizeof(err),
				       &pos));
	assert_string_equal(err, "bad address 'gw.example' at position 10: expected an IPv4 or "
			    "IPv6 address");

	/* for a server that refuses names (--remote): the names spelled out as addresses,
	 * a filter that compiles without a resolver and means the same */
	static const char *const expand[][2] = {
		{ "host gw.example and port 80", "host in [192.168.0.1, 2001:db8::1] and port 80" },
		{ "src host in [gw.example, 10.1.2.3] or ip v6only.example",
		  "src host in [192.168.0.1, 2001:db8::1, 10.1.2.3] or ip in [fe80::1]" },
		{ "proto tcp", "proto tcp" },
	};
	for (size_t i = 0; i < sizeof(expand) / sizeof(expand[0]); i++) {
		char *x = filt_expand_names(expand[i][0], fake_resolve, err, sizeof(err), &pos);
		assert_non_null(x);
		assert_string_equal(x, expand[i][1]);
		struct filt *a = filt_compile_names(expand[i][0], fake_resolve, err, sizeof(err),
						    &pos);
		struct filt *b = compile_ok(x);
		for (int k = 0; k < NREC; k++)
			assert_int_equal(filt_match(a, &r[k]), filt_match(b, &r[k]));
		filt_free(a);
		filt_free(b);
		free(x);
	}
	assert_null(filt_expand_names("host nosuch.example", fake_resolve, err, sizeof(err), &pos));
	assert_int_equal(pos, 5);

	/* the system's resolver: localhost from /etc/hosts, no network needed */
	struct flow_rec lo;
	memset(&lo, 0, sizeof(lo));
	set_addr(lo.src, "127.0.0.1");
	set_addr(lo.dst, "10.0.0.1");
	lo.ipver = 4;
	struct filt *f = filt_compile_names("host localhost", filt_resolve_system, err,
					    sizeof(err), &pos);
	if (!f)
		fail_msg("'host localhost': %s", err);
	assert_int_equal(filt_match(f, &lo), 1);
	assert_int_equal(filt_match(f, &r[RA]), 0);
	filt_free(f);
	store_cols_free(&all);
}

static void test_nesting_limit(void **st)
{
	char buf[400], err[256];
	size_t pos;
	struct filt *f;
	int k = 0;

	(void)st;
	for (int i = 0; i < 64; i++)
		buf[k++] = '(';
	k += sprintf(buf + k, "any");
	for (int i = 0; i < 64; i++)
		buf[k++] = ')';
	buf[k] = 0;
	f = compile_ok(buf);
	filt_free(f);
	memmove(buf + 1, buf, strlen(buf) + 1);
	buf[0] = '(';
	strcat(buf, ")");
	assert_null(filt_compile(buf, err, sizeof(err), &pos));
	assert_int_equal(pos, 64);
	assert_string_equal(err, "filter nested too deeply at position 64: at most 64 levels of "
			    "parentheses and 'not'");
	k = 0;
	for (int i = 0; i < 80; i++)
		k += sprintf(buf + k, "not ");
	sprintf(buf + k, "any");
	assert_null(filt_compile(buf, err, sizeof(err), &pos));
	assert_int_equal(pos, 256);
}

/* ---- random records and filters ---- */

static uint64_t rng_state;

static uint32_t rnd(uint32_t n)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return (uint32_t)((rng_state >> 11) % n);
}

static const char *const v4s[] = { "10.0.0.1", "10.0.0.2", "192.168.1.1", "192.168.1.200",
				   "172.16.5.5" };
static const char *const v6s[] = { "2001:db8::1", "2001:db8::2", "2001:db8:1::1", "fe80::1" };
static const uint16_t ports[] = { 0, 22, 53, 80, 443, 1024, 8080, 65535 };
static const uint8_t protos[] = { 1, 6, 17, 58, 47 };
static const uint64_t counts[] = { 0, 1, 2, 10, 999, 1000, 1001, 5000, 1000000 };

static void rand_record(struct flow_rec *r)
{
	int v6 = rnd(3) == 0;

	memset(r, 0, sizeof(*r));
	set_addr(r->src, v6 ? v6s[rnd(4)] : v4s[rnd(5)]);
	set_addr(r->dst, v6 ? v6s[rnd(4)] : v4s[rnd(5)]);
	set_addr(r->nexthop, rnd(2) ? v4s[rnd(5)] : v6s[rnd(4)]);
	set_addr(r->exporter, v4s[rnd(5)]);
	r->ipver = v6 ? 6 : (rnd(20) ? 4 : 6); /* sometimes v4-mapped under IPv6 */
	r->sport = ports[rnd(8)];
	r->dport = rnd(4) ? ports[rnd(8)] : (uint16_t)rnd(65536);
	r->proto = protos[rnd(5)];
	r->tos = (uint8_t)rnd(4) * 8;
	r->tcp_flags = (uint8_t)rnd(64);
	r->packets = counts[rnd(9)];
	r->bytes = counts[rnd(9)] * (1 + rnd(3));
	r->first_ms = 1700000000000ULL + rnd(100000);
	r->last_ms = r->first_ms + counts[rnd(9)];
	r->in_if = rnd(4);
	r->out_if = rnd(4);
	r->src_as = rnd(3) ? 0 : 64500 + rnd(3);
	r->dst_as = rnd(3) ? 0 : 64500 + rnd(3);
	r->vlan = (uint16_t)(rnd(2) ? 0 : 100 + rnd(3));
	r->src_mask = (uint8_t)(rnd(2) ? 24 : 16);
	r->dst_mask = (uint8_t)(rnd(2) ? 24 : 64);
	r->domain_id = rnd(3);
}

static const char *const dqs[] = { "", "src ", "dst ", "src or dst ", "src and dst " };
static const char *const cmps[] = { "", "= ", "== ", "< ", "> ", "<= ", ">= ", "eq ", "lt ",
				    "gt ", "le ", "ge " };

static int rand_prim(char *b)
{
	switch (rnd(24)) {
	case 0: return sprintf(b, "%shost %s", dqs[rnd(5)], rnd(2) ? v4s[rnd(5)] : v6s[rnd(4)]);
	case 1: return sprintf(b, "%snet %s/%u", dqs[rnd(5)], v4s[rnd(5)], rnd(33));
	case 2: return sprintf(b, "%snet %s/%u", dqs[rnd(5)], v6s[rnd(4)], rnd(129));
	case 3: return sprintf(b, "%snet %s 255.255.%u.0", dqs[rnd(5)], v4s[rnd(5)], rnd(2) ? 255 : 0);
	case 4: return sprintf(b, "%sport %s%u", dqs[rnd(5)], cmps[rnd(12)], ports[rnd(8)]);
	case 5: return sprintf(b, "%sport in [ %u %u, %u ]", dqs[rnd(5)], ports[rnd(8)],
			       ports[rnd(8)], rnd(65536));
	case 6: return sprintf(b, "proto %u", protos[rnd(5)]);
	case 7: return sprintf(b, "%s", rnd(2) ? "ipv4" : "ipv6");
	case 8: return sprintf(b, "tos %s%u", cmps[rnd(12)], rnd(4) * 8);
	case 9: {
		static const char *const fl[] = { "S", "A", "AS", "F", "R", "SAF", "X", "PU" };
		return sprintf(b, "flags %s", fl[rnd(8)]);
	}
	case 10: return sprintf(b, "flags %s%u", cmps[rnd(12)], rnd(64));
	case 11: {
		static const char *const io[] = { "", "in ", "out " };
		return sprintf(b, "%sif %u", io[rnd(3)], rnd(4));
	}
	case 12: return sprintf(b, "%sas %s%u", dqs[rnd(5)], cmps[rnd(12)], 64499 + rnd(4));
	case 13: return sprintf(b, "vlan %u", rnd(2) ? 0 : 100 + rnd(3));
	case 14: return sprintf(b, "%smask %u", dqs[rnd(5)], rnd(2) ? 24 : 16);
	case 15: {
		static const char *const what[] = { "packets", "bytes", "duration", "pps", "bps", "bpp" };
		static const char *const num[] = { "0", "1", "10", "1k", "999", "1001", "5k", "1m" };
		return sprintf(b, "%s %s%s", what[rnd(6)], cmps[rnd(12)], num[rnd(8)]);
	}
	case 16: return sprintf(b, "icmp-type %u", rnd(3) ? rnd(256) : 8);
	case 17: return sprintf(b, "next ip %s", rnd(2) ? v4s[rnd(5)] : v6s[rnd(4)]);
	case 18: return sprintf(b, "router ip %s", v4s[rnd(5)]);
	case 19: return sprintf(b, "%shost in [ %s %s/%u ]", dqs[rnd(5)], v4s[rnd(5)],
				v6s[rnd(4)], rnd(129));
	case 20: return sprintf(b, "%sas in [ %u %u ]", dqs[rnd(5)], 64500 + rnd(3), rnd(3));
	case 21: return sprintf(b, "observation domain id %u", rnd(3));
	case 22: return sprintf(b, "%s", rnd(4) ? "any" : "flows > 1");
	default: return sprintf(b, "port not %u", ports[rnd(8)]);
	}
}

static int rand_expr(char *b, int depth)
{
	int k;

	if (depth <= 0)
		return rand_prim(b);
	switch (rnd(6)) {
	case 0:
		k = sprintf(b, rnd(2) ? "not " : "!");
		return k + rand_expr(b + k, depth - 1);
	case 1:
		k = sprintf(b, "(");
		k += rand_expr(b + k, depth - 1);
		return k + sprintf(b + k, ")");
	case 2:
	case 3:
		k = rand_expr(b, depth - 1);
		k += sprintf(b + k, rnd(2) ? " and " : " && ");
		return k + rand_expr(b + k, depth - 1);
	case 4:
		k = rand_expr(b, depth - 1);
		k += sprintf(b + k, rnd(2) ? " or " : " || ");
		return k + rand_expr(b + k, depth - 1);
	default:
		return rand_prim(b);
	}
}

/* Column program and record matcher agree on random filters over random blocks; the
 * selection is sorted and unique. Also dense (whole block) against sparse paths, since
 * every AND and OR hands a thinned selection to its later children. */
static void test_agreement(void **st)
{
	enum { MAXN = 20000 };
	struct flow_rec *r = malloc(MAXN * sizeof(*r));
	uint32_t *sel = malloc(MAXN * sizeof(*sel));
	struct store_cols c;
	char expr[4096];
	uint64_t checked = 0, matched = 0;

	(void)st;
	assert_non_null(r);
	assert_non_null(sel);
	rng_state = 0x9e3779b97f4a7c15ULL;
	store_cols_init(&c);
	for (int round = 0; round < 150; round++) {
		uint32_t n = round % 10 == 0 ? MAXN - rnd(100) : 1 + rnd(1500);
		for (uint32_t i = 0; i < n; i++)
			rand_record(&r[i]);
		cols_fill(&c, r, n);
		for (int q = 0; q < 40; q++) {
			rand_expr(expr, 1 + rnd(5));
			struct filt *f = compile_ok(expr);
			uint32_t k = filt_eval(f, &c, sel), j = 0;
			for (uint32_t i = 0; i < n; i++) {
				int m = filt_match(f, &r[i]);
				if (m && (j >= k || sel[j] != i))
					fail_msg("'%s': record %u matches but is not selected", expr, i);
				j += m;
			}
			if (j != k)
				fail_msg("'%s': %u selected, %u match", expr, k, j);
			checked += n;
			matched += k;
			filt_free(f);
		}
	}
	/* the generator must exercise both outcomes */
	assert_true(matched > checked / 20 && matched < checked - checked / 20);
	store_cols_free(&c);
	free(r);
	free(sel);
}

/* A block is skipped only if none of its records matches; blocks drawn from narrow
 * value pools so that the zone map has something to say. */
static void test_zone_never_skips_a_match(void **st)
{
	enum { N = 64 };
	struct flow_rec r[N];
	struct store_zone z;
	char expr[4096];
	unsigned skipped = 0, blocks = 0;

	(void)st;
	rng_state = 0x243f6a8885a308d3ULL;
	for (int b = 0; b < 3000; b++) {
		uint32_t n = 1 + rnd(N);
		uint8_t proto = protos[rnd(5)];
		uint16_t sp = ports[rnd(8)], dp = ports[rnd(8)];
		int v6 = rnd(3);
		for (uint32_t i = 0; i < n; i++) {
			rand_record(&r[i]);
			if (rnd(4)) {
				r[i].proto = proto;
				r[i].sport = sp;
				r[i].dport = (uint16_t)(dp + rnd(3));
			}
			if (v6 < 2)
				r[i].ipver = v6 ? 6 : 4;
			if (b % 2) {
				r[i].packets = rnd(5);
				r[i].bytes = rnd(2000);
			}
		}
		zone_of(&z, r, n);
		for (int q = 0; q < 10; q++) {
			rand_expr(expr, rnd(4));
			struct filt *f = compile_ok(expr);
			int any = 0;
			for (uint32_t i = 0; i < n && !any; i++)
				any = filt_match(f, &r[i]);
			int may = filt_zone_may_match(f, &z);
			if (any && !may)
				fail_msg("'%s' skips a block with a match", expr);
			blocks++;
			skipped += !may;
			filt_free(f);
		}
	}
	assert_true(skipped > blocks / 20); /* it does skip */
}

static void test_zone_skips(void **st)
{
	struct flow_rec r[4];
	struct store_zone z, empty;
	struct filt *f;
	static const struct {
		const char *expr;
		int may;
	} t[] = {
		{ "proto udp", 1 },
		{ "proto tcp", 0 },
		{ "not proto udp", 0 },         /* every record is UDP */
		{ "not proto tcp", 1 },
		{ "flags S", 0 },               /* implies TCP */
		{ "port 53", 1 },
		{ "port 50", 0 },
		{ "port 80", 1 },               /* inside the dport range: cannot tell */
		{ "dst port > 2000", 0 },
		{ "dst port > 1999", 1 },
		{ "not dst port 53", 1 },
		{ "not port > 999", 0 },        /* every source port is */
		{ "not src port < 2000", 0 },
		{ "src port 1000 and dst port 53", 1 },
		{ "src and dst port 53", 0 },
		{ "port in [ 50 2500 ]", 0 },
		{ "port in [ 80 1500 ]", 1 },
		{ "ipv6", 0 },
		{ "ipv4", 1 },
		{ "host 2001:db8::1", 0 },
		{ "host 10.0.0.1", 1 },
		{ "host in [ 2001:db8::1 ]", 0 },
		{ "packets > 40", 0 },          /* 4 records, 40 packets in all */
		{ "packets > 39", 1 },
		{ "bytes >= 4001", 0 },
		{ "bpp > 4000", 0 },
		{ "packets > 40 or proto udp", 1 },
		{ "packets > 40 or proto tcp", 0 },
		{ "not (proto udp and port 53)", 1 },
		{ "any", 1 },
		{ "not any", 0 },
	};

	(void)st;
	memset(r, 0, sizeof(r));
	for (int i = 0; i < 4; i++) {
		set_addr(r[i].src, "10.0.0.1");
		set_addr(r[i].dst, "10.0.0.2");
		r[i].ipver = 4;
		r[i].proto = 17;
		r[i].sport = (uint16_t)(1000 + 300 * i);
		r[i].dport = i == 3 ? 2000 : 53;
		r[i].packets = 10;
		r[i].bytes = 1000;
		r[i].first_ms = r[i].last_ms = 1000 + i;
	}
	zone_of(&z, r, 4);
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		f = compile_ok(t[i].expr);
		if (filt_zone_may_match(f, &z) != t[i].may)
			fail_msg("zone('%s') = %d, want %d", t[i].expr, !t[i].may, t[i].may);
		filt_free(f);
	}
	zone_of(&empty, r, 0);
	f = compile_ok("any");
	assert_int_equal(filt_zone_may_match(f, &empty), 0);
	filt_free(f);
	/* a bogus 2^64-1 counter saturates the sum: the block still qualifies */
	r[0].packets = UINT64_MAX;
	zone_of(&z, r, 4);
	f = compile_ok("packets > 1000");
	assert_int_equal(filt_zone_may_match(f, &z), 1);
	filt_free(f);
}

/* A long OR list and deep nesting compile and evaluate without deep recursion issues. */
static void test_long_filters(void **st)
{
	size_t cap = 400000, k = 0;
	char *buf = malloc(cap);
	struct flow_rec r[NREC];
	struct store_cols c;
	uint32_t sel[NREC];
	struct filt *f;

	(void)st;
	assert_non_null(buf);
	for (int i = 0; i < 20000; i++)
		k += (size_t)sprintf(buf + k, "%sport %d", i ? " or " : "", 20000 + i);
	sprintf(buf + k, " or port 443");
	make_records(r);
	store_cols_init(&c);
	cols_fill(&c, r, NREC);
	f = compile_ok(buf);
	assert_int_equal(filt_eval(f, &c, sel), 1);
	assert_int_equal(sel[0], RA);
	assert_int_equal(filt_match(f, &r[RA]), 1);
	filt_free(f);
	store_cols_free(&c);
	free(buf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_table),
		cmocka_unit_test(test_tuple_packed),
		cmocka_unit_test(test_tuple_columns),
		cmocka_unit_test(test_port_code_columns),
		cmocka_unit_test(test_port_code_ranges),
		cmocka_unit_test(test_columns),
		cmocka_unit_test(test_missing_column),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_host_names),
		cmocka_unit_test(test_nesting_limit),
		cmocka_unit_test(test_agreement),
		cmocka_unit_test(test_zone_never_skips_a_match),
		cmocka_unit_test(test_zone_skips),
		cmocka_unit_test(test_long_filters),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
