/* export.h: the probe's exporter. Owns the UDP sockets to one or more collectors, the
 * NetFlow v9 encoder state (sequence, source ID), the template refresh policy (every
 * N datagrams AND every T seconds, RFC 3954 section 7) and batched sending.
 *
 * Flows go in one at a time; datagrams are filled up to the configured MTU and sent in
 * batches (sendmmsg). Time is the caller's clock in Unix ms (the pcap's clock with -r).
 */
#ifndef TF_EXPORT_H
#define TF_EXPORT_H

#include <stddef.h>
#include <stdint.h>

#include "flowrec.h"

#define EXPORT_MAX_DEST 8

struct export_cfg {
	const char *dest[EXPORT_MAX_DEST]; /* "host:port", "[v6]:port" */
	int ndest;
	uint32_t source_id;
	uint32_t mtu;               /* IP MTU of the path; datagrams are sized to fit */
	uint32_t tpl_every_pkts;    /* re-send templates every N datagrams (0: never by count) */
	uint32_t tpl_every_secs;    /* ... and every T seconds (0: never by time) */
	uint32_t sampling_interval; /* 1 = unsampled (0 taken as 1); > 1 is announced as
				     * deterministic sampling (SAMPLING_ALGORITHM 1) */
	uint64_t boot_ms;           /* Unix ms that sysUptime counts from; 0: the first
				     * export clock the exporter sees, less one hour */
	uint32_t sndbuf;            /* SO_SNDBUF bytes, 0 = system default */
};

struct export_stats {
	uint64_t flows;       /* flow records handed to the exporter */
	uint64_t records;     /* flow records sent (per collector counted once) */
	uint64_t datagrams;   /* datagrams sent (per collector counted once; a datagram
			       * a collector refused still counts here and in send_errors) */
	uint64_t templates;   /* template refreshes */
	uint64_t send_errors; /* datagrams a collector did not take (by sendmmsg) */
};

struct exporter;

/* Resolves and connects every destination. On failure returns NULL and writes a
 * message naming the destination into err[0..errlen). */
struct exporter *export_new(const struct export_cfg *cfg, char *err, size_t errlen);

/* Queues one flow; sends full datagrams as needed. now_ms is the export clock. */
void export_flow(struct exporter *x, const struct flow_rec *rec, uint64_t now_ms);

/* Time passes: sends the open datagram if it has waited long enough (1 s of export
 * clock), sends datagrams queued for a batch, and re-sends templates when T seconds
 * elapsed (a templates-only datagram on a quiet link; the first tick sends templates
 * if no flow has yet). Call at least once a second. */
void export_tick(struct exporter *x, uint64_t now_ms);

/* Sends everything queued now (end of file, shutdown). */
void export_flush(struct exporter *x, uint64_t now_ms);

const struct export_stats *export_stats(const struct exporter *x);
void export_free(struct exporter *x);

#endif
