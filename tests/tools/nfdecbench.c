/* nfdecbench: decode captured NetFlow v5/v9/IPFIX datagrams with nfdec, for speed.
 *
 *   nfdecbench [-n ROUNDS] [-d DUMP.txt] EXPORT.pcap...
 *
 * Loads the UDP payloads of the captures (Ethernet, SLL or raw IP; IPv4/IPv6; the
 * sender's address is the exporter) into memory, then feeds them all to one decoder
 * ROUNDS times (default 1), as a long-running collector would see a repeating stream:
 * templates are learned in the first round. The receive time is the capture time, moved
 * on by the capture's span each round. Prints on stdout
 *   datagrams=N records=N rounds=N seconds=S records_per_s=R ns_per_record=X
 * with seconds of process CPU time spent in the decode loop. -d writes every record and
 * the decoder's counters as text (to compare two builds' output with diff).
 *
 * Instructions per record, under callgrind (the emit callback is a few instructions;
 * its inclusive cost, bench_emit, can be subtracted):
 *   valgrind --tool=callgrind --toggle-collect=nfdec_datagram nfdecbench -n 3 F.pcap
 *   callgrind_annotate --inclusive=yes callgrind.out.PID | grep -e nfdec_datagram -e bench_emit
 * then divide nfdec_datagram's inclusive Ir, less bench_emit's, by records.
 */
#include <inttypes.h>
#include <pcap/pcap.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bytes.h"
#include "flowrec.h"
#include "nfdec.h"

struct dgram {
	const uint8_t *p;
	uint32_t len;
	uint64_t ms;             /* capture time, Unix ms */
	uint8_t src[16];         /* sender, IPv4 v4-mapped */
};

struct input {
	struct dgram *v;
	size_t n, cap;
	uint8_t *arena;          /* every payload, back to back */
	size_t used, size;
};

struct tally {
	uint64_t records;
	uint64_t sum;            /* keeps the records observed */
	FILE *dump;
};

/* Finds the UDP payload and source address in a frame; returns its length or -1. */
static int udp_payload(const uint8_t *f, uint32_t caplen, int dlt, const uint8_t **pl,
		       uint8_t src[16])
{
	struct cur c = cur_make(f, caplen);
	const uint8_t *h;
	uint16_t et = 0x0800;
	uint8_t proto;

	if (dlt == DLT_EN10MB) {
		if (!(h = cur_take(&c, 14)))
			return -1;
		et = ld_be16(h + 12);
		while (et == 0x8100 || et == 0x88a8) {
			if (!(h = cur_take(&c, 4)))
				return -1;
			et = ld_be16(h + 2);
		}
	} else if (dlt == DLT_LINUX_SLL) {
		if (!(h = cur_take(&c, 16)))
			return -1;
		et = ld_be16(h + 14);
	} else if (dlt == DLT_RAW) {
		if (cur_left(&c) < 1)
			return -1;
		et = (c.p[0] >> 4) == 6 ? 0x86dd : 0x0800;
	} else {
		return -1;
	}
	if (et == 0x0800) {
		if (!(h = cur_take(&c, 20)))
			return -1;
		size_t ihl = (size_t)(h[0] & 15) * 4;
		if (ihl < 20 || !cur_take(&c, ihl - 20))
			return -1;
		proto = h[9];
		flowrec_addr4(src, h + 12);
	} else if (et == 0x86dd) {
		if (!(h = cur_take(&c, 40)))
			return -1;
		proto = h[6];
		memcpy(src, h + 8, 16);
	} else {
		return -1;
	}
	if (proto != 17 || !(h = cur_take(&c, 8)))
		return -1;
	uint16_t ulen = ld_be16(h + 4);
	size_t n = cur_left(&c);
	if (ulen >= 8 && (size_t)(ulen - 8) < n)
		n = ulen - 8u;
	*pl = c.p;
	return (int)n;
}

