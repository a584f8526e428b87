/* query_main.c: tapflow-query. Turns the command line (nfdump's options where nfdump
 * has them) into a query_req, runs it (query.h) and renders the answer (qout.h). */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "httpcli.h"
#include "opts.h"
#include "qout.h"
#include "query.h"
#include "sys.h"

#ifndef TF_VERSION
#define TF_VERSION "unknown"
#endif

#define EXIT_USAGE 2
#define MAX_ARGS QUERY_MAX_ARGS

struct qcfg {
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
	int help;
	int version;
};

static const struct qcfg defaults = {
	.window = "inside",
	.top = 10,
	.output = "table",
	.max_memory = QUERY_DEFAULT_MEMORY,
};

#define O(f) offsetof(struct qcfg, f)
static const struct opt_def qopts[] = {
	{ "read", 'R', OPT_STR, O(read), 0, 0, "DIR",
	  "The store: tapflow-collector's -l directory (DIR/YYYY/MM/DD/tf-*.tfs) or one\n"
	  "store file. Required." },
	{ "time", 't', OPT_STR, O(time), 0, 0, "WINDOW",
	  "Only flows inside the time window (see TIME WINDOWS)." },
	{ "window", 0, OPT_STR, O(window), 0, 0, "inside|overlap|first",
	  "What -t selects: flows wholly inside the window (nfdump's rule), flows that\n"
	  "overlap it, or flows whose first packet falls in it." },
	{ "filter-file", 'f', OPT_STR, O(filter_file), 0, 0, "FILE",
	  "Read the filter from FILE ('#' starts a comment). A filter given as arguments\n"
	  "takes precedence, as in nfdump." },
	{ "stat", 's', OPT_LIST, O(stat), 0, 0, "ELEM[/ORDER]",
	  "Top N statistic of ELEM ordered by ORDER (see STATISTICS); repeatable." },
	{ "top", 'n', OPT_UINT, O(top), 0, 100000000, "N",
	  "Rows per statistic (0: all). With -A, list at most N groups." },
	{ "aggregate", 'A', OPT_STR, O(aggregate), 0, 0, "FIELD,...",
	  "Aggregate flows on these key fields and list the groups (see AGGREGATION)." },
	{ "order", 'O', OPT_STR, O(order), 0, 0, "ORDER",
	  "Order of listed flows or groups: tstart, tend, flows, packets, bytes, bps, pps,\n"
	  "bpp, duration. Default: -A groups in hash order, flows in store order." },
	{ "count", 'c', OPT_UINT, O(count), 0, 1000000000, "N",
	  "List the first N flows in store order (without -s and -A; more than the memory\n"
	  "limit holds stream out, read on one thread), or with -O the first N in that\n"
	  "order; with -A, at most N groups. 0: no limit (-A), no listing (flows)." },
	{ "max-flows", 0, OPT_UINT, O(max_flows), 0, 0xffffffffu, "N",
	  "Stop after N matching flows in store order; totals, statistics and groups then\n"
	  "cover only those (what nfdump -c does). 0: no limit. Uses one thread." },
	{ "series", 0, OPT_SECS, O(series), 0, 366 * 86400, "SECS",
	  "Also per-interval totals in SECS buckets (see SERIES). 0: none." },
	{ "output", 'o', OPT_STR, O(output), 0, 0, "table|csv|json",
	  "Output format (see OUTPUT)." },
	{ "plain", 'N', OPT_BOOL, O(plain), 0, 0, NULL,
	  "Whole numbers in tables instead of 12.5 M (nfdump -N)." },
	{ "max-memory", 0, OPT_SIZE, O(max_memory), 0, 0, "SIZE",
	  "Memory for aggregation tables and kept rows (e.g. 256M, 2G). More distinct\n"
	  "keys than fit make the query run in several passes, never fail to be exact." },
	{ "threads", 0, OPT_UINT, O(threads), 0, 64, "N",
	  "Threads scanning the store (0: one per CPU). The answer does not depend on it." },
	{ "config", 'C', OPT_STR, O(config), 0, 0, "FILE",
	  "Read these options from a libconfig file (names as above, '-' written '_');\n"
	  "flags given on the command line override it." },
	{ "help", 'h', OPT_ACTION, O(help), 0, 0, NULL, "Show this help and exit." },
	{ "version", 'V', OPT_ACTION, O(version), 0, 0, NULL, "Show the version and exit." },
	{ NULL, 0, 0, 0, 0, 0, NULL, NULL },
};
#undef O

