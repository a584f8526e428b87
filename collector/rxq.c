/* rxq.c: see rxq.h. Positions only grow; the ring index is position % cap. An entry
 * never wraps: when it does not fit before the end, a skip marker fills the rest. When
 * the ring is empty the producer jumps back to its front (restart_from/to). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "rxq.h"

#define RXQ_HDR 32u
#define RXQ_SKIP 0xffffffffu

struct rxq_hdr {
	uint32_t len;
	uint32_t pad;
	uint64_t ts_ms;
	uint8_t addr[16];
};

static size_t round8(size_t n)
{
	return (n + 7) & ~(size_t)7;
}

int rxq_init(struct rxq *q, size_t cap)
{
	memset(q, 0, sizeof(*q));
	q->cap = round8(cap < 1u << 16 ? 1u << 16 : cap);
	q->restart_from = UINT64_MAX;
	/* Committed now (MAP_POPULATE): the ring is all resident after its first lap
	 * anyway, and a page first touched by the receiver costs a fault and a zeroing in
	 * the receive path (9% of the collector's CPU over its first lap at 20k
	 * datagrams/s), when a burst can least afford it. */
	void *p = mmap(NULL, q->cap, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	if (p == MAP_FAILED)
		return -ENOMEM;
	q->buf = p;
	pthread_mutex_init(&q->mu, NULL);
	pthread_cond_init(&q->cv, NULL);
	q->waiter = q;
	return 0;
}

void rxq_group(struct rxq *qs, int n)
{
	for (int i = 0; i < n; i++)
		qs[i].waiter = &qs[0];
}

void rxq_fini(struct rxq *q)
{
	if (q->buf)
		munmap(q->buf, q->cap);
	q->buf = NULL;
	pthread_mutex_destroy(&q->mu);
	pthread_cond_destroy(&q->cv);
}

int rxq_push(struct rxq *q, const uint8_t addr[16], uint64_t ts_ms, const void *data,
	     uint32_t len)
{
	uint64_t head = q->head; /* only we write it */
	uint64_t tail = __atomic_load_n(&q->tail, __ATOMIC_ACQUIRE);
	size_t need = RXQ_HDR + round8(len);
	size_t pos = (size_t)(head % q->cap);
	size_t skip = q->cap - pos < need ? q->cap - pos : 0;
	if (need > q->cap / 2) {
		q->dropped++;
		return -ENOSPC;
	}
	/* The consumer has taken everything: start again at the front, whose lines are
	 * still in cache. Going round the whole ring instead writes every datagram into
	 * memory not touched for a lap (DRAM, TLB misses) at any rate the decoder keeps
	 * up with: a fifth of the collector's CPU at 20k datagrams/s. The jump is told
	 * in restart_from/to, not by a marker in the ring, so the bytes after the old
	 * position are free at once. Only one jump is ever pending: the next needs the
	 * consumer caught up again, past this one. */
	if (head == tail && pos && !skip) {
		__atomic_store_n(&q->restart_from, head, __ATOMIC_RELAXED);
		head += q->cap - pos;
		__atomic_store_n(&q->restart_to, head, __ATOMIC_RELAXED);
		tail = head;
		pos = 0;
	} else if (tail == __atomic_load_n(&q->restart_from, __ATOMIC_RELAXED)) {
		tail = q->restart_to; /* the consumer has yet to see the jump */
	}
	if (head + skip + need - tail > q->cap) {
		q->dropped++;
		return -ENOSPC;
	}
	if (skip) {
		uint32_t m = RXQ_SKIP;
		memcpy(q->buf + pos, &m, sizeof(m));
		head += skip;
		pos = 0;
	}
	struct rxq_hdr h = { len, 0, ts_ms, { 0 } };
	memcpy(h.addr, addr, 16);
	memcpy(q->buf + pos, &h, sizeof(h));
	memcpy(q->buf + pos + RXQ_HDR, data, len);
	q->enqueued++;
	__atomic_store_n(&q->head, head + need, __ATOMIC_RELEASE);
	return 0;
}

