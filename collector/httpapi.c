/* httpapi.c: see httpapi.h. Sections: small text helpers, listen addresses, the query
 * request parser, auth, the statistics snapshot, the status/exporters/metrics
 * renderers, queries on their own threads, and the libmicrohttpd glue. */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "addr.h"
#include "filt.h"
#include "httpapi.h"
#include "log.h"
#include "qout.h"
#include "sys.h"

#ifndef TF_VERSION
#define TF_VERSION "unknown"
#endif

#define DEF_TIMEOUT_MS 30000
#define DEF_MEMORY QUERY_DEFAULT_MEMORY  /* as tapflow-query: the same answers */
#define DEF_ROWS 100000
#define DEF_BODY (16ull << 20)
#define DEF_QUERIES 2
#define MAX_QUERIES 64
#define CONN_LIMIT 64           /* open connections (each holds a little memory) */
#define CONN_PER_IP 16
#define CONN_TIMEOUT_S 30       /* idle keep-alive connections close */
#define CONN_MEMORY (32u << 10) /* request line and headers; MHD answers 431/414 past it */
#define SNAP_WAIT_MS 300        /* how long a request waits for a fresh snapshot */
#define SNAP_MAX_AGE_MS 1500    /* older than this (the decode thread publishes every
				   second), a request asks for a fresh one */
#define QUERY_NICE 10

static uint64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* ---- text helpers ---- */

/* Writes s as the body of a JSON string (no quotes): control bytes escaped. */
static void json_str(FILE *f, const char *s)
{
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\')
			fprintf(f, "\\%c", c);
		else if (c == '\n')
			fputs("\\n", f);
		else if (c == '\t')
			fputs("\\t", f);
		else if (c < 0x20 || c == 0x7f)
			fprintf(f, "\\u%04x", c);
		else
			fputc(c, f);
	}
}

/* A label value for the Prometheus text format: \, " and newline escaped. */
static void prom_label(FILE *f, const char *s)
{
	for (; *s; s++) {
		if (*s == '\\' || *s == '"')
			fprintf(f, "\\%c", *s);
		else if (*s == '\n')
			fputs("\\n", f);
		else
			fputc(*s, f);
	}
}


/* ---- listen addresses ---- */

static int port_num(const char *s, uint16_t *port)
{
	char *end;
	if (!*s || strspn(s, "0123456789") != strlen(s))
		return -1;
	errno = 0;
	unsigned long v = strtoul(s, &end, 10);
	if (errno || v > 65535)
		return -1;
	*port = (uint16_t)v;
	return 0;
}

int httpapi_parse_listen(const char *s, struct sockaddr_storage *ss, socklen_t *sslen,
			 int *loopback, char *err, size_t errlen)
{
	char host[INET6_ADDRSTRLEN + 8];
	const char *ps;
	uint16_t port;

	memset(ss, 0, sizeof(*ss));
	if (!s || !*s)
		goto bad;
	if (!strcasecmp(s, "on") || !strcasecmp(s, "true") || !strcasecmp(s, "yes"))
		s = "127.0.0.1:" HTTPAPI_DEFAULT_PORT_STR;
	if (s[0] == '[') {
		const char *e = strchr(s, ']');
		if (!e || e[1] != ':' || (size_t)(e - s - 1) >= sizeof(host))
			goto bad;
		memcpy(host, s + 1, (size_t)(e - s - 1));
		host[e - s - 1] = 0;
		ps = e + 2;
	} else {
		const char *c = strrchr(s, ':');
		if (!c) {
			strcpy(host, "127.0.0.1");
			ps = s;
		} else {
			if (memchr(s, ':', (size_t)(c - s)) || (size_t)(c - s) >= sizeof(host))
				goto bad; /* bare IPv6 without brackets: ambiguous */
			memcpy(host, s, (size_t)(c - s));
			host[c - s] = 0;
			ps = c + 1;
			if (!host[0])
				strcpy(host, "127.0.0.1");
		}
	}
	if (port_num(ps, &port) < 0)
		goto bad;
	if (!strcmp(host, "localhost"))
		strcpy(host, "127.0.0.1");
	struct sockaddr_in *a4 = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;
	if (inet_pton(AF_INET, host, &a4->sin_addr) == 1) {
		a4->sin_family = AF_INET;
		a4->sin_port = htons(port);
		*sslen = sizeof(*a4);
		*loopback = (ntohl(a4->sin_addr.s_addr) >> 24) == 127;
		return 0;
	}
	if (inet_pton(AF_INET6, host, &a6->sin6_addr) == 1) {
		a6->sin6_family = AF_INET6;
		a6->sin6_port = htons(port);
		*sslen = sizeof(*a6);
		const uint8_t *b = a6->sin6_addr.s6_addr;
		*loopback = IN6_IS_ADDR_LOOPBACK(&a6->sin6_addr) ||
			    (IN6_IS_ADDR_V4MAPPED(&a6->sin6_addr) && b[12] == 127);
		return 0;
	}
bad:
	snprintf(err, errlen, "HTTP listen address '%s': use PORT, ADDR:PORT or [IPV6]:PORT "
		 "with a numeric address (e.g. 9996, 127.0.0.1:9996, [::1]:9996)", s ? s : "");
	return -EINVAL;
}

/* ---- the query request parser ---- */

enum { P_FILTER, P_WINDOW, P_WINDOW_MODE, P_STAT, P_TOP, P_AGGR, P_ORDER, P_LIMIT,
       P_MAX_FLOWS, P_SERIES, P_FORMAT, P_PLAIN, P_MAX_MEMORY, P_THREADS, P__COUNT };
static const char *const param_names[P__COUNT] = {
	"filter", "window", "window_mode", "stat", "top", "aggr", "order", "limit",
	"max_flows", "series", "format", "plain", "max_memory", "threads",
};

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Percent-decodes s[0..n) into out (room for n + 1) as a C string; '+' is a space.
 * Returns the length, or -1 for a bad escape or a NUL byte. */
static long pct_decode(const char *s, size_t n, char *out)
{
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (c == '+') {
			c = ' ';
		} else if (c == '%') {
			if (i + 2 >= n)
				return -1;
			int h = hexval(s[i + 1]), l = hexval(s[i + 2]);
			if (h < 0 || l < 0)
				return -1;
			c = (char)(h << 4 | l);
			i += 2;
		}
		if (!c)
			return -1;
		out[o++] = c;
	}
	out[o] = 0;
	return (long)o;
}

/* Parses a decimal count: digits only, no sign, no overflow. */
static int parse_count(const char *s, uint64_t max, uint64_t *v)
{
	uint64_t x = 0;
	if (!*s)
		return -1;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return -1;
		unsigned d = (unsigned)(*s - '0');
		if (x > (max - d) / 10)
			return -1;
		x = x * 10 + d;
	}
	*v = x;
	return 0;
}

struct pvals {
	const char *v[P__COUNT];
	const char *stat[QUERY_MAX_TABLES];
	unsigned nstat;
};

/* A count parameter within [0, max]; names the parameter in the message. */
static int count_param(const struct pvals *pv, int p, uint64_t max, uint64_t *v, char *err,
		       size_t errlen)
{
	if (!pv->v[p])
		return 0;
	if (parse_count(pv->v[p], max, v) < 0) {
		snprintf(err, errlen, "%s: '%.40s' is not a whole number from 0 to %" PRIu64,
			 param_names[p], pv->v[p], max);
		return -1;
	}
	return 1;
}

/* Builds the request from the parameters exactly as tapflow-query's build_req() does
 * from its options (query_main.c): the same defaults, tables, limits and refusals. */
static int build_req(const struct pvals *pv, uint64_t now_ms, const struct httpapi_limits *lim,
		     struct httpapi_query *q, char *err, size_t errlen)
{
	struct query_req *rq = &q->rq;
	struct query_key aggr[QUERY_MAX_FIELDS];
	unsigned naggr = 0;
	uint64_t top = 10, count = 0, max_flows = 0, series = 0, mem = 0, threads = 0;
	int order = QO_NONE, top_given;

