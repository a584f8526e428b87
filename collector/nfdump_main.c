/* nfdump_main.c: tapflow-nfdump, a drop-in for monitoring consoles that run nfdump 1.7.
 * Takes nfdump's options as consoles pass them, answers from a tapflow store through
 * the query engine (query.h) and prints what nfdump 1.7.1 prints (nfcompat.h).
 * nfdump's short options clash with opts.h's conventions (-c is a count here, not a
 * config file), so this program parses them with getopt, as nfdump does. */
#include <errno.h>
#include <dirent.h>
#include <getopt.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>

#include "addr.h"
#include "filt.h"
#include "nfcompat.h"
#include "query.h"
#include "sys.h"

#ifndef TF_VERSION
#define TF_VERSION "unknown"
#endif

#define EXIT_FAIL 255           /* what nfdump exits with on errors */
#define EXIT_FILTER 254         /* ... and on a bad filter */
#define MAX_STATS QUERY_MAX_TABLES
#define MAX_FILTER (64 * 1024)

enum outmode { OM_LINE, OM_CSV, OM_FMT, OM_NULL, OM_PIPE };

struct ncfg {
	const char *rfile, *rdir, *mdir, *twin, *aggr, *order, *output, *filter_file;
	const char *stat[MAX_STATS];
	unsigned nstat;
	int quiet, plain, aggr5, top_given, syntax_only, info;
	uint64_t top, count;
};

/* One output run: what the renderers need besides the rows. */
struct nout {
	FILE *out;
	enum outmode mode;
	int quiet, plain;
	struct nfc_fmt *fmt;
	struct nfc_csv csv;
	int failed;
	int in_stat;            /* a statistic's rows are going out: a blank line ends it */
	int record_stat;        /* groups are -s record's (else -A's) */
	int said_none;          /* "No matching flows" printed */
};

static void usage(FILE *o)
{
	fprintf(o,
		"usage: tapflow-nfdump [options] [FILTER]\n"
		"nfdump 1.7 compatible front end to a tapflow store (see tapflow-query for more).\n"
		"  -r FILE       read one store file (under -M DIR if given)\n"
		"  -R DIR        read the store DIR; with -M DIR, '-R .' reads DIR itself\n"
		"  -M DIR[:DIR2...]  store directory for -r / -R; DIR2... beside DIR, read as one\n"
		"  -t WINDOW     YYYY/MM/DD.hh:mm:ss[-YYYY/MM/DD.hh:mm:ss] (local time)\n"
		"  -c N          process at most N matching flows\n"
		"  -s ELEM[/ORDER]  top N statistic; record/ORDER lists top flows (-A fields)\n"
		"  -n N          top N (default 10)\n"
		"  -A FIELDS     aggregate on srcip,dstip,srcport,dstport,proto,...\n"
		"  -a            aggregate on the 5-tuple\n"
		"  -O ORDER      order of listed flows (tstart tend flows packets bytes bps pps bpp)\n"
		"  -o FORMAT     line, long, extended, csv, pipe, null (no flows), or fmt:FORMAT (%%ts %%te\n"
		"                %%td %%pr %%sap %%dap %%sa %%da %%sp %%dp %%pkt %%ipkt %%byt %%ibyt %%fl %%bps\n"
		"                %%pps %%bpp %%flg %%tos %%in %%out %%sas %%das %%svln %%ra %%sn %%dn %%nh\n"
		"                %%smk %%dmk); -A without -o: a format of its fields, as nfdump\n"
		"  -q            no header and no summary\n"
		"  -N            plain numbers\n"
		"  -f FILE       read the filter from FILE\n"
		"  -Z            check the filter's syntax and exit (0, or 254 as any bad filter)\n"
		"  -I            the store's totals by protocol, first and last, as nfdump's file\n"
		"                statistics (no filter or window; sequence failures: 0, not kept)\n"
		"  -V            version\n"
		"Listings stream out; long ordered ones are sorted in a file under $TMPDIR (/tmp).\n");
}

