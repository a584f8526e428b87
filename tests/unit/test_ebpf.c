/* test_ebpf.c: the eBPF flow program (probe/bpf/flow.bpf.c) against the user-space
 * parser (probe/pkt.c). Frames go through the loaded TC and XDP programs with
 * BPF_PROG_TEST_RUN; the parse result the program counted, and the flow entry it made
 * (key, packets, bytes, TCP flags), must be what pkt_parse says, for hand-built frames
 * of every kind pkt.h describes, every prefix of each, random mutations, and the
 * Ethernet captures in the shared test data. Also: accounting across packets, 1-in-N
 * sampling, fragments joining their first fragment's flow, and a full map counted.
 * Needs root (or CAP_BPF + CAP_PERFMON); skipped otherwise.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "bpf/flow.h"
#include "flow.skel.h"
#include "pkt.h"

#define MAX_FRAME 3000  /* BPF_PROG_TEST_RUN takes a page less head- and tailroom */
#define LO_IFINDEX 1    /* test runs see the loopback device */

struct tctx {
	struct tf_flow_bpf *skel;
	int ncpu;
	int flows_fd, counters_fd, frags_fd;
	uint64_t prev[TF_C_N];
	uint64_t delta[TF_C_N];
	struct tf_flow_val *vals;
	void *pcpu;
	size_t pcpu_size;
	long runs;
};

static int quiet(enum libbpf_print_level l, const char *f, va_list ap)
{
	(void)l;
	(void)f;
	(void)ap;
	return 0;
}

/* Loads the object with the given map size and sampling; NULL if this process may not
 * load BPF (the test is then skipped). */
static struct tctx *load(uint32_t map_size, uint32_t sample)
{
	struct tctx *t = calloc(1, sizeof(*t));

	assert_non_null(t);
	libbpf_set_print(quiet);
	t->skel = tf_flow_bpf__open();
	assert_non_null(t->skel);
	t->ncpu = libbpf_num_possible_cpus();
	t->skel->rodata->tf_cfg_sample = sample;
	t->skel->rodata->tf_cfg_ncpu = (uint32_t)t->ncpu;
	bpf_map__set_max_entries(t->skel->maps.tf_flows, map_size);
	bpf_map__set_value_size(t->skel->maps.tf_flows,
				(uint32_t)t->ncpu * (uint32_t)sizeof(struct tf_flow_val));
	bpf_map__set_value_size(t->skel->maps.tf_newval,
				(uint32_t)t->ncpu * (uint32_t)sizeof(struct tf_flow_val));
	bpf_program__set_autoload(t->skel->progs.tf_flow_out, false);
	if (tf_flow_bpf__load(t->skel) < 0) {
		tf_flow_bpf__destroy(t->skel);
		free(t);
		return NULL;
	}
	t->flows_fd = bpf_map__fd(t->skel->maps.tf_flows);
	t->counters_fd = bpf_map__fd(t->skel->maps.tf_counters);
	t->frags_fd = bpf_map__fd(t->skel->maps.tf_frags);
	t->vals = calloc((size_t)t->ncpu, sizeof(struct tf_flow_val));
	t->pcpu_size = bpf_map__value_size(t->skel->maps.tf_counters);
	assert_int_equal(t->pcpu_size, sizeof(struct tf_percpu));
	t->pcpu = calloc((size_t)t->ncpu, t->pcpu_size);
	assert_non_null(t->vals);
	assert_non_null(t->pcpu);
	return t;
}

static void unload(struct tctx *t)
{
	tf_flow_bpf__destroy(t->skel);
	free(t->vals);
	free(t->pcpu);
	free(t);
}

/* Counter changes since the last call, into t->delta. */
static void counters(struct tctx *t)
{
	uint32_t zero = 0;
	uint64_t now[TF_C_N];
	const struct tf_percpu *pc = t->pcpu;

	assert_int_equal(bpf_map_lookup_elem(t->counters_fd, &zero, t->pcpu), 0);
	memset(now, 0, sizeof(now));
	for (int i = 0; i < t->ncpu; i++)
		for (int j = 0; j < TF_C_N; j++)
			now[j] += pc[i].c[j];
	for (int j = 0; j < TF_C_N; j++) {
		t->delta[j] = now[j] - t->prev[j];
		t->prev[j] = now[j];
	}
}

