/* cap_pcap.c: the capture-file backend, using the file's own timestamps.
 *
 * Classic pcap files (both byte orders, micro- and nanosecond) are read by our own
 * reader: a regular file is mapped whole and its records handed out in place, in
 * batches, with no copy at all (the page cache's pages are the buffer: reading 700 MB
 * through read() costs twice the time of parsing it); a pipe, or a file too large for
 * a 32-bit address space, goes through large read()s into one buffer instead. libpcap's reader copies every packet through stdio and costs
 * more than parsing and flow accounting together. pcapng and anything else goes through
 * libpcap. A filter, if given, is compiled by libpcap and run on each record either way.
 */
#include <errno.h>
#include <fcntl.h>
#include <pcap/pcap.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cap.h"
#include "log.h"
#include "pkt.h"

#define RAW_BUF (4u << 20)
#define RAW_PREFETCH (16u << 10) /* how far ahead the parser asks for lines */
#define RAW_AHEAD (8u << 20)    /* within the shared cache */
#define RAW_MAX_CAPLEN (256u << 10) /* larger records mean a damaged file */

struct cap_pcap {
	struct cap c;
	pcap_t *p;          /* libpcap reader, or a dead handle for the filter */
	int link;
	int nano;
	uint64_t packets;
	struct bpf_program prog;
	int have_prog;
	/* own reader */
	int fd;
	int swap;
	uint8_t *buf;
	size_t len;         /* bytes in buf */
	size_t off;         /* next record */
	int eof;
	int mapped;         /* buf is the whole file, mapped */
	size_t pf;          /* mapped: prefetched up to here */
	/* mapped, with a spare CPU: a thread reads the file ahead of the parser */
	pthread_t ahead;
	int have_ahead;
	atomic_size_t read_off; /* the parser is here */
	atomic_int ahead_stop;
	const char *path;
};

/* A fault in the mapping jumps to the thread's guard (cap_pcap_guard; the read-ahead
 * thread has its own). One mapped file at a time: the probe reads one. */
static __thread sigjmp_buf *bus_jb;
static const uint8_t *volatile map_lo, *volatile map_hi;

/* Maps a libpcap DLT to the parser's link type, -1 if the parser does not know it. */
static int link_from_dlt(int dlt)
{
	switch (dlt) {
	case DLT_EN10MB:
		return PKT_LINK_ETH;
	case DLT_RAW:
		return PKT_LINK_RAW;
#ifdef DLT_IPV4
	case DLT_IPV4:
		return PKT_LINK_IPV4;
	case DLT_IPV6:
		return PKT_LINK_IPV6;
#endif
	case DLT_LINUX_SLL:
		return PKT_LINK_SLL;
#ifdef DLT_LINUX_SLL2
	case DLT_LINUX_SLL2:
		return PKT_LINK_SLL2;
#endif
	case DLT_NULL:
	case DLT_LOOP:
		return PKT_LINK_NULL;
	case DLT_PPP:
	case DLT_PPP_SERIAL:
		return PKT_LINK_PPP;
	case DLT_PPP_ETHER:
		return PKT_LINK_PPP_ETHER;
	case DLT_C_HDLC:
		return PKT_LINK_CHDLC;
	default:
		return -1;
	}
}

static uint32_t rd32(const struct cap_pcap *cp, const uint8_t *p)
{
	uint32_t v;
	memcpy(&v, p, 4);
	return cp->swap ? __builtin_bswap32(v) : v;
}

/* Moves the unread tail to the front and reads more. 0, or -errno. */
static int raw_fill(struct cap_pcap *cp)
{
	size_t left = cp->len - cp->off;
	memmove(cp->buf, cp->buf + cp->off, left);
	cp->len = left;
	cp->off = 0;
	while (cp->len < RAW_BUF) {
		ssize_t n = read(cp->fd, cp->buf + cp->len, RAW_BUF - cp->len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0) {
			cp->eof = 1;
			break;
		}
		cp->len += (size_t)n;
	}
	return 0;
}

