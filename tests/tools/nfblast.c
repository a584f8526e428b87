/* nfblast: send flow export datagrams to a collector at a fixed rate (tests, bench).
 *
 *   nfblast -r EXPORT.pcap -d HOST:PORT [-s SRC_ADDR] [--rate DGRAMS/S] [--loop N]
 *       Replays the UDP payloads found in a capture (Ethernet, SLL, raw IP; IPv4/IPv6)
 *       from SRC_ADDR (any 127.x.y.z on loopback, so each replay can be its own
 *       exporter), in batches with sendmmsg, paced to the rate (0: as fast as possible),
 *       N times over (the stream then repeats its sequence numbers: fine for load).
 *   nfblast --synth RECORDS -d HOST:PORT [--rate RECORDS/S] [--log FILE]
 *           [--random-src N [--start-ms MS] | --realistic SEED]
 *       Exports RECORDS NetFlow v9 flows through the probe's exporter: record i has
 *       packets 1, bytes i+1 and first = last = the Unix ms it was sent; --log writes
 *       "i ms" per record, so a test can tell what was sent before any moment.
 *       --random-src N varies every field by a fixed hash of i instead (benchmarks):
 *       the source is one of N addresses from 10.0.0.0 (record i gets i * 2654435761
 *       mod N, so N >= RECORDS gives every record its own), the destination one of
 *       4096 in 192.168.0.0/20, 60% TCP (dport 443 half the time, 80 a quarter) and
 *       40% UDP (dport 53 half the time), 1..64 packets of 40..1500 bytes. With
 *       --start-ms MS, flow i starts at MS + i / 3 and lasts up to 30 s, the same on
 *       every run (the export clock follows); else first = last = the send time.
 *       --realistic SEED exports tests/tools/realgen.h's office-uplink flows instead
 *       (both directions of each connection, IPv4 and IPv6, skewed hosts and
 *       services), each when realgen says its exporter would, from 2024-05-01.
 * Prints "datagrams=N records=N seconds=S" on stdout. Stops early on SIGINT/SIGTERM.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pcap/pcap.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "bytes.h"
#include "export.h"
#include "flowrec.h"
#include "realgen.h"

#define BATCH 32

static volatile sig_atomic_t stop;

static void on_sig(int s)
{
	(void)s;
	stop = 1;
}

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Sleeps until `due` (monotonic ns). */
static void wait_until(uint64_t due)
{
	uint64_t n = now_ns();
	if (due <= n)
		return;
	struct timespec ts = { (time_t)((due - n) / 1000000000u), (long)((due - n) % 1000000000u) };
	nanosleep(&ts, NULL);
}

struct dg {
	uint8_t *p;
	uint32_t len;
};

/* Finds the UDP payload in a frame; returns its length or -1. */
static int udp_payload(const uint8_t *f, uint32_t caplen, int dlt, const uint8_t **pl)
{
	struct cur c = cur_make(f, caplen);
	const uint8_t *h;
	uint16_t et = 0x0800;
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
	uint8_t proto;
	if (et == 0x0800) {
		if (!(h = cur_take(&c, 20)))
			return -1;
		size_t ihl = (size_t)(h[0] & 15) * 4;
		if (ihl < 20 || !cur_take(&c, ihl - 20))
			return -1;
		proto = h[9];
	} else if (et == 0x86dd) {
		if (!(h = cur_take(&c, 40)))
			return -1;
		proto = h[6];
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

static int parse_dest(const char *s, struct sockaddr_storage *ss, socklen_t *sl)
{
	char host[128];
	const char *colon = strrchr(s, ':');
	if (!colon || (size_t)(colon - s) >= sizeof(host))
		return -1;
	memcpy(host, s, (size_t)(colon - s));
	host[colon - s] = 0;
	int port = atoi(colon + 1);
	memset(ss, 0, sizeof(*ss));
	char *h = host;
	if (h[0] == '[') {
		h++;
		h[strlen(h) - 1] = 0;
	}
	struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
	if (inet_pton(AF_INET, h, &s4->sin_addr) == 1) {
		s4->sin_family = AF_INET;
		s4->sin_port = htons((uint16_t)port);
		*sl = sizeof(*s4);
		return 0;
	}
	if (inet_pton(AF_INET6, h, &s6->sin6_addr) == 1) {
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)port);
		*sl = sizeof(*s6);
		return 0;
	}
	return -1;
}

