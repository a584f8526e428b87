/* collector_main.c: tapflow-collector. A receiver thread takes datagrams off the socket
 * into a bounded queue; this thread decodes them, writes the store, flushes it every few
 * seconds, rotates, enforces retention and reports. Receiving never waits on disk. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "addr.h"
#include "httpapi.h"
#include "log.h"
#include "nfdec.h"
#include "opts.h"
#include "rxq.h"
#include "store.h"
#include "sys.h"
#include "udprx.h"

struct coll_cfg {
	const char *config;
	const char *dir;
	uint32_t port;
	const char *bind;
	uint32_t rotate;
	uint32_t flush;
	const char *compress;
	uint32_t block_records;
	uint32_t max_age;
	uint64_t max_size;
	struct opt_list allow;
	int apply_sampling;
	uint64_t rcvbuf;
	uint64_t queue_size;
	uint32_t receivers;
	uint32_t max_templates;
	uint32_t max_exporters;
	uint64_t pending_size;
	uint32_t pending_age;
	uint32_t stats_interval;
	const char *user;
	const char *http;
	const char *http_token;
	uint32_t http_query_timeout_ms;
	uint64_t http_query_memory;
	uint32_t http_max_rows;
	uint64_t http_max_body;
	uint32_t http_max_queries;
	uint32_t http_query_threads;
	int help;
	int version;
};

static const struct coll_cfg defaults = {
	.port = 9995,
	.rotate = 300,
	.flush = 5,
	.compress = "lz4",
	.block_records = STORE_DEFAULT_BLOCK_RECS,
	.apply_sampling = 1,
	.rcvbuf = 64ull << 20,
	.queue_size = 64ull << 20,
	.receivers = 0,
	.max_templates = 4096,
	.max_exporters = 256,
	.pending_size = 4ull << 20,
	.pending_age = 60,
	.stats_interval = 60,
	.user = "",
	.http = "",
	.http_token = "",
	.http_query_timeout_ms = 30000,
	.http_query_memory = QUERY_DEFAULT_MEMORY,
	.http_max_rows = 100000,
	.http_max_body = 16ull << 20,
	.http_max_queries = 2,
};

#define O(f) offsetof(struct coll_cfg, f)
static const struct opt_def coll_opts[] = {
	{ "dir", 'l', OPT_STR, O(dir), 0, 0, "DIR",
	  "Store flows under DIR (created if missing), in DIR/YYYY/MM/DD/tf-YYYYMMDDhhmm.tfs\n"
	  "files, one per rotation interval." },
	{ "port", 'p', OPT_UINT, O(port), 1, 65535, "PORT",
	  "UDP port to receive NetFlow v5/v9 and IPFIX on." },
	{ "bind", 'b', OPT_STR, O(bind), 0, 0, "ADDR",
	  "Local address to bind. Default: every address, IPv6 and IPv4 on one socket." },
	{ "config", 'c', OPT_STR, O(config), 0, 0, "FILE",
	  "Read settings from a libconfig file (see deploy/tapflow-collector.conf); flags\n"
	  "given on the command line override it. SIGHUP re-reads its allow list and\n"
	  "retention limits." },
	{ "rotate", 't', OPT_SECS, O(rotate), 60, 86400, "SECS",
	  "Start a new file every SECS (a multiple of 60), as nfcapd -t." },
	{ "flush", 0, OPT_SECS, O(flush), 1, 3600, "SECS",
	  "Write what has arrived as a complete, checksummed block and sync it this often:\n"
	  "a crash loses at most this much, and queries see flows within this time, also in\n"
	  "the file still open." },
	{ "compress", 'z', OPT_STR, O(compress), 0, 0, "lz4|zstd|none",
	  "Block compression." },
	{ "block-records", 0, OPT_UINT, O(block_records), 1024, STORE_MAX_BLOCK_RECS, "N",
	  "Records per block (memory: about 200 bytes a record while a block fills)." },
	{ "max-age", 0, OPT_SECS, O(max_age), 0, 0xffffffffu, "AGE",
	  "Delete files older than AGE (e.g. 30d), as nfexpire does; 0 keeps them." },
	{ "max-size", 0, OPT_SIZE, O(max_size), 0, 0, "SIZE",
	  "Delete the oldest files while the store is larger than SIZE (e.g. 20G); 0: no\n"
	  "limit." },
	{ "allow", 'a', OPT_LIST, O(allow), 0, 0, "PREFIX",
	  "Accept only exporters in PREFIX (192.0.2.0/24, 2001:db8::/32, or one address);\n"
	  "repeat for several. Others are counted (denied) and ignored. Default: all." },
	{ "apply-sampling", 0, OPT_BOOL, O(apply_sampling), 0, 0, NULL,
	  "Multiply packets and bytes by the sampling interval an exporter announces. The\n"
	  "interval is stored with each flow either way." },
	{ "rcvbuf", 0, OPT_SIZE, O(rcvbuf), 0, 0, "SIZE",
	  "Socket receive buffer (forced past net.core.rmem_max when privileged)." },
	{ "queue-size", 0, OPT_SIZE, O(queue_size), 0, 0, "SIZE",
	  "Memory between receiver and decoder, all of it taken at start (a page first\n"
	  "touched while a burst arrives costs time the receiver does not have); when full,\n"
	  "datagrams are counted and dropped. Shared out among the receivers." },
	{ "receivers", 0, OPT_UINT, O(receivers), 0, UDPRX_MAX_RECEIVERS, "N",
	  "Receiving threads, each with its own socket on the port (SO_REUSEPORT: the kernel\n"
	  "keeps each exporter on one of them, so its datagrams stay in order). One thread\n"
	  "receives about 1M datagrams/s; more help only where the cores are there for the\n"
	  "decoder too. 0: one per 4 CPUs." },
	{ "max-templates", 0, OPT_UINT, O(max_templates), 1, 1000000, "N",
	  "Template cache entries over all exporters (least recently used evicted)." },
	{ "max-exporters", 0, OPT_UINT, O(max_exporters), 1, 100000, "N",
	  "Distinct exporter addresses tracked." },
	{ "pending-size", 0, OPT_SIZE, O(pending_size), 0, 0, "SIZE",
	  "Data that arrived before its template is held up to this much ..." },
	{ "pending-age", 0, OPT_SECS, O(pending_age), 1, 3600, "SECS",
	  "... and this long, then counted as dropped." },
	{ "stats-interval", 0, OPT_SECS, O(stats_interval), 0, 86400, "SECS",
	  "Log a line on loss (sequence gaps, socket and queue drops) at most this often,\n"
	  "and print full statistics on SIGUSR1 and at exit." },
	{ "user", 'u', OPT_STR, O(user), 0, 0, "USER",
	  "After binding, drop root privileges to USER (who must be able to write DIR)." },
	{ "http", 0, OPT_STR, O(http), 0, 0, "[ADDR:]PORT",
	  "Serve the HTTP API (queries as tapflow-query answers them, status, exporters,\n"
	  "Prometheus /metrics) on PORT of 127.0.0.1, or of ADDR (IPv6 as [::1]:PORT).\n"
	  "An address beyond loopback needs http_token. \"\": no HTTP API." },
	{ "http-token", 0, OPT_STR, O(http_token), 0, 0, "TOKEN",
	  "Every request must carry 'Authorization: Bearer TOKEN' (16 to 256 characters of\n"
	  "A-Z a-z 0-9 -._~+/=). Put it in the config file: command lines are visible." },
	{ "http-query-timeout-ms", 0, OPT_UINT, O(http_query_timeout_ms), 1, 3600000, "MS",
	  "A query running longer is stopped and answered 504." },
	{ "http-query-memory", 0, OPT_SIZE, O(http_query_memory), 0, 0, "SIZE",
	  "Memory for one query's tables and rows (tapflow-query --max-memory), and the\n"
	  "most a request may ask for." },
	{ "http-max-rows", 0, OPT_UINT, O(http_max_rows), 1, 1000000000, "N",
	  "Rows (and series points) in one answer; more is answered 413." },
	{ "http-max-body", 0, OPT_SIZE, O(http_max_body), 0, 0, "SIZE",
	  "Bytes in one answer; more is answered 413." },
	{ "http-max-queries", 0, OPT_UINT, O(http_max_queries), 1, 64, "N",
	  "Queries running at once; more are answered 503 (Retry-After)." },
	{ "http-query-threads", 0, OPT_UINT, O(http_query_threads), 0, 64, "N",
	  "Threads one query scans with (0: one per CPU). Queries run at a lower CPU\n"
	  "priority than receiving and storing." },
	{ "help", 'h', OPT_ACTION, O(help), 0, 0, NULL, "Show this help and exit." },
	{ "version", 'V', OPT_ACTION, O(version), 0, 0, NULL, "Show the version and exit." },
	{ NULL, 0, 0, 0, 0, 0, NULL, NULL },
};
#undef O

static volatile sig_atomic_t stop_flag, stats_flag, hup_flag;
static struct coll_cfg cfg;
static struct opt_store cfg_strings;

static void on_signal(int sig)
{
	if (sig == SIGUSR1)
		stats_flag = 1;
	else if (sig == SIGHUP)
		hup_flag = 1;
	else
		stop_flag = 1;
}

static void usage(FILE *out)
{
	fprintf(out,
"NAME\n"
"    tapflow-collector - receive NetFlow v5/v9 and IPFIX, store flows on local disk\n"
"\n"
"SYNOPSIS\n"
"    tapflow-collector -l DIR [-p PORT] [options]\n"
"    tapflow-collector -c FILE [options]\n"
"\n"
"DESCRIPTION\n"
"    tapflow-collector receives flow exports over UDP from tapflow-probe and from any\n"
"    router, switch or firewall (NetFlow v5, v9 per RFC 3954, IPFIX per RFC 7011),\n"
"    decodes them (templates cached per exporter, source ID and template ID; data\n"
"    that arrives before its template held briefly and decoded when it comes) and\n"
"    stores every flow in column-compressed, checksummed blocks under DIR. Received\n"
"    flows are durable and visible to tapflow-query within --flush seconds; a crash\n"
"    never damages a closed file, and the file that was open is recovered up to its\n"
"    last complete block on restart.\n"
"\n"
"    Nothing is lost silently: sequence gaps per exporter and source ID, datagrams\n"
"    that failed to decode (by reason), data without template, socket drops\n"
"    (SO_MEMINFO), queue drops and denied exporters are counted, logged and printed.\n"
"\n"
"OPTIONS\n");
	opt_print_help(coll_opts, &defaults, out);
	fprintf(out,
"SIGNALS\n"
"    SIGINT, SIGTERM  store everything received, close the file, exit 0.\n"
"    SIGHUP           re-read the config file's allow list and retention limits.\n"
"    SIGUSR1          print statistics to stderr.\n"
"\n"
"EXIT STATUS\n"
"    0 success; 1 runtime error (socket, store); 2 usage error.\n"
"\n"
"EXAMPLES\n"
"    tapflow-collector -l /var/lib/tapflow -p 9995\n"
"    tapflow-collector -l /srv/flows -t 1m --max-age 30d --max-size 50G -a 192.0.2.0/24\n"
"    tapflow-collector -l /var/lib/tapflow --http 9996\n"
"    tapflow-query -R /var/lib/tapflow -o json\n"
"    tapflow-query --remote http://127.0.0.1:9996 -s srcip/bytes -o json\n");
}

struct coll {
	struct udprx rx[UDPRX_MAX_RECEIVERS];
	struct rxq q[UDPRX_MAX_RECEIVERS];
	int nrx;
	struct udprx rxsum;             /* the receivers' counters added up (rx_total) */
	struct nfdec *dec;
	struct store_writer *w;
	struct httpapi *api;            /* NULL without --http */
	int rx_stop; /* set by the main thread, read by the receiver: atomics */
	int rx_rc[UDPRX_MAX_RECEIVERS];
	int write_err;          /* the last store write's error, for the log */
	/* loss already reported, to log only what is new */
	uint64_t seen_lost, seen_kdrops, seen_qfull, seen_errors, seen_notpl_dropped;
	uint64_t seen_store_dropped;
};