static void usage(FILE *out)
{
	fputs(
"NAME\n"
"    tapflow-query - answer questions from a tapflow flow store\n"
"\n"
"SYNOPSIS\n"
"    tapflow-query -R DIR [-t WINDOW] [-s ELEM[/ORDER]]... [-n N] [-o FORMAT] [FILTER]\n"
"    tapflow-query -R DIR -A FIELD,... [-O ORDER] [-c N] [FILTER]\n"
"    tapflow-query -R DIR -c N [-O ORDER] [FILTER]\n"
"    tapflow-query --remote URL [--token TOKEN] [options as above but -R] [FILTER]\n"
"    tapflow-query -h | --help | -V | --version\n"
"\n"
"DESCRIPTION\n"
"    Reads the flows tapflow-collector stored under DIR and answers like nfdump:\n"
"    totals of the flows that match FILTER and the time window; top N statistics\n"
"    (-s); flows aggregated on any key fields (-A); flow listings (-c); time series\n"
"    (--series). Options follow nfdump where nfdump has them. Without -s, -A or -c\n"
"    only the summary is printed.\n"
"\n"
"    The file still being written is read up to its last flushed block. Damaged\n"
"    files and blocks are skipped, reported on standard error and counted in the\n"
"    summary; the answer covers everything else.\n"
"\n"
"    Every output ends with (JSON: contains) the summary: flows, packets and bytes\n"
"    that matched; average bps, pps and bpp over their time span; first and last\n"
"    time; how many files, blocks and flows were scanned, skipped (zone maps) or\n"
"    damaged; how many passes the query took.\n"
"\n"
"FILTER\n"
"    nfdump's filter syntax, as trailing arguments (joined by spaces) or -f FILE:\n"
"      [src|dst] host|ip ADDR, [src|dst] net CIDR, [src|dst] port [=|<|>|<=|>=] N,\n"
"      proto tcp|udp|icmp|N, tos N, flags ..., in if N, out if N,\n"
"      packets|bytes|duration|bps|pps|bpp CMP N[k|M|G], and, or, not, ( ), any.\n"
"    A host name may stand for an address after host or ip (and in their lists):\n"
"    it is looked up (/etc/hosts, DNS) and matches any of its addresses, as in\n"
"    nfdump. With --remote it is looked up here and sent as its addresses (the\n"
"    collector's HTTP API takes no names). A bad filter is reported with the\n"
"    offending token marked. Options may come before or after the filter.\n"
"\n"
"TIME WINDOWS\n"
"    -t YYYY/MM/DD.hh:mm:ss[-YYYY/MM/DD.hh:mm:ss]   nfdump's form, local time (TZ);\n"
"         trailing parts may be left out (YYYY/MM/DD is midnight). A start alone\n"
"         runs to the end of time.\n"
"    -t 2026-01-31T12:00:00Z[-2026-01-31T13:00:00Z]  ISO 8601 (Z, +hh:mm, or local).\n"
"    -t -1h, -t -30m, -t -2d, -t -90s, -t -1w         the last N units, up to now;\n"
"    -t -2h--1h                                        from 2 hours to 1 hour ago.\n"
"    As nfdump, a flow is in the window when it lies wholly inside it: first seen\n"
"    at or after the start, last seen at or before the end (to the millisecond, so\n"
"    a flow ending later in the end's second is outside). --window overlap or first\n"
"    choose the other rules. Files and blocks outside the window are not read.\n"
"\n"
"STATISTICS (-s ELEM[/ORDER[/ORDER...]], -n N)\n"
"    ELEM: srcip dstip ip srcport dstport port proto tos inif outif if srcas dstas\n"
"    as vlan exporter (also: router) srcnet dstnet, and record. ORDER: flows\n"
"    (default) packets bytes bps pps bpp; several orders give several statistics.\n"
"    ip, port, if and as count each flow for both of its addresses, ports,\n"
"    interfaces (input and output) or ASes (source and destination), as nfdump.\n"
"    srcnet and dstnet use the flow's own mask (0: the whole address, shown /0);\n"
"    srcnet/24 masks IPv4 addresses to /24 and IPv6 ones to /64, srcnet/24/48 to\n"
"    /24 and /48 (a number after the element is a mask, never an order). record\n"
"    gives the top N flows aggregated on the -A fields, or on proto, srcip,\n"
"    srcport, dstip, dstport. -n N rows each (default 10, 0: all). Ties are\n"
"    broken by the key, so the answer never depends on threads or memory.\n"
"\n"
"AGGREGATION (-A FIELD,..., -O ORDER, -c N)\n"
"    FIELD: srcip dstip srcport dstport proto tos inif outif srcas dstas vlan\n"
"    exporter srcnet dstnet srcnet/N[/N6] dstnet/N[/N6], and nfdump's srcip4/N,\n"
"    srcip6/N, dstip4/N, dstip6/N (these mask one family and keep the other's\n"
"    addresses whole). Each group shows its fields, flows, packets, bytes, first\n"
"    and last seen, bps, pps, bpp. -O orders the groups (tstart and tend\n"
"    ascending, the rest descending); without it they come in a fixed hash\n"
"    order. -c N (or -n N) lists only the first N. With -s, -A only shapes\n"
"    -s record (as in nfdump).\n"
"\n"
"SERIES (--series SECS)\n"
"    Totals per SECS bucket (flows, packets, bytes; the table adds bps and pps),\n"
"    from the window's start to its end, or over the matched flows' time span;\n"
"    empty buckets are listed as zeros. A flow counts whole in the bucket of its\n"
"    first seen time (no spreading: totals add up exactly). With -s each top N\n"
"    row also gets its own series. Buckets are aligned to multiples of SECS since\n"
"    the Unix epoch. At most 1000000 buckets.\n"
"\n"
"OUTPUT (-o table|csv|json)\n"
"    table  columns aligned like nfdump's line format, 12.5 M style units (-N for\n"
"           whole numbers), times in local time.\n"
"    csv    a header line and rows per table, times ISO 8601 UTC, then the series\n"
"           and the summary, each after a blank line.\n"
"    json   one object:\n"
"             {\"kind\":\"stat\"|\"aggregate\"|\"flows\", \"fields\":[...], \"order\":...,\n"
"              \"limit\":N, \"rows\":[{<fields>, \"flows\", \"packets\", \"bytes\",\n"
"              \"first\", \"last\", \"first_ms\", \"last_ms\", \"bps\", \"pps\", \"bpp\"\n"
"              [, \"series\":[...]]}, ...], \"groups\":N,\n"
"              \"stats\":[{kind, fields, order, limit, rows, groups}, ...],\n"
"              \"series\":{\"secs\":S, \"points\":[{\"t\", \"t_ms\", \"flows\",\n"
"              \"packets\", \"bytes\"}, ...]},\n"
"              \"summary\":{\"flows\", \"packets\", \"bytes\", \"first\", \"last\",\n"
"              \"first_ms\", \"last_ms\", \"files\", \"blocks\", \"bad_blocks\",\n"
"              \"avg_bps\", \"avg_pps\", \"avg_bpp\", \"duration_ms\",\n"
"              \"files_skipped\", \"bad_files\", \"blocks_skipped\",\n"
"              \"flows_scanned\", \"tail_bytes\", \"passes\", \"partitions\",\n"
"              \"threads\", \"mem_bytes\", \"limited\"[, \"window\"]}}\n"
"           rows holds the first table (the first -s, or the -A groups, or the\n"
"           flows); stats holds any further -s statistics. Addresses are strings,\n"
"           every other field an integer; times are ISO 8601 UTC. groups counts\n"
"           the distinct keys seen. Without tables the object is just the summary.\n"
"\n"
"REMOTE QUERIES (--remote URL, --token TOKEN, --remote-timeout SECS)\n", out);
	fputs(httpcli_remote_help, out);
	fputs("\n"
"MEMORY AND SPEED\n"
"    The filter is compiled once; blocks whose zone maps cannot match are skipped\n"
"    unread; only the columns a query reads are decoded; all cores scan. Groups\n"
"    are counted in hash tables bounded by --max-memory: when the distinct keys do\n"
"    not fit, the query runs again in hash partitions (summary.passes), each pass\n"
"    exact. Listings of any length stream out: flows in store order, groups\n"
"    without -O. Ordered answers (-O, -s, -n N or 0) longer than a quarter of\n"
"    --max-memory holds are sorted in runs in a file under $TMPDIR (else /tmp),\n"
"    deleted as it is made, and merged as they go out (flows: read on one thread);\n"
"    refused where the runs would leave less than 256 MiB (or 5%) free there.\n"
"    Decoding takes about 10 MB per thread beyond --max-memory.\n"
"\n"
"OPTIONS\n", out);
	opt_print_help(qopts, &defaults, out);
	fputs(
"EXIT STATUS\n"
"    0 success (also when damaged data was skipped); 1 the store cannot be read,\n"
"    or the answer does not fit in --max-memory; 2 wrong usage: bad option, filter,\n"
"    element, order or time.\n"
"\n"
"EXAMPLES\n"
"    tapflow-query -R /var/lib/tapflow\n"
"    tapflow-query -R /var/lib/tapflow -t -1h -s srcip/bytes -n 20\n"
"    tapflow-query -R /var/lib/tapflow -s dstip/bytes 'proto tcp and dst port 443'\n"
"    tapflow-query -R /var/lib/tapflow -s ip/flows -s port/bytes 'not port 53'\n"
"    tapflow-query -R /var/lib/tapflow -A srcip,dstport -O bytes -c 50 'src net 10.0.0.0/8'\n"
"    tapflow-query -R /var/lib/tapflow -A srcnet/24 -O bytes -n 10\n"
"    tapflow-query -R /var/lib/tapflow -t 2026/01/31.08:00-2026/01/31.09:00 -c 20 -O bytes\n"
"    tapflow-query -R /var/lib/tapflow -t -1d --series 300 -s dstport/bytes -n 5 -o json\n"
"    tapflow-query -R /var/lib/tapflow -o json | jq .summary.bytes\n"
"\n"
"SEE ALSO\n"
"    tapflow-collector(8), nfdump(1)\n", out);
}

