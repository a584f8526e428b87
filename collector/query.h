/* query.h: the query engine. Owns the request and result model, the parsers for the
 * query vocabulary shared by every front end (statistic elements, aggregation fields,
 * orders, time windows), and the scan that answers a request from a store: totals,
 * top N statistics (nfdump -s), aggregated flows (nfdump -A), flow listings, and time
 * series. It prints nothing and reads nothing but the store: tapflow-query, the
 * collector's HTTP API and tapflow-nfdump fill a struct query_req, call query_run()
 * and render the struct query_result (qout.h renders table, CSV and JSON).
 *
 * How a request runs:
 *   - the filter (filt.h) is compiled once; files, then blocks, whose zone maps cannot
 *     hold a match (time window, filt_zone_may_match) are skipped without inflating;
 *     the filter's columns are decoded and evaluated into a selection, and only then,
 *     if anything matched, the columns the tables need;
 *   - every table (one per -s statistic, or the -A / flow listing) aggregates into an
 *     open-addressing hash table (a tag byte per slot, entries inline) bounded by
 *     max_memory. When the distinct keys do not fit, a top N by flows, packets or bytes
 *     first gets bounds: one scan sums the order's values per hash bucket (an upper
 *     bound for every key of the bucket) and keeps the best partial sums of a few keys
 *     (a lower bound for the N-th best total); the exact scan then counts only keys
 *     whose bucket reaches that bound. Whatever still does not fit is hash-partitioned:
 *     P ranges of the hash, each pass keeping only the keys of its range, so every key
 *     is counted exactly, in one pass, with all its flows. Memory stays within
 *     max_memory (plus about 10 MB of decoding buffers per thread);
 *   - blocks are scanned on all cores: with one partition the threads share out the
 *     blocks (each its own tables, merged at the end); with several each thread owns a
 *     partition and reads every block. The rows never depend on the thread count or the
 *     memory: ties in every order are broken by the key, and unordered listings come in
 *     the order of a 64-bit hash of the key. (The scan figures, passes, partitions and
 *     mem_bytes, tell how an answer was found and may vary from run to run.)
 *
 * Semantics (checked against nfdump 1.7.1, see tests/integ/query_nfdump_parity.sh):
 *   - time window: a flow is in [from, to] when it lies wholly inside: first >= from and
 *     last <= to (nfdump -t). QUERY_WIN_OVERLAP and QUERY_WIN_FIRST offer the others;
 *   - -s ip / -s port count a flow once for its source and once for its destination,
 *     also when the two are equal; percentages are of the matched totals;
 *   - bps, pps and bpp of a row are integers: bytes * 8 / seconds, packets / seconds
 *     (seconds = (last - first) / 1000, 0 when the row lasts no time), bytes / packets;
 *   - -s record aggregates on the -A fields, or on nfdump's 5-tuple (proto, srcip,
 *     srcport, dstip, dstport) when there are none;
 *   - series: a flow's flows, packets and bytes all go to the bucket of its first-seen
 *     time (buckets are aligned to multiples of the interval since the Unix epoch).
 */
#ifndef TF_QUERY_H
#define TF_QUERY_H

#include <stddef.h>
#include <stdint.h>

#include "filt.h"
#include "flowrec.h"
#include "store.h"

#define QUERY_MAX_FIELDS 12             /* key fields in one -A */
#define QUERY_MAX_TABLES 16             /* -s statistics in one request */
#define QUERY_MASK_FLOW 255             /* srcnet/dstnet: use the flow's own mask */
#define QUERY_DEFAULT_MEMORY (256ull << 20)
#define QUERY_MAX_PARTITIONS 4096
#define QUERY_MAX_POINTS 1000000        /* points in one time series */
#define QUERY_ERR_LEN 256
#define QUERY_MAX_ARGS 4096             /* tapflow-query's command line, words */
#define QUERY_MAX_FILTER (64 * 1024)    /* a filter file, bytes */
#define QUERY_GROUPS_UNKNOWN UINT64_MAX

