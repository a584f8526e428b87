/* nf9enc.h: NetFlow v9 (RFC 3954) export encoding, free of I/O. Builds datagrams into
 * a caller's buffer: header, template flowsets, options template and options data,
 * data flowsets of flow_rec records. The probe's exporter decides when to send.
 *
 * Templates: 256 for IPv4 flows, 257 for IPv6 flows, 258 an options template scoped to
 * the System carrying the sampling settings and systemInitTimeMilliseconds (160).
 *
 * Clock: FIRST/LAST_SWITCHED are sysUptime-relative. The encoder keeps a boot time
 * in Unix ms and writes, for an export at Unix ms now,
 *   unix_secs = now / 1000, sysUptime = unix_secs * 1000 - boot_ms,
 *   FIRST_SWITCHED = first_ms - boot_ms
 * so that a collector's unix_secs * 1000 - sysUptime + FIRST_SWITCHED is exactly
 * first_ms, with no loss to the header's whole-second resolution.
 * nf9enc_init rounds boot_ms down to a whole second, so unix_secs * 1000 >= boot_ms
 * whenever now >= boot_ms. Times before boot_ms are written as boot_ms (0); an export
 * time before boot_ms is written as boot_ms (sysUptime 0). sysUptime and the
 * *_SWITCHED fields are 32-bit and wrap together after 49.7 days, as on a router.
 *
 * Flowsets are padded with zeros to 4 bytes; every record is at least 17 bytes long,
 * so padding (at most 3 bytes) can never be taken for a record (RFC 3954 erratum 2096).
 * The header count holds every record: data, templates (2), options template (1) and
 * options data (1).
 */
#ifndef TF_NF9ENC_H
#define TF_NF9ENC_H

#include <stddef.h>
#include <stdint.h>

#include "flowrec.h"

#define NF9_TPL_V4 256
#define NF9_TPL_V6 257
#define NF9_TPL_OPTIONS 258

#define NF9_HDR_LEN 20
#define NF9_SET_HDR_LEN 4

/* NetFlow v9 field types the encoder writes (RFC 3954 section 8; 136 and 160 are
 * IPFIX element ids, which v9 shares). */
enum nf9enc_ftype {
	NF9ENC_IN_BYTES = 1,
	NF9ENC_IN_PKTS = 2,
	NF9ENC_PROTOCOL = 4,
	NF9ENC_SRC_TOS = 5,
	NF9ENC_TCP_FLAGS = 6,
	NF9ENC_L4_SRC_PORT = 7,
	NF9ENC_IPV4_SRC_ADDR = 8,
	NF9ENC_INPUT_SNMP = 10,
	NF9ENC_L4_DST_PORT = 11,
	NF9ENC_IPV4_DST_ADDR = 12,
	NF9ENC_OUTPUT_SNMP = 14,
	NF9ENC_IPV4_NEXT_HOP = 15,
	NF9ENC_LAST_SWITCHED = 21,
	NF9ENC_FIRST_SWITCHED = 22,
	NF9ENC_IPV6_SRC_ADDR = 27,
	NF9ENC_IPV6_DST_ADDR = 28,
	NF9ENC_ICMP_TYPE = 32,
	NF9ENC_SAMPLING_INTERVAL = 34,
	NF9ENC_SAMPLING_ALGORITHM = 35,
	NF9ENC_SRC_VLAN = 58,
	NF9ENC_IP_PROTOCOL_VERSION = 60,
	NF9ENC_IPV6_NEXT_HOP = 62,
	NF9ENC_FLOW_END_REASON = 136,
	NF9ENC_SYSTEM_INIT_MS = 160,
	NF9ENC_SCOPE_SYSTEM = 1, /* options scope field type */
};

/* One (type, length) pair of a template. */
struct nf9enc_field {
	uint16_t type;
	uint16_t len;
};

/* The encoder's template definitions, which the template writer emits and the record
 * writers must match: returns the fields of template id (NF9_TPL_*) in wire order
 * and sets *n to their number and *nscope to how many leading ones are scope fields
 * (options template only, else 0). Returns NULL for an unknown id. Static storage. */
const struct nf9enc_field *nf9enc_fields(uint16_t id, size_t *n, size_t *nscope);

/* Record length in bytes of template id, 0 if unknown. */
size_t nf9enc_reclen(uint16_t id);

struct nf9enc {
	uint8_t *buf;         /* datagram being built; not owned */
	size_t cap;           /* usable size (the MTU's UDP payload) */
	size_t len;           /* bytes used; 0 = no datagram open */
	size_t set_off;       /* offset of the open flowset header, 0 if none */
	uint16_t set_id;      /* id of the open flowset */
	uint16_t count;       /* records + templates in this datagram (header count) */
	uint32_t source_id;
	uint32_t sequence;    /* sequence number of the next datagram */
	uint64_t boot_ms;     /* Unix ms that sysUptime counts from */
	uint32_t sampling_interval;  /* 1 = unsampled */
	uint8_t sampling_algorithm;  /* 0 none, 1 deterministic, 2 random */
};

/* Sets up an encoder over buf[0..cap). cap must hold at least one IPv6 record and the
 * headers (nf9enc_min_cap()). Sequence starts at 0, sampling at interval 1, algorithm 0:
 * set sampling_interval/sampling_algorithm after init to change them. */
void nf9enc_init(struct nf9enc *e, uint8_t *buf, size_t cap, uint32_t source_id,
		 uint64_t boot_ms);
/* Smallest usable cap: the header, all templates with the options data record, and one
 * IPv6 record in its own flowset, so a datagram that opens with templates always takes a
 * flow. A cap above 65532 is treated as 65532 (flowset lengths are 16-bit). */
size_t nf9enc_min_cap(void);

/* Starts a datagram if none is open. The add functions below call it themselves. */
void nf9enc_begin(struct nf9enc *e);

/* Points the encoder at another buffer of the same cap (the exporter rotates through
 * a queue of buffers). Between datagrams, or mid-datagram once the caller has copied
 * the open datagram's bytes buf[0..len) to the new buffer. */
void nf9enc_set_buf(struct nf9enc *e, uint8_t *buf);

/* Appends the template flowset (both data templates) and the options template plus its
 * options data record. Returns 0, or -ENOSPC if they do not fit in what is left. */
int nf9enc_add_templates(struct nf9enc *e, uint64_t now_ms);

/* Appends one flow record (IPv4 or IPv6 template by rec->ipver; by the source address
 * if ipver is neither). Returns 0, or -ENOSPC when the datagram is full (finish it,
 * send, and retry); a datagram is then left as it was. */
int nf9enc_add_flow(struct nf9enc *e, const struct flow_rec *rec);

/* Closes the open flowset, writes the header with now_ms as export time and the
 * sequence number, and returns the datagram length (0 if nothing was added). Advances
 * the sequence number. The caller sends buf[0..len) and the next begin starts afresh. */
size_t nf9enc_finish(struct nf9enc *e, uint64_t now_ms);

#endif