/* Appends the UDP payloads of one capture to in. Returns 0 or -1 (message printed). */
static int load(struct input *in, const char *file)
{
	char eb[PCAP_ERRBUF_SIZE];
	struct pcap_pkthdr *h;
	const u_char *d;
	pcap_t *pc = pcap_open_offline(file, eb);

	if (!pc) {
		fprintf(stderr, "nfdecbench: %s\n", eb);
		return -1;
	}
	int dlt = pcap_datalink(pc);
	while (pcap_next_ex(pc, &h, &d) == 1) {
		const uint8_t *pl;
		uint8_t src[16];
		int len = udp_payload(d, h->caplen, dlt, &pl, src);
		if (len < 0)
			continue;
		if (in->n == in->cap) {
			size_t cap = in->cap ? in->cap * 2 : 1024;
			struct dgram *v = realloc(in->v, cap * sizeof *v);
			if (!v)
				goto nomem;
			in->v = v;
			in->cap = cap;
		}
		if (in->used + (size_t)len > in->size) {
			/* payloads point into the arena only once it stops moving */
			size_t size = in->size ? in->size * 2 : 1u << 20;
			while (size < in->used + (size_t)len)
				size *= 2;
			uint8_t *a = realloc(in->arena, size);
			if (!a)
				goto nomem;
			in->arena = a;
			in->size = size;
		}
		memcpy(in->arena + in->used, pl, (size_t)len);
		struct dgram *g = &in->v[in->n++];
		g->p = (const uint8_t *)(uintptr_t)in->used;
		g->len = (uint32_t)len;
		g->ms = (uint64_t)h->ts.tv_sec * 1000 + (uint64_t)h->ts.tv_usec / 1000;
		memcpy(g->src, src, 16);
		in->used += (size_t)len;
	}
	pcap_close(pc);
	return 0;
nomem:
	fprintf(stderr, "nfdecbench: out of memory\n");
	pcap_close(pc);
	return -1;
}

static void addr_print(FILE *f, const uint8_t a[16])
{
	for (int i = 0; i < 16; i++)
		fprintf(f, "%02x", a[i]);
}

static void rec_dump(FILE *f, const struct flow_rec *r)
{
	addr_print(f, r->src);
	fputc(' ', f);
	addr_print(f, r->dst);
	fputc(' ', f);
	addr_print(f, r->nexthop);
	fputc(' ', f);
	addr_print(f, r->exporter);
	fprintf(f, " p=%" PRIu64 " b=%" PRIu64 " f=%" PRIu64 " l=%" PRIu64
		" if=%" PRIu32 "/%" PRIu32 " as=%" PRIu32 "/%" PRIu32 " dom=%" PRIu32
		" samp=%" PRIu32 " ports=%u/%u vlan=%u proto=%u tos=%u flags=%u ipv=%u"
		" mask=%u/%u end=%u pad=%u%u%u\n",
		r->packets, r->bytes, r->first_ms, r->last_ms, r->in_if, r->out_if,
		r->src_as, r->dst_as, r->domain_id, r->sampling, r->sport, r->dport, r->vlan,
		r->proto, r->tos, r->tcp_flags, r->ipver, r->src_mask, r->dst_mask,
		r->end_reason, r->pad[0], r->pad[1], r->pad[2]);
}

/* Every counter the decoder keeps, one per line. */
static void stats_dump(FILE *f, const struct nfdec *d)
{
	struct nfdec_stats s;
	nfdec_stats(d, &s);
	fprintf(f, "total datagrams=%" PRIu64 " records=%" PRIu64 " options=%" PRIu64
		" exporters=%" PRIu64 " templates=%" PRIu64 " evictions=%" PRIu64
		" notpl=%" PRIu64 "/%" PRIu64 "/%" PRIu64 "/%" PRIu64 " pending=%" PRIu64
		"/%" PRIu64 "\n", s.datagrams, s.records, s.options_records, s.exporters,
		s.templates, s.template_evictions, s.notpl_sets, s.notpl_decoded_sets,
		s.notpl_dropped_sets, s.notpl_dropped_bytes, s.pending_sets, s.pending_bytes);
	for (int e = 0; e < NFDEC_E__COUNT; e++)
		fprintf(f, "total error %s=%" PRIu64 "\n", nfdec_err_name(e), s.errors[e]);
	for (size_t i = 0; i < nfdec_exporter_count(d); i++) {
		const struct nfdec_exporter_stats *x = nfdec_exporter(d, i);
		fprintf(f, "exporter ");
		addr_print(f, x->addr);
		fprintf(f, " datagrams=%" PRIu64 " records=%" PRIu64 "/%" PRIu64 "/%" PRIu64
			"/%" PRIu64 " options=%" PRIu64 " templates=%" PRIu64
			" evictions=%" PRIu64 " mismatch=%" PRIu64 " notpl=%" PRIu64 "/%" PRIu64
			"/%" PRIu64 "/%" PRIu64 "/%" PRIu64 "\n", x->datagrams, x->records,
			x->records_v5, x->records_v9, x->records_ipfix, x->options_records,
			x->templates, x->template_evictions, x->count_mismatch, x->notpl_sets,
			x->notpl_decoded_sets, x->notpl_records, x->notpl_dropped_sets,
			x->notpl_dropped_bytes);
		for (int e = 0; e < NFDEC_E__COUNT; e++)
			if (x->errors[e])
				fprintf(f, "  error %s=%" PRIu64 "\n", nfdec_err_name(e),
					x->errors[e]);
		for (size_t j = 0; j < nfdec_domain_count(d, i); j++) {
			const struct nfdec_domain_stats *m = nfdec_domain(d, i, j);
			fprintf(f, "  domain %" PRIu32 " v%u datagrams=%" PRIu64
				" records=%" PRIu64 " gaps=%" PRIu64 " lost=%" PRIu64
				" back=%" PRIu64 " sampling=%" PRIu32 " sysinit=%" PRIu64 "\n",
				m->domain_id, m->version, m->datagrams, m->records, m->seq_gaps,
				m->seq_lost, m->seq_backward, m->sampling, m->sys_init_ms);
		}
	}
}

