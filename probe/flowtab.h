/* flowtab.h: the probe's flow table. A fixed budget of entries preallocated at start
 * (no malloc per flow), an open-addressing index over them, and intrusive lists in
 * time order so that expiry touches only the flows that expire.
 *
 * Time is whatever the caller says it is (packet timestamps in ms): the pcap reader
 * passes the file's clock, live capture the wall clock, tests an injected one.
 *
 * Expiry rules, applied the same way by flowtab_expire and by flowtab_update when a
 * packet arrives for a flow that is already due (so records do not depend on how often
 * the caller ticks):
 *   - a flow that saw TCP FIN or RST ends (FLOW_END_EOF) once now >= last + fin_grace_ms;
 *     it keeps counting packets until then, and is never idle-expired;
 *   - any other flow ends (FLOW_END_IDLE) once now >= last + inactive_ms;
 *   - failing those, a flow ends (FLOW_END_ACTIVE) once now >= first + active_ms.
 * A timeout of 0 ends a flow after each packet. Timestamps older than a flow's last
 * (out of order) are counted; first/last stay the min/max seen. Such packets may only
 * delay, never hasten, the expiry of other flows.
 *
 * The emit callback gets each record leaving the table. It must not call back into
 * the same table (the table is mid-update while it runs). emit may be NULL: records
 * are then dropped (still counted in the stats).
 *
 * Memory: 104 bytes per entry plus an index of 8-byte slots at most 3/4 full, in all
 * under 128 bytes per flow of budget. Not thread safe: one table per worker.
 */
#ifndef TF_FLOWTAB_H
#define TF_FLOWTAB_H

#include <stddef.h>
#include <stdint.h>

#include "flowrec.h"
#include "pkt.h"

struct flowtab_cfg {
	uint32_t max_flows;     /* entries; the table never holds more */
	uint32_t active_ms;     /* a flow older than this is exported and restarted */
	uint32_t inactive_ms;   /* a flow idle this long is exported */
	uint32_t fin_grace_ms;  /* after TCP FIN/RST, export once idle this long */
};

struct flowtab_stats {
	uint64_t created;
	uint64_t expired[6];    /* by enum flow_end */
	uint64_t table_full;    /* flows expired early because the table was full */
	uint64_t active;        /* flows in the table now */
	/* Instrumentation: flows examined by flowtab_expire. Each call examines the flows
	 * it expires plus at most one not-due flow per list (3), never the rest. */
	uint64_t expire_checks;
};

/* True once at least span ms have passed since t. The difference is read as signed so
 * that a now before t (out-of-order time) is never due; ms clocks are far below 2^63. */
static inline int flowtab_after(uint64_t now, uint64_t t, uint32_t span)
{
	return (int64_t)(now - t) >= (int64_t)span;
}

/* The expiry rules above, the one place they are written: why a flow with these times
 * ends at now (enum flow_end), or 0 if it does not. tcp_end: it saw FIN or RST. Every
 * capture backend decides with this, so a flow ends the same way whoever counted it. */
static inline int flowtab_due(const struct flowtab_cfg *c, int tcp_end, uint64_t first_ms,
			      uint64_t last_ms, uint64_t now)
{
	if (tcp_end) {
		if (flowtab_after(now, last_ms, c->fin_grace_ms))
			return FLOW_END_EOF;
	} else if (flowtab_after(now, last_ms, c->inactive_ms)) {
		return FLOW_END_IDLE;
	}
	if (flowtab_after(now, first_ms, c->active_ms))
		return FLOW_END_ACTIVE;
	return 0;
}

/* Called for every flow leaving the table. The record is only valid during the call. */
typedef void (*flowtab_emit_fn)(const struct flow_rec *rec, void *arg);

struct flowtab;

#define FLOWTAB_MAX_FLOWS (1u << 30)

/* Allocates a table for cfg->max_flows entries (all memory up front). NULL on failure
 * or on a zero budget (or one over FLOWTAB_MAX_FLOWS); errno says which. The caller
 * owns the table and frees it with flowtab_free (which does not emit). */
struct flowtab *flowtab_new(const struct flowtab_cfg *cfg);
void flowtab_free(struct flowtab *ft);

/* Accounts one parsed packet seen at now_ms: packets, bytes (pi->ip_len), first/last,
 * OR of pi->tcp_flags. If the packet's flow is already due it is emitted and restarted
 * with this packet. If a new flow finds the table full, the oldest flow (the FIN/RST
 * list's head, else the least recently seen) is expired first (FLOW_END_RESOURCE)
 * through emit. pi is only read during the call. */
void flowtab_update(struct flowtab *ft, const struct pkt_info *pi, uint64_t now_ms,
		    flowtab_emit_fn emit, void *arg);

/* flowtab_update in steps, for a batch of packets: hash each packet's key and fetch
 * its home slot (flowtab_prefetch, which returns the hash), then the entry the slot
 * holds (flowtab_prefetch_entry), each step over the whole batch before the next, so
 * the cache misses of a batch overlap instead of following one another; then
 * flowtab_update_hashed on each packet in order, with the hash from the first step
 * (the same key). The prefetch steps only hint the cache: they change nothing. */
uint32_t flowtab_prefetch(const struct flowtab *ft, const struct pkt_key *key);
void flowtab_prefetch_entry(const struct flowtab *ft, uint32_t tag);
void flowtab_update_hashed(struct flowtab *ft, const struct pkt_info *pi, uint32_t tag,
			   uint64_t now_ms, flowtab_emit_fn emit, void *arg);

/* Expires every flow due at now_ms (inactive, active, FIN/RST grace). Cost is
 * proportional to the flows expired. Returns how many. */
size_t flowtab_expire(struct flowtab *ft, uint64_t now_ms, flowtab_emit_fn emit, void *arg);

/* Expires every flow in the table (FLOW_END_FORCED). Returns how many. */
size_t flowtab_flush(struct flowtab *ft, flowtab_emit_fn emit, void *arg);

/* Counters since flowtab_new; the pointer stays valid, owned by the table. */
const struct flowtab_stats *flowtab_stats(const struct flowtab *ft);

/* Bytes of memory the table allocated for its budget (for the memory-per-flow figure). */
size_t flowtab_mem_bytes(const struct flowtab *ft);

/* The 32-bit index hash of key under this table's (random) seed. For tests and
 * diagnostics: it lets a test build keys whose hashes collide. */
uint32_t flowtab_hash(const struct flowtab *ft, const struct pkt_key *key);

#endif