static int raw_next(struct cap *c, struct cap_pkt *pkts, int max, int timeout_ms)
{
	struct cap_pcap *cp = (struct cap_pcap *)c;
	int n = 0;
	(void)timeout_ms;
	while (n < max) {
		size_t left = cp->len - cp->off;
		uint32_t caplen = left >= 16 ? rd32(cp, cp->buf + cp->off + 8) : 0;
		if (caplen > RAW_MAX_CAPLEN) {
			log_err("%s: record of %u bytes: the file is damaged here; stopping",
				cp->path, caplen);
			return -EBADMSG;
		}
		if (left < 16 || left < 16 + (size_t)caplen) {
			if (n > 0)
				break; /* hand out what we have before the buffer moves */
			if (cp->eof) {
				if (left)
					log_warn("%s: file ends in a truncated record (%zu bytes "
						 "ignored)", cp->path, left);
				cp->off = cp->len;
				return CAP_EOF;
			}
			int e = raw_fill(cp);
			if (e < 0)
				return e;
			continue;
		}
		const uint8_t *h = cp->buf + cp->off;
		struct cap_pkt *p = &pkts[n];
		/* Where a record starts is known only from the one before it, a chain of
		 * cache misses on a mapped file: stream every line ahead into the cache. */
		if (cp->mapped) {
			size_t end = cp->off + RAW_PREFETCH;
			if (end > cp->len)
				end = cp->len;
			while (cp->pf < end) {
				__builtin_prefetch(cp->buf + cp->pf);
				cp->pf += 64;
			}
		}
		uint32_t sec = rd32(cp, h), frac = rd32(cp, h + 4);
		p->data = h + 16;
		p->caplen = caplen;
		p->len = rd32(cp, h + 12);
		p->ts_ns = (uint64_t)sec * 1000000000u + (uint64_t)frac * (cp->nano ? 1u : 1000u);
		p->ifindex = 0;
		p->vlan = 0;
		p->link = (uint8_t)cp->link;
		p->outgoing = 0;
		cp->off += 16 + (size_t)caplen;
		if (cp->have_prog) {
			struct pcap_pkthdr ph;
			ph.caplen = caplen;
			ph.len = p->len;
			ph.ts.tv_sec = (time_t)sec;
			ph.ts.tv_usec = (suseconds_t)(cp->nano ? frac / 1000 : frac);
			if (!pcap_offline_filter(&cp->prog, &ph, p->data))
				continue;
		}
		n++;
	}
	cp->packets += (uint64_t)n;
	if (cp->have_ahead)
		atomic_store_explicit(&cp->read_off, cp->off, memory_order_relaxed);
	return n;
}

/* Reads the mapped file a few MB ahead of the parser, one load per cache line: the
 * page faults and the trips to memory are taken on another CPU, and the parser finds
 * its records in the shared cache. */
static __attribute__((noinline)) void read_ahead_run(struct cap_pcap *cp)
{
	const volatile uint8_t *b = cp->buf; /* volatile: each load happens */
	size_t pos = 0;
	while (pos < cp->len && !atomic_load_explicit(&cp->ahead_stop, memory_order_relaxed)) {
		size_t at = atomic_load_explicit(&cp->read_off, memory_order_relaxed);
		if (pos > at + RAW_AHEAD) {
			struct timespec ts = {0, 50000};
			nanosleep(&ts, NULL);
			continue;
		}
		size_t end = pos + (64u << 10) < cp->len ? pos + (64u << 10) : cp->len;
		for (; pos < end; pos += 64)
			(void)b[pos];
	}
}

static void *read_ahead(void *arg)
{
	sigjmp_buf jb;
	if (sigsetjmp(jb, 1)) { /* the file was cut short: the parser will say so */
		bus_jb = NULL;
		return NULL;
	}
	bus_jb = &jb;
	read_ahead_run(arg);
	bus_jb = NULL;
	return NULL;
}

static int lib_next(struct cap *c, struct cap_pkt *pkts, int max, int timeout_ms)
{
	struct cap_pcap *cp = (struct cap_pcap *)c;
	struct pcap_pkthdr *h;
	const u_char *data;
	(void)timeout_ms;
	if (max < 1)
		return 0;
	/* libpcap reuses its buffer on every call, so a batch is one packet. */
	int r = pcap_next_ex(cp->p, &h, &data);
	if (r == PCAP_ERROR_BREAK)
		return CAP_EOF;
	if (r < 0) {
		log_err("%s: %s", cp->path, pcap_geterr(cp->p));
		return -EIO;
	}
	if (r == 0)
		return 0;
	pkts[0].data = data;
	pkts[0].caplen = h->caplen;
	pkts[0].len = h->len;
	pkts[0].ts_ns = (uint64_t)h->ts.tv_sec * 1000000000u +
			(uint64_t)h->ts.tv_usec * (cp->nano ? 1u : 1000u);
	pkts[0].ifindex = 0;
	pkts[0].vlan = 0;
	pkts[0].link = (uint8_t)cp->link;
	pkts[0].outgoing = 0;
	cp->packets++;
	return 1;
}

