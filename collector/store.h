/* store.h: the collector's flow store. Owns the on-disk format, the writer (column
 * encoding, compression, rotation, crash recovery), the reader (files in time order,
 * blocks, zone maps, column decoding), retention, and a scan/summary over a store.
 *
 * Layout under DIR, files named by the UTC start of their receive interval (as nfcapd):
 *
 *   DIR/YYYY/MM/DD/tf-YYYYMMDDhhmm.tfs
 *
 * File format, version 3. Every integer is little-endian, whatever the host; nothing is a
 * struct dump. Hashes are XXH32 (seed 0, store_hash32()), but for data block payloads in
 * version 3, which the file header's phash names: XXH32 or XXH3 (the low 32 bits of
 * XXH3_64bits, seed 0: three times as fast on 64-bit and NEON hosts, where a query spent
 * a tenth of its time on XXH32). Version 2 only added encodings and internal columns to
 * version 1; version 3 only added phash and the blocks' HSYNC flag. Readers read all
 * three, and a writer that continues an older file (crash recovery in the same
 * interval) rewrites its header as version 3 with phash XXH32, which its blocks have
 * (its blocks say by their flags whether their streams have sync points).
 *
 *   +----------------------+ 0
 *   | file header (64 B)   |
 *   +----------------------+ 64
 *   | data block           |  header + column directory + payload, written with one
 *   +----------------------+  write; a flush makes a (possibly short) block
 *   | data block ...       |
 *   +----------------------+
 *   | footer block (144 B) |  only in a closed file; written last, then fsync
 *   +----------------------+
 *
 * File header:
 *    0  4  magic       "TFST"
 *    4  4  byte order  u32 0x01020304 (on disk 04 03 02 01; 01 02 03 04 means a
 *                      big-endian writer, refused)
 *    8  2  version     3 (1 to 3 read; later ones refused with ENOTSUP)
 *   10  2  hdr_len     64
 *   12  4  interval_s  rotation interval the writer used
 *   16  8  start_ms    interval start the file is named by (Unix ms, UTC)
 *   24  8  created_ms
 *   32  4  block_recs  the writer's block size
 *   36  1  codec       the writer's compressor (0 none, 1 LZ4, 2 zstd)
 *   37  1  phash       version 3: data block payload hash, 1 XXH32, 2 XXH3 (others
 *                      refused with ENOTSUP); versions 1 and 2: zero, meaning XXH32
 *   38 22  reserved    zero
 *   60  4  hash        XXH32 of bytes 0..59
 *
 * Block header (data and footer blocks), hdr_len = 128 + 12 * ncols bytes:
 *    0  4  magic       "TFB1"
 *    4  1  kind        1 data, 2 footer
 *    5  1  ncols       entries in the column directory (0..27)
 *    6  2  hdr_len
 *    8  4  nrec        records in the block (footer: in the whole file)
 *   12  4  payload_len bytes after the header
 *   16  4  payload_hash XXH32 of the payload
 *   20  4  flags       bit 0 HSYNC: streams (HSTREAM) of 4096 or more values carry a
 *                      sync point (set on every block version 3 writes); others zero
 *   24 56  zone map    u64 first_min, first_max, last_min, last_max, packets (sum),
 *                      bytes (sum), then u16 sport_min, sport_max, dport_min, dport_max
 *   80 32  proto set   bit p (byte p / 8, bit p % 8) set if IP protocol p occurs
 *  112  1  ipver set   bit 0 IPv4 occurs, bit 1 IPv6 occurs
 *  113  1  codec       compressor the block mostly used (informational)
 *  114 10  reserved    zero
 *  124 12n directory   per column, in increasing column order:
 *                      u8 col (enum store_col, or 24..26 below), u8 enc, u8 codec,
 *                      u8 xform, u32 disk_len, u32 raw_len
 *  124+12n 4 hdr_hash  XXH32 of bytes 0 .. hdr_len-5
 *
 * The payload is the columns' chunks back to back in directory order. A column missing
 * from the directory is all zeros. Each chunk is compressed alone (codec 1 LZ4 block,
 * 2 zstd frame, 0 stored: entropy-coded chunks are always stored) so a reader inflates
 * only the columns it asks for; raw_len is its size inflated. Inflated, a chunk holds
 * (xform DELTA first puts u64 v0 in front and codes zigzag(v[i] - v[i-1]), the first
 * value's slot coding 0; LASTDIFF, first_ms only, codes last - first mod 2^64):
 *   enc 1 CONST      u64 value (addresses: 16 bytes)
 *   enc 2 FOR        u64 base, u8 width, u8 layout, then n values - base in width bits:
 *                    layout 0 bit-packed LSB first, layout 1 width/8 byte planes
 *   enc 3 DICT       u32 ndict, FOR of the ndict values, FOR of n indices        (v1)
 *   enc 4 VARINT     u64 base, n LEB128 values - base                            (v1)
 *   enc 5 ADDR_RAW   16 byte planes of n bytes
 *   enc 6 ADDR_DICT  u32 ndict, 16 byte planes of ndict bytes, FOR of n indices  (v1)
 *   enc 7 PDICT      u32 nf, FOR of the nf frequent values, FOR of n codes (c >= 1: value
 *                    c-1, 0: the next exception), u32 nexc, FOR of the nexc exceptions (v1)
 *   enc 8 HUF        u64 base, HSTREAM of the n symbols value - base
 *   enc 9 BITLEN     u64 base, HSTREAM (65 symbols) of the bit length k of each value -
 *                    base, each code followed by the k-1 bits below the top one (k >= 2)
 *   enc 10 HDICT     u32 ndict, FOR of the ndict values, HSTREAM of n indices
 *   enc 11 HPDICT    u32 nf, FOR of the nf frequent values, HSTREAM (nf + 1 symbols) of
 *                    n codes as in PDICT, u32 nexc, FOR of the nexc exceptions
 *   enc 12 ADDR_DICT2 u32 ndict, 16 byte planes of ndict bytes, u8 enc of the indices:
 *                    2 (a FOR block) or 9 (u64 base, BITLEN's HSTREAM); the dictionary
 *                    comes most frequent first (by count class), so BITLEN pays
 *   enc 13 TDICT     column 25 only: u32 nt, 17 byte planes of nt bytes: proto, tos,
 *                    tcp_flags, ipver, src_mask, dst_mask, end_reason, vlan (2 planes),
 *                    in_if (4), out_if (4), lowest byte first
 * HSTREAM (canonical Huffman): u16 A symbols (2..1024), ceil(A/2) bytes of 4-bit code
 * lengths (symbol 2i in the low nibble; 0 = unused; at most 12; they must make a complete
 * code), [u32 sync], u32 nbytes, nbytes of codes read LSB first (deflate's canonical
 * order). sync, only in an HSYNC block's streams of n >= 4096 values (HUF, HDICT,
 * HPDICT, BITLEN), is the bit offset of value ceil(n/2): readers may decode the two
 * halves side by side.
 * Internal columns: 24 holds mirror references, u8 r per record: r >= 1 says the record's
 * src, dst, sport, dport are the dst, src, dport, sport of record i - r (a reply after
 * its request); columns 0, 1, 14, 15 then hold only the records with r = 0. 25 (TDICT)
 * and 26 (each record's index into it, an integer column) hold the tuple: when present,
 * columns 8, 9, 16, 17..23 are absent and come from it.
 * The footer is a block of kind 2 with no columns, nrec and zone map over the whole file,
 * and a 16-byte payload: u64 data blocks, u64 its own offset.
 *
 * Durability: a block is one write at the end of the last complete block; flush adds
 * fdatasync. A torn write leaves a tail that readers skip (and count) and that the next
 * writer to open the file truncates. A writer holds flock(LOCK_EX) on DIR/.tapflow.lock
 * (one writer a store) and on its open file; retention never deletes a locked file.
 */
