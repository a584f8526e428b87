/* storebench: write and read speed and size of the flow store, on realistic generated
 * flows or on the flows of an existing store (tests, tuning).
 *
 *   storebench [-g N] [-i STORE] [-z lz4|zstd|none] [-l LEVEL] [-b BLOCK_RECS]
 *              [-s SEED] [-o DIR] [-r REPS] [--cols] [--verify] [--no-read] [--sync]
 *
 * Input: -g N realistic flows (tests/tools/realgen.h, default 1000000), or -i STORE, every
 * record of a store directory or file (say, what a collector stored from a real export).
 * The records are generated or read into memory first; then bench_write() stores them
 * (callgrind: --toggle-collect=bench_write counts just that), then the reads run: the
 * summary scan (packets, bytes, first, last) and a decode of every column, best of REPS
 * (default 3). -o DIR writes there (kept) instead of a temporary directory (removed).
 * --verify reads every record back and compares it with what went in. --sync turns on
 * fdatasync as the collector has it. One line per figure on stdout:
 *   records=N files=N bytes=N bytes_per_flow=X write_cpu_s=X write_rec_per_cpu_s=X
 *   summary_rec_per_s=X allcols_rec_per_s=X
 * and with --cols the bytes per flow of each column. Exit 0, 1 on error or mismatch.
 */
#include <errno.h>
#include <ftw.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "store.h"
#include "realgen.h"

static const char *col_names[STORE_NCOLS] = {
	"src", "dst", "nexthop", "exporter", "packets", "bytes", "first", "last",
	"in_if", "out_if", "src_as", "dst_as", "domain_id", "sampling", "sport", "dport",
	"vlan", "proto", "tos", "tcp_flags", "ipver", "src_mask", "dst_mask", "end_reason",
};

struct recs {
	struct flow_rec *v;
	size_t n, cap;
};

static int recs_push(struct recs *r, const struct flow_rec *x)
{
	if (r->n == r->cap) {
		size_t nc = r->cap ? r->cap * 2 : 65536;
		struct flow_rec *v = realloc(r->v, nc * sizeof(*v));
		if (!v)
			return -ENOMEM;
		r->v = v;
		r->cap = nc;
	}
	r->v[r->n++] = *x;
	return 0;
}

static double cpu_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double wall_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Every record of a store, in store order. */
struct load_ctx {
	struct recs *out;
	int err;
};

static int load_block(const struct store_cols *c, const struct store_block_info *bi, void *arg)
{
	struct load_ctx *x = arg;
	struct flow_rec r;

	(void)bi;
	for (uint32_t i = 0; i < c->n; i++) {
		store_cols_get(c, i, &r);
		if (recs_push(x->out, &r) < 0)
			return x->err = -ENOMEM;
	}
	return 0;
}

static int load_store(const char *path, struct recs *out)
{
	struct load_ctx x = { out, 0 };
	struct store_scan_opts o = { .mask = STORE_COLS_ALL, .block = load_block, .arg = &x };
	struct store_scan_stats st;
	int rc = store_scan(path, &o, &st);

	if (rc == 0 && st.bad_blocks + st.bad_files)
		fprintf(stderr, "storebench: %s: %llu damaged blocks, %llu bad files skipped\n",
			path, (unsigned long long)st.bad_blocks, (unsigned long long)st.bad_files);
	return rc;
}

/* Stores recs with cfg; the time of the records' receipt moves with their last_ms so
 * that files rotate as a collector's would. Kept apart for callgrind. */
__attribute__((noinline)) static int bench_write(const struct store_cfg *cfg,
						 const struct recs *in, uint64_t t0,
						 struct store_writer_stats *st)
{
	struct store_writer *w = store_writer_open(cfg, t0);
	int rc = 0;

	if (!w)
		return -errno;
	for (size_t i = 0; i < in->n && rc == 0; i++)
		rc = store_writer_add(w, &in->v[i]);
	*st = *store_writer_stats(w);
	int rc2 = store_writer_close(w);
	return rc ? rc : rc2;
}