static int replay(const char *file, const char *dest, const char *src, double rate,
		  long loops)
{
	char eb[PCAP_ERRBUF_SIZE];
	pcap_t *p = pcap_open_offline(file, eb);
	if (!p) {
		fprintf(stderr, "nfblast: %s\n", eb);
		return 1;
	}
	int dlt = pcap_datalink(p);
	struct dg *v = NULL;
	size_t n = 0, cap = 0;
	struct pcap_pkthdr *h;
	const u_char *d;
	while (pcap_next_ex(p, &h, &d) == 1) {
		const uint8_t *pl;
		int len = udp_payload(d, h->caplen, dlt, &pl);
		if (len < 0)
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 1024;
			v = realloc(v, cap * sizeof(*v));
		}
		v[n].p = malloc((size_t)len + 1);
		memcpy(v[n].p, pl, (size_t)len);
		v[n].len = (uint32_t)len;
		n++;
	}
	pcap_close(p);
	struct sockaddr_storage ds, ss;
	socklen_t dl, sl;
	if (parse_dest(dest, &ds, &dl) < 0) {
		fprintf(stderr, "nfblast: bad destination '%s'\n", dest);
		return 2;
	}
	int fd = socket(ds.ss_family, SOCK_DGRAM, 0);
	int big = 8 << 20;
	setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &big, sizeof(big));
	if (src) {
		char with_port[128];
		snprintf(with_port, sizeof(with_port), strchr(src, ':') && src[0] != '[' &&
			 strchr(src, '.') ? "%s" : "%s:0", src);
		if (parse_dest(with_port, &ss, &sl) < 0) {
			fprintf(stderr, "nfblast: bad source '%s'\n", src);
			return 2;
		}
		if (bind(fd, (struct sockaddr *)&ss, sl) < 0) {
			fprintf(stderr, "nfblast: bind %s: %s\n", src, strerror(errno));
			return 1;
		}
	}
	if (connect(fd, (struct sockaddr *)&ds, dl) < 0) {
		fprintf(stderr, "nfblast: connect %s: %s\n", dest, strerror(errno));
		return 1;
	}
	struct mmsghdr m[BATCH];
	struct iovec iov[BATCH];
	uint64_t sent = 0, t0 = now_ns();
	for (long l = 0; l < loops && !stop; l++) {
		for (size_t i = 0; i < n && !stop;) {
			unsigned k = 0;
			for (; k < BATCH && i + k < n; k++) {
				iov[k].iov_base = v[i + k].p;
				iov[k].iov_len = v[i + k].len;
				memset(&m[k], 0, sizeof(m[k]));
				m[k].msg_hdr.msg_iov = &iov[k];
				m[k].msg_hdr.msg_iovlen = 1;
			}
			if (rate > 0)
				wait_until(t0 + (uint64_t)((double)sent * 1e9 / rate));
			int r = sendmmsg(fd, m, k, 0);
			if (r < 0) {
				if (errno == ECONNREFUSED)
					continue; /* nobody listening yet: retry */
				fprintf(stderr, "nfblast: send: %s\n", strerror(errno));
				return 1;
			}
			sent += (uint64_t)r;
			i += (size_t)r;
		}
	}
	double secs = (double)(now_ns() - t0) / 1e9;
	printf("datagrams=%llu records=0 seconds=%.3f\n", (unsigned long long)sent, secs);
	for (size_t i = 0; i < n; i++)
		free(v[i].p);
	free(v);
	close(fd);
	return 0;
}

