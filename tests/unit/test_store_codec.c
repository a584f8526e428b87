/* test_store_codec.c: the store's value codings below the block level, where a file
 * round trip cannot promise to reach every case (the writer picks encodings by size):
 * bit packing at every width, canonical Huffman streams (long ones in two halves side by
 * side from their sync point) and BITLEN streams (short ones and long ones, which decode
 * two or six values a step where they can), and streams that end before
 * their values do, and which coding the writer picks for counters and times.
 * store.c is included whole, for its static functions; the library's store.o is then
 * never linked in. */
#include "../../collector/store.c"     /* first: it sets _FILE_OFFSET_BITS */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include "tmpdir.h"

/* past HUF_PAIRS_MIN and BL_FT_MIN: the long streams' decoding paths */
#define NMAX 5000
#define BUFLEN (NMAX * 10 + 4096)

static uint64_t rng = 0x9E3779B97F4A7C15ULL;

static uint64_t next64(void)
{
	uint64_t z = (rng += 0x9E3779B97F4A7C15ULL);
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
	return z ^ (z >> 31);
}

/* Random values of exactly w bits over base (some at the extremes). */
static void fill(uint64_t *v, size_t n, unsigned w, uint64_t base)
{
	uint64_t mask = w >= 64 ? ~0ULL : (1ULL << w) - 1;
	for (size_t i = 0; i < n; i++) {
		uint64_t x = next64() & mask;
		if (i % 7 == 3)
			x = mask;
		else if (i % 11 == 5)
			x = 0;
		v[i] = base + x;
	}
}

/* Every width 0..64, counts around the groups of 8 the common widths are unpacked in,
 * a base that wraps: unpack_bits gives back what pack_bits packed. */
static void test_bits_every_width(void **state)
{
	static const size_t counts[] = { 0, 1, 7, 8, 9, 15, 16, 17, 63, 64, 65, 1000, 1003 };
	static uint64_t v[NMAX], got[NMAX];
	static uint8_t buf[BUFLEN];
	(void)state;

	for (unsigned w = 0; w <= 64; w++) {
		for (size_t c = 0; c < sizeof(counts) / sizeof(counts[0]); c++) {
			size_t n = counts[c];
			uint64_t base = w == 64 ? 0 : next64();
			fill(v, n, w, base);
			memset(buf, 0xee, sizeof(buf));   /* slack after the data: not zeros */
			size_t len = pack_bits(buf, v, n, base, w);
			assert_int_equal(len, packed_len(n, w, 0));
			memset(got, 0x5a, sizeof(got));
			unpack_bits(buf, n, w, base, got);
			for (size_t i = 0; i < n; i++)
				if (got[i] != v[i])
					fail_msg("width %u, %zu values: value %zu is %llx, not %llx", w,
						 n, i, (unsigned long long)got[i],
						 (unsigned long long)v[i]);
			assert_int_equal(got[n], 0x5a5a5a5a5a5a5a5aULL);  /* nothing past n */
		}
	}
}