struct cnt_ctx {
	uint64_t n, sum;
};

static int count_block(const struct store_cols *c, const struct store_block_info *bi, void *arg)
{
	struct cnt_ctx *x = arg;

	(void)bi;
	x->n += c->n;
	x->sum += c->n ? c->bytes[c->n - 1] + c->src[0][15] + c->proto[c->n / 2] : 0;
	return 0;
}

static uint64_t du_total;

static int du_one(const char *p, const struct stat *sb, int flag, struct FTW *f)
{
	size_t l = strlen(p);

	(void)f;
	if (flag == FTW_F && l > 4 && !strcmp(p + l - 4, ".tfs"))
		du_total += (uint64_t)sb->st_size;
	return 0;
}

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *f)
{
	(void)sb;
	(void)flag;
	(void)f;
	return remove(p);
}

static int verify(const char *dir, const struct recs *in)
{
	struct recs back = { 0 };
	int rc = load_store(dir, &back), bad = 0;

	if (rc < 0) {
		fprintf(stderr, "storebench: reading back: %s\n", store_strerror(rc));
		return -1;
	}
	if (back.n != in->n) {
		fprintf(stderr, "storebench: verify: %zu records back, %zu written\n", back.n, in->n);
		bad = 1;
	}
	for (size_t i = 0; i < back.n && i < in->n && bad < 10; i++) {
		struct flow_rec a = in->v[i];
		memset(a.pad, 0, sizeof(a.pad));
		if (memcmp(&a, &back.v[i], sizeof(a))) {
			fprintf(stderr, "storebench: verify: record %zu differs\n", i);
			bad++;
		}
	}
	free(back.v);
	if (!bad)
		printf("verify=ok\n");
	return bad ? -1 : 0;
}