static void on_record(const struct flow_rec *rec, void *arg)
{
	struct coll *c = arg;
	int e = store_writer_add(c->w, rec);
	if (e < 0)  /* the block it completed is lost, counted in the writer's dropped */
		c->write_err = e;
}

struct rx_arg {
	struct coll *c;
	int i;
};

static void *rx_thread(void *arg)
{
	struct rx_arg *a = arg;
	struct coll *c = a->c;
	c->rx_rc[a->i] = udprx_run(&c->rx[a->i], &c->q[a->i], &c->rx_stop);
	rxq_close(&c->q[a->i]);
	return NULL;
}

/* The receivers' counters added up into c->rxsum, which it returns. */
static struct udprx *rx_total(struct coll *c)
{
	struct udprx *t = &c->rxsum;
	t->datagrams = t->bytes = t->denied = t->queue_full = t->kernel_drops = 0;
	for (int i = 0; i < c->nrx; i++) {
		struct udprx *r = &c->rx[i];
		pthread_mutex_lock(&r->mu); /* the receiver counts under it */
		t->datagrams += r->datagrams;
		t->bytes += r->bytes;
		t->denied += r->denied;
		t->queue_full += r->queue_full;
		t->kernel_drops += udprx_kernel_drops(r);
		t->rcvbuf = r->rcvbuf;
		pthread_mutex_unlock(&r->mu);
	}
	return t;
}