static void warn_cb(const char *path, int err, const char *what, void *arg)
{
	(void)arg;
	fprintf(stderr, "tapflow-query: warning: %s: %s (%s)\n", path, what, store_strerror(err));
}

static int usage_err(const char *fmt, const char *a)
{
	fprintf(stderr, "tapflow-query: ");
	fprintf(stderr, fmt, a);
	fprintf(stderr, "\nTry 'tapflow-query --help'.\n");
	return EXIT_USAGE;
}


/* The filter with a caret under the token at pos. */
static void filter_error(const char *filter, long pos, const char *msg)
{
	fprintf(stderr, "tapflow-query: bad filter: %s\n", msg);
	if (pos < 0 || (size_t)pos > strlen(filter))
		return;
	fprintf(stderr, "    %s\n    %*s^\n", filter, (int)pos, "");
}

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Builds rq from cfg. Returns 0, or EXIT_USAGE after a message. */
static int build_req(const struct qcfg *cfg, int n_given, struct query_req *rq, char *err,
		     size_t errlen)
{
	struct query_key aggr[QUERY_MAX_FIELDS];
	unsigned naggr = 0;
	int order = QO_NONE;

	if (cfg->aggregate && query_parse_aggr(cfg->aggregate, aggr, &naggr, err, errlen) < 0)
		return usage_err("%s", err);
	if (cfg->order && (order = query_parse_order(cfg->order)) < 0)
		return usage_err("-O '%s': unknown order (tstart tend flows packets bytes bps pps "
				 "bpp duration)", cfg->order);
	if (cfg->time && query_parse_time(cfg->time, now_ms(), &rq->win, err, errlen) < 0)
		return usage_err("%s", err);
	rq->has_window = cfg->time != NULL;
	if (!strcmp(cfg->window, "inside"))
		rq->win_mode = QUERY_WIN_INSIDE;
	else if (!strcmp(cfg->window, "overlap"))
		rq->win_mode = QUERY_WIN_OVERLAP;
	else if (!strcmp(cfg->window, "first"))
		rq->win_mode = QUERY_WIN_FIRST;
	else
		return usage_err("--window '%s': inside, overlap or first", cfg->window);
	if (cfg->stat.n) {
		int record = 0;
		if (cfg->count)
			return usage_err("%s", "-c N limits listed flows or -A groups; for -s use -n N");
		for (int i = 0; i < cfg->stat.n; i++) {
			if (query_parse_stat(cfg->stat.v[i], aggr, naggr, cfg->top, rq, err,
					     errlen) < 0)
				return usage_err("%s", err);
			record |= !strncmp(cfg->stat.v[i], "record", 6);
		}
		if (naggr && !record)
			fprintf(stderr, "tapflow-query: warning: -A only applies to -s record\n");
		if (cfg->order)
			fprintf(stderr, "tapflow-query: warning: -O does not apply to -s (use "
				"-s ELEM/ORDER)\n");
		for (unsigned i = 0; i < rq->ntables && cfg->series; i++)
			rq->table[i].series = rq->table[i].limit != 0;
	} else if (naggr) {
		struct query_table_req *t = &rq->table[rq->ntables++];
		t->kind = QK_AGGR;
		t->order = (uint8_t)order;
		memcpy(t->key, aggr, naggr * sizeof(*aggr));
		t->nkey = (uint8_t)naggr;
		t->limit = cfg->count ? cfg->count : n_given ? cfg->top : 0;
	} else if (cfg->count) {
		struct query_table_req *t = &rq->table[rq->ntables++];
		t->kind = QK_FLOWS;
		t->order = (uint8_t)order;
		t->limit = cfg->count;
	} else if (cfg->order) {
		return usage_err("%s", "-O orders listed flows or groups: give -c N or -A");
	}
	rq->series_s = cfg->series;
	rq->max_flows = cfg->max_flows;
	rq->max_memory = cfg->max_memory;
	rq->spill_dir = query_tmpdir();
	rq->threads = cfg->threads;
	return 0;
}