	if (pv->v[P_FORMAT]) {
		const char *f = pv->v[P_FORMAT];
		if (!strcmp(f, "json"))
			q->fmt = HTTPAPI_FMT_JSON;
		else if (!strcmp(f, "csv"))
			q->fmt = HTTPAPI_FMT_CSV;
		else if (!strcmp(f, "table") || !strcmp(f, "line"))
			q->fmt = HTTPAPI_FMT_TABLE;
		else {
			snprintf(err, errlen, "format: '%.40s' is not table, csv or json", f);
			return -EINVAL;
		}
	}
	if (pv->v[P_PLAIN]) {
		const char *v = pv->v[P_PLAIN];
		if (!strcmp(v, "1") || !strcmp(v, "true"))
			q->plain = 1;
		else if (strcmp(v, "0") && strcmp(v, "false")) {
			snprintf(err, errlen, "plain: '%.40s' is not 1, 0, true or false", v);
			return -EINVAL;
		}
	}
	/* the same ranges as tapflow-query's option table */
	if ((top_given = count_param(pv, P_TOP, 100000000, &top, err, errlen)) < 0 ||
	    count_param(pv, P_LIMIT, 1000000000, &count, err, errlen) < 0 ||
	    count_param(pv, P_MAX_FLOWS, UINT32_MAX, &max_flows, err, errlen) < 0 ||
	    count_param(pv, P_SERIES, 366 * 86400, &series, err, errlen) < 0 ||
	    count_param(pv, P_MAX_MEMORY, UINT64_MAX, &mem, err, errlen) < 0 ||
	    count_param(pv, P_THREADS, 64, &threads, err, errlen) < 0)
		return -EINVAL;
	if (pv->v[P_MAX_MEMORY] && mem > lim->max_memory) {
		snprintf(err, errlen, "max_memory: %" PRIu64 " is over this server's limit of %"
			 PRIu64 " bytes (http_query_memory)", mem, lim->max_memory);
		return -EINVAL;
	}
	if (pv->v[P_AGGR] && query_parse_aggr(pv->v[P_AGGR], aggr, &naggr, err, errlen) < 0)
		return -EINVAL;
	if (pv->v[P_ORDER] && (order = query_parse_order(pv->v[P_ORDER])) < 0) {
		snprintf(err, errlen, "order: '%.40s' is unknown (tstart tend flows packets bytes "
			 "bps pps bpp duration)", pv->v[P_ORDER]);
		return -EINVAL;
	}
	if (pv->v[P_WINDOW]) {
		if (query_parse_time(pv->v[P_WINDOW], now_ms, &rq->win, err, errlen) < 0)
			return -EINVAL;
		rq->has_window = 1;
	}
	const char *wm = pv->v[P_WINDOW_MODE] ? pv->v[P_WINDOW_MODE] : "inside";
	if (!strcmp(wm, "inside"))
		rq->win_mode = QUERY_WIN_INSIDE;
	else if (!strcmp(wm, "overlap"))
		rq->win_mode = QUERY_WIN_OVERLAP;
	else if (!strcmp(wm, "first"))
		rq->win_mode = QUERY_WIN_FIRST;
	else {
		snprintf(err, errlen, "window_mode: '%.40s' is not inside, overlap or first", wm);
		return -EINVAL;
	}
	if (pv->nstat) {
		if (count) {
			snprintf(err, errlen, "limit (-c) limits listed flows or aggr groups; with "
				 "stat use top (-n)");
			return -EINVAL;
		}
		for (unsigned i = 0; i < pv->nstat; i++)
			if (query_parse_stat(pv->stat[i], aggr, naggr, top, rq, err, errlen) < 0)
				return -EINVAL;
		for (unsigned i = 0; i < rq->ntables && series; i++)
			rq->table[i].series = rq->table[i].limit != 0;
	} else if (naggr) {
		struct query_table_req *t = &rq->table[rq->ntables++];
		t->kind = QK_AGGR;
		t->order = (uint8_t)order;
		memcpy(t->key, aggr, naggr * sizeof(*aggr));
		t->nkey = (uint8_t)naggr;
		t->limit = count ? count : top_given ? top : 0;
	} else if (count) {
		struct query_table_req *t = &rq->table[rq->ntables++];
		t->kind = QK_FLOWS;
		t->order = (uint8_t)order;
		t->limit = count;
	} else if (pv->v[P_ORDER]) {
		snprintf(err, errlen, "order (-O) orders listed flows or groups: give limit (-c) "
			 "or aggr (-A)");
		return -EINVAL;
	}
	rq->series_s = (uint32_t)series;
	rq->max_flows = max_flows;
	rq->max_memory = pv->v[P_MAX_MEMORY] && mem ? mem : lim->max_memory;
	rq->threads = (unsigned)threads;
	if (lim->threads && (!rq->threads || rq->threads > lim->threads))
		rq->threads = lim->threads;
	return 0;
}

int httpapi_parse_query(const char *qs, size_t len, const char *store_dir, uint64_t now_ms,
			const struct httpapi_limits *lim, struct httpapi_query *q, char *err,
			size_t errlen, long *err_pos)
{
	char arena[HTTPAPI_MAX_URL + 2 * (P__COUNT + QUERY_MAX_TABLES)];
	size_t used = 0;
	struct pvals pv;

	memset(q, 0, sizeof(*q));
	memset(&pv, 0, sizeof(pv));
	query_req_init(&q->rq, store_dir);
	q->fmt = HTTPAPI_FMT_JSON;
	*err_pos = -1;
	if (len > HTTPAPI_MAX_URL) {
		snprintf(err, errlen, "query string longer than %d bytes", HTTPAPI_MAX_URL);
		return -EINVAL;
	}
	for (size_t i = 0; i < len;) {
		size_t end = i;
		while (end < len && qs[end] != '&')
			end++;
		if (end == i) { /* "a=1&&b=2": tolerated, as browsers do */
			i = end + 1;
			continue;
		}
		const char *eq = memchr(qs + i, '=', end - i);
		size_t klen = eq ? (size_t)(eq - (qs + i)) : end - i;
		char kbuf[48]; /* longer than any name, also percent-encoded */
		if (klen >= sizeof(kbuf)) {
			snprintf(err, errlen, "unknown parameter (a name of %zu bytes)", klen);
			return -EINVAL;
		}
		long kl = pct_decode(qs + i, klen, kbuf);
		if (kl < 0) {
			snprintf(err, errlen, "bad percent-encoding in a parameter name");
			return -EINVAL;
		}
		int p;
		for (p = 0; p < P__COUNT; p++)
			if (!strcmp(kbuf, param_names[p]))
				break;
		if (p == P__COUNT) {
			if (kl == 0)
				snprintf(err, errlen, "a parameter without a name");
			else
				snprintf(err, errlen, "unknown parameter '%.40s' (filter window "
					 "window_mode stat top aggr order limit max_flows series format "
					 "plain max_memory threads)", kbuf);
			return -EINVAL;
		}
		if (!eq) {
			snprintf(err, errlen, "parameter '%s' needs a value (%s=...)",
				 param_names[p], param_names[p]);
			return -EINVAL;
		}
		size_t vlen = end - (size_t)(eq + 1 - qs);
		char *val = arena + used;
		long vl = pct_decode(eq + 1, vlen, val);
		if (vl < 0) {
			snprintf(err, errlen, "%s: bad percent-encoding or NUL byte", param_names[p]);
			return -EINVAL;
		}
		used += (size_t)vl + 1;
		if (p == P_STAT) {
			if (pv.nstat == QUERY_MAX_TABLES) {
				snprintf(err, errlen, "at most %d stat parameters", QUERY_MAX_TABLES);
				return -EINVAL;
			}
			pv.stat[pv.nstat++] = val;
		} else {
			if (pv.v[p]) {
				snprintf(err, errlen, "parameter '%s' given twice", param_names[p]);
				return -EINVAL;
			}
			pv.v[p] = val;
		}
		i = end + 1;
	}
	if (pv.v[P_FILTER]) {
		size_t fl = strlen(pv.v[P_FILTER]);
		if (fl >= sizeof(q->filter)) {
			snprintf(err, errlen, "filter longer than %d bytes", HTTPAPI_MAX_FILTER - 1);
			return -EINVAL;
		}
		memcpy(q->filter, pv.v[P_FILTER], fl + 1);
		/* compiled here too, for the error's position; query_run compiles it again */
		char ferr[QUERY_ERR_LEN];
		size_t pos = 0;
		struct filt *f = filt_compile(q->filter, ferr, sizeof(ferr), &pos);
		if (!f) {
			snprintf(err, errlen, "filter: %s", ferr);
			*err_pos = (long)pos;
			return -EINVAL;
		}
		filt_free(f);
		q->rq.filter = q->filter;
	}
	return build_req(&pv, now_ms, lim, q, err, errlen);
}

