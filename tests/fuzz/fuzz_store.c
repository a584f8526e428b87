/* fuzz_store.c: the store file reader over untrusted bytes. Each input is read as a
 * store file twice: with checksums enforced (what queries do), and with them off so that
 * mutations reach the block and column decoders (Huffman streams, dictionaries, the
 * tuple) instead of stopping at a hash. Every block is decoded with a few column masks
 * (all columns, one that pulls in its partner columns, one tuple member, the summary's
 * four), and with its addresses as dictionary codes, its tuple as its dictionary and its
 * ports as codes, and its counters, times and address codes packed where they are
 * stored plainly (read through the packed views, then unpacked), which must give the
 * values the whole decode gives. Seeds: tests/fuzz/seeds/fuzz_store/,
 * small store files: version 1 (LZ4, zstd,
 * stored; mirrored and dictionary-coded columns; a torn tail), version 2 ("v2-":
 * realistic ones, and "odd" ones whose tuple falls apart into its columns, with
 * dictionary-coded ports and AS numbers and 64-bit counters) and version 3 ("v3-":
 * realistic ones whose payloads carry XXH3, and "ports", a block of 4200 whose dport is
 * frequent values and exceptions, which come as codes, and whose streams of times have
 * sync points; "packed", whose counters and times are plain bit-packed values, FIRST
 * against LAST, and 64-bit byte counts).
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "store.h"

static const uint32_t masks[] = {
	STORE_COLS_ALL,
	STORE_COLBIT(STORE_COL_FIRST) | STORE_COLBIT(STORE_COL_SPORT),
	STORE_COLBIT(STORE_COL_DST) | STORE_COLBIT(STORE_COL_VLAN),
	STORE_COLBIT(STORE_COL_PACKETS) | STORE_COLBIT(STORE_COL_BYTES) |
		STORE_COLBIT(STORE_COL_FIRST) | STORE_COLBIT(STORE_COL_LAST),
};

/* Whether a and b agree on the columns of mask that a codes or tuple view may hold. */
static int same_cols(const struct flow_rec *a, const struct flow_rec *b, uint32_t mask)
{
#define SAME(f, c) ((mask & STORE_COLBIT(c)) && memcmp(&a->f, &b->f, sizeof(a->f)))
	return !(SAME(src, STORE_COL_SRC) || SAME(dst, STORE_COL_DST) ||
		 SAME(in_if, STORE_COL_IN_IF) || SAME(out_if, STORE_COL_OUT_IF) ||
		 SAME(vlan, STORE_COL_VLAN) || SAME(proto, STORE_COL_PROTO) ||
		 SAME(sport, STORE_COL_SPORT) || SAME(dport, STORE_COL_DPORT) ||
		 SAME(tos, STORE_COL_TOS) || SAME(tcp_flags, STORE_COL_TCP_FLAGS) ||
		 SAME(ipver, STORE_COL_IPVER) || SAME(src_mask, STORE_COL_SRC_MASK) ||
		 SAME(dst_mask, STORE_COL_DST_MASK) || SAME(end_reason, STORE_COL_END_REASON));
#undef SAME
}