void rxq_wake(struct rxq *q)
{
	struct rxq *w = q->waiter;
	/* Pairs with the consumer's fence in rxq_pop_any: either it sees our head, or we
	 * see it sleeping. */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	if (!__atomic_load_n(&w->sleeping, __ATOMIC_RELAXED))
		return;
	pthread_mutex_lock(&w->mu);
	pthread_cond_signal(&w->cv);
	pthread_mutex_unlock(&w->mu);
}

void rxq_close(struct rxq *q)
{
	struct rxq *w = q->waiter;
	pthread_mutex_lock(&w->mu);
	__atomic_store_n(&q->closed, 1, __ATOMIC_RELEASE);
	pthread_cond_broadcast(&w->cv);
	pthread_mutex_unlock(&w->mu);
}

/* Takes the next entry if there is one. */
static int try_pop(struct rxq *q, struct rxq_item *it)
{
	uint64_t tail = q->tail;
	for (;;) {
		uint64_t head = __atomic_load_n(&q->head, __ATOMIC_ACQUIRE);
		if (tail == head)
			return 0;
		if (tail == __atomic_load_n(&q->restart_from, __ATOMIC_RELAXED)) {
			tail = __atomic_load_n(&q->restart_to, __ATOMIC_RELAXED);
			__atomic_store_n(&q->tail, tail, __ATOMIC_RELEASE);
			continue;
		}
		size_t pos = (size_t)(tail % q->cap);
		struct rxq_hdr h;
		memcpy(&h.len, q->buf + pos, sizeof(h.len));
		if (h.len == RXQ_SKIP) {
			tail += q->cap - pos;
			__atomic_store_n(&q->tail, tail, __ATOMIC_RELEASE);
			continue;
		}
		memcpy(&h, q->buf + pos, sizeof(h));
		it->data = q->buf + pos + RXQ_HDR;
		it->len = h.len;
		it->ts_ms = h.ts_ms;
		it->addr = q->buf + pos + offsetof(struct rxq_hdr, addr);
		it->next = tail + RXQ_HDR + round8(h.len);
		return 1;
	}
}

/* Takes from the queues in turn, starting after the one served last. 1 with *which
 * set, 0 if all are empty, -1 if all are also closed. */
static int try_pop_any(struct rxq *qs, int n, struct rxq_item *it, int *which)
{
	int closed = 0, start = *which;
	for (int k = 1; k <= n; k++) {
		int i = (start + k) % n;
		if (try_pop(&qs[i], it)) {
			*which = i;
			return 1;
		}
		closed += __atomic_load_n(&qs[i].closed, __ATOMIC_ACQUIRE);
	}
	/* closed, then empty: a last look, as a push may have come before the close */
	if (closed == n) {
		for (int i = 0; i < n; i++)
			if (try_pop(&qs[i], it)) {
				*which = i;
				return 1;
			}
		return -1;
	}
	return 0;
}

int rxq_pop_any(struct rxq *qs, int n, struct rxq_item *it, int *which, int timeout_ms)
{
	struct rxq *w = &qs[0];
	int r = try_pop_any(qs, n, it, which);
	if (r)
		return r;
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += timeout_ms / 1000;
	ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&w->mu);
	for (;;) {
		__atomic_store_n(&w->sleeping, 1, __ATOMIC_RELAXED);
		__atomic_thread_fence(__ATOMIC_SEQ_CST);
		if ((r = try_pop_any(qs, n, it, which)))
			break;
		int e = pthread_cond_timedwait(&w->cv, &w->mu, &ts);
		if (e == ETIMEDOUT) {
			r = try_pop_any(qs, n, it, which);
			break;
		}
	}
	__atomic_store_n(&w->sleeping, 0, __ATOMIC_RELAXED);
	pthread_mutex_unlock(&w->mu);
	return r < 0 ? -1 : r;
}

int rxq_pop(struct rxq *q, struct rxq_item *it, int timeout_ms)
{
	int which = 0;
	return rxq_pop_any(q, 1, it, &which, timeout_ms);
}

void rxq_pop_done(struct rxq *q, const struct rxq_item *it)
{
	__atomic_store_n(&q->tail, it->next, __ATOMIC_RELEASE);
}