/* -I: what nfdump keeps in each file's statistics record, for the whole store (as
 * nfdump, with no filter or window): flows, packets and bytes by protocol, first and
 * last. A tapflow store keeps no sequence failures: 0. */
static int print_info(const struct query_req *base, FILE *out)
{
	struct query_req rq;
	struct query_result res;
	uint64_t v[3][5] = { { 0 } };   /* flows, packets, bytes: all, tcp, udp, icmp, other */
	static const char *const what[3] = { "Flows", "Packets", "Bytes" };
	static const char *const sub[5] = { "", "_tcp", "_udp", "_icmp", "_other" };

	query_req_init(&rq, base->path);
	rq.more_paths = base->more_paths;
	rq.nmore = base->nmore;
	rq.warn = base->warn;
	rq.ntables = 1;
	rq.table[0].kind = QK_STAT;
	rq.table[0].order = QO_FLOWS;
	rq.table[0].nkey = 1;
	rq.table[0].key[0].field = QF_PROTO;
	memset(&res, 0, sizeof(res));
	int rc = query_run(&rq, &res);
	if (rc) {
		fprintf(stderr, "tapflow-nfdump: %s: %s\n", base->path,
			res.err[0] ? res.err : strerror(-rc));
		query_result_free(&res);
		return EXIT_FAIL;
	}
	for (uint64_t i = 0; i < res.table[0].nrows; i++) {
		const struct query_row *r = &res.table[0].rows[i];
		unsigned p = r->f.proto;
		unsigned k = p == 6 ? 1 : p == 17 ? 2 : p == 1 || p == 58 ? 3 : 4;
		uint64_t x[3] = { r->flows, r->f.packets, r->f.bytes };
		for (unsigned j = 0; j < 3; j++) {
			v[j][0] += x[j];
			v[j][k] += x[j];
		}
	}
	fprintf(out, "Ident: none\n");
	for (unsigned j = 0; j < 3; j++)
		for (unsigned k = 0; k < 5; k++)
			fprintf(out, "%s%s: %llu\n", what[j], sub[k], (unsigned long long)v[j][k]);
	uint64_t first = res.sum.flows ? res.sum.first_ms : 0, last = res.sum.last_ms;
	fprintf(out, "First: %llu\nLast: %llu\nmsec_first: %llu\nmsec_last: %llu\n"
		"Sequence failures: 0\n", (unsigned long long)(first / 1000),
		(unsigned long long)(last / 1000), (unsigned long long)(first % 1000),
		(unsigned long long)(last % 1000));
	query_result_free(&res);
	return fflush(out) || ferror(out) ? EXIT_FAIL : 0;
}

/* One store path: -R . (or -r FILE) under DIR of -M. */
static char *store_path(const char *dir, const char *rel)
{
	char *p = NULL;
	if (dir && (!rel || !strcmp(rel, ".") || !strcmp(rel, "./")))
		p = strdup(dir);
	else if (dir && rel[0] != '/') {
		if (asprintf(&p, "%s/%s", dir, rel) < 0)
			p = NULL;
	} else
		p = strdup(rel);
	return p;
}

#define MAX_DIRS 64

/* The stores to read, in paths (freed by the caller): nfdump's -M /any/dir1:dir2:...
 * names dir1 and, beside it, dir2 ... (a name starting with '/' is taken whole), with
 * -R or -r applied to each; else -R or -r alone. Returns how many, 0 (with a message)
 * for none or a bad -M. */
