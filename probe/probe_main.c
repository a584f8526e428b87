/* probe_main.c: tapflow-probe. Parses options, opens the capture and the exporter,
 * drops privileges, runs the workers until end of file or a signal, flushes, reports. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/capability.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "cap.h"
#include "export.h"
#include "flowtab.h"
#include "log.h"
#include "opts.h"
#include "sys.h"
#include "worker.h"

#define MAX_WORKERS 16

struct probe_cfg {
	const char *config;
	const char *read;
	struct opt_list iface;
	struct opt_list collector;
	uint32_t active_timeout;
	uint32_t inactive_timeout;
	uint32_t tcp_end_timeout;
	uint32_t max_flows;
	uint32_t workers;
	uint32_t source_id;
	uint32_t mtu;
	uint32_t template_packets;
	uint32_t template_secs;
	uint32_t sample;
	uint32_t snaplen;
	uint32_t ring_mb;
	uint32_t stats_interval;
	int promisc;
	const char *direction;
	const char *capture;
	const char *xdp;
	const char *tc_attach;
	int router;
	uint32_t bpf_map_size;
	const char *bpf_scan;
	const char *user;
	int help;
	int version;
};

static const struct probe_cfg defaults = {
	.active_timeout = 60,
	.inactive_timeout = 15,
	.tcp_end_timeout = 2,
	.max_flows = 262144,
	.workers = 1,
	.mtu = 1500,
	.template_packets = 20,
	.template_secs = 30,
	.sample = 1,
	.snaplen = 256,
	.ring_mb = 16,
	.promisc = 1,
	.direction = "both",
	.capture = "auto",
	.xdp = "off",
	.tc_attach = "auto",
	.bpf_map_size = 65536,
	.bpf_scan = "kernel",
	.user = "nobody",
};

#define O(f) offsetof(struct probe_cfg, f)
static const struct opt_def probe_opts[] = {
	{ "read", 'r', OPT_STR, O(read), 0, 0, "FILE",
	  "Read packets from a pcap or pcapng file (Ethernet, Linux cooked SLL/SLL2, raw IP,\n"
	  "BSD loopback, PPP, PPPoE, Cisco HDLC) and use the file's own timestamps; - reads\n"
	  "standard input (a pipe from tcpdump -w - works). Every flow still open at the\n"
	  "end of the file is exported, then the probe exits 0." },
	{ "interface", 'i', OPT_LIST, O(iface), 0, 0, "IFACE",
	  "Capture live on IFACE (eBPF or an AF_PACKET ring: see --capture), promiscuous.\n"
	  "Repeat to capture several interfaces (a router): each packet is keyed by the\n"
	  "index of the interface it was captured on. Runs until SIGINT or SIGTERM." },
	{ "collector", 'n', OPT_LIST, O(collector), 0, 0, "HOST:PORT",
	  "Export NetFlow v9 to this collector over UDP; repeat for several. IPv6 addresses\n"
	  "are written in brackets: [2001:db8::1]:9995." },
	{ "config", 'c', OPT_STR, O(config), 0, 0, "FILE",
	  "Read settings from a libconfig file (see deploy/tapflow-probe.conf); flags given\n"
	  "on the command line override it." },
	{ "active-timeout", 0, OPT_UINT, O(active_timeout), 1, 86400, "SECS",
	  "Export a flow that has lasted this long and start a new record for it, so long\n"
	  "transfers show up in reports within this time." },
	{ "inactive-timeout", 0, OPT_UINT, O(inactive_timeout), 1, 86400, "SECS",
	  "Export a flow once no packet has been seen for it this long." },
	{ "tcp-end-timeout", 0, OPT_UINT, O(tcp_end_timeout), 0, 3600, "SECS",
	  "After a TCP FIN or RST, export the flow once it has been idle this long (the\n"
	  "grace lets the last ACKs join it)." },
	{ "max-flows", 0, OPT_UINT, O(max_flows), 16, 100000000, "N",
	  "Flow table size per worker, allocated at start (about 112 bytes a flow). When\n"
	  "full, the least recently seen flow is exported early and counted (table_full)." },
	{ "workers", 'w', OPT_UINT, O(workers), 1, MAX_WORKERS, "N",
	  "Capture threads for live capture. With more than one, PACKET_FANOUT spreads\n"
	  "packets by flow hash so both directions of a flow reach the same worker." },
	{ "source-id", 0, OPT_UINT, O(source_id), 0, 0xffffffffu, "N",
	  "NetFlow v9 source ID written in every export packet header." },
	{ "mtu", 0, OPT_UINT, O(mtu), 576, 65535, "BYTES",
	  "IP MTU towards the collectors: export datagrams are filled up to it." },
	{ "template-packets", 0, OPT_UINT, O(template_packets), 0, 1000000, "N",
	  "Re-send templates every N export packets (0: not by count)." },
	{ "template-secs", 0, OPT_UINT, O(template_secs), 0, 86400, "SECS",
	  "... and every SECS seconds, so collectors on quiet links get them too (0: not by\n"
	  "time). RFC 3954 section 7." },
	{ "sample", 's', OPT_UINT, O(sample), 1, 1000000, "N",
	  "Deterministic 1-in-N packet sampling (1: every packet). The interval is exported\n"
	  "in the options template so collectors can scale the counters." },
	{ "snaplen", 0, OPT_UINT, O(snaplen), 96, 65535, "BYTES",
	  "Bytes of each frame copied into the capture ring (headers are all we need)." },
	{ "ring-mb", 0, OPT_UINT, O(ring_mb), 2, 4096, "MIB",
	  "Capture ring size per interface and worker, in MiB." },
	{ "promisc", 0, OPT_BOOL, O(promisc), 0, 0, NULL,
	  "Put capture interfaces in promiscuous mode (a mirror port needs it)." },
	{ "direction", 0, OPT_STR, O(direction), 0, 0, "in|out|both",
	  "Which packets of an interface to account: 'both' (default) as tcpdump sees\n"
	  "them; 'in' only received ones (use it on a router capturing every interface,\n"
	  "or forwarded packets are counted twice); 'out' only sent ones." },
	{ "capture", 0, OPT_STR, O(capture), 0, 0, "auto|ebpf|afpacket|pcap",
	  "Capture backend for -i. ebpf: an eBPF program (TC or XDP) counts flows in the\n"
	  "kernel and only finished flows reach user space (no packet copies; kernel 5.10+,\n"
	  "root or CAP_BPF+CAP_PERFMON+CAP_NET_ADMIN, Ethernet interfaces, no FILTER).\n"
	  "A flow's first packet is timed exactly, later ones by the kernel's tick (5.11+):\n"
	  "a record's end may read a few ms early.\n"
	  "afpacket: TPACKET_V3 rings, every packet header copied to user space. auto:\n"
	  "ebpf when the kernel and privileges allow it (it tries to load it), else\n"
	  "afpacket; afpacket also when a FILTER or --workers above 1 is given. One log\n"
	  "line says which and why. -r always reads files." },
	{ "xdp", 0, OPT_STR, O(xdp), 0, 0, "off|native|generic|auto",
	  "eBPF backend: count received packets at XDP instead of TC ingress. native\n"
	  "needs driver support (earliest and cheapest), generic works everywhere, auto\n"
	  "tries native first. XDP sees VLAN tags only where the NIC leaves them in the\n"
	  "frame (VLAN offload off). Egress (--direction) stays on TC." },
	{ "tc-attach", 0, OPT_STR, O(tc_attach), 0, 0, "auto|tcx|clsact",
	  "eBPF backend: how the TC programs attach. tcx (kernel 6.6+): through links,\n"
	  "with no qdisc in the way (cheaper per packet), and the kernel detaches them\n"
	  "when the probe ends, even by kill -9. clsact: a cls_bpf filter on a clsact\n"
	  "qdisc the probe adds (and removes at exit if nobody else uses it); after a\n"
	  "kill -9 the filter stays until the next start replaces it. auto (default):\n"
	  "tcx where the kernel has it, else clsact." },
	{ "router", 0, OPT_BOOL, O(router), 0, 0, NULL,
	  "eBPF backend on a Linux router (give every routed interface with -i): on each\n"
	  "new flow look up its route (bpf_fib_lookup, as forwarding does) and export the\n"
	  "output interface (OUTPUT_SNMP) and next hop (0 for a connected network). TC\n"
	  "egress then counts only packets the router itself sends (input interface 0);\n"
	  "forwarded ones are counted once, where they come in. Off on a mirror port." },
	{ "bpf-map-size", 0, OPT_UINT, O(bpf_map_size), 16, 16777216, "N",
	  "eBPF backend: flows the kernel's flow map holds (allocated at start: about\n"
	  "100 bytes plus 88 per CPU a flow). Above 7/8 full the least recently seen flows\n"
	  "are exported early; packets that find it full are counted (ebpf_map_full)." },
	{ "bpf-scan", 0, OPT_STR, O(bpf_scan), 0, 0, "kernel|user",
	  "eBPF backend: who walks the flow map once a second to find flows due for\n"
	  "export. kernel (default): a second eBPF program (kernel 5.13+) walks it in the\n"
	  "kernel and hands user space only the flows that may be due, deleting those\n"
	  "surely due itself; it falls back to user when it cannot load (one log line\n"
	  "says why). user: user space reads every flow with batch lookups, several\n"
	  "times the CPU per live flow. The records are the same either way." },
	{ "user", 'u', OPT_STR, O(user), 0, 0, "USER",
	  "After opening capture and export sockets, drop root privileges to USER\n"
	  "(\"root\" or \"\" keeps them)." },
	{ "stats-interval", 0, OPT_UINT, O(stats_interval), 0, 86400, "SECS",
	  "Print statistics every SECS seconds (0: only on exit and on SIGUSR1)." },
	{ "help", 'h', OPT_ACTION, O(help), 0, 0, NULL, "Show this help and exit." },
	{ "version", 'V', OPT_ACTION, O(version), 0, 0, NULL, "Show the version and exit." },
	{ NULL, 0, 0, 0, 0, 0, NULL, NULL },
};
#undef O

/* Program-wide: written by signal handlers, read by the loops. */
static volatile sig_atomic_t stop_flag;
static volatile sig_atomic_t stats_flag;
/* The configuration lives as long as the process (strings from the file point into it). */
static struct probe_cfg cfg;
static struct opt_store cfg_strings;

