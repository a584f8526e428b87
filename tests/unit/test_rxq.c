/* test_rxq.c: the receiver-to-decoder queue keeps order, wraps, refuses when full
 * (counting it), starts again at its front when drained, and hands everything over
 * across threads. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <string.h>

#include "rxq.h"

static const uint8_t addr[16] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 0, 2, 1 };

static void test_order_and_wrap(void **st)
{
	(void)st;
	struct rxq q;
	assert_int_equal(rxq_init(&q, 1 << 16), 0);
	uint8_t buf[1500];
	uint32_t next_out = 0;
	/* many rounds through a small ring, lengths varied so entries straddle the end */
	for (uint32_t i = 0; i < 5000; i++) {
		uint32_t len = 1 + (i * 37) % 1400;
		memset(buf, (int)(i & 0xff), len);
		memcpy(buf, &i, 4 < len ? 4 : len);
		assert_int_equal(rxq_push(&q, addr, i, buf, len), 0);
		if (i % 3 == 2) { /* consumer lags, then catches up */
			struct rxq_item it;
			while (rxq_pop(&q, &it, 0) == 1) {
				uint32_t exp_len = 1 + (next_out * 37) % 1400;
				assert_int_equal(it.len, exp_len);
				assert_int_equal(it.ts_ms, next_out);
				assert_memory_equal(it.addr, addr, 16);
				assert_int_equal(it.data[it.len - 1],
						 it.len > 4 ? (next_out & 0xff) : it.data[it.len - 1]);
				rxq_pop_done(&q, &it);
				next_out++;
			}
		}
	}
	assert_int_equal(q.dropped, 0);
	rxq_fini(&q);
}

static void test_full_is_counted(void **st)
{
	(void)st;
	struct rxq q;
	assert_int_equal(rxq_init(&q, 1 << 16), 0);
	uint8_t buf[1000] = { 0 };
	int ok = 0, full = 0;
	for (int i = 0; i < 200; i++) {
		if (rxq_push(&q, addr, 0, buf, sizeof(buf)) == 0)
			ok++;
		else
			full++;
	}
	assert_true(ok > 50 && ok < 70); /* 64 KiB of 1032-byte entries */
	assert_int_equal(q.dropped, (uint64_t)full);
	struct rxq_item it;
	int got = 0;
	while (rxq_pop(&q, &it, 0) == 1) {
		rxq_pop_done(&q, &it);
		got++;
	}
	assert_int_equal(got, ok);
	/* room again after draining */
	assert_int_equal(rxq_push(&q, addr, 0, buf, sizeof(buf)), 0);
	rxq_fini(&q);
}

/* Once the consumer has caught up, the next datagram goes to the ring's front (kept in
 * cache), and the ring still holds as much as ever before the consumer sees the jump. */
static void test_restart_at_front(void **st)
{
	(void)st;
	struct rxq q;
	struct rxq_item it;
	assert_int_equal(rxq_init(&q, 1 << 16), 0);
	uint8_t buf[1000] = { 0 };
	for (uint32_t round = 0; round < 3; round++) {
		for (int i = 0; i < 7; i++)
			assert_int_equal(rxq_push(&q, addr, i, buf, sizeof(buf)), 0);
		for (int i = 0; i < 7; i++) {
			assert_int_equal(rxq_pop(&q, &it, 0), 1);
			assert_int_equal(it.ts_ms, i);
			rxq_pop_done(&q, &it);
		}
		assert_int_equal(rxq_pop(&q, &it, 0), 0);
		/* empty, 7 entries in: the next one starts at the front */
		int ok = 0;
		for (uint32_t i = 0; i < 200; i++) {
			memcpy(buf, &i, 4);
			if (rxq_push(&q, addr, i, buf, sizeof(buf)) == 0)
				ok++;
		}
		assert_int_equal(ok, (1 << 16) / (32 + 1000)); /* the whole ring, not its rest */
		for (int i = 0; i < ok; i++) {
			assert_int_equal(rxq_pop(&q, &it, 0), 1);
			if (i == 0)
				assert_ptr_equal(it.data, q.buf + 32);
			uint32_t v;
			memcpy(&v, it.data, 4);
			assert_int_equal(v, i);
			rxq_pop_done(&q, &it);
		}
		assert_int_equal(rxq_pop(&q, &it, 0), 0);
		q.dropped = 0;
	}
	rxq_fini(&q);
}

struct prod {
	struct rxq *q;
	uint32_t n;
};

static void *producer(void *arg)
{
	struct prod *p = arg;
	uint8_t buf[512];
	for (uint32_t i = 0; i < p->n;) {
		memcpy(buf, &i, 4);
		if (rxq_push(p->q, addr, i, buf, 4 + i % 500) == 0)
			i++;
		else
			p->q->dropped--; /* the test retries; not a loss */
		if (i % 64 == 0)
			rxq_wake(p->q);
	}
	rxq_close(p->q);
	return NULL;
}

static void test_threads(void **st)
{
	(void)st;
	struct rxq q;
	assert_int_equal(rxq_init(&q, 1 << 17), 0);
	struct prod p = { &q, 200000 };
	pthread_t t;
	pthread_create(&t, NULL, producer, &p);
	uint32_t expect = 0;
	struct rxq_item it;
	int r;
	while ((r = rxq_pop(&q, &it, 1000)) != -1) {
		if (r == 0)
			continue;
		uint32_t v;
		memcpy(&v, it.data, 4);
		assert_int_equal(v, expect);
		assert_int_equal(it.len, 4 + expect % 500);
		rxq_pop_done(&q, &it);
		expect++;
	}
	pthread_join(t, NULL);
	assert_int_equal(expect, p.n);
	rxq_fini(&q);
}

/* Three producers into a group of three queues, one consumer: every datagram arrives,
 * each producer's in its own order, and the consumer ends only when all have closed. */
static void test_group(void **st)
{
	(void)st;
	struct rxq q[3];
	struct prod p[3];
	pthread_t t[3];
	uint32_t expect[3] = { 0 }, n[3] = { 50000, 120000, 7 };
	for (int i = 0; i < 3; i++) {
		assert_int_equal(rxq_init(&q[i], 1 << 16), 0);
		p[i].q = &q[i];
		p[i].n = n[i];
	}
	rxq_group(q, 3);
	for (int i = 0; i < 3; i++)
		pthread_create(&t[i], NULL, producer, &p[i]);
	struct rxq_item it;
	int r, which = 0;
	while ((r = rxq_pop_any(q, 3, &it, &which, 1000)) != -1) {
		if (r == 0)
			continue;
		assert_true(which >= 0 && which < 3);
		uint32_t v;
		memcpy(&v, it.data, 4);
		assert_int_equal(v, expect[which]);
		rxq_pop_done(&q[which], &it);
		expect[which]++;
	}
	for (int i = 0; i < 3; i++) {
		pthread_join(t[i], NULL);
		assert_int_equal(expect[i], n[i]);
		rxq_fini(&q[i]);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_order_and_wrap),
		cmocka_unit_test(test_full_is_counted),
		cmocka_unit_test(test_restart_at_front),
		cmocka_unit_test(test_threads),
		cmocka_unit_test(test_group),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