#ifndef TF_STORE_H
#define TF_STORE_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "flowrec.h"

#define STORE_VERSION 3         /* written; versions 1 and 2 are read too */
#define STORE_DEFAULT_INTERVAL_S 300
/* 65536: 8.2 bytes/flow on a softflowd export and 10% less CPU to write than 32768 (9.0) */
#define STORE_DEFAULT_BLOCK_RECS 65536
#define STORE_MAX_BLOCK_RECS 262144     /* readers refuse more (memory bound) */
#define STORE_FILE_HDR_LEN 64
#define STORE_BLK_HDR_MIN 128

/* Data block payload hashes (file header byte 37, version 3). */
enum store_phash {
	STORE_PHASH_AUTO = 0,   /* store_cfg only: the host's faster one (store_phash_default) */
	STORE_PHASH_XXH32 = 1,
	STORE_PHASH_XXH3 = 2,
};

enum store_codec {
	STORE_CODEC_NONE = 0,
	STORE_CODEC_LZ4 = 1,
	STORE_CODEC_ZSTD = 2,
};

/* Columns, in directory order. Every flow_rec field but pad is one column. */
enum store_col {
	STORE_COL_SRC, STORE_COL_DST, STORE_COL_NEXTHOP, STORE_COL_EXPORTER,
	STORE_COL_PACKETS, STORE_COL_BYTES, STORE_COL_FIRST, STORE_COL_LAST,
	STORE_COL_IN_IF, STORE_COL_OUT_IF, STORE_COL_SRC_AS, STORE_COL_DST_AS,
	STORE_COL_DOMAIN_ID, STORE_COL_SAMPLING,
	STORE_COL_SPORT, STORE_COL_DPORT, STORE_COL_VLAN,
	STORE_COL_PROTO, STORE_COL_TOS, STORE_COL_TCP_FLAGS, STORE_COL_IPVER,
	STORE_COL_SRC_MASK, STORE_COL_DST_MASK, STORE_COL_END_REASON,
	STORE_NCOLS
};
#define STORE_COLBIT(c) (1u << (c))
#define STORE_COLS_ALL ((1u << STORE_NCOLS) - 1)
/* The columns a block may store as one dictionary of distinct tuples (at most
 * STORE_TUPLE_MAX) plus an index a record. */