/* Key fields: what a statistic counts by, or what -A aggregates on. */
enum query_field {
	QF_SRCIP, QF_DSTIP,
	QF_IP,          /* either address: a flow counts for both (statistics only) */
	QF_SRCPORT, QF_DSTPORT,
	QF_PORT,        /* either port (statistics only) */
	QF_PROTO, QF_TOS, QF_INIF, QF_OUTIF, QF_SRCAS, QF_DSTAS, QF_VLAN,
	QF_EXPORTER,    /* the exporting router's address (nfdump: router) */
	QF_SRCNET, QF_DSTNET,  /* address masked to a prefix (see struct query_key) */
	QF_IF,          /* either interface, input or output (statistics only) */
	QF_AS,          /* either AS, source or destination (statistics only) */
	QF__COUNT
};

/* One key field. mask4/mask6 apply to QF_SRCNET/QF_DSTNET only: the prefix length for
 * IPv4 (0..32) and IPv6 (0..128) addresses, or QUERY_MASK_FLOW in mask4 for the flow's
 * own src_mask/dst_mask (nfdump's srcnet; a mask of 0 keeps the whole address). */
struct query_key {
	uint8_t field;          /* enum query_field */
	uint8_t mask4, mask6;
};

enum query_order {
	QO_NONE,                /* hash order (deterministic, not meaningful) */
	QO_FLOWS, QO_PACKETS, QO_BYTES, QO_BPS, QO_PPS, QO_BPP,  /* descending */
	QO_TSTART, QO_TEND,     /* ascending */
	QO_DURATION,            /* descending */
	QO__COUNT
};

enum query_kind {
	QK_STAT,                /* top N values of one field (nfdump -s ELEM) */
	QK_AGGR,                /* flows aggregated on key fields (-A, -s record) */
	QK_FLOWS,               /* flows as stored, up to limit (listing) */
};

/* One table of the answer. */
struct query_table_req {
	uint8_t kind;           /* enum query_kind */
	uint8_t order;          /* enum query_order */
	uint8_t nkey;
	struct query_key key[QUERY_MAX_FIELDS];  /* QK_STAT: one; QK_AGGR: 1..12 */
	uint64_t limit;         /* rows wanted (top N); 0: all (QK_FLOWS needs one) */
	int series;             /* with req.series_s: a series for each row (QK_STAT) */
};

enum query_win_mode {
	QUERY_WIN_INSIDE,       /* first >= from and last <= to (nfdump -t) */
	QUERY_WIN_OVERLAP,      /* first <= to and last >= from */
	QUERY_WIN_FIRST,        /* from <= first <= to */
};

struct query_row;
struct query_table;

/* Receives rows as they are final. begin() is called once per table, in table order,
 * before its rows; then row() for each, in the table's order. Either may return
 * non-zero to stop the run (query_run() then returns -ECANCELED). */
struct query_sink {
	int (*begin)(void *arg, const struct query_table *t);
	int (*row)(void *arg, const struct query_table *t, const struct query_row *r);
	void *arg;
};

struct query_req {
	const char *path;               /* store directory, or one store file */
	const char *const *more_paths;  /* more of them, read with path as one store (their
					   files in time order); NULL if nmore is 0 */
	unsigned nmore;
	const char *filter;             /* nfdump syntax; NULL or "" matches all */
	filt_resolve_fn resolve;        /* host names in the filter: NULL refuses them */
	int has_window;
	struct store_window win;        /* Unix ms, inclusive */
	uint8_t win_mode;               /* enum query_win_mode */
	unsigned ntables;
	struct query_table_req table[QUERY_MAX_TABLES];
	uint64_t max_flows;             /* 0, or stop after this many matching flows, in
					   store order (nfdump -c); forces one thread */
	uint32_t series_s;              /* 0, or a series of totals with this bucket width */
	uint64_t max_memory;            /* bytes for tables and rows; 0: default */
	unsigned threads;               /* 0: one per online CPU */
	uint64_t deadline_ms;           /* 0, or CLOCK_MONOTONIC ms after which the run
					   stops with -ETIMEDOUT (checked per block) */
	/* Optional. Without a sink rows are kept in the result (within max_memory); with
	 * one they are streamed to it and not kept, so listings of any size work. */
	const struct query_sink *sink;
	/* Optional: a directory for sorted runs of an ordered list (top N, -O) too long
	 * for a quarter of max_memory, merged as its rows go out. NULL: such a list is
	 * refused (-E2BIG) instead. */
	const char *spill_dir;
	/* Optional: told about files and blocks that could not be read (skipped). */
	void (*warn)(const char *path, int err, const char *what, void *arg);
	void *warn_arg;
};