/* ---- auth ---- */

int httpapi_auth_ok(const char *token, const char *hdr)
{
	size_t tl = strlen(token);
	if (!hdr || strncasecmp(hdr, "Bearer ", 7))
		return 0;
	const char *p = hdr + 7;
	while (*p == ' ')
		p++;
	size_t pl = strlen(p);
	while (pl && p[pl - 1] == ' ')
		pl--;
	/* every byte of the expected token is looked at, whatever the input */
	volatile unsigned char diff = (unsigned char)(pl != tl);
	for (size_t i = 0; i < tl; i++) {
		unsigned char c = i < pl ? (unsigned char)p[i] : 0;
		diff |= (unsigned char)(c ^ (unsigned char)token[i]);
	}
	return diff == 0;
}

/* RFC 6750 b64token: what may follow "Bearer " without quoting. */
static int token_chars_ok(const char *t)
{
	static const char extra[] = "-._~+/=";
	for (; *t; t++)
		if (!((*t >= 'a' && *t <= 'z') || (*t >= 'A' && *t <= 'Z') ||
		      (*t >= '0' && *t <= '9') || strchr(extra, *t)))
			return 0;
	return 1;
}

/* ---- statistics snapshot ---- */

struct snap_exp {
	struct nfdec_exporter_stats e;
	size_t ndom;
	const struct nfdec_domain_stats *dom;
};

struct snap {
	uint64_t seq;
	uint64_t taken_ms;
	uint64_t mono_ms;               /* when it was published */
	uint64_t rx_datagrams, rx_bytes, rx_denied, rx_queue_full, rx_kernel_drops;
	uint32_t rcvbuf;
	struct nfdec_stats dec;
	struct store_writer_stats ws;
	size_t nexp;
	struct snap_exp *exp;
	struct nfdec_domain_stats *doms;
};

static void snap_free(struct snap *s)
{
	if (!s)
		return;
	free(s->exp);
	free(s->doms);
	free(s);
}

/* ---- the server ---- */

struct api_counters {
	uint64_t requests, queries, bad_requests, unauthorized, busy, timeouts, too_large,
		 query_errors;
};

struct httpapi {
	struct MHD_Daemon *d;
	char *listen, *token, *store_dir, *udp_listen;
	struct httpapi_limits lim;
	uint16_t port;
	uint64_t started_wall_ms, started_mono_ms;
	pthread_mutex_t mu;             /* guards everything below, and hreq results */
	pthread_cond_t cv;              /* a snapshot was published */
	struct snap *snap;
	uint64_t seq;
	uint32_t snap_max_age_ms;
	atomic_int want;                /* a request waits for a fresh snapshot */
	struct api_counters n;
	unsigned running;               /* queries not yet answered (the limit) */
	unsigned alive;                 /* query threads not yet past their resume */
	int stopping;
};

int httpapi_wants_snapshot(struct httpapi *api)
{
	return api && atomic_load_explicit(&api->want, memory_order_relaxed);
}

int httpapi_publish(struct httpapi *api, struct udprx *rx, const struct nfdec *dec,
		    const struct store_writer_stats *ws, uint64_t now_ms)
{
	struct snap *s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->taken_ms = now_ms;
	pthread_mutex_lock(&rx->mu); /* the receiver counts under it */
	s->rx_datagrams = rx->datagrams;
	s->rx_bytes = rx->bytes;
	s->rx_denied = rx->denied;
	s->rx_queue_full = rx->queue_full;
	s->rx_kernel_drops = rx->kernel_drops;
	s->rcvbuf = rx->rcvbuf;
	pthread_mutex_unlock(&rx->mu);
	nfdec_stats(dec, &s->dec);
	if (ws)
		s->ws = *ws;
	s->nexp = nfdec_exporter_count(dec);
	size_t ndom = 0;
	for (size_t i = 0; i < s->nexp; i++)
		ndom += nfdec_domain_count(dec, i);
	s->exp = calloc(s->nexp ? s->nexp : 1, sizeof(*s->exp));
	s->doms = calloc(ndom ? ndom : 1, sizeof(*s->doms));
	if (!s->exp || !s->doms) {
		snap_free(s);
		return -ENOMEM;
	}
	size_t k = 0;
	for (size_t i = 0; i < s->nexp; i++) {
		s->exp[i].e = *nfdec_exporter(dec, i);
		s->exp[i].ndom = nfdec_domain_count(dec, i);
		s->exp[i].dom = s->doms + k;
		for (size_t j = 0; j < s->exp[i].ndom; j++)
			s->doms[k++] = *nfdec_domain(dec, i, j);
	}
	s->mono_ms = mono_ms();
	pthread_mutex_lock(&api->mu);
	struct snap *old = api->snap;
	s->seq = ++api->seq;
	api->snap = s;
	atomic_store_explicit(&api->want, 0, memory_order_relaxed);
	pthread_cond_broadcast(&api->cv);
	pthread_mutex_unlock(&api->mu);
	snap_free(old);
	return 0;
}

/* With api->mu held: if the snapshot is older than the decode thread's period (it is
 * stalled, or starting), asks for a new one and waits a little for it; answers from
 * what there is either way. The internal thread never waits long. */
static void fresh_snapshot(struct httpapi *api)
{
	uint64_t seq = api->seq;
	if (api->snap && mono_ms() - api->snap->mono_ms <= api->snap_max_age_ms)
		return;
	struct timespec dl;
	clock_gettime(CLOCK_MONOTONIC, &dl);
	dl.tv_nsec += SNAP_WAIT_MS * 1000000L;
	dl.tv_sec += dl.tv_nsec / 1000000000L;
	dl.tv_nsec %= 1000000000L;
	atomic_store_explicit(&api->want, 1, memory_order_relaxed);
	while (api->seq == seq && !api->stopping)
		if (pthread_cond_timedwait(&api->cv, &api->mu, &dl) == ETIMEDOUT)
			break;
}

static uint64_t sum_errs(const uint64_t *e)
{
	uint64_t t = 0;
	for (int i = 1; i < NFDEC_E__COUNT; i++)
		t += e[i];
	return t;
}

/* Counts files and bytes in the store (outside the lock: it walks directories). */
static void store_usage(const char *dir, uint64_t *files, uint64_t *bytes)
{
	struct store_list l;
	*files = *bytes = 0;
	if (store_list_files(dir, &l) < 0)
		return;
	for (size_t i = 0; i < l.n; i++) {
		struct stat sb;
		if (stat(l.v[i].path, &sb) == 0)
			*bytes += (uint64_t)sb.st_size;
	}
	*files = l.n;
	store_list_free(&l);
}

