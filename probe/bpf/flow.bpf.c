/* flow.bpf.c: flows counted in the kernel. A TC (clsact ingress or egress) or XDP
 * program parses each frame as probe/pkt.c does (same struct pkt_key, same results,
 * same edge cases: see pkt.h) and adds it to its CPU's slot of its flow; user space
 * (cap_ebpf.c) reads the map about once a second, applies the flow table's expiry rules
 * and exports. Everything that does not reach a flow entry is counted (flow.h).
 *
 * No kernel structs are read (only the stable __sk_buff / xdp_md context and helpers),
 * so the object needs no BTF of the running kernel: built once, it loads on any kernel
 * from 5.10 on, a Raspberry Pi's included (rpi/EBPF.md). Every function is inlined and
 * packet bytes are read one at a time: no BPF-to-BPF calls and no unaligned loads, for
 * 32-bit ARM JITs and strict-alignment kernels.
 */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>

#include "flow.h"

#define ETH_HLEN 14
#define ET_IPV4 0x0800
#define ET_IPV6 0x86dd
#define ET_8021Q 0x8100
#define ET_8021AD 0x88a8
#define ET_QINQ_OLD 0x9100

#define IP4_MF 0x2000
#define IP4_OFFMASK 0x1fff

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

#define TF_AF_INET 2
#define TF_AF_INET6 10
#define TF_E2BIG 7
#define TF_ENOMEM 12
#define TF_EEXIST 17
#define TF_EBUSY 16

/* bpf_skb_pull_data takes at most this much when headers lie beyond the linear part. */
#define TF_PULL_MAX 512

/* BPF_FIB_LOOKUP_* return codes that still name the output interface. */
#define TF_FIB_FRAG_NEEDED 8

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Read-only configuration, set by the loader before load. */
const volatile uint32_t tf_cfg_sample = 1;  /* 1-in-N packet sampling */
const volatile uint32_t tf_cfg_router = 0;  /* fib lookups; egress counts local packets only */
const volatile uint32_t tf_cfg_ncpu = 1;    /* slots in a flow value: the possible CPUs */
const volatile uint32_t tf_cfg_coarse = 0;  /* the kernel has bpf_ktime_get_coarse_ns (5.11) */

/* Scan generation, written by user space after each scan (struct tf_flow_val). */
uint32_t tf_gen = 0;

/* A flow's value holds one struct tf_flow_val per possible CPU, side by side (the
 * loader sets the value size); each CPU writes only its own slot. One element holds
 * key and counters: a packet touches the bucket and the element, where a per-CPU hash
 * keeps the values in per-CPU memory apart from the element (one more cache and TLB
 * miss per packet, and one per CPU for every flow a scan reads). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);  /* the loader sets --bpf-map-size */
	__type(key, struct pkt_key);
	__type(value, struct tf_flow_val);
} tf_flows SEC(".maps");

/* Per CPU, a zeroed value for new flows: this CPU fills its slot, inserts the value and
 * zeroes the slot again. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, uint32_t);
	__type(value, struct tf_flow_val);
} tf_newval SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, uint32_t);
	__type(value, struct tf_percpu);
} tf_counters SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, TF_FRAG_ENTRIES);
	__type(key, struct tf_frag_key);
	__type(value, struct tf_frag_val);
} tf_frags SEC(".maps");

_Static_assert(sizeof(struct pkt_key) == 48, "the map key is struct pkt_key as pkt.c builds it");
_Static_assert(sizeof(struct tf_flow_val) == 88, "flow value layout shared with user space");

/* x, through memory the verifier does not track, masked to mask: the verifier then
 * knows only the range. Packet offsets that differ per path (0-4 VLAN tags, each IPv6
 * extension header) would otherwise keep every path's state apart, and the number of
 * paths to verify would multiply past the verifier's limit. */
static __always_inline const uint8_t *tf_opaque(struct tf_percpu *pc, const uint8_t *data,
						const uint8_t *p, uint32_t mask)
{
	*(volatile uint64_t *)&pc->scratch = (uint64_t)(p - data);
	p = data + ((uint32_t)*(volatile uint64_t *)&pc->scratch & mask);
	/* Keep the compiler from folding later offsets into the scalar: bounds checks must
	 * be made on this very pointer for the verifier to apply them. */
	asm volatile("" : "+r"(p));
	return p;
}

