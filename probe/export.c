/* export.c: the probe's NetFlow v9 exporter: connected UDP sockets, a queue of
 * datagram buffers the encoder writes into directly, template refresh, and batched
 * sending with sendmmsg (the same bytes to every collector).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* sendmmsg */
#endif
#include "export.h"

#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "nf9enc.h"

#define EXPORT_BATCH 32          /* datagrams per sendmmsg */
#define EXPORT_OPEN_MAX_MS 1000  /* longest a datagram with flows waits (export clock) */
#define EXPORT_BOOT_MARGIN_MS 3600000 /* boot_ms 0: first export clock less this */
#define UDP4_OVERHEAD 28
#define UDP6_OVERHEAD 48
#define UDP_MAX_PAYLOAD 65507

struct exporter {
	int fd[EXPORT_MAX_DEST];
	int nfd;
	size_t cap;              /* datagram size limit (UDP payload) */
	uint32_t tpl_every_pkts;
	uint64_t tpl_every_ms;
	uint32_t source_id;
	uint32_t sampling_interval;
	int boot_known;          /* 0 until the boot time is fixed (cfg or first call) */
	struct nf9enc enc;

	uint8_t *bufs;           /* EXPORT_BATCH buffers of cap bytes */
	size_t qlen[EXPORT_BATCH];
	uint32_t qrec[EXPORT_BATCH]; /* flow records per queued datagram */
	unsigned nq;             /* finished datagrams in bufs[0..nq) */
	uint32_t open_flows;     /* flow records in the open datagram (bufs[nq]) */
	uint64_t open_ms;        /* export clock when it got its first flow */

	int tpl_sent;            /* templates have been written at least once */
	uint32_t since_tpl;      /* datagrams finished since the last one with templates */
	uint64_t tpl_ms;         /* export clock of the last template refresh */

	struct export_stats st;
	struct iovec iov[EXPORT_BATCH];
	struct mmsghdr msg[EXPORT_BATCH];
};

/* Splits "host:port" or "[v6]:port" into host and port (numeric 1..65535).
 * Returns 0, or -EINVAL with a message in err. *v6 is set for the bracket form. */
static int parse_dest(const char *s, char *host, size_t hostlen, char *port,
		      size_t portlen, int *v6, char *err, size_t errlen)
{
	const char *h = s, *hend, *p;
	*v6 = 0;
	if (s[0] == '[') {
		h = s + 1;
		hend = strchr(h, ']');
		if (!hend || hend[1] != ':') {
			snprintf(err, errlen, "collector '%s': expected [v6addr]:port", s);
			return -EINVAL;
		}
		p = hend + 2;
		*v6 = 1;
	} else {
		hend = strrchr(s, ':');
		if (!hend) {
			snprintf(err, errlen,
				 "collector '%s': missing port (use host:port or [v6addr]:port)", s);
			return -EINVAL;
		}
		if (memchr(s, ':', (size_t)(hend - s))) {
			snprintf(err, errlen,
				 "collector '%s': write IPv6 addresses in brackets, [v6addr]:port", s);
			return -EINVAL;
		}
		p = hend + 1;
	}
	size_t hl = (size_t)(hend - h);
	if (hl == 0 || hl >= hostlen) {
		snprintf(err, errlen, "collector '%s': %s host", s, hl ? "overlong" : "missing");
		return -EINVAL;
	}
	memcpy(host, h, hl);
	host[hl] = 0;

	size_t pl = strlen(p);
	unsigned long v = 0;
	int digits = pl > 0 && pl < portlen && strspn(p, "0123456789") == pl;
	if (digits)
		v = strtoul(p, NULL, 10);
	if (!digits || v == 0 || v > 65535) {
		snprintf(err, errlen, "collector '%s': port must be a number 1-65535, not '%s'",
			 s, p);
		return -EINVAL;
	}
	memcpy(port, p, pl + 1);
	return 0;
}

/* Opens a UDP socket connected to dest. Returns the fd and sets *overhead (IP + UDP
 * header bytes of its family), or -1 with a message in err. */