/* Renders with api->mu held. */
static void render_status(struct httpapi *api, FILE *f, uint64_t files, uint64_t bytes)
{
	static const struct snap zero;
	const struct snap *s = api->snap ? api->snap : &zero;
	uint64_t now = mono_ms();
	char t1[40], t2[40];

	fprintf(f, "{\"version\":\"");
	json_str(f, TF_VERSION);
	fprintf(f, "\",\"uptime_s\":%" PRIu64 ",\"started\":\"%s\",\"snapshot\":\"%s\","
		"\"snapshot_ms\":%" PRIu64, (now - api->started_mono_ms) / 1000,
		store_time_str(api->started_wall_ms, t1, sizeof(t1)),
		s->taken_ms ? store_time_str(s->taken_ms, t2, sizeof(t2)) : "", s->taken_ms);
	fprintf(f, ",\"store\":{\"dir\":\"");
	json_str(f, api->store_dir);
	fprintf(f, "\",\"files\":%" PRIu64 ",\"bytes\":%" PRIu64 ",\"records\":%" PRIu64
		",\"blocks\":%" PRIu64 ",\"bytes_written\":%" PRIu64 ",\"files_opened\":%" PRIu64
		",\"files_closed\":%" PRIu64 ",\"recovered_files\":%" PRIu64 ",\"dropped\":%"
		PRIu64 "}", files, bytes, s->ws.records, s->ws.blocks, s->ws.file_bytes,
		s->ws.files_opened, s->ws.files_closed, s->ws.recovered_files,
		s->ws.dropped);
	fprintf(f, ",\"listen\":{\"udp\":\"");
	json_str(f, api->udp_listen);
	fprintf(f, "\",\"http\":\"");
	json_str(f, api->listen);
	fprintf(f, "\",\"auth\":%s}", api->token ? "true" : "false");
	fprintf(f, ",\"receive\":{\"datagrams\":%" PRIu64 ",\"bytes\":%" PRIu64 ",\"denied\":%"
		PRIu64 ",\"socket_drops\":%" PRIu64 ",\"rcvbuf\":%u}", s->rx_datagrams, s->rx_bytes,
		s->rx_denied, s->rx_kernel_drops, s->rcvbuf);
	fprintf(f, ",\"queue\":{\"drops\":%" PRIu64 "}", s->rx_queue_full);
	const struct nfdec_stats *d = &s->dec;
	fprintf(f, ",\"decode\":{\"datagrams\":%" PRIu64 ",\"records\":%" PRIu64
		",\"options_records\":%" PRIu64 ",\"errors\":%" PRIu64 ",\"errors_by_reason\":{",
		d->datagrams, d->records, d->options_records, sum_errs(d->errors));
	for (int i = 1; i < NFDEC_E__COUNT; i++)
		fprintf(f, "%s\"%s\":%" PRIu64, i > 1 ? "," : "", nfdec_err_name(i), d->errors[i]);
	fprintf(f, "},\"exporters\":%" PRIu64 ",\"templates\":%" PRIu64 ",\"template_evictions\":%"
		PRIu64 ",\"notemplate_sets\":%" PRIu64 ",\"notemplate_decoded_sets\":%" PRIu64
		",\"notemplate_dropped_sets\":%" PRIu64 ",\"notemplate_dropped_bytes\":%" PRIu64
		",\"pending_sets\":%" PRIu64 ",\"pending_bytes\":%" PRIu64 "}", d->exporters,
		d->templates, d->template_evictions, d->notpl_sets, d->notpl_decoded_sets,
		d->notpl_dropped_sets, d->notpl_dropped_bytes, d->pending_sets, d->pending_bytes);
	const struct api_counters *n = &api->n;
	fprintf(f, ",\"http\":{\"requests\":%" PRIu64 ",\"queries\":%" PRIu64 ",\"running\":%u"
		",\"bad_requests\":%" PRIu64 ",\"unauthorized\":%" PRIu64 ",\"busy\":%" PRIu64
		",\"timeouts\":%" PRIu64 ",\"too_large\":%" PRIu64 ",\"query_errors\":%" PRIu64
		",\"limits\":{\"timeout_ms\":%u,\"max_memory\":%" PRIu64 ",\"max_rows\":%" PRIu64
		",\"max_body\":%" PRIu64 ",\"max_queries\":%u}}}\n", n->requests, n->queries,
		api->running, n->bad_requests, n->unauthorized, n->busy, n->timeouts, n->too_large,
		n->query_errors, api->lim.timeout_ms, api->lim.max_memory, api->lim.max_rows,
		api->lim.max_body, api->lim.max_queries);
}

static void render_exporters(struct httpapi *api, FILE *f)
{
	static const struct snap zero;
	const struct snap *s = api->snap ? api->snap : &zero;
	char a[64], t[40];

	fprintf(f, "{\"snapshot\":\"%s\",\"snapshot_ms\":%" PRIu64 ",\"exporters\":[",
		s->taken_ms ? store_time_str(s->taken_ms, t, sizeof(t)) : "", s->taken_ms);
	for (size_t i = 0; i < s->nexp; i++) {
		const struct nfdec_exporter_stats *e = &s->exp[i].e;
		uint64_t gaps = 0, lost = 0, back = 0;
		for (size_t j = 0; j < s->exp[i].ndom; j++) {
			gaps += s->exp[i].dom[j].seq_gaps;
			lost += s->exp[i].dom[j].seq_lost;
			back += s->exp[i].dom[j].seq_backward;
		}
		addr_str(e->addr, a, sizeof(a));
		fprintf(f, "%s{\"address\":\"%s\",\"datagrams\":%" PRIu64 ",\"records\":%" PRIu64
			",\"records_v5\":%" PRIu64 ",\"records_v9\":%" PRIu64 ",\"records_ipfix\":%"
			PRIu64 ",\"options_records\":%" PRIu64 ",\"sequence_gaps\":%" PRIu64
			",\"sequence_lost\":%" PRIu64 ",\"sequence_backward\":%" PRIu64
			",\"templates\":%" PRIu64 ",\"template_evictions\":%" PRIu64
			",\"count_mismatch\":%" PRIu64, i ? "," : "", a, e->datagrams, e->records,
			e->records_v5, e->records_v9, e->records_ipfix, e->options_records, gaps,
			lost, back, e->templates, e->template_evictions, e->count_mismatch);
		/* held now: every set that came before its template is held, decoded or
		 * dropped (nfdec.c pend_add) */
		uint64_t pending = e->notpl_sets - e->notpl_decoded_sets - e->notpl_dropped_sets;
		fprintf(f, ",\"notemplate_sets\":%" PRIu64 ",\"notemplate_decoded_sets\":%" PRIu64
			",\"notemplate_records\":%" PRIu64 ",\"notemplate_dropped_sets\":%" PRIu64
			",\"notemplate_dropped_bytes\":%" PRIu64 ",\"pending_sets\":%" PRIu64
			",\"decode_errors\":%" PRIu64 ",\"decode_errors_by_reason\":{",
			e->notpl_sets, e->notpl_decoded_sets, e->notpl_records, e->notpl_dropped_sets,
			e->notpl_dropped_bytes, pending, sum_errs(e->errors));
		for (int k = 1; k < NFDEC_E__COUNT; k++)
			fprintf(f, "%s\"%s\":%" PRIu64, k > 1 ? "," : "", nfdec_err_name(k),
				e->errors[k]);
		fprintf(f, "},\"domains\":[");
		for (size_t j = 0; j < s->exp[i].ndom; j++) {
			const struct nfdec_domain_stats *d = &s->exp[i].dom[j];
			fprintf(f, "%s{\"version\":%u,\"domain_id\":%u,\"datagrams\":%" PRIu64
				",\"records\":%" PRIu64 ",\"sequence_gaps\":%" PRIu64
				",\"sequence_lost\":%" PRIu64 ",\"sequence_backward\":%" PRIu64
				",\"sampling\":%u,\"sys_init_ms\":%" PRIu64 "}", j ? "," : "",
				d->version, d->domain_id, d->datagrams, d->records, d->seq_gaps,
				d->seq_lost, d->seq_backward, d->sampling, d->sys_init_ms);
		}
		fprintf(f, "]}");
	}
	fprintf(f, "]}\n");
}