static void pcap_stats_get(struct cap *c, struct cap_stats *st)
{
	struct cap_pcap *cp = (struct cap_pcap *)c;
	st->packets = cp->packets;
	st->drops = 0;
	st->filtered = 0;
}

static void pcap_close_cap(struct cap *c)
{
	struct cap_pcap *cp = (struct cap_pcap *)c;
	if (cp->have_prog)
		pcap_freecode(&cp->prog);
	if (cp->p)
		pcap_close(cp->p);
	if (cp->fd >= 0)
		close(cp->fd);
	if (cp->have_ahead) {
		atomic_store(&cp->ahead_stop, 1);
		pthread_join(cp->ahead, NULL);
	}
	if (cp->mapped)
		munmap(cp->buf, cp->len);
	else
		free(cp->buf);
	free(cp);
}

static const struct cap_ops raw_ops = {
	.name = "pcap",
	.next = raw_next,
	.stats = pcap_stats_get,
	.close = pcap_close_cap,
};

static const struct cap_ops lib_ops = {
	.name = "pcap",
	.next = lib_next,
	.stats = pcap_stats_get,
	.close = pcap_close_cap,
};

static int set_link(struct cap_pcap *cp, int dlt, char *err, size_t errlen)
{
	cp->link = link_from_dlt(dlt);
	if (cp->link >= 0)
		return 0;
	const char *n = pcap_datalink_val_to_name(dlt);
	snprintf(err, errlen, "%s: link type %s (%d) is not supported (Ethernet, Linux "
		 "cooked SLL/SLL2, raw IP, BSD loopback, PPP, PPPoE, Cisco HDLC are)", cp->path,
		 n ? n : "unknown", dlt);
	return -1;
}

static int compile_filter(struct cap_pcap *cp, const char *filter, char *err, size_t errlen)
{
	if (!filter || !*filter)
		return 0;
	if (pcap_compile(cp->p, &cp->prog, filter, 1, PCAP_NETMASK_UNKNOWN) < 0) {
		snprintf(err, errlen, "filter '%s': %s", filter, pcap_geterr(cp->p));
		return -1;
	}
	cp->have_prog = 1;
	return 0;
}

static void on_sigbus(int sig, siginfo_t *si, void *uc)
{
	(void)uc;
	const uint8_t *a = si->si_addr;
	if (bus_jb && a >= map_lo && a < map_hi)
		siglongjmp(*bus_jb, 1);
	signal(sig, SIG_DFL); /* not ours: the default action when the access repeats */
}

void cap_pcap_guard(sigjmp_buf *jb)
{
	bus_jb = jb;
}

/* Maps a regular file whole, past its 24-byte header already read. A file one reads
 * while its writer appends is read up to its size at open, as read() would; one cut
 * short while mapped faults (see cap_pcap_guard). 0 mapped, -1 use read(). */
static int map_file(struct cap_pcap *cp)
{
	struct stat st;
	if (fstat(cp->fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size <= 24)
		return -1;
	/* leave most of a 32-bit address space to the flow table */
	if ((uint64_t)st.st_size > (uint64_t)SIZE_MAX / 4)
		return -1;
	void *m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, cp->fd, 0);
	if (m == MAP_FAILED)
		return -1;
	madvise(m, (size_t)st.st_size, MADV_SEQUENTIAL);
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_sigbus;
	sa.sa_flags = SA_SIGINFO;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGBUS, &sa, NULL);
	map_lo = m;
	map_hi = (const uint8_t *)m + st.st_size;
	cp->buf = m;
	cp->len = (size_t)st.st_size;
	cp->off = 24;
	cp->eof = 1;
	cp->mapped = 1;
	if (sysconf(_SC_NPROCESSORS_ONLN) > 1 &&
	    pthread_create(&cp->ahead, NULL, read_ahead, cp) == 0)
		cp->have_ahead = 1;
	return 0;
}

/* What libpcap reads when our reader declines a file: the bytes already taken from the
 * descriptor, then the rest of it, so a pipe works as well as a file. */
struct replay {
	int fd;
	uint8_t h[24];
	size_t hlen;
	size_t hoff;
};

static ssize_t replay_read(void *cookie, char *buf, size_t size)
{
	struct replay *r = cookie;
	if (r->hoff < r->hlen) {
		size_t n = r->hlen - r->hoff < size ? r->hlen - r->hoff : size;
		memcpy(buf, r->h + r->hoff, n);
		r->hoff += n;
		return (ssize_t)n;
	}
	for (;;) {
		ssize_t n = read(r->fd, buf, size);
		if (n >= 0 || errno != EINTR)
			return n;
	}
}