static uint64_t mix64(uint64_t z)
{
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* --random-src: record i's fields from a hash of i (see the header). */
static void synth_vary(struct flow_rec *r, long i, long nsrc, uint64_t start_ms)
{
	uint64_t h = mix64((uint64_t)i + 1), h2 = mix64(h);
	uint32_t s = 0x0a000000u + (uint32_t)((uint64_t)i * 2654435761u % (uint64_t)nsrc);
	uint8_t a[4] = { (uint8_t)(s >> 24), (uint8_t)(s >> 16), (uint8_t)(s >> 8), (uint8_t)s };
	uint8_t d[4] = { 192, 168, (uint8_t)(h >> 8 & 15), (uint8_t)h };
	flowrec_addr4(r->src, a);
	flowrec_addr4(r->dst, d);
	int tcp = (h >> 16) % 10 < 6;
	unsigned pick = (unsigned)(h >> 20) & 3;
	r->proto = tcp ? 6 : 17;
	r->sport = (uint16_t)(1024 + (h >> 32) % 60000);
	r->dport = tcp ? (pick < 2 ? 443 : pick == 2 ? 80 : (uint16_t)(1024 + (h2 & 0x7fff))) :
		   (pick < 2 ? 53 : (uint16_t)(1024 + (h2 & 0x7fff)));
	r->tcp_flags = tcp ? 0x1b : 0;
	r->packets = 1 + (h >> 40) % 64;
	r->bytes = r->packets * (40 + (h2 >> 16) % 1461);
	if (start_ms) {
		r->first_ms = start_ms + (uint64_t)i / 3;
		r->last_ms = r->first_ms + (h2 >> 40) % 30000;
	}
}

static int synth(long records, const char *dest, double rate, const char *logf, long nsrc,
		 uint64_t start_ms, long seed)
{
	struct realgen g;
	if (seed >= 0) {
		rg_init(&g, (uint64_t)seed);
		start_ms = RG_T0;
	}
	char err[256];
	struct export_cfg xc;
	memset(&xc, 0, sizeof(xc));
	xc.dest[0] = dest;
	xc.ndest = 1;
	xc.mtu = 1500;
	xc.tpl_every_pkts = 20;
	xc.tpl_every_secs = 5;
	xc.sampling_interval = 1;
	xc.boot_ms = (start_ms ? start_ms : wall_ms()) - 60000;
	struct exporter *x = export_new(&xc, err, sizeof(err));
	if (!x) {
		fprintf(stderr, "nfblast: %s\n", err);
		return 1;
	}
	FILE *log = logf ? fopen(logf, "w") : NULL;
	struct flow_rec r;
	memset(&r, 0, sizeof(r));
	const uint8_t s4[4] = { 192, 0, 2, 1 }, d4[4] = { 198, 51, 100, 1 };
	flowrec_addr4(r.src, s4);
	flowrec_addr4(r.dst, d4);
	r.ipver = 4;
	r.proto = 17;
	r.packets = 1;
	r.sampling = 1;
	uint64_t t0 = now_ns(), clock = 0;
	long i;
	for (i = 0; i < records && !stop; i++) {
		if (rate > 0)
			wait_until(t0 + (uint64_t)((double)i * 1e9 / rate));
		uint64_t ms = wall_ms();
		r.bytes = (uint64_t)i + 1;
		r.first_ms = r.last_ms = ms;
		r.sport = (uint16_t)(i & 0xffff);
		r.dport = (uint16_t)(i >> 16);
		if (seed >= 0) {
			rg_next(&g, &r, &ms);
		} else if (nsrc > 0) {
			synth_vary(&r, i, nsrc, start_ms);
			if (start_ms)
				ms = r.first_ms + 30000; /* the export clock: past every flow's end */
		}
		export_flow(x, &r, ms);
		clock = ms;
		/* A flow leaves in its datagram within a few ms, not the exporter's 1 s. */
		if (i % 8 == 7 && nsrc <= 0 && seed < 0)
			export_flush(x, ms);
		if (log)
			fprintf(log, "%ld %llu\n", i, (unsigned long long)ms);
	}
	export_flush(x, seed >= 0 || (nsrc > 0 && start_ms) ? clock : wall_ms());
	if (seed >= 0)
		rg_free(&g);
	const struct export_stats *st = export_stats(x);
	printf("datagrams=%llu records=%llu seconds=%.3f\n", (unsigned long long)st->datagrams,
	       (unsigned long long)st->records, (double)(now_ns() - t0) / 1e9);
	export_free(x);
	if (log)
		fclose(log);
	return 0;
}

int main(int argc, char **argv)
{
	const char *file = NULL, *dest = NULL, *src = NULL, *logf = NULL;
	double rate = 0;
	long loops = 1, records = -1, nsrc = 0, seed = -1;
	uint64_t start_ms = 0;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (!strcmp(a, "-r") && v)
			file = v, i++;
		else if (!strcmp(a, "-d") && v)
			dest = v, i++;
		else if (!strcmp(a, "-s") && v)
			src = v, i++;
		else if (!strcmp(a, "--rate") && v)
			rate = atof(v), i++;
		else if (!strcmp(a, "--loop") && v)
			loops = atol(v), i++;
		else if (!strcmp(a, "--synth") && v)
			records = atol(v), i++;
		else if (!strcmp(a, "--log") && v)
			logf = v, i++;
		else if (!strcmp(a, "--random-src") && v && atol(v) > 0)
			nsrc = atol(v), i++;
		else if (!strcmp(a, "--start-ms") && v)
			start_ms = strtoull(v, NULL, 10), i++;
		else if (!strcmp(a, "--realistic") && v && atol(v) >= 0)
			seed = atol(v), i++;
		else {
			fprintf(stderr, "usage: nfblast -r PCAP -d HOST:PORT [-s SRC] [--rate R] "
				"[--loop N] | nfblast --synth N -d HOST:PORT [--rate R] [--log F] "
				"[--random-src N [--start-ms MS] | --realistic SEED]\n");
			return 2;
		}
	}
	signal(SIGINT, on_sig);
	signal(SIGTERM, on_sig);
	if (!dest)
		return 2;
	if (records >= 0)
		return synth(records, dest, rate, logf, nsrc, start_ms, seed);
	if (!file)
		return 2;
	return replay(file, dest, src, rate, loops);
}