/* Huffman streams of symbols decode to what was coded; cut short by a byte, they fail. */
static void test_huf_stream(void **state)
{
	/* 1025: 1024 symbols, two of them short (pairs of symbols past 511); 1026: 12 of
	 * 1024 used, 1000.. in 1, 2, .. 10, 11, 11 bits (quads of symbols past 511, and
	 * codes longer than a quad's window) */
	static const unsigned alphabets[] = { 2, 13, 256, 1024, 1025, 1026 };
	static uint64_t v[NMAX], got[NMAX];
	static uint8_t buf[BUFLEN + SLACK];
	static struct hufrd h;
	uint8_t len[HUF_MAXSYM];
	uint16_t code[HUF_MAXSYM];
	(void)state;

	for (size_t a = 0; a < sizeof(alphabets) / sizeof(alphabets[0]); a++) {
		unsigned A = alphabets[a], skew = A == 1025, geo = A == 1026;
		if (geo) {
			A = 1024;
			memset(len, 0, A);
			for (unsigned k = 0; k < 12; k++)
				len[1000 + k] = (uint8_t)(k < 11 ? k + 1 : 11);
		} else if (skew) {
			/* 999 in 1 bit, 1000 in 2, 0 and 1 in 11, the 1020 others in 12 */
			A = 1024;
			memset(len, 12, A);
			len[999] = 1;
			len[1000] = 2;
			len[0] = len[1] = 11;
		} else if (A == 2) {
			len[0] = len[1] = 1;
		} else if (A == 1024) {
			memset(len, 10, A);
		} else if (A == 256) {
			memset(len, 8, A);
		} else {
			/* 1, 2, .. 12, 12 bits: complete, and as skewed as codes go */
			for (unsigned i = 0; i < A; i++)
				len[i] = (uint8_t)(i < 12 ? i + 1 : 12);
		}
		for (size_t n = 1; n <= NMAX; n += n < 20 ? 1 : 361) {
			for (size_t i = 0; i < n; i++) {
				uint64_t x = next64();
				v[i] = 1000 + (geo ? 1000 + (unsigned)__builtin_ctzll(x | 1ULL << 11) :
					       !skew ? x % A :
					       x % 4 < 2 ? 999 : x % 4 < 3 ? 1000 : x % A);
			}
			memset(buf, 0xff, sizeof(buf));
			size_t sz = put_huf(buf, v, (uint32_t)n, 1000, len, A, code);
			struct cur c = cur_make(buf, sz);
			assert_int_equal(huf_get_n(&c, HUF_MAXSYM, (uint32_t)n, BLK_F_HSYNC, &h), 0);
			assert_int_equal(cur_left(&c), 0);
			assert_int_equal(h.half, n >= HUF_SYNC_MIN ? huf_half((uint32_t)n) : 0);
			assert_int_equal(huf_decode(&h, (uint32_t)n, 1000, got), 0);
			assert_memory_equal(got, v, n * 8);
			if (h.half) {
				/* a sync point off by a bit: the first half does not end there */
				h.sync++;
				assert_int_equal(huf_decode(&h, (uint32_t)n, 1000, got), -EPROTO);
				h.sync--;
				/* read as one chain, the same symbols */
				h.half = 0;
				memset(got, 0, n * 8);
				assert_int_equal(huf_decode(&h, (uint32_t)n, 1000, got), 0);
				assert_memory_equal(got, v, n * 8);
				h.half = huf_half((uint32_t)n);
			}
			/* the same stream, its last byte gone (it held code bits) */
			h.nbits -= 8;
			assert_int_equal(huf_decode(&h, (uint32_t)n, 1000, got), -EPROTO);
		}
	}
}

/* A skewed bit length, 1 in half the values, 2 in a quarter, .. 12: about four bits a
 * value with mode 3's code, so a long stream takes the pair table. */
static unsigned bl_skewed(uint64_t r)
{
	unsigned k = (unsigned)__builtin_ctzll(r | 1ULL << 12) + 1;
	return k > 12 ? 12 : k;
}

/* A bit length like a busy exporter's time deltas: 0 three times in four, then 2,
 * then the rest of 1..12. */
static unsigned bl_busy(uint64_t r)
{
	if (r % 4)
		return 0;
	r /= 4;
	return r % 3 ? 2 : 1 + (unsigned)(r / 3 % 12);
}

/* BITLEN streams, one and four side by side: every bit length 0..64, long runs of
 * wide values (the decoder's unchecked runs end by the bits left), and streams cut
 * short, alone or next to whole ones, fail. */