static void usage(void)
{
	fprintf(stderr, "usage: storebench [-g N | -i STORE] [-z lz4|zstd|none] [-l LEVEL] "
		"[-b BLOCK_RECS] [-s SEED] [-o DIR] [-r REPS] [--cols] [--verify] [--no-read] "
		"[--sync]\n");
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "cols", no_argument, NULL, 'C' },
		{ "verify", no_argument, NULL, 'V' },
		{ "no-read", no_argument, NULL, 'N' },
		{ "sync", no_argument, NULL, 'S' },
		{ NULL, 0, NULL, 0 },
	};
	size_t ngen = 1000000;
	const char *input = NULL, *outdir = NULL;
	uint64_t seed = 2024;
	int reps = 3, cols = 0, check = 0, noread = 0, sync = 0, opt, rc = 0;
	char tmp[] = "/tmp/storebench.XXXXXX";
	struct store_cfg cfg;
	struct recs in = { 0 };

	store_cfg_default(&cfg, NULL);
	while ((opt = getopt_long(argc, argv, "g:i:z:l:b:s:o:r:h", lo, NULL)) != -1) {
		switch (opt) {
		case 'g': ngen = strtoull(optarg, NULL, 0); break;
		case 'i': input = optarg; break;
		case 'z':
			if (!strcmp(optarg, "lz4"))
				cfg.codec = STORE_CODEC_LZ4;
			else if (!strcmp(optarg, "zstd"))
				cfg.codec = STORE_CODEC_ZSTD;
			else if (!strcmp(optarg, "none"))
				cfg.codec = STORE_CODEC_NONE;
			else {
				usage();
				return 2;
			}
			break;
		case 'l': cfg.level = atoi(optarg); break;
		case 'b': cfg.block_recs = (uint32_t)strtoul(optarg, NULL, 0); break;
		case 's': seed = strtoull(optarg, NULL, 0); break;
		case 'o': outdir = optarg; break;
		case 'r': reps = atoi(optarg); break;
		case 'C': cols = 1; break;
		case 'V': check = 1; break;
		case 'N': noread = 1; break;
		case 'S': sync = 1; break;
		default: usage(); return 2;
		}
	}
	if (input) {
		int e = load_store(input, &in);
		if (e < 0) {
			fprintf(stderr, "storebench: %s: %s\n", input, store_strerror(e));
			return 1;
		}
	} else {
		struct realgen g;
		struct flow_rec r;
		rg_init(&g, seed);
		for (size_t i = 0; i < ngen; i++) {
			rg_next(&g, &r, NULL);
			if (recs_push(&in, &r) < 0)
				return 1;
		}
		rg_free(&g);
	}
	if (!in.n) {
		fprintf(stderr, "storebench: no records\n");
		return 1;
	}
	if (!outdir) {
		if (!mkdtemp(tmp)) {
			perror("storebench: mkdtemp");
			return 1;
		}
	} else if (mkdir(outdir, 0755) < 0 && errno != EEXIST) {
		perror("storebench: mkdir");
		return 1;
	}
	cfg.dir = outdir ? outdir : tmp;
	cfg.nosync = !sync;
	/* one file for the whole input: receipt time is the first record's */
	uint64_t t0 = in.v[0].last_ms;
	struct store_writer_stats ws;
	double c0 = cpu_now(), w0 = wall_now();
	int e = bench_write(&cfg, &in, t0, &ws);
	double cpu = cpu_now() - c0, wall = wall_now() - w0;
	if (e < 0) {
		fprintf(stderr, "storebench: write: %s\n", store_strerror(e));
		rc = 1;
		goto out;
	}
	du_total = 0;
	nftw(cfg.dir, du_one, 16, FTW_PHYS);
	printf("records=%zu blocks=%llu bytes=%llu bytes_per_flow=%.3f write_cpu_s=%.3f "
	       "write_wall_s=%.3f write_rec_per_cpu_s=%.0f\n",
	       in.n, (unsigned long long)ws.blocks, (unsigned long long)du_total,
	       (double)du_total / (double)in.n, cpu, wall, (double)in.n / cpu);
	if (cols) {
		for (int c = 0; c < STORE_NCOLS; c++)
			printf("  col %-10s %7.3f bytes/flow\n", col_names[c],
			       (double)ws.col_bytes[c] / (double)in.n);
		printf("  col %-10s %7.3f bytes/flow (%llu records mirrored)\n", "mirror",
		       (double)ws.mirror_bytes / (double)in.n, (unsigned long long)ws.mirrored);
		printf("  col %-10s %7.3f bytes/flow\n", "tuple",
		       (double)ws.tuple_bytes / (double)in.n);
	}
	if (!noread) {
		double best_sum = 0, best_all = 0;
		for (int k = 0; k < reps; k++) {
			struct store_summary s;
			double t = wall_now();
			if (store_summary(cfg.dir, NULL, NULL, NULL, &s) < 0 || s.flows != in.n) {
				fprintf(stderr, "storebench: summary: %llu flows\n",
					(unsigned long long)s.flows);
				rc = 1;
				goto out;
			}
			t = wall_now() - t;
			if (best_sum == 0 || t < best_sum)
				best_sum = t;
			struct cnt_ctx x = { 0, 0 };
			struct store_scan_opts o = { .mask = STORE_COLS_ALL, .block = count_block,
						     .arg = &x };
			t = wall_now();
			if (store_scan(cfg.dir, &o, NULL) < 0 || x.n != in.n) {
				fprintf(stderr, "storebench: scan: %llu records\n",
					(unsigned long long)x.n);
				rc = 1;
				goto out;
			}
			t = wall_now() - t;
			if (best_all == 0 || t < best_all)
				best_all = t;
		}
		printf("summary_rec_per_s=%.0f allcols_rec_per_s=%.0f\n", (double)in.n / best_sum,
		       (double)in.n / best_all);
	}
	if (check && verify(cfg.dir, &in) < 0)
		rc = 1;
out:
	if (!outdir)
		nftw(tmp, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	free(in.v);
	return rc;
}