static void run(struct tctx *t, int xdp, const uint8_t *frame, size_t len)
{
	LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = frame, .data_size_in = (uint32_t)len,
		    .repeat = 1);
	struct bpf_program *p = xdp ? t->skel->progs.tf_flow_xdp : t->skel->progs.tf_flow_in;

	int r = bpf_prog_test_run_opts(bpf_program__fd(p), &o);

	if (r != 0)
		fprintf(stderr, "test run (%s, %zu bytes): %s\n", xdp ? "xdp" : "tc", len,
			strerror(-r));
	assert_int_equal(r, 0);
	t->runs++;
}

/* Sums the per-CPU copies of the flow at k. */
static int flow_sum(struct tctx *t, const struct pkt_key *k, uint64_t *packets,
		    uint64_t *bytes, uint8_t *flags)
{
	if (bpf_map_lookup_elem(t->flows_fd, k, t->vals) < 0)
		return -1;
	*packets = *bytes = 0;
	*flags = 0;
	for (int i = 0; i < t->ncpu; i++) {
		*packets += t->vals[i].packets;
		*bytes += t->vals[i].bytes;
		*flags |= t->vals[i].tcp_flags;
	}
	return 0;
}

static int map_count(int fd, size_t ksz)
{
	uint8_t k[64], next[64];
	int n = 0;
	void *prev = NULL;

	assert_true(ksz <= sizeof(k));
	while (bpf_map_get_next_key(fd, prev, next) == 0) {
		memcpy(k, next, ksz);
		prev = k;
		n++;
	}
	return n;
}

static void map_clear(int fd, size_t ksz)
{
	uint8_t k[64];

	assert_true(ksz <= sizeof(k));
	while (bpf_map_get_next_key(fd, NULL, k) == 0)
		assert_int_equal(bpf_map_delete_elem(fd, k), 0);
}

/* One frame through one program, compared with pkt_parse. */
static void check_frame(struct tctx *t, int xdp, const uint8_t *f, size_t len,
			const char *what)
{
	struct pkt_info pi;
	int want, got = -1, nres = 0;

	if (len < 14 || len > MAX_FRAME)
		return;  /* test runs need an Ethernet header and fit in a page */
	/* TC test runs also want an untagged IP header whole (the XDP runs take these). */
	if (!xdp && ((f[12] == 0x08 && f[13] == 0x00 && len < 14 + 20) ||
		     (f[12] == 0x86 && f[13] == 0xdd && len < 14 + 40)))
		return;
	want = pkt_parse(f, len, PKT_LINK_ETH, LO_IFINDEX, &pi);
	run(t, xdp, f, len);
	counters(t);
	for (int r = 0; r < PKT_NRESULTS; r++) {
		if (t->delta[TF_C_PARSE + r]) {
			got = r;
			nres += (int)t->delta[TF_C_PARSE + r];
		}
	}
	if (nres != 1 || got != want) {
		fprintf(stderr, "%s (%s, %zu bytes): pkt_parse %s, program %s (%d counted)\n",
			what, xdp ? "xdp" : "tc", len, pkt_result_name(want),
			pkt_result_name(got), nres);
		fail();
	}
	assert_int_equal(t->delta[TF_C_FRAMES], 1);
	if (want == PKT_OK) {
		uint64_t packets, bytes;
		uint8_t flags;

		assert_int_equal(t->delta[TF_C_PACKETS], 1);
		assert_int_equal(t->delta[TF_C_BYTES], pi.ip_len);
		if (flow_sum(t, &pi.key, &packets, &bytes, &flags) < 0) {
			fprintf(stderr, "%s (%s, %zu bytes): no flow under pkt_parse's key\n", what,
				xdp ? "xdp" : "tc", len);
			fail();
		}
		assert_int_equal(packets, 1);
		assert_int_equal(bytes, pi.ip_len);
		assert_int_equal(flags, pi.tcp_flags);
		assert_int_equal(map_count(t->flows_fd, sizeof(struct pkt_key)), 1);
		assert_int_equal(t->delta[TF_C_FRAG_LATER], pi.frag == PKT_FRAG_LATER);
	} else {
		assert_int_equal(t->delta[TF_C_PACKETS], 0);
		assert_int_equal(map_count(t->flows_fd, sizeof(struct pkt_key)), 0);
	}
	map_clear(t->flows_fd, sizeof(struct pkt_key));
	map_clear(t->frags_fd, sizeof(struct tf_frag_key));
}

