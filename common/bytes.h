/* bytes.h: big-endian loads and stores through byte access, and a bounds-checked
 * read cursor. Nothing here dereferences a multi-byte pointer: packets and datagrams
 * arrive at any alignment, and ARM cores (Raspberry Pi) fault on unaligned loads.
 */
#ifndef TF_BYTES_H
#define TF_BYTES_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

static inline uint16_t ld_be16(const uint8_t *p)
{
	return (uint16_t)((uint16_t)p[0] << 8 | p[1]);
}

static inline uint32_t ld_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static inline uint64_t ld_be64(const uint8_t *p)
{
	return (uint64_t)ld_be32(p) << 32 | ld_be32(p + 4);
}

/* Big-endian unsigned integer of 1..8 bytes (NetFlow fields of odd lengths). */
static inline uint64_t ld_beN(const uint8_t *p, size_t n)
{
	uint64_t v = 0;
	for (size_t i = 0; i < n; i++)
		v = v << 8 | p[i];
	return v;
}

static inline void st_be16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static inline void st_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static inline void st_be64(uint8_t *p, uint64_t v)
{
	st_be32(p, (uint32_t)(v >> 32));
	st_be32(p + 4, (uint32_t)v);
}

/* Read cursor over [p, end). Every take checks the remaining length first; a failed
 * take returns NULL and leaves the cursor where it was. */
struct cur {
	const uint8_t *p;
	const uint8_t *end;
};

static inline struct cur cur_make(const uint8_t *p, size_t len)
{
	struct cur c = { p, p + len };
	return c;
}

static inline size_t cur_left(const struct cur *c)
{
	return (size_t)(c->end - c->p);
}

/* Returns a pointer to the next n bytes and advances past them, or NULL if fewer remain. */
static inline const uint8_t *cur_take(struct cur *c, size_t n)
{
	const uint8_t *q = c->p;
	if (cur_left(c) < n)
		return NULL;
	c->p += n;
	return q;
}

#endif