static int load_allow(struct coll *c, const struct opt_list *l)
{
	struct udprx_prefix p[UDPRX_MAX_ALLOW];
	if (l->n > UDPRX_MAX_ALLOW) {
		log_err("at most %d allow prefixes", UDPRX_MAX_ALLOW);
		return -1;
	}
	for (int i = 0; i < l->n; i++) {
		if (udprx_parse_prefix(l->v[i], &p[i]) < 0) {
			log_err("allow: '%s' is not an address or prefix (192.0.2.0/24, "
				"2001:db8::/32)", l->v[i]);
			return -1;
		}
	}
	for (int i = 0; i < c->nrx; i++)
		udprx_set_allow(&c->rx[i], p, l->n);
	return 0;
}

static uint64_t sum_errors(const struct nfdec_stats *s)
{
	uint64_t e = 0;
	for (int i = 1; i < NFDEC_E__COUNT; i++)
		e += s->errors[i];
	return e;
}

static void print_stats(struct coll *c, FILE *out)
{
	struct nfdec_stats ds;
	nfdec_stats(c->dec, &ds);
	const struct store_writer_stats *ws = store_writer_stats(c->w);
	const struct udprx *rt = rx_total(c);
	fprintf(out, "tapflow-collector statistics:\n");
	fprintf(out, "  datagrams: %llu\n", (unsigned long long)rt->datagrams);
	if (c->nrx > 1)
		for (int i = 0; i < c->nrx; i++)
			fprintf(out, "  receiver_%d_datagrams: %llu\n", i,
				(unsigned long long)c->rx[i].datagrams);
	fprintf(out, "  socket_drops: %llu\n", (unsigned long long)rt->kernel_drops);
	fprintf(out, "  queue_drops: %llu\n", (unsigned long long)rt->queue_full);
	fprintf(out, "  denied: %llu\n", (unsigned long long)rt->denied);
	fprintf(out, "  records: %llu\n", (unsigned long long)ds.records);
	fprintf(out, "  options_records: %llu\n", (unsigned long long)ds.options_records);
	fprintf(out, "  decode_errors: %llu\n", (unsigned long long)sum_errors(&ds));
	for (int i = 1; i < NFDEC_E__COUNT; i++)
		if (ds.errors[i])
			fprintf(out, "  decode_error_%s: %llu\n", nfdec_err_name(i),
				(unsigned long long)ds.errors[i]);
	fprintf(out, "  exporters: %llu\n", (unsigned long long)ds.exporters);
	fprintf(out, "  templates: %llu\n", (unsigned long long)ds.templates);
	fprintf(out, "  template_evictions: %llu\n", (unsigned long long)ds.template_evictions);
	fprintf(out, "  notemplate_sets: %llu\n", (unsigned long long)ds.notpl_sets);
	fprintf(out, "  notemplate_decoded_sets: %llu\n",
		(unsigned long long)ds.notpl_decoded_sets);
	fprintf(out, "  notemplate_dropped_sets: %llu\n",
		(unsigned long long)ds.notpl_dropped_sets);
	fprintf(out, "  pending_sets: %llu\n", (unsigned long long)ds.pending_sets);
	fprintf(out, "  stored_records: %llu\n", (unsigned long long)ws->records);
	fprintf(out, "  store_blocks: %llu\n", (unsigned long long)ws->blocks);
	fprintf(out, "  store_bytes: %llu\n", (unsigned long long)ws->file_bytes);
	fprintf(out, "  store_files: %llu\n", (unsigned long long)ws->files_opened);
	fprintf(out, "  store_recovered_files: %llu\n", (unsigned long long)ws->recovered_files);
	fprintf(out, "  store_dropped: %llu\n", (unsigned long long)ws->dropped);
	size_t ne = nfdec_exporter_count(c->dec);
	for (size_t i = 0; i < ne; i++) {
		const struct nfdec_exporter_stats *e = nfdec_exporter(c->dec, i);
		char a[64];
		addr_str(e->addr, a, sizeof(a));
		uint64_t errs = 0;
		for (int k = 1; k < NFDEC_E__COUNT; k++)
			errs += e->errors[k];
		fprintf(out, "  exporter %s: datagrams %llu records %llu (v5 %llu v9 %llu ipfix "
			"%llu) templates %llu decode_errors %llu notemplate_dropped %llu\n", a,
			(unsigned long long)e->datagrams, (unsigned long long)e->records,
			(unsigned long long)e->records_v5, (unsigned long long)e->records_v9,
			(unsigned long long)e->records_ipfix, (unsigned long long)e->templates,
			(unsigned long long)errs, (unsigned long long)e->notpl_dropped_sets);
		size_t nd = nfdec_domain_count(c->dec, i);
		for (size_t j = 0; j < nd; j++) {
			const struct nfdec_domain_stats *d = nfdec_domain(c->dec, i, j);
			fprintf(out, "    v%u domain %u: datagrams %llu records %llu seq_gaps %llu "
				"lost %llu sampling %u\n", d->version, d->domain_id,
				(unsigned long long)d->datagrams, (unsigned long long)d->records,
				(unsigned long long)d->seq_gaps, (unsigned long long)d->seq_lost,
				d->sampling);
		}
	}
	fflush(out);
}