int main(int argc, char **argv)
{
	static char *args[MAX_ARGS + 2];
	struct qcfg cfg = defaults;
	struct opt_store st = { 0 };
	struct query_req rq;
	struct query_result res;
	struct qout *out = NULL;
	char err[512], *filter = NULL;
	int idx, n_given = 0, fmt, rc, status = EXIT_USAGE;

	/* --remote URL: the same options, answered by a collector's HTTP API (httpcli.h) */
	int remote = httpcli_query_main(argc, argv);
	if (remote >= 0)
		return remote;
	sys_raise_nofile();
	if (argc > MAX_ARGS)
		return usage_err("%s", "too many arguments");
	argc = query_args_reorder(qopts, argc, argv, args, &n_given);
	idx = opt_parse(qopts, &cfg, argc, args, &st, err, sizeof(err));
	if (idx < 0) {
		usage_err("%s", err);
		goto out;
	}
	if (cfg.top != defaults.top)
		n_given = 1; /* from a config file */
	if (cfg.help) {
		usage(stdout);
		status = 0;
		goto out;
	}
	if (cfg.version) {
		printf("tapflow-query %s\n", TF_VERSION);
		status = 0;
		goto out;
	}
	if ((fmt = qout_parse_fmt(cfg.output)) < 0) {
		usage_err("-o '%s': table, csv or json", cfg.output);
		goto out;
	}
	if (!cfg.read) {
		usage_err("%s", "-R DIR is required");
		goto out;
	}
	if (query_filter_cli(args + idx, argc - idx, cfg.filter_file, &filter) < 0)
		goto out;
	query_req_init(&rq, cfg.read);
	rq.filter = filter;
	rq.resolve = filt_resolve_system;  /* host names, as nfdump looks them up */
	rq.warn = warn_cb;
	if (build_req(&cfg, n_given, &rq, err, sizeof(err)))
		goto out;
	out = qout_new(stdout, (enum qout_fmt)fmt, cfg.plain);
	if (!out) {
		status = EXIT_FAILURE;
		goto out;
	}
	/* rows stream out as they are ready; rows with their own series are few (top N)
	 * and are written after the tables, so those are kept in the result */
	int row_series = 0;
	for (unsigned i = 0; i < rq.ntables; i++)
		row_series |= rq.table[i].series;
	if (!row_series || fmt == QOUT_JSON)
		rq.sink = qout_sink(out);
	rc = query_run(&rq, &res);
	if (rc == -EINVAL && res.err_pos >= 0) {
		filter_error(filter, res.err_pos, res.err);
	} else if (rc == -EINVAL) {
		usage_err("%s", res.err);
	} else if (rc < 0) {
		fflush(stdout);
		fprintf(stderr, "tapflow-query: %s\n", res.err[0] ? res.err : strerror(-rc));
		status = EXIT_FAILURE;
	} else {
		status = qout_finish(out, &rq, &res) == 0 ? 0 : EXIT_FAILURE;
	}
	query_result_free(&res);
out:
	qout_free(out);
	free(filter);
	opt_store_free(&st);
	return status;
}
