/* addr.h: text forms of the 16-byte addresses flow records carry, and their prefixes. */
#ifndef TF_ADDR_H
#define TF_ADDR_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* Writes a as text into buf (IPv4 dotted quad when v4-mapped, else IPv6) and returns
 * buf. len of 46 (INET6_ADDRSTRLEN) always suffices. */
char *addr_str(const uint8_t a[16], char *buf, size_t len);

/* out = the first bits bits of a (0..128), the rest zero: an IPv4 address's /m is
 * bits 96 + m of its v4-mapped form. Inline: queries mask every flow of a srcnet key. */
static inline void addr_prefix(uint8_t out[16], const uint8_t a[16], unsigned bits)
{
	memcpy(out, a, 16);
	for (unsigned b = 0; b < 16; b++) {
		unsigned keep = bits > b * 8 ? bits - b * 8 : 0;
		if (keep < 8)
			out[b] &= (uint8_t)(0xff00u >> keep);
	}
}

#endif
