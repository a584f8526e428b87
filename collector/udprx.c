/* udprx.c: see udprx.h. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/sock_diag.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "flowrec.h"
#include "udprx.h"

#define UDPRX_BATCH 64
#define UDPRX_MAXDG 65536
#define UDPRX_NAP_MIN_RCVBUF (8u << 20)  /* kernel-reported bytes; see udprx_run */
#define UDPRX_NAP_US 2000               /* with UDPRX_NAP_MIN_RCVBUF; longer with more */
#define UDPRX_NAP_MAX_US 4000
#define UDPRX_DRAIN_US 1000000          /* at a stop, taking what the socket holds */

int udprx_parse_prefix(const char *s, struct udprx_prefix *p)
{
	char buf[64];
	const char *slash = strchr(s, '/');
	size_t n = slash ? (size_t)(slash - s) : strlen(s);
	if (n == 0 || n >= sizeof(buf))
		return -EINVAL;
	memcpy(buf, s, n);
	buf[n] = 0;
	uint8_t a4[4];
	int max;
	if (inet_pton(AF_INET, buf, a4) == 1) {
		flowrec_addr4(p->addr, a4);
		max = 32;
	} else if (inet_pton(AF_INET6, buf, p->addr) == 1) {
		max = 128;
	} else {
		return -EINVAL;
	}
	int len = max;
	if (slash) {
		char *end;
		long v = strtol(slash + 1, &end, 10);
		if (*end || end == slash + 1 || v < 0 || v > max)
			return -EINVAL;
		len = (int)v;
	}
	p->bits = (uint8_t)(max == 32 ? 96 + len : len);
	return 0;
}

void udprx_set_allow(struct udprx *rx, const struct udprx_prefix *p, int n)
{
	pthread_mutex_lock(&rx->mu);
	rx->nallow = n < UDPRX_MAX_ALLOW ? n : UDPRX_MAX_ALLOW;
	memcpy(rx->allow, p, (size_t)rx->nallow * sizeof(*p));
	pthread_mutex_unlock(&rx->mu);
}

static int prefix_match(const struct udprx_prefix *p, const uint8_t a[16])
{
	int full = p->bits / 8, rest = p->bits % 8;
	if (memcmp(p->addr, a, (size_t)full))
		return 0;
	if (rest) {
		uint8_t m = (uint8_t)(0xff << (8 - rest));
		return (p->addr[full] & m) == (a[full] & m);
	}
	return 1;
}

