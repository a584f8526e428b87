/* cap.h: capture backends behind one small table of operations. A backend hands out
 * batches of frames; the frames stay valid until the next call to next() or close().
 * Backends: a pcap/pcapng file (cap_pcap.c) and live AF_PACKET TPACKET_V3 rings
 * (cap_afpacket.c). A flow backend, eBPF (cap_ebpf.c), counts packets into flows in the
 * kernel instead: its next() only waits, and its flows() hands over finished flows.
 */
#ifndef TF_CAP_H
#define TF_CAP_H

#include <setjmp.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "flowtab.h"
#include "pkt.h"

struct cap_pkt {
	const uint8_t *data;
	uint32_t caplen;   /* bytes at data */
	uint32_t len;      /* length on the wire */
	uint64_t ts_ns;    /* Unix time, nanoseconds */
	uint32_t ifindex;  /* input interface (0 for files) */
	uint16_t vlan;     /* VLAN id the kernel took off the frame, 0 if none */
	uint8_t link;      /* enum pkt_link */
	uint8_t outgoing;  /* sent by this host (AF_PACKET PACKET_OUTGOING) */
};

struct cap_stats {
	uint64_t packets;  /* frames handed out */
	uint64_t drops;    /* frames the kernel dropped (ring full) */
	uint64_t filtered; /* frames the kernel dropped by filter, if known */
};

/* What a flow backend counted in place of the worker and its flow table (cumulative;
 * the fields mean what struct worker_stats and struct flowtab_stats mean). */
struct cap_counts {
	uint64_t frames;
	uint64_t sampled_out;
	uint64_t packets;
	uint64_t bytes;
	uint64_t outgoing;
	uint64_t frag_later;
	uint64_t frag_orphans;
	uint64_t parse[PKT_NRESULTS];
	struct flowtab_stats flows;
};

struct cap;

struct cap_ops {
	const char *name;
	/* Fills pkts[0..max) and returns how many (>0), 0 when nothing arrived within
	 * timeout_ms, CAP_EOF at the end of a file, or a negative errno. */
	int (*next)(struct cap *c, struct cap_pkt *pkts, int max, int timeout_ms);
	/* Cumulative statistics. */
	void (*stats)(struct cap *c, struct cap_stats *st);
	void (*close)(struct cap *c);
	/* Flow backends only (NULL otherwise): hands every flow due at now_ms (Unix ms)
	 * under the flow table's expiry rules (flowtab.h), or with force every flow, to
	 * emit, and refreshes *cnt. Force is for shutdown: the backend stops counting
	 * first, so the records hold every packet. Returns records emitted or -errno. */
	int (*flows)(struct cap *c, uint64_t now_ms, int force, flowtab_emit_fn emit,
		     void *arg, struct cap_counts *cnt);
	/* Optional: prints the backend's own statistics, one "  name: value" a line. */
	void (*report)(struct cap *c, FILE *out);
};

#define CAP_EOF (-4096)

struct cap {
	const struct cap_ops *ops;
};

static inline int cap_next(struct cap *c, struct cap_pkt *p, int max, int timeout_ms)
{
	return c->ops->next(c, p, max, timeout_ms);
}

static inline void cap_stats(struct cap *c, struct cap_stats *st)
{
	c->ops->stats(c, st);
}

/* Prints the backend's own statistics lines, if it has any. */
static inline void cap_report(struct cap *c, FILE *out)
{
	if (c && c->ops->report)
		c->ops->report(c, out);
}

static inline void cap_close(struct cap *c)
{
	if (c)
		c->ops->close(c);
}

/* Opens a pcap or pcapng file. filter (may be NULL) is pcap filter syntax. On failure
 * returns NULL with a message in err. */
struct cap *cap_open_pcap(const char *path, const char *filter, char *err, size_t errlen);

/* A capture file is mapped, and a file cut short while it is read (a writer truncating
 * it, tcpdump -W reusing its ring of files) makes the next access fault (SIGBUS).
 * cap_pcap_guard(jb) makes such a fault in the calling thread jump to jb (set by the
 * caller with sigsetjmp(jb, 1)) instead of killing the process; NULL disarms it. Only
 * faults inside a capture file's mapping are caught. */
void cap_pcap_guard(sigjmp_buf *jb);

struct cap_afp_cfg {
	const char *const *ifaces;  /* interface names */
	int nifaces;
	const char *filter;         /* pcap syntax, NULL for none */
	uint32_t snaplen;           /* bytes kept per frame */
	uint32_t ring_bytes;        /* ring size per interface */
	int promisc;
	int fanout_id;              /* >= 0: join PACKET_FANOUT group fanout_id + i per iface */
	int fanout_members;         /* workers in each group */
	int direction;              /* CAP_DIR_* */
};

enum { CAP_DIR_BOTH = 0, CAP_DIR_IN = 1, CAP_DIR_OUT = 2 };

/* Opens one TPACKET_V3 ring per interface. NULL with a message in err on failure. */
struct cap *cap_open_afpacket(const struct cap_afp_cfg *cfg, char *err, size_t errlen);

enum { CAP_XDP_OFF = 0, CAP_XDP_NATIVE, CAP_XDP_GENERIC, CAP_XDP_AUTO };
/* How TC programs attach: tcx links (6.6+) where the kernel has them, else a cls_bpf
 * filter on a clsact qdisc; or only one of the two. */
enum { CAP_TC_AUTO = 0, CAP_TC_TCX, CAP_TC_CLSACT };

struct cap_ebpf_cfg {
	const char *const *ifaces;  /* interface names (Ethernet) */
	int nifaces;
	int direction;              /* CAP_DIR_*: TC ingress, egress or both */
	int xdp;                    /* CAP_XDP_*: XDP instead of TC ingress */
	int tc;                     /* CAP_TC_*: how the TC programs attach */
	int router;                 /* route lookup per new flow (out_if, next hop); on
				     * egress only packets this host sends are counted */
	int promisc;
	uint32_t map_size;          /* flow map entries */
	int user_scan;              /* read the map with batch lookups, not scan.bpf.c */
	uint32_t sample;            /* 1-in-N packet sampling in the kernel (0 or 1: all) */
	struct flowtab_cfg expiry;  /* the flow table's timeouts (max_flows unused) */
};

/* Loads the eBPF flow program and attaches it to every interface. NULL with a message
 * in err on failure (nothing is left attached then); the caller owns the capture and
 * closes it with cap_close, which detaches everything. */
struct cap *cap_open_ebpf(const struct cap_ebpf_cfg *cfg, char *err, size_t errlen);

#endif