static void prom_head(FILE *f, const char *name, const char *type, const char *help)
{
	fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void prom_one(FILE *f, const char *name, const char *type, const char *help,
		     uint64_t v)
{
	prom_head(f, name, type, help);
	fprintf(f, "%s %" PRIu64 "\n", name, v);
}

/* One family with a sample per exporter; off is the counter's offset in the stats. */
static void prom_exp(FILE *f, const struct snap *s, const char *name, const char *type,
		     const char *help, size_t off)
{
	char a[64];
	prom_head(f, name, type, help);
	for (size_t i = 0; i < s->nexp; i++) {
		uint64_t v;
		memcpy(&v, (const char *)&s->exp[i].e + off, sizeof(v));
		fprintf(f, "%s{exporter=\"", name);
		prom_label(f, addr_str(s->exp[i].e.addr, a, sizeof(a)));
		fprintf(f, "\"} %" PRIu64 "\n", v);
	}
}

/* Per (exporter, version, domain); off into struct nfdec_domain_stats (u64 or u32). */
static void prom_dom(FILE *f, const struct snap *s, const char *name, const char *type,
		     const char *help, size_t off, int is32)
{
	char a[64];
	prom_head(f, name, type, help);
	for (size_t i = 0; i < s->nexp; i++) {
		addr_str(s->exp[i].e.addr, a, sizeof(a));
		for (size_t j = 0; j < s->exp[i].ndom; j++) {
			const struct nfdec_domain_stats *d = &s->exp[i].dom[j];
			uint64_t v;
			if (is32) {
				uint32_t v32;
				memcpy(&v32, (const char *)d + off, sizeof(v32));
				v = v32;
			} else {
				memcpy(&v, (const char *)d + off, sizeof(v));
			}
			fprintf(f, "%s{exporter=\"", name);
			prom_label(f, a);
			fprintf(f, "\",version=\"%u\",domain=\"%u\"} %" PRIu64 "\n", d->version,
				d->domain_id, v);
		}
	}
}

#define EOFF(m) offsetof(struct nfdec_exporter_stats, m)
#define DOFF(m) offsetof(struct nfdec_domain_stats, m)

static void render_metrics(struct httpapi *api, FILE *f, uint64_t files, uint64_t bytes)
{
	static const struct snap zero;
	const struct snap *s = api->snap ? api->snap : &zero;
	const struct nfdec_stats *d = &s->dec;
	char a[64];

	prom_head(f, "tapflow_build_info", "gauge", "Version of tapflow-collector (always 1).");
	fprintf(f, "tapflow_build_info{version=\"");
	prom_label(f, TF_VERSION);
	fprintf(f, "\"} 1\n");
	prom_one(f, "tapflow_uptime_seconds", "gauge", "Seconds since the collector started.",
		 (mono_ms() - api->started_mono_ms) / 1000);
	prom_one(f, "tapflow_udp_datagrams_total", "counter", "Datagrams received.",
		 s->rx_datagrams);
	prom_one(f, "tapflow_udp_bytes_total", "counter", "Bytes of datagrams received.",
		 s->rx_bytes);
	prom_one(f, "tapflow_udp_denied_total", "counter",
		 "Datagrams from exporters not on the allow list.", s->rx_denied);
	prom_one(f, "tapflow_udp_socket_drops_total", "counter",
		 "Datagrams the kernel dropped (socket buffer full).", s->rx_kernel_drops);
	prom_one(f, "tapflow_queue_drops_total", "counter",
		 "Datagrams dropped because the decoder fell behind.", s->rx_queue_full);
	prom_one(f, "tapflow_decode_datagrams_total", "counter", "Datagrams decoded.",
		 d->datagrams);
	prom_one(f, "tapflow_decode_records_total", "counter", "Flow records decoded.",
		 d->records);
	prom_one(f, "tapflow_decode_options_records_total", "counter",
		 "Options data records read.", d->options_records);
	prom_head(f, "tapflow_decode_errors_total", "counter", "Decode errors by reason.");
	for (int i = 1; i < NFDEC_E__COUNT; i++)
		fprintf(f, "tapflow_decode_errors_total{reason=\"%s\"} %" PRIu64 "\n",
			nfdec_err_name(i), d->errors[i]);
	prom_one(f, "tapflow_exporters", "gauge", "Exporters known.", d->exporters);
	prom_one(f, "tapflow_templates", "gauge", "Templates cached.", d->templates);
	prom_one(f, "tapflow_template_evictions_total", "counter",
		 "Templates evicted from the full cache.", d->template_evictions);
	prom_one(f, "tapflow_notemplate_sets_total", "counter",
		 "Data sets that arrived before their template.", d->notpl_sets);
	prom_one(f, "tapflow_notemplate_decoded_sets_total", "counter",
		 "Held data sets decoded when their template came.", d->notpl_decoded_sets);
	prom_one(f, "tapflow_notemplate_dropped_sets_total", "counter",
		 "Held data sets dropped (too old, or over the cap).", d->notpl_dropped_sets);
	prom_one(f, "tapflow_pending_sets", "gauge", "Data sets held for a template now.",
		 d->pending_sets);
	prom_one(f, "tapflow_pending_bytes", "gauge", "Bytes held for templates now.",
		 d->pending_bytes);
	prom_one(f, "tapflow_store_records_total", "counter", "Records written to the store.",
		 s->ws.records);
	prom_one(f, "tapflow_store_blocks_total", "counter", "Store blocks written.",
		 s->ws.blocks);
	prom_one(f, "tapflow_store_written_bytes_total", "counter",
		 "Bytes written to store files.", s->ws.file_bytes);
	prom_one(f, "tapflow_store_dropped_total", "counter",
		 "Records lost to store write errors.", s->ws.dropped);
	prom_one(f, "tapflow_store_files", "gauge", "Files in the store.", files);
	prom_one(f, "tapflow_store_bytes", "gauge", "Bytes of the files in the store.", bytes);
	prom_one(f, "tapflow_http_requests_total", "counter", "HTTP requests answered.",
		 api->n.requests);
	prom_one(f, "tapflow_http_queries_total", "counter", "Queries run.", api->n.queries);
	prom_one(f, "tapflow_http_queries_running", "gauge", "Queries running now.",
		 api->running);
	prom_head(f, "tapflow_http_rejected_total", "counter", "HTTP requests refused, by reason.");
	fprintf(f, "tapflow_http_rejected_total{reason=\"bad_request\"} %" PRIu64 "\n"
		"tapflow_http_rejected_total{reason=\"unauthorized\"} %" PRIu64 "\n"
		"tapflow_http_rejected_total{reason=\"busy\"} %" PRIu64 "\n"
		"tapflow_http_rejected_total{reason=\"timeout\"} %" PRIu64 "\n"
		"tapflow_http_rejected_total{reason=\"too_large\"} %" PRIu64 "\n"
		"tapflow_http_rejected_total{reason=\"error\"} %" PRIu64 "\n",
		api->n.bad_requests, api->n.unauthorized, api->n.busy, api->n.timeouts,
		api->n.too_large, api->n.query_errors);

	prom_exp(f, s, "tapflow_exporter_datagrams_total", "counter",
		 "Datagrams accepted per exporter.", EOFF(datagrams));
	prom_head(f, "tapflow_exporter_records_total", "counter",
		  "Flow records per exporter and NetFlow version (10: IPFIX).");
	for (size_t i = 0; i < s->nexp; i++) {
		const struct nfdec_exporter_stats *e = &s->exp[i].e;
		static const int ver[3] = { 5, 9, 10 };
		const uint64_t v[3] = { e->records_v5, e->records_v9, e->records_ipfix };
		addr_str(e->addr, a, sizeof(a));
		for (int k = 0; k < 3; k++) {
			fprintf(f, "tapflow_exporter_records_total{exporter=\"");
			prom_label(f, a);
			fprintf(f, "\",version=\"%d\"} %" PRIu64 "\n", ver[k], v[k]);
		}
	}
	prom_exp(f, s, "tapflow_exporter_templates", "gauge", "Templates cached per exporter.",
		 EOFF(templates));
	prom_exp(f, s, "tapflow_exporter_notemplate_dropped_sets_total", "counter",
		 "Data sets dropped waiting for a template, per exporter.",
		 EOFF(notpl_dropped_sets));
	prom_head(f, "tapflow_exporter_decode_errors_total", "counter",
		  "Decode errors per exporter and reason.");
	for (size_t i = 0; i < s->nexp; i++) {
		addr_str(s->exp[i].e.addr, a, sizeof(a));
		for (int k = 1; k < NFDEC_E__COUNT; k++) {
			fprintf(f, "tapflow_exporter_decode_errors_total{exporter=\"");
			prom_label(f, a);
			fprintf(f, "\",reason=\"%s\"} %" PRIu64 "\n", nfdec_err_name(k),
				s->exp[i].e.errors[k]);
		}
	}
	prom_dom(f, s, "tapflow_exporter_sequence_gaps_total", "counter",
		 "Times the sequence number jumped forward.", DOFF(seq_gaps), 0);
	prom_dom(f, s, "tapflow_exporter_sequence_lost_total", "counter",
		 "Records (v5, IPFIX) or export packets (v9) missed by sequence number.",
		 DOFF(seq_lost), 0);
	prom_dom(f, s, "tapflow_exporter_sampling_interval", "gauge",
		 "Sampling interval the exporter announced (1: none).", DOFF(sampling), 1);
}

/* ---- requests ---- */

struct hreq {
	struct httpapi *api;
	struct MHD_Connection *con;
	char *uri;                      /* the raw request target; NULL if too long */
	int state;                      /* 0 new, 1 query running, 2 query answered,
					   3 answered (nothing more to do) */
	struct httpapi_query *q;
	/* the query's answer, set by its thread under api->mu */
	unsigned status;
	char *body;
	size_t len;
	const char *ctype;
};

static const char *const ct_json = "application/json";
static const char *const ct_text = "text/plain; charset=utf-8";
static const char *const ct_csv = "text/csv; charset=utf-8";
static const char *const ct_prom = "text/plain; version=0.0.4; charset=utf-8";

static enum MHD_Result send_body(struct MHD_Connection *con, unsigned status, char *body,
				 size_t len, const char *ctype, const char *auth_hdr)
{
	struct MHD_Response *r = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
	if (!r) {
		free(body);
		return MHD_NO;
	}
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
	MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	if (auth_hdr)
		MHD_add_response_header(r, MHD_HTTP_HEADER_WWW_AUTHENTICATE, auth_hdr);
	if (status == MHD_HTTP_SERVICE_UNAVAILABLE)
		MHD_add_response_header(r, MHD_HTTP_HEADER_RETRY_AFTER, "1");
	if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
		MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
	enum MHD_Result ok = MHD_queue_response(con, status, r);
	MHD_destroy_response(r);
	return ok;
}

/* Makes {"error":"msg"[,"position":N]} into a malloc'd body. */
static char *error_body(const char *msg, long pos, size_t *len)
{
	char *buf = NULL;
	FILE *f = open_memstream(&buf, len);
	if (!f)
		return NULL;
	fputs("{\"error\":\"", f);
	json_str(f, msg);
	fputc('"', f);
	if (pos >= 0)
		fprintf(f, ",\"position\":%ld", pos);
	fputs("}\n", f);
	if (fclose(f) != 0) {
		free(buf);
		return NULL;
	}
	return buf;
}

static enum MHD_Result send_error(struct MHD_Connection *con, unsigned status,
				  const char *msg, long pos, const char *auth_hdr)
{
	size_t len;
	char *b = error_body(msg, pos, &len);
	if (!b)
		return MHD_NO;
	return send_body(con, status, b, len, ct_json, auth_hdr);
}

/* The renderer's sink, wrapped to stop a run whose answer outgrows the caps: rows
 * (with their series points) and bytes written so far. */
struct capped {
	const struct query_sink *inner;
	FILE *f;
	uint64_t rows, max_rows, max_body;
	int over;                       /* 1 rows, 2 bytes */
};

static int capped_begin(void *arg, const struct query_table *t)
{
	struct capped *c = arg;
	return c->inner->begin ? c->inner->begin(c->inner->arg, t) : 0;
}

static int capped_row(void *arg, const struct query_table *t, const struct query_row *r)
{
	struct capped *c = arg;
	c->rows += 1 + r->npoints;
	if (c->rows > c->max_rows) {
		c->over = 1;
		return 1;
	}
	int rc = c->inner->row ? c->inner->row(c->inner->arg, t, r) : 0;
	if (rc)
		return rc;
	long pos = ftell(c->f);
	if (pos < 0 || (uint64_t)pos > c->max_body) {
		c->over = 2;
		return 1;
	}
	return 0;
}

/* Runs h's query and renders its answer into h->status/body/len/ctype (not locked:
 * the caller publishes them). status 0: not even an error could be made. */
static void run_query(struct httpapi *api, struct hreq *h)
{
	char msg[HTTPAPI_ERR_LEN];
	unsigned status = MHD_HTTP_OK;
	struct query_result *res = calloc(1, sizeof(*res));
	char *buf = NULL;
	size_t len = 0;
	FILE *f = NULL;
	struct qout *o = NULL;
	int rc = -ENOMEM;

	if (!res || !(f = open_memstream(&buf, &len)))
		goto nomem;
	int fmt = h->q->fmt == HTTPAPI_FMT_JSON ? QOUT_JSON :
		  h->q->fmt == HTTPAPI_FMT_CSV ? QOUT_CSV : QOUT_TABLE;
	o = qout_new(f, (enum qout_fmt)fmt, h->q->plain);
	if (!o)
		goto nomem;
	struct capped cap = { qout_sink(o), f, 0, api->lim.max_rows, api->lim.max_body, 0 };
	struct query_sink sink = { capped_begin, capped_row, &cap };
	/* streamed as tapflow-query streams them: rows with a series of their own are
	 * kept and written after the tables, except in JSON */
	int row_series = 0;
	for (unsigned i = 0; i < h->q->rq.ntables; i++)
		row_series |= h->q->rq.table[i].series;
	int streamed = !row_series || h->q->fmt == HTTPAPI_FMT_JSON;
	h->q->rq.sink = streamed ? &sink : NULL;
	h->q->rq.deadline_ms = mono_ms() + api->lim.timeout_ms;
	rc = query_run(&h->q->rq, res);
	if (rc > 0)
		rc = 0; /* success, as tapflow-query takes it */
	h->q->rq.sink = NULL;
	if (rc == -ECANCELED && cap.over)
		goto too_large;
	if (rc == 0 && !streamed) {
		for (unsigned t = 0; t < res->ntables; t++)
			for (uint64_t i = 0; i < res->table[t].nrows; i++)
				cap.rows += 1 + res->table[t].rows[i].npoints;
	}
	if (rc == 0 && (cap.rows += res->npoints) > api->lim.max_rows) {
		cap.over = 1;
		goto too_large;
	}
	if (rc < 0)
		goto failed;
	if (qout_finish(o, &h->q->rq, res) < 0)
		goto nomem;
	qout_free(o);
	o = NULL;
	if (fclose(f) != 0) {
		f = NULL;
		goto nomem;
	}
	f = NULL;
	if (len > api->lim.max_body) {
		cap.over = 2;
		goto too_large;
	}
	h->status = status;
	h->body = buf;
	h->len = len;
	h->ctype = h->q->fmt == HTTPAPI_FMT_JSON ? ct_json :
		   h->q->fmt == HTTPAPI_FMT_CSV ? ct_csv : ct_text;
	buf = NULL;
	goto out;
too_large:
	status = MHD_HTTP_CONTENT_TOO_LARGE;
	if (cap.over == 1)
		snprintf(msg, sizeof(msg), "the answer has more than %" PRIu64 " rows "
			 "(http_max_rows): ask for fewer (top, limit, a filter or a window)",
			 api->lim.max_rows);
	else
		snprintf(msg, sizeof(msg), "the answer is larger than %" PRIu64 " bytes "
			 "(http_max_body): ask for fewer rows", api->lim.max_body);
	goto err;
failed:
	switch (rc) {
	case -EINVAL:
		status = MHD_HTTP_BAD_REQUEST;
		snprintf(msg, sizeof(msg), "%s", res->err);
		break;
	case -E2BIG:
		status = MHD_HTTP_CONTENT_TOO_LARGE;
		snprintf(msg, sizeof(msg), "%s (the query memory limit is %" PRIu64
			 " bytes, http_query_memory)", res->err, api->lim.max_memory);
		break;
	case -ETIMEDOUT:
		status = MHD_HTTP_GATEWAY_TIMEOUT;
		snprintf(msg, sizeof(msg), "the query ran longer than %u ms "
			 "(http_query_timeout_ms): narrow it with a window or a filter",
			 api->lim.timeout_ms);
		break;
	default:
		status = MHD_HTTP_INTERNAL_SERVER_ERROR;
		snprintf(msg, sizeof(msg), "%s", res->err[0] ? res->err : strerror(-rc));
		break;
	}
	goto err;
nomem:
	status = MHD_HTTP_INTERNAL_SERVER_ERROR;
	snprintf(msg, sizeof(msg), "out of memory");
err:
	h->status = status;
	h->body = error_body(msg, -1, &h->len);
	h->ctype = ct_json;
	if (!h->body)
		h->status = 0;
out:
	qout_free(o);
	if (f)
		fclose(f);
	free(buf);
	if (res) {
		query_result_free(res);
		free(res);
	}
}

static void *query_thread(void *arg)
{
	struct hreq *h = arg;
	struct httpapi *api = h->api;
	struct MHD_Connection *con = h->con;
	struct hreq ans;

	/* the query's scan threads inherit this: receiving and decoding come first */
	setpriority(PRIO_PROCESS, (id_t)gettid(), QUERY_NICE);
	/* answered into a copy: h is only written under the lock */
	memset(&ans, 0, sizeof(ans));
	ans.q = h->q;
	run_query(api, &ans);
	pthread_mutex_lock(&api->mu);
	h->status = ans.status;
	h->body = ans.body;
	h->len = ans.len;
	h->ctype = ans.ctype;
	h->state = 2;
	api->running--;
	if (h->status == MHD_HTTP_GATEWAY_TIMEOUT)
		api->n.timeouts++;
	else if (h->status == MHD_HTTP_CONTENT_TOO_LARGE)
		api->n.too_large++;
	else if (h->status == MHD_HTTP_BAD_REQUEST)
		api->n.bad_requests++;
	else if (h->status != MHD_HTTP_OK)
		api->n.query_errors++;
	pthread_mutex_unlock(&api->mu);
	/* h may be freed as soon as the connection runs again: not touched after this */
	MHD_resume_connection(con);
	pthread_mutex_lock(&api->mu);
	api->alive--;
	pthread_cond_broadcast(&api->cv);
	pthread_mutex_unlock(&api->mu);
	return NULL;
}

/* Parses the query and starts its thread with the connection suspended; answers
 * itself what it refuses. Sets h->state. */
static enum MHD_Result start_query(struct httpapi *api, struct hreq *h, const char *qs)
{
	char err[HTTPAPI_ERR_LEN];
	long pos;

	h->state = 3;
	h->q = malloc(sizeof(*h->q));
	if (!h->q)
		return MHD_NO;
	if (httpapi_parse_query(qs, strlen(qs), api->store_dir, sys_wall_ms(), &api->lim, h->q,
				err, sizeof(err), &pos) < 0) {
		pthread_mutex_lock(&api->mu);
		api->n.bad_requests++;
		pthread_mutex_unlock(&api->mu);
		return send_error(h->con, MHD_HTTP_BAD_REQUEST, err, pos, NULL);
	}
	pthread_mutex_lock(&api->mu);
	if (api->stopping || api->running >= api->lim.max_queries) {
		api->n.busy++;
		pthread_mutex_unlock(&api->mu);
		snprintf(err, sizeof(err), "%u queries are running (http_max_queries): try again "
			 "shortly", api->lim.max_queries);
		return send_error(h->con, MHD_HTTP_SERVICE_UNAVAILABLE, err, -1, NULL);
	}
	api->running++;
	api->alive++;
	api->n.queries++;
	h->state = 1;
	/* suspended before the thread exists, so its resume always comes after */
	MHD_suspend_connection(h->con);
	pthread_t tid;
	pthread_attr_t at;
	pthread_attr_init(&at);
	pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
	int e = pthread_create(&tid, &at, query_thread, h);
	pthread_attr_destroy(&at);
	if (e != 0) {
		api->running--;
		api->alive--;
		h->state = 2;
		h->status = 0; /* the connection closes */
		pthread_mutex_unlock(&api->mu);
		MHD_resume_connection(h->con);
		return MHD_YES;
	}
	pthread_mutex_unlock(&api->mu);
	return MHD_YES;
}

static void *on_uri(void *cls, const char *uri, struct MHD_Connection *con)
{
	struct hreq *h = calloc(1, sizeof(*h));
	if (!h)
		return NULL;
	h->api = cls;
	h->con = con;
	if (strlen(uri) <= HTTPAPI_MAX_URL)
		h->uri = strdup(uri);
	return h;
}

static void on_completed(void *cls, struct MHD_Connection *con, void **con_cls,
			 enum MHD_RequestTerminationCode toe)
{
	(void)cls;
	(void)con;
	(void)toe;
	struct hreq *h = *con_cls;
	if (!h)
		return;
	free(h->uri);
	free(h->q);
	free(h->body);
	free(h);
	*con_cls = NULL;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *con, const char *url,
				  const char *method, const char *version,
				  const char *upload_data, size_t *upload_data_size,
				  void **con_cls)
{
	struct httpapi *api = cls;
	struct hreq *h = *con_cls;
	(void)url;
	(void)version;
	(void)upload_data;

	if (!h)
		return MHD_NO; /* out of memory in on_uri */
	pthread_mutex_lock(&api->mu); /* a query thread sets state and answer */
	int state = h->state;
	unsigned status = h->status;
	char *body = h->body;
	h->body = NULL;
	pthread_mutex_unlock(&api->mu);
	if (state == 1)
		return MHD_YES; /* not expected while suspended; nothing to do */
	if (state == 2) {
		h->state = 3;
		if (!status) {
			free(body);
			return MHD_NO;
		}
		return send_body(con, status, body, h->len, h->ctype, NULL);
	}
	if (state == 3) {
		*upload_data_size = 0; /* a body after GET: ignored */
		return MHD_YES;
	}
	h->state = 3;
	pthread_mutex_lock(&api->mu);
	api->n.requests++;
	pthread_mutex_unlock(&api->mu);
	if (strcmp(method, MHD_HTTP_METHOD_GET) && strcmp(method, MHD_HTTP_METHOD_HEAD))
		return send_error(con, MHD_HTTP_METHOD_NOT_ALLOWED, "only GET and HEAD", -1, NULL);
	if (!h->uri) {
		char m[80];
		snprintf(m, sizeof(m), "request target longer than %d bytes", HTTPAPI_MAX_URL);
		return send_error(con, MHD_HTTP_URI_TOO_LONG, m, -1, NULL);
	}
	if (api->token) {
		const char *ah = MHD_lookup_connection_value(con, MHD_HEADER_KIND,
							     MHD_HTTP_HEADER_AUTHORIZATION);
		if (!httpapi_auth_ok(api->token, ah)) {
			pthread_mutex_lock(&api->mu);
			api->n.unauthorized++;
			pthread_mutex_unlock(&api->mu);
			return send_error(con, MHD_HTTP_UNAUTHORIZED, ah ? "invalid bearer token" :
					  "this API needs 'Authorization: Bearer <token>'", -1,
					  ah ? "Bearer realm=\"tapflow\", error=\"invalid_token\"" :
					  "Bearer realm=\"tapflow\"");
		}
	}
	char *qm = strchr(h->uri, '?');
	const char *qs = qm ? qm + 1 : "";
	if (qm)
		*qm = 0;
	const char *path = h->uri;
	if (!strcmp(path, "/api/v1/query"))
		return start_query(api, h, qs);
	int st = !strcmp(path, "/api/v1/status"), ex = !strcmp(path, "/api/v1/exporters"),
	    me = !strcmp(path, "/metrics");
	if (!st && !ex && !me)
		return send_error(con, MHD_HTTP_NOT_FOUND, "no such endpoint (/api/v1/query, "
				  "/api/v1/status, /api/v1/exporters, /metrics)", -1, NULL);
	uint64_t files = 0, bytes = 0;
	if (st || me)
		store_usage(api->store_dir, &files, &bytes);
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	if (!f)
		return MHD_NO;
	pthread_mutex_lock(&api->mu);
	fresh_snapshot(api);
	if (st)
		render_status(api, f, files, bytes);
	else if (ex)
		render_exporters(api, f);
	else
		render_metrics(api, f, files, bytes);
	pthread_mutex_unlock(&api->mu);
	if (fclose(f) != 0) {
		free(buf);
		return MHD_NO;
	}
	return send_body(con, MHD_HTTP_OK, buf, len, me ? ct_prom : ct_json, NULL);
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
	char m[512];
	(void)cls;
	vsnprintf(m, sizeof(m), fmt, ap);
	m[strcspn(m, "\n")] = 0;
	log_warn("http: %s", m);
}

static uint32_t or_default(uint32_t v, uint32_t d)
{
	return v ? v : d;
}

struct httpapi *httpapi_start(const struct httpapi_cfg *cfg, char *err, size_t errlen)
{
	struct sockaddr_storage ss;
	socklen_t sslen;
	int loopback;
	struct httpapi *api;

	if (httpapi_parse_listen(cfg->listen, &ss, &sslen, &loopback, err, errlen) < 0)
		return NULL;
	int has_token = cfg->token && *cfg->token;
	if (!loopback && !has_token) {
		snprintf(err, errlen, "HTTP API on %s would be reachable beyond this host without "
			 "authentication: set http_token in the config file (or listen on "
			 "127.0.0.1)", cfg->listen);
		return NULL;
	}
	if (has_token && (strlen(cfg->token) > HTTPAPI_MAX_TOKEN || strlen(cfg->token) < 16 ||
			  !token_chars_ok(cfg->token))) {
		snprintf(err, errlen, "http_token: use 16 to %d characters from A-Z a-z 0-9 "
			 "-._~+/= (e.g. from: head -c 24 /dev/urandom | base64)",
			 HTTPAPI_MAX_TOKEN);
		return NULL;
	}
	api = calloc(1, sizeof(*api));
	if (!api)
		goto nomem;
	api->lim = cfg->lim;
	api->snap_max_age_ms = or_default(cfg->snapshot_max_age_ms, SNAP_MAX_AGE_MS);
	api->lim.timeout_ms = or_default(api->lim.timeout_ms, DEF_TIMEOUT_MS);
	api->lim.max_memory = api->lim.max_memory ? api->lim.max_memory : DEF_MEMORY;
	api->lim.max_rows = api->lim.max_rows ? api->lim.max_rows : DEF_ROWS;
	api->lim.max_body = api->lim.max_body ? api->lim.max_body : DEF_BODY;
	api->lim.max_queries = or_default(api->lim.max_queries, DEF_QUERIES);
	if (api->lim.max_queries > MAX_QUERIES)
		api->lim.max_queries = MAX_QUERIES;
	api->listen = strdup(cfg->listen);
	api->store_dir = strdup(cfg->store_dir ? cfg->store_dir : "");
	api->udp_listen = strdup(cfg->udp_listen ? cfg->udp_listen : "");
	api->token = has_token ? strdup(cfg->token) : NULL;
	if (!api->listen || !api->store_dir || !api->udp_listen || (has_token && !api->token))
		goto nomem;
	pthread_mutex_init(&api->mu, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&api->cv, &ca);
	pthread_condattr_destroy(&ca);
	api->started_wall_ms = sys_wall_ms();
	api->started_mono_ms = mono_ms();

	unsigned flags = MHD_USE_AUTO_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME |
			 MHD_USE_ERROR_LOG;
	if (ss.ss_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	api->d = MHD_start_daemon(flags, 0, NULL, NULL, on_request, api,
				  MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, api,
				  MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
				  MHD_OPTION_URI_LOG_CALLBACK, on_uri, api,
				  MHD_OPTION_NOTIFY_COMPLETED, on_completed, api,
				  MHD_OPTION_CONNECTION_LIMIT, (unsigned)CONN_LIMIT,
				  MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)CONN_PER_IP,
				  MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)CONN_TIMEOUT_S,
				  MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)CONN_MEMORY,
				  MHD_OPTION_END);
	if (!api->d) {
		snprintf(err, errlen, "HTTP API: cannot listen on %s (address in use, or not "
			 "an address of this host?)", cfg->listen);
		goto fail;
	}
	const union MHD_DaemonInfo *di = MHD_get_daemon_info(api->d, MHD_DAEMON_INFO_BIND_PORT);
	api->port = di ? di->port : 0;
	/* the address as bound, for logs and /status */
	char host[INET6_ADDRSTRLEN], *norm;
	const void *ap = ss.ss_family == AF_INET ? (const void *)&((struct sockaddr_in *)&ss)->sin_addr
						 : (const void *)&((struct sockaddr_in6 *)&ss)->sin6_addr;
	inet_ntop(ss.ss_family, ap, host, sizeof(host));
	if (asprintf(&norm, ss.ss_family == AF_INET6 ? "[%s]:%u" : "%s:%u", host, api->port) > 0) {
		free(api->listen);
		api->listen = norm;
	}
	return api;
