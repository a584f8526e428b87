/* storecheck: reads every block of a tapflow store the way a query would and reports
 * what it found, for tests.
 *
 *   storecheck DIR [--bytes]
 * stderr: "files=N closed=N open=N blocks=N records=N bad_blocks=N tail_bytes=N
 *          bad_files=N"; with --bytes, stdout gets every record's byte count, one per
 * line (nfblast --synth numbers its records through that field). Exit 0 if every file
 * opened and no block was damaged, 1 otherwise.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "store.h"

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: storecheck DIR [--bytes]\n");
		return 2;
	}
	int dump = argc > 2 && !strcmp(argv[2], "--bytes");
	struct store_list l;
	int e = store_list_files(argv[1], &l);
	if (e < 0) {
		fprintf(stderr, "storecheck: %s: %s\n", argv[1], store_strerror(e));
		return 1;
	}
	unsigned long long files = 0, closed = 0, blocks = 0, recs = 0, bad = 0, tail = 0,
			   bad_files = 0;
	struct store_cols c;
	store_cols_init(&c);
	for (size_t i = 0; i < l.n; i++) {
		struct store_reader *r = store_reader_open(l.v[i].path);
		if (!r) {
			fprintf(stderr, "storecheck: %s: %s\n", l.v[i].path, store_strerror(-errno));
			bad_files++;
			continue;
		}
		files++;
		struct store_block_info bi;
		int n;
		while ((n = store_reader_next(r, &bi)) == 1) {
			if (store_reader_decode(r, STORE_COLBIT(STORE_COL_BYTES), &c) < 0)
				continue;
			blocks++;
			recs += c.n;
			if (dump)
				for (uint32_t k = 0; k < c.n; k++)
					printf("%llu\n", (unsigned long long)c.bytes[k]);
		}
		const struct store_read_stats *st = store_reader_stats(r);
		if (n < 0)
			bad_files++;
		bad += st->bad_blocks;
		tail += st->tail_bytes;
		closed += st->closed ? 1 : 0;
		store_reader_close(r);
	}
	store_cols_free(&c);
	store_list_free(&l);
	fprintf(stderr, "files=%llu closed=%llu open=%llu blocks=%llu records=%llu bad_blocks=%llu "
		"tail_bytes=%llu bad_files=%llu\n", files, closed, files - closed, blocks, recs,
		bad, tail, bad_files);
	return bad || bad_files ? 1 : 0;
}
