/* test_ebpf_scan.c: the map scan run in the kernel (probe/bpf/scan.bpf.c), on a flow
 * map of hand-made entries. What it copies out must be every flow user space could
 * find due (flowtab_due) at the scan's time, give or take its margin; what it deletes
 * only flows surely due by inactivity or TCP end and younger than the active timeout
 * (user space may keep a shadow entry for older ones); more due flows than its output
 * holds must leave the map untouched. Loads with 1 to TF_SCAN_MAXCPU slots a flow.
 * Needs root (or CAP_BPF + CAP_PERFMON) and kernel 5.13; skipped otherwise.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "bpf/flow.h"
#include "pkt.h"
#include "scan.skel.h"

#define S 1000000000ull
#define MS 1000000ull
#define NOW (1000 * S)
#define INACTIVE (15 * S)
#define ACTIVE (60 * S)
#define GRACE (2 * S)

struct sctx {
	struct tf_scan_bpf *skel;
	int flows_fd, out_fd, prog_fd;
	unsigned ncpu;
	size_t ent;
};

static int quiet(enum libbpf_print_level l, const char *f, va_list ap)
{
	(void)l;
	(void)f;
	(void)ap;
	return 0;
}

/* The scan program on a fresh flow map of ncpu slots a flow, out_max output entries;
 * NULL (and the test skipped) where it cannot load. */
static struct sctx *load(unsigned ncpu, uint32_t out_max)
{
	struct sctx *t = calloc(1, sizeof(*t));
	int r;

	assert_non_null(t);
	libbpf_set_print(quiet);
	t->ncpu = ncpu;
	t->ent = TF_SCAN_HDR + ncpu * sizeof(struct tf_flow_val);
	t->flows_fd = bpf_map_create(BPF_MAP_TYPE_HASH, "tf_flows", sizeof(struct pkt_key),
				     ncpu * sizeof(struct tf_flow_val), 1024, NULL);
	if (t->flows_fd < 0) {
		free(t);
		return NULL;
	}
	t->skel = tf_scan_bpf__open();
	assert_non_null(t->skel);
	t->skel->rodata->tf_cfg_ncpu = ncpu;
	t->skel->rodata->tf_cfg_inactive_ns = INACTIVE;
	t->skel->rodata->tf_cfg_active_ns = ACTIVE;
	t->skel->rodata->tf_cfg_grace_ns = GRACE;
	bpf_map__set_max_entries(t->skel->maps.tf_flows, 1024);
	bpf_map__set_value_size(t->skel->maps.tf_flows, ncpu * sizeof(struct tf_flow_val));
	bpf_map__set_max_entries(t->skel->maps.tf_scan_out, out_max);
	bpf_map__set_value_size(t->skel->maps.tf_scan_out, (uint32_t)t->ent);
	assert_int_equal(bpf_map__reuse_fd(t->skel->maps.tf_flows, t->flows_fd), 0);
	r = tf_scan_bpf__load(t->skel);
	if (r < 0) {
		fprintf(stderr, "cannot load the scan program (%u slots): %s\n", ncpu,
			strerror(-r));
		tf_scan_bpf__destroy(t->skel);
		close(t->flows_fd);
		free(t);
		return NULL;
	}
	t->out_fd = bpf_map__fd(t->skel->maps.tf_scan_out);
	t->prog_fd = bpf_program__fd(t->skel->progs.tf_scan);
	return t;
}

static void unload(struct sctx *t)
{
	tf_scan_bpf__destroy(t->skel);
	close(t->flows_fd);
	free(t);
}

/* Whether the scan program can be tried here at all. */
static int can_load(void)
{
	struct sctx *t;

	if (geteuid() != 0 || libbpf_probe_bpf_helper(BPF_PROG_TYPE_SCHED_CLS,
						      BPF_FUNC_for_each_map_elem, NULL) != 1)
		return 0;
	t = load(1, 16);
	if (!t)
		return 0;
	unload(t);
	return 1;
}

/* The key of flow i (its source port). */
static struct pkt_key key_of(uint32_t i)
{
	struct pkt_key k;

	memset(&k, 0, sizeof(k));
	k.ipver = 4;
	k.proto = 6;
	k.sport = (uint16_t)i;
	k.dport = 80;
	return k;
}