/* One row. Key fields are set in f as for a flow (QF_SRCIP in f.src, QF_SRCNET in
 * f.src masked with f.src_mask, QF_IP in f.src, QF_PORT in f.sport, QF_IF in f.in_if,
 * QF_AS in f.src_as, QF_EXPORTER in
 * f.exporter, ...), the rest zero; f.packets, f.bytes are sums, f.first_ms the earliest
 * first, f.last_ms the latest last. QK_FLOWS rows are the stored flows. */
struct query_point {
	uint64_t t_ms;                  /* bucket start */
	uint64_t flows, packets, bytes;
};

struct query_row {
	struct flow_rec f;
	uint64_t flows;
	uint64_t npoints;               /* the row's series (table_req.series), else 0 */
	struct query_point *points;     /* owned by the result (NULL when streamed) */
};

struct query_table {
	struct query_table_req req;
	unsigned index;
	uint64_t groups;                /* distinct keys seen (QK_FLOWS: matched flows), or
					   QUERY_GROUPS_UNKNOWN when the top N was found
					   without counting every key */
	uint64_t nrows;                 /* rows delivered */
	struct query_row *rows;         /* kept rows (no sink), owned by the result */
	/* matched totals, for percentages */
	uint64_t flows, packets, bytes;
};

struct query_summary {
	uint64_t flows, packets, bytes;         /* flows that matched */
	uint64_t first_ms, last_ms;             /* earliest first, latest last; 0 if none */
	uint64_t files, files_skipped, bad_files;
	uint64_t blocks, blocks_skipped, bad_blocks;
	uint64_t flows_scanned;                 /* records in the blocks decoded */
	uint64_t tail_bytes;                    /* incomplete data at file ends */
	uint32_t passes;                        /* scans of the store (partitions, series) */
	uint32_t partitions;
	uint32_t threads;
	int limited;                            /* max_flows stopped the scan */
	uint64_t mem_bytes;                     /* peak bytes in tables and rows */
};

struct query_result {
	struct query_summary sum;
	unsigned ntables;
	struct query_table table[QUERY_MAX_TABLES];
	uint32_t series_s;
	uint64_t npoints;                       /* totals series, gaps filled with zeros */
	struct query_point *points;
	char err[QUERY_ERR_LEN];                /* why query_run() failed */
	long err_pos;                           /* bad filter: byte offset of the token in
						   rq->filter; else -1 */
};

/* Fills *rq with defaults for path: no filter, no window, no tables, default memory,
 * all cores. */
void query_req_init(struct query_req *rq, const char *path);
/* Where a command line query spills (rq->spill_dir): $TMPDIR, else /tmp. */
const char *query_tmpdir(void);

/* Answers rq into *res (which the caller owns; free with query_result_free(), also
 * after a failure). Returns 0; -EINVAL bad request or filter (res->err says which
 * token), -ENOENT/-EILSEQ etc. for a path that is not a readable store, -E2BIG when
 * the answer cannot be given within max_memory (res->err says what to change),
 * -ENOMEM, -ETIMEDOUT past rq->deadline_ms, -ECANCELED when the sink stopped it.
 * Damaged files and blocks are skipped, counted in res->sum and reported through
 * rq->warn; they are not errors. */
int query_run(const struct query_req *rq, struct query_result *res);
void query_result_free(struct query_result *res);

/* Rates of a row (or of any totals): bps = bytes * 8000 / ms, pps = packets * 1000 / ms
 * (0 when ms is 0), bpp = bytes / packets (0 without packets), as nfdump prints them. */
