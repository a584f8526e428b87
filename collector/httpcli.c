/* httpcli.c: see httpcli.h. Sections: URLs, the response parser, the exchange over a
 * socket, and tapflow-query's remote mode. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netdb.h>
#include <poll.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "filt.h"
#include "httpcli.h"
#include "opts.h"
#include "query.h"

#ifndef TF_VERSION
#define TF_VERSION "unknown"
#endif

#define MAX_HEADERS (64u << 10)
#define MAX_TARGET (64u << 10)
#define MAX_ARGS QUERY_MAX_ARGS

static uint64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* ---- URLs ---- */

int httpcli_parse_url(const char *url, struct httpcli_url *u, char *err, size_t errlen)
{
	const char *p, *hs, *he;
	size_t hl;

	memset(u, 0, sizeof(*u));
	if (strncasecmp(url, "http://", 7)) {
		snprintf(err, errlen, "--remote '%s': give an http:// URL (https is not "
			 "supported: put a TLS proxy in front)", url);
		return -EINVAL;
	}
	p = url + 7;
	if (*p == '[') {
		hs = p + 1;
		he = strchr(hs, ']');
		if (!he)
			goto bad;
		p = he + 1;
	} else {
		hs = p;
		he = p + strcspn(p, ":/?#");
		p = he;
	}
	hl = (size_t)(he - hs);
	if (!hl || hl >= sizeof(u->host))
		goto bad;
	memcpy(u->host, hs, hl);
	if (*p == ':') {
		p++;
		size_t pl = strspn(p, "0123456789");
		if (!pl || pl > 5 || atoi(p) < 1 || atoi(p) > 65535)
			goto bad;
		memcpy(u->port, p, pl);
		p += pl;
	} else {
		snprintf(u->port, sizeof(u->port), "%d", HTTPCLI_DEFAULT_PORT);
	}
	if (*p && *p != '/')
		goto bad;
	size_t rl = strlen(p);
	while (rl && p[rl - 1] == '/')
		rl--;
	if (rl >= sizeof(u->prefix) || memchr(p, '?', rl) || memchr(p, '#', rl))
		goto bad;
	memcpy(u->prefix, p, rl);
	for (const char *c = u->host; *c; c++)
		if (*c <= ' ' || *c == '@')
			goto bad;
	return 0;
bad:
	snprintf(err, errlen, "--remote '%s': not a URL of the form http://HOST[:PORT][/PATH]",
		 url);
	return -EINVAL;
}

int httpcli_urlencode(char *buf, size_t *n, size_t cap, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t o = *n;
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		int keep = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			   (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' || c == '~';
		if (o + (keep ? 1 : 3) >= cap)
			return -1;
		if (keep) {
			buf[o++] = (char)c;
		} else {
			buf[o++] = '%';
			buf[o++] = hex[c >> 4];
			buf[o++] = hex[c & 15];
		}
	}
	buf[o] = 0;
	*n = o;
	return 0;
}

/* ---- the response parser ---- */

void httpcli_resp_free(struct httpcli_resp *r)
{
	free(r->body);
	r->body = NULL;
	r->len = 0;
}

/* Finds "\r\n" in b[from..len); returns its offset or -1. */
static long find_crlf(const char *b, size_t from, size_t len)
{
	for (size_t i = from; i + 1 < len; i++)
		if (b[i] == '\r' && b[i + 1] == '\n')
			return (long)i;
	return -1;
}

/* Parses an unsigned number in base (10 or 16) from s[0..n); -1 if none or too big. */
static int parse_num(const char *s, size_t n, int base, uint64_t *v)
{
	uint64_t x = 0;
	size_t i = 0;
	for (; i < n; i++) {
		int d;
		char c = s[i];
		if (c >= '0' && c <= '9')
			d = c - '0';
		else if (base == 16 && c >= 'a' && c <= 'f')
			d = c - 'a' + 10;
		else if (base == 16 && c >= 'A' && c <= 'F')
			d = c - 'A' + 10;
		else
			break;
		if (x > (HTTPCLI_MAX_RESPONSE - (uint64_t)d) / (uint64_t)base)
			return -1;
		x = x * (uint64_t)base + (uint64_t)d;
	}
	if (!i)
		return -1;
	*v = x;
	return (int)i;
}