/* A frame and every prefix of it from the Ethernet header on, through both programs. */
static void check_all(struct tctx *t, const uint8_t *f, size_t len, const char *what)
{
	for (size_t n = 14; n <= len; n++) {
		check_frame(t, 0, f, n, what);
		check_frame(t, 1, f, n, what);
	}
}

/* --- frame builder ---------------------------------------------------------------- */

struct fb {
	uint8_t b[2048];
	size_t n;
};

static void put(struct fb *f, const void *p, size_t n)
{
	assert_true(f->n + n <= sizeof(f->b));
	memcpy(f->b + f->n, p, n);
	f->n += n;
}

static void put8(struct fb *f, uint8_t v)
{
	put(f, &v, 1);
}

static void put16(struct fb *f, uint16_t v)
{
	put8(f, (uint8_t)(v >> 8));
	put8(f, (uint8_t)v);
}

static void put32(struct fb *f, uint32_t v)
{
	put16(f, (uint16_t)(v >> 16));
	put16(f, (uint16_t)v);
}

static void zeros(struct fb *f, size_t n)
{
	assert_true(f->n + n <= sizeof(f->b));
	memset(f->b + f->n, 0, n);
	f->n += n;
}

static const uint16_t tag_types[3] = { 0x8100, 0x88a8, 0x9100 };

static void eth(struct fb *f, int ntags, uint16_t et)
{
	static const uint8_t macs[12] = { 2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2 };

	f->n = 0;
	put(f, macs, sizeof(macs));
	for (int i = 0; i < ntags; i++) {
		put16(f, tag_types[i % 3]);
		put16(f, (uint16_t)(0x2000 | (100 + i)));  /* priority 1, VLAN 100 + i */
	}
	put16(f, et);
}

/* Transport header of proto, as much as a real one carries. */
static void l4(struct fb *f, uint8_t proto, uint8_t tcp_doff, uint8_t tcp_flags)
{
	switch (proto) {
	case 6:
		put16(f, 40000);
		put16(f, 443);
		put32(f, 1);
		put32(f, 0);
		put8(f, (uint8_t)(tcp_doff << 4));
		put8(f, tcp_flags);
		put16(f, 1024);
		put32(f, 0);
		break;
	case 17:
	case 136:
		put16(f, 5353);
		put16(f, 53);
		put16(f, 8 + 4);
		put16(f, 0);
		put32(f, 0x01020304);
		break;
	case 132:
		put16(f, 2905);
		put16(f, 2906);
		put32(f, 7);
		put32(f, 0);
		break;
	case 1:
		put8(f, 3);
		put8(f, 3);
		put16(f, 0);
		put32(f, 0);
		break;
	case 58:
		put8(f, 128);
		put8(f, 0);
		put16(f, 0);
		put32(f, 0x00010002);
		break;
	default:
		put32(f, 0x12345678);
		put32(f, 0);
	}
}

enum { V4_PLAIN, V4_OPTS, V4_FIRST, V4_LATER, V4_TOT0, V4_TOTSHORT, V4_BADVER, V4_IHL4,
       V4_PAD, V4_N };

