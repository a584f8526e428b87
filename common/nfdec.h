/* nfdec.h: the collector's NetFlow v5, v9 (RFC 3954) and IPFIX (RFC 7011) decoder, free
 * of I/O. The receiver hands it each UDP payload with the exporter's address and the
 * receive time; it calls back with one struct flow_rec per flow record.
 *
 * It owns, per decoder: the exporter table (address -> per source ID / observation
 * domain state: sequence tracking, learned sampling interval, IPFIX
 * systemInitTimeMilliseconds), the template cache keyed by (exporter, version, domain,
 * template id) with least-recently-used eviction, the pending buffer of data sets that
 * arrived before their template, and every counter. v9 and IPFIX share one table-driven
 * codec: a template is compiled once into a list of load-and-store steps.
 *
 * Rules worth knowing (the why is in nfdec.c):
 * - v5: a header count that needs more bytes than the datagram holds rejects the whole
 *   datagram (NFDEC_E_V5_COUNT, no record decoded); bytes after count records are ignored.
 * - v9/IPFIX: sets are walked by their lengths; the v9 header count is informational
 *   (counted when it disagrees). Bytes after an IPFIX message's own length are ignored.
 * - A data set whose template is unknown is copied and held (pending_max_bytes in all,
 *   at most 1024 sets per exporter, pending_max_ms of age; the oldest go first, each
 *   counted) and decoded, under its own header's clock, at the end of the datagram that
 *   brings its template.
 * - Options data records are never emitted; they update sampling and system init time.
 * - Counters: bytes = 1 (octetDeltaCount / IN_BYTES) if nonzero, else 23 (OUT_BYTES):
 *   never their sum, which double counts exporters that repeat one count in both
 *   (Fortigate; nfdump adds them). Without either: 85 (octetTotalCount), else 231 + 232
 *   (initiator + responder octets: the two directions of a Cisco ASA NSEL connection,
 *   summed as nfdump's totals do). Packets likewise from 2/24, 86, 298 + 299.
 * - Times, most precise absolute clock first: 152/153 ms, 156/157 and 154/155 (NTP, era
 *   by RFC 5905's rule), 150/151 s; then 22/21 sysUptime-relative (v5/v9: the header's
 *   clock; IPFIX: systemInitTimeMilliseconds from options data, or, if none was learned,
 *   the flow is taken to end at export time); then 158/159; then 323 (ASA event time).
 *   161/162 durations fill a missing end. A record with no time field gets the header's
 *   export time as first and last.
 * - One nfdec is used by one thread at a time; callbacks must not call back into it.
 */
#ifndef TF_NFDEC_H
#define TF_NFDEC_H

#include <stddef.h>
#include <stdint.h>

#include "flowrec.h"

/* Why a datagram, set or record could not be decoded. nfdec_datagram returns the first
 * as a negative number; every occurrence is counted per exporter and in the totals. */
enum nfdec_err {
	NFDEC_OK = 0,
	NFDEC_E_SHORT,        /* shorter than its version's header */
	NFDEC_E_VERSION,      /* not 5, 9 or 10 */
	NFDEC_E_V5_COUNT,     /* v5 header count needs more bytes than the datagram has */
	NFDEC_E_MSG_LENGTH,   /* IPFIX message length < 16 or past the datagram */
	NFDEC_E_SET_LENGTH,   /* set length < 4 or past the message: rest of message dropped */
	NFDEC_E_SET_ID,       /* reserved set id (v9 2..255; IPFIX 0, 1, 4..255): set skipped */
	NFDEC_E_TEMPLATE,     /* malformed template record: rest of its set dropped */
	NFDEC_E_TEMPLATE_EMPTY, /* data for a template whose records have no bytes */
	NFDEC_E_RECORD,       /* data record runs past its set: rest of the set dropped */
	NFDEC_E_EXPORTER_CAP, /* new exporter while max_exporters are known: datagram dropped */
	NFDEC_E_DOMAIN_CAP,   /* new domain while max_domains are known: datagram dropped */
	NFDEC_E_NOMEM,        /* allocation failed */
	NFDEC_E__COUNT
};

struct nfdec_cfg {
	size_t max_templates;     /* template cache entries, all exporters (>= 1) */
	size_t max_exporters;     /* distinct exporter addresses (>= 1) */
	size_t max_domains;       /* source IDs / observation domains per exporter (>= 1) */
	size_t pending_max_bytes; /* data held for missing templates, overhead included;
				   * 0 holds nothing */
	uint32_t pending_max_ms;  /* held data older than this is dropped */
	int apply_sampling;       /* nonzero: multiply packets and bytes by the interval */
};