static void test_bitlen_streams(void **state)
{
	static uint64_t v[BL_STREAMS][NMAX], got[BL_STREAMS][NMAX];
	static uint8_t buf[BL_STREAMS][BUFLEN + SLACK];
	static struct blstream bs[BL_STREAMS];
	static struct hufrd h;
	static struct bltab ft;
	uint8_t len[BITLEN_SYMS];
	uint16_t code[BITLEN_SYMS];
	(void)state;

	for (unsigned mode = 0; mode < 5; mode++) {
		memset(len, 0, sizeof(len));
		if (mode == 4) {
			/* time deltas of a busy exporter: mostly 0, some 2 or 3, a few wide
			 * (bit lengths 0, 2, then 1 and 3..12, one bit for 0): a long stream
			 * takes the six-value table, and some values miss it */
			len[0] = 1;
			len[2] = 2;
			for (unsigned k = 3; k <= 12; k++)
				len[k] = (uint8_t)(k);
			len[1] = 12;
		} else if (mode < 3) {
			/* 63 symbols of 6 bits and 2 of 7: complete */
			memset(len, 6, sizeof(len));
			len[63] = len[64] = 7;
		} else {
			/* bit lengths 0..12 in 1, 2, .. 12, 12 bits (complete): skewed like time
			 * deltas, most steps of a long stream give two values */
			for (unsigned k = 0; k <= 12; k++)
				len[k] = (uint8_t)(k < 12 ? k + 1 : 12);
		}
		for (unsigned K = 1; K <= BL_STREAMS; K++) {
			size_t n = mode == 0 ? 65 * 3 : NMAX;
			for (unsigned j = 0; j < K; j++) {
				uint64_t base = next64() >> (mode == 2 ? 0 : 8);
				for (size_t i = 0; i < n; i++) {
					unsigned k = mode == 0 ? (unsigned)(i % 65) :
						     mode == 1 ? 64 - (unsigned)(i % 3) :
						     mode == 2 ? (unsigned)(next64() % 65) :
						     mode == 3 ? bl_skewed(next64()) :
						     bl_busy(next64());
					uint64_t x = k ? (1ULL << (k - 1)) |
							 (next64() & ((1ULL << (k - 1)) - 1)) : 0;
					v[j][i] = base + x;
				}
				memset(buf[j], 0xa5, sizeof(buf[j]));
				size_t sz = put_bitlen(buf[j], v[j], (uint32_t)n, base, len, code);
				struct cur c = cur_make(buf[j], sz);
				assert_int_equal(huf_get_n(&c, BITLEN_SYMS, (uint32_t)n, BLK_F_HSYNC, &h), 0);
				assert_int_equal(cur_left(&c), 0);
				bl_stream(&bs[j], &h, base, got[j]);
			}
			assert_int_equal(bitlen_decode_n(bs, K, (uint32_t)n, &ft), 0);
			for (unsigned j = 0; j < K; j++)
				assert_memory_equal(got[j], v[j], n * 8);
			/* the last stream cut short by a byte */
			bs[K - 1].nbits -= 8;
			assert_int_equal(bitlen_decode_n(bs, K, (uint32_t)n, &ft), -EPROTO);
			/* or far short: what is left of it cannot hold the values */
			bs[K - 1].nbits /= 3;
			assert_int_equal(bitlen_decode_n(bs, K, (uint32_t)n, &ft), -EPROTO);
		}
	}
}

/* A DELTA stream of few bits a value (a busy exporter's first-seen times) decodes with
 * the transform undone as it goes, in one chain or in two halves from its sync point,
 * as undo_delta() undoes it after a plain decode: the first value v0 whatever its slot
 * codes, differences up and down, some too wide for the step table; cut short, or with
 * a wrong sync point, it fails. */
static void test_bitlen_delta(void **state)
{
	static uint64_t zz[NMAX], want[NMAX], got[NMAX];
	static uint8_t buf[BUFLEN + SLACK];
	static struct blstream bs;
	static struct hufrd h;
	static struct bltab tb;
	uint8_t len[BITLEN_SYMS];
	uint16_t code[BITLEN_SYMS];
	const uint64_t v0 = 1767225600000ULL;
	(void)state;

	memset(len, 0, sizeof(len));
	len[0] = 1;
	len[2] = 2;
	for (unsigned k = 3; k <= 12; k++)
		len[k] = (uint8_t)k;
	len[1] = 12;
	want[0] = v0;
	zz[0] = 5;                              /* ignored */
	for (size_t i = 1; i < NMAX; i++) {
		uint64_t r = next64();
		/* mostly 0; then +1 or -2 (zigzag 2, 3: two bits); one in 16 up to 1500 off */
		int64_t d = r % 16 == 0 ? (int64_t)((r >> 8) % 3000) - 1500 :
			    r % 4 == 0 ? (r >> 8 & 1 ? 1 : -2) : 0;
		zz[i] = zigzag((uint64_t)d);
		want[i] = want[i - 1] + (uint64_t)d;
	}
	/* plain then undo_delta; as it goes, halves side by side; as it goes, one chain */
	for (int pass = 0; pass < 3; pass++) {
		memset(buf, 0xa5, sizeof(buf));
		size_t sz = put_bitlen(buf, zz, NMAX, 0, len, code);
		struct cur c = cur_make(buf, sz);
		assert_int_equal(huf_get_n(&c, BITLEN_SYMS, NMAX, BLK_F_HSYNC, &h), 0);
		assert_int_equal(h.half, huf_half(NMAX));
		bl_stream(&bs, &h, 0, got);
		bs.delta = pass > 0;
		bs.v0 = v0;
		if (pass == 2)
			bs.half = 0;
		memset(got, 0, sizeof(got));
		assert_int_equal(bitlen_decode_n(&bs, 1, NMAX, &tb), 0);
		assert_int_equal(bs.delta_done, pass > 0);
		if (!pass)
			undo_delta(got, NMAX, v0);
		assert_memory_equal(got, want, sizeof(want));
		if (pass == 1) {
			/* a sync point off by a bit: the first half does not end there */
			bs.sync++;
			assert_int_equal(bitlen_decode_n(&bs, 1, NMAX, &tb), -EPROTO);
			bs.sync--;
		}
		bs.nbits -= 8;
		assert_int_equal(bitlen_decode_n(&bs, 1, NMAX, &tb), -EPROTO);
		bs.nbits = 0;
		assert_int_equal(bitlen_decode_n(&bs, 1, NMAX, &tb), -EPROTO);
	}
}

