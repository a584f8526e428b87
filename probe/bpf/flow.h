/* flow.h: what the eBPF flow program (flow.bpf.c) and its loader (cap_ebpf.c) share,
 * types and constants only. The flow key is struct pkt_key from pkt.h, used by both
 * sides as it is (the BPF side includes pkt.h, built -ffreestanding), so a flow counted
 * in the kernel has the same key bytes as one the user-space parser builds.
 *
 * Maps (defined in flow.bpf.c):
 *   tf_flows     BPF_MAP_TYPE_HASH         struct pkt_key -> struct tf_flow_val per CPU
 *                                          (one slot per possible CPU, side by side)
 *   tf_newval    BPF_MAP_TYPE_PERCPU_ARRAY a zeroed tf_flows value to insert new flows
 *   tf_counters  BPF_MAP_TYPE_PERCPU_ARRAY one struct tf_percpu: the counters (enum
 *                                          tf_counter) and the sampling countdown
 *   tf_frags     BPF_MAP_TYPE_LRU_HASH     struct tf_frag_key -> struct tf_frag_val
 * Read-only configuration (set before load): tf_cfg_sample, tf_cfg_router, tf_cfg_ncpu
 * (the possible CPUs: slots per value; the loader sets both value sizes to match). Written by
 * user space while running: tf_gen (the scan generation, see struct tf_flow_val).
 *
 * Fixed-width types only: one little-endian object serves 64-bit and 32-bit (Pi) user
 * space alike, and the kernel lays these out as the user-space compiler does.
 */
#ifndef TF_BPF_FLOW_H
#define TF_BPF_FLOW_H

#include <stdint.h>

#include "pkt.h"

/* One CPU's share of a flow. Each CPU writes only its own copy (no atomics, no lost
 * updates); user space adds the copies up. A copy with packets == 0 is one this CPU
 * never touched (the kernel zeroes the other CPUs' copies on insert).
 * gen and the gen_* fields count what arrived since tf_gen, bumped by user space after
 * each scan, became gen: the program restarts them whenever tf_gen differs from gen,
 * first saving what came before in pre_last_ns and pre_flags. A bump is a cut user
 * space can split a flow at exactly (an active timeout): before it, packets - gen_packets
 * ending at pre_last_ns; after it, gen_packets starting at gen_first_ns. */
struct tf_flow_val {
	uint64_t packets;
	uint64_t bytes;         /* IP-layer bytes (IP total length) */
	uint64_t first_ns;      /* bpf_ktime_get_ns (CLOCK_MONOTONIC) */
	uint64_t last_ns;       /* the same clock at the tick's resolution (coarse, 5.11+),
				 * never before gen_first_ns */
	uint64_t gen_first_ns;  /* first packet on this CPU since tf_gen became gen */
	uint64_t gen_bytes;
	uint64_t pre_last_ns;   /* last packet before that, 0 if none */
	uint32_t gen;
	uint32_t out_if;        /* router mode: output interface from bpf_fib_lookup, 0 unknown */
	uint8_t nexthop[16];    /* router mode: gateway, v4-mapped for IPv4; 0 if connected */
	uint8_t tcp_flags;      /* OR of every packet's flags */
	uint8_t gen_flags;      /* OR of the flags since tf_gen became gen */
	uint8_t pre_flags;      /* OR of the flags before that */
	uint8_t pad;
	uint32_t gen_packets;
};

/* Later fragments find the ports of their datagram's first fragment here (as the
 * worker's fragment slots do in user space). */
struct tf_frag_key {
	uint8_t src[16];
	uint8_t dst[16];
	uint32_t id;
	uint8_t proto;
	uint8_t pad[3];
};

struct tf_frag_val {
	uint64_t seen_ns;
	uint16_t sport;
	uint16_t dport;
	uint8_t pad[4];
};

#define TF_FRAG_ENTRIES 4096
#define TF_FRAG_WINDOW_NS 30000000000ull  /* Linux's reassembly timeout, as the worker */

/* Per-CPU counters, summed by user space. Packets that reach none of the flow entries
 * are counted here, so every frame is accounted for:
 * frames = sampled_out + parse[*] (not OK) + packets + map_full + map_busy + map_error. */
enum tf_counter {
	/* The four every counted packet touches come first, in one cache line: at low
	 * rates the program runs with cold caches, and each line is a miss. */
	TF_C_PACKETS = 0,    /* IP packets counted in a flow entry */
	TF_C_BYTES,          /* their IP-layer bytes */
	TF_C_FRAMES,         /* frames the program saw (router mode: not the forwarded
			      * ones leaving, counted where they came in) */
	TF_C_PARSE,          /* + enum pkt_result: one counter per parse outcome (PKT_OK
			      * first) */
	TF_C_SAMPLED_OUT = TF_C_PARSE + PKT_NRESULTS,  /* skipped by 1-in-N sampling */
	TF_C_OUTGOING,       /* frames seen on an egress hook */
	TF_C_FRAG_LATER,     /* non-first fragments */
	TF_C_FRAG_ORPHANS,   /* ... whose first fragment was not seen (ports 0) */
	TF_C_CREATED,        /* flow entries this program inserted */
	TF_C_INSERT_RACE,    /* insert met -EEXIST (another CPU won): looked up and counted */
	TF_C_MAP_FULL,       /* packets not counted: insert failed with -E2BIG/-ENOMEM */
	TF_C_MAP_BUSY,       /* packets not counted: insert failed with -EBUSY */
	TF_C_MAP_ERROR,      /* packets not counted: any other insert failure */
	TF_C_LOST_BYTES,     /* IP bytes of the three above */
	TF_C_FIB_OK,         /* router mode: route found (with or without a neighbour) */
	TF_C_FIB_NOT_FWD,    /* ... packet for this host, or forwarding off */
	TF_C_FIB_FAIL,       /* ... no route, blackhole, unreachable, other */
	TF_C_PULLED,         /* TC: headers beyond the linear part were pulled in */
	TF_C_N
};

/* Per-CPU state of the programs, summed by user space: a scratch word (tf_opaque in
 * flow.bpf.c), the sampling countdown and the counters. Everything a counted packet
 * writes lies in the first 48 bytes. */
struct tf_percpu {
	uint64_t scratch;
	uint64_t sample_left;
	uint64_t c[TF_C_N];
};

/* Names of the TC and XDP programs; a program attached under one of these names (at
 * the handle and priority below for TC) is ours, perhaps left by a killed probe. */
#define TF_PROG_PREFIX "tf_flow"
#define TF_TC_HANDLE 0x7466u    /* "tf" */
#define TF_TC_PRIO 0x7466u

#define TF_TCP_END 0x05  /* FIN | RST: a flow's TCP end (its grace, not its inactive timeout) */

/* scan.bpf.c, the map scan run in the kernel: at most this many per-CPU copies per
 * flow (more CPUs: user space reads the map with batch lookups). */
#define TF_SCAN_MAXCPU 64
/* An entry of its output array tf_scan_out: struct pkt_key, u32 deleted (this value:
 * the program deleted the flow, the values are final), u32 pad, then the flow's per-CPU
 * values. */
#define TF_SCAN_HDR 56
#define TF_SCAN_DELETED 0x64656cu  /* "del" */

#endif