static __always_inline uint16_t ld16(const uint8_t *p)
{
	return (uint16_t)((uint16_t)p[0] << 8 | p[1]);
}

static __always_inline uint32_t ld32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* True if n bytes at p are not all before lim (the IP end, padding cut off) or end
 * (the packet end, the bound the verifier knows). lim <= end always; the second test
 * is for the verifier. */
static __always_inline int tf_short(const uint8_t *p, uint32_t n, const uint8_t *lim,
				    const uint8_t *end)
{
	return p + n > lim || p + n > end;
}

/* Ports (or ICMP type/code) and TCP flags at l, as pkt.c's pkt_l4. */
static __always_inline int tf_l4(const uint8_t *l, const uint8_t *lim, const uint8_t *end,
				 struct pkt_info *o)
{
	uint8_t proto = o->key.proto;

	if (proto == PROTO_TCP) {
		if (tf_short(l, 4, lim, end))
			return PKT_TRUNC_L4;
		o->key.sport = ld16(l);
		o->key.dport = ld16(l + 2);
		if (!tf_short(l, 14, lim, end)) {
			if (l[12] >> 4 < 5)
				return PKT_BAD_L4;
			o->tcp_flags = l[13];
		} else if (!tf_short(l, 13, lim, end) && l[12] >> 4 < 5) {
			return PKT_BAD_L4;
		}
		return PKT_OK;
	}
	if (proto == PROTO_UDP || proto == PROTO_SCTP || proto == PROTO_UDPLITE) {
		if (tf_short(l, 4, lim, end))
			return PKT_TRUNC_L4;
		o->key.sport = ld16(l);
		o->key.dport = ld16(l + 2);
		return PKT_OK;
	}
	if (proto == PROTO_ICMP || proto == PROTO_ICMPV6) {
		if (tf_short(l, 2, lim, end))
			return PKT_TRUNC_L4;
		o->key.dport = ld16(l);
		return PKT_OK;
	}
	return PKT_OK;
}

/* IPv4 header at h; caplen is the packet's length from h on (TSO/GSO: total length 0). */
static __always_inline int tf_ip4(const uint8_t *h, const uint8_t *end, uint32_t caplen,
				  struct pkt_info *o)
{
	const uint8_t *lim = end;
	uint32_t hl = 20, tot;

	if (h + 20 > end)
		return PKT_TRUNC_IP;
	tot = ld16(h + 2);
	if (h[0] != 0x45) {
		if (h[0] >> 4 != 4)
			return PKT_BAD_IP_VERSION;
		hl = (uint32_t)(h[0] & 0x0f) * 4;
		if (hl < 20)
			return PKT_BAD_IP_HDRLEN;
		if (tot && tot < hl)
			return PKT_BAD_IP_LEN;
		if (h + hl > end)
			return PKT_TRUNC_IP;
	} else if (tot && tot < 20) {
		return PKT_BAD_IP_LEN;
	}
	if (tot == 0)
		tot = caplen;
	else if (h + tot < end)
		lim = h + tot;  /* drop link padding */

	o->ip_len = tot;
	o->key.ipver = 4;
	o->key.tos = h[1];
	o->key.proto = h[9];
	o->key.src[10] = 0xff;
	o->key.src[11] = 0xff;
	o->key.dst[10] = 0xff;
	o->key.dst[11] = 0xff;
	for (int i = 0; i < 4; i++) {
		o->key.src[12 + i] = h[12 + i];
		o->key.dst[12 + i] = h[16 + i];
	}

	uint16_t ff = ld16(h + 6);
	if (ff & IP4_OFFMASK) {
		o->frag = PKT_FRAG_LATER;
		o->frag_id = ld16(h + 4);
		return PKT_OK;
	}
	if (ff & IP4_MF) {
		o->frag = PKT_FRAG_FIRST;
		o->frag_id = ld16(h + 4);
	}
	return tf_l4(h + hl, lim, end, o);
}

/* IPv6 header at h and its extension headers (a bounded loop, as pkt.c's). */
static __always_inline int tf_ip6(struct tf_percpu *pc, const uint8_t *data,
				  const uint8_t *h, const uint8_t *end, uint32_t caplen,
				  struct pkt_info *o)
{
	const uint8_t *lim = end, *p;
	uint32_t plen;
	uint8_t nh;