/* Addresses out of byte planes: every mix of constant and varying planes (IPv4-mapped,
 * one IPv6 prefix, all different, all the same, one address) comes out as stored. */
static void test_addr_planes(void **state)
{
	static uint8_t in[NMAX][16], got[NMAX][16], planes[16 * NMAX];
	static const size_t counts[] = { 1, 2, 3, 17, 1000 };
	(void)state;

	for (unsigned mode = 0; mode < 5; mode++) {
		for (size_t c = 0; c < sizeof(counts) / sizeof(counts[0]); c++) {
			size_t n = counts[c];
			for (size_t i = 0; i < n; i++) {
				for (unsigned k = 0; k < 16; k++)
					in[i][k] = (uint8_t)next64();
				if (mode == 0) {                /* IPv4-mapped */
					memset(in[i], 0, 10);
					in[i][10] = in[i][11] = 0xff;
				} else if (mode == 1) {         /* one /64 */
					memcpy(in[i], "\x20\x01\x0d\xb8\0\x01\0\0", 8);
				} else if (mode == 3) {         /* all the same */
					memcpy(in[i], in[0], 16);
				} else if (mode == 4 && i % 2) { /* v4 and v6 mixed */
					memset(in[i], 0, 10);
					in[i][10] = in[i][11] = 0xff;
				}
			}
			for (unsigned k = 0; k < 16; k++)
				for (size_t i = 0; i < n; i++)
					planes[k * n + i] = in[i][k];
			memset(got, 0x5a, sizeof(got));
			planes_to_addrs(got, planes, (uint32_t)n);
			assert_memory_equal(got, in, n * 16);
			assert_int_equal(got[n][0], 0x5a);
		}
	}
}

/* Counters and times: FOR where values spread evenly (it decodes far faster and is
 * hardly bigger), BITLEN where they are skewed; either reads back exactly. One block
 * each of two kinds, written and read through the store. */
static void test_counter_time_coding(void **state)
{
	enum { N = 4000 };
	static struct flow_rec in[2 * N];
	char dir[TEST_PATH_MAX];
	struct store_cfg cfg;
	struct store_list l;
	struct store_cols c;
	struct store_block_info bi;
	(void)state;

	assert_non_null(test_mkdtemp(dir, sizeof(dir), "test_store_codec"));
	for (size_t i = 0; i < 2 * N; i++) {
		struct flow_rec *r = &in[i];
		uint64_t h = next64();
		const uint8_t a[4] = { 10, 0, 0, (uint8_t)h };
		flowrec_addr4(r->src, a);
		flowrec_addr4(r->dst, a);
		r->ipver = 4;
		r->proto = 6;
		if (i < N) {    /* evenly spread: packets 1..64, durations 0..30 s */
			r->packets = 1 + (h >> 8) % 64;
			r->bytes = 40ULL << (h >> 16) % 21;     /* skewed in both */
			r->first_ms = 1767225600000ULL + i * 3;
			r->last_ms = r->first_ms + (h >> 32) % 30000;
		} else {        /* skewed: mostly one packet, short */
			r->packets = (h >> 8) % 8 ? 1 : 1 + (h >> 12) % 100000;
			r->bytes = 40ULL << (h >> 16) % 21;
			r->first_ms = 1767225600000ULL + i * 3;
			r->last_ms = r->first_ms + ((h >> 32) % 8 ? 0 : (h >> 36) % 3600000);
		}
	}
	store_cfg_default(&cfg, dir);
	cfg.nosync = 1;
	cfg.block_recs = N;
	struct store_writer *w = store_writer_open(&cfg, 1767225600000ULL);
	assert_non_null(w);
	for (size_t i = 0; i < 2 * N; i++)
		assert_int_equal(store_writer_add(w, &in[i]), 0);
	assert_int_equal(store_writer_close(w), 0);

	assert_int_equal(store_list_files(dir, &l), 0);
	assert_int_equal(l.n, 1);
	struct store_reader *r = store_reader_open(l.v[0].path);
	assert_non_null(r);
	store_cols_init(&c);
	for (int b = 0; b < 2; b++) {
		const uint32_t ctr = STORE_COLBIT(STORE_COL_PACKETS) | STORE_COLBIT(STORE_COL_BYTES) |
				     STORE_COLBIT(STORE_COL_FIRST) | STORE_COLBIT(STORE_COL_LAST);
		assert_int_equal(store_reader_next(r, &bi), 1);
		assert_int_equal(bi.nrec, N);
		assert_int_equal(store_reader_decode(r, ctr, &c), 0);
		assert_int_equal(r->b.col[STORE_COL_PACKETS].enc, b ? ENC_BITLEN : ENC_FOR);
		assert_int_equal(r->b.col[STORE_COL_BYTES].enc, ENC_BITLEN);
		if (!b) /* as last - first, 15 bits: no coding does much better */
			assert_int_equal(r->b.col[STORE_COL_FIRST].enc, ENC_FOR);
		else
			assert_int_equal(r->b.col[STORE_COL_LAST].enc, ENC_BITLEN);
		for (uint32_t i = 0; i < N; i++) {
			const struct flow_rec *e = &in[b * N + i];
			assert_int_equal(c.packets[i], e->packets);
			assert_int_equal(c.bytes[i], e->bytes);
			assert_int_equal(c.first_ms[i], e->first_ms);
			assert_int_equal(c.last_ms[i], e->last_ms);
		}
		/* FIRST alone (LAST comes along when FIRST is coded against it) */
		assert_int_equal(store_reader_decode(r, STORE_COLBIT(STORE_COL_FIRST), &c), 0);
		for (uint32_t i = 0; i < N; i++)
			assert_int_equal(c.first_ms[i], in[b * N + i].first_ms);
	}
	store_cols_free(&c);
	store_reader_close(r);
	assert_int_equal(unlink(l.v[0].path), 0);
	store_list_free(&l);
	char cmd[3 * TEST_PATH_MAX];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
}