/* Does header line l[0..n) have the name name? Sets *val to the trimmed value. */
static int header_is(const char *l, size_t n, const char *name, const char **val,
		     size_t *vlen)
{
	size_t nl = strlen(name);
	if (n <= nl || l[nl] != ':' || strncasecmp(l, name, nl))
		return 0;
	const char *v = l + nl + 1, *e = l + n;
	while (v < e && (*v == ' ' || *v == '\t'))
		v++;
	while (e > v && (e[-1] == ' ' || e[-1] == '\t'))
		e--;
	*val = v;
	*vlen = (size_t)(e - v);
	return 1;
}

static void copy_value(char *dst, size_t cap, const char *v, size_t vl)
{
	if (vl >= cap)
		vl = cap - 1;
	memcpy(dst, v, vl);
	dst[vl] = 0;
}

long httpcli_parse_response(const char *buf, size_t len, struct httpcli_resp *r)
{
	uint64_t clen = 0, status;
	int has_clen = 0, chunked = 0;
	size_t pos;
	long e;

	memset(r, 0, sizeof(*r));
	e = find_crlf(buf, 0, len < MAX_HEADERS ? len : MAX_HEADERS);
	if (e < 0)
		return len >= MAX_HEADERS ? -1 : -2;
	/* "HTTP/1.x NNN reason" */
	if (e < 12 || memcmp(buf, "HTTP/1.", 7) || (buf[7] != '0' && buf[7] != '1') ||
	    buf[8] != ' ' || parse_num(buf + 9, 3, 10, &status) != 3 || status < 100 ||
	    (e > 12 && buf[12] != ' '))
		return -1;
	r->status = (unsigned)status;
	pos = (size_t)e + 2;
	for (;;) {
		e = find_crlf(buf, pos, len < MAX_HEADERS ? len : MAX_HEADERS);
		if (e < 0)
			return len >= MAX_HEADERS ? -1 : -2;
		size_t n = (size_t)e - pos;
		const char *l = buf + pos, *v;
		size_t vl;
		pos = (size_t)e + 2;
		if (!n)
			break;
		if (header_is(l, n, "Content-Length", &v, &vl)) {
			uint64_t x = 0;  /* gcc -O3 sees a path that leaves it unset */
			if (parse_num(v, vl, 10, &x) != (int)vl || (has_clen && x != clen))
				return -1;
			clen = x;
			has_clen = 1;
		} else if (header_is(l, n, "Transfer-Encoding", &v, &vl)) {
			if (vl == 7 && !strncasecmp(v, "chunked", 7))
				chunked = 1;
			else if (!(vl == 8 && !strncasecmp(v, "identity", 8)))
				return -1;
		} else if (header_is(l, n, "Content-Type", &v, &vl)) {
			copy_value(r->ctype, sizeof(r->ctype), v, vl);
		} else if (header_is(l, n, "WWW-Authenticate", &v, &vl)) {
			copy_value(r->www_auth, sizeof(r->www_auth), v, vl);
		} else if (header_is(l, n, "Retry-After", &v, &vl)) {
			uint64_t x = 0;  /* gcc -O3 sees a path that leaves it unset */
			if (parse_num(v, vl, 10, &x) == (int)vl)
				r->retry_after = x > 3600 ? 3600 : (unsigned)x;
		} else if (!memchr(l, ':', n)) {
			return -1;
		}
	}
	int no_body = r->status < 200 || r->status == 204 || r->status == 304;
	if (no_body) {
		r->body = calloc(1, 1);
		return r->body ? (long)pos : -1;
	}
	if (chunked) {
		/* decoded in place into a copy, bounded by the input */
		size_t avail = len - pos;
		char *out = malloc(avail + 1);
		size_t o = 0;
		if (!out)
			return -1;
		for (;;) {
			e = find_crlf(buf, pos, len);
			if (e < 0) {
				free(out);
				return -2;
			}
			uint64_t sz;
			int k = parse_num(buf + pos, (size_t)e - pos, 16, &sz);
			if (k < 0 || (buf[pos + (size_t)k] != ';' && pos + (size_t)k != (size_t)e)) {
				free(out);
				return -1;
			}
			pos = (size_t)e + 2;
			if (!sz)
				break;
			if (sz > len - pos || len - pos - sz < 2) {
				free(out);
				return -2;
			}
			memcpy(out + o, buf + pos, sz);
			o += sz;
			pos += sz;
			if (buf[pos] != '\r' || buf[pos + 1] != '\n') {
				free(out);
				return -1;
			}
			pos += 2;
		}
		/* trailers up to an empty line */
		for (;;) {
			e = find_crlf(buf, pos, len);
			if (e < 0) {
				free(out);
				return -2;
			}
			int empty = (size_t)e == pos;
			pos = (size_t)e + 2;
			if (empty)
				break;
		}
		out[o] = 0;
		r->body = out;
		r->len = o;
		return (long)pos;
	}
	if (has_clen) {
		if (clen > len - pos)
			return -2;
	} else {
		clen = len - pos; /* to the end of the connection */
	}
	r->body = malloc(clen + 1);
	if (!r->body)
		return -1;
	memcpy(r->body, buf + pos, clen);
	r->body[clen] = 0;
	r->len = clen;
	return (long)(pos + clen);
}