nomem:
	snprintf(err, errlen, "HTTP API: out of memory");
fail:
	if (api) {
		if (api->started_mono_ms) {
			pthread_mutex_destroy(&api->mu);
			pthread_cond_destroy(&api->cv);
		}
		free(api->listen);
		free(api->store_dir);
		free(api->udp_listen);
		free(api->token);
		free(api);
	}
	return NULL;
}

uint16_t httpapi_port(const struct httpapi *api)
{
	return api ? api->port : 0;
}

const char *httpapi_address(const struct httpapi *api)
{
	return api->listen;
}

void httpapi_stop(struct httpapi *api)
{
	if (!api)
		return;
	/* queries end within their time limit; their connections must be resumed before
	 * the daemon stops */
	pthread_mutex_lock(&api->mu);
	api->stopping = 1;
	pthread_cond_broadcast(&api->cv);
	while (api->alive)
		pthread_cond_wait(&api->cv, &api->mu);
	pthread_mutex_unlock(&api->mu);
	MHD_stop_daemon(api->d);
	snap_free(api->snap);
	pthread_mutex_destroy(&api->mu);
	pthread_cond_destroy(&api->cv);
	if (api->token)
		memset(api->token, 0, strlen(api->token));
	free(api->listen);
	free(api->store_dir);
	free(api->udp_listen);
	free(api->token);
	free(api);
}