static void on_stop(int sig)
{
	(void)sig;
	stop_flag = 1;
}

static void on_usr1(int sig)
{
	(void)sig;
	stats_flag = 1;
}

static void usage(FILE *out)
{
	fprintf(out,
"NAME\n"
"    tapflow-probe - turn packets into flows and export them as NetFlow v9\n"
"\n"
"SYNOPSIS\n"
"    tapflow-probe -r FILE -n HOST:PORT [options] [FILTER]\n"
"    tapflow-probe -i IFACE [-i IFACE...] -n HOST:PORT [options] [FILTER]\n"
"    tapflow-probe -c FILE [options]\n"
"\n"
"DESCRIPTION\n"
"    tapflow-probe reads packets from a capture file or from live interfaces, keys\n"
"    them into unidirectional flows by source and destination address, source and\n"
"    destination port, IP protocol, ToS byte and input interface (plus VLAN id), and\n"
"    exports each finished flow as a NetFlow v9 (RFC 3954) record to one or more\n"
"    collectors. ICMP type and code go in the destination port (type*256+code) as\n"
"    Cisco does. Bytes are IP-layer bytes (the IP total length), as routers count.\n"
"    Non-first IP fragments join the flow of their first fragment when it was seen\n"
"    (else a flow with ports 0, counted as frag_orphans). IP is found behind 802.1Q\n"
"    and QinQ tags, MPLS label stacks and PPPoE sessions; frames without IP are\n"
"    counted as not_ip, damaged ones as parse errors by reason.\n"
"\n"
"    A flow is exported when idle for --inactive-timeout, when older than\n"
"    --active-timeout (the flow goes on in a new record), after TCP FIN or RST plus\n"
"    --tcp-end-timeout, when the table is full (oldest first), and at the end of a\n"
"    file or on SIGINT/SIGTERM.\n"
"\n"
"    FILTER is a capture filter in pcap syntax (as tcpdump), e.g. 'tcp and port 443';\n"
"    for live capture it runs in the kernel.\n"
"\n"
"    Live capture has two backends (--capture). AF_PACKET copies each packet's\n"
"    headers to the probe. eBPF (the default where the kernel allows it) counts flows\n"
"    in the kernel, at TC or XDP, in a flow map the probe reads once a second,\n"
"    applying the same timeouts; only finished flows cross into user space. With\n"
"    --router it also records each flow's output interface and next hop.\n"
"\n"
"OPTIONS\n");
	opt_print_help(probe_opts, &defaults, out);
	fprintf(out,
"SIGNALS\n"
"    SIGINT, SIGTERM  export every open flow, print statistics, exit 0.\n"
"    SIGUSR1          print statistics to stderr.\n"
"\n"
"STATISTICS\n"
"    Frames, packets and IP bytes, kernel drops (PACKET_STATISTICS; for eBPF the\n"
"    packets its map could not take), parse errors by reason, flows created and\n"
"    expired by reason, table-full events, export datagrams and records sent and send\n"
"    errors; with eBPF also ebpf_* lines (map full, -EBUSY, route lookups, scans).\n"
"    One 'name: value' per line.\n"
"\n"
"EXIT STATUS\n"
"    0 success; 1 runtime error (file, interface, collector); 2 usage error.\n"
"\n"
"EXAMPLES\n"
"    tapflow-probe -r capture.pcap -n 127.0.0.1:9995\n"
"    tapflow-probe -i eth0 -n [2001:db8::10]:9995 'not port 22'\n"
"    tapflow-probe -i eth0 -i eth1 --direction in -w 2 -n 192.0.2.10:2055\n"
"    tapflow-probe -i eth0 -i eth1 --router -n 192.0.2.10:2055\n");
}