#define STORE_TUPLE_MEMBERS (STORE_COLBIT(STORE_COL_IN_IF) | STORE_COLBIT(STORE_COL_OUT_IF) | \
			     STORE_COLBIT(STORE_COL_VLAN) | STORE_COLBIT(STORE_COL_PROTO) | \
			     STORE_COLBIT(STORE_COL_TOS) | STORE_COLBIT(STORE_COL_TCP_FLAGS) | \
			     STORE_COLBIT(STORE_COL_IPVER) | STORE_COLBIT(STORE_COL_SRC_MASK) | \
			     STORE_COLBIT(STORE_COL_DST_MASK) | \
			     STORE_COLBIT(STORE_COL_END_REASON))
#define STORE_TUPLE_MAX 1024
#define STORE_PDICT_MAX 1023         /* frequent values a block's port codes may name */

/* Records as columns (struct of arrays). Arrays hold cap records; only columns in mask
 * hold data. Owned by whoever called store_cols_init(); free with store_cols_free(). */
/* n values bit-packed as stored (see store_cols.packed) */
struct store_packed {
	const uint8_t *p;
	uint64_t base, mask;
	unsigned w;     /* bits a value: at most 56, or 64 */
};

struct store_cols {
	uint32_t n;
	uint32_t cap;
	uint32_t mask;
	uint32_t alloc;             /* columns with an allocated array */
	void *region;               /* where they are (store_cols_reserve) */
	size_t region_len;
	uint8_t (*src)[16];
	uint8_t (*dst)[16];
	uint8_t (*nexthop)[16];
	uint8_t (*exporter)[16];
	uint64_t *packets;
	uint64_t *bytes;
	uint64_t *first_ms;
	uint64_t *last_ms;
	uint32_t *in_if;
	uint32_t *out_if;
	uint32_t *src_as;
	uint32_t *dst_as;
	uint32_t *domain_id;
	uint32_t *sampling;
	uint16_t *sport;
	uint16_t *dport;
	uint16_t *vlan;
	uint8_t *proto;
	uint8_t *tos;
	uint8_t *tcp_flags;
	uint8_t *ipver;
	uint8_t *src_mask;
	uint8_t *dst_mask;
	uint8_t *end_reason;
	/* Address columns handed out as dictionary codes instead of addresses
	 * (store_reader_decode_codes): bit STORE_COL_SRC / _DST in codes; record i's
	 * address is dict[k][code[k][i]], k 0 for src and 1 for dst. Point into the
	 * reader: valid until it decodes codes again or moves to another block. */
	uint32_t codes;
	const uint64_t *code[2];
	const uint8_t (*dict[2])[16];
	uint32_t nd[2];
	/* Asked for with STORE_CODES_PACKED, a column's codes may come packed instead:
	 * code[k] NULL, record i's code store_packed_get(&cpk[k], i), below 2 n but NOT
	 * checked against nd[k] (a damaged block may hold more): its reader checks them,
	 * or store_cols_unpack() does. */
	struct store_packed cpk[2];
	uint64_t *cbuf[2];          /* the reader's room for them unpacked */
	/* Tuple members handed out as the block's tuple dictionary (the same call): bits
	 * in tuple; record i's value of such a column is that column of *tdict (tdict->n
	 * entries, at most STORE_TUPLE_MAX) at tidx[i]. A filter leaf on them is then
	 * evaluated once a dictionary entry. Point into the reader, as codes do. */
	uint32_t tuple;
	const uint32_t *tidx;
	const struct store_cols *tdict;
	/* tidx NULL (all members asked for so, on little-endian hosts, a block storing
	 * the indices plainly bit-packed within the dictionary): record i's index is
	 * store_packed_get(&tpk, i), below tdict->n. */
	struct store_packed tpk;
	/* Port columns handed out as the codes of a frequent-values dictionary (the same
	 * call; blocks coding them so): bit STORE_COL_SPORT / _DPORT in pcodes, k 0 for
	 * sport and 1 for dport. Record i's code pcode[k][i] is c >= 1 for pdict[k][c - 1]
	 * (pnf[k] entries), 0 for the next of the pne[k] exceptions pexc[k], in record
	 * order. A filter leaf on such a column is evaluated once a dictionary entry;
	 * store_cols_port_values() gives the values. Point into the reader, as codes do. */
	uint32_t pcodes;
	const uint64_t *pcode[2];
	const uint16_t *pdict[2], *pexc[2];
	uint32_t pnf[2], pne[2];
	uint16_t pemin[2], pemax[2];        /* the exceptions' range (none: 1, 0) */
	uint16_t *pval[2];          /* the reader's room for store_cols_port_values() */
	/* Counter and time columns (PACKETS, BYTES, FIRST, LAST) handed out as they are
	 * stored, bit-packed over a base (the same call; bits in packed, on little-endian
	 * hosts, for blocks coding them so): record i's value is store_packed_get(&pk[c -
	 * STORE_COL_PACKETS], i). A query that reads a few selected records of a block
	 * reads them there instead of unpacking every record first. With lastdiff set,
	 * first_ms holds last - first (LAST came packed). store_cols_unpack() turns them
	 * into arrays. Point into the reader, as codes do. */
	uint32_t packed;
	int lastdiff;
	struct store_packed pk[4];
};