static int open_dest(const char *dest, uint32_t sndbuf, size_t *overhead, char *err,
		     size_t errlen)
{
	char host[256], port[8];
	int v6;
	if (parse_dest(dest, host, sizeof(host), port, sizeof(port), &v6, err, errlen))
		return -1;

	struct addrinfo hints = { 0 }, *res = NULL;
	hints.ai_family = v6 ? AF_INET6 : AF_UNSPEC;
	hints.ai_socktype = SOCK_DGRAM;
	hints.ai_flags = AI_NUMERICSERV | (v6 ? AI_NUMERICHOST : 0);
	int rc = getaddrinfo(host, port, &hints, &res);
	if (rc && v6) {
		snprintf(err, errlen, "collector '%s': '%s' is not an IPv6 address", dest, host);
		return -1;
	}
	if (rc) {
		snprintf(err, errlen, "collector '%s': cannot resolve '%s': %s", dest, host,
			 rc == EAI_SYSTEM ? strerror(errno) : gai_strerror(rc));
		return -1;
	}
	int fd = -1, e = 0;
	const char *what = "socket";
	for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
		fd = socket(ai->ai_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
		if (fd < 0) {
			e = errno;
			what = "socket";
			continue;
		}
		if (sndbuf && setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf,
					 sizeof(sndbuf)) < 0) {
			e = errno;
			what = "SO_SNDBUF";
		} else if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
			e = errno;
			what = "connect";
		} else {
			*overhead = ai->ai_family == AF_INET6 ? UDP6_OVERHEAD : UDP4_OVERHEAD;
			break;
		}
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd < 0)
		snprintf(err, errlen, "collector '%s': %s: %s", dest, what, strerror(e));
	return fd;
}

struct exporter *export_new(const struct export_cfg *cfg, char *err, size_t errlen)
{
	struct exporter *x = calloc(1, sizeof(*x));
	if (!x) {
		snprintf(err, errlen, "export: out of memory");
		return NULL;
	}
	if (cfg->ndest < 1 || cfg->ndest > EXPORT_MAX_DEST) {
		snprintf(err, errlen, "export: need 1 to %d collectors, got %d",
			 EXPORT_MAX_DEST, cfg->ndest);
		goto fail;
	}
	uint32_t mtu = cfg->mtu ? cfg->mtu : 1500;
	size_t overhead = UDP4_OVERHEAD;
	for (int i = 0; i < cfg->ndest; i++) {
		size_t oh = 0;
		if (!cfg->dest[i]) {
			snprintf(err, errlen, "export: collector %d is not set", i + 1);
			goto fail;
		}
		x->fd[i] = open_dest(cfg->dest[i], cfg->sndbuf, &oh, err, errlen);
		if (x->fd[i] < 0)
			goto fail;
		x->nfd++;
		if (oh > overhead)
			overhead = oh;
	}
	if (mtu < overhead + nf9enc_min_cap()) {
		snprintf(err, errlen, "export: mtu %u too small, NetFlow v9 needs at least %zu",
			 mtu, overhead + nf9enc_min_cap());
		goto fail;
	}
	x->cap = mtu - overhead;
	if (x->cap > UDP_MAX_PAYLOAD)
		x->cap = UDP_MAX_PAYLOAD;
	x->bufs = calloc(EXPORT_BATCH, x->cap);
	if (!x->bufs) {
		snprintf(err, errlen, "export: out of memory");
		goto fail;
	}
	x->tpl_every_pkts = cfg->tpl_every_pkts;
	x->tpl_every_ms = (uint64_t)cfg->tpl_every_secs * 1000;
	x->source_id = cfg->source_id;
	x->sampling_interval = cfg->sampling_interval ? cfg->sampling_interval : 1;
	nf9enc_init(&x->enc, x->bufs, x->cap, cfg->source_id, cfg->boot_ms);
	x->enc.sampling_interval = x->sampling_interval;
	x->enc.sampling_algorithm = x->sampling_interval > 1 ? 1 : 0;
	x->boot_known = cfg->boot_ms != 0;
	return x;
fail:
	export_free(x);
	return NULL;
}

/* boot_ms 0 in the config: fix it at the first export clock we see, early enough that
 * flows which began before (up to the margin) still have times after it. */
static void set_boot(struct exporter *x, uint64_t now_ms)
{
	if (x->boot_known)
		return;
	uint64_t boot = now_ms > EXPORT_BOOT_MARGIN_MS ? now_ms - EXPORT_BOOT_MARGIN_MS : 0;
	uint32_t si = x->enc.sampling_interval;
	uint8_t sa = x->enc.sampling_algorithm;
	nf9enc_init(&x->enc, x->bufs, x->cap, x->source_id, boot);
	x->enc.sampling_interval = si;
	x->enc.sampling_algorithm = sa;
	x->boot_known = 1;
}

/* Sends datagrams [0..n) of the batch on fd; returns how many it did not take.
 * Errors are counted, never fatal: ECONNREFUSED only means nobody listens yet. */