static void ip4(struct fb *f, int kind, uint8_t proto, uint8_t doff, uint8_t flags)
{
	size_t h = f->n;
	uint8_t ihl = kind == V4_OPTS ? 7 : kind == V4_IHL4 ? 4 : 5;
	uint16_t ff = kind == V4_FIRST ? 0x2000 : kind == V4_LATER ? 0x0010 : 0;

	put8(f, (uint8_t)((kind == V4_BADVER ? 0x50 : 0x40) | ihl));
	put8(f, 0xb8);
	put16(f, 0);  /* total length, below */
	put16(f, 0x4242);
	put16(f, ff);
	put8(f, 64);
	put8(f, proto);
	put16(f, 0);
	put32(f, 0xc0000201);
	put32(f, 0xc6336402);
	if (ihl > 5)
		zeros(f, (size_t)(ihl - 5) * 4);
	if (kind != V4_LATER)
		l4(f, proto, doff, flags);
	else
		zeros(f, 16);
	uint16_t tot = (uint16_t)(f->n - h);
	if (kind == V4_TOT0)
		tot = 0;
	else if (kind == V4_TOTSHORT)
		tot = 12;
	else if (kind == V4_PAD)
		zeros(f, 60 > f->n ? 60 - f->n + 8 : 8);
	f->b[h + 2] = (uint8_t)(tot >> 8);
	f->b[h + 3] = (uint8_t)tot;
}

/* IPv6 with the extension headers named in chain (0 hop-by-hop, 43 routing, 60
 * destination options, 51 AH, 44 fragment with offset 0 and M set; 45: fragment with
 * an offset; 46: atomic fragment), then proto. plen0: payload length 0. */
static void ip6(struct fb *f, const int *chain, int n, uint8_t proto, int plen0, int pad,
		uint8_t doff, uint8_t flags)
{
	size_t h = f->n;
	int later = 0;

	put32(f, 0x6b812345);  /* traffic class 0xb8 */
	put16(f, 0);
	put8(f, n ? (uint8_t)(chain[0] >= 44 && chain[0] <= 46 ? 44 : chain[0]) : proto);
	put8(f, 64);
	put32(f, 0x20010db8);
	put32(f, 0);
	put32(f, 0);
	put32(f, 1);
	put32(f, 0x20010db8);
	put32(f, 0);
	put32(f, 0);
	put32(f, 2);
	for (int i = 0; i < n; i++) {
		int c = chain[i];
		uint8_t next = i + 1 < n ? (uint8_t)(chain[i + 1] >= 44 && chain[i + 1] <= 46 ?
						      44 : chain[i + 1]) : proto;
		if (c >= 44 && c <= 46) {
			put8(f, next);
			put8(f, 0);
			put16(f, c == 45 ? 0x0100 : c == 44 ? 0x0001 : 0);
			put32(f, 0xabcdef01);
			later |= c == 45;
		} else if (c == 51) {
			put8(f, next);
			put8(f, 2);  /* (2 + 2) * 4 = 16 bytes */
			zeros(f, 14);
		} else {
			put8(f, next);
			put8(f, 1);  /* (1 + 1) * 8 = 16 bytes */
			zeros(f, 14);
		}
	}
	if (!later)
		l4(f, proto, doff, flags);
	else
		zeros(f, 8);
	uint16_t plen = plen0 ? 0 : (uint16_t)(f->n - h - 40);
	if (pad)
		zeros(f, 24);
	f->b[h + 4] = (uint8_t)(plen >> 8);
	f->b[h + 5] = (uint8_t)plen;
}

static const uint8_t protos[] = { 6, 17, 132, 136, 1, 47, 50 };