	if (h + 40 > end)
		return PKT_TRUNC_IP;
	if (h[0] >> 4 != 6)
		return PKT_BAD_IP_VERSION;
	plen = ld16(h + 4);
	if (plen == 0) {
		o->ip_len = caplen;
	} else {
		o->ip_len = plen + 40;
		if (h + 40 + plen < end)
			lim = h + 40 + plen;  /* drop link padding */
	}
	o->key.ipver = 6;
	o->key.tos = (uint8_t)(ld16(h) >> 4);
	for (int i = 0; i < 16; i++) {
		o->key.src[i] = h[8 + i];
		o->key.dst[i] = h[24 + i];
	}

	nh = h[6];
	p = h + 40;
	for (int n = 0; n <= PKT_MAX_EXTHDR; n++) {
		uint32_t len;

		/* At most 30 + 40 + 8 * 2048 bytes in: below the mask, below 64 KiB. */
		p = tf_opaque(pc, data, p, 0x7fff);

		if (nh == PROTO_HOPOPTS || nh == PROTO_ROUTING || nh == PROTO_DSTOPTS ||
		    nh == PROTO_AH) {
			if (n == PKT_MAX_EXTHDR)
				return PKT_TOO_MANY_EXTHDR;
			if (tf_short(p, 2, lim, end))
				return PKT_TRUNC_EXTHDR;
			/* AH counts 4-byte units minus 2, the others 8-byte units minus 1. */
			len = nh == PROTO_AH ? ((uint32_t)p[1] + 2) * 4 : ((uint32_t)p[1] + 1) * 8;
			if (tf_short(p, len, lim, end))
				return PKT_TRUNC_EXTHDR;
			nh = p[0];
			p += len;
		} else if (nh == PROTO_FRAGMENT) {
			if (n == PKT_MAX_EXTHDR)
				return PKT_TOO_MANY_EXTHDR;
			if (tf_short(p, 8, lim, end))
				return PKT_TRUNC_EXTHDR;
			nh = p[0];
			if (ld16(p + 2) >> 3) {
				o->key.proto = nh;
				o->frag = PKT_FRAG_LATER;
				o->frag_id = ld32(p + 4);
				return PKT_OK;
			}
			/* Offset 0 without M is an atomic fragment (RFC 6946): whole packet. */
			if (p[3] & 1) {
				o->frag = PKT_FRAG_FIRST;
				o->frag_id = ld32(p + 4);
			}
			p += 8;
		} else {
			o->key.proto = nh;
			return tf_l4(p, lim, end, o);
		}
	}
	return PKT_TOO_MANY_EXTHDR;
}

/* An Ethernet frame at data (len bytes in all, maybe more than end - data on TC), its
 * VLAN tags followed; fills *o (zeroed by the caller) and returns the pkt_result. */
static __always_inline int tf_parse(struct tf_percpu *pc, const uint8_t *data,
				    const uint8_t *end, uint32_t len, struct pkt_info *o)
{
	const uint8_t *p = data + ETH_HLEN;
	uint16_t et;

	if (p > end)
		return PKT_TRUNC_L2;
	et = ld16(data + 12);
	for (int n = 0; n < PKT_MAX_TAGS; n++) {
		if (et != ET_8021Q && et != ET_8021AD && et != ET_QINQ_OLD)
			break;
		if (p + 4 > end)
			return PKT_TRUNC_L2;
		if (n == 0)
			o->key.vlan = ld16(p) & 0x0fff;
		et = ld16(p + 2);
		p += 4;
	}
	p = tf_opaque(pc, data, p, 0x3f);  /* 14 + 4 * PKT_MAX_TAGS */
	int ver;
	if (et == ET_IPV4) {
		ver = 4;
	} else if (et == ET_IPV6) {
		ver = 6;
	} else if (et == ET_8021Q || et == ET_8021AD || et == ET_QINQ_OLD) {
		return PKT_TOO_MANY_TAGS;
	} else if (et == PKT_ET_MPLS_UC || et == PKT_ET_MPLS_MC) {
		int bos = 0;
		for (int n = 0; n < PKT_MAX_LABELS; n++) {
			if (p + 4 > end)
				return PKT_TRUNC_L2;
			bos = p[2] & 1;
			p += 4;
			if (bos)
				break;
		}
		if (!bos)
			return PKT_TOO_MANY_TAGS;
		p = tf_opaque(pc, data, p, 0x7f);  /* + 4 * PKT_MAX_LABELS */
		if (p + 1 > end)
			return PKT_TRUNC_IP;
		ver = p[0] >> 4;
		if (ver != 4 && ver != 6)
			return PKT_NOT_IP;
	} else if (et == PKT_ET_PPPOE_S) {
		if (p + PKT_PPPOE_HLEN > end)
			return PKT_TRUNC_L2;
		uint16_t proto = ld16(p + 6);
		if (proto == PKT_PPP_IPV4)
			ver = 4;
		else if (proto == PKT_PPP_IPV6)
			ver = 6;
		else
			return PKT_NOT_IP;
		p = tf_opaque(pc, data, p + PKT_PPPOE_HLEN, 0x7f);
	} else {
		return PKT_NOT_IP;
	}
	/* one call site each: the IP parsers are inlined */
	if (ver == 4)
		return tf_ip4(p, end, len - (uint32_t)(p - data), o);
	return tf_ip6(pc, data, p, end, len - (uint32_t)(p - data), o);
}