/* The index of v among the NULL-terminated names; -1 after saying what --opt takes. */
static int choice(const char *opt, const char *v, const char *const *names)
{
	int i;

	for (i = 0; names[i]; i++)
		if (!strcmp(v, names[i]))
			return i;
	fprintf(stderr, "tapflow-probe: --%s must be ", opt);
	for (i = 0; names[i]; i++)
		fprintf(stderr, "%s%s", i == 0 ? "" : names[i + 1] ? ", " : " or ", names[i]);
	fprintf(stderr, ", not '%s'\n", v);
	return -1;
}

/* Joins the trailing arguments into one filter string (owned by the caller). */
static char *join_args(int argc, char **argv, int first)
{
	size_t n = 1;
	for (int i = first; i < argc; i++)
		n += strlen(argv[i]) + 1;
	char *s = calloc(1, n);
	if (!s)
		return NULL;
	for (int i = first; i < argc; i++) {
		if (i > first)
			strcat(s, " ");
		strcat(s, argv[i]);
	}
	return s;
}

struct probe {
	struct worker *w[MAX_WORKERS];
	struct cap *cap[MAX_WORKERS];
	pthread_t tid[MAX_WORKERS];
	int nw;
	struct export_link exp;
	int live;
};

static void print_stats(struct probe *p, FILE *out)
{
	struct worker_stats t;
	struct flowtab_stats f;
	struct cap_stats cs, c = { 0, 0, 0 };
	memset(&t, 0, sizeof(t));
	memset(&f, 0, sizeof(f));
	for (int i = 0; i < p->nw; i++) {
		const struct worker_stats *s = &p->w[i]->st;
		const struct flowtab_stats *fs = worker_flow_stats(p->w[i]);
		t.frames += s->frames;
		t.sampled_out += s->sampled_out;
		t.packets += s->packets;
		t.bytes += s->bytes;
		t.outgoing += s->outgoing;
		t.frag_later += s->frag_later;
		t.frag_orphans += s->frag_orphans;
		for (int r = 0; r < PKT_NRESULTS; r++)
			t.parse[r] += s->parse[r];
		f.created += fs->created;
		f.active += fs->active;
		f.table_full += fs->table_full;
		for (int r = 0; r < 6; r++)
			f.expired[r] += fs->expired[r];
		cap_stats(p->cap[i], &cs);
		c.packets += cs.packets;
		c.drops += cs.drops;
	}
	pthread_mutex_lock(&p->exp.mu);
	const struct export_stats xs = *export_stats(p->exp.x);
	pthread_mutex_unlock(&p->exp.mu);
	uint64_t errs = 0;
	for (int r = PKT_NOT_IP + 1; r < PKT_NRESULTS; r++)
		errs += t.parse[r];
	fprintf(out, "tapflow-probe statistics:\n");
	fprintf(out, "  frames: %llu\n", (unsigned long long)t.frames);
	if (p->nw > 1) {
		fprintf(out, "  worker_frames:");
		for (int i = 0; i < p->nw; i++)
			fprintf(out, " %llu", (unsigned long long)p->w[i]->st.frames);
		fputc('\n', out);
	}
	fprintf(out, "  kernel_drops: %llu\n", (unsigned long long)c.drops);
	fprintf(out, "  sampled_out: %llu\n", (unsigned long long)t.sampled_out);
	fprintf(out, "  packets: %llu\n", (unsigned long long)t.packets);
	fprintf(out, "  bytes: %llu\n", (unsigned long long)t.bytes);
	fprintf(out, "  outgoing: %llu\n", (unsigned long long)t.outgoing);
	fprintf(out, "  not_ip: %llu\n", (unsigned long long)t.parse[PKT_NOT_IP]);
	fprintf(out, "  parse_errors: %llu\n", (unsigned long long)errs);
	for (int r = PKT_NOT_IP + 1; r < PKT_NRESULTS; r++)
		if (t.parse[r])
			fprintf(out, "  parse_error_%s: %llu\n", pkt_result_name(r),
				(unsigned long long)t.parse[r]);
	fprintf(out, "  frag_later: %llu\n", (unsigned long long)t.frag_later);
	fprintf(out, "  frag_orphans: %llu\n", (unsigned long long)t.frag_orphans);
	size_t mem = 0;
	for (int i = 0; i < p->nw; i++)
		mem += flowtab_mem_bytes(p->w[i]->ft);
	fprintf(out, "  flow_table_bytes: %zu (%zu per flow, %u flows per worker)\n", mem,
		mem / ((size_t)p->nw * cfg.max_flows), cfg.max_flows);
	fprintf(out, "  flows_created: %llu\n", (unsigned long long)f.created);
	fprintf(out, "  flows_active: %llu\n", (unsigned long long)f.active);
	fprintf(out, "  flows_expired_idle: %llu\n", (unsigned long long)f.expired[FLOW_END_IDLE]);
	fprintf(out, "  flows_expired_active: %llu\n",
		(unsigned long long)f.expired[FLOW_END_ACTIVE]);
	fprintf(out, "  flows_expired_tcp_end: %llu\n",
		(unsigned long long)f.expired[FLOW_END_EOF]);
	fprintf(out, "  flows_expired_forced: %llu\n",
		(unsigned long long)f.expired[FLOW_END_FORCED]);
	fprintf(out, "  flows_expired_table_full: %llu\n", (unsigned long long)f.table_full);
	fprintf(out, "  export_flows: %llu\n", (unsigned long long)xs.flows);
	fprintf(out, "  export_records: %llu\n", (unsigned long long)xs.records);
	fprintf(out, "  export_datagrams: %llu\n", (unsigned long long)xs.datagrams);
	fprintf(out, "  export_template_refreshes: %llu\n", (unsigned long long)xs.templates);
	fprintf(out, "  export_send_errors: %llu\n", (unsigned long long)xs.send_errors);
	cap_report(p->cap[0], out);
	fflush(out);
}