static unsigned store_paths(const struct ncfg *c, char **paths)
{
	const char *rel = c->rfile ? c->rfile : c->rdir;
	unsigned n = 0;

	if (!rel && !c->mdir) {
		fprintf(stderr, "tapflow-nfdump: no input: give -r FILE, -R DIR or -M DIR\n");
		return 0;
	}
	if (!c->mdir || (rel && rel[0] == '/'))
		return (paths[0] = store_path(NULL, rel)) ? 1 : 0;
	const char *m = c->mdir, *first_end = strchr(m, ':');
	size_t baselen = 0;         /* dir1's parent, with its '/' */
	const char *slash = memrchr(m, '/', first_end ? (size_t)(first_end - m) : strlen(m));
	if (slash)
		baselen = (size_t)(slash - m) + 1;
	for (const char *p = m; p; ) {
		const char *end = strchr(p, ':');
		size_t len = end ? (size_t)(end - p) : strlen(p);
		char *dir = NULL;
		if (!len || n == MAX_DIRS) {
			fprintf(stderr, "tapflow-nfdump: -M %s: %s\n", m,
				len ? "too many directories" : "an empty directory name");
			goto fail;
		}
		if (p == m || *p == '/')
			dir = strndup(p, len);
		else if (asprintf(&dir, "%.*s%.*s", (int)baselen, m, (int)len, p) < 0)
			dir = NULL;
		paths[n] = dir ? store_path(dir, rel) : NULL;
		free(dir);
		if (!paths[n++])
			goto fail;
		p = end ? end + 1 : NULL;
	}
	return n;
fail:
	while (n)
		free(paths[--n]);
	return 0;
}

static char *read_filter_file(const char *path)
{
	FILE *f = fopen(path, "r");
	if (!f)
		return NULL;
	char *buf = calloc(1, MAX_FILTER + 1);
	if (buf) {
		size_t n = fread(buf, 1, MAX_FILTER, f);
		buf[n] = 0;
	}
	fclose(f);
	return buf;
}

static char *join_args(int argc, char **argv)
{
	size_t len = 1;
	for (int i = 0; i < argc; i++)
		len += strlen(argv[i]) + 1;
	char *s = calloc(1, len);
	if (!s)
		return NULL;
	for (int i = 0; i < argc; i++) {
		if (i)
			strcat(s, " ");
		strcat(s, argv[i]);
	}
	return s;
}

/* nfdump prints the orders of one -s in this order, whatever order they were given in. */
static int nfdump_rank(int order)
{
	static const int rank[QO__COUNT] = {
		[QO_FLOWS] = 0, [QO_PACKETS] = 1, [QO_BYTES] = 2, [QO_PPS] = 3, [QO_BPS] = 4,
		[QO_BPP] = 5,
	};
	return order >= 0 && order < QO__COUNT ? rank[order] : 9;
}

static int rank_before(const struct query_table_req *a, const struct query_table_req *b)
{
	return nfdump_rank(a->order) < nfdump_rank(b->order);
}

/* -s record's flows print before the element statistics. */
static int record_before(const struct query_table_req *a, const struct query_table_req *b)
{
	return a->kind == QK_AGGR && b->kind != QK_AGGR;
}

/* Moves tables ahead where before() says so, the rest in the order given (stable). */
static void sort_tables(struct query_table_req *t, unsigned n,
			int (*before)(const struct query_table_req *, const struct query_table_req *))
{
	for (unsigned i = 1; i < n; i++)
		for (unsigned j = i; j > 0 && before(&t[j], &t[j - 1]); j--) {
			struct query_table_req x = t[j];
			t[j] = t[j - 1];
			t[j - 1] = x;
		}
}

static void row_flow(const struct query_table *t, const struct query_row *r, struct flow_rec *f)
{
	*f = r->f;
	if (t->req.kind == QK_AGGR) {
		/* masked fields print as nfdump prints them when aggregated away */
		f->tcp_flags = 0;
	}
}

/* ---- sink: rows are printed as the engine delivers them ---- */

static int sink_begin(void *arg, const struct query_table *t)
{
	struct nout *o = arg;
	if (o->in_stat)
		fputc('\n', o->out);
	o->in_stat = t->req.kind == QK_STAT;
	if (t->req.kind == QK_STAT) {
		/* nfdump says so before its statistics (the totals are known by now) */
		if (!t->flows && !o->said_none) {
			fputs("No matching flows\n", o->out);
			o->said_none = 1;
		}
		if (o->mode == OM_CSV)
			nfc_csv_stat_header(t->req.order, o->out);
		else if (!o->quiet)
			nfc_stat_text_header(t, o->out);
		return 0;
	}
	if (t->req.kind == QK_AGGR && o->record_stat && t->req.limit && o->mode != OM_CSV &&
	    !o->quiet && t->req.order != QO_NONE)   /* -s record's title, not -A's */
		fprintf(o->out, "Top %llu flows ordered by %s:\n",
			(unsigned long long)t->req.limit, query_order_name(t->req.order));
	if (o->quiet || o->mode == OM_NULL)
		return 0;
	if (o->mode == OM_CSV)
		nfc_csv_flow_header(o->out);
	else
		nfc_fmt_header(o->fmt, o->out);
	return 0;
}