static __always_inline int tf_truncated(int r)
{
	return r == PKT_TRUNC_L2 || r == PKT_TRUNC_IP || r == PKT_TRUNC_EXTHDR ||
	       r == PKT_TRUNC_L4;
}

/* Router mode: the output interface and gateway of the flow's route, as the kernel's
 * own forwarding would choose (policy rules included). egress: the packet is sent by
 * this host on ifindex (lookup as output); else it was received on ifindex. */
static __always_inline void tf_route(void *ctx, struct tf_percpu *pc, const struct pkt_key *k,
				     uint32_t ifindex, int egress, struct tf_flow_val *v)
{
	struct bpf_fib_lookup fib;
	const uint8_t *gw = (const uint8_t *)fib.ipv6_dst;  /* ipv4_dst shares its start */
	int at = k->ipver == 4 ? 12 : 0;  /* where the address starts in the key's 16 bytes */
	int rc, differs = 0;

	__builtin_memset(&fib, 0, sizeof(fib));
	fib.l4_protocol = k->proto;
	fib.sport = __builtin_bswap16(k->sport);
	fib.dport = __builtin_bswap16(k->dport);
	fib.ifindex = ifindex;
	if (k->ipver == 4) {
		fib.family = TF_AF_INET;
		fib.tos = k->tos;
		__builtin_memcpy(&fib.ipv4_src, k->src + 12, 4);
		__builtin_memcpy(&fib.ipv4_dst, k->dst + 12, 4);
	} else {
		fib.family = TF_AF_INET6;
		__builtin_memcpy(fib.ipv6_src, k->src, 16);
		__builtin_memcpy(fib.ipv6_dst, k->dst, 16);
	}
	/* tot_len 0: no MTU verdict wanted, only the route. */
	rc = bpf_fib_lookup(ctx, &fib, sizeof(fib), egress ? BPF_FIB_LOOKUP_OUTPUT : 0);
	if (rc == BPF_FIB_LKUP_RET_SUCCESS || rc == BPF_FIB_LKUP_RET_NO_NEIGH ||
	    rc == TF_FIB_FRAG_NEEDED) {
		pc->c[TF_C_FIB_OK]++;
		v->out_if = fib.ifindex;
		/* The lookup overwrites the destination with the gateway, if the route has
		 * one; a connected route leaves it, and the next hop is then 0 (as Cisco). */
		for (int i = at; i < 16; i++)
			if (gw[i - at] != k->dst[i])
				differs = 1;
		if (differs) {
			if (at) {
				v->nexthop[10] = 0xff;
				v->nexthop[11] = 0xff;
			}
			for (int i = at; i < 16; i++)
				v->nexthop[i] = gw[i - at];
		}
	} else if (rc == BPF_FIB_LKUP_RET_NOT_FWDED || rc == BPF_FIB_LKUP_RET_FWD_DISABLED) {
		pc->c[TF_C_FIB_NOT_FWD]++;
	} else {
		pc->c[TF_C_FIB_FAIL]++;
	}
	if (egress)
		v->out_if = ifindex;  /* it leaves here, whatever the table says */
}

/* The time of a packet. Reading the clock was a sixth of the program's cost on a
 * guest's TSC: most packets take the tick's time (CLOCK_MONOTONIC, at most a tick
 * behind). Where a flow or its generation starts, tf_add reads the exact time. */
static __always_inline uint64_t tf_now(void)
{
	/* On a kernel without it the verifier never reaches the call (a constant). */
	return tf_cfg_coarse ? bpf_ktime_get_coarse_ns() : bpf_ktime_get_ns();
}