/* One round of a live worker: capture a batch, account it, tick once a second on the
 * wall clock. Returns the time now, or 0 when capture failed (the probe then stops). */
static uint64_t live_step(struct worker *w, uint64_t *next_tick)
{
	struct cap_pkt pkts[64];
	int n = cap_next(w->cap, pkts, 64, 100);
	if (n < 0) {
		log_err("capture: %s", strerror(-n));
		stop_flag = 1;
		return 0;
	}
	worker_packets(w, pkts, n, NULL);
	uint64_t now = sys_wall_ms();
	if (now >= *next_tick) {
		worker_tick(w, now);
		*next_tick = now + 1000;
	}
	return now;
}

/* Live worker thread (workers 1..n-1). */
static void *live_loop(void *arg)
{
	struct worker *w = arg;
	uint64_t next_tick = sys_wall_ms() + 1000;
	while (!stop_flag && live_step(w, &next_tick))
		;
	return NULL;
}

static int run_file(struct probe *p)
{
	static sigjmp_buf cut_short;
	struct worker *w = p->w[0];
	struct cap_pkt pkts[64];
	uint64_t next_tick = 0;
	volatile int rc = 0;  /* kept across the jump */
	if (sigsetjmp(cut_short, 1)) {
		/* A packet of the batch being parsed faulted: that batch is lost, the
		 * flows so far go out. */
		cap_pcap_guard(NULL);
		log_err("%s: the file was cut short while being read (truncated by its "
			"writer?); exporting what was read", cfg.read);
		worker_flush(w, w->clock_ms);
		return 1;
	}
	cap_pcap_guard(&cut_short);
	while (!stop_flag) {
		int n = cap_next(w->cap, pkts, 64, 0);
		if (n == CAP_EOF)
			break;
		if (n < 0) {
			log_err("%s: read error: %s", cfg.read, strerror(-n));
			rc = 1;
			break;
		}
		worker_packets(w, pkts, n, &next_tick);
		if (stats_flag) {
			stats_flag = 0;
			print_stats(p, stderr);
		}
	}
	cap_pcap_guard(NULL);
	worker_flush(w, w->clock_ms);
	return rc;
}