/* Record i of a packed column (little-endian hosts: see store_cols.packed). An array of
 * native u64 reads as w 64, mask ~0, base 0 (store_cols_packed_view). */
static inline uint64_t store_packed_get(const struct store_packed *v, uint32_t i)
{
	uint64_t bp = (uint64_t)i * v->w, x;
	memcpy(&x, v->p + (bp >> 3), sizeof(x));
	return v->base + (x >> (bp & 7) & v->mask);
}

void store_cols_init(struct store_cols *c);
/* Makes sure the columns in mask have arrays for cap records (contents not kept when an
 * array grows). Returns 0 or -ENOMEM. */
int store_cols_reserve(struct store_cols *c, uint32_t cap, uint32_t mask);
void store_cols_free(struct store_cols *c);
/* Column id's array in c (STORE_COL_*), NULL for an unknown id. */
void *store_cols_array(const struct store_cols *c, int id);
/* Copies record i out of c into *r; columns neither in c->mask nor handed out as codes
 * or as the tuple dictionary read as zero. A port column handed out as codes costs a
 * count of the exceptions before i (tests, single records). */
void store_cols_get(const struct store_cols *c, uint32_t i, struct flow_rec *r);
/* Port column k (0 sport, 1 dport) of c, handed out as codes (c->pcodes), as values: in
 * c->pval[k], which it returns. */
const uint16_t *store_cols_port_values(const struct store_cols *c, int k);
/* Column c (PACKETS .. LAST) of c, packed or an array, as a view for store_packed_get
 * (little-endian hosts). */
void store_cols_packed_view(const struct store_cols *c, int col, struct store_packed *v);
/* Address codes k (0 src, 1 dst; in c->codes) the same way. */
void store_cols_code_view(const struct store_cols *c, int k, struct store_packed *v);
/* The packed columns and codes of c unpacked into arrays (FIRST's lastdiff undone, the
 * codes checked), so that c holds them as store_reader_decode_codes() gives them
 * unpacked. Returns 0, or -EPROTO for a code past its dictionary (c then holds no
 * codes; a damaged block). */