/* Records the store could not write (a full disk): said at once, at most once a
 * second, with the last error. */
static void report_store_loss(struct coll *c)
{
	const struct store_writer_stats *ws = store_writer_stats(c->w);
	if (ws->dropped > c->seen_store_dropped)
		log_err("store: %llu more records lost: writing them failed (%s)",
			(unsigned long long)(ws->dropped - c->seen_store_dropped),
			store_strerror(c->write_err));
	c->seen_store_dropped = ws->dropped;
}

/* Logs loss that appeared since the last call: never silent, never a flood. */
static void report_loss(struct coll *c)
{
	uint64_t lost = 0;
	size_t ne = nfdec_exporter_count(c->dec);
	for (size_t i = 0; i < ne; i++) {
		size_t nd = nfdec_domain_count(c->dec, i);
		for (size_t j = 0; j < nd; j++)
			lost += nfdec_domain(c->dec, i, j)->seq_lost;
	}
	struct nfdec_stats ds;
	nfdec_stats(c->dec, &ds);
	uint64_t errs = sum_errors(&ds);
	const struct udprx *rt = rx_total(c);
	if (lost > c->seen_lost)
		log_warn("exporters' sequence numbers show %llu more records/packets lost "
			 "upstream (total %llu)", (unsigned long long)(lost - c->seen_lost),
			 (unsigned long long)lost);
	if (rt->kernel_drops > c->seen_kdrops)
		log_warn("socket buffer overflowed: %llu more datagrams dropped by the kernel "
			 "(raise --rcvbuf)", (unsigned long long)(rt->kernel_drops - c->seen_kdrops));
	if (rt->queue_full > c->seen_qfull)
		log_warn("decoder fell behind: %llu more datagrams dropped at the queue "
			 "(raise --queue-size)", (unsigned long long)(rt->queue_full - c->seen_qfull));
	if (errs > c->seen_errors)
		log_warn("%llu more decode errors (SIGUSR1 prints them by reason)",
			 (unsigned long long)(errs - c->seen_errors));
	if (ds.notpl_dropped_sets > c->seen_notpl_dropped)
		log_warn("%llu more data sets dropped waiting for a template",
			 (unsigned long long)(ds.notpl_dropped_sets - c->seen_notpl_dropped));
	c->seen_lost = lost;
	c->seen_kdrops = rt->kernel_drops;
	c->seen_qfull = rt->queue_full;
	c->seen_errors = errs;
	c->seen_notpl_dropped = ds.notpl_dropped_sets;
}