static int run_live(struct probe *p)
{
	uint64_t next_stats = cfg.stats_interval ? sys_wall_ms() + cfg.stats_interval * 1000u : 0;
	for (int i = 1; i < p->nw; i++) {
		if (pthread_create(&p->tid[i], NULL, live_loop, p->w[i]) != 0) {
			log_err("cannot start worker %d", i);
			stop_flag = 1;
			p->nw = i;
			break;
		}
	}
	/* Worker 0 runs here; this thread also answers SIGUSR1. */
	uint64_t next_tick = sys_wall_ms() + 1000;
	while (!stop_flag) {
		uint64_t now = live_step(p->w[0], &next_tick);
		if (!now)
			break;
		if (stats_flag || (next_stats && now >= next_stats)) {
			stats_flag = 0;
			if (next_stats)
				next_stats = now + cfg.stats_interval * 1000u;
			print_stats(p, stderr);
		}
	}
	for (int i = 1; i < p->nw; i++)
		pthread_join(p->tid[i], NULL);
	uint64_t now = sys_wall_ms();
	for (int i = 0; i < p->nw; i++)
		worker_flush(p->w[i], now);
	return 0;
}

int main(int argc, char **argv)
{
	char err[512];
	char *filter = NULL;
	struct probe p;
	struct export_cfg xc;
	int rc = 1;

	memset(&p, 0, sizeof(p));
	pthread_mutex_init(&p.exp.mu, NULL);
	log_init("tapflow-probe", LOG_INFO_);
	cfg = defaults;
	int first = opt_parse(probe_opts, &cfg, argc, argv, &cfg_strings, err, sizeof(err));
	if (first < 0) {
		fprintf(stderr, "tapflow-probe: %s\nTry 'tapflow-probe --help'.\n", err);
		return 2;
	}
	if (cfg.help) {
		usage(stdout);
		return 0;
	}
	if (cfg.version) {
		printf("tapflow-probe %s\n", TF_VERSION);
		return 0;
	}
	if (!!cfg.read == !!cfg.iface.n) {
		fprintf(stderr, "tapflow-probe: give either -r FILE or -i IFACE\n"
			"Try 'tapflow-probe --help'.\n");
		return 2;
	}
	if (cfg.collector.n == 0) {
		fprintf(stderr, "tapflow-probe: no collector: give -n HOST:PORT\n"
			"Try 'tapflow-probe --help'.\n");
		return 2;
	}
	if (cfg.collector.n > EXPORT_MAX_DEST) {
		fprintf(stderr, "tapflow-probe: at most %d collectors\n", EXPORT_MAX_DEST);
		return 2;
	}
	static const char *const dirs[] = { "in", "out", "both", NULL };
	static const int dir_of[] = { CAP_DIR_IN, CAP_DIR_OUT, CAP_DIR_BOTH };
	static const char *const captures[] = { "auto", "ebpf", "afpacket", "pcap", NULL };
	static const char *const xdps[] = { "off", "native", "generic", "auto", NULL };
	static const char *const tcs[] = { "auto", "tcx", "clsact", NULL };
	static const char *const scans[] = { "kernel", "user", NULL };
	_Static_assert(CAP_XDP_OFF == 0 && CAP_XDP_AUTO == 3 && CAP_TC_AUTO == 0 &&
		       CAP_TC_CLSACT == 2, "xdps and tcs list the values in order");
	/* Every choice is checked, so that each bad one is named at once. */
	int d = choice("direction", cfg.direction, dirs);
	int capture_ok = choice("capture", cfg.capture, captures) >= 0;
	int xdp = choice("xdp", cfg.xdp, xdps);  /* CAP_XDP_*, in that order */
	int tc = choice("tc-attach", cfg.tc_attach, tcs);  /* CAP_TC_* */
	int scan_ok = choice("bpf-scan", cfg.bpf_scan, scans) >= 0;
	if (d < 0 || !capture_ok || xdp < 0 || tc < 0 || !scan_ok)
		return 2;
	int direction = dir_of[d];
	/* --xdp and --router ask for the eBPF backend as --capture ebpf does. */
	int want_ebpf = !strcmp(cfg.capture, "ebpf") ||
			(!strcmp(cfg.capture, "auto") && (xdp != CAP_XDP_OFF || cfg.router));
	if ((xdp != CAP_XDP_OFF || cfg.router) && !want_ebpf) {
		fprintf(stderr, "tapflow-probe: --xdp and --router need --capture ebpf\n");
		return 2;
	}
	if (want_ebpf && (cfg.read || first < argc)) {
		fprintf(stderr, "tapflow-probe: the eBPF backend (--capture ebpf, --xdp, "
			"--router) captures live (-i) and takes no FILTER\n"
			"Try 'tapflow-probe --help'.\n");
		return 2;
	}
	if (first < argc && !(filter = join_args(argc, argv, first)))
		return 1;

	struct flowtab_cfg fc = {
		.max_flows = cfg.max_flows,
		.active_ms = cfg.active_timeout * 1000u,
		.inactive_ms = cfg.inactive_timeout * 1000u,
		.fin_grace_ms = cfg.tcp_end_timeout * 1000u,
	};
	p.live = cfg.iface.n > 0;
	p.nw = p.live ? (int)cfg.workers : 1;
	if (!p.live && cfg.workers > 1)
		log_info("-r reads a file in one worker; --workers ignored");

	/* Capture first: a bad file or interface is the likeliest error. The eBPF
	 * backend counts on every CPU in the kernel: one worker only reads its map. */
	int ebpf = 0;
	if (p.live && (want_ebpf || !strcmp(cfg.capture, "auto"))) {
		const char *why = NULL;
		if (!want_ebpf && filter)
			why = "a capture FILTER needs it";
		else if (!want_ebpf && cfg.workers > 1)
			why = "--workers above 1 asks for its capture threads";
		if (!why) {
			struct cap_ebpf_cfg ec = {
				.ifaces = cfg.iface.v,
				.nifaces = cfg.iface.n,
				.direction = direction,
				.xdp = xdp,
				.tc = tc,
				.router = cfg.router,
				.promisc = cfg.promisc,
				.map_size = cfg.bpf_map_size,
				.user_scan = !strcmp(cfg.bpf_scan, "user"),
				.sample = cfg.sample,
				.expiry = fc,
			};
			p.cap[0] = cap_open_ebpf(&ec, err, sizeof(err));
			if (p.cap[0]) {
				ebpf = 1;
				p.nw = 1;
				log_info("capture: ebpf (%s): flows counted in the kernel%s",
					 want_ebpf ? "asked for" : "the kernel allows it",
					 cfg.workers > 1 ? "; --workers ignored" : "");
			} else if (want_ebpf) {
				log_err("%s", err);
				p.nw = 0;
				goto out;
			} else {
				why = err;
			}
		}
		if (!ebpf)
			log_info("capture: afpacket (eBPF not used: %s)", why);
	}
	for (int i = ebpf; i < p.nw; i++) {
		if (p.live) {
			struct cap_afp_cfg ac = {
				.ifaces = cfg.iface.v,
				.nifaces = cfg.iface.n,
				.filter = filter,
				.snaplen = cfg.snaplen,
				.ring_bytes = cfg.ring_mb << 20,
				.promisc = cfg.promisc,
				.fanout_id = p.nw > 1 ? (int)(getpid() & 0x7fff) : -1,
				.fanout_members = p.nw,
				.direction = direction,
			};
			p.cap[i] = cap_open_afpacket(&ac, err, sizeof(err));
		} else {
			p.cap[i] = cap_open_pcap(cfg.read, filter, err, sizeof(err));
		}
		if (!p.cap[i]) {
			log_err("%s", err);
			p.nw = i;
			goto out;
		}
	}

	/* sysUptime's zero: start of the probe, or for a file a while before its first
	 * packet, so every flow time is expressed exactly (see nf9enc.h). */
	uint64_t boot_ms = sys_wall_ms();
	struct cap_pkt first_pkt;
	int have_first = 0;
	if (!p.live) {
		int n;
		do
			n = cap_next(p.cap[0], &first_pkt, 1, 0);
		while (n == 0);
		if (n == 1) {
			have_first = 1;
			boot_ms = first_pkt.ts_ns / 1000000u;
			boot_ms = boot_ms > 3600000u ? boot_ms - 3600000u : 0;
		} else if (n != CAP_EOF) {
			log_err("%s: read error", cfg.read);
			goto out;
		}
	}
	memset(&xc, 0, sizeof(xc));
	for (int i = 0; i < cfg.collector.n; i++)
		xc.dest[i] = cfg.collector.v[i];
	xc.ndest = cfg.collector.n;
	xc.source_id = cfg.source_id;
	xc.mtu = cfg.mtu;
	xc.tpl_every_pkts = cfg.template_packets;
	xc.tpl_every_secs = cfg.template_secs;
	xc.sampling_interval = cfg.sample;
	xc.boot_ms = boot_ms;
	xc.sndbuf = 4u << 20;
	p.exp.x = export_new(&xc, err, sizeof(err));
	if (!p.exp.x) {
		log_err("%s", err);
		goto out;
	}
	for (int i = 0; i < p.nw; i++) {
		p.w[i] = calloc(1, sizeof(struct worker));
		if (!p.w[i] || worker_init(p.w[i], &fc, cfg.sample, &p.exp, p.cap[i]) < 0) {
			log_err("cannot allocate a flow table of %u flows", cfg.max_flows);
			free(p.w[i]);
			p.w[i] = NULL;
			goto out_workers;
		}
	}

	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_stop;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sa.sa_handler = on_usr1;
	sigaction(SIGUSR1, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	if (sys_drop_privileges(cfg.user, ebpf ? 1u << CAP_NET_ADMIN : 0) < 0)
		goto out_workers;

	if (p.live) {
		log_info("capturing on %d interface%s with %d worker%s (%s), exporting to "
			 "%d collector%s", cfg.iface.n, cfg.iface.n > 1 ? "s" : "", p.nw,
			 p.nw > 1 ? "s" : "", p.cap[0]->ops->name, cfg.collector.n,
			 cfg.collector.n > 1 ? "s" : "");
		rc = run_live(&p);
	} else {
		if (have_first)
			worker_packet(p.w[0], &first_pkt);
		rc = run_file(&p);
	}
	print_stats(&p, stderr);

out_workers:
	for (int i = 0; i < p.nw; i++) {
		if (p.w[i]) {
			worker_fini(p.w[i]);
			free(p.w[i]);
		}
	}
	export_free(p.exp.x);
out:
	for (int i = 0; i < p.nw; i++)
		cap_close(p.cap[i]);
	free(filter);
	return rc;
}