int udprx_open(struct udprx *rx, const char *bind_addr, uint16_t port, uint32_t rcvbuf,
	       int reuseport, char *err, size_t errlen)
{
	struct sockaddr_storage ss;
	socklen_t sl;
	int e, fam = AF_INET6;
	memset(&ss, 0, sizeof(ss));
	rx->fd = -1;
	pthread_mutex_init(&rx->mu, NULL);
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
	struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
	if (!bind_addr || !*bind_addr || !strcmp(bind_addr, "::")) {
		s6->sin6_family = AF_INET6;
		s6->sin6_addr = in6addr_any;
		s6->sin6_port = htons(port);
		sl = sizeof(*s6);
	} else if (inet_pton(AF_INET, bind_addr, &s4->sin_addr) == 1) {
		fam = AF_INET;
		s4->sin_family = AF_INET;
		s4->sin_port = htons(port);
		sl = sizeof(*s4);
	} else if (inet_pton(AF_INET6, bind_addr, &s6->sin6_addr) == 1) {
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons(port);
		sl = sizeof(*s6);
	} else {
		snprintf(err, errlen, "bind address '%s' is not an IPv4 or IPv6 address",
			 bind_addr);
		return -EINVAL;
	}
	rx->fd = socket(fam, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (rx->fd < 0 && fam == AF_INET6 && (!bind_addr || !*bind_addr)) {
		/* A host without IPv6: fall back to IPv4 any. */
		fam = AF_INET;
		memset(&ss, 0, sizeof(ss));
		s4->sin_family = AF_INET;
		s4->sin_port = htons(port);
		sl = sizeof(*s4);
		rx->fd = socket(fam, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	}
	if (rx->fd < 0) {
		e = errno;
		snprintf(err, errlen, "socket: %s", strerror(e));
		return -e;
	}
	int zero = 0, one = 1;
	if (fam == AF_INET6)
		setsockopt(rx->fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
	if (reuseport && setsockopt(rx->fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0) {
		e = errno;
		snprintf(err, errlen, "SO_REUSEPORT: %s", strerror(e));
		close(rx->fd);
		rx->fd = -1;
		return -e;
	}
	int want = (int)rcvbuf;
	/* Privileged: past rmem_max, so a burst survives with default sysctls. */
	if (setsockopt(rx->fd, SOL_SOCKET, SO_RCVBUFFORCE, &want, sizeof(want)) < 0)
		setsockopt(rx->fd, SOL_SOCKET, SO_RCVBUF, &want, sizeof(want));
	int got = 0;
	socklen_t gl = sizeof(got);
	getsockopt(rx->fd, SOL_SOCKET, SO_RCVBUF, &got, &gl);
	rx->rcvbuf = (uint32_t)got;
	struct timeval tv = { 0, 200000 }; /* wake to notice stop */
	setsockopt(rx->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (bind(rx->fd, (struct sockaddr *)&ss, sl) < 0) {
		e = errno;
		snprintf(err, errlen, "bind %s port %u: %s", bind_addr && *bind_addr ? bind_addr :
			 "any", port, strerror(e));
		close(rx->fd);
		rx->fd = -1;
		return -e;
	}
	return 0;
}

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static uint64_t mono_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* One recvmmsg batch's room: UDPRX_BATCH datagrams into bufs. */
struct rxbatch {
	struct mmsghdr msgs[UDPRX_BATCH];
	struct iovec iov[UDPRX_BATCH];
	struct sockaddr_storage from[UDPRX_BATCH];
	uint8_t *bufs;
};

/* Up to UDPRX_BATCH datagrams from the socket into b (flags as recvmmsg's): their
 * number, or -1 with errno. */
static int rx_recv(struct udprx *rx, struct rxbatch *b, int flags)
{
	for (int i = 0; i < UDPRX_BATCH; i++) {
		b->iov[i].iov_base = b->bufs + (size_t)i * UDPRX_MAXDG;
		b->iov[i].iov_len = UDPRX_MAXDG;
		memset(&b->msgs[i].msg_hdr, 0, sizeof(b->msgs[i].msg_hdr));
		b->msgs[i].msg_hdr.msg_iov = &b->iov[i];
		b->msgs[i].msg_hdr.msg_iovlen = 1;
		b->msgs[i].msg_hdr.msg_name = &b->from[i];
		b->msgs[i].msg_hdr.msg_namelen = sizeof(b->from[i]);
	}
	return recvmmsg(rx->fd, b->msgs, UDPRX_BATCH, flags, NULL);
}

/* The n datagrams of b, received at ts, counted and queued (or denied). */
static void rx_take(struct udprx *rx, struct rxq *q, struct rxbatch *b, int n, uint64_t ts)
{
	pthread_mutex_lock(&rx->mu);
	for (int i = 0; i < n; i++) {
		uint8_t addr[16];
		if (b->from[i].ss_family == AF_INET6) {
			memcpy(addr, &((struct sockaddr_in6 *)&b->from[i])->sin6_addr, 16);
		} else {
			uint8_t a4[4];
			memcpy(a4, &((struct sockaddr_in *)&b->from[i])->sin_addr, 4);
			flowrec_addr4(addr, a4);
		}
		rx->datagrams++;
		rx->bytes += b->msgs[i].msg_len;
		if (rx->nallow) {
			int ok = 0;
			for (int k = 0; k < rx->nallow && !ok; k++)
				ok = prefix_match(&rx->allow[k], addr);
			if (!ok) {
				rx->denied++;
				continue;
			}
		}
		if (rxq_push(q, addr, ts, b->iov[i].iov_base, b->msgs[i].msg_len) < 0)
			rx->queue_full++;
	}
	pthread_mutex_unlock(&rx->mu);
	rxq_wake(q);
}

int udprx_run(struct udprx *rx, struct rxq *q, const int *stop)
{
	struct rxbatch *b = malloc(sizeof(*b));
	if (!b || !(b->bufs = malloc((size_t)UDPRX_BATCH * UDPRX_MAXDG))) {
		free(b);
		return -ENOMEM;
	}
	int rc = 0;
	/* Under steady load a wake per datagram or two costs more CPU than the decoding
	 * (context switches, a futex each): when the socket was drained less than a nap
	 * after the last wake, nap and take what queued up in one call. Only with a
	 * buffer that holds far more than a nap at any rate loopback reaches (about 2 MB
	 * in 2 ms at 1M datagrams/s), so the nap never drops a datagram: 2 ms with 8 MiB,
	 * longer in proportion with more, up to 4 ms (the default 64 MiB). 1 ms naps cost
	 * 7% more CPU than 2 ms at 20k datagrams/s, 2 ms about 3% more than 4 ms. */
	uint64_t nap_us = rx->rcvbuf < UDPRX_NAP_MIN_RCVBUF ? 0 :
			  (uint64_t)UDPRX_NAP_US * rx->rcvbuf / UDPRX_NAP_MIN_RCVBUF;
	if (nap_us > UDPRX_NAP_MAX_US)
		nap_us = UDPRX_NAP_MAX_US;
	uint64_t last_wake = 0;
	while (!__atomic_load_n(stop, __ATOMIC_ACQUIRE)) {
		int n = rx_recv(rx, b, MSG_WAITFORONE);
		if (n < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
				continue;
			rc = -errno;
			break;
		}
		uint64_t ts = now_ms();
		if (nap_us && n < UDPRX_BATCH) {
			uint64_t t = mono_us();
			if (t - last_wake < nap_us) {
				struct timespec d = { 0, (long)nap_us * 1000L };
				nanosleep(&d, NULL);
				t += nap_us;
			}
			last_wake = t;
		}
		rx_take(rx, q, b, n, ts);
	}
	/* Stopping: what the socket still holds was sent before the stop (a probe's last
	 * export just before the collector is told to stop): taken, not closed away with
	 * the socket. For at most UDPRX_DRAIN_US, against an exporter that never pauses. */
	for (uint64_t end = mono_us() + UDPRX_DRAIN_US; rc == 0 && mono_us() < end;) {
		int n = rx_recv(rx, b, MSG_DONTWAIT);
		if (n <= 0)
			break;
		rx_take(rx, q, b, n, now_ms());
	}
	free(b->bufs);
	free(b);
	return rc;
}

uint64_t udprx_kernel_drops(struct udprx *rx)
{
	uint32_t mi[SK_MEMINFO_VARS];
	socklen_t len = sizeof(mi);
	/* Cumulative since the socket was made; never goes back. */
	if (rx->fd >= 0 && getsockopt(rx->fd, SOL_SOCKET, SO_MEMINFO, mi, &len) == 0 &&
	    len > SK_MEMINFO_DROPS * sizeof(uint32_t) && mi[SK_MEMINFO_DROPS] > rx->kernel_drops)
		rx->kernel_drops = mi[SK_MEMINFO_DROPS];
	return rx->kernel_drops;
}

void udprx_close(struct udprx *rx)
{
	if (rx->fd >= 0)
		close(rx->fd);
	rx->fd = -1;
}