/* Flow i: packets in slot slot only (first, last, flags); the other slots untouched. */
static void put(struct sctx *t, uint32_t i, unsigned slot, uint64_t first, uint64_t last,
		uint8_t flags)
{
	struct pkt_key k = key_of(i);
	struct tf_flow_val *v = calloc(t->ncpu, sizeof(*v));

	assert_non_null(v);
	if (first) {
		v[slot].packets = 3 + i;
		v[slot].bytes = 100 * (3 + i);
		v[slot].first_ns = first;
		v[slot].last_ns = last;
		v[slot].tcp_flags = flags;
	}
	assert_int_equal(bpf_map_update_elem(t->flows_fd, &k, v, BPF_NOEXIST), 0);
	free(v);
}

static int present(struct sctx *t, uint32_t i)
{
	struct pkt_key k = key_of(i);
	struct tf_flow_val *v = calloc(t->ncpu, sizeof(*v));
	int r;

	assert_non_null(v);
	r = bpf_map_lookup_elem(t->flows_fd, &k, v) == 0;
	free(v);
	return r;
}

/* Runs a scan at now passing over skip flows; out[i]: 0 not copied out, 1 copied out,
 * 2 copied out and deleted (its values checked). Returns the number copied out. */
static uint32_t scan_from(struct sctx *t, uint64_t now, uint64_t skip, int out[64])
{
	uint8_t frame[64] = { 0 };
	LIBBPF_OPTS(bpf_test_run_opts, run, .data_in = frame, .data_size_in = sizeof(frame),
		    .repeat = 1);
	uint8_t *ent = malloc(t->ent);

	assert_non_null(ent);
	memset(out, 0, 64 * sizeof(out[0]));
	t->skel->bss->tf_scan_now_ns = now;
	t->skel->bss->tf_scan_skip = skip;
	assert_int_equal(bpf_prog_test_run_opts(t->prog_fd, &run), 0);
	uint32_t n = t->skel->bss->tf_scan_n;
	for (uint32_t j = 0; j < n; j++) {
		struct pkt_key k;
		uint32_t del;
		uint64_t packets = 0;

		assert_int_equal(bpf_map_lookup_elem(t->out_fd, &j, ent), 0);
		memcpy(&k, ent, sizeof(k));
		memcpy(&del, ent + sizeof(k), sizeof(del));
		assert_true(k.sport < 64);
		assert_int_equal(out[k.sport], 0);  /* each flow once */
		out[k.sport] = del == TF_SCAN_DELETED ? 2 : 1;
		assert_true(del == TF_SCAN_DELETED || del == 0);
		for (unsigned c = 0; c < t->ncpu; c++) {
			struct tf_flow_val v;

			memcpy(&v, ent + TF_SCAN_HDR + c * sizeof(v), sizeof(v));
			packets += v.packets;
		}
		if (packets)
			assert_int_equal(packets, 3 + k.sport);
		assert_int_equal(present(t, k.sport), del != TF_SCAN_DELETED);
	}
	free(ent);
	return n;
}

static uint32_t scan(struct sctx *t, uint64_t now, int out[64])
{
	return scan_from(t, now, 0, out);
}

