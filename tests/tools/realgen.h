/* realgen.h: deterministic flow generators for the store's tests and benchmark
 * (tests/unit/test_store.c, tests/tools/storebench.c): a splitmix64 stream and the
 * realistic flow model below. Header-only (static inline functions), so the test and
 * the tool stay single files the Makefile builds as they are. Link with -lm.
 */
#ifndef TF_REALGEN_H
#define TF_REALGEN_H

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "flowrec.h"

#define RG_T0 1714521600000ULL  /* 2024-05-01T00:00:00Z: where realistic time starts */

static inline uint64_t rnd(uint64_t *s)
{
	uint64_t z = (*s += 0x9E3779B97F4A7C15ULL);
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
	return z ^ (z >> 31);
}

static inline double rndf(uint64_t *s)
{
	return (double)(rnd(s) >> 11) / 9007199254740992.0;
}

static inline uint64_t rnd_below(uint64_t *s, uint64_t n)
{
	return n ? rnd(s) % n : 0;
}

static inline void addr4(uint8_t a[16], uint32_t v)
{
	uint8_t b[4] = { (uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v };
	flowrec_addr4(a, b);
}

static inline void addr6(uint8_t a[16], uint32_t net, uint32_t host)
{
	memset(a, 0, 16);
	a[0] = 0x20;
	a[1] = 0x01;
	a[2] = 0x0d;
	a[3] = 0xb8;
	a[4] = (uint8_t)(net >> 8);
	a[5] = (uint8_t)net;
	a[12] = (uint8_t)(host >> 24);
	a[13] = (uint8_t)(host >> 16);
	a[14] = (uint8_t)(host >> 8);
	a[15] = (uint8_t)host;
}

/* Realistic flows as a probe on an office uplink exports them: 2000 clients and 1000
 * servers, both Zipf-popular; services skewed (web sessions of several connections to one
 * server, DNS to two resolvers, QUIC, NTP, SSH, mail, ping, random ports); random
 * ephemeral source ports; both directions of each connection; long connections split by
 * the 60 s active timeout; records in export order (end + idle/FIN delay). */
#define RG_CLIENTS 2000
#define RG_SERVERS 1000

struct pend {
	uint64_t exp, seq;      /* export time, then generation order */
	struct flow_rec r;
};

struct realgen {
	uint64_t s;
	double tf;              /* start time of the next connection, ms */
	uint64_t t, seq;
	double czipf[RG_CLIENTS], szipf[RG_SERVERS];
	struct pend *heap;      /* generated, not yet handed out: min-heap on (exp, seq) */
	size_t npend, cap;
};

static inline void zipf_cdf(double *cdf, int n, double a)
{
	double sum = 0;
	for (int i = 0; i < n; i++)
		sum += 1.0 / pow(i + 1, a);
	double acc = 0;
	for (int i = 0; i < n; i++) {
		acc += 1.0 / pow(i + 1, a) / sum;
		cdf[i] = acc;
	}
}

static inline int zipf_draw(uint64_t *s, const double *cdf, int n)
{
	double u = rndf(s);
	int lo = 0, hi = n - 1;
	while (lo < hi) {
		int mid = (lo + hi) / 2;
		if (cdf[mid] < u)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static inline double lognormal(uint64_t *s, double median, double sigma)
{
	double u1 = rndf(s) + 1e-12, u2 = rndf(s);
	double z = sqrt(-2 * log(u1)) * cos(2 * M_PI * u2);
	return median * exp(sigma * z);
}

static inline void rg_init(struct realgen *g, uint64_t seed)
{
	memset(g, 0, sizeof(*g));
	g->s = seed;
	g->tf = (double)RG_T0;
	g->t = RG_T0;
	zipf_cdf(g->czipf, RG_CLIENTS, 0.8);
	zipf_cdf(g->szipf, RG_SERVERS, 1.1);
	g->cap = 4096;
	g->heap = malloc(g->cap * sizeof(*g->heap));
}

static inline void rg_free(struct realgen *g)
{
	free(g->heap);
}

static inline int pend_less(const struct pend *a, const struct pend *b)
{
	return a->exp < b->exp || (a->exp == b->exp && a->seq < b->seq);
}

static inline void rg_push(struct realgen *g, const struct flow_rec *r, uint64_t exp)
{
	size_t i;
	if (g->npend == g->cap) {
		g->cap *= 2;
		g->heap = realloc(g->heap, g->cap * sizeof(*g->heap));
	}
	struct pend p = { exp, g->seq++, *r };
	for (i = g->npend++; i > 0 && pend_less(&p, &g->heap[(i - 1) / 2]); i = (i - 1) / 2)
		g->heap[i] = g->heap[(i - 1) / 2];
	g->heap[i] = p;
}

static inline void rg_pop(struct realgen *g, struct pend *out)
{
	struct pend last = g->heap[--g->npend];
	size_t i = 0;
	*out = g->heap[0];
	for (;;) {
		size_t c = 2 * i + 1;
		if (c >= g->npend)
			break;
		if (c + 1 < g->npend && pend_less(&g->heap[c + 1], &g->heap[c]))
			c++;
		if (!pend_less(&g->heap[c], &last))
			break;
		g->heap[i] = g->heap[c];
		i = c;
	}
	if (g->npend)
		g->heap[i] = last;
}

/* One connection (both directions) from client c to server v (v < 0: DNS resolver -1-v)
 * on proto/dport, starting at start. */
static inline void rg_conn(struct realgen *g, int c, int v, int v6, uint8_t proto, uint16_t dport,
		    uint64_t start)
{
	uint64_t *s = &g->s;
	uint16_t sport = proto == 1 ? 0 : (uint16_t)(32768 + rnd_below(s, 28232));
	double dur;
	uint64_t reqp, repp, reqb, repb;
	struct flow_rec q, a;

	memset(&q, 0, sizeof(q));
	q.ipver = v6 ? 6 : 4;
	if (v6) {
		addr6(q.src, 0x10, (uint32_t)c + 1);
		addr6(q.dst, v < 0 ? 0x10 : 0xff00, v < 0 ? (uint32_t)(0x53 - v) : (uint32_t)v + 1);
	} else {
		addr4(q.src, 0x0a010000 + (uint32_t)(c / 250) * 256 + (uint32_t)(c % 250) + 1);
		addr4(q.dst, v < 0 ? 0x0a000035 + (uint32_t)(-1 - v)
				   : 0x5db80000 + (uint32_t)v * 7919 % 0x3fffff);
	}
	addr4(q.exporter, 0xc000020a);
	q.proto = proto;
	q.sport = sport;
	q.dport = dport;
	q.in_if = 1;
	q.out_if = 2;
	q.vlan = (uint16_t)(c < 1500 ? 10 : 20);
	q.sampling = 1;
	q.tos = rnd_below(s, 10) ? 0 : (dport == 22 ? 0x10 : 0xb8);

	if (proto == 6) {
		dur = lognormal(s, dport == 993 || dport == 22 ? 60000 : 2000, 1.8);
		reqp = 3 + (uint64_t)lognormal(s, 6, 1.2);
		repp = reqp + (uint64_t)lognormal(s, 8, 1.6);
		reqb = reqp * 52 + rnd_below(s, reqp * 150);  /* sums of packet sizes */
		repb = repp * 400 + rnd_below(s, repp * 1100);
		q.tcp_flags = rnd_below(s, 20) ? 0x1b : 0x16;
	} else if (proto == 1) {
		dur = rnd_below(s, 3) ? 0 : 1000.0 * (double)rnd_below(s, 10);
		reqp = dur > 0 ? (uint64_t)(dur / 1000) + 1 : 1;
		repp = reqp;
		reqb = repb = reqp * 84;
	} else if (dport == 53 || dport == 123) {
		dur = (double)rnd_below(s, 40);
		reqp = repp = 1;
		reqb = 60 + rnd_below(s, 40);
		repb = dport == 53 ? 80 + rnd_below(s, 400) : 76;
	} else {
		dur = lognormal(s, 5000, 1.5);
		reqp = 5 + (uint64_t)lognormal(s, 20, 1.5);
		repp = reqp * 2 + (uint64_t)lognormal(s, 20, 1.5);
		reqb = reqp * 60 + rnd_below(s, reqp * 200);
		repb = repp * 900 + rnd_below(s, repp * 450);
	}
	if (dur > 3600e3)
		dur = 3600e3;

	uint64_t end = start + (uint64_t)dur;
	uint64_t nchunks = (end - start) / 60000 + 1;
	for (uint64_t k = 0; k < nchunks; k++) {
		uint64_t cs = start + k * 60000, ce = k + 1 < nchunks ? cs + 59999 : end;
		int last = k + 1 == nchunks;
		q.first_ms = cs;
		q.last_ms = ce;
		q.packets = reqp / nchunks + (last ? reqp % nchunks : 0);
		q.bytes = reqb / nchunks + (last ? reqb % nchunks : 0);
		if (!q.packets) {
			q.packets = 1;
			q.bytes = 52;
		}
		q.end_reason = !last ? FLOW_END_ACTIVE : proto == 6 ? FLOW_END_EOF : FLOW_END_IDLE;
		a = q;
		memcpy(a.src, q.dst, 16);
		memcpy(a.dst, q.src, 16);
		a.sport = q.dport;
		a.dport = q.sport;
		if (proto == 1) {
			a.sport = 0;
			a.dport = 0;
		}
		a.in_if = 2;
		a.out_if = 1;
		a.first_ms = cs + rnd_below(s, 3);
		a.last_ms = ce + (ce > cs ? rnd_below(s, 3) : 0);
		a.packets = repp / nchunks + (last ? repp % nchunks : 0);
		a.bytes = repb / nchunks + (last ? repb % nchunks : 0);
		if (!a.packets) {
			a.packets = 1;
			a.bytes = 52;
		}
		uint64_t delay = !last ? 0 : proto == 6 ? 1000 : 15000;
		rg_push(g, &q, q.last_ms + delay);
		rg_push(g, &a, a.last_ms + delay);
	}
}

/* One user action: web sessions (a DNS lookup, then one to a dozen connections to the
 * same server, as browsers do), or a single DNS, NTP, ping, SSH, mail or other flow. */
static inline void rg_session(struct realgen *g)
{
	uint64_t *s = &g->s;
	int c = zipf_draw(s, g->czipf, RG_CLIENTS), v = zipf_draw(s, g->szipf, RG_SERVERS);
	int v6 = rnd_below(s, 100) < 5, resolver = -1 - (int)rnd_below(s, 2);
	uint64_t t = g->t;
	double u = rndf(s);

	if (u < 0.60) {
		uint8_t proto = rnd_below(s, 6) ? 6 : 17;      /* HTTPS, some QUIC */
		uint16_t dport = proto == 6 && rnd_below(s, 5) == 0 ? 80 : 443;
		unsigned k = rnd_below(s, 10) < 4 ? 1 : 2 + (unsigned)rnd_below(s, 7);
		if (rnd_below(s, 10) < 3) {
			rg_conn(g, c, resolver, v6, 17, 53, t);
			t += 5 + rnd_below(s, 30);
		}
		for (unsigned j = 0; j < k; j++) {
			rg_conn(g, c, v, v6, proto, dport, t);
			t += rnd_below(s, 200);
		}
	} else if (u < 0.80) {
		rg_conn(g, c, resolver, v6, 17, 53, t);
	} else if (u < 0.82) {
		rg_conn(g, c, v, v6, 17, 123, t);
	} else if (u < 0.84) {
		rg_conn(g, c, v, v6, 6, 22, t);
	} else if (u < 0.86) {
		rg_conn(g, c, v, v6, 6, 993, t);
	} else if (u < 0.87) {
		rg_conn(g, c, v, v6, 6, 25, t);
	} else if (u < 0.90) {
		rg_conn(g, c, v, v6, 1, 8 << 8, t);
	} else {
		uint16_t dport = (uint16_t)(1024 + rnd_below(s, 64511));
		rg_conn(g, c, v, v6, rnd_below(s, 2) ? 6 : 17, dport, t);
	}
	/* about 5000 flows a second, Poisson arrivals */
	g->tf += -log(rndf(s) + 1e-12) * 0.9;
	g->t = (uint64_t)g->tf;
}

/* Next record in export order; *export_ms is when the collector gets it. */
static inline void rg_next(struct realgen *g, struct flow_rec *r, uint64_t *export_ms)
{
	struct pend p;
	/* later connections start after g->t, so nothing can be exported before it */
	while (g->npend == 0 || g->heap[0].exp > g->t)
		rg_session(g);
	rg_pop(g, &p);
	*r = p.r;
	if (export_ms)
		*export_ms = p.exp;
}

#endif