/* One more packet in this CPU's copy of a flow, at now (tf_now). */
static __always_inline void tf_add(struct tf_flow_val *v, uint32_t len, uint8_t flags,
				   uint64_t now, uint32_t gen)
{
	/* A new copy, or the first packet since a scan's bump: both read the exact time. */
	if (v->packets == 0 || v->gen != gen) {
		if (tf_cfg_coarse)
			now = bpf_ktime_get_ns();
		if (v->packets == 0)
			v->first_ns = now;
		v->gen = gen;
		v->gen_first_ns = now;
		v->gen_flags = 0;
		v->gen_packets = 0;
		v->gen_bytes = 0;
		v->pre_last_ns = v->last_ns;
		v->pre_flags = v->tcp_flags;
	}
	v->packets++;
	v->bytes += len;
	/* never before the exact start: the tick's time may lag it */
	v->last_ns = now > v->gen_first_ns ? now : v->gen_first_ns;
	v->tcp_flags |= flags;
	v->gen_flags |= flags;
	v->gen_packets++;
	v->gen_bytes += len;
}

/* Later fragments take the ports of their first fragment (worker.c's frag_map). */
static __always_inline void tf_frag(struct tf_percpu *pc, struct pkt_info *pi, uint64_t now)
{
	struct tf_frag_key fk;
	struct tf_frag_val *fv;

	__builtin_memset(&fk, 0, sizeof(fk));
	__builtin_memcpy(fk.src, pi->key.src, 16);
	__builtin_memcpy(fk.dst, pi->key.dst, 16);
	fk.id = pi->frag_id;
	fk.proto = pi->key.proto;
	if (pi->frag == PKT_FRAG_FIRST) {
		struct tf_frag_val nv = { .seen_ns = now, .sport = pi->key.sport,
					  .dport = pi->key.dport };
		bpf_map_update_elem(&tf_frags, &fk, &nv, BPF_ANY);
		return;
	}
	pc->c[TF_C_FRAG_LATER]++;
	fv = bpf_map_lookup_elem(&tf_frags, &fk);
	if (fv && now - fv->seen_ns < TF_FRAG_WINDOW_NS) {
		pi->key.sport = fv->sport;
		pi->key.dport = fv->dport;
		return;
	}
	pc->c[TF_C_FRAG_ORPHANS]++;
}

/* Counts a parsed frame (result r) seen on ifindex into its flow. */
static __always_inline void tf_count(void *ctx, struct tf_percpu *pc, struct pkt_info *pi,
				     int r, uint32_t ifindex, int egress)
{
	struct tf_flow_val *v, *nv, *slot;
	uint32_t gen, cpu, zero = 0;
	uint64_t now, off;
	long err;

	if (r < 0 || r >= PKT_NRESULTS)
		r = PKT_NRESULTS - 1;
	pc->c[TF_C_PARSE + r]++;
	if (r != PKT_OK)
		return;
	now = tf_now();
	gen = tf_gen;
	/* A router's own packets have no input interface (0, as routers report them). */
	pi->key.in_if = egress && tf_cfg_router ? 0 : ifindex;
	if (pi->frag != PKT_FRAG_NONE)
		tf_frag(pc, pi, now);

	err = -1;  /* neither lookup below can fail: counted as a map error if one does */
	cpu = bpf_get_smp_processor_id();
	if (cpu >= tf_cfg_ncpu)  /* the loader counted the possible CPUs */
		goto lost;
	off = cpu * sizeof(struct tf_flow_val);
	v = bpf_map_lookup_elem(&tf_flows, &pi->key);
	if (v) {
		tf_add((void *)v + off, pi->ip_len, pi->tcp_flags, now, gen);
		goto counted;
	}
	nv = bpf_map_lookup_elem(&tf_newval, &zero);
	if (!nv)
		goto lost;
	slot = (void *)nv + off;
	tf_add(slot, pi->ip_len, pi->tcp_flags, now, gen);
	if (tf_cfg_router)
		tf_route(ctx, pc, &pi->key, ifindex, egress, slot);
	err = bpf_map_update_elem(&tf_flows, &pi->key, nv, BPF_NOEXIST);
	__builtin_memset(slot, 0, sizeof(*slot));
	if (err == 0) {
		pc->c[TF_C_CREATED]++;
		goto counted;
	}
	if (err == -TF_EEXIST) {
		/* Another CPU inserted it first: this CPU's copy exists now, zeroed. */
		v = bpf_map_lookup_elem(&tf_flows, &pi->key);
		if (v) {
			pc->c[TF_C_INSERT_RACE]++;
			tf_add((void *)v + off, pi->ip_len, pi->tcp_flags, now, gen);
			goto counted;
		}
		/* ... and user space deleted it again in between: counted as an error. */
	}
lost:
	if (err == -TF_E2BIG || err == -TF_ENOMEM)
		pc->c[TF_C_MAP_FULL]++;
	else if (err == -TF_EBUSY)
		pc->c[TF_C_MAP_BUSY]++;
	else
		pc->c[TF_C_MAP_ERROR]++;
	pc->c[TF_C_LOST_BYTES] += pi->ip_len;
	return;
counted:
	pc->c[TF_C_PACKETS]++;
	pc->c[TF_C_BYTES] += pi->ip_len;
}

