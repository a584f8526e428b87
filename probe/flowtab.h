/* flowtab.h: the probe's flow table. A fixed budget of entries preallocated at start
 * (no malloc per flow), an open-addressing index over them, and intrusive lists in
 * time order so that expiry touches only the flows that expire.
 *
 * Time is whatever the caller says it is (packet timestamps in ms): the pcap reader
 * passes the file's clock, live capture the wall clock, tests an injected one.
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
};

/* Called for every flow leaving the table. The record is only valid during the call. */
typedef void (*flowtab_emit_fn)(const struct flow_rec *rec, void *arg);

struct flowtab;

/* Allocates a table for cfg->max_flows entries (all memory up front). NULL on failure
 * or on a zero budget. */
struct flowtab *flowtab_new(const struct flowtab_cfg *cfg);
void flowtab_free(struct flowtab *ft);

/* Accounts one parsed packet seen at now_ms. If the table is full the oldest flow is
 * expired first (FLOW_END_RESOURCE) through emit. */
void flowtab_update(struct flowtab *ft, const struct pkt_info *pi, uint64_t now_ms,
		    flowtab_emit_fn emit, void *arg);

/* Expires every flow due at now_ms (inactive, active, FIN/RST grace). Cost is
 * proportional to the flows expired. Returns how many. */
size_t flowtab_expire(struct flowtab *ft, uint64_t now_ms, flowtab_emit_fn emit, void *arg);

/* Expires every flow in the table (FLOW_END_FORCED). Returns how many. */
size_t flowtab_flush(struct flowtab *ft, flowtab_emit_fn emit, void *arg);

const struct flowtab_stats *flowtab_stats(const struct flowtab *ft);

/* Bytes of memory the table allocated for its budget (for the memory-per-flow figure). */
size_t flowtab_mem_bytes(const struct flowtab *ft);

#endif