/* ---- the exchange ---- */

static int wait_fd(int fd, short ev, uint64_t deadline)
{
	for (;;) {
		uint64_t now = mono_ms();
		if (now >= deadline)
			return -ETIMEDOUT;
		struct pollfd p = { fd, ev, 0 };
		int n = poll(&p, 1, (int)(deadline - now > 60000 ? 60000 : deadline - now));
		if (n > 0)
			return 0;
		if (n < 0 && errno != EINTR)
			return -errno;
	}
}

static int connect_to(const struct httpcli_url *u, uint64_t deadline, char *err,
		      size_t errlen)
{
	struct addrinfo hints, *ai = NULL;
	int fd = -1, rc = -ECONNREFUSED;

	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_family = AF_UNSPEC;
	int g = getaddrinfo(u->host, u->port, &hints, &ai);
	if (g) {
		snprintf(err, errlen, "%s: %s", u->host, gai_strerror(g));
		return -EHOSTUNREACH;
	}
	for (struct addrinfo *a = ai; a; a = a->ai_next) {
		fd = socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
			    a->ai_protocol);
		if (fd < 0) {
			rc = -errno;
			continue;
		}
		if (connect(fd, a->ai_addr, a->ai_addrlen) == 0)
			break;
		if (errno == EINPROGRESS && (rc = wait_fd(fd, POLLOUT, deadline)) == 0) {
			int soerr = 0;
			socklen_t sl = sizeof(soerr);
			getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl);
			if (!soerr)
				break;
			rc = -soerr;
		} else if (errno != EINPROGRESS) {
			rc = -errno;
		}
		close(fd);
		fd = -1;
	}
	freeaddrinfo(ai);
	if (fd < 0)
		snprintf(err, errlen, "cannot connect to %s port %s: %s", u->host, u->port,
			 strerror(-rc));
	return fd < 0 ? rc : fd;
}

int httpcli_get(const struct httpcli_url *u, const char *target, const char *token,
		uint32_t timeout_ms, struct httpcli_resp *r, char *err, size_t errlen)
{
	uint64_t deadline = mono_ms() + timeout_ms;
	char *req = NULL, *buf = NULL;
	size_t reqlen = 0, len = 0, cap = 0;
	int fd, rc;

	memset(r, 0, sizeof(*r));
	if (target[0] != '/' || strpbrk(target, " \r\n") || (token && strpbrk(token, "\r\n"))) {
		snprintf(err, errlen, "bad request target or token");
		return -EINVAL;
	}
	FILE *f = open_memstream(&req, &reqlen);
	if (!f)
		return -ENOMEM;
	int v6 = strchr(u->host, ':') != NULL;
	fprintf(f, "GET %s%s HTTP/1.1\r\nHost: %s%s%s:%s\r\nUser-Agent: tapflow-query/%s\r\n"
		"Accept: */*\r\nConnection: close\r\n", u->prefix, target, v6 ? "[" : "",
		u->host, v6 ? "]" : "", u->port, TF_VERSION);
	if (token && *token)
		fprintf(f, "Authorization: Bearer %s\r\n", token);
	fputs("\r\n", f);
	if (fclose(f) != 0) {
		free(req);
		return -ENOMEM;
	}
	fd = connect_to(u, deadline, err, errlen);
	if (fd < 0) {
		free(req);
		return fd;
	}
	for (size_t off = 0; off < reqlen;) {
		ssize_t n = send(fd, req + off, reqlen - off, MSG_NOSIGNAL);
		if (n > 0) {
			off += (size_t)n;
			continue;
		}
		if (n < 0 && errno != EAGAIN && errno != EINTR) {
			rc = -errno;
			goto ioerr;
		}
		if ((rc = wait_fd(fd, POLLOUT, deadline)) < 0)
			goto ioerr;
	}
	for (;;) {
		if (len + 65536 + 1 > cap) {
			size_t nc = cap ? cap * 2 : 131072;
			if (nc > HTTPCLI_MAX_RESPONSE + 65536 + 1) {
				rc = -EFBIG;
				snprintf(err, errlen, "the answer is larger than %llu bytes",
					 (unsigned long long)HTTPCLI_MAX_RESPONSE);
				goto fail;
			}
			char *nb = realloc(buf, nc);
			if (!nb) {
				rc = -ENOMEM;
				goto ioerr;
			}
			buf = nb;
			cap = nc;
		}
		ssize_t n = recv(fd, buf + len, cap - len - 1, 0);
		if (n > 0) {
			len += (size_t)n;
			continue;
		}
		if (n == 0)
			break;
		if (errno != EAGAIN && errno != EINTR) {
			rc = -errno;
			goto ioerr;
		}
		if ((rc = wait_fd(fd, POLLIN, deadline)) < 0)
			goto ioerr;
	}
	long used = httpcli_parse_response(buf ? buf : "", len, r);
	if (used < 0) {
		rc = -EPROTO;
		snprintf(err, errlen, "%s port %s: %s", u->host, u->port, used == -2 ?
			 "the answer was cut short" : "not an HTTP answer");
		goto fail;
	}
	rc = 0;
	goto done;
ioerr:
	snprintf(err, errlen, "%s port %s: %s", u->host, u->port,
		 rc == -ETIMEDOUT ? "no complete answer within the time limit" : strerror(-rc));
fail:
	httpcli_resp_free(r);
done:
	close(fd);
	free(req);
	free(buf);
	return rc;
}