static int sink_row(void *arg, const struct query_table *t, const struct query_row *r)
{
	struct nout *o = arg;
	struct flow_rec f;
	int rc;
	if (t->req.kind == QK_STAT) {
		rc = o->mode == OM_CSV ? nfc_csv_stat_row(t, r, o->plain, o->out) :
		     o->mode == OM_PIPE ? nfc_pipe_stat_row(t, r, o->out) :
					  nfc_stat_text_row(t, r, o->plain, o->out);
	} else if (o->mode == OM_NULL) {
		return 0;
	} else if (o->mode == OM_PIPE) {
		row_flow(t, r, &f);
		rc = nfc_pipe_flow_row(&f, o->out);
	} else {
		row_flow(t, r, &f);
		rc = o->mode == OM_CSV ? nfc_csv_flow_row(&o->csv, &f, o->out)
				       : nfc_fmt_row(o->fmt, &f, t->req.kind == QK_FLOWS ? 1 : r->flows,
						     o->out);
	}
	if (rc)
		o->failed = 1;
	return rc;
}

/* ---- totals nfdump reports that the engine does not ---- */

/* Bytes of store files (*.tfs) under path: nfdump's "Bytes read". */
static uint64_t store_bytes(const char *path, int depth)
{
	struct stat st;
	uint64_t sum = 0;
	if (stat(path, &st) < 0)
		return 0;
	if (S_ISREG(st.st_mode))
		return (uint64_t)st.st_size;
	DIR *d;
	if (!S_ISDIR(st.st_mode) || depth > 8 || !(d = opendir(path)))
		return 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		size_t n = strlen(de->d_name);
		char *p;
		if (de->d_name[0] == '.')
			continue;
		if (asprintf(&p, "%s/%s", path, de->d_name) < 0)
			break;
		if (stat(p, &st) == 0 && (S_ISDIR(st.st_mode) ||
					  (n > 4 && !strcmp(de->d_name + n - 4, ".tfs"))))
			sum += store_bytes(p, depth + 1);
		free(p);
	}
	closedir(d);
	return sum;
}

/* nfdump's "Time window": the -t window, else the span of every flow in the files
 * read (also those the filter or -c left out), which takes a pass of its own. */
static void store_span(const struct query_req *rq, const struct query_summary *matched,
		       uint64_t *first, uint64_t *last)
{
	struct query_req sq;
	struct query_result sr;
	*first = matched->first_ms;
	*last = matched->last_ms;
	if (rq->has_window) {
		*first = rq->win.from_ms;
		*last = rq->win.to_ms;
		return;
	}
	query_req_init(&sq, rq->path);
	sq.more_paths = rq->more_paths;
	sq.nmore = rq->nmore;
	memset(&sr, 0, sizeof(sr));
	if (query_run(&sq, &sr) == 0 && sr.sum.flows) {
		*first = sr.sum.first_ms;
		*last = sr.sum.last_ms;
	}
	query_result_free(&sr);
}

static double mono_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void warn_cb(const char *path, int err, const char *what, void *arg)
{
	(void)arg;
	fprintf(stderr, "tapflow-nfdump: %s: %s: %s (skipped)\n", path, what, strerror(-err));
}

/* A host name in the filter, looked up as nfdump does, which tells on stdout what it
 * stands for (before the answer: line positions stay nfdump's). */