int store_cols_unpack(struct store_cols *c);

/* Per-block (and, in the footer, per-file) summary a reader gets without inflating.
 * An empty zone has first_min > first_max. */
struct store_zone {
	uint64_t first_min, first_max;
	uint64_t last_min, last_max;
	uint64_t packets, bytes;        /* sums */
	uint16_t sport_min, sport_max;
	uint16_t dport_min, dport_max;
	uint8_t proto[32];              /* bit p set: IP protocol p occurs */
	uint8_t ipver;                  /* bit 0: IPv4 occurs, bit 1: IPv6 */
};

/* Time window: records whose [first_ms, last_ms] overlaps [from_ms, to_ms] (inclusive). */
struct store_window {
	uint64_t from_ms, to_ms;
};

/* 1 if the zone may hold records overlapping w (NULL: any records), 0 if none can (skip
 * the block or file). */
int store_zone_overlaps(const struct store_zone *z, const struct store_window *w);

/* XXH32 of p[0..len) with seed: the store's checksum. */
uint32_t store_hash32(const void *p, size_t len, uint32_t seed);
/* A data block payload's hash by kind (STORE_PHASH_XXH32 or STORE_PHASH_XXH3). */
uint32_t store_payload_hash(unsigned phash, const void *p, size_t len);
/* The payload hash new files get on this host: XXH3 where it is fast (64-bit, or NEON),
 * XXH32 on 32-bit hosts without NEON, where XXH3's 64-bit arithmetic is slower. */
unsigned store_phash_default(void);

/* Writes "YYYY-MM-DDThh:mm:ss.mmmZ" (UTC) for Unix ms into buf (at least 32 bytes);
 * returns buf. Works for any 64-bit time, also on 32-bit time_t hosts. */
char *store_time_str(uint64_t ms, char *buf, size_t len);

/* ---- writer ---- */

struct store_cfg {
	const char *dir;        /* store root; created if missing; copied by open */
	uint32_t interval_s;    /* rotation interval, a multiple of 60 */
	uint32_t block_recs;    /* records per block, 1..STORE_MAX_BLOCK_RECS */
	uint8_t codec;          /* enum store_codec */
	int level;              /* zstd level (0: 3); LZ4 acceleration (0: 1) */
	int nosync;             /* 1: no fdatasync/fsync (benchmarks, tests) */
	uint8_t phash;          /* enum store_phash for new files (AUTO: the host's faster) */
};

/* Fills *cfg with the defaults (300 s, 32768 records, LZ4, sync on) for dir. */
void store_cfg_default(struct store_cfg *cfg, const char *dir);

struct store_writer_stats {
	uint64_t records;         /* accepted by store_writer_add() */
	uint64_t blocks;          /* data blocks written */
	uint64_t file_bytes;      /* bytes written to files (blocks, headers, footers) */
	uint64_t files_opened, files_closed;
	uint64_t syncs;
	uint64_t recovered_files; /* files found unclosed and repaired */
	uint64_t truncated_bytes; /* torn tails cut off by recovery */
	uint64_t dropped;         /* records lost to write errors */
	uint64_t col_bytes[STORE_NCOLS]; /* bytes on disk per column (encoded, compressed) */
	uint64_t mirror_bytes;    /* ... and for the mirror references */
	uint64_t tuple_bytes;     /* ... and for the tuple (its dictionary and indices) */
	uint64_t mirrored;        /* records stored as mirrors of an earlier one */
};

struct store_writer;

/* Opens a writer on cfg->dir at Unix ms now_ms. If the newest file in the store was left
 * open by a crash it is cut back to its last complete block and either continued (same
 * interval) or closed. Memory: one block of records plus its encoding scratch (about
 * 430 bytes a record of block_recs allocated, 200 of them touched: 28 and 13 MB at the
 * default). Returns NULL with errno set (EINVAL bad cfg, EBUSY another writer has the
 * store, or errors from the file system). */
struct store_writer *store_writer_open(const struct store_cfg *cfg, uint64_t now_ms);

/* Buffers one record (copied). A full block is written (no sync). Returns 0, or -errno
 * from writing the full block (its records are then dropped and counted). */
int store_writer_add(struct store_writer *w, const struct flow_rec *rec);

/* Writes the buffered records as one block with one write, then fdatasync: durable and
 * visible to readers when it returns. No-op if nothing is pending. Returns 0 or -errno. */
