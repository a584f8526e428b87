/* test_httpapi.c: the collector's HTTP API and tapflow-query's HTTP client: the query
 * parameter parser (against a guard page, every prefix), listen addresses, bearer
 * auth, the response parser; then a real server on 127.0.0.1 over a store written
 * here: auth enforced, answers equal to a local query byte for byte, bad requests,
 * the row, byte, time and concurrency limits, and the statistics endpoints. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "httpapi.h"
#include "httpcli.h"
#include "nfdec.h"
#include "qout.h"
#include "query.h"
#include "store.h"
#include "udprx.h"
#include "tmpdir.h"

#define T0 1767225600000ull      /* 2026-01-01T00:00:00Z */
#define TOKEN "s3cret-Token_0123456789"

/* ---- helpers ---- */

/* Calls httpapi_parse_query on s copied to the end of a page followed by an
 * inaccessible one, so any read past the input faults. */
static int parse_guarded(const char *s, size_t len, struct httpapi_query *q, char *err,
			 size_t errlen, long *pos, const struct httpapi_limits *lim)
{
	long pg = sysconf(_SC_PAGESIZE);
	size_t span = ((len + (size_t)pg - 1) / (size_t)pg + 1) * (size_t)pg;
	uint8_t *m = mmap(NULL, span + (size_t)pg, PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_true(m != MAP_FAILED);
	assert_int_equal(mprotect(m + span, (size_t)pg, PROT_NONE), 0);
	char *p = (char *)m + span - len;
	memcpy(p, s, len);
	int rc = httpapi_parse_query(p, len, "/nonexistent", T0 + 7200000, lim, q, err, errlen,
				     pos);
	munmap(m, span + (size_t)pg);
	return rc;
}

static const struct httpapi_limits deflim = { 30000, 256u << 20, 100000, 16u << 20, 2, 0 };

static int parse(const char *s, struct httpapi_query *q, char *err)
{
	long pos;
	return parse_guarded(s, strlen(s), q, err, 256, &pos, &deflim);
}

static char tmpdirs[4][TEST_PATH_MAX];

static const char *mktmp(int i)
{
	assert_non_null(test_mkdtemp(tmpdirs[i], sizeof(tmpdirs[i]), "test_httpapi"));
	return tmpdirs[i];
}

static void rmtree(const char *d)
{
	char cmd[3 * TEST_PATH_MAX];
	if (!d[0])
		return;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", d);
	assert_int_equal(system(cmd), 0);
}

static void addr4(uint8_t a[16], uint8_t x, uint8_t y, uint8_t z, uint8_t w)
{
	const uint8_t v[4] = { x, y, z, w };
	flowrec_addr4(a, v);
}

/* n flows: src 10.0.0.(i%10), dst 192.0.2.(i%7), dport 80/443/53, bytes 100 + i,
 * packets 1 + i%3, one second apart; blocks of block_recs records. */
static void write_store(const char *dir, unsigned n, uint32_t block_recs)
{
	struct store_cfg sc;
	store_cfg_default(&sc, dir);
	sc.block_recs = block_recs;
	sc.nosync = 1;
	struct store_writer *w = store_writer_open(&sc, T0);
	assert_non_null(w);
	for (unsigned i = 0; i < n; i++) {
		struct flow_rec r;
		memset(&r, 0, sizeof(r));
		addr4(r.src, 10, 0, 0, (uint8_t)(i % 10));
		addr4(r.dst, 192, 0, 2, (uint8_t)(i % 7));
		addr4(r.exporter, 127, 0, 0, 1);
		r.sport = (uint16_t)(10000 + i % 1000);
		r.dport = (uint16_t)(i % 3 == 0 ? 80 : i % 3 == 1 ? 443 : 53);
		r.proto = r.dport == 53 ? 17 : 6;
		r.packets = 1 + i % 3;
		r.bytes = 100 + i;
		r.first_ms = T0 + (uint64_t)(i % 240) * 1000;
		r.last_ms = r.first_ms + 500;
		r.ipver = 4;
		r.sampling = 1;
		assert_int_equal(store_writer_add(w, &r), 0);
	}
	assert_int_equal(store_writer_close(w), 0);
}

static uint32_t snap_age_ms; /* 0: the default */

static struct httpapi *start(const char *dir, const char *token, struct httpapi_limits lim)
{
	struct httpapi_cfg c;
	char err[HTTPAPI_ERR_LEN];
	memset(&c, 0, sizeof(c));
	c.listen = "127.0.0.1:0";
	c.token = token;
	c.store_dir = dir;
	c.udp_listen = "127.0.0.1:9995";
	c.lim = lim;
	c.snapshot_max_age_ms = snap_age_ms;
	struct httpapi *api = httpapi_start(&c, err, sizeof(err));
	if (!api)
		fprintf(stderr, "httpapi_start: %s\n", err);
	assert_non_null(api);
	assert_true(httpapi_port(api) > 0);
	return api;
}

static void url_of(struct httpapi *api, struct httpcli_url *u)
{
	char s[64], err[256];
	snprintf(s, sizeof(s), "http://127.0.0.1:%u", httpapi_port(api));
	assert_int_equal(httpcli_parse_url(s, u, err, sizeof(err)), 0);
}

/* GET target; returns the status, *r keeps the answer (free it). */
static unsigned get(struct httpapi *api, const char *target, const char *token,
		    struct httpcli_resp *r)
{
	struct httpcli_url u;
	char err[256];
	url_of(api, &u);
	int rc = httpcli_get(&u, target, token, 20000, r, err, sizeof(err));
	if (rc < 0)
		fprintf(stderr, "GET %s: %s\n", target, err);
	assert_int_equal(rc, 0);
	return r->status;
}

/* Sends raw bytes as a request and parses the answer. */
static unsigned raw(struct httpapi *api, const char *req, struct httpcli_resp *r)
{
	struct sockaddr_in a;
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_port = htons(httpapi_port(api));
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(send(fd, req, strlen(req), MSG_NOSIGNAL), (ssize_t)strlen(req));
	size_t cap = 1 << 20, len = 0;
	char *buf = malloc(cap);
	ssize_t n;
	while ((n = recv(fd, buf + len, cap - len, 0)) > 0)
		len += (size_t)n;
	close(fd);
	assert_true(httpcli_parse_response(buf, len, r) > 0);
	free(buf);
	return r->status;
}

/* What tapflow-query prints for rq, rendered in memory as query_main.c does. */
static char *local_answer(struct query_req *rq, enum qout_fmt fmt, size_t *len)
{
	char *buf = NULL;
	FILE *f = open_memstream(&buf, len);
	struct query_result res;
	struct qout *o = qout_new(f, fmt, 0);
	rq->sink = qout_sink(o);
	assert_true(query_run(rq, &res) >= 0); /* 1 with a series: see query.c */
	assert_int_equal(qout_finish(o, rq, &res), 0);
	query_result_free(&res);
	qout_free(o);
	fclose(f);
	return buf;
}

/* ---- parsers ---- */

static void test_listen(void **state)
{
	(void)state;
	static const struct {
		const char *s;
		int ok, family, loopback;
		uint16_t port;
	} cases[] = {
		{ "9996", 1, AF_INET, 1, 9996 },
		{ ":9996", 1, AF_INET, 1, 9996 },
		{ "on", 1, AF_INET, 1, 9996 },
		{ "127.0.0.1:80", 1, AF_INET, 1, 80 },
		{ "127.1.2.3:80", 1, AF_INET, 1, 80 },
		{ "localhost:81", 1, AF_INET, 1, 81 },
		{ "0.0.0.0:9996", 1, AF_INET, 0, 9996 },
		{ "192.0.2.1:9996", 1, AF_INET, 0, 9996 },
		{ "[::1]:9996", 1, AF_INET6, 1, 9996 },
		{ "[::ffff:127.0.0.1]:1", 1, AF_INET6, 1, 1 },
		{ "[::]:9996", 1, AF_INET6, 0, 9996 },
		{ "[2001:db8::1]:0", 1, AF_INET6, 0, 0 },
		{ "", 0, 0, 0, 0 },
		{ "abc", 0, 0, 0, 0 },
		{ "1.2.3.4", 0, 0, 0, 0 },
		{ "::1:80", 0, 0, 0, 0 },
		{ "70000", 0, 0, 0, 0 },
		{ "[::1]", 0, 0, 0, 0 },
		{ "[::1]9996", 0, 0, 0, 0 },
		{ "example.org:80", 0, 0, 0, 0 },
		{ "127.0.0.1:-1", 0, 0, 0, 0 },
		{ "127.0.0.1:", 0, 0, 0, 0 },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct sockaddr_storage ss;
		socklen_t sl;
		int lo = -1;
		char err[256] = "";
		int rc = httpapi_parse_listen(cases[i].s, &ss, &sl, &lo, err, sizeof(err));
		if (!cases[i].ok) {
			assert_int_equal(rc, -EINVAL);
			assert_non_null(strstr(err, "HTTP listen address"));
			continue;
		}
		if (rc)
			fail_msg("'%s': %s", cases[i].s, err);
		assert_int_equal(ss.ss_family, cases[i].family);
		assert_int_equal(lo, cases[i].loopback);
		uint16_t port = ss.ss_family == AF_INET ?
				ntohs(((struct sockaddr_in *)&ss)->sin_port) :
				ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
		assert_int_equal(port, cases[i].port);
	}
}

static void test_auth(void **state)
{
	(void)state;
	assert_true(httpapi_auth_ok(TOKEN, "Bearer " TOKEN));
	assert_true(httpapi_auth_ok(TOKEN, "bearer " TOKEN));
	assert_true(httpapi_auth_ok(TOKEN, "BEARER   " TOKEN "  "));
	assert_false(httpapi_auth_ok(TOKEN, NULL));
	assert_false(httpapi_auth_ok(TOKEN, ""));
	assert_false(httpapi_auth_ok(TOKEN, TOKEN));
	assert_false(httpapi_auth_ok(TOKEN, "Basic " TOKEN));
	assert_false(httpapi_auth_ok(TOKEN, "Bearer"));
	assert_false(httpapi_auth_ok(TOKEN, "Bearer "));
	assert_false(httpapi_auth_ok(TOKEN, "Bearer s3cret"));          /* a prefix */
	assert_false(httpapi_auth_ok(TOKEN, "Bearer " TOKEN "x"));      /* longer */
	assert_false(httpapi_auth_ok(TOKEN, "Bearer S3cret-Token_0123456789")); /* case */
	assert_false(httpapi_auth_ok(TOKEN, "Bearer s3cret-Token_012345678X"));  /* last */
}

static void test_parse_ok(void **state)
{
	(void)state;
	struct httpapi_query q;
	char err[256];

	assert_int_equal(parse("", &q, err), 0);
	assert_int_equal(q.fmt, HTTPAPI_FMT_JSON);
	assert_int_equal(q.rq.ntables, 0);
	assert_null(q.rq.filter);
	assert_string_equal(q.rq.path, "/nonexistent");
	assert_int_equal(q.rq.max_memory, 256u << 20);

	assert_int_equal(parse("stat=srcip/bytes&top=5", &q, err), 0);
	assert_int_equal(q.rq.ntables, 1);
	assert_int_equal(q.rq.table[0].kind, QK_STAT);
	assert_int_equal(q.rq.table[0].key[0].field, QF_SRCIP);
	assert_int_equal(q.rq.table[0].order, QO_BYTES);
	assert_int_equal(q.rq.table[0].limit, 5);

	/* repeatable stat; '+' and %20 are spaces; %2F a slash */
	assert_int_equal(parse("stat=srcip&stat=dstport%2Fpackets&filter=proto%20tcp+and+port+443"
			       "&format=csv", &q, err), 0);
	assert_int_equal(q.rq.ntables, 2);
	assert_int_equal(q.rq.table[0].order, QO_FLOWS);
	assert_int_equal(q.rq.table[0].limit, 10);
	assert_int_equal(q.rq.table[1].key[0].field, QF_DSTPORT);
	assert_int_equal(q.rq.table[1].order, QO_PACKETS);
	assert_string_equal(q.rq.filter, "proto tcp and port 443");
	assert_int_equal(q.fmt, HTTPAPI_FMT_CSV);

	/* -A: limit from -c, else from -n only when given, else all */
	assert_int_equal(parse("aggr=srcip,dstport&order=bytes&limit=10", &q, err), 0);
	assert_int_equal(q.rq.ntables, 1);
	assert_int_equal(q.rq.table[0].kind, QK_AGGR);
	assert_int_equal(q.rq.table[0].nkey, 2);
	assert_int_equal(q.rq.table[0].key[1].field, QF_DSTPORT);
	assert_int_equal(q.rq.table[0].order, QO_BYTES);
	assert_int_equal(q.rq.table[0].limit, 10);
	assert_int_equal(parse("aggr=srcip&top=7", &q, err), 0);
	assert_int_equal(q.rq.table[0].limit, 7);
	assert_int_equal(parse("aggr=srcip", &q, err), 0);
	assert_int_equal(q.rq.table[0].limit, 0);
	assert_int_equal(q.rq.table[0].order, QO_NONE);

	/* -c alone lists flows */
	assert_int_equal(parse("limit=20&order=tstart&format=table&plain=1", &q, err), 0);
	assert_int_equal(q.rq.ntables, 1);
	assert_int_equal(q.rq.table[0].kind, QK_FLOWS);
	assert_int_equal(q.rq.table[0].limit, 20);
	assert_int_equal(q.rq.table[0].order, QO_TSTART);
	assert_int_equal(q.fmt, HTTPAPI_FMT_TABLE);
	assert_int_equal(q.plain, 1);

	/* windows: absolute, and relative to the server's clock */
	assert_int_equal(parse("window=2026-01-01T00:00:00Z-2026-01-01T01:00:00Z", &q, err), 0);
	assert_true(q.rq.has_window);
	assert_int_equal(q.rq.win.from_ms, T0);
	assert_int_equal(q.rq.win.to_ms, T0 + 3600000);
	assert_int_equal(q.rq.win_mode, QUERY_WIN_INSIDE);
	assert_int_equal(parse("window=-1h&window_mode=overlap", &q, err), 0);
	assert_int_equal(q.rq.win.from_ms, T0 + 3600000);
	assert_int_equal(q.rq.win.to_ms, T0 + 7200000);
	assert_int_equal(q.rq.win_mode, QUERY_WIN_OVERLAP);

	/* series; with a statistic each row gets one */
	assert_int_equal(parse("series=300", &q, err), 0);
	assert_int_equal(q.rq.series_s, 300);
	assert_int_equal(parse("series=60&stat=dstport/bytes&top=2", &q, err), 0);
	assert_int_equal(q.rq.table[0].series, 1);

	/* resources: a request may ask for less than the server's limits */
	assert_int_equal(parse("max_memory=1000000&threads=1&max_flows=5", &q, err), 0);
	assert_int_equal(q.rq.max_memory, 1000000);
	assert_int_equal(q.rq.threads, 1);
	assert_int_equal(q.rq.max_flows, 5);
	struct httpapi_limits two = deflim;
	two.threads = 2;
	long pos;
	assert_int_equal(parse_guarded("threads=8", 9, &q, err, sizeof(err), &pos, &two), 0);
	assert_int_equal(q.rq.threads, 2);
	assert_int_equal(parse_guarded("", 0, &q, err, sizeof(err), &pos, &two), 0);
	assert_int_equal(q.rq.threads, 2);

	/* empty pieces between '&' are tolerated; a parameter may be empty */
	assert_int_equal(parse("&&stat=proto&&filter=&", &q, err), 0);
	assert_int_equal(q.rq.ntables, 1);
	assert_string_equal(q.rq.filter, "");
}

static void test_parse_errors(void **state)
{
	(void)state;
	static const struct {
		const char *qs;
		const char *msg;        /* a piece of the error */
		long pos;               /* filter error position, or -1 */
	} cases[] = {
		{ "bogus=1", "unknown parameter 'bogus'", -1 },
		{ "=1", "without a name", -1 },
		{ "stat", "needs a value", -1 },
		{ "format=json&format=csv", "given twice", -1 },
		{ "format=xml", "format", -1 },
		{ "filter=port+foo", "foo", 5 },
		{ "filter=proto+tcp+and+(port+80", "", -1 },
		{ "filter=a%2", "percent-encoding", -1 },
		{ "filter=%zz", "percent-encoding", -1 },
		{ "filter=x%00y", "NUL", -1 },
		{ "%zz=1", "percent-encoding", -1 },
		{ "top=-1", "top", -1 },
		{ "top=1x", "top", -1 },
		{ "top=", "top", -1 },
		{ "top=100000001", "top", -1 },
		{ "limit=99999999999999999999999", "limit", -1 },
		{ "series=99999999", "series", -1 },
		{ "threads=65", "threads", -1 },
		{ "max_memory=268435457", "over this server's limit", -1 },
		{ "limit=5&stat=srcip", "with stat use top", -1 },
		{ "order=bytes", "give limit", -1 },
		{ "order=sideways&limit=3", "order", -1 },
		{ "stat=bogus", "bogus", -1 },
		{ "stat=srcip/sideways", "sideways", -1 },
		{ "aggr=srcip,bogus", "bogus", -1 },
		{ "window=yesterday", "", -1 },
		{ "window_mode=around", "window_mode", -1 },
		{ "plain=maybe", "plain", -1 },
		{ "stat=ip&stat=ip&stat=ip&stat=ip&stat=ip&stat=ip&stat=ip&stat=ip&stat=ip&stat=ip"
		  "&stat=ip&stat=ip&stat=ip&stat=ip&stat=ip&stat=ip&stat=ip", "stat", -1 },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct httpapi_query q;
		char err[256] = "";
		long pos = -7;
		int rc = parse_guarded(cases[i].qs, strlen(cases[i].qs), &q, err, sizeof(err), &pos,
				       &deflim);
		if (rc != -EINVAL)
			fail_msg("'%s' was accepted", cases[i].qs);
		assert_true(err[0] != 0);
		if (!strstr(err, cases[i].msg))
			fail_msg("'%s': error '%s' lacks '%s'", cases[i].qs, err, cases[i].msg);
		if (cases[i].pos >= 0)
			assert_int_equal(pos, cases[i].pos);
	}
	/* a filter past the limit, a query string past the URL limit */
	char *big = malloc(HTTPAPI_MAX_URL + 16);
	struct httpapi_query q;
	char err[256];
	long pos;
	strcpy(big, "filter=");
	memset(big + 7, 'a', HTTPAPI_MAX_FILTER);
	big[7 + HTTPAPI_MAX_FILTER] = 0;
	assert_int_equal(parse_guarded(big, strlen(big), &q, err, sizeof(err), &pos, &deflim),
			 -EINVAL);
	assert_non_null(strstr(err, "filter longer"));
	memset(big, 'a', HTTPAPI_MAX_URL + 1);
	assert_int_equal(parse_guarded(big, HTTPAPI_MAX_URL + 1, &q, err, sizeof(err), &pos,
				       &deflim), -EINVAL);
	free(big);
}

/* Every prefix of every case, against the guard page: no crash, no over-read. */
static void test_parse_prefixes(void **state)
{
	(void)state;
	static const char *const inputs[] = {
		"stat=srcip/bytes&top=5&filter=proto%20tcp+and+port+443&format=csv",
		"aggr=srcip,dstport&order=bytes&limit=10&window=-1h&window_mode=first",
		"filter=%28port+80%29+or+%28port+443%29&series=60&plain=true&threads=1",
		"filter=%", "filter=%4", "a", "&", "=", "==&&==",
	};
	for (size_t i = 0; i < sizeof(inputs) / sizeof(inputs[0]); i++) {
		size_t n = strlen(inputs[i]);
		for (size_t k = 0; k <= n; k++) {
			struct httpapi_query q;
			char err[256];
			long pos;
			int rc = parse_guarded(inputs[i], k, &q, err, sizeof(err), &pos, &deflim);
			assert_true(rc == 0 || rc == -EINVAL);
		}
	}
}

static void test_url(void **state)
{
	(void)state;
	struct httpcli_url u;
	char err[256];
	assert_int_equal(httpcli_parse_url("http://127.0.0.1:9996", &u, err, sizeof(err)), 0);
	assert_string_equal(u.host, "127.0.0.1");
	assert_string_equal(u.port, "9996");
	assert_string_equal(u.prefix, "");
	assert_int_equal(httpcli_parse_url("HTTP://collector.example/flows/", &u, err,
					   sizeof(err)), 0);
	assert_string_equal(u.host, "collector.example");
	assert_string_equal(u.port, "9996");
	assert_string_equal(u.prefix, "/flows");
	assert_int_equal(httpcli_parse_url("http://[::1]:80/x", &u, err, sizeof(err)), 0);
	assert_string_equal(u.host, "::1");
	assert_string_equal(u.port, "80");
	assert_string_equal(u.prefix, "/x");
	static const char *const bad[] = {
		"https://h:1", "127.0.0.1:9996", "http://", "http://:80", "http://h:0",
		"http://h:65536", "http://h:x", "http://[::1", "http://h:80?x", "http://u@h",
		"http://h#f",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (httpcli_parse_url(bad[i], &u, err, sizeof(err)) != -EINVAL)
			fail_msg("'%s' was accepted", bad[i]);

	char buf[64];
	size_t n = 0;
	assert_int_equal(httpcli_urlencode(buf, &n, sizeof(buf), "a b/c&d=é~"), 0);
	assert_string_equal(buf, "a%20b%2Fc%26d%3D%C3%A9~");
	n = 0;
	assert_int_equal(httpcli_urlencode(buf, &n, 8, "abcdefghij"), -1);
}

static void test_response(void **state)
{
	(void)state;
	struct httpcli_resp r;
	static const char cl[] = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
				 "Content-Length: 5\r\n\r\nhello";
	static const char ch[] = "HTTP/1.1 401 Unauthorized\r\nTransfer-Encoding: chunked\r\n"
				 "WWW-Authenticate: Bearer realm=\"tapflow\"\r\nRetry-After: 3\r\n"
				 "\r\n3\r\nabc\r\n2;ext=1\r\nde\r\n0\r\n\r\n";
	static const char eof[] = "HTTP/1.0 200 OK\r\n\r\nto the end";
	assert_int_equal(httpcli_parse_response(cl, strlen(cl), &r), (long)strlen(cl));
	assert_int_equal(r.status, 200);
	assert_string_equal(r.body, "hello");
	assert_string_equal(r.ctype, "application/json");
	httpcli_resp_free(&r);
	assert_int_equal(httpcli_parse_response(ch, strlen(ch), &r), (long)strlen(ch));
	assert_int_equal(r.status, 401);
	assert_int_equal(r.len, 5);
	assert_string_equal(r.body, "abcde");
	assert_string_equal(r.www_auth, "Bearer realm=\"tapflow\"");
	assert_int_equal(r.retry_after, 3);
	httpcli_resp_free(&r);
	assert_int_equal(httpcli_parse_response(eof, strlen(eof), &r), (long)strlen(eof));
	assert_string_equal(r.body, "to the end");
	httpcli_resp_free(&r);
	/* byte by byte: incomplete until the last byte */
	for (size_t k = 0; k < strlen(cl); k++)
		assert_int_equal(httpcli_parse_response(cl, k, &r), -2);
	for (size_t k = 0; k < strlen(ch); k++)
		assert_int_equal(httpcli_parse_response(ch, k, &r), -2);
	static const char *const bad[] = {
		"HTTP/2 200 OK\r\n\r\n", "HTTP/1.1 20 OK\r\n\r\n", "HTTP/1.1 099 x\r\n\r\n",
		"HTTP/1.1 200 OK\r\nno colon\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\naXY0\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999999\r\n\r\n",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (httpcli_parse_response(bad[i], strlen(bad[i]), &r) != -1)
			fail_msg("accepted: %s", bad[i]);
}

/* ---- the server ---- */

static void test_start_refusals(void **state)
{
	(void)state;
	struct httpapi_cfg c;
	char err[HTTPAPI_ERR_LEN];
	memset(&c, 0, sizeof(c));
	c.store_dir = "/nonexistent";
	c.listen = "0.0.0.0:0";
	assert_null(httpapi_start(&c, err, sizeof(err)));
	assert_non_null(strstr(err, "http_token"));
	c.listen = "[::]:0";
	c.token = "";
	assert_null(httpapi_start(&c, err, sizeof(err)));
	assert_non_null(strstr(err, "http_token"));
	c.token = "short";
	assert_null(httpapi_start(&c, err, sizeof(err)));
	assert_non_null(strstr(err, "16 to"));
	c.token = "has space in the token....";
	assert_null(httpapi_start(&c, err, sizeof(err)));
	c.listen = "nonsense";
	c.token = TOKEN;
	assert_null(httpapi_start(&c, err, sizeof(err)));
	assert_non_null(strstr(err, "listen address"));
	/* with a token, any address is fine */
	c.listen = "0.0.0.0:0";
	struct httpapi *api = httpapi_start(&c, err, sizeof(err));
	assert_non_null(api);
	httpapi_stop(api);
	/* a port in use */
	struct httpapi_limits lim = { 0 };
	api = start("/nonexistent", NULL, lim);
	char busy[32];
	snprintf(busy, sizeof(busy), "127.0.0.1:%u", httpapi_port(api));
	c.listen = busy;
	c.token = NULL;
	assert_null(httpapi_start(&c, err, sizeof(err)));
	assert_non_null(strstr(err, "cannot listen"));
	httpapi_stop(api);
}

static void test_auth_enforced(void **state)
{
	(void)state;
	const char *dir = mktmp(0);
	write_store(dir, 500, 4096);
	struct httpapi_limits lim = { 0 };
	struct httpapi *api = start(dir, TOKEN, lim);
	static const char *const targets[] = {
		"/api/v1/query?stat=srcip", "/api/v1/status", "/api/v1/exporters", "/metrics",
		"/nope",
	};
	for (size_t i = 0; i < sizeof(targets) / sizeof(targets[0]); i++) {
		struct httpcli_resp r;
		assert_int_equal(get(api, targets[i], NULL, &r), 401);
		assert_string_equal(r.www_auth, "Bearer realm=\"tapflow\"");
		assert_string_equal(r.ctype, "application/json");
		assert_non_null(strstr(r.body, "\"error\":\"this API needs 'Authorization: Bearer"));
		httpcli_resp_free(&r);
		assert_int_equal(get(api, targets[i], "wrong-token-0123456789", &r), 401);
		assert_non_null(strstr(r.www_auth, "error=\"invalid_token\""));
		assert_non_null(strstr(r.body, "invalid bearer token"));
		httpcli_resp_free(&r);
		assert_int_equal(get(api, targets[i], TOKEN, &r), i == 4 ? 404 : 200);
		httpcli_resp_free(&r);
	}
	struct httpcli_resp r;
	assert_int_equal(raw(api, "GET /metrics HTTP/1.1\r\nHost: x\r\nAuthorization: Basic "
			     "dXNlcjpwYXNz\r\nConnection: close\r\n\r\n", &r), 401);
	httpcli_resp_free(&r);
	httpapi_stop(api);
	rmtree(dir);
}

static void test_query_equals_local(void **state)
{
	(void)state;
	const char *dir = mktmp(0);
	write_store(dir, 3000, 1024);
	struct httpapi_limits lim = { 0 };
	struct httpapi *api = start(dir, NULL, lim);
	static const struct {
		const char *params;
		enum qout_fmt fmt;
	} cases[] = {
		{ "stat=srcip/bytes&top=3&format=json", QOUT_JSON },
		{ "stat=srcip/bytes&top=3&format=csv", QOUT_CSV },
		{ "stat=dstip&stat=dstport/packets&filter=proto+tcp&format=json", QOUT_JSON },
		{ "aggr=srcip,dstport&order=bytes&limit=5&format=csv", QOUT_CSV },
		{ "limit=4&order=bytes&format=json", QOUT_JSON },
		{ "series=60&format=json&window=2026-01-01T00:00:00Z-2026-01-01T00:02:00Z",
		  QOUT_JSON },
		{ "format=csv&filter=dst+port+53", QOUT_CSV },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char target[512], err[256];
		snprintf(target, sizeof(target), "/api/v1/query?threads=1&%s", cases[i].params);
		struct httpcli_resp r;
		assert_int_equal(get(api, target, NULL, &r), 200);
		/* the same request, built and rendered as tapflow-query does */
		struct httpapi_query q;
		long pos;
		assert_int_equal(httpapi_parse_query(target + 14, strlen(target + 14), dir,
						     T0, &lim, &q, err, sizeof(err), &pos), 0);
		size_t len;
		char *want = local_answer(&q.rq, cases[i].fmt, &len);
		if (r.len != len || memcmp(r.body, want, len))
			fail_msg("%s:\nremote: %s\nlocal:  %s", target, r.body, want);
		assert_string_equal(r.ctype, cases[i].fmt == QOUT_JSON ? "application/json" :
				    "text/csv; charset=utf-8");
		free(want);
		httpcli_resp_free(&r);
	}
	/* the flows that matched, seen through JSON */
	struct httpcli_resp r;
	assert_int_equal(get(api, "/api/v1/query?filter=dst+port+80", NULL, &r), 200);
	assert_non_null(strstr(r.body, "\"summary\":{\"flows\":1000,"));
	httpcli_resp_free(&r);
	httpapi_stop(api);
	rmtree(dir);
}

static void test_bad_requests(void **state)
{
	(void)state;
	struct httpapi_limits lim = { 0 };
	const char *dir = mktmp(0);
	write_store(dir, 100, 4096);
	struct httpapi *api = start(dir, NULL, lim);
	struct httpcli_resp r;

	assert_int_equal(get(api, "/api/v1/query?filter=port+foo", NULL, &r), 400);
	assert_string_equal(r.ctype, "application/json");
	assert_non_null(strstr(r.body, "\"error\":\"filter: "));
	assert_non_null(strstr(r.body, "\"position\":5}"));
	httpcli_resp_free(&r);
	assert_int_equal(get(api, "/api/v1/query?sort=bytes", NULL, &r), 400);
	assert_non_null(strstr(r.body, "unknown parameter 'sort'"));
	httpcli_resp_free(&r);
	assert_int_equal(get(api, "/api/v1/query?top=ten", NULL, &r), 400);
	httpcli_resp_free(&r);
	assert_int_equal(get(api, "/api/v1/query?window=2026-13-01", NULL, &r), 400);
	httpcli_resp_free(&r);
	assert_int_equal(get(api, "/api/v1/query?stat=srcip&stat=srcip&filter=%22", NULL, &r),
			 400);
	httpcli_resp_free(&r);
	assert_int_equal(get(api, "/api/v2/query", NULL, &r), 404);
	assert_non_null(strstr(r.body, "no such endpoint"));
	httpcli_resp_free(&r);
	assert_int_equal(raw(api, "POST /api/v1/query HTTP/1.1\r\nHost: x\r\nContent-Length: 3"
			     "\r\nConnection: close\r\n\r\nabc", &r), 405);
	assert_non_null(strstr(r.body, "only GET"));
	httpcli_resp_free(&r);
	/* a request target past the limit */
	size_t n = HTTPAPI_MAX_URL + 100;
	char *big = malloc(n + 128);
	int k = snprintf(big, n + 128, "GET /api/v1/query?filter=");
	memset(big + k, 'a', n - (size_t)k);
	strcpy(big + n, " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
	assert_int_equal(raw(api, big, &r), 414);
	httpcli_resp_free(&r);
	free(big);
	/* the server still answers */
	assert_int_equal(get(api, "/api/v1/query", NULL, &r), 200);
	httpcli_resp_free(&r);
	httpapi_stop(api);
	rmtree(dir);
}

struct bg_get {
	struct httpapi *api;
	const char *target;
	struct httpcli_resp r;
	unsigned status;
};

static void *bg_get_run(void *arg)
{
	struct bg_get *b = arg;
	b->status = get(b->api, b->target, NULL, &b->r);
	return NULL;
}

static void test_limits(void **state)
{
	(void)state;
	const char *dir = mktmp(0);
	write_store(dir, 3000, 1024);
	struct httpcli_resp r;

	/* rows: a listing over the cap stops early with 413; under it is fine */
	struct httpapi_limits lim = { 0 };
	lim.max_rows = 50;
	struct httpapi *api = start(dir, NULL, lim);
	assert_int_equal(get(api, "/api/v1/query?limit=51", NULL, &r), 413);
	assert_non_null(strstr(r.body, "more than 50 rows"));
	httpcli_resp_free(&r);
	assert_int_equal(get(api, "/api/v1/query?aggr=srcip,dstip", NULL, &r), 413);
	httpcli_resp_free(&r);
	assert_int_equal(get(api, "/api/v1/query?series=1", NULL, &r), 413); /* 240 points */
	httpcli_resp_free(&r);
	assert_int_equal(get(api, "/api/v1/query?limit=50", NULL, &r), 200);
	httpcli_resp_free(&r);
	httpapi_stop(api);

	/* bytes */
	lim.max_rows = 0;
	lim.max_body = 2000;
	api = start(dir, NULL, lim);
	assert_int_equal(get(api, "/api/v1/query?limit=100&format=json", NULL, &r), 413);
	assert_non_null(strstr(r.body, "larger than 2000 bytes"));
	httpcli_resp_free(&r);
	assert_int_equal(get(api, "/api/v1/query?format=csv", NULL, &r), 200);
	httpcli_resp_free(&r);
	httpapi_stop(api);

	/* memory: the engine's own refusal becomes 413 */
	lim.max_body = 0;
	lim.max_memory = 4096;
	api = start(dir, NULL, lim);
	assert_int_equal(get(api, "/api/v1/query?limit=1000&order=bytes", NULL, &r), 413);
	assert_non_null(strstr(r.body, "http_query_memory"));
	httpcli_resp_free(&r);
	httpapi_stop(api);
	rmtree(dir);

	/* time: many small blocks and a 1 ms limit */
	dir = mktmp(0);
	write_store(dir, 60000, 32);
	memset(&lim, 0, sizeof(lim));
	lim.timeout_ms = 1;
	lim.threads = 1;
	api = start(dir, NULL, lim);
	assert_int_equal(get(api, "/api/v1/query?aggr=srcip,dstip,srcport", NULL, &r), 504);
	assert_non_null(strstr(r.body, "longer than 1 ms"));
	httpcli_resp_free(&r);
	assert_int_equal(get(api, "/api/v1/status", NULL, &r), 200);
	assert_non_null(strstr(r.body, "\"timeouts\":1,"));
	httpcli_resp_free(&r);
	httpapi_stop(api);
	rmtree(dir);
}

/* A store whose only file is a FIFO: a query blocks opening it until we open the
 * other end, so the test decides when the query ends. */
static void test_busy(void **state)
{
	(void)state;
	const char *dir = mktmp(0);
	char path[256];
	snprintf(path, sizeof(path), "%s/2026", dir);
	assert_int_equal(mkdir(path, 0755), 0);
	snprintf(path, sizeof(path), "%s/2026/01", dir);
	assert_int_equal(mkdir(path, 0755), 0);
	snprintf(path, sizeof(path), "%s/2026/01/01", dir);
	assert_int_equal(mkdir(path, 0755), 0);
	snprintf(path, sizeof(path), "%s/2026/01/01/tf-202601010000.tfs", dir);
	assert_int_equal(mkfifo(path, 0644), 0);

	struct httpapi_limits lim = { 0 };
	lim.max_queries = 1;
	lim.threads = 1;
	struct httpapi *api = start(dir, NULL, lim);
	struct bg_get slow = { api, "/api/v1/query", { 0 }, 0 };
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, bg_get_run, &slow), 0);
	/* the query counts as running from its start; it then waits in open(2) */
	struct httpcli_resp r;
	for (int i = 0;; i++) {
		assert_true(i < 2000);
		assert_int_equal(get(api, "/api/v1/status", NULL, &r), 200);
		int running = strstr(r.body, "\"running\":1,") != NULL;
		httpcli_resp_free(&r);
		if (running)
			break;
		usleep(2000);
	}
	assert_int_equal(get(api, "/api/v1/query", NULL, &r), 503);
	assert_int_equal(r.retry_after, 1);
	assert_non_null(strstr(r.body, "1 queries are running"));
	httpcli_resp_free(&r);
	/* status is answered while the query runs */
	assert_int_equal(get(api, "/api/v1/status", NULL, &r), 200);
	assert_non_null(strstr(r.body, "\"running\":1,"));
	assert_non_null(strstr(r.body, "\"busy\":1,"));
	httpcli_resp_free(&r);
	/* open the other end once the query waits on it: it then reads an empty file */
	int fd = -1;
	for (int i = 0; i < 2000 && fd < 0; i++) {
		fd = open(path, O_WRONLY | O_NONBLOCK);
		if (fd < 0)
			usleep(2000);
	}
	assert_true(fd >= 0);
	close(fd);
	pthread_join(t, NULL);
	assert_int_equal(slow.status, 200);
	assert_non_null(strstr(slow.r.body, "\"summary\":{\"flows\":0,"));
	httpcli_resp_free(&slow.r);
	/* the slot is free again */
	assert_int_equal(unlink(path), 0);
	assert_int_equal(get(api, "/api/v1/query", NULL, &r), 200);
	httpcli_resp_free(&r);
	httpapi_stop(api);
	rmtree(dir);
}

/* ---- statistics ---- */

static size_t v5_datagram(uint8_t *b, uint32_t seq, unsigned nrec)
{
	memset(b, 0, 24 + 48 * nrec);
	b[1] = 5;
	b[3] = (uint8_t)nrec;
	b[4] = 0, b[5] = 0, b[6] = 0x27, b[7] = 0x10;          /* uptime 10 s */
	b[8] = 0x69, b[9] = 0x55, b[10] = 0xb9, b[11] = 0x00;  /* 2026-01-01 */
	b[16] = (uint8_t)(seq >> 24), b[17] = (uint8_t)(seq >> 16);
	b[18] = (uint8_t)(seq >> 8), b[19] = (uint8_t)seq;
	for (unsigned i = 0; i < nrec; i++) {
		uint8_t *r = b + 24 + 48 * i;
		r[0] = 10, r[3] = (uint8_t)(i + 1);
		r[4] = 192, r[5] = 0, r[6] = 2, r[7] = 1;
		r[19] = 1;                              /* packets */
		r[23] = 100;                            /* bytes */
		r[38] = 6;
	}
	return 24 + 48 * nrec;
}

struct publisher {
	struct httpapi *api;
	struct udprx *rx;
	struct nfdec *dec;
	struct store_writer_stats ws;
	atomic_int stop;
	atomic_int published;
};

/* What the collector's decode thread does: publish when asked. */
static void *publisher_run(void *arg)
{
	struct publisher *p = arg;
	while (!p->stop) {
		if (httpapi_wants_snapshot(p->api)) {
			assert_int_equal(httpapi_publish(p->api, p->rx, p->dec, &p->ws, T0), 0);
			p->published++;
		}
		usleep(1000);
	}
	return NULL;
}

static void test_stats(void **state)
{
	(void)state;
	struct udprx rx;
	memset(&rx, 0, sizeof(rx));
	pthread_mutex_init(&rx.mu, NULL);
	rx.datagrams = 3;
	rx.bytes = 408;
	rx.denied = 1;
	rx.kernel_drops = 4;
	rx.queue_full = 5;
	struct nfdec *dec = nfdec_new(NULL);
	assert_non_null(dec);
	uint8_t ex[16], dg[24 + 48 * 3];
	addr4(ex, 192, 0, 2, 9);
	size_t n = v5_datagram(dg, 0, 2);
	assert_int_equal(nfdec_datagram(dec, ex, dg, n, T0, NULL, NULL), 0);
	n = v5_datagram(dg, 5, 3); /* 3 records missed */
	assert_int_equal(nfdec_datagram(dec, ex, dg, n, T0, NULL, NULL), 0);
	assert_true(nfdec_datagram(dec, ex, dg, 10, T0, NULL, NULL) < 0); /* short */

	const char *dir = mktmp(0);
	write_store(dir, 10, 4096);
	struct httpapi_limits lim = { 0 };
	snap_age_ms = 1; /* every request asks for a fresh snapshot */
	struct httpapi *api = start(dir, NULL, lim);
	snap_age_ms = 0;
	struct publisher p = { api, &rx, dec, { 0 }, 0, 0 };
	p.ws.records = 10;
	p.ws.blocks = 1;
	p.ws.dropped = 2;
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, publisher_run, &p), 0);
	struct httpcli_resp r;

	assert_int_equal(get(api, "/api/v1/status", NULL, &r), 200);
	static const char *const want_status[] = {
		"\"version\":\"", "\"uptime_s\":", "\"files\":1,", "\"records\":10,", "\"dropped\":2}",
		"\"listen\":{\"udp\":\"127.0.0.1:9995\",\"http\":\"127.0.0.1:",
		"\"auth\":false",
		("\"receive\":{\"datagrams\":3,\"bytes\":408,\"denied\":1,\"socket_drops\":4,"),
		"\"queue\":{\"drops\":5}",
		"\"decode\":{\"datagrams\":3,\"records\":5,", "\"errors\":1,", "\"short\":1,",
		"\"exporters\":1,",
	};
	for (size_t i = 0; i < sizeof(want_status) / sizeof(want_status[0]); i++)
		if (!strstr(r.body, want_status[i]))
			fail_msg("status lacks %s:\n%s", want_status[i], r.body);
	char want_dir[TEST_PATH_MAX + 32];
	snprintf(want_dir, sizeof(want_dir), "\"store\":{\"dir\":\"%s\",", dir);
	if (!strstr(r.body, want_dir))
		fail_msg("status lacks %s:\n%s", want_dir, r.body);
	httpcli_resp_free(&r);

	assert_int_equal(get(api, "/api/v1/exporters", NULL, &r), 200);
	static const char *const want_exp[] = {
		("\"exporters\":[{\"address\":\"192.0.2.9\",\"datagrams\":2,\"records\":5,"
		 "\"records_v5\":5,\"records_v9\":0,\"records_ipfix\":0,"),
		"\"sequence_gaps\":1,\"sequence_lost\":3,", "\"decode_errors\":1,",
		("\"domains\":[{\"version\":5,\"domain_id\":0,\"datagrams\":2,\"records\":5,"
		 "\"sequence_gaps\":1,\"sequence_lost\":3,"),
		"\"sampling\":1,",
	};
	for (size_t i = 0; i < sizeof(want_exp) / sizeof(want_exp[0]); i++)
		if (!strstr(r.body, want_exp[i]))
			fail_msg("exporters lacks %s:\n%s", want_exp[i], r.body);
	httpcli_resp_free(&r);

	assert_int_equal(get(api, "/metrics", NULL, &r), 200);
	assert_string_equal(r.ctype, "text/plain; version=0.0.4; charset=utf-8");
	static const char *const want_m[] = {
		"# HELP tapflow_udp_datagrams_total ",
		("# TYPE tapflow_udp_datagrams_total counter\ntapflow_udp_datagrams_total 3\n"),
		"\ntapflow_udp_socket_drops_total 4\n", "\ntapflow_queue_drops_total 5\n",
		"\ntapflow_decode_records_total 5\n",
		"\ntapflow_decode_errors_total{reason=\"short\"} 1\n",
		"\ntapflow_store_files 1\n", "\ntapflow_store_dropped_total 2\n",
		"\ntapflow_exporter_records_total{exporter=\"192.0.2.9\",version=\"5\"} 5\n",
		("\ntapflow_exporter_sequence_lost_total{exporter=\"192.0.2.9\",version=\"5\","
		 "domain=\"0\"} 3\n"),
		"# TYPE tapflow_templates gauge\n",
	};
	for (size_t i = 0; i < sizeof(want_m) / sizeof(want_m[0]); i++)
		if (!strstr(r.body, want_m[i]))
			fail_msg("metrics lack %s:\n%s", want_m[i], r.body);
	/* every sample line follows its family's HELP and TYPE */
	char *save, *body = strdup(r.body);
	char family[128] = "";
	for (char *l = strtok_r(body, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
		if (!strncmp(l, "# TYPE ", 7)) {
			snprintf(family, sizeof(family), "%s", l + 7);
			*strchr(family, ' ') = 0;
			continue;
		}
		if (l[0] == '#')
			continue;
		size_t fl = strlen(family);
		assert_true(fl && !strncmp(l, family, fl) && (l[fl] == ' ' || l[fl] == '{'));
	}
	free(body);
	httpcli_resp_free(&r);

	/* fresh numbers on demand: counters moved, the next answer shows them */
	pthread_mutex_lock(&rx.mu);
	rx.datagrams = 30;
	pthread_mutex_unlock(&rx.mu);
	p.stop = 1;
	pthread_join(t, NULL);
	p.stop = 0;
	assert_int_equal(pthread_create(&t, NULL, publisher_run, &p), 0);
	usleep(5000); /* the snapshot is now older than its 1 ms maximum age */
	assert_int_equal(get(api, "/metrics", NULL, &r), 200);
	assert_non_null(strstr(r.body, "\ntapflow_udp_datagrams_total 30\n"));
	httpcli_resp_free(&r);
	p.stop = 1;
	pthread_join(t, NULL);
	assert_true(p.published >= 2); /* the first request, and the one after the change */
	httpapi_stop(api);
	nfdec_free(dec);
	pthread_mutex_destroy(&rx.mu);
	rmtree(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_listen),
		cmocka_unit_test(test_auth),
		cmocka_unit_test(test_parse_ok),
		cmocka_unit_test(test_parse_errors),
		cmocka_unit_test(test_parse_prefixes),
		cmocka_unit_test(test_url),
		cmocka_unit_test(test_response),
		cmocka_unit_test(test_start_refusals),
		cmocka_unit_test(test_auth_enforced),
		cmocka_unit_test(test_query_equals_local),
		cmocka_unit_test(test_bad_requests),
		cmocka_unit_test(test_limits),
		cmocka_unit_test(test_busy),
		cmocka_unit_test(test_stats),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