static int nfdump_resolve(const char *name, uint8_t (*out)[16], int max, char *err,
			  size_t errlen)
{
	int n;

	printf("Resolving %s ...\n", name);
	n = filt_resolve_system(name, out, max, err, errlen);
	for (int i = 0; i < n; i++) {
		struct sockaddr_in s4;
		struct sockaddr_in6 s6;
		const struct sockaddr *sa;
		socklen_t sl;
		char addr[INET6_ADDRSTRLEN], rev[NI_MAXHOST];
		int v4 = flowrec_is4(out[i]);

		if (v4) {
			memset(&s4, 0, sizeof(s4));
			s4.sin_family = AF_INET;
			memcpy(&s4.sin_addr, out[i] + 12, 4);
			sa = (const struct sockaddr *)&s4;
			sl = sizeof(s4);
		} else {
			memset(&s6, 0, sizeof(s6));
			s6.sin6_family = AF_INET6;
			memcpy(&s6.sin6_addr, out[i], 16);
			sa = (const struct sockaddr *)&s6;
			sl = sizeof(s6);
		}
		if (getnameinfo(sa, sl, rev, sizeof(rev), NULL, 0, 0) != 0)
			snprintf(rev, sizeof(rev), "<reverse lookup failed>");
		printf("IPv%d address: %s (%s)\n", v4 ? 4 : 6, addr_str(out[i], addr, sizeof(addr)),
		       rev);
	}
	return n;
}

static int parse_args(int argc, char **argv, struct ncfg *c)
{
	int ch;
	char *end;
	opterr = 0;
	/* nfdump has only -h, but people type --help and --version first */
	for (int i = 1; i < argc && strcmp(argv[i], "--"); i++) {
		if (!strcmp(argv[i], "--help")) {
			usage(stdout);
			exit(0);
		}
		if (!strcmp(argv[i], "--version"))
			argv[i] = "-V";
	}
	while ((ch = getopt(argc, argv, "r:R:M:t:c:s:n:A:aO:o:qNf:hV6IZ")) != -1) {
		switch (ch) {
		case 'r': c->rfile = optarg; break;
		case 'R': c->rdir = optarg; break;
		case 'M': c->mdir = optarg; break;
		case 't': c->twin = optarg; break;
		case 'A': c->aggr = optarg; break;
		case 'a': c->aggr5 = 1; break;
		case 'Z': c->syntax_only = 1; break;
		case 'O': c->order = optarg; break;
		case 'o': c->output = optarg; break;
		case 'q': c->quiet = 1; break;
		case 'N': c->plain = 1; break;
		case 'f': c->filter_file = optarg; break;
		case 's':
			if (c->nstat == MAX_STATS) {
				fprintf(stderr, "tapflow-nfdump: too many -s\n");
				return -1;
			}
			c->stat[c->nstat++] = optarg;
			break;
		case 'c':
		case 'n':
			errno = 0;
			unsigned long long v = strtoull(optarg, &end, 10);
			if (errno || *end || end == optarg) {
				fprintf(stderr, "tapflow-nfdump: -%c: not a number: %s\n", ch, optarg);
				return -1;
			}
			if (ch == 'c')
				c->count = v;
			else {
				c->top = v;
				c->top_given = 1;
			}
			break;
		case 'h': usage(stdout); exit(0);
		case 'V': printf("tapflow-nfdump: Version: %s (nfdump 1.7.1 output)\n", TF_VERSION);
			exit(0);
		case 'I': c->info = 1; break;
		case '6':
			fprintf(stderr, "tapflow-nfdump: -%c is not supported\n", ch);
			return -1;
		default:
			fprintf(stderr, "tapflow-nfdump: unknown option -%c\n", optopt);
			usage(stderr);
			return -1;
		}
	}
	return optind;
}

