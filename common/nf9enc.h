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
 */
#ifndef TF_NF9ENC_H
#define TF_NF9ENC_H

#include <stddef.h>
#include <stdint.h>

#include "flowrec.h"

#define NF9_TPL_V4 256
#define NF9_TPL_V6 257
#define NF9_TPL_OPTIONS 258

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
 * headers (nf9enc_min_cap()). */
void nf9enc_init(struct nf9enc *e, uint8_t *buf, size_t cap, uint32_t source_id,
		 uint64_t boot_ms);
size_t nf9enc_min_cap(void);

/* Starts a datagram if none is open. */
void nf9enc_begin(struct nf9enc *e);

/* Appends the template flowset (both data templates) and the options template plus its
 * options data record. Returns 0, or -ENOSPC if they do not fit in what is left. */
int nf9enc_add_templates(struct nf9enc *e, uint64_t now_ms);

/* Appends one flow record (IPv4 or IPv6 template by rec->ipver). Returns 0, or -ENOSPC
 * when the datagram is full (finish it, send, and retry). */
int nf9enc_add_flow(struct nf9enc *e, const struct flow_rec *rec);

/* Closes the open flowset, writes the header with now_ms as export time and the
 * sequence number, and returns the datagram length (0 if nothing was added). Advances
 * the sequence number. The caller sends buf[0..len) and the next begin starts afresh. */
size_t nf9enc_finish(struct nf9enc *e, uint64_t now_ms);

#endif