static void reload(struct coll *c)
{
	struct coll_cfg n = defaults;
	struct opt_store st = { NULL, 0, 0 };
	char err[512];
	if (!cfg.config) {
		log_info("SIGHUP: no config file to re-read");
		return;
	}
	if (opt_load_file(coll_opts, &n, cfg.config, &st, err, sizeof(err)) < 0) {
		log_err("SIGHUP: %s; keeping the running settings", err);
		opt_store_free(&st);
		return;
	}
	if (load_allow(c, &n.allow) == 0) {
		cfg.max_age = n.max_age;
		cfg.max_size = n.max_size;
		log_info("SIGHUP: reloaded %s: %d allow prefixes, max-age %u s, max-size %llu",
			 cfg.config, n.allow.n, cfg.max_age, (unsigned long long)cfg.max_size);
	}
	opt_store_free(&st);
}

static void retention(void)
{
	struct store_retention_result r;
	if (!cfg.max_age && !cfg.max_size)
		return;
	int e = store_retention(cfg.dir, cfg.max_age, cfg.max_size, sys_wall_ms(), &r);
	if (e < 0)
		log_warn("retention: %s", store_strerror(e));
	else if (r.files)
		log_info("retention: deleted %llu files (%llu bytes); %llu files, %llu bytes "
			 "kept", (unsigned long long)r.files, (unsigned long long)r.bytes,
			 (unsigned long long)r.kept_files, (unsigned long long)r.kept_bytes);
}