static void test_handmade(void **state)
{
	struct tctx *t = load(1024, 1);
	struct fb f;
	char what[128];

	(void)state;
	if (!t)
		skip();
	/* VLAN depth 0..5 (5: too many), non-IP, every IPv4 kind with every protocol. */
	for (int tags = 0; tags <= PKT_MAX_TAGS + 1; tags++) {
		eth(&f, tags, 0x0806);
		zeros(&f, 28);
		snprintf(what, sizeof(what), "arp, %d tags", tags);
		check_all(t, f.b, f.n, what);
		for (int kind = 0; kind < V4_N; kind++) {
			for (size_t p = 0; p < sizeof(protos); p++) {
				eth(&f, tags, 0x0800);
				ip4(&f, kind, protos[p], 5, 0x12);
				snprintf(what, sizeof(what), "ipv4 kind %d proto %u, %d tags", kind,
					 protos[p], tags);
				check_all(t, f.b, f.n, what);
			}
		}
	}
	/* TCP data offsets and flags. */
	for (uint8_t doff = 0; doff < 16; doff += 3) {
		eth(&f, 0, 0x0800);
		ip4(&f, V4_PLAIN, 6, doff, 0x11);
		check_all(t, f.b, f.n, "tcp data offset");
	}
	/* IPv6 extension header chains. */
	static const int chains[][10] = {
		{ 0 }, { 0, 43, 60 }, { 51 }, { 44 }, { 45 }, { 46 }, { 0, 44, 60, 51 },
		{ 60, 60, 60, 60, 60, 60, 60, 60 },     /* PKT_MAX_EXTHDR: still followed */
		{ 60, 60, 60, 60, 60, 60, 60, 60, 60 }, /* one more: too many */
		{ 0, 43, 51, 60, 46, 0, 43, 45 },
	};
	static const int lens[] = { 1, 3, 1, 1, 1, 1, 4, 8, 9, 8 };
	for (size_t c = 0; c < sizeof(lens) / sizeof(lens[0]); c++) {
		for (size_t p = 0; p < sizeof(protos); p++) {
			uint8_t proto = protos[p] == 1 ? 58 : protos[p];
			for (int v = 0; v < 3; v++) {
				eth(&f, (int)(c % 3), 0x86dd);
				ip6(&f, chains[c], lens[c], proto, v == 1, v == 2, 5, 0x02);
				snprintf(what, sizeof(what), "ipv6 chain %zu proto %u variant %d", c,
					 proto, v);
				check_all(t, f.b, f.n, what);
			}
		}
	}
	/* MPLS stacks of 1..9 labels (9: too many), payloads IPv4, IPv6, a pseudowire; PPPoE
	 * sessions with IPv4, IPv6, LCP (check_all cuts each frame at every length). */
	for (int n = 1; n <= PKT_MAX_LABELS + 1; n++) {
		for (int pl = 0; pl < 3; pl++) {
			eth(&f, n % 3, n & 1 ? PKT_ET_MPLS_UC : PKT_ET_MPLS_MC);
			for (int i = 0; i < n; i++)
				put32(&f, (uint32_t)(16 + i) << 12 | (i == n - 1 ? 0x100u : 0) | 64);
			if (pl == 0)
				ip4(&f, V4_PLAIN, 6, 5, 0x18);
			else if (pl == 1)
				ip6(&f, NULL, 0, 17, 0, 0, 5, 0);
			else
				zeros(&f, 40);
			snprintf(what, sizeof(what), "mpls %d labels payload %d", n, pl);
			check_all(t, f.b, f.n, what);
		}
	}
	static const uint16_t ppp[] = { PKT_PPP_IPV4, PKT_PPP_IPV6, 0xc021 };
	for (int i = 0; i < 3; i++) {
		eth(&f, i, PKT_ET_PPPOE_S);
		put32(&f, 0x11000042);
		put16(&f, 0);
		put16(&f, ppp[i]);
		if (i == 1)
			ip6(&f, NULL, 0, 6, 0, 1, 5, 0x02);
		else
			ip4(&f, V4_PLAIN, 17, 5, 0);
		snprintf(what, sizeof(what), "pppoe proto %#x", ppp[i]);
		check_all(t, f.b, f.n, what);
	}
	/* IPv6 version nibble wrong. */
	eth(&f, 0, 0x86dd);
	ip6(&f, NULL, 0, 17, 0, 0, 5, 0);
	f.b[14] = 0x45;
	check_all(t, f.b, f.n, "ipv6 ethertype, version 4");
	fprintf(stderr, "handmade: %ld test runs\n", t->runs);
	unload(t);
}

