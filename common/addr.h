/* addr.h: text forms of the 16-byte addresses flow records carry. */
#ifndef TF_ADDR_H
#define TF_ADDR_H

#include <stddef.h>
#include <stdint.h>

/* Writes a as text into buf (IPv4 dotted quad when v4-mapped, else IPv6) and returns
 * buf. len of 46 (INET6_ADDRSTRLEN) always suffices. */
char *addr_str(const uint8_t a[16], char *buf, size_t len);

#endif