int store_writer_flush(struct store_writer *w);

/* If now_ms falls in another interval than the current file's: flushes, closes the
 * current file (footer, fsync file and directory) and makes the next block go to the
 * file of now_ms's interval. Files are created at their first block. Returns 0/-errno. */
int store_writer_rotate(struct store_writer *w, uint64_t now_ms);

/* Path of the file open for writing, or NULL if none is open. Owned by w. */
const char *store_writer_path(const struct store_writer *w);
const struct store_writer_stats *store_writer_stats(const struct store_writer *w);

/* Flushes, closes the open file and frees w. Returns 0 or the first -errno met. */
int store_writer_close(struct store_writer *w);

/* ---- reader ---- */

struct store_file_hdr {
	uint32_t version, interval_s, block_recs;
	uint64_t start_ms, created_ms;
	uint8_t codec;
	uint8_t phash;          /* enum store_phash (XXH32 before version 3) */
};

struct store_block_info {
	uint64_t off;           /* file offset of the block */
	uint32_t nrec;
	uint32_t disk_bytes;    /* header + payload */
	uint32_t colmask;       /* columns stored (missing ones are all zero) */
	uint8_t codec;
	struct store_zone zone;
};

struct store_read_stats {
	uint64_t blocks;        /* data blocks with a valid header */
	uint64_t records;       /* records in those */
	uint64_t bad_blocks;    /* skipped: bad header (found by resync), payload hash,
				   malformed column, decompression failure */
	uint64_t bad_hash, bad_format, bad_inflate;  /* bad_blocks by reason */
	uint64_t tail_bytes;    /* incomplete data at the end (write in progress, crash) */
	int closed;             /* a valid footer ends the file */
};

struct store_reader;

/* Opens a store file. NULL with errno: ENOENT etc. from open, EILSEQ not a store file,
 * ENOTSUP other version or byte order, EBADMSG damaged file header, ENOMEM. An empty or
 * half-written header (a file being created) opens as a file with no blocks. */
struct store_reader *store_reader_open(const char *path);

/* Same through fd, which stays the caller's (kept open until close; only pread is used,
 * so several readers may share it). */
struct store_reader *store_reader_open_fd(int fd);

/* Same over buf[0..len), which the caller keeps valid until close (fuzzing, tests). */
struct store_reader *store_reader_open_mem(const uint8_t *buf, size_t len);

/* store_reader_open() and _open_fd() in spare, a reader done with its file (or NULL
 * for a new one): the file's state goes, the decoding buffers stay, so a scan over many
 * files allocates them, and the kernel zeroes their pages, once rather than once a
 * file. spare is closed when the open fails. */
struct store_reader *store_reader_reopen(struct store_reader *spare, const char *path);
struct store_reader *store_reader_reopen_fd(struct store_reader *spare, int fd);

void store_reader_close(struct store_reader *r);

/* verify 0 skips the hash checks (forensics, fuzzing the decoders); default 1. */
void store_reader_set_verify(struct store_reader *r, int verify);

/* Reads the file as if it ended at len bytes: a snapshot, so that every pass of a query
 * sees the same blocks of a file the collector is still writing (what lies past len,
 * a block cut through included, is left for the next query). */
void store_reader_set_limit(struct store_reader *r, uint64_t len);

const struct store_file_hdr *store_reader_hdr(const struct store_reader *r);

/* If the file is closed, fills *z with its footer's zone and returns 1 (cheap: reads the
 * last 144 bytes). Returns 0 for a file still open or left open, -errno on I/O error. */
int store_reader_file_zone(struct store_reader *r, struct store_zone *z);

/* Moves to the next data block and fills *bi from its header (nothing inflated). Damaged
 * blocks are skipped and counted. Returns 1, 0 at the end (footer, end of file or a
 * partial tail, counted in tail_bytes), or -errno on an I/O error. */
int store_reader_next(struct store_reader *r, struct store_block_info *bi);

/* Decodes the columns in mask of the current block into out (arrays grown as needed,
 * out->n = records, out->mask = columns decoded; LAST may come along with FIRST).
 * Returns 0, or -EBADMSG payload hash mismatch, -EPROTO malformed column, -EIO failed
 * decompression or short read, -ENOMEM, -EINVAL no current block. A failed block is
 * counted in bad_blocks; carry on with store_reader_next(). */
