/* fuzz_store.c: the store file reader over untrusted bytes. Each input is read as a
 * store file twice: with checksums enforced (what queries do), and with them off so that
 * mutations reach the block and column decoders (Huffman streams, dictionaries, the
 * tuple) instead of stopping at a hash. Every block is decoded with a few column masks
 * (all columns, one that pulls in its partner columns, one tuple member, the summary's
 * four), and with its addresses as dictionary codes. Seeds: tests/fuzz/seeds/fuzz_store/,
 * small store files: version 1 (LZ4, zstd,
 * stored; mirrored and dictionary-coded columns; a torn tail) and version 2 ("v2-":
 * realistic ones, and "odd" ones whose tuple falls apart into its columns, with
 * dictionary-coded ports and AS numbers and 64-bit counters).
 */
#include <stddef.h>
#include <stdint.h>

#include "store.h"

static const uint32_t masks[] = {
	STORE_COLS_ALL,
	STORE_COLBIT(STORE_COL_FIRST) | STORE_COLBIT(STORE_COL_SPORT),
	STORE_COLBIT(STORE_COL_DST) | STORE_COLBIT(STORE_COL_VLAN),
	STORE_COLBIT(STORE_COL_PACKETS) | STORE_COLBIT(STORE_COL_BYTES) |
		STORE_COLBIT(STORE_COL_FIRST) | STORE_COLBIT(STORE_COL_LAST),
};

static void read_all(const uint8_t *data, size_t size, int verify, struct store_cols *c)
{
	struct store_reader *r = store_reader_open_mem(data, size);
	struct store_block_info bi;
	struct store_zone z;
	struct flow_rec rec;
	const uint32_t codes = STORE_COLBIT(STORE_COL_SRC) | STORE_COLBIT(STORE_COL_DST);
	unsigned k = 0;

	if (!r)
		return;
	store_reader_set_verify(r, verify);
	store_reader_file_zone(r, &z);
	while (store_reader_next(r, &bi) > 0) {
		if (store_reader_decode(r, masks[k++ % 4], c) == 0 && c->n)
			store_cols_get(c, c->n - 1, &rec);
		/* addresses as dictionary codes, as top N by address asks for them */
		if (store_reader_decode_codes(r, masks[k % 4] | STORE_COLBIT(STORE_COL_SRC), codes,
					      c) == 0 && c->n)
			store_cols_get(c, c->n - 1, &rec);
		store_reader_decode(r, STORE_COLS_ALL, c);
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