/* ---- tapflow-query --remote ---- */

/* tapflow-query's options (query_main.c), the same names, letters, types and ranges,
 * so the same command line means the same request; plus the remote ones. */
struct rcfg {
	const char *config;
	const char *read;
	const char *time;
	const char *window;
	const char *filter_file;
	struct opt_list stat;
	uint32_t top;
	const char *aggregate;
	const char *order;
	uint32_t count;
	uint32_t max_flows;
	uint32_t series;
	const char *output;
	int plain;
	uint64_t max_memory;
	uint32_t threads;
	const char *remote;
	const char *token;
	uint32_t remote_timeout;
	int help;
	int version;
};

#define O(f) offsetof(struct rcfg, f)
static const struct opt_def ropts[] = {
	{ "read", 'R', OPT_STR, O(read), 0, 0, "DIR", NULL },
	{ "time", 't', OPT_STR, O(time), 0, 0, "WINDOW", NULL },
	{ "window", 0, OPT_STR, O(window), 0, 0, "MODE", NULL },
	{ "filter-file", 'f', OPT_STR, O(filter_file), 0, 0, "FILE", NULL },
	{ "stat", 's', OPT_LIST, O(stat), 0, 0, "ELEM[/ORDER]", NULL },
	{ "top", 'n', OPT_UINT, O(top), 0, 100000000, "N", NULL },
	{ "aggregate", 'A', OPT_STR, O(aggregate), 0, 0, "FIELD,...", NULL },
	{ "order", 'O', OPT_STR, O(order), 0, 0, "ORDER", NULL },
	{ "count", 'c', OPT_UINT, O(count), 0, 1000000000, "N", NULL },
	{ "max-flows", 0, OPT_UINT, O(max_flows), 0, 0xffffffffu, "N", NULL },
	{ "series", 0, OPT_SECS, O(series), 0, 366 * 86400, "SECS", NULL },
	{ "output", 'o', OPT_STR, O(output), 0, 0, "FORMAT", NULL },
	{ "plain", 'N', OPT_BOOL, O(plain), 0, 0, NULL, NULL },
	{ "max-memory", 0, OPT_SIZE, O(max_memory), 0, 0, "SIZE", NULL },
	{ "threads", 0, OPT_UINT, O(threads), 0, 64, "N", NULL },
	{ "config", 'C', OPT_STR, O(config), 0, 0, "FILE", NULL },
	{ "remote", 0, OPT_STR, O(remote), 0, 0, "URL", NULL },
	{ "token", 0, OPT_STR, O(token), 0, 0, "TOKEN", NULL },
	{ "remote-timeout", 0, OPT_SECS, O(remote_timeout), 1, 86400, "SECS", NULL },
	{ "help", 'h', OPT_ACTION, O(help), 0, 0, NULL, NULL },
	{ "version", 'V', OPT_ACTION, O(version), 0, 0, NULL, NULL },
	{ NULL, 0, 0, 0, 0, 0, NULL, NULL },
};
#undef O