/* The decoder's callback: cheap, so the figures are the decoder's. */
static void bench_emit(const struct flow_rec *r, void *arg)
{
	struct tally *t = arg;
	t->records++;
	t->sum += r->bytes + r->last_ms;
	if (t->dump)
		rec_dump(t->dump, r);
}

static double cpu_seconds(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void usage(void)
{
	fprintf(stderr, "usage: nfdecbench [-n ROUNDS] [-d DUMP.txt] EXPORT.pcap...\n");
	exit(2);
}

int main(int argc, char **argv)
{
	struct input in = { 0 };
	struct tally t = { 0 };
	long rounds = 1;
	const char *dump = NULL;
	int opt, rc = 1;

	while ((opt = getopt(argc, argv, "n:d:h")) != -1) {
		switch (opt) {
		case 'n':
			rounds = atol(optarg);
			if (rounds < 1)
				usage();
			break;
		case 'd':
			dump = optarg;
			break;
		default:
			usage();
		}
	}
	if (optind == argc)
		usage();
	for (int i = optind; i < argc; i++)
		if (load(&in, argv[i]) < 0)
			goto out;
	if (!in.n) {
		fprintf(stderr, "nfdecbench: no UDP datagrams in the input\n");
		goto out;
	}
	for (size_t i = 0; i < in.n; i++)
		in.v[i].p = in.arena + (uintptr_t)in.v[i].p;
	if (dump && !(t.dump = fopen(dump, "w"))) {
		perror(dump);
		goto out;
	}

	struct nfdec *d = nfdec_new(NULL);
	if (!d) {
		fprintf(stderr, "nfdecbench: nfdec_new failed\n");
		goto out;
	}
	uint64_t t0 = in.v[0].ms, span = in.v[in.n - 1].ms - t0 + 1000;
	double start = cpu_seconds();
	for (long r = 0; r < rounds; r++) {
		uint64_t shift = (uint64_t)r * span;
		for (size_t i = 0; i < in.n; i++) {
			const struct dgram *g = &in.v[i];
			nfdec_datagram(d, g->src, g->p, g->len, g->ms + shift, bench_emit, &t);
		}
	}
	double secs = cpu_seconds() - start;
	if (t.dump)
		stats_dump(t.dump, d);
	nfdec_free(d);
	printf("datagrams=%zu records=%" PRIu64 " rounds=%ld seconds=%.3f records_per_s=%.0f"
	       " ns_per_record=%.1f\n", in.n * (size_t)rounds, t.records, rounds, secs,
	       secs > 0 ? (double)t.records / secs : 0.0,
	       t.records ? secs * 1e9 / (double)t.records : 0.0);
	fprintf(stderr, "checksum=%016" PRIx64 "\n", t.sum);
	rc = 0;
out:
	if (t.dump && fclose(t.dump)) {
		perror(dump);
		rc = 1;
	}
	free(in.v);
	free(in.arena);
	return rc;
}
