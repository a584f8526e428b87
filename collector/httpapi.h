/* httpapi.h: the collector's HTTP API (libmicrohttpd). Owns the server, bearer-token
 * auth, the parser of query requests (untrusted input), the limits on what a query may
 * cost, and the statistics snapshot that the decode thread publishes and the API reads.
 *
 * Endpoints (GET or HEAD; JSON unless said otherwise):
 *   /api/v1/query?PARAMS  query_run() over the collector's store, rendered exactly as
 *                         `tapflow-query -R DIR` renders the same request (qout.h);
 *                         PARAMS mirror tapflow-query's options (httpapi_parse_query)
 *   /api/v1/status        version, uptime, store, listening addresses, counters
 *   /api/v1/exporters     per-exporter counters (nfdec.h), with their domains
 *   /metrics              Prometheus text exposition format 0.0.4, tapflow_* names
 * Errors are {"error":"..."}: 400 bad request, 401 no or wrong token (with
 * WWW-Authenticate), 404, 405, 413 result over the row or byte cap (or a query over its
 * memory), 414 URL too long, 503 too many queries at once (Retry-After), 504 a query
 * ran past its time limit, 500 anything else.
 *
 * Threads: libmicrohttpd runs one internal polling thread; a query runs on a thread of
 * its own (at most max_queries at once) while its connection is suspended, so status
 * and metrics are answered while queries run. The decode thread calls
 * httpapi_publish() once a second, and sooner when a request finds the snapshot older
 * than snapshot_max_age_ms and asks for a fresh one (httpapi_wants_snapshot(), waited
 * for at most 300 ms); requests read the snapshot under a mutex.
 */
#ifndef TF_HTTPAPI_H
#define TF_HTTPAPI_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "nfdec.h"
#include "query.h"
#include "store.h"
#include "udprx.h"

#define HTTPAPI_DEFAULT_PORT 9996
#define HTTPAPI_DEFAULT_PORT_STR "9996"
#define HTTPAPI_MAX_URL 16384           /* request target, bytes (414 past it) */
#define HTTPAPI_MAX_FILTER 8192         /* decoded filter, bytes */
#define HTTPAPI_MAX_TOKEN 256
#define HTTPAPI_ERR_LEN 512

/* What one query may cost. Zeros in a cfg given to httpapi_start mean the defaults. */
struct httpapi_limits {
	uint32_t timeout_ms;            /* query run time (504 past it); default 30000 */
	uint64_t max_memory;            /* query_req.max_memory and the most a request
					   may ask; default QUERY_DEFAULT_MEMORY */
	uint64_t max_rows;              /* rows in an answer, all tables; default 100000 */
	uint64_t max_body;              /* bytes of a rendered answer; default 16 MiB */
	uint32_t max_queries;           /* running at once (503 past it); default 2 */
	uint32_t threads;               /* most threads a query uses; 0: one per CPU */
};

struct httpapi_cfg {
	const char *listen;             /* "ADDR:PORT", "[ADDR]:PORT", ":PORT", "PORT" */
	const char *token;              /* NULL or "": no auth (loopback only) */
	const char *store_dir;          /* the store queries read */
	const char *udp_listen;         /* for /status: where flows arrive ("[::]:9995") */
	struct httpapi_limits lim;
	uint32_t snapshot_max_age_ms;   /* older statistics are refreshed on demand; 0:
					   1500 (the decode thread publishes every second) */
};

/* Output formats, as tapflow-query -o. */
enum httpapi_fmt { HTTPAPI_FMT_TABLE, HTTPAPI_FMT_CSV, HTTPAPI_FMT_JSON };

/* A parsed /api/v1/query request. rq.path and rq.filter point into this struct or at
 * the store_dir given to the parser; it is self-contained otherwise (no allocation). */
struct httpapi_query {
	struct query_req rq;
	int fmt;                        /* enum httpapi_fmt */
	int plain;                      /* whole numbers in tables (-N) */
	char filter[HTTPAPI_MAX_FILTER];
};

struct httpapi;

/* Parses a listen address: "ADDR:PORT", "[IPV6]:PORT", ":PORT" or "PORT" (127.0.0.1),
 * ADDR numeric or "localhost"; "on" is 127.0.0.1:9996. Fills *ss, *sslen and *loopback (1 when every address it
 * binds is a loopback one). Returns 0, or -EINVAL with a message in err. */
int httpapi_parse_listen(const char *s, struct sockaddr_storage *ss, socklen_t *sslen,
			 int *loopback, char *err, size_t errlen);

/* Parses the query string qs[0..len) of /api/v1/query (no '?'; percent-decoded here,
 * '+' is a space) into *q for the store store_dir (kept as a pointer), with relative
 * windows taken against now_ms, within lim's memory and threads. Parameters, each
 * tapflow-query's option of the same meaning (numbers are plain decimals):
 *   filter=EXPR (FILTER)  window=T (-t)  window_mode=inside|overlap|first (--window)
 *   stat=ELEM[/ORDER] (-s, repeatable)  top=N (-n)  aggr=F,F (-A)  order=O (-O)
 *   limit=N (-c)  max_flows=N (--max-flows)  series=SECS (--series)
 *   format=table|csv|json (-o; default json)  plain=1|0 (-N)
 *   max_memory=BYTES (--max-memory, at most lim->max_memory)  threads=N (--threads)
 * The request is built as tapflow-query builds it, so the answers are the same.
 * Unknown, repeated or empty-named parameters, bad numbers, bad filters (with the
 * token's byte offset), bad windows and bad elements are errors. Returns 0, or -EINVAL
 * with a message in err (and *err_pos set to the filter offset, else -1). */
int httpapi_parse_query(const char *qs, size_t len, const char *store_dir, uint64_t now_ms,
			const struct httpapi_limits *lim, struct httpapi_query *q, char *err,
			size_t errlen, long *err_pos);

/* 1 if the Authorization header value hdr (may be NULL) carries "Bearer <token>"
 * (scheme case-insensitive), else 0. The token comparison takes the same time wherever
 * the first difference is. token must be non-empty. */
int httpapi_auth_ok(const char *token, const char *hdr);

/* Starts the server. Refuses (NULL, message in err) a listen address beyond loopback
 * without a token, a token with characters outside RFC 6750's b64token, or a port that
 * cannot be bound. cfg's strings are copied. Stop with httpapi_stop(). */
struct httpapi *httpapi_start(const struct httpapi_cfg *cfg, char *err, size_t errlen);

/* The port actually bound (useful with port 0), or 0. */
uint16_t httpapi_port(const struct httpapi *api);

/* "ADDR:PORT" ("[ADDR]:PORT" for IPv6) as bound; owned by api. */
const char *httpapi_address(const struct httpapi *api);

/* Lets running queries finish (each within its time limit), closes every connection
 * and frees api. NULL is fine. */
void httpapi_stop(struct httpapi *api);

/* 1 when a request waits for a fresher snapshot than the last published one. Cheap:
 * the decode thread may call it every loop. */
int httpapi_wants_snapshot(struct httpapi *api);

/* Decode thread: copies the counters of rx (read under rx->mu), dec and ws into a new
 * snapshot and makes it current. store_dropped adds records lost to write errors.
 * Returns 0 or -ENOMEM (the previous snapshot stays). */
int httpapi_publish(struct httpapi *api, struct udprx *rx, const struct nfdec *dec,
		    const struct store_writer_stats *ws, uint64_t now_ms);

#endif