static void read_all(const uint8_t *data, size_t size, int verify, struct store_cols *c)
{
	struct store_reader *r = store_reader_open_mem(data, size);
	struct store_block_info bi;
	struct store_zone z;
	struct flow_rec rec;
	const uint32_t ports = STORE_COLBIT(STORE_COL_SPORT) | STORE_COLBIT(STORE_COL_DPORT);
	const uint32_t counters = STORE_COLBIT(STORE_COL_PACKETS) | STORE_COLBIT(STORE_COL_BYTES) |
				  STORE_COLBIT(STORE_COL_FIRST) | STORE_COLBIT(STORE_COL_LAST);
	const uint32_t codes = STORE_COLBIT(STORE_COL_SRC) | STORE_COLBIT(STORE_COL_DST) |
			       STORE_TUPLE_MEMBERS | ports | counters | STORE_CODES_PACKED;
	unsigned k = 0;

	if (!r)
		return;
	store_reader_set_verify(r, verify);
	store_reader_file_zone(r, &z);
	while (store_reader_next(r, &bi) > 0) {
		if (store_reader_decode(r, masks[k++ % 4], c) == 0 && c->n)
			store_cols_get(c, c->n - 1, &rec);
		/* addresses as dictionary codes (top N by address) and the tuple as its
		 * dictionary (filters): the same values as decoded whole */
		uint32_t got = 0, n = 0, acodes = 0;
		uint64_t psum[2] = { 0, 0 }, csum[4] = { 0, 0, 0, 0 }, asum[2] = { 0, 0 };
		if (store_reader_decode_codes(r, masks[k % 4] | STORE_COLBIT(STORE_COL_SRC) |
					      STORE_COLBIT(STORE_COL_PROTO) | ports, codes, c) == 0 &&
		    c->n) {
			n = c->n;
			got = c->mask | c->codes | c->tuple | c->pcodes | c->packed;
			acodes = c->codes;
			for (int col = STORE_COL_PACKETS; col <= STORE_COL_LAST; col++) {
				struct store_packed v, l;
				if (!(got & STORE_COLBIT(col)))
					continue;
				store_cols_packed_view(c, col, &v);
				store_cols_packed_view(c, STORE_COL_LAST, &l);
				for (uint32_t i = 0; i < n; i++) {
					uint64_t x = store_packed_get(&v, i);
					if (col == STORE_COL_FIRST && c->lastdiff)
						x = store_packed_get(&l, i) - x;
					csum[col - STORE_COL_PACKETS] += x;
				}
			}
			for (int k = 0; k < 2; k++) {   /* packed codes: unchecked, below 2 n */
				struct store_packed v;
				if (!(c->codes & STORE_COLBIT(k ? STORE_COL_DST : STORE_COL_SRC)))
					continue;
				store_cols_code_view(c, k, &v);
				for (uint32_t i = 0; i < n; i++) {
					uint64_t x = store_packed_get(&v, i);
					if (x >= 2 * (uint64_t)n)
						__builtin_trap();
					if (x < c->nd[k])
						asum[k] += c->dict[k][x][15];
				}
			}
			if (store_cols_unpack(c) < 0)
				got = 0;        /* a code past its dictionary: the whole decode fails */
			else
				store_cols_get(c, n - 1, &rec);
			for (int j = 0; j < 2; j++) {
				const uint16_t *v = j ? c->dport : c->sport;
				if (c->pcodes & (j ? STORE_COLBIT(STORE_COL_DPORT) :
						     STORE_COLBIT(STORE_COL_SPORT)))
					v = store_cols_port_values(c, j);
				for (uint32_t i = 0; i < n; i++)
					psum[j] += v[i];
			}
		}
		if (store_reader_decode(r, STORE_COLS_ALL, c) == 0 && got) {
			struct flow_rec whole;
			if (c->n != n)
				__builtin_trap();
			store_cols_get(c, n - 1, &whole);
			if (!same_cols(&rec, &whole, got))
				__builtin_trap();
			for (int j = 0; j < 2; j++) {
				uint64_t sum = 0;
				for (uint32_t i = 0; i < n; i++)
					sum += j ? c->dport[i] : c->sport[i];
				if (sum != psum[j])
					__builtin_trap();
			}
			for (int k = 0; k < 2; k++) {
				uint64_t sum = 0;
				if (!(acodes & STORE_COLBIT(k ? STORE_COL_DST : STORE_COL_SRC)))
					continue;
				for (uint32_t i = 0; i < n; i++)
					sum += k ? c->dst[i][15] : c->src[i][15];
				if (sum != asum[k])
					__builtin_trap();
			}
			for (int col = STORE_COL_PACKETS; col <= STORE_COL_LAST; col++) {
				const uint64_t *v = store_cols_array(c, col);
				uint64_t sum = 0;
				if (!(got & STORE_COLBIT(col)))
					continue;
				for (uint32_t i = 0; i < n; i++)
					sum += v[i];
				const uint64_t rv[4] = { rec.packets, rec.bytes, rec.first_ms,
							 rec.last_ms };
				if (sum != csum[col - STORE_COL_PACKETS] ||
				    rv[col - STORE_COL_PACKETS] != v[n - 1])
					__builtin_trap();
			}
		}
	}
	store_reader_close(r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct store_cols c;

	if (size > (1u << 20))
		return 0;
	store_cols_init(&c);
	read_all(data, size, 1, &c);
	read_all(data, size, 0, &c);
	store_cols_free(&c);
	return 0;
}
