/* test_export.c: the exporter against real UDP sockets bound on 127.0.0.1 and ::1:
 * datagrams fit the MTU, templates lead and are refreshed by count and by time, a
 * datagram waits at most 1 s, several collectors get identical bytes, a collector
 * that is not listening only counts errors, and bad destinations fail clearly.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bytes.h"
#include "export.h"
#include "nf9enc.h"

#define T0 1700000000000ull

struct rx {
	int fd;
	int rcvbuf;     /* granted receive buffer (the kernel's doubled figure) */
	char dest[64];
};

/* Binds a UDP socket on the loopback of family af, port 0; returns -1 if the family
 * is unavailable. dest receives "addr:port" for the exporter. */
static int rx_open(struct rx *r, int af)
{
	struct sockaddr_storage ss = { 0 };
	socklen_t sl;
	r->fd = socket(af, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (r->fd < 0)
		return -1;
	/* Whole exports arrive before the test reads them: a buffer past net.core.rmem_max
	 * (privileged; CI runs as root), else what rmem_max allows (r->rcvbuf says). */
	int big = 8 << 20, got = 0;
	socklen_t gl = sizeof(got);
	if (setsockopt(r->fd, SOL_SOCKET, SO_RCVBUFFORCE, &big, sizeof(big)) < 0)
		setsockopt(r->fd, SOL_SOCKET, SO_RCVBUF, &big, sizeof(big));
	getsockopt(r->fd, SOL_SOCKET, SO_RCVBUF, &got, &gl);
	r->rcvbuf = got;
	if (af == AF_INET) {
		struct sockaddr_in *a = (struct sockaddr_in *)&ss;
		a->sin_family = AF_INET;
		a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		sl = sizeof(*a);
	} else {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
		a->sin6_family = AF_INET6;
		a->sin6_addr = in6addr_loopback;
		sl = sizeof(*a);
	}
	if (bind(r->fd, (struct sockaddr *)&ss, sl) < 0 ||
	    getsockname(r->fd, (struct sockaddr *)&ss, &sl) < 0) {
		close(r->fd);
		r->fd = -1;
		return -1;
	}
	if (af == AF_INET)
		snprintf(r->dest, sizeof(r->dest), "127.0.0.1:%u",
			 ntohs(((struct sockaddr_in *)&ss)->sin_port));
	else
		snprintf(r->dest, sizeof(r->dest), "[::1]:%u",
			 ntohs(((struct sockaddr_in6 *)&ss)->sin6_port));
	return 0;
}

/* Receives one datagram, waiting up to 2 s for it to arrive. Returns its length, or
 * -1 if none came. */
static ssize_t rx_one(struct rx *r, uint8_t *buf, size_t cap, int wait_ms)
{
	struct pollfd p = { .fd = r->fd, .events = POLLIN };
	if (poll(&p, 1, wait_ms) != 1)
		return -1;
	return recv(r->fd, buf, cap, 0);
}

/* What the tests read back from one datagram. */
struct dg {
	size_t len;
	uint16_t count;
	uint32_t sequence;
	uint32_t source_id;
	int first_set;   /* id of the first flowset */
	int has_tpl;     /* a template flowset (id 0) is present */
	int has_opt;     /* an options template flowset (id 1) is present */
	int flows;       /* records in flowsets 256/257 */
};

static void parse(const uint8_t *b, size_t len, struct dg *g)
{
	memset(g, 0, sizeof(*g));
	g->len = len;
	assert_true(len >= 20);
	assert_int_equal(ld_be16(b), 9);
	g->count = ld_be16(b + 2);
	g->sequence = ld_be32(b + 12);
	g->source_id = ld_be32(b + 16);
	g->first_set = -1;
	size_t off = 20;
	while (off < len) {
		assert_true(off + 4 <= len);
		uint16_t id = ld_be16(b + off), sl = ld_be16(b + off + 2);
		assert_true(sl >= 4 && off + sl <= len);
		if (g->first_set < 0)
			g->first_set = id;
		if (id == 0)
			g->has_tpl = 1;
		else if (id == 1)
			g->has_opt = 1;
		else if (id == NF9_TPL_V4)
			g->flows += (sl - 4) / nf9enc_reclen(NF9_TPL_V4);
		else if (id == NF9_TPL_V6)
			g->flows += (sl - 4) / nf9enc_reclen(NF9_TPL_V6);
		off += sl;
	}
	assert_int_equal(off, len);
}

static void mkflow(struct flow_rec *r, uint32_t i, int v6)
{
	memset(r, 0, sizeof(*r));
	if (v6) {
		for (int k = 0; k < 16; k++)
			r->src[k] = r->dst[k] = (uint8_t)k;
		st_be32(r->src + 12, i);
		r->ipver = 6;
	} else {
		uint8_t a[4], b[4] = { 10, 9, 8, 7 };
		st_be32(a, 0x0a000000 | i);
		flowrec_addr4(r->src, a);
		flowrec_addr4(r->dst, b);
		r->ipver = 4;
	}
	r->packets = i + 1;
	r->bytes = 100 * (i + 1);
	r->first_ms = T0 + i;
	r->last_ms = T0 + i + 10;
	r->proto = 6;
	r->sport = (uint16_t)i;
	r->dport = 80;
}

static struct export_cfg base_cfg(const char *dest)
{
	struct export_cfg c;
	memset(&c, 0, sizeof(c));
	c.dest[0] = dest;
	c.ndest = 1;
	c.source_id = 77;
	c.boot_ms = T0 - 60000;
	c.sampling_interval = 1;
	return c;
}

/* Receives every datagram the exporter says it sent and checks each parses, fits cap,
 * and has consecutive sequence numbers starting at seq0. Returns the total flows. */
static int rx_all(struct rx *r, struct exporter *x, size_t cap, struct dg *out, size_t nout)
{
	uint8_t buf[65536];
	int flows = 0;
	uint64_t n = export_stats(x)->datagrams;
	assert_true(n <= nout);
	for (uint64_t i = 0; i < n; i++) {
		ssize_t len = rx_one(r, buf, sizeof(buf), 2000);
		assert_true(len > 0);
		assert_true((size_t)len <= cap);
		parse(buf, (size_t)len, &out[i]);
		assert_int_equal(out[i].sequence, (uint32_t)i);
		assert_int_equal(out[i].source_id, 77);
		flows += out[i].flows;
	}
	assert_int_equal(rx_one(r, buf, sizeof(buf), 0), -1); /* nothing more */
	return flows;
}

/* 3,000 mixed flows at MTU 576 (548-byte datagrams) and 1500: every datagram fits,
 * flows arrive complete, the first datagram leads with the templates and the counters
 * agree with what arrived. */
static void test_mtu_and_counts(void **state)
{
	(void)state;
	static const uint32_t mtus[] = { 576, 0, 9000 };
	static struct dg g[2000];
	for (int m = 0; m < 3; m++) {
		struct rx r;
		char err[256];
		assert_int_equal(rx_open(&r, AF_INET), 0);
		if (r.rcvbuf < 8 << 20) { /* 3,000 flows at MTU 576 overflow a default buffer */
			close(r.fd);
			skip();
		}
		struct export_cfg c = base_cfg(r.dest);
		c.mtu = mtus[m];
		c.tpl_every_pkts = 20;
		struct exporter *x = export_new(&c, err, sizeof(err));
		assert_non_null(x);
		for (uint32_t i = 0; i < 3000; i++) {
			struct flow_rec f;
			mkflow(&f, i, i % 3 == 0);
			export_flow(x, &f, T0 + 100);
		}
		export_flush(x, T0 + 200);
		const struct export_stats *s = export_stats(x);
		size_t cap = (mtus[m] ? mtus[m] : 1500) - 28;
		int flows = rx_all(&r, x, cap, g, 2000);
		assert_int_equal(flows, 3000);
		assert_int_equal(s->flows, 3000);
		assert_int_equal(s->records, 3000);
		assert_int_equal(s->send_errors, 0);
		assert_int_equal(g[0].first_set, 0);
		assert_true(g[0].has_tpl && g[0].has_opt);
		/* the datagrams are full: all but the last leave less than a v6 record free */
		for (uint64_t i = 0; i + 1 < s->datagrams; i++)
			assert_true(g[i].len + 4 + nf9enc_reclen(NF9_TPL_V6) + 3 > cap);
		/* > 32 datagrams: several sendmmsg batches */
		if (mtus[m] != 9000)
			assert_true(s->datagrams > 32);
		export_free(x);
		close(r.fd);
	}
}

/* tpl_every_pkts 3: templates lead datagrams 0, 3, 6, ... and only those. */
static void test_template_refresh_by_count(void **state)
{
	(void)state;
	static struct dg g[200];
	struct rx r;
	char err[256];
	assert_int_equal(rx_open(&r, AF_INET), 0);
	struct export_cfg c = base_cfg(r.dest);
	c.tpl_every_pkts = 3;
	c.tpl_every_secs = 0;
	struct exporter *x = export_new(&c, err, sizeof(err));
	assert_non_null(x);
	for (uint32_t i = 0; i < 500; i++) {
		struct flow_rec f;
		mkflow(&f, i, 0);
		export_flow(x, &f, T0 + i * 100); /* 50 s of export clock: time never counts */
	}
	export_flush(x, T0 + 60000);
	const struct export_stats *s = export_stats(x);
	assert_int_equal(rx_all(&r, x, 1472, g, 200), 500);
	assert_true(s->datagrams >= 10);
	uint64_t tpl = 0;
	for (uint64_t i = 0; i < s->datagrams; i++) {
		int want = i % 3 == 0;
		assert_int_equal(g[i].has_tpl, want);
		assert_int_equal(g[i].has_opt, want);
		if (want)
			assert_int_equal(g[i].first_set, 0);
		tpl += (uint64_t)want;
	}
	assert_int_equal(s->templates, tpl);
	export_free(x);
	close(r.fd);
}

/* tpl_every_secs 10: templates go out again once 10 s of export clock have passed,
 * by tick on a quiet link and at the head of the next datagram under load. A datagram
 * with flows waits for tick no longer than 1 s. */
static void test_template_refresh_by_time_and_tick(void **state)
{
	(void)state;
	uint8_t buf[2048];
	struct dg g;
	struct rx r;
	char err[256];
	assert_int_equal(rx_open(&r, AF_INET), 0);
	struct export_cfg c = base_cfg(r.dest);
	c.tpl_every_pkts = 0;
	c.tpl_every_secs = 10;
	struct exporter *x = export_new(&c, err, sizeof(err));
	assert_non_null(x);
	const struct export_stats *s = export_stats(x);
	struct flow_rec f;
	mkflow(&f, 1, 0);

	export_flow(x, &f, T0);
	export_tick(x, T0 + 999);
	assert_int_equal(s->datagrams, 0); /* open less than 1 s: still waiting */
	export_tick(x, T0 + 1000);
	assert_int_equal(s->datagrams, 1);
	parse(buf, (size_t)rx_one(&r, buf, sizeof(buf), 2000), &g);
	assert_true(g.has_tpl && g.flows == 1 && g.first_set == 0);

	export_flow(x, &f, T0 + 2000);
	export_tick(x, T0 + 3000);
	parse(buf, (size_t)rx_one(&r, buf, sizeof(buf), 2000), &g);
	assert_true(!g.has_tpl && g.flows == 1);

	/* quiet: nothing at 9.999 s, a template-only datagram at 10 s */
	export_tick(x, T0 + 9999);
	assert_int_equal(s->datagrams, 2);
	export_tick(x, T0 + 10000);
	assert_int_equal(s->datagrams, 3);
	assert_int_equal(s->templates, 2);
	parse(buf, (size_t)rx_one(&r, buf, sizeof(buf), 2000), &g);
	assert_true(g.has_tpl && g.has_opt && g.flows == 0);
	assert_int_equal(g.count, 4);

	/* busy: the refresh leads the first datagram started after 20 s */
	export_flow(x, &f, T0 + 15000);
	export_flush(x, T0 + 15000);
	parse(buf, (size_t)rx_one(&r, buf, sizeof(buf), 2000), &g);
	assert_true(!g.has_tpl && g.flows == 1);
	export_flow(x, &f, T0 + 20000);
	export_flush(x, T0 + 20000);
	parse(buf, (size_t)rx_one(&r, buf, sizeof(buf), 2000), &g);
	assert_true(g.has_tpl && g.flows == 1 && g.first_set == 0);
	assert_int_equal(s->templates, 3);

	/* a tick while a young datagram is open keeps it open and intact */
	export_flow(x, &f, T0 + 21000);
	export_tick(x, T0 + 21500);
	export_flow(x, &f, T0 + 21600);
	export_flush(x, T0 + 21700);
	parse(buf, (size_t)rx_one(&r, buf, sizeof(buf), 2000), &g);
	assert_int_equal(g.flows, 2);
	assert_int_equal(s->records, 6);
	assert_int_equal(rx_one(&r, buf, sizeof(buf), 0), -1);
	export_free(x);
	close(r.fd);
}

/* The tick that moves a young open datagram behind sent ones keeps its bytes. */
static void test_tick_with_queue(void **state)
{
	(void)state;
	static struct dg g[64];
	struct rx r;
	char err[256];
	assert_int_equal(rx_open(&r, AF_INET), 0);
	struct export_cfg c = base_cfg(r.dest);
	struct exporter *x = export_new(&c, err, sizeof(err));
	assert_non_null(x);
	/* ~5 full datagrams queued, one open */
	for (uint32_t i = 0; i < 120; i++) {
		struct flow_rec f;
		mkflow(&f, i, 0);
		export_flow(x, &f, T0);
	}
	export_tick(x, T0 + 10); /* sends the full ones, keeps the open one */
	uint64_t sent = export_stats(x)->datagrams;
	assert_true(sent >= 4);
	export_flush(x, T0 + 20);
	assert_int_equal(export_stats(x)->datagrams, sent + 1);
	assert_int_equal(rx_all(&r, x, 1472, g, 64), 120);
	export_free(x);
	close(r.fd);
}

/* Two collectors (IPv4 and IPv6) receive byte-identical datagrams, sized for the
 * IPv6 one (MTU minus 48). */
static void test_two_destinations(void **state)
{
	(void)state;
	struct rx a, b;
	char err[256];
	assert_int_equal(rx_open(&a, AF_INET), 0);
	if (rx_open(&b, AF_INET6) < 0) {
		close(a.fd);
		skip();
	}
	struct export_cfg c = base_cfg(a.dest);
	c.dest[1] = b.dest;
	c.ndest = 2;
	c.mtu = 1280;
	struct exporter *x = export_new(&c, err, sizeof(err));
	assert_non_null(x);
	for (uint32_t i = 0; i < 1000; i++) {
		struct flow_rec f;
		mkflow(&f, i, i & 1);
		export_flow(x, &f, T0);
	}
	export_flush(x, T0);
	uint64_t n = export_stats(x)->datagrams;
	assert_true(n > 32);
	for (uint64_t i = 0; i < n; i++) {
		uint8_t p[2048], q[2048];
		ssize_t la = rx_one(&a, p, sizeof(p), 2000);
		ssize_t lb = rx_one(&b, q, sizeof(q), 2000);
		assert_true(la > 0 && la <= 1280 - 48);
		assert_int_equal(la, lb);
		assert_memory_equal(p, q, (size_t)la);
		assert_int_equal(ld_be32(p + 12), (uint32_t)i);
	}
	assert_int_equal(export_stats(x)->send_errors, 0);
	export_free(x);
	close(a.fd);
	close(b.fd);
}

/* Hostnames resolve (localhost) and IPv6 collectors work on their own. */
static void test_hostname_and_v6(void **state)
{
	(void)state;
	uint8_t buf[2048];
	struct dg g;
	struct rx r;
	char err[256], dest[64];
	assert_int_equal(rx_open(&r, AF_INET), 0);
	snprintf(dest, sizeof(dest), "localhost:%s", strchr(r.dest, ':') + 1);
	struct export_cfg c = base_cfg(dest);
	struct exporter *x = export_new(&c, err, sizeof(err));
	assert_non_null(x);
	struct flow_rec f;
	mkflow(&f, 5, 1);
	export_flow(x, &f, T0);
	export_flush(x, T0);
	parse(buf, (size_t)rx_one(&r, buf, sizeof(buf), 2000), &g);
	assert_int_equal(g.flows, 1);
	export_free(x);
	close(r.fd);

	if (rx_open(&r, AF_INET6) < 0)
		skip();
	/* MTU 1192 over IPv6 leaves 1144 bytes: 19 IPv4 records a datagram, where the
	 * 1164 bytes of IPv4 would take 20. */
	c = base_cfg(r.dest);
	c.mtu = 1192;
	x = export_new(&c, err, sizeof(err));
	assert_non_null(x);
	for (uint32_t i = 0; i < 200; i++) {
		mkflow(&f, i, 0);
		export_flow(x, &f, T0);
	}
	export_flush(x, T0);
	static struct dg gs[64];
	assert_int_equal(rx_all(&r, x, 1192 - 48, gs, 64), 200);
	assert_int_equal(gs[1].flows, 19);
	export_free(x);
	close(r.fd);
}

/* Nobody listening: ECONNREFUSED and friends are counted, never fatal. */
static void test_refused_counts(void **state)
{
	(void)state;
	struct rx r;
	char err[256];
	assert_int_equal(rx_open(&r, AF_INET), 0);
	close(r.fd); /* the port is now closed */
	struct export_cfg c = base_cfg(r.dest);
	struct exporter *x = export_new(&c, err, sizeof(err));
	assert_non_null(x);
	for (uint32_t i = 0; i < 20; i++) {
		struct flow_rec f;
		mkflow(&f, i, 0);
		export_flow(x, &f, T0 + i * 1000);
		export_flush(x, T0 + i * 1000);
	}
	const struct export_stats *s = export_stats(x);
	assert_int_equal(s->datagrams, 20);
	assert_int_equal(s->flows, 20);
	assert_true(s->send_errors > 0);
	assert_true(s->send_errors <= 20);
	export_free(x);
}

/* boot_ms 0: boot is the first export clock less one hour (on a whole second), as the
 * options record and sysUptime say; the first tick announces templates at once. */
static void test_first_tick_default_boot(void **state)
{
	(void)state;
	uint8_t buf[2048];
	struct dg g;
	struct rx r;
	char err[256];
	assert_int_equal(rx_open(&r, AF_INET), 0);
	struct export_cfg c = base_cfg(r.dest);
	c.boot_ms = 0;
	c.sampling_interval = 0;
	struct exporter *x = export_new(&c, err, sizeof(err));
	assert_non_null(x);
	export_tick(x, T0 + 4321);
	ssize_t n = rx_one(&r, buf, sizeof(buf), 2000);
	assert_true(n > 0);
	parse(buf, (size_t)n, &g);
	assert_true(g.has_tpl && g.has_opt && g.flows == 0);
	uint64_t boot = T0 + 4000 - 3600000;
	/* header: unix_secs * 1000 - sysUptime is the boot time */
	assert_true((uint64_t)ld_be32(buf + 8) * 1000 - ld_be32(buf + 4) == boot);
	/* the options data set (id 258): scope, interval, init time, algorithm */
	size_t off = 20;
	while (ld_be16(buf + off) != NF9_TPL_OPTIONS)
		off += ld_be16(buf + off + 2);
	assert_int_equal(ld_be32(buf + off + 4), 77);
	assert_int_equal(ld_be32(buf + off + 8), 1);
	assert_true(ld_be64(buf + off + 12) == boot);
	assert_int_equal(buf[off + 20], 0);
	/* no flow since: the next tick sends nothing */
	export_tick(x, T0 + 5000);
	assert_int_equal(export_stats(x)->datagrams, 1);
	export_free(x);
	close(r.fd);
}

/* Bad destinations fail with a message that names them. */
static void test_bad_destinations(void **state)
{
	(void)state;
	static const char *bad[] = {
		"127.0.0.1",           /* no port */
		"127.0.0.1:",          /* empty port */
		"127.0.0.1:0",         /* port 0 */
		"127.0.0.1:65536",     /* too big */
		"127.0.0.1:http",      /* not numeric */
		":9995",               /* no host */
		"::1:9995",            /* v6 without brackets */
		"[::1]9995",           /* missing colon */
		"[::1:9995",           /* unclosed bracket */
		"[localhost]:9995",    /* brackets hold numeric v6 only */
		"no-such-host.invalid:9995",
		"300.1.2.3:9995",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char err[256] = "";
		struct export_cfg c = base_cfg(bad[i]);
		struct exporter *x = export_new(&c, err, sizeof(err));
		assert_null(x);
		char want[128];
		snprintf(want, sizeof(want), "collector '%s': ", bad[i]);
		if (strncmp(err, want, strlen(want)) != 0)
			fail_msg("%s: got \"%s\"", bad[i], err);
		assert_true(strlen(err) > strlen(want) + 5); /* says why */
	}

	/* the second of two destinations is the bad one: named, and no leak */
	struct rx r;
	char err[256] = "";
	assert_int_equal(rx_open(&r, AF_INET), 0);
	struct export_cfg c = base_cfg(r.dest);
	c.dest[1] = "nohost";
	c.ndest = 2;
	assert_null(export_new(&c, err, sizeof(err)));
	assert_non_null(strstr(err, "collector 'nohost': missing port"));

	/* an MTU too small for the templates and a record */
	c = base_cfg(r.dest);
	c.mtu = 300;
	assert_null(export_new(&c, err, sizeof(err)));
	assert_non_null(strstr(err, "mtu 300"));
	c.ndest = 0;
	assert_null(export_new(&c, err, sizeof(err)));
	close(r.fd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_mtu_and_counts),
		cmocka_unit_test(test_template_refresh_by_count),
		cmocka_unit_test(test_template_refresh_by_time_and_tick),
		cmocka_unit_test(test_tick_with_queue),
		cmocka_unit_test(test_two_destinations),
		cmocka_unit_test(test_hostname_and_v6),
		cmocka_unit_test(test_refused_counts),
		cmocka_unit_test(test_first_tick_default_boot),
		cmocka_unit_test(test_bad_destinations),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