int main(int argc, char **argv)
{
	struct ncfg c = { .top = 10 };
	struct nout o = { .out = stdout };
	struct query_req rq;
	struct query_result res;
	char err[QUERY_ERR_LEN];
	char *paths[MAX_DIRS], *path, *filter = NULL;
	unsigned npaths = 0;
	int rc = EXIT_FAIL, qrc;
	struct query_key aggr[QUERY_MAX_FIELDS];
	unsigned naggr = 0;
	int have_res = 0;

	sys_raise_nofile();
	int first = parse_args(argc, argv, &c);
	if (first < 0)
		return EXIT_FAIL;
	if (first < argc)
		filter = join_args(argc - first, argv + first);
	else if (c.filter_file && !(filter = read_filter_file(c.filter_file))) {
		fprintf(stderr, "tapflow-nfdump: %s: %s\n", c.filter_file, strerror(errno));
		goto out;
	}
	if (c.syntax_only) {    /* -Z: the filter checked, nothing read */
		size_t pos = 0;
		struct filt *f = filt_compile_names(filter ? filter : "", nfdump_resolve, err,
						    sizeof(err), &pos);
		if (!f)
			fprintf(stderr, "tapflow-nfdump: filter: %s\n", err);
		filt_free(f);
		rc = f ? 0 : EXIT_FILTER;
		goto out;
	}
	if (!(npaths = store_paths(&c, paths)))
		goto out;
	path = paths[0];
	query_req_init(&rq, path);
	rq.more_paths = (const char *const *)paths + 1;
	rq.nmore = npaths - 1;
	rq.spill_dir = query_tmpdir();
	rq.warn = warn_cb;
	rq.filter = filter;
	rq.resolve = nfdump_resolve;
	if (c.info) {
		rc = print_info(&rq, stdout);
		goto out;
	}

	o.quiet = c.quiet;
	o.plain = c.plain;
	const char *fmt = NFC_FMT_LINE;
	if (!c.output || !strcmp(c.output, "line")) {
		o.mode = OM_LINE;
	} else if (!strcmp(c.output, "long")) {
		o.mode = OM_LINE;
		fmt = NFC_FMT_LONG;
	} else if (!strcmp(c.output, "extended")) {
		o.mode = OM_LINE;
		fmt = NFC_FMT_EXTENDED;
	} else if (!strcmp(c.output, "csv")) {
		o.mode = OM_CSV;
	} else if (!strcmp(c.output, "pipe")) {
		o.mode = OM_PIPE;       /* rows alone: no headers, no summary, -q or not */
		o.quiet = c.quiet = 1;
	} else if (!strcmp(c.output, "null")) {
		o.mode = OM_NULL;       /* no flows or groups, statistics and summary as line's */
	} else if (!strncmp(c.output, "fmt:", 4)) {
		o.mode = OM_FMT;
		fmt = c.output + 4;
	} else {
		fprintf(stderr, "tapflow-nfdump: output format %s is not supported (line, long, "
			"extended, csv, pipe, null, fmt:...)\n", c.output);
		goto out;
	}

	if (c.twin) {
		struct timespec now;
		clock_gettime(CLOCK_REALTIME, &now);
		if (query_parse_time(c.twin, (uint64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000,
				     &rq.win, err, sizeof(err))) {
			fprintf(stderr, "tapflow-nfdump: %s\n", err);
			goto out;
		}
		rq.has_window = 1;
	}
	if (c.aggr5 && !c.aggr)
		c.aggr = "proto,srcip,srcport,dstip,dstport";
	if (c.aggr && query_parse_aggr(c.aggr, aggr, &naggr, err, sizeof(err))) {
		fprintf(stderr, "tapflow-nfdump: %s\n", err);
		goto out;
	}
	/* groups print in a format of their keys unless -o says otherwise, as nfdump's do */
	char afmt[256];
	if (naggr && !c.aggr5 && !c.output && nfc_aggr_fmt(aggr, naggr, afmt, sizeof(afmt)) == 0)
		fmt = afmt;
	if (o.mode != OM_CSV && !(o.fmt = nfc_fmt_new(fmt, c.plain, err, sizeof(err)))) {
		fprintf(stderr, "tapflow-nfdump: %s\n", err);
		goto out;
	}
	int lorder = QO_NONE;
	if (c.order && (lorder = query_parse_order(c.order)) < 0) {
		fprintf(stderr, "tapflow-nfdump: -O %s: unknown order\n", c.order);
		goto out;
	}
	rq.max_flows = c.count;

	for (unsigned i = 0; i < c.nstat; i++) {
		unsigned before = rq.ntables;
		if (query_parse_stat(c.stat[i], aggr, naggr, c.top, &rq, err, sizeof(err))) {
			fprintf(stderr, "tapflow-nfdump: %s\n", err);
			goto out;
		}
		sort_tables(rq.table + before, rq.ntables - before, rank_before);
	}
	sort_tables(rq.table, rq.ntables, record_before);
	int has_stat = rq.ntables > 0;
	o.record_stat = has_stat;
	if (!has_stat) {
		struct query_table_req *t = &rq.table[rq.ntables++];
		memset(t, 0, sizeof(*t));
		t->order = (uint8_t)lorder;
		if (naggr) {
			t->kind = QK_AGGR;
			t->nkey = (uint8_t)naggr;
			memcpy(t->key, aggr, naggr * sizeof(aggr[0]));
			t->limit = lorder != QO_NONE && c.top_given ? c.top : 0;
		} else {
			t->kind = QK_FLOWS;
			/* nfdump: an explicit -n limits sorted listings, -c what is read */
			t->limit = lorder != QO_NONE && c.top_given && c.top ? c.top : c.count;
			rq.threads = 1;         /* store order, as nfdump lists files */
		}
	}

	struct rusage ru0, ru1;
	getrusage(RUSAGE_SELF, &ru0);
	double t0 = mono_s();
	struct query_table_req *lt = &rq.table[0];
	/* every flow: in store order they stream out; in another, what memory does not hold
	 * is sorted on disk */
	if (!has_stat && lt->kind == QK_FLOWS && !lt->limit)
		lt->limit = UINT64_MAX;
	struct query_sink sink = { sink_begin, sink_row, &o };
	rq.sink = &sink;        /* rows go out as the engine delivers them */
	memset(&res, 0, sizeof(res));
	have_res = 1;
	qrc = query_run(&rq, &res);
	if (qrc) {
		if (qrc == -EINVAL && res.err_pos >= 0) {
			fprintf(stderr, "tapflow-nfdump: filter: %s\n", res.err);
			rc = EXIT_FILTER;
		} else
			fprintf(stderr, "tapflow-nfdump: %s: %s\n", path,
				res.err[0] ? res.err : strerror(-qrc));
		goto out;
	}
	double t1 = mono_s();
	getrusage(RUSAGE_SELF, &ru1);

	if (o.in_stat)
		fputc('\n', o.out);
	if (res.sum.flows == 0 && !o.said_none)
		fputs("No matching flows\n", o.out);

	if (!c.quiet) {
		if (o.mode == OM_CSV) {
			nfc_csv_summary(&res.sum, o.out);
		} else {
			uint64_t wf, wl;
			store_span(&rq, &res.sum, &wf, &wl);
			uint64_t bytes_read = 0;
			for (unsigned i = 0; i < npaths; i++)
				bytes_read += store_bytes(paths[i], 0);
			struct nfc_run run = {
				.win_first_ms = wf,
				.win_last_ms = wl,
				.bytes_read = bytes_read,
				.sys_s = (double)(ru1.ru_stime.tv_sec - ru0.ru_stime.tv_sec) +
					 (double)(ru1.ru_stime.tv_usec - ru0.ru_stime.tv_usec) / 1e6,
				.user_s = (double)(ru1.ru_utime.tv_sec - ru0.ru_utime.tv_sec) +
					  (double)(ru1.ru_utime.tv_usec - ru0.ru_utime.tv_usec) / 1e6,
				.wall_s = t1 - t0,
			};
			nfc_text_summary(&res.sum, &run, c.plain, o.out);
		}
	}
	if (fflush(o.out) || ferror(o.out) || o.failed) {
		fprintf(stderr, "tapflow-nfdump: write error\n");
		goto out;
	}
	rc = 0;
out:
	if (have_res)
		query_result_free(&res);
	nfc_fmt_free(o.fmt);
	free(filter);
	while (npaths)
		free(paths[--npaths]);
	return rc;
}
