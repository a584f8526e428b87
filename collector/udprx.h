/* udprx.h: the collector's UDP receiver. One socket, dual-stack by default (IPv6 with
 * IPV6_V6ONLY off, so IPv4 exporters arrive v4-mapped), a large receive buffer, batched
 * receive with recvmmsg, and the kernel's drop counter (SO_MEMINFO). Datagrams go into
 * an rxq; the receiver never decodes, so decoding and writing can never stall it.
 */
#ifndef TF_UDPRX_H
#define TF_UDPRX_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "rxq.h"

#define UDPRX_MAX_ALLOW 64
#define UDPRX_MAX_RECEIVERS 8

struct udprx_prefix {
	uint8_t addr[16];  /* v4-mapped for IPv4 */
	uint8_t bits;      /* prefix length over the 128-bit form */
};

struct udprx {
	int fd;
	uint64_t datagrams;     /* received */
	uint64_t bytes;
	uint64_t denied;        /* from exporters not on the allow-list */
	uint64_t queue_full;    /* dropped because the decoder fell behind */
	uint64_t kernel_drops;  /* dropped by the kernel (socket buffer full), as of the last
				   udprx_kernel_drops() */
	uint32_t rcvbuf;        /* receive buffer the kernel granted */
	pthread_mutex_t mu;     /* guards the allow-list (replaced on SIGHUP) */
	int nallow;             /* 0: everyone is allowed */
	struct udprx_prefix allow[UDPRX_MAX_ALLOW];
};

/* Replaces the allow-list (n = 0 allows every exporter). Safe while udprx_run runs. */
void udprx_set_allow(struct udprx *rx, const struct udprx_prefix *p, int n);

/* Parses "ADDR" or "ADDR/LEN" (IPv4 or IPv6) into *p. 0 or -EINVAL. */
int udprx_parse_prefix(const char *s, struct udprx_prefix *p);

/* Binds bind_addr (NULL or "" = dual-stack any) on port with a receive buffer of rcvbuf
 * bytes (forced past net.core.rmem_max when privileged); reuseport: with SO_REUSEPORT,
 * one of several receivers on the port. 0, or a negative errno with a message in err. */
int udprx_open(struct udprx *rx, const char *bind_addr, uint16_t port, uint32_t rcvbuf,
	       int reuseport, char *err, size_t errlen);

/* The socket's drop counter now (SO_MEMINFO; read here rather than from a control
 * message on every datagram, which cost the receiver 2% of its time), stored in
 * rx->kernel_drops. The thread that closes the socket. */
uint64_t udprx_kernel_drops(struct udprx *rx);

/* Receives until *stop is set, then takes what the socket still holds (for up to a
 * second): each datagram from an allowed exporter goes into q. Wakes q after each
 * batch. Returns 0, or a negative errno on a socket error. */
int udprx_run(struct udprx *rx, struct rxq *q, const int *stop);

void udprx_close(struct udprx *rx);

#endif