int main(int argc, char **argv)
{
	char err[512];
	struct coll c;
	pthread_t tid[UDPRX_MAX_RECEIVERS];
	struct rx_arg rxa[UDPRX_MAX_RECEIVERS];
	int nstarted = 0;
	int rc = 1;

	memset(&c, 0, sizeof(c));
	for (int i = 0; i < UDPRX_MAX_RECEIVERS; i++)
		c.rx[i].fd = -1;
	pthread_mutex_init(&c.rxsum.mu, NULL);
	log_init("tapflow-collector", LOG_INFO_);
	cfg = defaults;
	int first = opt_parse(coll_opts, &cfg, argc, argv, &cfg_strings, err, sizeof(err));
	if (first < 0) {
		fprintf(stderr, "tapflow-collector: %s\nTry 'tapflow-collector --help'.\n", err);
		return 2;
	}
	if (cfg.help) {
		usage(stdout);
		return 0;
	}
	if (cfg.version) {
		printf("tapflow-collector %s\n", TF_VERSION);
		return 0;
	}
	if (first < argc) {
		fprintf(stderr, "tapflow-collector: unexpected argument '%s'\n", argv[first]);
		return 2;
	}
	if (!cfg.dir) {
		fprintf(stderr, "tapflow-collector: no store directory: give -l DIR\n"
			"Try 'tapflow-collector --help'.\n");
		return 2;
	}
	if (cfg.rotate % 60) {
		fprintf(stderr, "tapflow-collector: --rotate must be a multiple of 60 seconds\n");
		return 2;
	}
	struct store_cfg sc;
	store_cfg_default(&sc, cfg.dir);
	sc.interval_s = cfg.rotate;
	sc.block_recs = cfg.block_records;
	if (!strcmp(cfg.compress, "lz4"))
		sc.codec = STORE_CODEC_LZ4;
	else if (!strcmp(cfg.compress, "zstd"))
		sc.codec = STORE_CODEC_ZSTD;
	else if (!strcmp(cfg.compress, "none"))
		sc.codec = STORE_CODEC_NONE;
	else {
		fprintf(stderr, "tapflow-collector: --compress must be lz4, zstd or none\n");
		return 2;
	}

	struct httpapi_cfg hc;
	char udp_listen[80];
	memset(&hc, 0, sizeof(hc));
	if (*cfg.http) {
		struct sockaddr_storage hs;
		socklen_t hl;
		int lo;
		if (httpapi_parse_listen(cfg.http, &hs, &hl, &lo, err, sizeof(err)) < 0) {
			fprintf(stderr, "tapflow-collector: %s\n", err);
			return 2;
		}
		if (!lo && !*cfg.http_token) {
			fprintf(stderr, "tapflow-collector: --http %s is reachable beyond this host: "
				"set http_token in the config file, or listen on 127.0.0.1\n",
				cfg.http);
			return 2;
		}
		snprintf(udp_listen, sizeof(udp_listen), "%s%s%s:%u",
			 cfg.bind && *cfg.bind && strchr(cfg.bind, ':') ? "[" : "",
			 cfg.bind && *cfg.bind ? cfg.bind : "[::]",
			 cfg.bind && *cfg.bind && strchr(cfg.bind, ':') ? "]" : "", cfg.port);
		hc.listen = cfg.http;
		hc.token = cfg.http_token;
		hc.store_dir = cfg.dir;
		hc.udp_listen = udp_listen;
		hc.lim.timeout_ms = cfg.http_query_timeout_ms;
		hc.lim.max_memory = cfg.http_query_memory;
		hc.lim.max_rows = cfg.http_max_rows;
		hc.lim.max_body = cfg.http_max_body;
		hc.lim.max_queries = cfg.http_max_queries;
		hc.lim.threads = cfg.http_query_threads;
	}

	struct nfdec_cfg dc;
	nfdec_cfg_default(&dc);
	dc.max_templates = cfg.max_templates;
	dc.max_exporters = cfg.max_exporters;
	dc.pending_max_bytes = cfg.pending_size;
	dc.pending_max_ms = cfg.pending_age * 1000u;
	dc.apply_sampling = cfg.apply_sampling;
	c.dec = nfdec_new(&dc);
	c.nrx = cfg.receivers;
	if (!c.nrx) {
		long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
		c.nrx = ncpu >= 8 ? (int)(ncpu / 4) : 1;
		if (c.nrx > UDPRX_MAX_RECEIVERS)
			c.nrx = UDPRX_MAX_RECEIVERS;
	}
	if (!c.dec) {
		log_err("out of memory");
		goto out;
	}
	for (int i = 0; i < c.nrx; i++) {
		if (rxq_init(&c.q[i], cfg.queue_size / (uint64_t)c.nrx) < 0) {
			log_err("out of memory");
			goto out;
		}
		if (udprx_open(&c.rx[i], cfg.bind, (uint16_t)cfg.port,
			       cfg.rcvbuf > 0x7fffffff ? 0x7fffffff : (uint32_t)cfg.rcvbuf,
			       c.nrx > 1, err, sizeof(err)) < 0) {
			log_err("%s", err);
			goto out;
		}
	}
	rxq_group(c.q, c.nrx);
	if (load_allow(&c, &cfg.allow) < 0)
		goto out;
	if (*cfg.http) { /* before dropping root: the port may be privileged */
		c.api = httpapi_start(&hc, err, sizeof(err));
		if (!c.api) {
			log_err("%s", err);
			goto out;
		}
		log_info("HTTP API serving on http://%s%s", httpapi_address(c.api),
			 *cfg.http_token ? " (bearer token required)" : "");
	}
	sys_raise_nofile();  /* HTTP queries hold the store files they read */
	if (sys_drop_privileges(cfg.user, 0) < 0)
		goto out;
	c.w = store_writer_open(&sc, sys_wall_ms());
	if (!c.w) {
		log_err("store %s: %s", cfg.dir, errno == EBUSY ?
			"another collector is writing this store" : store_strerror(-errno));
		goto out;
	}
	const struct store_writer_stats *ws = store_writer_stats(c.w);
	if (ws->recovered_files)
		log_warn("recovered %llu file(s) left open by a crash (%llu torn bytes cut)",
			 (unsigned long long)ws->recovered_files,
			 (unsigned long long)ws->truncated_bytes);

	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	sigaction(SIGUSR1, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	for (; nstarted < c.nrx; nstarted++) {
		rxa[nstarted].c = &c;
		rxa[nstarted].i = nstarted;
		if (pthread_create(&tid[nstarted], NULL, rx_thread, &rxa[nstarted]) != 0) {
			log_err("cannot start a receiver thread");
			stop_flag = 1;
			break;
		}
	}
	for (int i = nstarted; i < c.nrx; i++)
		rxq_close(&c.q[i]);     /* never started: nothing will come */
	log_info("listening on %s port %u (%d receiver%s, receive buffer %u bytes), storing "
		 "into %s every %u s, files of %u s", cfg.bind && *cfg.bind ? cfg.bind : "[::]",
		 cfg.port, c.nrx, c.nrx > 1 ? "s" : "", c.rx[0].rcvbuf, cfg.dir, cfg.flush,
		 cfg.rotate);

	uint64_t now = sys_wall_ms();
	uint64_t next_flush = now + cfg.flush * 1000ull;
	uint64_t next_tick = now + 1000;
	uint64_t next_report = now + cfg.stats_interval * 1000ull;
	uint64_t next_retention = now;
	int which = 0;
	for (;;) {
		struct rxq_item it;
		int r = rxq_pop_any(c.q, c.nrx, &it, &which, 200);
		if (r < 0)
			break; /* receivers stopped and everything queued is decoded */
		if (r > 0) {
			nfdec_datagram(c.dec, it.addr, it.data, it.len, it.ts_ms, on_record, &c);
			rxq_pop_done(&c.q[which], &it);
		}
		now = sys_wall_ms();
		if (stop_flag)
			__atomic_store_n(&c.rx_stop, 1, __ATOMIC_RELEASE);
		if (now >= next_flush) { /* the durability promise: keep it to the ms */
			int e = store_writer_flush(c.w);
			if (e < 0) {
				log_err("store: flush failed: %s", store_strerror(e));
				c.write_err = e;
			}
			next_flush = now + cfg.flush * 1000ull;
		}
		/* the API's statistics: once a second, or now if a request waits for them */
		if (c.api && (now >= next_tick || httpapi_wants_snapshot(c.api)))
			httpapi_publish(c.api, rx_total(&c), c.dec, store_writer_stats(c.w), now);
		if (now < next_tick && !stats_flag && !hup_flag)
			continue;
		next_tick = now + 1000;
		report_store_loss(&c);
		nfdec_tick(c.dec, now);
		store_writer_rotate(c.w, now);
		if (now >= next_retention) {
			retention();
			next_retention = now + 60000;
		}
		if (cfg.stats_interval && now >= next_report) {
			report_loss(&c);
			next_report = now + cfg.stats_interval * 1000ull;
		}
		if (hup_flag) {
			hup_flag = 0;
			reload(&c);
		}
		if (stats_flag) {
			stats_flag = 0;
			print_stats(&c, stderr);
		}
	}
	for (int i = 0; i < nstarted; i++)
		pthread_join(tid[i], NULL);
	httpapi_stop(c.api); /* waits for running queries (each within its time limit) */
	c.api = NULL;
	int rx_failed = 0;
	for (int i = 0; i < c.nrx; i++) {
		if (c.rx_rc[i] < 0) {
			log_err("receive: %s", strerror(-c.rx_rc[i]));
			rx_failed = 1;
		}
	}
	report_loss(&c);
	int fe = store_writer_flush(c.w);
	if (fe < 0) {
		log_err("store: flush failed: %s", store_strerror(fe));
		c.write_err = fe;
	}
	report_store_loss(&c);
	print_stats(&c, stderr);
	rc = store_writer_close(c.w) < 0 ? 1 : (rx_failed ? 1 : 0);
	c.w = NULL;
	if (rc)
		log_err("store: closing the last file failed");
out:
	httpapi_stop(c.api);
	if (c.w)
		store_writer_close(c.w);
	for (int i = 0; i < UDPRX_MAX_RECEIVERS; i++) {
		udprx_close(&c.rx[i]);
		if (c.q[i].buf)
			rxq_fini(&c.q[i]);
	}
	nfdec_free(c.dec);
	opt_store_free(&cfg_strings);
	return rc;
}