int store_reader_decode(struct store_reader *r, uint32_t mask, struct store_cols *out);
/* The same, but the address columns of codes (SRC, DST) that the block codes as a
 * dictionary come as its codes (out->codes, out->code, out->dict) instead of in
 * out->src/dst and out->mask: aggregating codes costs less than hashing addresses.
 * Likewise tuple members of codes that the block stores as a tuple dictionary come as
 * that dictionary and each record's index (out->tuple, out->tdict, out->tidx), and port
 * columns of codes that the block stores as frequent values and exceptions come as those
 * (out->pcodes ..), and counter and time columns of codes (PACKETS .. LAST) that the
 * block stores plainly bit-packed come so (out->packed, out->pk), as do address codes
 * with STORE_CODES_PACKED in codes (out->cpk). Columns coded otherwise are decoded as
 * usual. */
int store_reader_decode_codes(struct store_reader *r, uint32_t mask, uint32_t codes,
			      struct store_cols *out);
#define STORE_CODES_PACKED (1u << 31)   /* in codes: address codes may come packed */

const struct store_read_stats *store_reader_stats(const struct store_reader *r);

/* Text for the error codes above, store-flavoured (EILSEQ: "not a tapflow store file"). */
const char *store_strerror(int err);

/* ---- files, retention ---- */

struct store_file {
	char *path;             /* owned by the list */
	uint64_t start_ms;      /* interval start from the name */
};

struct store_list {
	struct store_file *v;
	size_t n;
};

/* Lists the store files under dir in time order (by name, then path). Every file: a
 * name says when records arrived, not when they happened (an exporter may send hours
 * late), so only a file's zone maps can rule it out of a window. Returns 0 or -errno;
 * free *out with store_list_free(). */
int store_list_files(const char *dir, struct store_list *out);
/* Puts l in that order again (files of several stores listed one after the other). */
void store_list_sort(struct store_list *l);
void store_list_free(struct store_list *l);

/* 0 if path is a store directory (holds store files or date directories, or nothing) or
 * a store file; -ENOENT etc. if it cannot be read; -EILSEQ if it is something else. */
int store_check(const char *path);

struct store_retention_result {
	uint64_t files, bytes;  /* deleted */
	uint64_t dirs;          /* empty date directories removed */
	uint64_t kept_files, kept_bytes;
};

/* Deletes whole files, oldest first, until every file left ended less than max_age_secs
 * before now_ms and all files total at most max_total_bytes (0: no such limit). Never
 * deletes a file a writer holds open. Removes date directories left empty. Returns 0 or
 * -errno; *res says what went (may be NULL). */
int store_retention(const char *dir, uint64_t max_age_secs, uint64_t max_total_bytes,
		    uint64_t now_ms, struct store_retention_result *res);

/* ---- scanning ---- */

struct store_scan_stats {
	uint64_t files;          /* files read */
	uint64_t files_skipped;  /* listed, but the footer zone misses the window */
	uint64_t bad_files;      /* could not be opened as store files */
	uint64_t blocks;         /* blocks decoded */
	uint64_t blocks_skipped; /* outside the window by zone map */
	uint64_t bad_blocks;
	uint64_t tail_bytes;
};

struct store_scan_opts {
	const struct store_window *win;  /* NULL: everything */
	uint32_t mask;                   /* columns the callback reads */
	/* Called per decoded block (records are not window-filtered: the block overlaps).
	 * Non-zero stops the scan and becomes its return value. */
	int (*block)(const struct store_cols *c, const struct store_block_info *bi, void *arg);
	void *arg;
	/* Optional: told about each damaged file or block (err is negative errno). */
	void (*warn)(const char *path, int err, const char *what, void *warn_arg);
	void *warn_arg;
};

/* Scans path (a store directory or one store file) file by file, block by block,
 * skipping what the window excludes. Returns 0, the callback's stop value, or -errno
 * if path cannot be listed. *st may be NULL. */
int store_scan(const char *path, const struct store_scan_opts *o, struct store_scan_stats *st);

struct store_summary {
	uint64_t flows, packets, bytes;
	uint64_t first_ms, last_ms;     /* earliest first, latest last; 0 when no flows */
	struct store_scan_stats scan;
};

/* Totals over the flows in path that overlap win (NULL: all). Returns as store_scan(). */
int store_summary(const char *path, const struct store_window *win,
		  void (*warn)(const char *path, int err, const char *what, void *arg),
		  void *arg, struct store_summary *s);

#endif