/* Ports, a few frequent and the rest spread: HPDICT (Huffman codes for the frequent
 * values, one code for "the next exception"), read back exactly, in a block long enough
 * for its codes' pair table. */
static void test_port_coding(void **state)
{
	enum { N = 6000 };
	static struct flow_rec in[N];
	char dir[TEST_PATH_MAX];
	struct store_cfg cfg;
	struct store_list l;
	struct store_cols c;
	struct store_block_info bi;
	(void)state;

	assert_non_null(test_mkdtemp(dir, sizeof(dir), "test_store_codec"));
	for (size_t i = 0; i < N; i++) {
		struct flow_rec *r = &in[i];
		uint64_t h = next64();
		const uint8_t a[4] = { 10, 0, (uint8_t)(h >> 40), (uint8_t)h };
		flowrec_addr4(r->src, a);
		flowrec_addr4(r->dst, a);
		r->ipver = 4;
		r->proto = 6;
		r->packets = 1;
		r->bytes = 40;
		r->first_ms = r->last_ms = 1767225600000ULL + i;
		r->sport = (uint16_t)(1024 + (h >> 8) % 60000);
		unsigned d = (unsigned)(h >> 24) % 20;
		r->dport = d < 6 ? 443 : d < 10 ? 53 : d < 13 ? 80 : (uint16_t)(h >> 32);
	}
	store_cfg_default(&cfg, dir);
	cfg.nosync = 1;
	cfg.block_recs = N;
	struct store_writer *w = store_writer_open(&cfg, 1767225600000ULL);
	assert_non_null(w);
	for (size_t i = 0; i < N; i++)
		assert_int_equal(store_writer_add(w, &in[i]), 0);
	assert_int_equal(store_writer_close(w), 0);

	assert_int_equal(store_list_files(dir, &l), 0);
	assert_int_equal(l.n, 1);
	struct store_reader *r = store_reader_open(l.v[0].path);
	assert_non_null(r);
	store_cols_init(&c);
	assert_int_equal(store_reader_next(r, &bi), 1);
	assert_int_equal(store_reader_decode(r, STORE_COLBIT(STORE_COL_DPORT), &c), 0);
	assert_int_equal(r->b.col[STORE_COL_DPORT].enc, ENC_HPDICT);
	for (uint32_t i = 0; i < N; i++)
		if (c.dport[i] != in[i].dport)
			fail_msg("record %u: dport %u, not %u", i, c.dport[i], in[i].dport);
	store_cols_free(&c);
	store_reader_close(r);
	assert_int_equal(unlink(l.v[0].path), 0);
	store_list_free(&l);
	char cmd[3 * TEST_PATH_MAX];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bits_every_width),
		cmocka_unit_test(test_huf_stream),
		cmocka_unit_test(test_bitlen_streams),
		cmocka_unit_test(test_bitlen_delta),
		cmocka_unit_test(test_addr_planes),
		cmocka_unit_test(test_counter_time_coding),
		cmocka_unit_test(test_port_coding),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