const char httpcli_remote_help[] =
"    Sends the query to a tapflow-collector's HTTP API (its --http setting) instead\n"
"    of reading a store: URL is http://HOST[:PORT] (port 9996 by default). Every\n"
"    option but -R means what it means locally, and the output is what a local\n"
"    query of the collector's store prints (tables use the collector's time zone).\n"
"    The bearer token comes from --token or the TAPFLOW_TOKEN environment variable\n"
"    (preferred: command lines are visible to other users). --remote-timeout SECS\n"
"    (default 300) bounds the whole exchange; the collector has its own limits.\n"
"    Exit status: 0 ok; 1 no answer, refused (401, 413, 503, 504) or failed; 2 bad\n"
"    request (400: bad option, filter, element, order or time).\n";

static int usage_err(const char *msg)
{
	fprintf(stderr, "tapflow-query: %s\nTry 'tapflow-query --help'.\n", msg);
	return 2;
}


/* Appends "&name=value" (value encoded) to the target. */
static int add_param(char *t, size_t *n, const char *name, const char *value)
{
	size_t need = strlen(name) + 2;
	if (*n + need >= MAX_TARGET)
		return -1;
	*n += (size_t)snprintf(t + *n, MAX_TARGET - *n, "%s%s=", t[*n - 1] == '?' ? "" : "&",
			       name);
	return httpcli_urlencode(t, n, MAX_TARGET, value);
}

static int add_num(char *t, size_t *n, const char *name, uint64_t v)
{
	char s[24];
	snprintf(s, sizeof(s), "%" PRIu64, v);
	return add_param(t, n, name, s);
}

/* Pulls "error" (and "position") out of the API's {"error":"...","position":N}. */
static void api_error(const char *body, char *msg, size_t cap, long *pos)
{
	const char *p = strstr(body, "\"error\":\"");
	size_t o = 0;
	*pos = -1;
	msg[0] = 0;
	if (!p)
		return;
	for (p += 9; *p && *p != '"' && o + 1 < cap; p++) {
		if (*p == '\\' && p[1]) {
			p++;
			char c = *p == 'n' ? '\n' : *p == 't' ? '\t' : *p;
			if (*p == 'u' && strlen(p) >= 5) {
				c = (char)strtol((char[]){ p[3], p[4], 0 }, NULL, 16);
				p += 4;
			}
			msg[o++] = c;
		} else {
			msg[o++] = *p;
		}
	}
	msg[o] = 0;
	const char *q = strstr(body, "\"position\":");
	if (q)
		*pos = strtol(q + 11, NULL, 10);
}

