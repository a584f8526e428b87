/* worker.h: one capture worker: the path from a captured frame to the flow table, and
 * from expired flows to the exporter. A worker owns its flow table, its fragment map
 * and its counters, so nothing is locked per packet; the exporter is shared between
 * workers and locked once per batch of expired flows.
 */
#ifndef TF_WORKER_H
#define TF_WORKER_H

#include <pthread.h>
#include <stdint.h>

#include "cap.h"
#include "export.h"
#include "flowtab.h"
#include "pkt.h"

#define WORKER_FRAG_SLOTS 4096
#define WORKER_OUTQ 256
#define WORKER_BATCH 64

/* The exporter and the lock that serializes workers on it. */
struct export_link {
	struct exporter *x;
	pthread_mutex_t mu;
};

/* Ports of a first fragment, so later fragments join its flow. */
struct frag_slot {
	uint8_t src[16];
	uint8_t dst[16];
	uint32_t id;
	uint16_t sport, dport;
	uint64_t seen_ms;
	uint8_t proto;
	uint8_t used;
};

struct worker_stats {
	uint64_t frames;            /* frames from the capture */
	uint64_t sampled_out;       /* frames skipped by 1-in-N sampling */
	uint64_t packets;           /* IP packets accounted to flows */
	uint64_t bytes;             /* their IP-layer bytes */
	uint64_t outgoing;          /* frames this host sent (counted, direction both) */
	uint64_t frag_later;        /* non-first fragments */
	uint64_t frag_orphans;      /* ... whose first fragment was not seen (ports 0) */
	uint64_t parse[PKT_NRESULTS];
};

struct worker {
	struct flowtab *ft;
	struct export_link *exp;
	struct cap *cap;
	uint32_t sample;            /* 1 = every packet */
	uint32_t sample_left;
	uint64_t clock_ms;          /* newest packet time seen */
	struct worker_stats st;
	struct flowtab_stats cap_flows; /* a flow backend's flow counters (cap.h) */
	int nout;
	struct flow_rec out[WORKER_OUTQ];
	struct frag_slot frag[WORKER_FRAG_SLOTS];
};

/* Sets up w (already zeroed by the caller, typically calloc). Returns 0 or -ENOMEM. */
int worker_init(struct worker *w, const struct flowtab_cfg *fc, uint32_t sample,
		struct export_link *exp, struct cap *cap);
void worker_fini(struct worker *w);

/* Accounts one captured frame. */
void worker_packet(struct worker *w, const struct cap_pkt *p);

/* Accounts n frames in order, as worker_packet on each would, but faster: the flow
 * table's memory for a batch is fetched ahead. With file_tick (a capture file, whose
 * own clock is the time), ticks once a second of that clock, between packets. */
void worker_packets(struct worker *w, const struct cap_pkt *pkts, int n,
		    uint64_t *file_tick);

/* Expires due flows at now_ms and hands them to the exporter (export clock now_ms).
 * With a flow backend (eBPF) the flows come from the capture, its counters into st. */
void worker_tick(struct worker *w, uint64_t now_ms);

/* Expires every flow and sends everything (end of file, shutdown). */
void worker_flush(struct worker *w, uint64_t now_ms);

/* The flow counters: the flow table's, or a flow backend's. Owned by w. */
const struct flowtab_stats *worker_flow_stats(const struct worker *w);

#endif