static void test_due(void **state)
{
	(void)state;
	if (!can_load())
		skip();
	struct sctx *t = load(3, 64);
	int out[64];

	assert_non_null(t);
	/* flow: slot, first, last, flags -> expected (0 stays, 1 out, 2 deleted) */
	const struct {
		unsigned slot;
		uint64_t first, last;
		uint8_t flags;
		int want;
	} f[] = {
		{ 0, NOW - 20 * S, NOW - 10 * S, 0, 0 },                 /* 0 idle 10 s */
		{ 1, NOW - 20 * S, NOW - INACTIVE + 2 * MS, 0, 1 },      /* 1 in the margin */
		{ 2, NOW - 20 * S, NOW - INACTIVE - 5 * MS, 0, 2 },      /* 2 surely idle */
		{ 0, NOW - 20 * S, NOW - 1 * S, 0x11, 0 },               /* 3 FIN, in grace */
		{ 1, NOW - 20 * S, NOW - GRACE - 5 * MS, 0x04, 2 },      /* 4 RST, past grace */
		{ 2, NOW - ACTIVE + 1 * MS, NOW, 0, 1 },                  /* 5 active, in margin */
		{ 0, NOW - ACTIVE - 5 * S, NOW - 20 * S, 0, 1 },         /* 6 old and idle: shadow? */
		{ 0, 0, 0, 0, 1 },                                        /* 7 no packet at all */
		{ 2, NOW - 20 * S, NOW - 3 * S, 0x01, 2 },                /* 8 FIN in slot 2 */
		{ 1, NOW - 5 * S, NOW + 1 * S, 0, 0 },                    /* 9 counted after now */
		{ 0, NOW - INACTIVE - 10 * S, NOW - INACTIVE - 9 * S, 0x02, 2 }, /* 10 SYN only */
	};
	const unsigned nf = sizeof(f) / sizeof(f[0]);
	for (unsigned i = 0; i < nf; i++)
		put(t, i, f[i].slot, f[i].first, f[i].last, f[i].flags);
	uint32_t n = scan(t, NOW, out);
	assert_int_equal(t->skel->bss->tf_scan_over, 0);
	assert_int_equal(t->skel->bss->tf_scan_walked, nf);
	unsigned want_n = 0;
	for (unsigned i = 0; i < nf; i++) {
		if (out[i] != f[i].want)
			fprintf(stderr, "flow %u: got %d, want %d\n", i, out[i], f[i].want);
		assert_int_equal(out[i], f[i].want);
		want_n += f[i].want != 0;
	}
	assert_int_equal(n, want_n);
	/* A second scan: the deleted are gone, the rest as before. */
	n = scan(t, NOW, out);
	for (unsigned i = 0; i < nf; i++)
		assert_int_equal(out[i], f[i].want == 2 ? 0 : f[i].want);
	assert_int_equal(t->skel->bss->tf_scan_walked, nf - 4);
	unload(t);
}

/* More due than the output holds: the program stops at the flow that does not fit
 * (walked counts it), deletes what it copied out and is surely due, and a run passing
 * over what was walked less what left the map goes on from there, as cap_ebpf.c does:
 * every flow comes out exactly once, whether it is deleted (surely due) or stays (in the
 * margin: user space decides). */
static void test_overflow(void **state)
{
	(void)state;
	if (!can_load())
		skip();
	for (int sure = 0; sure <= 1; sure++) {
		struct sctx *t = load(2, 4);
		int out[64], seen[64] = { 0 };
		uint64_t skip = 0;
		unsigned runs = 0;

		assert_non_null(t);
		for (uint32_t i = 0; i < 10; i++)
			put(t, i, i & 1, NOW - 30 * S,
			    sure ? NOW - 20 * S : NOW - INACTIVE + 1 * MS, 0);
		for (;;) {
			uint32_t n = scan_from(t, NOW, skip, out), gone = 0;

			runs++;
			assert_true(runs <= 3);
			assert_true(n <= 4);
			for (int i = 0; i < 64; i++) {
				if (!out[i])
					continue;
				assert_int_equal(seen[i], 0);
				seen[i] = out[i];
				gone += out[i] == 2;
			}
			if (!t->skel->bss->tf_scan_over) {
				assert_int_equal(n, 2);
				break;
			}
			assert_int_equal(n, 4);
			assert_int_equal(t->skel->bss->tf_scan_walked, skip + n + 1);
			skip = t->skel->bss->tf_scan_walked - 1 - gone;
		}
		assert_int_equal(runs, 3);
		for (uint32_t i = 0; i < 10; i++) {
			assert_int_equal(seen[i], sure ? 2 : 1);
			assert_int_equal(present(t, i), !sure);
		}
		unload(t);
	}
}

/* The verifier takes the program for every slot count the loader may ask for. */
static void test_slots(void **state)
{
	(void)state;
	if (!can_load())
		skip();
	const unsigned counts[] = { 1, 2, 4, 8, 16, 31, TF_SCAN_MAXCPU };
	for (unsigned i = 0; i < sizeof(counts) / sizeof(counts[0]); i++) {
		struct sctx *t = load(counts[i], 8192);
		int out[64];

		assert_non_null(t);
		put(t, 1, counts[i] - 1, NOW - 30 * S, NOW - 20 * S, 0);
		put(t, 2, 0, NOW - 3 * S, NOW - 2 * S, 0);
		assert_int_equal(scan(t, NOW, out), 1);
		assert_int_equal(out[1], 2);
		assert_int_equal(out[2], 0);
		unload(t);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_due),
		cmocka_unit_test(test_overflow),
		cmocka_unit_test(test_slots),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