/* Per (exporter, version, source ID / observation domain; v5: engine type << 8 | id). */
struct nfdec_domain_stats {
	uint32_t domain_id;
	uint8_t version;          /* 5, 9 or 10 */
	uint64_t datagrams;
	uint64_t records;         /* flow records emitted */
	uint64_t seq_gaps;        /* times the sequence number jumped forward */
	uint64_t seq_lost;        /* v5, IPFIX: records missed; v9: export packets missed */
	uint64_t seq_backward;    /* sequence went back: reordering, duplicate, restart */
	uint32_t sampling;        /* interval learned from options data (1: none) */
	uint64_t sys_init_ms;     /* IPFIX systemInitTimeMilliseconds learned (0: none) */
};

struct nfdec_exporter_stats {
	uint8_t addr[16];
	uint64_t datagrams;       /* accepted into this exporter (all versions) */
	uint64_t records;         /* flow records emitted */
	uint64_t records_v5;
	uint64_t records_v9;
	uint64_t records_ipfix;
	uint64_t options_records; /* options data records read (not emitted) */
	uint64_t templates;       /* templates cached now */
	uint64_t template_evictions; /* of this exporter's, evicted by max_templates */
	uint64_t count_mismatch;  /* v9 header count disagreed (informational) */
	uint64_t notpl_sets;      /* data sets that arrived before their template */
	uint64_t notpl_decoded_sets; /* ... decoded later, when the template came */
	uint64_t notpl_records;   /* ... records those yielded (flows and options) */
	uint64_t notpl_dropped_sets; /* ... dropped: too old, or a cap was hit */
	uint64_t notpl_dropped_bytes;
	uint64_t errors[NFDEC_E__COUNT];
};

/* Totals over the decoder; errors also count datagrams no exporter was found for. */
struct nfdec_stats {
	uint64_t datagrams;       /* every call to nfdec_datagram */
	uint64_t records;
	uint64_t options_records;
	uint64_t exporters;       /* known now */
	uint64_t templates;       /* cached now */
	uint64_t template_evictions;
	uint64_t notpl_sets;
	uint64_t notpl_decoded_sets;
	uint64_t notpl_dropped_sets;
	uint64_t notpl_dropped_bytes;
	uint64_t pending_sets;    /* held now */
	uint64_t pending_bytes;   /* held now, overhead included */
	uint64_t errors[NFDEC_E__COUNT];
};

struct nfdec;

/* Fills *cfg with the defaults: 4096 templates, 256 exporters, 64 domains each, 4 MiB
 * and 60 s of pending data, sampling recorded but not applied. */
void nfdec_cfg_default(struct nfdec_cfg *cfg);

/* Returns a new decoder (cfg copied; NULL cfg means the defaults), or NULL if cfg is
 * invalid (a zero max) or memory runs out. Free with nfdec_free. */
struct nfdec *nfdec_new(const struct nfdec_cfg *cfg);
void nfdec_free(struct nfdec *d);

/* Called once per flow record. rec is only valid during the call. */
typedef void (*nfdec_emit_fn)(const struct flow_rec *rec, void *arg);

/* Decodes one UDP payload buf[0..len) received at now_ms (Unix ms) from exporter (16
 * bytes, IPv4 v4-mapped) and calls emit (may be NULL) for each flow record, including
 * those of held data sets this datagram's templates made decodable. buf is not kept.
 * Returns 0, or the first negative enum nfdec_err met in this datagram; records decoded
 * before it were still emitted. */
int nfdec_datagram(struct nfdec *d, const uint8_t exporter[16], const uint8_t *buf,
		   size_t len, uint64_t now_ms, nfdec_emit_fn emit, void *arg);

/* Drops held data sets older than pending_max_ms at now_ms and counts them. */
void nfdec_tick(struct nfdec *d, uint64_t now_ms);

/* Fills *st with the totals. */
void nfdec_stats(const struct nfdec *d, struct nfdec_stats *st);

/* Exporters are numbered 0..nfdec_exporter_count()-1 in order of first datagram. The
 * returned views belong to the decoder and stay valid until its next call other than
 * these getters. Out-of-range indexes return NULL. */
size_t nfdec_exporter_count(const struct nfdec *d);
const struct nfdec_exporter_stats *nfdec_exporter(const struct nfdec *d, size_t i);
size_t nfdec_domain_count(const struct nfdec *d, size_t exporter);
const struct nfdec_domain_stats *nfdec_domain(const struct nfdec *d, size_t exporter,
					      size_t j);

/* Returns a short fixed name for an error (either sign), "unknown" if out of range. */
const char *nfdec_err_name(int err);

#endif