static int replay_close(void *cookie)
{
	struct replay *r = cookie;
	int rc = close(r->fd);
	free(r);
	return rc;
}

/* Reads up to len bytes, fewer only at the end of the input. */
static ssize_t read_full(int fd, uint8_t *p, size_t len)
{
	size_t got = 0;
	while (got < len) {
		ssize_t n = read(fd, p + got, len - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		if (n == 0)
			break;
		got += (size_t)n;
	}
	return (ssize_t)got;
}

/* Opens a classic pcap with our own reader. 1 done, 0 not ours (h[0..*hlen) were read
 * from cp->fd, which stays open), -1 error. */
static int open_raw(struct cap_pcap *cp, const char *filter, uint8_t *h, size_t *hlen,
		    char *err, size_t errlen)
{
	ssize_t n = read_full(cp->fd, h, 24);
	*hlen = n > 0 ? (size_t)n : 0;
	if (n != 24)
		return 0;
	uint32_t magic;
	memcpy(&magic, h, 4);
	switch (magic) {
	case 0xa1b2c3d4: cp->swap = 0; cp->nano = 0; break;
	case 0xd4c3b2a1: cp->swap = 1; cp->nano = 0; break;
	case 0xa1b23c4d: cp->swap = 0; cp->nano = 1; break;
	case 0x4d3cb2a1: cp->swap = 1; cp->nano = 1; break;
	default:
		return 0;
	}
	/* The link type's low 16 bits (upper bits hold FCS flags). Files hold LINKTYPE_*
	 * values; they equal libpcap's DLT_* for what we parse but for raw IP. Anything
	 * else goes to libpcap, which knows the whole mapping. */
	int dlt = (int)(rd32(cp, h + 20) & 0xffff);
	if (dlt == 101)
		dlt = DLT_RAW;
	if (link_from_dlt(dlt) < 0 || set_link(cp, dlt, err, errlen) < 0)
		return 0;
	cp->p = pcap_open_dead(dlt, 262144);
	if (!cp->p || compile_filter(cp, filter, err, errlen) < 0)
		return -1;
	cp->c.ops = &raw_ops;
	if (map_file(cp) == 0)
		return 1;
	cp->buf = malloc(RAW_BUF);
	if (!cp->buf) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	posix_fadvise(cp->fd, 0, 0, POSIX_FADV_SEQUENTIAL);
	return 1;
}

struct cap *cap_open_pcap(const char *path, const char *filter, char *err, size_t errlen)
{
	char ebuf[PCAP_ERRBUF_SIZE] = "";
	struct cap_pcap *cp = calloc(1, sizeof(*cp));
	if (!cp) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	cp->path = path;
	cp->fd = strcmp(path, "-") ? open(path, O_RDONLY | O_CLOEXEC) :
				     fcntl(0, F_DUPFD_CLOEXEC, 3);
	if (cp->fd < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		goto fail;
	}
	struct replay *rp = calloc(1, sizeof(*rp));
	if (!rp) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	int r = open_raw(cp, filter, rp->h, &rp->hlen, err, errlen);
	if (r != 0) {
		free(rp);
		if (r < 0)
			goto fail;
		return &cp->c;
	}
	rp->fd = cp->fd;
	static const cookie_io_functions_t replay_io = { .read = replay_read,
							 .close = replay_close };
	FILE *f = fopencookie(rp, "r", replay_io);
	if (!f) {
		free(rp);
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	cp->fd = -1; /* the stream owns it now, and libpcap the stream */
	cp->c.ops = &lib_ops;
	/* Nanosecond precision when the file has it; libpcap scales otherwise. */
	cp->p = pcap_fopen_offline_with_tstamp_precision(f, PCAP_TSTAMP_PRECISION_NANO, ebuf);
	if (!cp->p) {
		fclose(f);
		snprintf(err, errlen, "%s: %s", path, ebuf);
		goto fail;
	}
	cp->nano = pcap_get_tstamp_precision(cp->p) == PCAP_TSTAMP_PRECISION_NANO;
	if (set_link(cp, pcap_datalink(cp->p), err, errlen) < 0)
		goto fail;
	if (compile_filter(cp, filter, err, errlen) < 0)
		goto fail;
	if (cp->have_prog && pcap_setfilter(cp->p, &cp->prog) < 0) {
		snprintf(err, errlen, "filter '%s': %s", filter, pcap_geterr(cp->p));
		goto fail;
	}
	return &cp->c;
fail:
	pcap_close_cap(&cp->c);
	return NULL;
}
