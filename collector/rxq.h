/* rxq.h: the bounded queue between the collector's receiver and its decoder/writer.
 * One producer, one consumer, a fixed byte ring: datagrams are copied in with their
 * exporter address and receive time. When the ring is full the datagram is counted as
 * dropped (never blocks the receiver, never grows).
 */
#ifndef TF_RXQ_H
#define TF_RXQ_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

struct rxq {
	uint8_t *buf;
	size_t cap;                 /* bytes, multiple of 8 */
	uint64_t head;              /* producer position (atomic) */
	uint64_t tail;              /* consumer position (atomic) */
	uint64_t dropped;           /* datagrams refused because the ring was full */
	uint64_t enqueued;
	uint64_t restart_from;      /* the producer jumped from here ... (atomic) */
	uint64_t restart_to;        /* ... to here, the ring's front: see rxq_push */
	pthread_mutex_t mu;         /* only for sleeping and waking the consumer */
	pthread_cond_t cv;
	int closed;
	int sleeping;               /* the consumer waits on cv: only then is a wake needed */
	struct rxq *waiter;         /* whose mu/cv/sleeping the consumer waits on: this
				       queue, or the first of its group (rxq_group) */
};

/* A datagram as the consumer sees it; data points into the ring until rxq_pop_done. */
struct rxq_item {
	const uint8_t *data;
	uint32_t len;
	uint64_t ts_ms;
	const uint8_t *addr;        /* 16 bytes, IPv4 v4-mapped */
	uint64_t next;              /* internal: tail after this item */
};

/* Allocates a ring of cap bytes. 0 or -ENOMEM. */
int rxq_init(struct rxq *q, size_t cap);
void rxq_fini(struct rxq *q);

/* Producer: copies one datagram in. 0, or -ENOSPC when full (counted as dropped). */
int rxq_push(struct rxq *q, const uint8_t addr[16], uint64_t ts_ms, const void *data,
	     uint32_t len);
/* Producer: wakes the consumer after a batch of pushes, if it sleeps (a busy consumer
 * costs the producer no syscall). */
void rxq_wake(struct rxq *q);
/* Producer: no more data; the consumer drains and then sees end. */
void rxq_close(struct rxq *q);

/* Makes qs[0..n) one group for one consumer (rxq_pop_any): their producers wake it
 * through qs[0]. Call before any producer runs. */
void rxq_group(struct rxq *qs, int n);

/* Consumer of a group: the oldest datagram of one of the queues, taken in turn, waiting
 * up to timeout_ms for any. 1 with *it filled and *which its queue (release it with
 * rxq_pop_done(&qs[*which], it); *which is also where the next call starts looking), 0
 * on timeout, -1 when all are closed and empty. */
int rxq_pop_any(struct rxq *qs, int n, struct rxq_item *it, int *which, int timeout_ms);

/* Consumer: takes the oldest datagram, waiting up to timeout_ms. 1 with *it filled,
 * 0 on timeout, -1 when closed and empty. Release it with rxq_pop_done. */
int rxq_pop(struct rxq *q, struct rxq_item *it, int timeout_ms);
void rxq_pop_done(struct rxq *q, const struct rxq_item *it);

#endif
