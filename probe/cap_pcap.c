/* cap_pcap.c: the capture-file backend, using the file's own timestamps.
 *
 * Classic pcap files (both byte orders, micro- and nanosecond) are read by our own
 * reader: large read()s into one buffer and records handed out in place, in batches,
 * with no copy per packet. libpcap's reader copies every packet through stdio and costs
 * more than parsing and flow accounting together. pcapng and anything else goes through
 * libpcap. A filter, if given, is compiled by libpcap and run on each record either way.
 */
#include <errno.h>
#include <fcntl.h>
#include <pcap/pcap.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cap.h"
#include "log.h"
#include "pkt.h"

#define RAW_BUF (4u << 20)
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
	const char *path;
};

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
	return n;
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
		 "cooked SLL/SLL2, raw IP, BSD loopback are)", cp->path, n ? n : "unknown", dlt);
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

/* Opens a classic pcap with our own reader. 1 done, 0 not classic pcap, -1 error. */
static int open_raw(struct cap_pcap *cp, const char *filter, char *err, size_t errlen)
{
	uint8_t h[24];
	cp->fd = open(cp->path, O_RDONLY | O_CLOEXEC);
	if (cp->fd < 0)
		return 0; /* let libpcap say why */
	ssize_t n = read(cp->fd, h, sizeof(h));
	if (n != (ssize_t)sizeof(h))
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
	cp->buf = malloc(RAW_BUF);
	if (!cp->buf) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	posix_fadvise(cp->fd, 0, 0, POSIX_FADV_SEQUENTIAL);
	cp->c.ops = &raw_ops;
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
	cp->fd = -1;
	cp->path = path;
	int r = open_raw(cp, filter, err, errlen);
	if (r < 0)
		goto fail;
	if (r > 0)
		return &cp->c;
	if (cp->fd >= 0) {
		close(cp->fd);
		cp->fd = -1;
	}
	cp->c.ops = &lib_ops;
	/* Nanosecond precision when the file has it; libpcap scales otherwise. */
	cp->p = pcap_open_offline_with_tstamp_precision(path, PCAP_TSTAMP_PRECISION_NANO, ebuf);
	if (!cp->p) {
		snprintf(err, errlen, "%s", ebuf); /* libpcap names the file */
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