/* xorshift64: deterministic mutations. */
static uint64_t rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static void test_mutations(void **state)
{
	struct tctx *t = load(1024, 1);
	uint64_t s = 0x9e3779b97f4a7c15ull;
	struct fb f;

	(void)state;
	if (!t)
		skip();
	for (int i = 0; i < 6000; i++) {
		uint64_t r = rnd(&s);
		int tags = (int)(r % 3);

		if ((r >> 8) & 1) {
			static const int ch[] = { 0, 44, 60 };
			eth(&f, tags, 0x86dd);
			ip6(&f, ch, (int)((r >> 9) % 4), protos[(r >> 12) % sizeof(protos)] == 1 ?
			    58 : protos[(r >> 12) % sizeof(protos)], 0, 0, 5, (uint8_t)(r >> 16));
		} else {
			eth(&f, tags, 0x0800);
			ip4(&f, (int)((r >> 9) % V4_N), protos[(r >> 12) % sizeof(protos)], 5,
			    (uint8_t)(r >> 16));
		}
		/* Flip a few bytes anywhere in the headers, then maybe cut the frame. */
		for (int k = 0, nk = 1 + (int)((r >> 24) % 3); k < nk; k++) {
			uint64_t x = rnd(&s);
			f.b[x % f.n] = (uint8_t)(x >> 32);
		}
		size_t len = (r >> 40) % 4 == 0 ? 14 + (size_t)((r >> 44) % (f.n - 13)) : f.n;
		check_frame(t, (int)(i & 1), f.b, len, "mutation");
	}
	unload(t);
}

static uint32_t rd32(const uint8_t *p, int swap)
{
	uint32_t v;

	memcpy(&v, p, 4);
	return swap ? __builtin_bswap32(v) : v;
}

/* Every frame of every classic-pcap Ethernet capture in the shared test data. */
static void test_pcaps(void **state)
{
	const char *env = getenv("TF_TESTDATA");
	char dir[512], path[1024];
	struct tctx *t;
	struct dirent *de;
	long frames = 0, files = 0;
	DIR *d;

	(void)state;
	snprintf(dir, sizeof(dir), "%s/pcaps", env ? env : "../shared/testdata");
	d = opendir(dir);
	if (!d) {
		fprintf(stderr, "no test data at %s\n", dir);
		skip();
	}
	t = load(1024, 1);
	if (!t) {
		closedir(d);
		skip();
	}
	static uint8_t buf[1 << 16];
	while ((de = readdir(d)) != NULL) {
		uint8_t gh[24], rh[16];
		FILE *fp;
		int swap;

		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		fp = fopen(path, "rb");
		if (!fp)
			continue;
		if (fread(gh, 1, 24, fp) != 24) {
			fclose(fp);
			continue;
		}
		uint32_t m = rd32(gh, 0);
		if (m == 0xa1b2c3d4 || m == 0xa1b23c4d)
			swap = 0;
		else if (m == 0xd4c3b2a1 || m == 0x4d3cb2a1)
			swap = 1;
		else {
			fclose(fp);
			continue;
		}
		if ((rd32(gh + 20, swap) & 0xffff) != 1) {
			fclose(fp);
			continue;
		}
		files++;
		while (fread(rh, 1, 16, fp) == 16) {
			uint32_t cap = rd32(rh + 8, swap);
			if (cap > sizeof(buf) || fread(buf, 1, cap, fp) != cap)
				break;
			check_frame(t, (int)(frames & 1), buf, cap, de->d_name);
			frames++;
		}
		fclose(fp);
	}
	closedir(d);
	fprintf(stderr, "pcaps: %ld frames from %ld Ethernet captures\n", frames, files);
	assert_true(files > 0);
	unload(t);
}

static void frame_udp(struct fb *f, uint32_t src, uint16_t sport, size_t payload)
{
	eth(f, 0, 0x0800);
	size_t h = f->n;
	put8(f, 0x45);
	put8(f, 0);
	put16(f, (uint16_t)(20 + 8 + payload));
	put32(f, 0);
	put8(f, 64);
	put8(f, 17);
	put16(f, 0);
	put32(f, src);
	put32(f, 0x0a000001);
	put16(f, sport);
	put16(f, 53);
	put16(f, (uint16_t)(8 + payload));
	put16(f, 0);
	zeros(f, payload);
	(void)h;
}