void query_rates(uint64_t packets, uint64_t bytes, uint64_t ms, uint64_t *bps, uint64_t *pps,
		 uint64_t *bpp);

/* ---- the query vocabulary (front ends share these) ---- */

/* Parses "ELEM[/ORDER[/ORDER...]]" (nfdump -s): ELEM one of srcip dstip ip srcport
 * dstport port proto tos inif outif if srcas dstas as vlan exporter (router) srcnet
 * dstnet srcnet/N4[/N6] (prefix lengths; numbers cannot be orders) record; ORDER one of flows
 * packets bytes bps pps bpp (default flows). Appends one table per order to rq (record
 * uses aggr[0..naggr) or the 5-tuple), each with limit top_n. Returns 0, or -1 with a
 * message in err. */
int query_parse_stat(const char *s, const struct query_key *aggr, unsigned naggr,
		     uint64_t top_n, struct query_req *rq, char *err, size_t errlen);

/* Parses "field,field,..." (nfdump -A): srcip dstip srcport dstport proto tos inif
 * outif srcas dstas vlan exporter srcnet dstnet, srcnet/N4[/N6], and nfdump's
 * srcip4/N, srcip6/N, dstip4/N, dstip6/N (masks one family, the other kept whole).
 * Fills key[0..*n). Returns 0, or -1 with a message in err. */
int query_parse_aggr(const char *s, struct query_key *key, unsigned *n, char *err,
		     size_t errlen);

/* Parses an order name (flows packets bytes bps pps bpp tstart tend duration, also
 * nfdump's ipkg/ibyte/ipps/ibps/ibpp spellings). Returns enum query_order or -1. */
int query_parse_order(const char *s);

/* Parses a time window (nfdump -t) against the current time now_ms:
 *   YYYY/MM/DD[.hh[:mm[:ss]]][-YYYY/MM/DD[.hh[:mm[:ss]]]]  local time, as nfdump
 *   ISO 8601 YYYY-MM-DD[Thh[:mm[:ss[.fff]]]][Z|+hh:mm|-hh:mm], a pair joined by '-'
 *   -N{s|m|h|d|w}    the last N units, up to now (e.g. -1h, -30m, -2d)
 *   -N{..}--M{..}    from N units ago to M units ago
 * A start alone runs to the end of time; an end is the exact instant (a flow ending
 * later in that second is outside, as nfdump). Returns 0, or -1 with a message. */
int query_parse_time(const char *s, uint64_t now_ms, struct store_window *w, char *err,
		     size_t errlen);

/* Names for output: "srcip", "bytes", ... ; "?" for an unknown value. */
const char *query_field_name(int field);
const char *query_order_name(int order);
/* Column title as nfdump prints it ("Src IP Addr", "Dst Port", ...). */
const char *query_field_title(int field);

/* Writes the value of key field k of row r as text ("192.0.2.1", "10.0.0.0/8", "443",
 * "6", ...) into buf; returns buf. */
char *query_key_str(const struct query_key *k, const struct query_row *r, char *buf,
		    size_t len);

/* ---- tapflow-query's command line, shared by its local and remote modes ---- */

struct opt_def;

/* Options first (as defs knows them, with their arguments), then "--" and the other
 * words: nfdump (GNU getopt) lets options and filter words mix, and opt_parse stops at
 * the first word that is not an option. out holds argc + 2 pointers (NULL-terminated).
 * Sets *n_given when -n/--top is on the command line. Returns the new argc. */
int query_args_reorder(const struct opt_def *defs, int argc, char **argv, char **out,
		       int *n_given);

/* Reads a filter file (-f): '#' comments removed, line breaks and tabs made spaces.
 * NULL after a message on stderr (cannot read it, or over QUERY_MAX_FILTER bytes). */
char *query_filter_file(const char *path);

/* The filter of a command line: its n trailing words joined by spaces, else file's
 * contents (-f, may be NULL), else none (*filter NULL). Words and a file: the words
 * win, with a warning. Returns 0, or -1 after a message on stderr. */
int query_filter_cli(char *const *words, int n, const char *file, char **filter);

#endif