int httpcli_query_main(int argc, char **argv)
{
	static char *args[MAX_ARGS + 2];
	struct rcfg cfg;
	struct opt_store st = { 0 };
	struct httpcli_url url;
	struct httpcli_resp resp = { 0 };
	char err[512], *filter = NULL, *target = NULL;
	int remote = 0, n_given = 0, status = 2, idx;
	size_t tn;

	for (int i = 1; i < argc && strcmp(argv[i], "--"); i++)
		remote |= !strcmp(argv[i], "--remote") || !strncmp(argv[i], "--remote=", 9);
	if (!remote)
		return -1;
	if (argc > MAX_ARGS)
		return usage_err("too many arguments");
	memset(&cfg, 0, sizeof(cfg));
	cfg.top = 10;
	cfg.max_memory = QUERY_DEFAULT_MEMORY;
	cfg.output = "table";
	cfg.remote_timeout = 300;
	argc = query_args_reorder(ropts, argc, argv, args, &n_given);
	idx = opt_parse(ropts, &cfg, argc, args, &st, err, sizeof(err));
	if (idx < 0) {
		usage_err(err);
		goto out;
	}
	if (cfg.help) {
		fputs("tapflow-query --remote URL [--token TOKEN] [options] [FILTER]\n\n", stdout);
		fputs(httpcli_remote_help, stdout);
		status = 0;
		goto out;
	}
	if (cfg.version) {
		printf("tapflow-query %s\n", TF_VERSION);
		status = 0;
		goto out;
	}
	if (cfg.read) {
		usage_err("-R DIR and --remote URL exclude each other");
		goto out;
	}
	if (httpcli_parse_url(cfg.remote, &url, err, sizeof(err)) < 0) {
		usage_err(err);
		goto out;
	}
	if (query_filter_cli(args + idx, argc - idx, cfg.filter_file, &filter) < 0)
		goto out;
	target = malloc(MAX_TARGET);
	if (!target)
		goto out;
	tn = (size_t)snprintf(target, MAX_TARGET, "/api/v1/query?");
	int bad = add_param(target, &tn, "format", cfg.output);
	if (filter && filter[strspn(filter, " ")]) {
		/* Checked here, and host names looked up here: the server takes addresses
		 * only. */
		char ferr[QUERY_ERR_LEN];
		size_t fpos = 0;
		char *sent = filt_expand_names(filter, filt_resolve_system, ferr, sizeof(ferr),
					       &fpos);
		if (!sent) {
			fprintf(stderr, "tapflow-query: bad filter: %s\n", ferr);
			if (fpos <= strlen(filter))
				fprintf(stderr, "    %s\n    %*s^\n", filter, (int)fpos, "");
			status = 2;
			goto out;
		}
		bad |= add_param(target, &tn, "filter", sent);
		free(filter);
		filter = sent;  /* what the server's positions refer to */
	}
	if (cfg.time)
		bad |= add_param(target, &tn, "window", cfg.time);
	if (cfg.window)
		bad |= add_param(target, &tn, "window_mode", cfg.window);
	for (int i = 0; i < cfg.stat.n; i++)
		bad |= add_param(target, &tn, "stat", cfg.stat.v[i]);
	/* a top parameter counts as -n given (it sizes -A groups); a top from a config
	 * file only sizes the statistics, as locally */
	if (n_given || (cfg.top != 10 && cfg.stat.n))
		bad |= add_num(target, &tn, "top", cfg.top);
	if (cfg.aggregate)
		bad |= add_param(target, &tn, "aggr", cfg.aggregate);
	if (cfg.order)
		bad |= add_param(target, &tn, "order", cfg.order);
	if (cfg.count)
		bad |= add_num(target, &tn, "limit", cfg.count);
	if (cfg.max_flows)
		bad |= add_num(target, &tn, "max_flows", cfg.max_flows);
	if (cfg.series)
		bad |= add_num(target, &tn, "series", cfg.series);
	if (cfg.plain)
		bad |= add_param(target, &tn, "plain", "1");
	if (cfg.max_memory != QUERY_DEFAULT_MEMORY)
		bad |= add_num(target, &tn, "max_memory", cfg.max_memory);
	if (cfg.threads)
		bad |= add_num(target, &tn, "threads", cfg.threads);
	if (bad) {
		usage_err("the request is too long");
		goto out;
	}
	const char *token = cfg.token ? cfg.token : getenv("TAPFLOW_TOKEN");
	int rc;
	for (int attempt = 0;; attempt++) {
		rc = httpcli_get(&url, target, token, cfg.remote_timeout * 1000u, &resp, err,
				 sizeof(err));
		/* busy: the collector runs its limit of queries; wait a little, a few times */
		if (rc < 0 || resp.status != 503 || attempt == 3)
			break;
		unsigned wait = resp.retry_after ? resp.retry_after : 1;
		httpcli_resp_free(&resp);
		sleep(wait > 5 ? 5 : wait);
	}
	if (rc < 0) {
		fprintf(stderr, "tapflow-query: %s\n", err);
		status = 1;
		goto out;
	}
	if (resp.status == 200) {
		status = fwrite(resp.body, 1, resp.len, stdout) == resp.len && fflush(stdout) == 0 ?
			 0 : 1;
		goto out;
	}
	char msg[1024];
	long pos;
	api_error(resp.body, msg, sizeof(msg), &pos);
	if (!msg[0])
		snprintf(msg, sizeof(msg), "HTTP status %u", resp.status);
	if (resp.status == 400) {
		fprintf(stderr, "tapflow-query: %s\n", msg);
		if (pos >= 0 && filter && (size_t)pos <= strlen(filter))
			fprintf(stderr, "    %s\n    %*s^\n", filter, (int)pos, "");
		status = 2;
	} else if (resp.status == 401) {
		fprintf(stderr, "tapflow-query: %s: %s (give the collector's http_token with "
			"--token or TAPFLOW_TOKEN)\n", cfg.remote, msg);
		status = 1;
	} else {
		fprintf(stderr, "tapflow-query: %s: %s\n", cfg.remote, msg);
		status = 1;
	}
out:
	httpcli_resp_free(&resp);
	free(target);
	free(filter);
	opt_store_free(&st);
	return status;
}