/* Packets of one flow add up; flags OR; a full map counts what it could not hold. */
static void test_accounting(void **state)
{
	struct tctx *t = load(16, 1);
	struct pkt_info pi;
	uint64_t packets, bytes;
	uint8_t flags;
	struct fb f;

	(void)state;
	if (!t)
		skip();
	eth(&f, 0, 0x0800);
	ip4(&f, V4_PLAIN, 6, 5, 0x02);
	run(t, 0, f.b, f.n);
	f.b[14 + 20 + 13] = 0x10;
	run(t, 1, f.b, f.n);
	f.b[14 + 20 + 13] = 0x11;
	run(t, 0, f.b, f.n);
	assert_int_equal(pkt_parse(f.b, f.n, PKT_LINK_ETH, LO_IFINDEX, &pi), PKT_OK);
	assert_int_equal(flow_sum(t, &pi.key, &packets, &bytes, &flags), 0);
	assert_int_equal(packets, 3);
	assert_int_equal(bytes, 3 * pi.ip_len);
	assert_int_equal(flags, 0x13);
	counters(t);
	assert_int_equal(t->delta[TF_C_CREATED], 1);
	map_clear(t->flows_fd, sizeof(struct pkt_key));

	/* 40 flows into 16 entries: 16 counted, 24 packets and their bytes reported. */
	for (uint32_t i = 0; i < 40; i++) {
		frame_udp(&f, 0x0a010000 + i, (uint16_t)(1000 + i), 100);
		run(t, (int)(i & 1), f.b, f.n);
	}
	counters(t);
	assert_int_equal(map_count(t->flows_fd, sizeof(struct pkt_key)), 16);
	assert_int_equal(t->delta[TF_C_PACKETS], 16);
	assert_int_equal(t->delta[TF_C_CREATED], 16);
	assert_int_equal(t->delta[TF_C_MAP_FULL], 24);
	assert_int_equal(t->delta[TF_C_LOST_BYTES], 24 * 128);
	assert_int_equal(t->delta[TF_C_MAP_BUSY] + t->delta[TF_C_MAP_ERROR], 0);
	/* A flow already in the full map still counts. */
	frame_udp(&f, 0x0a010000, 1000, 100);
	run(t, 0, f.b, f.n);
	counters(t);
	assert_int_equal(t->delta[TF_C_PACKETS], 1);
	assert_int_equal(t->delta[TF_C_MAP_FULL], 0);
	unload(t);
}

static void test_sampling(void **state)
{
	struct tctx *t = load(64, 3);
	struct fb f;

	(void)state;
	if (!t)
		skip();
	frame_udp(&f, 0x0a010001, 1000, 10);
	for (int i = 0; i < 9; i++)
		run(t, 0, f.b, f.n);
	counters(t);
	assert_int_equal(t->delta[TF_C_FRAMES], 9);
	assert_int_equal(t->delta[TF_C_SAMPLED_OUT], 6);
	assert_int_equal(t->delta[TF_C_PACKETS], 3);
	unload(t);
}

/* A later fragment joins the flow of its first fragment (same addresses, protocol and
 * id); one whose first fragment was not seen stays with ports 0 and is counted. */