/* The per-CPU state, or NULL once the packet is sampled out. */
static __always_inline struct tf_percpu *tf_enter(void)
{
	uint32_t zero = 0;
	struct tf_percpu *pc = bpf_map_lookup_elem(&tf_counters, &zero);

	if (!pc)
		return NULL;
	pc->c[TF_C_FRAMES]++;
	if (tf_cfg_sample > 1) {
		/* Deterministic 1-in-N per CPU: the first packet, then every Nth. */
		if (pc->sample_left > 1) {
			pc->sample_left--;
			pc->c[TF_C_SAMPLED_OUT]++;
			return NULL;
		}
		pc->sample_left = tf_cfg_sample;
	}
	return pc;
}

static __always_inline void tf_tc(struct __sk_buff *skb, int egress)
{
	struct tf_percpu *pc;
	struct pkt_info pi;
	const uint8_t *data, *end;
	uint32_t len = skb->len;
	int r;

	/* Router: a forwarded packet was counted where it came in (with its route). */
	if (egress && tf_cfg_router && skb->ingress_ifindex)
		return;
	pc = tf_enter();
	if (!pc)
		return;
	if (egress)
		pc->c[TF_C_OUTGOING]++;
	__builtin_memset(&pi, 0, sizeof(pi));
	data = (const uint8_t *)(long)skb->data;
	end = (const uint8_t *)(long)skb->data_end;
	r = tf_parse(pc, data, end, len, &pi);
	if (tf_truncated(r) && (uint32_t)(end - data) < len) {
		/* Headers run past the linear part (paged skb): pull them in, parse again. */
		if (bpf_skb_pull_data(skb, len < TF_PULL_MAX ? len : TF_PULL_MAX) == 0) {
			pc->c[TF_C_PULLED]++;
			__builtin_memset(&pi, 0, sizeof(pi));
			data = (const uint8_t *)(long)skb->data;
			end = (const uint8_t *)(long)skb->data_end;
			r = tf_parse(pc, data, end, len, &pi);
		}
	}
	/* The kernel took the outer tag off the frame (as AF_PACKET reports it). */
	if (r == PKT_OK && skb->vlan_present && (skb->vlan_tci & 0x0fff))
		pi.key.vlan = skb->vlan_tci & 0x0fff;
	tf_count(skb, pc, &pi, r, skb->ifindex, egress);
}

SEC("tc")
int tf_flow_in(struct __sk_buff *skb)
{
	tf_tc(skb, 0);
	return TC_ACT_UNSPEC;  /* not a verdict: later filters and the stack go on */
}

SEC("tc")
int tf_flow_out(struct __sk_buff *skb)
{
	tf_tc(skb, 1);
	return TC_ACT_UNSPEC;
}

SEC("xdp")
int tf_flow_xdp(struct xdp_md *ctx)
{
	const uint8_t *data = (const uint8_t *)(long)ctx->data;
	const uint8_t *end = (const uint8_t *)(long)ctx->data_end;
	struct tf_percpu *pc = tf_enter();
	struct pkt_info pi;
	int r;

	if (!pc)
		return XDP_PASS;
	__builtin_memset(&pi, 0, sizeof(pi));
	r = tf_parse(pc, data, end, (uint32_t)(end - data), &pi);
	tf_count(ctx, pc, &pi, r, ctx->ingress_ifindex, 0);
	return XDP_PASS;
}