static uint64_t send_batch(int fd, struct mmsghdr *msg, unsigned n)
{
	uint64_t failed = 0;
	unsigned i = 0;
	while (i < n) {
		int r = sendmmsg(fd, msg + i, n - i, 0);
		if (r > 0) {
			i += (unsigned)r;
		} else if (r < 0 && errno == EINTR) {
			continue;
		} else {
			/* This datagram was not taken: skip it, try the rest. */
			failed++;
			i++;
		}
	}
	return failed;
}

static void send_queue(struct exporter *x)
{
	if (!x->nq)
		return;
	for (unsigned i = 0; i < x->nq; i++) {
		x->iov[i].iov_base = x->bufs + (size_t)i * x->cap;
		x->iov[i].iov_len = x->qlen[i];
		memset(&x->msg[i], 0, sizeof(x->msg[i]));
		x->msg[i].msg_hdr.msg_iov = &x->iov[i];
		x->msg[i].msg_hdr.msg_iovlen = 1;
		x->st.records += x->qrec[i];
	}
	for (int d = 0; d < x->nfd; d++)
		x->st.send_errors += send_batch(x->fd[d], x->msg, x->nq);
	x->st.datagrams += x->nq;
	/* A datagram still open (tick before its second is up) moves to the front. */
	if (x->enc.len)
		memmove(x->bufs, x->bufs + (size_t)x->nq * x->cap, x->enc.len);
	x->nq = 0;
	nf9enc_set_buf(&x->enc, x->bufs);
}

/* Finishes the open datagram into the queue; sends the queue when it is full. */
static void finish_dgram(struct exporter *x, uint64_t now_ms)
{
	size_t n = nf9enc_finish(&x->enc, now_ms);
	if (!n)
		return;
	x->qlen[x->nq] = n;
	x->qrec[x->nq] = x->open_flows;
	x->nq++;
	x->since_tpl++;
	x->open_flows = 0;
	if (x->nq == EXPORT_BATCH)
		send_queue(x);
	else
		nf9enc_set_buf(&x->enc, x->bufs + (size_t)x->nq * x->cap);
}

static int tpl_due_by_time(const struct exporter *x, uint64_t now_ms)
{
	return x->tpl_every_ms && now_ms >= x->tpl_ms + x->tpl_every_ms;
}

/* Opens a datagram, led by the templates when they are due (first datagram, every N
 * datagrams, every T seconds). */
static void start_dgram(struct exporter *x, uint64_t now_ms)
{
	nf9enc_begin(&x->enc);
	if (x->tpl_sent && !tpl_due_by_time(x, now_ms) &&
	    !(x->tpl_every_pkts && x->since_tpl >= x->tpl_every_pkts))
		return;
	/* Cannot fail: cap >= nf9enc_min_cap() and the datagram is empty. */
	if (nf9enc_add_templates(&x->enc, now_ms) == 0) {
		x->tpl_sent = 1;
		x->since_tpl = 0;
		x->tpl_ms = now_ms;
		x->st.templates++;
	}
}

void export_flow(struct exporter *x, const struct flow_rec *rec, uint64_t now_ms)
{
	set_boot(x, now_ms);
	x->st.flows++;
	if (!x->enc.len)
		start_dgram(x, now_ms);
	if (nf9enc_add_flow(&x->enc, rec) < 0) {
		finish_dgram(x, now_ms);
		start_dgram(x, now_ms);
		/* An empty datagram always takes one record (nf9enc_min_cap). */
		if (nf9enc_add_flow(&x->enc, rec) < 0)
			return;
	}
	if (x->open_flows++ == 0)
		x->open_ms = now_ms;
}

void export_tick(struct exporter *x, uint64_t now_ms)
{
	set_boot(x, now_ms);
	/* The export clock may step back (pcap files): restart the waits from now. */
	if (now_ms < x->tpl_ms)
		x->tpl_ms = now_ms;
	if (now_ms < x->open_ms)
		x->open_ms = now_ms;

	if (x->open_flows && now_ms - x->open_ms >= EXPORT_OPEN_MAX_MS)
		finish_dgram(x, now_ms);
	/* Quiet link: templates go out on time even without flows to carry them. */
	if (!x->tpl_sent || tpl_due_by_time(x, now_ms)) {
		finish_dgram(x, now_ms);
		start_dgram(x, now_ms);
		finish_dgram(x, now_ms);
	}
	send_queue(x);
}

void export_flush(struct exporter *x, uint64_t now_ms)
{
	set_boot(x, now_ms);
	finish_dgram(x, now_ms);
	send_queue(x);
}

const struct export_stats *export_stats(const struct exporter *x)
{
	return &x->st;
}

void export_free(struct exporter *x)
{
	if (!x)
		return;
	for (int i = 0; i < x->nfd; i++)
		close(x->fd[i]);
	free(x->bufs);
	free(x);
}