static void test_fragments(void **state)
{
	struct tctx *t = load(64, 1);
	struct pkt_info first, later;
	uint64_t packets, bytes;
	uint8_t flags;
	struct fb f, g;

	(void)state;
	if (!t)
		skip();
	eth(&f, 1, 0x0800);
	ip4(&f, V4_FIRST, 17, 5, 0);
	eth(&g, 1, 0x0800);
	ip4(&g, V4_LATER, 17, 5, 0);
	assert_int_equal(pkt_parse(f.b, f.n, PKT_LINK_ETH, LO_IFINDEX, &first), PKT_OK);
	assert_int_equal(pkt_parse(g.b, g.n, PKT_LINK_ETH, LO_IFINDEX, &later), PKT_OK);
	run(t, 0, f.b, f.n);
	run(t, 0, g.b, g.n);
	run(t, 1, g.b, g.n);
	counters(t);
	assert_int_equal(t->delta[TF_C_FRAG_LATER], 2);
	assert_int_equal(t->delta[TF_C_FRAG_ORPHANS], 0);
	assert_int_equal(flow_sum(t, &first.key, &packets, &bytes, &flags), 0);
	assert_int_equal(packets, 3);
	assert_int_equal(bytes, first.ip_len + 2 * later.ip_len);
	assert_int_equal(map_count(t->flows_fd, sizeof(struct pkt_key)), 1);
	/* Another datagram (other id): no first fragment seen. */
	g.b[14 + 4 + 4] ^= 0xff;
	assert_int_equal(pkt_parse(g.b, g.n, PKT_LINK_ETH, LO_IFINDEX, &later), PKT_OK);
	run(t, 0, g.b, g.n);
	counters(t);
	assert_int_equal(t->delta[TF_C_FRAG_ORPHANS], 1);
	assert_int_equal(later.key.sport, 0);
	assert_int_equal(flow_sum(t, &later.key, &packets, &bytes, &flags), 0);
	assert_int_equal(packets, 1);
	unload(t);
}

/* A bump of tf_gen is a cut user space can split a flow at (cap_ebpf.c's active
 * timeout): the copies' gen_ fields hold what came after it, the pre_ fields end what
 * came before, whichever CPUs the packets were counted on. */
static void test_generations(void **state)
{
	struct tctx *t = load(64, 1);
	const uint8_t flags[4] = { 0x02, 0x10, 0x18, 0x11 };
	uint64_t pre_p = 0, pre_b = 0, post_p = 0, post_b = 0, pre_last = 0;
	uint64_t post_first = UINT64_MAX;
	uint8_t pre_f = 0, post_f = 0;
	struct pkt_info pi;
	struct fb f;

	(void)state;
	if (!t)
		skip();
	t->skel->bss->tf_gen = 5;
	eth(&f, 0, 0x0800);
	ip4(&f, V4_PLAIN, 6, 5, 0x02);
	for (int i = 0; i < 4; i++) {
		if (i == 2)
			t->skel->bss->tf_gen = 6;
		f.b[14 + 20 + 13] = flags[i];
		run(t, i & 1, f.b, f.n);
	}
	assert_int_equal(pkt_parse(f.b, f.n, PKT_LINK_ETH, LO_IFINDEX, &pi), PKT_OK);
	assert_int_equal(bpf_map_lookup_elem(t->flows_fd, &pi.key, t->vals), 0);
	for (int i = 0; i < t->ncpu; i++) {
		const struct tf_flow_val *c = &t->vals[i];

		if (c->packets == 0)
			continue;
		if (c->gen == 6) {
			post_p += c->gen_packets;
			post_b += c->gen_bytes;
			post_f |= c->gen_flags;
			if (c->gen_first_ns < post_first)
				post_first = c->gen_first_ns;
			if (c->pre_last_ns > pre_last)
				pre_last = c->pre_last_ns;
			pre_f |= c->pre_flags;
		} else {
			assert_int_equal(c->gen, 5);
			if (c->last_ns > pre_last)
				pre_last = c->last_ns;
			pre_f |= c->tcp_flags;
		}
		pre_p += c->packets - (c->gen == 6 ? c->gen_packets : 0);
		pre_b += c->bytes - (c->gen == 6 ? c->gen_bytes : 0);
	}
	assert_int_equal(pre_p, 2);
	assert_int_equal(post_p, 2);
	assert_int_equal(pre_b, 2 * pi.ip_len);
	assert_int_equal(post_b, 2 * pi.ip_len);
	assert_int_equal(pre_f, 0x12);
	assert_int_equal(post_f, 0x19);
	assert_true(pre_last > 0 && pre_last <= post_first && post_first != UINT64_MAX);
	unload(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_handmade),
		cmocka_unit_test(test_mutations),
		cmocka_unit_test(test_pcaps),
		cmocka_unit_test(test_accounting),
		cmocka_unit_test(test_sampling),
		cmocka_unit_test(test_fragments),
		cmocka_unit_test(test_generations),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
