/* test_store.c: the flow store: round trips of every field, flush visibility, torn and
 * corrupted files, crash recovery, rotation, retention, zone-map skipping, bytes/flow. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "store.h"
#include "sys.h"
#include "../tools/realgen.h"
#include "tmpdir.h"

#define T0 RG_T0                /* 2024-05-01T00:00:00Z */

/* ---- deterministic generators (realistic ones in realgen.h) ---- */

/* Random records that reach every coding path: each column of a record draws from a
 * constant, a small set, a narrow range or the full range of its type. */
static uint64_t pick_val(uint64_t *s, unsigned bits)
{
	uint64_t full = bits == 64 ? rnd(s) : rnd(s) & ((1ULL << bits) - 1);
	switch (rnd_below(s, 5)) {
	case 0: return 0;
	case 1: return rnd_below(s, 4) * 1000 + 7;     /* a small set */
	case 2: return full & 0xff;
	case 3: return bits == 64 ? UINT64_MAX - rnd_below(s, 3) : full;
	default: return full;
	}
}

static void gen_random(uint64_t *s, struct flow_rec *r)
{
	memset(r, 0, sizeof(*r));
	r->ipver = rnd_below(s, 3) ? 4 : 6;
	if (r->ipver == 4) {
		addr4(r->src, (uint32_t)rnd(s));
		addr4(r->dst, (uint32_t)rnd_below(s, 50));
	} else {
		for (int i = 0; i < 16; i++) {
			r->src[i] = (uint8_t)rnd(s);
			r->dst[i] = (uint8_t)rnd_below(s, 3);
		}
	}
	if (rnd_below(s, 2))
		addr4(r->nexthop, (uint32_t)rnd(s));
	addr4(r->exporter, 0xc000020a + (uint32_t)rnd_below(s, 2));
	r->packets = pick_val(s, 64);
	r->bytes = pick_val(s, 64);
	r->last_ms = rnd_below(s, 4) ? T0 + rnd_below(s, 1000000) : pick_val(s, 64);
	r->first_ms = rnd_below(s, 4) ? r->last_ms - rnd_below(s, 60000) : pick_val(s, 64);
	r->in_if = (uint32_t)pick_val(s, 32);
	r->out_if = (uint32_t)pick_val(s, 32);
	r->src_as = (uint32_t)pick_val(s, 32);
	r->dst_as = (uint32_t)pick_val(s, 32);
	r->domain_id = (uint32_t)pick_val(s, 32);
	r->sampling = (uint32_t)pick_val(s, 32);
	r->sport = (uint16_t)pick_val(s, 16);
	r->dport = (uint16_t)pick_val(s, 16);
	r->vlan = (uint16_t)pick_val(s, 12);
	r->proto = (uint8_t)pick_val(s, 8);
	r->tos = (uint8_t)pick_val(s, 8);
	r->tcp_flags = (uint8_t)pick_val(s, 8);
	r->src_mask = (uint8_t)pick_val(s, 7);
	r->dst_mask = (uint8_t)pick_val(s, 7);
	r->end_reason = (uint8_t)rnd_below(s, 6);
}

/* ---- a version 1 file (the first format; still read, and continued as version 3) ---- */

/* 60 realistic records (realgen seed 5, from RG_T0), blocks of 25, LZ4: a closed
 * version 1 file as the version 1 writer made it. */
static const uint8_t v1_file[2717] = {
	0x54, 0x46, 0x53, 0x54, 0x04, 0x03, 0x02, 0x01, 0x01, 0x00, 0x40, 0x00,
	0x2c, 0x01, 0x00, 0x00, 0x00, 0x70, 0x73, 0x31, 0x8f, 0x01, 0x00, 0x00,
	0x00, 0x70, 0x73, 0x31, 0x8f, 0x01, 0x00, 0x00, 0x19, 0x00, 0x00, 0x00,
	0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x02, 0x9e, 0x47, 0x23, 0x54, 0x46, 0x42, 0x31, 0x01, 0x13, 0x64, 0x01,
	0x19, 0x00, 0x00, 0x00, 0x53, 0x02, 0x00, 0x00, 0xd9, 0x7b, 0x8e, 0xc9,
	0x00, 0x00, 0x00, 0x00, 0x01, 0x70, 0x73, 0x31, 0x8f, 0x01, 0x00, 0x00,
	0xb4, 0x70, 0x73, 0x31, 0x8f, 0x01, 0x00, 0x00, 0x52, 0x70, 0x73, 0x31,
	0x8f, 0x01, 0x00, 0x00, 0xf5, 0x70, 0x73, 0x31, 0x8f, 0x01, 0x00, 0x00,
	0x54, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xcd, 0x06, 0x06, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x50, 0x00, 0x3c, 0xe4, 0x50, 0x00, 0x3c, 0xe4,
	0x40, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x03, 0x01, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x05, 0x01, 0x00,
	0x64, 0x00, 0x00, 0x00, 0xd0, 0x00, 0x00, 0x00, 0x01, 0x05, 0x01, 0x00,
	0x6d, 0x00, 0x00, 0x00, 0xd0, 0x00, 0x00, 0x00, 0x03, 0x01, 0x00, 0x00,
	0x10, 0x00, 0x00, 0x00, 0x10, 0x00, 0x00, 0x00, 0x04, 0x02, 0x00, 0x00,
	0x1d, 0x00, 0x00, 0x00, 0x1d, 0x00, 0x00, 0x00, 0x05, 0x04, 0x00, 0x00,
	0x40, 0x00, 0x00, 0x00, 0x40, 0x00, 0x00, 0x00, 0x06, 0x02, 0x00, 0x02,
	0x20, 0x00, 0x00, 0x00, 0x20, 0x00, 0x00, 0x00, 0x07, 0x02, 0x00, 0x00,
	0x23, 0x00, 0x00, 0x00, 0x23, 0x00, 0x00, 0x00, 0x08, 0x02, 0x00, 0x00,
	0x0e, 0x00, 0x00, 0x00, 0x0e, 0x00, 0x00, 0x00, 0x09, 0x02, 0x00, 0x00,
	0x0e, 0x00, 0x00, 0x00, 0x0e, 0x00, 0x00, 0x00, 0x0d, 0x01, 0x00, 0x00,
	0x08, 0x00, 0x00, 0x00, 0x08, 0x00, 0x00, 0x00, 0x0e, 0x02, 0x00, 0x00,
	0x23, 0x00, 0x00, 0x00, 0x23, 0x00, 0x00, 0x00, 0x0f, 0x03, 0x00, 0x00,
	0x22, 0x00, 0x00, 0x00, 0x22, 0x00, 0x00, 0x00, 0x10, 0x01, 0x00, 0x00,
	0x08, 0x00, 0x00, 0x00, 0x08, 0x00, 0x00, 0x00, 0x11, 0x01, 0x00, 0x00,
	0x08, 0x00, 0x00, 0x00, 0x08, 0x00, 0x00, 0x00, 0x12, 0x03, 0x00, 0x00,
	0x1e, 0x00, 0x00, 0x00, 0x1e, 0x00, 0x00, 0x00, 0x13, 0x02, 0x00, 0x00,
	0x14, 0x00, 0x00, 0x00, 0x14, 0x00, 0x00, 0x00, 0x14, 0x02, 0x00, 0x00,
	0x11, 0x00, 0x00, 0x00, 0x11, 0x00, 0x00, 0x00, 0x17, 0x01, 0x00, 0x00,
	0x08, 0x00, 0x00, 0x00, 0x08, 0x00, 0x00, 0x00, 0x18, 0x02, 0x00, 0x00,
	0x0e, 0x00, 0x00, 0x00, 0x0e, 0x00, 0x00, 0x00, 0xaa, 0x66, 0xb2, 0xa7,
	0x55, 0x00, 0x00, 0x00, 0x00, 0x20, 0x05, 0x00, 0x40, 0x00, 0x00, 0x00,
	0x01, 0x06, 0x00, 0x01, 0x05, 0x00, 0x40, 0x00, 0x00, 0x00, 0x0d, 0x06,
	0x00, 0x01, 0x05, 0x00, 0x40, 0x00, 0x00, 0x00, 0xb8, 0x06, 0x00, 0x01,
	0x05, 0x00, 0x0c, 0x02, 0x00, 0x10, 0x10, 0x11, 0x00, 0x01, 0x05, 0x00,
	0x0f, 0x02, 0x00, 0x20, 0x46, 0xff, 0xff, 0xff, 0xff, 0x05, 0x00, 0x08,
	0x0d, 0x00, 0x54, 0x0a, 0x0a, 0x0a, 0x0a, 0x00, 0x05, 0x00, 0x54, 0x01,
	0x01, 0x01, 0x01, 0x00, 0x05, 0x00, 0x02, 0x67, 0x00, 0x10, 0x05, 0x07,
	0x00, 0x00, 0x15, 0x00, 0xb0, 0x18, 0xb6, 0x06, 0x10, 0x03, 0x6d, 0x18,
	0x06, 0x3a, 0x19, 0x01, 0x55, 0x00, 0x00, 0x00, 0x00, 0x20, 0x05, 0x00,
	0x40, 0x00, 0x00, 0x00, 0x01, 0x06, 0x00, 0x01, 0x05, 0x00, 0x40, 0x00,
	0x00, 0x00, 0x0d, 0x06, 0x00, 0x01, 0x05, 0x00, 0x40, 0x00, 0x00, 0x00,
	0xb8, 0x06, 0x00, 0x01, 0x05, 0x00, 0x40, 0x00, 0x00, 0x00, 0xff, 0x06,
	0x00, 0x01, 0x05, 0x00, 0x0f, 0x02, 0x00, 0x2d, 0x46, 0xff, 0xff, 0xff,
	0xff, 0x05, 0x00, 0x08, 0x0d, 0x00, 0x54, 0x5d, 0x5d, 0x5d, 0x5d, 0x00,
	0x05, 0x00, 0xf0, 0x00, 0xb8, 0xb9, 0xb8, 0xb8, 0x00, 0xb8, 0xb8, 0xb9,
	0xb8, 0x00, 0xbb, 0xc7, 0xb8, 0x00, 0xd0, 0x76, 0x00, 0x70, 0xb9, 0x16,
	0x00, 0x00, 0x05, 0x77, 0x1e, 0xb3, 0x00, 0x90, 0x06, 0x00, 0x9a, 0x67,
	0x00, 0x06, 0x57, 0x80, 0xef, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0xff, 0xff, 0xc0, 0x00, 0x02, 0x0a, 0x03, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x06, 0x00, 0x8e, 0x39, 0x20, 0x45, 0xe3,
	0xf4, 0x02, 0x92, 0x75, 0x81, 0x5c, 0xe4, 0x80, 0x72, 0xdf, 0x86, 0x98,
	0x2c, 0x08, 0x2b, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xce, 0x0c,
	0xd9, 0xbb, 0x01, 0xab, 0x02, 0xf8, 0x30, 0x93, 0x03, 0xe0, 0x72, 0x97,
	0x06, 0x82, 0x96, 0x02, 0xe3, 0x01, 0xdc, 0x3b, 0x85, 0x23, 0xe1, 0xc2,
	0x02, 0x43, 0xc9, 0xb1, 0x02, 0xa1, 0x07, 0xd7, 0xf1, 0x03, 0x00, 0xe5,
	0x55, 0xec, 0x29, 0xfb, 0xe2, 0x04, 0xf2, 0x04, 0xab, 0xe6, 0x01, 0x97,
	0x07, 0x8b, 0x98, 0x01, 0x90, 0x0a, 0x26, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x07, 0x00, 0x8d, 0x46, 0x6c, 0xb6, 0x6a, 0x01, 0x02, 0xd4,
	0xe9, 0x0b, 0xb6, 0xc9, 0x54, 0x28, 0x22, 0x91, 0xc3, 0xe1, 0x66, 0xb7,
	0x5a, 0x1b, 0x52, 0x70, 0x73, 0x31, 0x8f, 0x01, 0x00, 0x00, 0x08, 0x00,
	0x00, 0x00, 0x06, 0x08, 0x0a, 0x0c, 0x14, 0x15, 0x3d, 0x3e, 0x40, 0x41,
	0x47, 0x47, 0x53, 0x53, 0x59, 0x5a, 0x6e, 0x6e, 0x70, 0x70, 0x84, 0x84,
	0xa3, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0xaa,
	0xaa, 0xaa, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01,
	0x00, 0x55, 0x55, 0x55, 0x01, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0xf1, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x0f, 0x00, 0x89,
	0xd8, 0xef, 0xc9, 0x67, 0xe6, 0x66, 0xd7, 0xb8, 0x59, 0x1a, 0x07, 0x15,
	0x62, 0xa3, 0x00, 0x80, 0xb6, 0x1d, 0x4c, 0xc0, 0xf8, 0x03, 0xa8, 0x04,
	0x03, 0x00, 0x00, 0x00, 0x50, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x0f, 0x00, 0x6b, 0x01, 0x00, 0x40, 0x0a, 0x16, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x02, 0x00, 0x10, 0x49, 0x05, 0x00, 0x0a, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x06, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x08, 0x00, 0x00, 0xb8, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x01, 0x00, 0x30, 0x00, 0x00, 0x00, 0x16, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x03, 0x00, 0x6d, 0xdb, 0xb6, 0x6d, 0xdb, 0xb6,
	0x40, 0xdb, 0xb6, 0x05, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x02, 0x00, 0x00, 0x00, 0x0a, 0x00, 0xa0, 0x00, 0x00, 0x03, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x01, 0x00, 0xaa, 0xaa, 0xaa, 0x00, 0x54, 0x46, 0x42, 0x31, 0x01,
	0x13, 0x64, 0x01, 0x19, 0x00, 0x00, 0x00, 0x3b, 0x02, 0x00, 0x00, 0xf6,
	0xbc, 0x45, 0x1f, 0x00, 0x00, 0x00, 0x00, 0x02, 0x70, 0x73, 0x31, 0x8f,
	0x01, 0x00, 0x00, 0x18, 0x71, 0x73, 0x31, 0x8f, 0x01, 0x00, 0x00, 0xf7,
	0x70, 0x73, 0x31, 0x8f, 0x01, 0x00, 0x00, 0x49, 0x71, 0x73, 0x31, 0x8f,
	0x01, 0x00, 0x00, 0x97, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xd7,
	0x2a, 0x0c, 0x00, 0x00, 0x00, 0x00, 0x00, 0x19, 0x00, 0xe5, 0xe6, 0x19,
	0x00, 0xe5, 0xe6, 0x40, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x03,
	0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x05, 0x01, 0x00, 0x4e, 0x00, 0x00, 0x00, 0xd0, 0x00, 0x00, 0x00, 0x01,
	0x05, 0x01, 0x00, 0x56, 0x00, 0x00, 0x00, 0xd0, 0x00, 0x00, 0x00, 0x03,
	0x01, 0x00, 0x00, 0x10, 0x00, 0x00, 0x00, 0x10, 0x00, 0x00, 0x00, 0x04,
	0x04, 0x00, 0x00, 0x22, 0x00, 0x00, 0x00, 0x22, 0x00, 0x00, 0x00, 0x05,
	0x02, 0x01, 0x00, 0x45, 0x00, 0x00, 0x00, 0x46, 0x00, 0x00, 0x00, 0x06,
	0x04, 0x00, 0x02, 0x25, 0x00, 0x00, 0x00, 0x25, 0x00, 0x00, 0x00, 0x07,
	0x02, 0x00, 0x00, 0x20, 0x00, 0x00, 0x00, 0x20, 0x00, 0x00, 0x00, 0x08,
	0x02, 0x00, 0x00, 0x0e, 0x00, 0x00, 0x00, 0x0e, 0x00, 0x00, 0x00, 0x09,
	0x02, 0x00, 0x00, 0x0e, 0x00, 0x00, 0x00, 0x0e, 0x00, 0x00, 0x00, 0x0d,
	0x01, 0x00, 0x00, 0x08, 0x00, 0x00, 0x00, 0x08, 0x00, 0x00, 0x00, 0x0e,
	0x02, 0x00, 0x00, 0x24, 0x00, 0x00, 0x00, 0x24, 0x00, 0x00, 0x00, 0x0f,
	0x02, 0x00, 0x00, 0x24, 0x00, 0x00, 0x00, 0x24, 0x00, 0x00, 0x00, 0x10,
	0x02, 0x00, 0x00, 0x17, 0x00, 0x00, 0x00, 0x17, 0x00, 0x00, 0x00, 0x11,
	0x01, 0x00, 0x00, 0x08, 0x00, 0x00, 0x00, 0x08, 0x00, 0x00, 0x00, 0x12,
	0x03, 0x00, 0x00, 0x1e, 0x00, 0x00, 0x00, 0x1e, 0x00, 0x00, 0x00, 0x13,
	0x01, 0x00, 0x00, 0x08, 0x00, 0x00, 0x00, 0x08, 0x00, 0x00, 0x00, 0x14,
	0x02, 0x00, 0x00, 0x11, 0x00, 0x00, 0x00, 0x11, 0x00, 0x00, 0x00, 0x17,
	0x01, 0x00, 0x00, 0x08, 0x00, 0x00, 0x00, 0x08, 0x00, 0x00, 0x00, 0x18,
	0x02, 0x00, 0x00, 0x11, 0x00, 0x00, 0x00, 0x11, 0x00, 0x00, 0x00, 0x0c,
	0x71, 0x9e, 0x10, 0x17, 0x00, 0x01, 0x00, 0x17, 0x20, 0x0c, 0x00, 0x28,
	0x00, 0x01, 0x0d, 0x00, 0x18, 0x0d, 0x0d, 0x00, 0x18, 0xb8, 0x0d, 0x00,
	0x09, 0x02, 0x00, 0x19, 0x10, 0x0e, 0x00, 0x0f, 0x02, 0x00, 0x14, 0x17,
	0xff, 0x01, 0x00, 0x17, 0x00, 0x0c, 0x00, 0x46, 0xff, 0x00, 0x5d, 0x0a,
	0x01, 0x00, 0x36, 0x00, 0xb8, 0x01, 0x01, 0x00, 0x50, 0x00, 0x1e, 0x00,
	0x06, 0x00, 0x03, 0x00, 0x01, 0xa6, 0x00, 0xd0, 0xef, 0xb6, 0xa3, 0x97,
	0x05, 0x31, 0x06, 0x01, 0x2f, 0x12, 0xe6, 0x1c, 0x05, 0x17, 0x00, 0x01,
	0x00, 0x17, 0x20, 0x0c, 0x00, 0x28, 0x00, 0x01, 0x0d, 0x00, 0x18, 0x0d,
	0x0d, 0x00, 0x18, 0xb8, 0x0d, 0x00, 0x18, 0xff, 0x0d, 0x00, 0x0f, 0x02,
	0x00, 0x22, 0x17, 0xff, 0x01, 0x00, 0x17, 0x00, 0x0c, 0x00, 0x46, 0xff,
	0x00, 0x0a, 0x5d, 0x01, 0x00, 0xf0, 0x19, 0x00, 0x01, 0xb8, 0xc2, 0xda,
	0xb9, 0xb8, 0xc5, 0xb8, 0xe9, 0xdd, 0xb8, 0xba, 0x00, 0x00, 0x00, 0x07,
	0x1e, 0x92, 0x00, 0xc6, 0x00, 0x8a, 0xd2, 0x1e, 0x2c, 0x00, 0x01, 0x00,
	0x7d, 0x15, 0x23, 0x00, 0x6e, 0x00, 0xc6, 0x37, 0xef, 0xce, 0x01, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xc0,
	0x00, 0x02, 0x0a, 0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x5c,
	0x02, 0x0d, 0x2f, 0x1d, 0x09, 0x0a, 0x03, 0xa8, 0x04, 0x33, 0x39, 0x24,
	0x29, 0x18, 0x1b, 0x14, 0x15, 0x00, 0x07, 0x05, 0x1e, 0x02, 0x0b, 0x05,
	0x06, 0x22, 0xb8, 0x00, 0x01, 0x00, 0xf0, 0x2f, 0x13, 0x00, 0xed, 0xab,
	0x61, 0x04, 0x80, 0x45, 0x02, 0x10, 0x4f, 0x51, 0x64, 0x0b, 0x34, 0x03,
	0xa8, 0xeb, 0x60, 0x62, 0x00, 0xe3, 0x22, 0x0d, 0xaf, 0xc0, 0xd0, 0x36,
	0xd6, 0x32, 0x50, 0x98, 0x8f, 0x64, 0x04, 0x68, 0xc9, 0x00, 0xbf, 0x01,
	0xbd, 0x42, 0x00, 0x00, 0xc0, 0x27, 0x05, 0x96, 0x0a, 0xb0, 0x17, 0x89,
	0xcc, 0x00, 0xa4, 0x02, 0xa1, 0x5c, 0x00, 0xc3, 0x1d, 0x00, 0x0f, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x32, 0x5f, 0x6a, 0x61, 0x6a, 0x8e,
	0x01, 0x8f, 0x01, 0x45, 0x45, 0x79, 0x78, 0x0a, 0x0a, 0x00, 0x01, 0x77,
	0x76, 0x47, 0x47, 0x6a, 0x6a, 0xac, 0x02, 0xad, 0x02, 0x65, 0x67, 0xf7,
	0x70, 0x73, 0x31, 0x8f, 0x01, 0x00, 0x00, 0x07, 0x00, 0x00, 0x81, 0x80,
	0x40, 0x78, 0x44, 0x2e, 0x98, 0x0d, 0x07, 0x24, 0x82, 0xc5, 0x6a, 0x36,
	0x1c, 0x6e, 0xb7, 0x33, 0x1e, 0xa1, 0x52, 0x01, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x01, 0x00, 0x59, 0x55, 0x55, 0x01, 0x01, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0xa6, 0xaa, 0xaa, 0x00, 0x01,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xbb, 0x01, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x10, 0x00, 0x00, 0x00, 0x2a, 0xe5, 0xe9, 0xcd, 0x11,
	0xa9, 0x7f, 0xdf, 0x02, 0x8f, 0x4f, 0xbc, 0xcb, 0xb2, 0x6b, 0x9b, 0x3c,
	0xa9, 0xd6, 0x85, 0x3b, 0xc6, 0x81, 0x8a, 0x19, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x10, 0x00, 0x58, 0xcb, 0xa2, 0x01, 0x37, 0x00, 0xa2,
	0x01, 0xa2, 0x01, 0xa2, 0x01, 0xa2, 0x01, 0x37, 0x00, 0xa2, 0x01, 0xa2,
	0x01, 0xd1, 0x59, 0x00, 0x00, 0xa2, 0x01, 0x0a, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x04, 0x00, 0x00, 0x0a, 0x0a, 0x00, 0xa0, 0x0a, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x06, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x08, 0x00, 0x00, 0xb8, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x01, 0x00, 0x80, 0x01, 0x00, 0x00, 0x1b, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x80, 0x02, 0x03, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x02, 0x00, 0x80, 0x12, 0x11, 0x11, 0x11, 0x11, 0x01, 0x54, 0x46,
	0x42, 0x31, 0x01, 0x12, 0x58, 0x01, 0x0a, 0x00, 0x00, 0x00, 0x1f, 0x01,
	0x00, 0x00, 0x90, 0xc8, 0x77, 0x58, 0x00, 0x00, 0x00, 0x00, 0x63, 0x70,
	0x73, 0x31, 0x8f, 0x01, 0x00, 0x00, 0x13, 0x71, 0x73, 0x31, 0x8f, 0x01,
	0x00, 0x00, 0x51, 0x71, 0x73, 0x31, 0x8f, 0x01, 0x00, 0x00, 0x62, 0x71,
	0x73, 0x31, 0x8f, 0x01, 0x00, 0x00, 0xd3, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0xd0, 0x7e, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x50, 0x00,
	0x29, 0xdc, 0x50, 0x00, 0x29, 0xdc, 0x40, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x01, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x05, 0x01, 0x00, 0x1c, 0x00, 0x00, 0x00, 0x50, 0x00,
	0x00, 0x00, 0x01, 0x05, 0x01, 0x00, 0x1e, 0x00, 0x00, 0x00, 0x50, 0x00,
	0x00, 0x00, 0x03, 0x01, 0x00, 0x00, 0x10, 0x00, 0x00, 0x00, 0x10, 0x00,
	0x00, 0x00, 0x04, 0x02, 0x00, 0x00, 0x12, 0x00, 0x00, 0x00, 0x12, 0x00,
	0x00, 0x00, 0x05, 0x04, 0x00, 0x00, 0x1e, 0x00, 0x00, 0x00, 0x1e, 0x00,
	0x00, 0x00, 0x06, 0x02, 0x00, 0x00, 0x14, 0x00, 0x00, 0x00, 0x14, 0x00,
	0x00, 0x00, 0x07, 0x02, 0x00, 0x00, 0x11, 0x00, 0x00, 0x00, 0x11, 0x00,
	0x00, 0x00, 0x08, 0x02, 0x00, 0x00, 0x0c, 0x00, 0x00, 0x00, 0x0c, 0x00,
	0x00, 0x00, 0x09, 0x02, 0x00, 0x00, 0x0c, 0x00, 0x00, 0x00, 0x0c, 0x00,
	0x00, 0x00, 0x0d, 0x01, 0x00, 0x00, 0x08, 0x00, 0x00, 0x00, 0x08, 0x00,
	0x00, 0x00, 0x0e, 0x02, 0x00, 0x00, 0x14, 0x00, 0x00, 0x00, 0x14, 0x00,
	0x00, 0x00, 0x0f, 0x02, 0x00, 0x00, 0x10, 0x00, 0x00, 0x00, 0x10, 0x00,
	0x00, 0x00, 0x10, 0x02, 0x00, 0x00, 0x0f, 0x00, 0x00, 0x00, 0x0f, 0x00,
	0x00, 0x00, 0x11, 0x01, 0x00, 0x00, 0x08, 0x00, 0x00, 0x00, 0x08, 0x00,
	0x00, 0x00, 0x13, 0x01, 0x00, 0x00, 0x08, 0x00, 0x00, 0x00, 0x08, 0x00,
	0x00, 0x00, 0x14, 0x01, 0x00, 0x00, 0x08, 0x00, 0x00, 0x00, 0x08, 0x00,
	0x00, 0x00, 0x17, 0x01, 0x00, 0x00, 0x08, 0x00, 0x00, 0x00, 0x08, 0x00,
	0x00, 0x00, 0x18, 0x02, 0x00, 0x00, 0x0d, 0x00, 0x00, 0x00, 0x0d, 0x00,
	0x00, 0x00, 0xf2, 0xab, 0x42, 0x12, 0x1f, 0x00, 0x01, 0x00, 0x1e, 0x15,
	0xff, 0x01, 0x00, 0x10, 0x0a, 0x01, 0x00, 0x10, 0x01, 0x01, 0x00, 0xa0,
	0x07, 0x00, 0x00, 0x00, 0x00, 0x65, 0x12, 0x28, 0xbc, 0x01, 0x1f, 0x00,
	0x01, 0x00, 0x1e, 0x15, 0xff, 0x01, 0x00, 0x10, 0x5d, 0x01, 0x00, 0xf0,
	0x00, 0xb9, 0xbb, 0xb8, 0xd8, 0xb8, 0xb1, 0x24, 0x7b, 0x81, 0xd8, 0x12,
	0x46, 0xbc, 0x23, 0x89, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0xff, 0xff, 0xc0, 0x00, 0x02, 0x0a, 0x06, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x06, 0x00, 0x07, 0x73, 0x40, 0x85, 0xc6, 0xad,
	0xc0, 0x01, 0x9b, 0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x8f, 0x0a,
	0xf8, 0x64, 0xc3, 0x0a, 0xd8, 0xdf, 0x01, 0x8f, 0x05, 0xba, 0x16, 0xf8,
	0x81, 0x03, 0x8f, 0xec, 0x02, 0x00, 0xd0, 0x52, 0x63, 0x70, 0x73, 0x31,
	0x8f, 0x01, 0x00, 0x00, 0x08, 0x00, 0x1a, 0x1b, 0xb0, 0xb0, 0x6b, 0x00,
	0x00, 0x6c, 0x4d, 0x4d, 0x51, 0x71, 0x73, 0x31, 0x8f, 0x01, 0x00, 0x00,
	0x05, 0x00, 0x20, 0x04, 0xd1, 0x9c, 0x7b, 0x30, 0x02, 0x01, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0xca, 0x02, 0x01, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x35, 0x01, 0x01, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0xe6, 0x97, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x0f, 0x00, 0x8b, 0x30, 0x00, 0xc0, 0x7c, 0x65, 0x88, 0xf8, 0xda,
	0x02, 0x50, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x09, 0x00, 0x6b,
	0x01, 0xac, 0x05, 0x00, 0x00, 0x0a, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x04, 0x00, 0xaa, 0x00, 0x00, 0x00, 0x00, 0x06, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x1b, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x04, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x03, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x02, 0x00, 0x44, 0xd0, 0x04, 0x54, 0x46, 0x42, 0x31, 0x02, 0x00, 0x80,
	0x00, 0x3c, 0x00, 0x00, 0x00, 0x10, 0x00, 0x00, 0x00, 0x0f, 0x28, 0xf4,
	0x80, 0x00, 0x00, 0x00, 0x00, 0x01, 0x70, 0x73, 0x31, 0x8f, 0x01, 0x00,
	0x00, 0x18, 0x71, 0x73, 0x31, 0x8f, 0x01, 0x00, 0x00, 0x52, 0x70, 0x73,
	0x31, 0x8f, 0x01, 0x00, 0x00, 0x62, 0x71, 0x73, 0x31, 0x8f, 0x01, 0x00,
	0x00, 0xbe, 0x07, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x74, 0xb0, 0x14,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x19, 0x00, 0xe5, 0xe6, 0x19, 0x00, 0xe5,
	0xe6, 0x40, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x03, 0x01, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x9b, 0x8d, 0xd1,
	0xa1, 0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x0d, 0x0a, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00,
};

/* ---- helpers ---- */

static char tmpl_dir[TEST_PATH_MAX];

static char *mktmp(void)
{
	assert_non_null(test_mkdtemp(tmpl_dir, sizeof(tmpl_dir), "test_store"));
	return tmpl_dir;
}

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *f)
{
	(void)sb;
	(void)flag;
	(void)f;
	return remove(p);
}

static void rmtree(const char *d)
{
	nftw(d, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static struct store_writer *wopen(const char *dir, uint8_t codec, uint32_t block, uint64_t now)
{
	struct store_cfg cfg;
	store_cfg_default(&cfg, dir);
	cfg.codec = codec;
	cfg.block_recs = block;
	cfg.nosync = 1;
	struct store_writer *w = store_writer_open(&cfg, now);
	assert_non_null(w);
	return w;
}

/* Reads every record of the store (all files, all blocks) into *out; returns count. */
/* Calls fn for every block of every file of dir, in store order; adds up the readers'
 * damaged blocks and tail bytes into *bad and *tail. */
typedef void (*block_fn)(struct store_reader *r, const struct store_block_info *bi,
			 void *arg);

static void each_block(const char *dir, block_fn fn, void *arg, uint64_t *bad,
		       uint64_t *tail)
{
	struct store_list l;

	*bad = *tail = 0;
	assert_int_equal(store_list_files(dir, &l), 0);
	for (size_t f = 0; f < l.n; f++) {
		struct store_reader *r = store_reader_open(l.v[f].path);
		struct store_block_info bi;
		assert_non_null(r);
		while (store_reader_next(r, &bi) > 0)
			fn(r, &bi, arg);
		*bad += store_reader_stats(r)->bad_blocks;
		*tail += store_reader_stats(r)->tail_bytes;
		store_reader_close(r);
	}
	store_list_free(&l);
}

struct collected {
	struct store_cols c;
	struct flow_rec *v;
	size_t n, cap;
};

static void collect_block(struct store_reader *r, const struct store_block_info *bi,
			  void *arg)
{
	struct collected *a = arg;

	if (store_reader_decode(r, STORE_COLS_ALL, &a->c) < 0)
		return;
	assert_int_equal(a->c.n, bi->nrec);
	for (uint32_t i = 0; i < a->c.n; i++) {
		if (a->n == a->cap)
			a->v = realloc(a->v, (a->cap *= 2) * sizeof(*a->v));
		store_cols_get(&a->c, i, &a->v[a->n++]);
	}
}

static size_t read_all(const char *dir, struct flow_rec **out, uint64_t *bad, uint64_t *tail)
{
	struct collected a = { .cap = 1024 };

	a.v = malloc(a.cap * sizeof(*a.v));
	store_cols_init(&a.c);
	each_block(dir, collect_block, &a, bad, tail);
	store_cols_free(&a.c);
	*out = a.v;
	return a.n;
}

static void assert_recs_equal(const struct flow_rec *a, const struct flow_rec *b, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (memcmp(&a[i], &b[i], sizeof(*a))) {
			print_error("record %zu differs: packets %llu/%llu first %llu/%llu sport %u/%u\n",
				    i, (unsigned long long)a[i].packets,
				    (unsigned long long)b[i].packets,
				    (unsigned long long)a[i].first_ms,
				    (unsigned long long)b[i].first_ms, a[i].sport, b[i].sport);
			fail();
		}
	}
}

static uint8_t *slurp(const char *path, size_t *len)
{
	struct stat sb;
	int fd = open(path, O_RDONLY);
	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &sb), 0);
	uint8_t *b = malloc((size_t)sb.st_size + 1);
	assert_int_equal(read(fd, b, (size_t)sb.st_size), sb.st_size);
	close(fd);
	*len = (size_t)sb.st_size;
	return b;
}

static void spit(const char *path, const uint8_t *b, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, b, len), (ssize_t)len);
	close(fd);
}

static int exists(const char *p)
{
	struct stat sb;
	return stat(p, &sb) == 0;
}

/* ---- tests ---- */

static void test_hash_vectors(void **state)
{
	(void)state;
	assert_int_equal(store_hash32("", 0, 0), 0x02CC5D05);
	assert_int_equal(store_hash32("a", 1, 0), 0x550D7456);
	assert_int_equal(store_hash32("abc", 3, 0), 0x32D153FF);
	assert_int_equal(store_hash32("Nobody inspects the spammish repetition", 39, 0),
			 0xE2293B2F);
}

static void test_time_str(void **state)
{
	char b[32];
	(void)state;
	assert_string_equal(store_time_str(0, b, sizeof(b)), "1970-01-01T00:00:00.000Z");
	assert_string_equal(store_time_str(1709164800123ULL, b, sizeof(b)),
			    "2024-02-29T00:00:00.123Z");
	assert_string_equal(store_time_str(4102444799999ULL, b, sizeof(b)),
			    "2099-12-31T23:59:59.999Z");
	/* past 2038 and 2106: no time_t on the way */
	assert_string_equal(store_time_str(4294967296000ULL, b, sizeof(b)),
			    "2106-02-07T06:28:16.000Z");
}

/* Random and realistic records, several blocks (including a 1-record one) and three
 * files, read back field by field in order. */
static void roundtrip(uint8_t codec)
{
	char *dir = mktmp();
	size_t n = 0, nrand = 7000, nreal = 9000;
	struct flow_rec *in = calloc(nrand + nreal + 2, sizeof(*in)), *out;
	uint64_t s = 42 + codec, bad, tail, now = T0;
	struct realgen g;
	struct store_writer *w = wopen(dir, codec, 2000, now);

	rg_init(&g, 7);
	for (size_t i = 0; i < nrand; i++) {
		gen_random(&s, &in[n]);
		assert_int_equal(store_writer_add(w, &in[n++]), 0);
		if (i == 2500)
			assert_int_equal(store_writer_flush(w), 0);     /* short block */
		if (i == 2501)
			assert_int_equal(store_writer_flush(w), 0);     /* 1-record block */
	}
	now += 300000;
	assert_int_equal(store_writer_rotate(w, now), 0);
	for (size_t i = 0; i < nreal; i++) {
		rg_next(&g, &in[n], NULL);
		assert_int_equal(store_writer_add(w, &in[n++]), 0);
	}
	/* a block of all-zero records and one of identical ones */
	now += 300000;
	assert_int_equal(store_writer_rotate(w, now), 0);
	memset(&in[n], 0, sizeof(*in));
	assert_int_equal(store_writer_add(w, &in[n++]), 0);
	assert_int_equal(store_writer_flush(w), 0);
	in[n] = in[n - 2];
	assert_int_equal(store_writer_add(w, &in[n++]), 0);
	assert_int_equal(store_writer_close(w), 0);

	size_t got = read_all(dir, &out, &bad, &tail);
	assert_int_equal(got, n);
	assert_int_equal(bad, 0);
	assert_int_equal(tail, 0);
	assert_recs_equal(in, out, n);

	struct store_list l;
	assert_int_equal(store_list_files(dir, &l), 0);
	assert_int_equal(l.n, 3);
	struct store_reader *r = store_reader_open(l.v[0].path);
	assert_non_null(r);
	assert_int_equal(store_reader_hdr(r)->codec, codec);
	assert_int_equal(store_reader_hdr(r)->interval_s, 300);
	store_reader_close(r);
	store_list_free(&l);
	free(in);
	free(out);
	rg_free(&g);
	rmtree(dir);
}

static void test_roundtrip_lz4(void **state)
{
	(void)state;
	roundtrip(STORE_CODEC_LZ4);
}

static void test_roundtrip_zstd(void **state)
{
	(void)state;
	roundtrip(STORE_CODEC_ZSTD);
}

static void test_roundtrip_none(void **state)
{
	(void)state;
	roundtrip(STORE_CODEC_NONE);
}

/* Decoding a subset of columns gives those columns and nothing else. */
static void test_column_mask(void **state)
{
	char *dir = mktmp();
	struct store_writer *w = wopen(dir, STORE_CODEC_LZ4, 1000, T0);
	struct flow_rec in[500], got;
	uint64_t s = 9;
	struct store_cols c;
	struct store_block_info bi;
	(void)state;

	for (int i = 0; i < 500; i++) {
		gen_random(&s, &in[i]);
		store_writer_add(w, &in[i]);
	}
	assert_int_equal(store_writer_flush(w), 0);
	struct store_reader *r = store_reader_open(store_writer_path(w));
	assert_non_null(r);
	store_cols_init(&c);
	assert_int_equal(store_reader_next(r, &bi), 1);
	uint32_t mask = STORE_COLBIT(STORE_COL_DPORT) | STORE_COLBIT(STORE_COL_SRC);
	assert_int_equal(store_reader_decode(r, mask, &c), 0);
	assert_int_equal(c.mask, mask);
	assert_null(c.packets);
	for (int i = 0; i < 500; i++) {
		store_cols_get(&c, (uint32_t)i, &got);
		assert_int_equal(got.dport, in[i].dport);
		assert_memory_equal(got.src, in[i].src, 16);
		assert_int_equal(got.packets, 0);
	}
	/* the same block again with every column */
	assert_int_equal(store_reader_decode(r, STORE_COLS_ALL, &c), 0);
	for (int i = 0; i < 500; i++) {
		store_cols_get(&c, (uint32_t)i, &got);
		assert_memory_equal(&got, &in[i], sizeof(got));
	}
	assert_int_equal(store_reader_next(r, &bi), 0);
	store_reader_close(r);
	store_cols_free(&c);
	store_writer_close(w);
	rmtree(dir);
}

/* Writes n random records (seed) into a new store under dir as one closed file; its path
 * is returned (malloc'd). */
static char *one_file(const char *dir, uint64_t seed, int n, struct flow_rec *in)
{
	struct store_writer *w = wopen(dir, STORE_CODEC_LZ4, 256, T0);
	for (int i = 0; i < n; i++) {
		gen_random(&seed, &in[i]);
		assert_int_equal(store_writer_add(w, &in[i]), 0);
	}
	char *path = strdup(store_writer_path(w));
	assert_non_null(path);
	assert_int_equal(store_writer_close(w), 0);
	return path;
}

/* Reads every record of r's file, compares with in[0..n). */
static void check_file(struct store_reader *r, const struct flow_rec *in, int n,
		     struct store_cols *c)
{
	struct store_block_info bi;
	struct flow_rec got;
	int k = 0;

	while (store_reader_next(r, &bi) > 0) {
		assert_int_equal(store_reader_decode(r, STORE_COLS_ALL, c), 0);
		for (uint32_t i = 0; i < c->n; i++, k++) {
			assert_true(k < n);
			store_cols_get(c, i, &got);
			assert_memory_equal(&got, &in[k], sizeof(got));
		}
	}
	assert_int_equal(k, n);
}

/* A reader reused from file to file (store_reader_reopen) reads each as a new one would:
 * nothing of the file before (its position, its damage, its counters) carries over. */
static void test_reader_reuse(void **state)
{
	char *dir = mktmp(), sub[3][512];
	static struct flow_rec a[700], b[300], d[300];
	struct store_cols c;
	struct store_block_info bi;
	(void)state;

	for (int i = 0; i < 3; i++)
		snprintf(sub[i], sizeof(sub[i]), "%s/s%d", dir, i);
	char *pa = one_file(sub[0], 1, 700, a), *pb = one_file(sub[1], 2, 300, b);
	char *pd = one_file(sub[2], 3, 300, d);
	/* damage pd's last block: its payload hash no longer matches */
	int fd = open(pd, O_RDWR);
	struct stat sb;
	uint8_t x;
	assert_true(fd >= 0 && fstat(fd, &sb) == 0);
	off_t at = sb.st_size - 144 - 20;
	assert_int_equal(pread(fd, &x, 1, at), 1);
	x ^= 0x55;
	assert_int_equal(pwrite(fd, &x, 1, at), 1);
	close(fd);

	store_cols_init(&c);
	/* a's first block only, then b whole */
	struct store_reader *r = store_reader_reopen(NULL, pa);
	assert_non_null(r);
	assert_int_equal(store_reader_next(r, &bi), 1);
	assert_int_equal(store_reader_decode(r, STORE_COLS_ALL, &c), 0);
	r = store_reader_reopen(r, pb);
	assert_non_null(r);
	check_file(r, b, 300, &c);
	assert_int_equal(store_reader_stats(r)->records, 300);
	/* the damaged file: its last block fails and is counted */
	r = store_reader_reopen(r, pd);
	assert_non_null(r);
	int bad = 0;
	while (store_reader_next(r, &bi) > 0)
		bad += store_reader_decode(r, STORE_COLS_ALL, &c) == -EBADMSG;
	assert_int_equal(bad, 1);
	assert_int_equal(store_reader_stats(r)->bad_hash, 1);
	/* then a, whole and clean */
	r = store_reader_reopen(r, pa);
	assert_non_null(r);
	check_file(r, a, 700, &c);
	assert_int_equal(store_reader_stats(r)->bad_blocks, 0);
	assert_int_equal(store_reader_stats(r)->records, 700);
	/* a file that cannot be opened: NULL, errno, and the spare is gone (ASan: no leak) */
	char missing[600];
	snprintf(missing, sizeof(missing), "%s/none.tfs", dir);
	errno = 0;
	assert_null(store_reader_reopen(r, missing));
	assert_int_equal(errno, ENOENT);
	/* through descriptors too */
	fd = open(pb, O_RDONLY);
	assert_true(fd >= 0);
	r = store_reader_reopen_fd(NULL, fd);
	assert_non_null(r);
	check_file(r, b, 300, &c);
	r = store_reader_reopen_fd(r, fd);
	assert_non_null(r);
	check_file(r, b, 300, &c);
	store_reader_close(r);
	assert_true(fcntl(fd, F_GETFD) >= 0);   /* the caller's descriptor stays open */
	close(fd);
	store_cols_free(&c);
	free(pa);
	free(pb);
	free(pd);
	rmtree(dir);
}

/* The decoding buffers' allocator: big ones 2 MiB-aligned (huge pages), all zeroed and
 * usable to their last byte. */
static void test_big_zalloc(void **state)
{
	static const size_t len[] = { 1, 4096, (2u << 20) - 1, 2u << 20, (3u << 20) + 5,
				      (8u << 20) + 4096 };
	(void)state;
	for (size_t i = 0; i < sizeof(len) / sizeof(len[0]); i++) {
		uint8_t *p = sys_big_zalloc(len[i]);
		assert_non_null(p);
		if (len[i] >= (2u << 20))
			assert_int_equal((uintptr_t)p % (2u << 20), 0);
		for (size_t j = 0; j < len[i]; j += 4096)
			assert_int_equal(p[j], 0);
		assert_int_equal(p[len[i] - 1], 0);
		memset(p, 0xa5, len[i]);
		sys_big_free(p, len[i]);
	}
	sys_big_free(NULL, 1u << 22);
}

/* A flush makes records durable and visible in the file still being written. */
static void test_flush_visible(void **state)
{
	char *dir = mktmp();
	struct store_cfg cfg;
	struct flow_rec in[150], *out;
	uint64_t s = 3, bad, tail;
	(void)state;

	store_cfg_default(&cfg, dir);          /* sync on: the real path */
	struct store_writer *w = store_writer_open(&cfg, T0 + 1234);
	assert_non_null(w);
	assert_null(store_writer_path(w));     /* files appear with their first block */
	for (int i = 0; i < 100; i++) {
		gen_random(&s, &in[i]);
		store_writer_add(w, &in[i]);
	}
	assert_int_equal(read_all(dir, &out, &bad, &tail), 0);
	free(out);
	assert_int_equal(store_writer_flush(w), 0);
	assert_true(store_writer_stats(w)->syncs >= 1);
	assert_non_null(store_writer_path(w));
	assert_int_equal(read_all(dir, &out, &bad, &tail), 100);
	assert_int_equal(tail, 0);
	assert_recs_equal(in, out, 100);
	free(out);
	for (int i = 100; i < 150; i++) {
		gen_random(&s, &in[i]);
		store_writer_add(w, &in[i]);
	}
	assert_int_equal(store_writer_flush(w), 0);
	assert_int_equal(read_all(dir, &out, &bad, &tail), 150);
	assert_recs_equal(in, out, 150);
	free(out);

	struct store_reader *r = store_reader_open(store_writer_path(w));
	struct store_zone z;
	struct store_block_info bi;
	while (store_reader_next(r, &bi) > 0)
		;
	assert_int_equal(store_reader_stats(r)->closed, 0);
	assert_int_equal(store_reader_file_zone(r, &z), 0);
	store_reader_close(r);
	assert_int_equal(store_writer_close(w), 0);
	rmtree(dir);
}

/* Reads a store file image; returns records decoded; checks they match in[]. */
static size_t read_image(const uint8_t *b, size_t len, const struct flow_rec *in,
			 const struct store_read_stats **stp, struct store_reader **rp,
			 struct store_cols *c)
{
	struct store_reader *r = store_reader_open_mem(b, len);
	struct store_block_info bi;
	struct flow_rec got;
	size_t n = 0;

	*rp = r;
	*stp = NULL;
	if (!r)
		return 0;
	*stp = store_reader_stats(r);
	while (store_reader_next(r, &bi) > 0) {
		if (store_reader_decode(r, STORE_COLS_ALL, c) < 0)
			continue;
		for (uint32_t i = 0; i < c->n; i++) {
			store_cols_get(c, i, &got);
			if (memcmp(&got, &in[n + i], sizeof(got)))
				return (size_t)-1;
		}
		n += c->n;
	}
	return n;
}

static void make_three_blocks(const char *dir, uint8_t codec, struct flow_rec *in,
			      uint64_t *ends, char **path)
{
	struct store_writer *w = wopen(dir, codec, 300, T0);
	struct realgen g;
	rg_init(&g, 11);
	for (int i = 0; i < 900; i++) {
		rg_next(&g, &in[i], NULL);
		store_writer_add(w, &in[i]);
		if (i % 300 == 299) {
			struct stat sb;
			store_writer_flush(w);
			stat(store_writer_path(w), &sb);
			ends[i / 300] = (uint64_t)sb.st_size;
		}
	}
	*path = strdup(store_writer_path(w));
	assert_int_equal(store_writer_close(w), 0);
	rg_free(&g);
}

/* A file cut at every byte offset: the complete blocks before the cut read back, the rest
 * counts as tail, nothing else happens. */
static void test_truncate_every_offset(void **state)
{
	char *dir = mktmp(), *path;
	struct flow_rec in[900];
	uint64_t ends[3];
	size_t len;
	struct store_cols c;
	(void)state;

	make_three_blocks(dir, STORE_CODEC_LZ4, in, ends, &path);
	uint8_t *img = slurp(path, &len);
	store_cols_init(&c);
	assert_true(len > ends[2]);     /* the footer */
	for (size_t cut = 0; cut <= len; cut++) {
		const struct store_read_stats *st;
		struct store_reader *r;
		size_t n = read_image(img, cut, in, &st, &r, &c);
		assert_non_null(r);
		size_t want = cut >= ends[2] ? 900 : cut >= ends[1] ? 600 : cut >= ends[0] ? 300 : 0;
		uint64_t good_end = cut >= ends[2] ? ends[2] : cut >= ends[1] ? ends[1]
				  : cut >= ends[0] ? ends[0] : cut < 64 ? 0 : 64;
		assert_int_equal(n, want);
		assert_int_equal(st->bad_blocks, 0);
		if (cut == len) {
			assert_int_equal(st->closed, 1);
			assert_int_equal(st->tail_bytes, 0);
		} else {
			assert_int_equal(st->closed, 0);
			assert_int_equal(st->tail_bytes, cut - good_end);
		}
		store_reader_close(r);
	}
	/* and through a real file cut short */
	uint64_t cuts[] = { ends[1] + 1, ends[1] + 130, ends[2] - 1, ends[2] + 5 };
	for (size_t k = 0; k < 4; k++) {
		struct store_cols c2;
		uint64_t bad, tail;
		struct flow_rec *out;
		assert_int_equal(truncate(path, (off_t)cuts[k]), 0);
		store_cols_init(&c2);
		size_t n = read_all(dir, &out, &bad, &tail);
		assert_int_equal(n, cuts[k] >= ends[2] ? 900 : 600);
		assert_recs_equal(in, out, n);
		assert_int_equal(bad, 0);
		assert_true(tail > 0);
		free(out);
		spit(path, img, len);   /* whole again for the next cut */
	}
	store_cols_free(&c);
	free(img);
	free(path);
	rmtree(dir);
}

/* One flipped byte anywhere in the middle block is caught: that block is skipped and
 * counted, its neighbours read back intact. */
static void test_corrupt_every_byte(void **state)
{
	char *dir = mktmp(), *path;
	struct flow_rec in[900];
	uint64_t ends[3];
	size_t len;
	struct store_cols c;
	(void)state;

	make_three_blocks(dir, STORE_CODEC_ZSTD, in, ends, &path);
	uint8_t *img = slurp(path, &len);
	store_cols_init(&c);
	for (uint64_t off = ends[0]; off < ends[1]; off++) {
		const struct store_read_stats *st;
		struct store_reader *r;
		struct store_block_info bi;
		struct flow_rec got;
		size_t n = 0;

		img[off] ^= 0x5a;
		r = store_reader_open_mem(img, len);
		assert_non_null(r);
		while (store_reader_next(r, &bi) > 0) {
			if (store_reader_decode(r, STORE_COLS_ALL, &c) < 0)
				continue;
			size_t base = bi.off == 64 ? 0 : 600;
			assert_true(bi.off == 64 || bi.off == ends[1]);
			for (uint32_t i = 0; i < c.n; i++) {
				store_cols_get(&c, i, &got);
				assert_memory_equal(&got, &in[base + i], sizeof(got));
			}
			n += c.n;
		}
		st = store_reader_stats(r);
		assert_int_equal(n, 600);
		assert_int_equal(st->bad_blocks, 1);
		assert_int_equal(st->bad_hash + st->bad_format, 1);
		assert_int_equal(st->closed, 1);
		store_reader_close(r);
		img[off] ^= 0x5a;
	}
	/* the file header */
	for (size_t off = 0; off < 64; off++) {
		img[off] ^= 0x01;
		struct store_reader *r = store_reader_open_mem(img, len);
		assert_null(r);
		assert_true(errno == EBADMSG || errno == EILSEQ || errno == ENOTSUP);
		img[off] ^= 0x01;
	}
	/* with verification off the damage goes unnoticed but nothing breaks */
	img[ends[0] + 300] ^= 0xff;
	struct store_reader *r = store_reader_open_mem(img, len);
	struct store_block_info bi;
	store_reader_set_verify(r, 0);
	while (store_reader_next(r, &bi) > 0)
		store_reader_decode(r, STORE_COLS_ALL, &c);
	store_reader_close(r);
	store_cols_free(&c);
	free(img);
	free(path);
	rmtree(dir);
}

static void test_bad_files(void **state)
{
	char *dir = mktmp(), p[256];
	uint8_t junk[4096];
	uint64_t s = 5;
	(void)state;

	for (size_t i = 0; i < sizeof(junk); i++)
		junk[i] = (uint8_t)rnd(&s);
	assert_null(store_reader_open_mem(junk, sizeof(junk)));
	assert_int_equal(errno, EILSEQ);
	assert_string_equal(store_strerror(-EILSEQ), "not a tapflow store file");

	/* big-endian byte-order mark, later version */
	char *path;
	struct flow_rec in[900];
	uint64_t ends[3];
	size_t len;
	make_three_blocks(dir, STORE_CODEC_LZ4, in, ends, &path);
	uint8_t *img = slurp(path, &len);
	uint8_t save[8];
	memcpy(save, img, 8);
	img[4] = 1, img[5] = 2, img[6] = 3, img[7] = 4;
	assert_null(store_reader_open_mem(img, len));
	assert_int_equal(errno, ENOTSUP);
	memcpy(img, save, 8);
	img[8] = STORE_VERSION + 1;
	uint32_t h = store_hash32(img, 60, 0);
	img[60] = (uint8_t)h, img[61] = (uint8_t)(h >> 8), img[62] = (uint8_t)(h >> 16),
	img[63] = (uint8_t)(h >> 24);
	assert_null(store_reader_open_mem(img, len));
	assert_int_equal(errno, ENOTSUP);
	free(img);

	/* a half-written header reads as an empty file, an empty file too */
	uint8_t hdr_part[10];
	memcpy(hdr_part, "TFST\x04\x03\x02\x01\x01\x00", 10);
	struct store_reader *r = store_reader_open_mem(hdr_part, 10);
	struct store_block_info bi;
	assert_non_null(r);
	assert_int_equal(store_reader_next(r, &bi), 0);
	assert_int_equal(store_reader_stats(r)->tail_bytes, 10);
	store_reader_close(r);
	r = store_reader_open_mem(hdr_part, 0);
	assert_non_null(r);
	assert_int_equal(store_reader_next(r, &bi), 0);
	store_reader_close(r);

	/* store_check: a store, a file, an empty directory, something else */
	assert_int_equal(store_check(dir), 0);
	assert_int_equal(store_check(path), 0);
	snprintf(p, sizeof(p), "%s/nothere", dir);
	assert_int_equal(store_check(p), -ENOENT);
	snprintf(p, sizeof(p), "%s/empty", dir);
	mkdir(p, 0755);
	assert_int_equal(store_check(p), 0);
	snprintf(p, sizeof(p), "%s/empty/nfcapd.202405010000", dir);
	spit(p, junk, 100);
	snprintf(p, sizeof(p), "%s/empty", dir);
	assert_int_equal(store_check(p), -EILSEQ);
	snprintf(p, sizeof(p), "%s/empty/nfcapd.202405010000", dir);
	assert_int_equal(store_check(p), -EILSEQ);

	/* a scan counts a junk file under a store name and goes on */
	snprintf(p, sizeof(p), "%s/2024/05/01/tf-202405010005.tfs", dir);
	spit(p, junk, sizeof(junk));
	struct store_summary sum;
	assert_int_equal(store_summary(dir, NULL, NULL, NULL, &sum), 0);
	assert_int_equal(sum.flows, 900);
	assert_int_equal(sum.scan.bad_files, 1);
	assert_int_equal(sum.scan.files, 1);
	free(path);
	rmtree(dir);
}

/* Writer killed with SIGKILL while writing: everything flushed survives, the reader copes
 * with the open file, and the next writer repairs and continues it. */
static void test_kill9_recovery(void **state)
{
	char *dir = mktmp();
	int pfd[2];
	uint64_t flushed = 0, bad, tail;
	struct flow_rec *out, *exp;
	pid_t pid;
	(void)state;

	assert_int_equal(pipe(pfd), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct store_cfg cfg;
		struct realgen g;
		struct flow_rec r;
		store_cfg_default(&cfg, dir);
		cfg.block_recs = 64;
		struct store_writer *w = store_writer_open(&cfg, T0);
		rg_init(&g, 99);
		for (uint64_t i = 1;; i++) {
			rg_next(&g, &r, NULL);
			store_writer_add(w, &r);
			if (i % 100 == 0) {
				store_writer_flush(w);
				if (write(pfd[1], &i, sizeof(i)) != sizeof(i))
					_exit(1);
			}
		}
	}
	close(pfd[1]);
	while (flushed < 3000)
		assert_int_equal(read(pfd[0], &flushed, sizeof(flushed)), sizeof(flushed));
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	while (read(pfd[0], &flushed, sizeof(flushed)) == sizeof(flushed))
		;
	close(pfd[0]);

	/* the expected stream: same generator; the child may have flushed once more (100)
	 * and died before saying so */
	struct realgen g;
	size_t nexp = flushed + 100 + 1000;
	exp = calloc(nexp, sizeof(*exp));
	rg_init(&g, 99);
	for (uint64_t i = 0; i < nexp; i++)
		rg_next(&g, &exp[i], NULL);

	size_t n = read_all(dir, &out, &bad, &tail);
	assert_true(n >= flushed);
	assert_true(n <= flushed + 100);
	assert_int_equal(bad, 0);
	assert_recs_equal(exp, out, n);
	free(out);

	/* the kill may have cut a write short (a fatal signal ends a write between pages);
	 * add a torn write on top: half a block header at the end */
	uint64_t tail0 = tail;
	struct store_list l;
	assert_int_equal(store_list_files(dir, &l), 0);
	assert_int_equal(l.n, 1);
	int fd = open(l.v[0].path, O_WRONLY | O_APPEND);
	assert_int_equal(write(fd, "TFB1\x01\x05\xbc\x00\x40\x00", 10), 10);
	close(fd);
	assert_int_equal(read_all(dir, &out, &bad, &tail), n);
	assert_int_equal(tail, tail0 + 10);
	free(out);

	/* reopen in the same interval: repaired and continued */
	struct store_writer *w = wopen(dir, STORE_CODEC_LZ4, 64, T0 + 1000);
	assert_int_equal(store_writer_stats(w)->recovered_files, 1);
	assert_int_equal(store_writer_stats(w)->truncated_bytes, tail0 + 10);
	assert_string_equal(store_writer_path(w), l.v[0].path);
	for (size_t i = n; i < n + 1000; i++)
		store_writer_add(w, &exp[i]);
	assert_int_equal(store_writer_close(w), 0);
	assert_int_equal(read_all(dir, &out, &bad, &tail), n + 1000);
	assert_int_equal(bad, 0);
	assert_int_equal(tail, 0);
	assert_recs_equal(exp, out, n + 1000);
	free(out);
	struct store_reader *r = store_reader_open(l.v[0].path);
	struct store_zone z;
	assert_int_equal(store_reader_file_zone(r, &z), 1);
	assert_int_equal(z.first_min <= exp[0].first_ms, 1);
	store_reader_close(r);

	/* a closed file of the current interval is reopened and extended, footer moved */
	w = wopen(dir, STORE_CODEC_LZ4, 64, T0 + 2000);
	store_writer_add(w, &exp[0]);
	assert_int_equal(store_writer_close(w), 0);
	assert_int_equal(read_all(dir, &out, &bad, &tail), n + 1001);
	assert_int_equal(tail, 0);
	free(out);
	store_list_free(&l);
	free(exp);
	rg_free(&g);
	rmtree(dir);
}

/* A file left open in an earlier interval is closed by the next writer; a last block
 * whose payload never reached the disk (zeros) is cut off. */
static void test_recover_older_and_zeroed_tail(void **state)
{
	char *dir = mktmp(), *path;
	struct flow_rec in[900], *out;
	uint64_t ends[3], bad, tail;
	size_t len;
	(void)state;

	make_three_blocks(dir, STORE_CODEC_LZ4, in, ends, &path);
	uint8_t *img = slurp(path, &len);
	/* drop the footer, zero the last block's payload */
	size_t hl = (size_t)(img[ends[1] + 6] | img[ends[1] + 7] << 8);
	memset(img + ends[1] + hl, 0, (size_t)(ends[2] - ends[1] - hl));
	spit(path, img, (size_t)ends[2]);
	assert_int_equal(read_all(dir, &out, &bad, &tail), 600);
	assert_int_equal(bad, 1);
	free(out);

	struct store_writer *w = wopen(dir, STORE_CODEC_LZ4, 300, T0 + 3 * 300000);
	assert_int_equal(store_writer_stats(w)->recovered_files, 1);
	assert_int_equal(store_writer_stats(w)->truncated_bytes, ends[2] - ends[1]);
	assert_int_equal(store_writer_stats(w)->files_closed, 1);
	assert_null(store_writer_path(w));
	store_writer_add(w, &in[0]);
	assert_int_equal(store_writer_close(w), 0);

	struct store_reader *r = store_reader_open(path);
	struct store_zone z;
	assert_int_equal(store_reader_file_zone(r, &z), 1);
	store_reader_close(r);
	assert_int_equal(read_all(dir, &out, &bad, &tail), 601);
	assert_int_equal(bad, 0);
	assert_int_equal(tail, 0);
	assert_recs_equal(in, out, 600);
	free(out);
	free(img);
	free(path);
	rmtree(dir);
}

/* Rotation across a year boundary builds the date hierarchy and closes each file. */
static void test_rotation(void **state)
{
	char *dir = mktmp(), p[256];
	uint64_t now = 1704066900000ULL;        /* 2023-12-31T23:55:00Z */
	struct flow_rec r;
	uint64_t s = 1;
	(void)state;

	struct store_writer *w = wopen(dir, STORE_CODEC_LZ4, 1000, now + 12345);
	gen_random(&s, &r);
	store_writer_add(w, &r);
	assert_int_equal(store_writer_rotate(w, now + 299999), 0);    /* same interval */
	assert_int_equal(store_writer_stats(w)->files_closed, 0);
	store_writer_add(w, &r);
	assert_int_equal(store_writer_rotate(w, now + 300000), 0);
	assert_int_equal(store_writer_stats(w)->files_closed, 1);
	store_writer_add(w, &r);
	assert_int_equal(store_writer_rotate(w, now + 3 * 300000 + 5), 0);
	store_writer_add(w, &r);
	assert_int_equal(store_writer_close(w), 0);

	snprintf(p, sizeof(p), "%s/2023/12/31/tf-202312312355.tfs", dir);
	assert_true(exists(p));
	snprintf(p, sizeof(p), "%s/2024/01/01/tf-202401010000.tfs", dir);
	assert_true(exists(p));
	snprintf(p, sizeof(p), "%s/2024/01/01/tf-202401010005.tfs", dir);
	assert_false(exists(p));                /* no records, no file */
	snprintf(p, sizeof(p), "%s/2024/01/01/tf-202401010010.tfs", dir);
	assert_true(exists(p));

	struct store_list l;
	assert_int_equal(store_list_files(dir, &l), 0);
	assert_int_equal(l.n, 3);
	assert_int_equal(l.v[0].start_ms, now);
	assert_int_equal(l.v[1].start_ms, now + 300000);
	assert_int_equal(l.v[2].start_ms, now + 900000);
	for (size_t i = 0; i < l.n; i++) {
		struct store_reader *rd = store_reader_open(l.v[i].path);
		struct store_block_info bi;
		size_t recs = 0;
		while (store_reader_next(rd, &bi) > 0)
			recs += bi.nrec;
		assert_int_equal(recs, i == 0 ? 2 : 1);
		assert_int_equal(store_reader_stats(rd)->closed, 1);
		assert_int_equal(store_reader_hdr(rd)->start_ms, l.v[i].start_ms);
		store_reader_close(rd);
	}
	store_list_free(&l);

	/* one writer a store */
	w = wopen(dir, STORE_CODEC_LZ4, 1000, now);
	struct store_cfg cfg;
	store_cfg_default(&cfg, dir);
	assert_null(store_writer_open(&cfg, now));
	assert_int_equal(errno, EBUSY);
	assert_int_equal(store_writer_close(w), 0);
	w = wopen(dir, STORE_CODEC_LZ4, 1000, now);
	assert_int_equal(store_writer_close(w), 0);

	/* bad configurations */
	store_cfg_default(&cfg, dir);
	cfg.interval_s = 90;
	assert_null(store_writer_open(&cfg, now));
	assert_int_equal(errno, EINVAL);
	store_cfg_default(&cfg, dir);
	cfg.block_recs = STORE_MAX_BLOCK_RECS + 1;
	assert_null(store_writer_open(&cfg, now));
	rmtree(dir);
}

/* Writes one small file per interval start in starts[]. */
static void make_files(const char *dir, const uint64_t *starts, size_t n, uint32_t recs)
{
	uint64_t s = 77;
	struct flow_rec r;
	struct store_writer *w = wopen(dir, STORE_CODEC_LZ4, 1000, starts[0]);
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(store_writer_rotate(w, starts[i]), 0);
		for (uint32_t k = 0; k < recs; k++) {
			gen_random(&s, &r);
			r.first_ms = starts[i] + k;
			r.last_ms = starts[i] + k + 10;
			store_writer_add(w, &r);
		}
	}
	assert_int_equal(store_writer_close(w), 0);
}

static void test_retention_age(void **state)
{
	char *dir = mktmp(), p[256];
	const uint64_t day = 86400000ULL;
	uint64_t starts[] = { T0 - 2 * day, T0 - 2 * day + 300000, T0 - day - 600000, T0 - 300000,
			      T0 };
	struct store_retention_result res;
	(void)state;

	make_files(dir, starts, 5, 50);
	/* keep one day: the two files of 2024-04-29 and the one ending at T0-day-300000 go */
	assert_int_equal(store_retention(dir, 86400, 0, T0 + 1000, &res), 0);
	assert_int_equal(res.files, 3);
	assert_int_equal(res.kept_files, 2);
	assert_int_equal(res.dirs, 1);
	snprintf(p, sizeof(p), "%s/2024/04/29", dir);
	assert_false(exists(p));
	snprintf(p, sizeof(p), "%s/2024/04/30/tf-202404302355.tfs", dir);
	assert_true(exists(p));
	snprintf(p, sizeof(p), "%s/2024/05/01/tf-202405010000.tfs", dir);
	assert_true(exists(p));
	/* nothing more to do */
	assert_int_equal(store_retention(dir, 86400, 0, T0 + 1000, &res), 0);
	assert_int_equal(res.files, 0);
	rmtree(dir);
}

static void test_retention_size(void **state)
{
	char *dir = mktmp();
	uint64_t starts[] = { T0, T0 + 300000, T0 + 600000, T0 + 900000 };
	struct store_retention_result res;
	struct store_list l;
	uint64_t size[4], total = 0;
	(void)state;

	make_files(dir, starts, 4, 200);
	assert_int_equal(store_list_files(dir, &l), 0);
	for (int i = 0; i < 4; i++) {
		struct stat sb;
		stat(l.v[i].path, &sb);
		size[i] = (uint64_t)sb.st_size;
		total += size[i];
	}
	/* one byte under what the newest two take: the oldest two go, whole */
	assert_int_equal(store_retention(dir, 0, total - size[0] - size[1], T0, &res), 0);
	assert_int_equal(res.files, 2);
	assert_int_equal(res.bytes, size[0] + size[1]);
	assert_int_equal(res.kept_bytes, size[2] + size[3]);
	assert_false(exists(l.v[0].path));
	assert_false(exists(l.v[1].path));
	assert_true(exists(l.v[2].path));
	store_list_free(&l);

	/* the file a writer holds open is never deleted */
	struct store_writer *w = wopen(dir, STORE_CODEC_LZ4, 1000, T0 + 3600000);
	struct flow_rec r;
	uint64_t s = 1;
	gen_random(&s, &r);
	store_writer_add(w, &r);
	assert_int_equal(store_writer_flush(w), 0);
	assert_int_equal(store_retention(dir, 1, 1, T0 + 10 * 86400000ULL, &res), 0);
	assert_int_equal(res.files, 2);
	assert_int_equal(res.kept_files, 1);
	assert_true(exists(store_writer_path(w)));
	assert_int_equal(store_writer_close(w), 0);
	assert_int_equal(store_retention(dir, 1, 1, T0 + 10 * 86400000ULL, &res), 0);
	assert_int_equal(res.files, 1);
	assert_int_equal(res.kept_files, 0);
	rmtree(dir);
}

struct count_ctx {
	uint64_t recs;
};

static int count_block(const struct store_cols *c, const struct store_block_info *bi, void *arg)
{
	(void)bi;
	((struct count_ctx *)arg)->recs += c->n;
	return 0;
}

/* Adds n random flows, flow i first seen at first0 + i * step and lasting dur ms. */
static void add_timed(struct store_writer *w, uint64_t *seed, int n, uint64_t first0,
		      uint64_t step, uint64_t dur)
{
	struct flow_rec r;

	for (int i = 0; i < n; i++) {
		gen_random(seed, &r);
		r.first_ms = first0 + (uint64_t)i * step;
		r.last_ms = r.first_ms + dur;
		store_writer_add(w, &r);
	}
}

/* Blocks and files whose zone maps miss the window are skipped without decoding. */
static void test_zone_skip(void **state)
{
	char *dir = mktmp();
	const uint64_t hour = 3600000ULL;
	uint64_t s = 8;
	(void)state;

	/* file A: 5 blocks of 100, block k covers hour k; file B, 10 h later: 1 block */
	struct store_writer *w = wopen(dir, STORE_CODEC_ZSTD, 100, T0);
	for (int k = 0; k < 5; k++)
		add_timed(w, &s, 100, T0 + (uint64_t)k * hour, 1000, 500);
	store_writer_rotate(w, T0 + 10 * hour);
	add_timed(w, &s, 100, T0 + 10 * hour, 1, 0);
	assert_int_equal(store_writer_close(w), 0);

	struct store_window win = { T0 + 2 * hour + 50500, T0 + 2 * hour + 60000 };
	struct count_ctx cc = { 0 };
	struct store_scan_opts o = { .win = &win, .mask = STORE_COLBIT(STORE_COL_FIRST),
				     .block = count_block, .arg = &cc };
	struct store_scan_stats st;
	assert_int_equal(store_scan(dir, &o, &st), 0);
	assert_int_equal(st.blocks, 1);
	assert_int_equal(st.blocks_skipped, 4);
	assert_int_equal(st.files, 1);
	assert_int_equal(st.files_skipped, 1);   /* B: its footer zone rules it out */
	assert_int_equal(cc.recs, 100);

	/* summary counts only the overlapping records: i = 50..60 */
	struct store_summary sum;
	assert_int_equal(store_summary(dir, &win, NULL, NULL, &sum), 0);
	assert_int_equal(sum.flows, 11);
	assert_int_equal(sum.first_ms, T0 + 2 * hour + 50000);

	/* the whole store */
	assert_int_equal(store_summary(dir, NULL, NULL, NULL, &sum), 0);
	assert_int_equal(sum.flows, 600);
	assert_int_equal(sum.scan.blocks, 6);
	assert_int_equal(sum.first_ms, T0);
	assert_int_equal(sum.last_ms, T0 + 10 * hour + 99);
	rmtree(dir);
}

/* A file's name says when its records arrived: an exporter hours behind writes them
 * into a file named long after they happened, and a window on their time finds them. */
static void test_late_export(void **state)
{
	char *dir = mktmp();
	const uint64_t hour = 3600000ULL;
	uint64_t s = 9;
	(void)state;

	/* file named T0 + 5 h holds flows of T0 .. T0 + 99 s; a later one, flows of its own */
	struct store_writer *w = wopen(dir, STORE_CODEC_LZ4, 100, T0 + 5 * hour);
	add_timed(w, &s, 100, T0, 1000, 10);
	store_writer_rotate(w, T0 + 6 * hour);
	add_timed(w, &s, 100, T0 + 6 * hour, 1, 0);
	assert_int_equal(store_writer_close(w), 0);

	struct store_window win = { T0, T0 + 9999 };   /* i = 0..9 */
	struct store_summary sum;
	assert_int_equal(store_summary(dir, &win, NULL, NULL, &sum), 0);
	assert_int_equal(sum.flows, 10);
	assert_int_equal(sum.first_ms, T0);
	assert_int_equal(sum.scan.files, 1);
	assert_int_equal(sum.scan.files_skipped, 1);
	rmtree(dir);
}

/* Realistic flows must fit in under 10 bytes each, with LZ4 as with zstd, and the
 * summary must agree with what went in. Prints the figures (STORE_COLS=1: per column). */
static void test_bytes_per_flow(void **state)
{
	const size_t n = 200000;
	(void)state;

	for (int codec = STORE_CODEC_LZ4; codec <= STORE_CODEC_ZSTD; codec++) {
		char *dir = mktmp();
		struct realgen g;
		struct flow_rec r;
		uint64_t pk = 0, by = 0, exp_ms = 0;
		struct store_writer *w = wopen(dir, (uint8_t)codec, STORE_DEFAULT_BLOCK_RECS, T0);

		rg_init(&g, 2024);
		for (size_t i = 0; i < n; i++) {
			rg_next(&g, &r, &exp_ms);
			pk += r.packets;
			by += r.bytes;
			store_writer_add(w, &r);
		}
		const struct store_writer_stats *ws = store_writer_stats(w);
		assert_int_equal(store_writer_flush(w), 0);
		double bpf = (double)ws->file_bytes / (double)n;
		print_message("  %s: %.2f bytes/flow over %zu realistic flows (%.1f s of traffic)\n",
			      codec == STORE_CODEC_LZ4 ? "lz4 " : "zstd", bpf, n,
			      (double)(exp_ms - T0) / 1000);
		for (int c = 0; c < STORE_NCOLS && getenv("STORE_COLS"); c++)
			print_message("    col %2d %.3f\n", c, (double)ws->col_bytes[c] / n);
		/* measured 8.1 (zstd) and 8.3 (LZ4); version 1 had 8.7 and 10.8 */
		assert_true(bpf <= (codec == STORE_CODEC_ZSTD ? 8.8 : 9.5));
		assert_int_equal(store_writer_close(w), 0);

		struct store_summary sum;
		assert_int_equal(store_summary(dir, NULL, NULL, NULL, &sum), 0);
		assert_int_equal(sum.flows, n);
		assert_int_equal(sum.packets, pk);
		assert_int_equal(sum.bytes, by);
		assert_int_equal(sum.scan.bad_blocks, 0);
		rg_free(&g);
		rmtree(dir);
	}
}


/* Version 1 files (the first format) still read, record for record. */
static void test_read_v1(void **state)
{
	struct store_reader *r = store_reader_open_mem(v1_file, sizeof(v1_file));
	struct store_block_info bi;
	struct store_cols c;
	struct flow_rec want, got;
	struct realgen g;
	size_t n = 0;
	(void)state;

	assert_non_null(r);
	assert_int_equal(store_reader_hdr(r)->version, 1);
	rg_init(&g, 5);
	store_cols_init(&c);
	while (store_reader_next(r, &bi) > 0) {
		assert_int_equal(store_reader_decode(r, STORE_COLS_ALL, &c), 0);
		for (uint32_t i = 0; i < c.n; i++, n++) {
			rg_next(&g, &want, NULL);
			store_cols_get(&c, i, &got);
			assert_memory_equal(&got, &want, sizeof(got));
		}
	}
	assert_int_equal(n, 60);
	assert_int_equal(store_reader_stats(r)->closed, 1);
	assert_int_equal(store_reader_stats(r)->bad_blocks, 0);
	store_reader_close(r);
	store_cols_free(&c);
	rg_free(&g);
}

/* A writer continuing a version 1 file of its interval marks it version 3 with the
 * XXH32 payload hash its blocks have; old and new blocks read back. */
static void test_continue_v1(void **state)
{
	char *dir = mktmp(), p[256];
	struct flow_rec in[100], *out;
	struct realgen g;
	uint64_t bad, tail;
	(void)state;

	snprintf(p, sizeof(p), "%s/2024", dir);
	assert_int_equal(mkdir(p, 0755), 0);
	snprintf(p, sizeof(p), "%s/2024/05", dir);
	assert_int_equal(mkdir(p, 0755), 0);
	snprintf(p, sizeof(p), "%s/2024/05/01", dir);
	assert_int_equal(mkdir(p, 0755), 0);
	snprintf(p, sizeof(p), "%s/2024/05/01/tf-202405010000.tfs", dir);
	spit(p, v1_file, sizeof(v1_file));
	rg_init(&g, 5);
	for (int i = 0; i < 100; i++)
		rg_next(&g, &in[i], NULL);
	struct store_writer *w = wopen(dir, STORE_CODEC_LZ4, 1000, T0 + 1000);
	for (int i = 60; i < 100; i++)
		assert_int_equal(store_writer_add(w, &in[i]), 0);
	assert_int_equal(store_writer_close(w), 0);
	assert_int_equal(read_all(dir, &out, &bad, &tail), 100);
	assert_int_equal(bad, 0);
	assert_int_equal(tail, 0);
	assert_recs_equal(in, out, 100);
	free(out);
	struct store_reader *r = store_reader_open(p);
	assert_non_null(r);
	assert_int_equal(store_reader_hdr(r)->version, STORE_VERSION);
	assert_int_equal(store_reader_hdr(r)->phash, STORE_PHASH_XXH32);
	store_reader_close(r);
	rg_free(&g);
	rmtree(dir);
}

/* Both payload hashes: a file written with each names it in its header and reads back
 * whole, and a flipped payload byte fails its block; a writer continuing a file keeps the
 * file's hash whatever its own setting; a version 3 header naming no known hash, or a
 * setting naming none, is refused; a block with a flag no version defines is damaged. */
static void test_payload_hashes(void **state)
{
	static const uint8_t kinds[] = { STORE_PHASH_XXH32, STORE_PHASH_XXH3 };
	struct flow_rec in[100], *out;
	struct realgen g;
	struct store_cfg cfg;
	uint64_t bad, tail;
	(void)state;

	rg_init(&g, 7);
	for (int i = 0; i < 100; i++)
		rg_next(&g, &in[i], NULL);
	for (unsigned k = 0; k < 2; k++) {
		char *dir = mktmp(), *path;
		store_cfg_default(&cfg, dir);
		cfg.block_recs = 25;
		cfg.nosync = 1;
		cfg.phash = kinds[k];
		struct store_writer *w = store_writer_open(&cfg, T0);
		assert_non_null(w);
		for (int i = 0; i < 50; i++)
			assert_int_equal(store_writer_add(w, &in[i]), 0);
		path = strdup(store_writer_path(w));
		assert_int_equal(store_writer_close(w), 0);
		/* continued by a writer set to the other hash */
		cfg.phash = kinds[1 - k];
		w = store_writer_open(&cfg, T0 + 1000);
		assert_non_null(w);
		for (int i = 50; i < 100; i++)
			assert_int_equal(store_writer_add(w, &in[i]), 0);
		assert_int_equal(store_writer_close(w), 0);
		assert_int_equal(read_all(dir, &out, &bad, &tail), 100);
		assert_int_equal(bad, 0);
		assert_int_equal(tail, 0);
		assert_recs_equal(in, out, 100);
		free(out);

		size_t len;
		uint8_t *img = slurp(path, &len);
		struct store_reader *r = store_reader_open_mem(img, len);
		assert_non_null(r);
		assert_int_equal(store_reader_hdr(r)->version, STORE_VERSION);
		assert_int_equal(store_reader_hdr(r)->phash, kinds[k]);
		assert_int_equal(img[37], kinds[k]);
		store_reader_close(r);
		/* one payload byte of the first block flipped: that block fails its hash */
		size_t hl = (size_t)img[STORE_FILE_HDR_LEN + 6] | (size_t)img[STORE_FILE_HDR_LEN + 7] << 8;
		img[STORE_FILE_HDR_LEN + hl + 3] ^= 0x10;
		struct store_block_info bi;
		struct store_cols c;
		store_cols_init(&c);
		r = store_reader_open_mem(img, len);
		assert_non_null(r);
		assert_int_equal(store_reader_next(r, &bi), 1);
		assert_int_equal(store_reader_decode(r, STORE_COLS_ALL, &c), -EBADMSG);
		assert_int_equal(store_reader_next(r, &bi), 1);
		assert_int_equal(store_reader_decode(r, STORE_COLS_ALL, &c), 0);
		store_reader_close(r);
		store_cols_free(&c);
		img[STORE_FILE_HDR_LEN + hl + 3] ^= 0x10;
		/* a block flag this reader does not know: that block is damaged, the rest read */
		uint8_t *bh = img + STORE_FILE_HDR_LEN;
		bh[20] |= 2;
		uint32_t hh = store_hash32(bh, hl - 4, 0);
		bh[hl - 4] = (uint8_t)hh, bh[hl - 3] = (uint8_t)(hh >> 8),
		bh[hl - 2] = (uint8_t)(hh >> 16), bh[hl - 1] = (uint8_t)(hh >> 24);
		store_cols_init(&c);
		r = store_reader_open_mem(img, len);
		assert_non_null(r);
		uint32_t recs = 0;
		while (store_reader_next(r, &bi) > 0) {
			assert_int_equal(store_reader_decode(r, STORE_COLS_ALL, &c), 0);
			recs += c.n;
		}
		assert_int_equal(recs, 75);
		assert_int_equal(store_reader_stats(r)->bad_blocks, 1);
		store_reader_close(r);
		store_cols_free(&c);
		free(img);
		img = slurp(path, &len);
		/* a hash this reader does not know, or none */
		for (unsigned bad_kind = 0; bad_kind < 4; bad_kind += 3) {
			img[37] = (uint8_t)bad_kind;
			uint32_t h = store_hash32(img, 60, 0);
			img[60] = (uint8_t)h, img[61] = (uint8_t)(h >> 8),
			img[62] = (uint8_t)(h >> 16), img[63] = (uint8_t)(h >> 24);
			assert_null(store_reader_open_mem(img, len));
			assert_int_equal(errno, ENOTSUP);
		}
		free(img);
		free(path);
		rmtree(dir);
	}
	cfg.phash = STORE_PHASH_XXH3 + 1;
	errno = 0;
	assert_null(store_writer_open(&cfg, T0));
	assert_int_equal(errno, EINVAL);
	/* the hashes themselves: the low 32 bits of XXH3_64bits("") (xxHash's value), XXH32 */
	assert_int_equal(store_payload_hash(STORE_PHASH_XXH3, "", 0), (uint32_t)0x2D06800538D394C2ULL);
	assert_int_equal(store_payload_hash(STORE_PHASH_XXH32, "abc", 3), 0x32D153FF);
	rg_free(&g);
}

/* Columns shaped to reach each coding path: a tuple with more than 1024 distinct values
 * (members coded apart), Huffman codes that must be length-limited (Fibonacci counts),
 * ports with many values of which a few are frequent, a wide 32-bit column of few values,
 * counters up to 2^64 - 1 (BITLEN's 64-bit class), constant and all-zero columns. */
#define PACKABLE (STORE_COLBIT(STORE_COL_PACKETS) | STORE_COLBIT(STORE_COL_BYTES) | \
		  STORE_COLBIT(STORE_COL_FIRST) | STORE_COLBIT(STORE_COL_LAST))

/* The current block's columns of mask with the counters and times, and the address
 * codes, asked for packed (into c) read as in plain (a plain decode of them all),
 * through the packed views and again once unpacked. Returns the columns that came
 * packed (address columns: their codes). */
static uint32_t check_packed(struct store_reader *r, uint32_t mask, const struct store_cols *plain,
			     struct store_cols *c)
{
	const uint32_t addrs = STORE_COLBIT(STORE_COL_SRC) | STORE_COLBIT(STORE_COL_DST);
	assert_int_equal(store_reader_decode_codes(r, mask, PACKABLE | addrs | STORE_CODES_PACKED,
						   c), 0);
	assert_int_equal(c->n, plain->n);
	assert_int_equal(c->mask & c->packed, 0);
	assert_int_equal(c->packed & ~PACKABLE, 0);
	if (c->lastdiff)
		assert_true(c->packed & STORE_COLBIT(STORE_COL_LAST));
	uint32_t got = c->packed;
	for (int k = 0; k < 2; k++) {
		const int col = k ? STORE_COL_DST : STORE_COL_SRC;
		const uint8_t (*want)[16] = k ? plain->dst : plain->src;
		struct store_packed v;
		if (!(c->codes & STORE_COLBIT(col)))
			continue;
		if (!c->code[k])
			got |= STORE_COLBIT(col);
		store_cols_code_view(c, k, &v);
		for (uint32_t i = 0; i < c->n; i++) {
			uint64_t x = store_packed_get(&v, i);
			assert_true(x < c->nd[k]);
			assert_memory_equal(c->dict[k][x], want[i], 16);
		}
	}
	for (int col = STORE_COL_PACKETS; col <= STORE_COL_LAST; col++) {
		const uint64_t *want = store_cols_array(plain, col);
		struct store_packed v, l;
		if (!(mask & STORE_COLBIT(col)))
			continue;
		assert_true((c->mask | c->packed) & STORE_COLBIT(col));
		store_cols_packed_view(c, col, &v);
		store_cols_packed_view(c, STORE_COL_LAST, &l);
		for (uint32_t i = 0; i < c->n; i++) {
			uint64_t x = store_packed_get(&v, i);
			if (col == STORE_COL_FIRST && c->lastdiff)
				x = store_packed_get(&l, i) - x;
			assert_int_equal(x, want[i]);
		}
	}
	assert_int_equal(store_cols_unpack(c), 0);
	assert_int_equal(c->packed, 0);
	assert_int_equal(c->lastdiff, 0);
	for (int k = 0; k < 2; k++) {
		if (!(c->codes & STORE_COLBIT(k ? STORE_COL_DST : STORE_COL_SRC)))
			continue;
		assert_non_null(c->code[k]);
		for (uint32_t i = 0; i < c->n; i++)
			assert_memory_equal(c->dict[k][c->code[k][i]], k ? plain->dst[i] : plain->src[i],
					    16);
	}
	for (int col = STORE_COL_PACKETS; col <= STORE_COL_LAST; col++)
		if (mask & STORE_COLBIT(col))
			assert_memory_equal(store_cols_array(c, col), store_cols_array(plain, col),
					    c->n * sizeof(uint64_t));
	return got;
}

/* Counters and times decode side by side (and FIRST against LAST): any subset of them
 * must come out as the whole does, packed or not. */
struct subsets {
	const struct flow_rec *in;
	size_t n, at;
	struct store_cols c, plain, pk;
};

static void check_subsets_block(struct store_reader *r, const struct store_block_info *bi,
				void *arg)
{
	static const uint32_t masks[] = {
		STORE_COLBIT(STORE_COL_FIRST),
		STORE_COLBIT(STORE_COL_BYTES) | STORE_COLBIT(STORE_COL_FIRST),
		STORE_COLBIT(STORE_COL_PACKETS) | STORE_COLBIT(STORE_COL_LAST),
		STORE_COLBIT(STORE_COL_PACKETS) | STORE_COLBIT(STORE_COL_BYTES) |
			STORE_COLBIT(STORE_COL_FIRST) | STORE_COLBIT(STORE_COL_LAST) |
			STORE_COLBIT(STORE_COL_DPORT),
	};
	struct subsets *a = arg;
	struct store_cols *c = &a->c;

	assert_int_equal(store_reader_decode(r, STORE_COLS_ALL, &a->plain), 0);
	for (size_t m = 0; m < sizeof(masks) / sizeof(masks[0]); m++)
		check_packed(r, masks[m], &a->plain, &a->pk);
	check_packed(r, STORE_COLS_ALL, &a->plain, &a->pk);     /* address codes too */
	/* tuple members as the dictionary, its indices packed where they can be */
	assert_int_equal(store_reader_decode_codes(r, STORE_TUPLE_MEMBERS, STORE_TUPLE_MEMBERS,
						   &a->pk), 0);
	for (uint32_t i = 0; a->pk.tuple && i < a->pk.n; i++) {
		struct flow_rec x, y;
		store_cols_get(&a->pk, i, &x);
		store_cols_get(&a->plain, i, &y);
		assert_int_equal(x.proto, y.proto);
		assert_int_equal(x.tos, y.tos);
		assert_int_equal(x.in_if, y.in_if);
		assert_int_equal(x.vlan, y.vlan);
		assert_int_equal(x.end_reason, y.end_reason);
	}
	for (size_t m = 0; m < sizeof(masks) / sizeof(masks[0]); m++) {
		assert_int_equal(store_reader_decode(r, masks[m], c), 0);
		assert_true(a->at + c->n <= a->n);
		for (uint32_t i = 0; i < c->n; i++) {
			const struct flow_rec *e = &a->in[a->at + i];
			if (masks[m] & STORE_COLBIT(STORE_COL_FIRST))
				assert_int_equal(c->first_ms[i], e->first_ms);
			if (masks[m] & STORE_COLBIT(STORE_COL_LAST))
				assert_int_equal(c->last_ms[i], e->last_ms);
			if (masks[m] & STORE_COLBIT(STORE_COL_BYTES))
				assert_int_equal(c->bytes[i], e->bytes);
			if (masks[m] & STORE_COLBIT(STORE_COL_PACKETS))
				assert_int_equal(c->packets[i], e->packets);
			if (masks[m] & STORE_COLBIT(STORE_COL_DPORT))
				assert_int_equal(c->dport[i], e->dport);
		}
	}
	a->at += bi->nrec;
}

static void check_time_subsets(const char *dir, const struct flow_rec *in, size_t n)
{
	struct subsets a = { .in = in, .n = n };
	uint64_t bad, tail;

	store_cols_init(&a.c);
	store_cols_init(&a.plain);
	store_cols_init(&a.pk);
	each_block(dir, check_subsets_block, &a, &bad, &tail);
	assert_int_equal(a.at, n);
	store_cols_free(&a.c);
	store_cols_free(&a.plain);
	store_cols_free(&a.pk);
}

static void test_coding_paths(void **state)
{
	const size_t n = 16000;
	struct flow_rec *in = calloc(n, sizeof(*in)), *out;
	uint64_t s = 17, bad, tail, fib[24] = { 1, 1 };
	(void)state;

	for (int k = 2; k < 24; k++)
		fib[k] = fib[k - 1] + fib[k - 2];
	for (int codec = STORE_CODEC_NONE; codec <= STORE_CODEC_ZSTD; codec++) {
		char *dir = mktmp();
		struct store_writer *w = wopen(dir, (uint8_t)codec, (uint32_t)n / 2, T0);
		for (size_t i = 0; i < n; i++) {
			struct flow_rec *r = &in[i];
			/* Fibonacci-skewed protocol and tos; in the second block 2000 distinct in_if
			 * too, so its tuple has too many entries */
			uint64_t u = rnd_below(&s, fib[21]), k = 0;
			while (k < 20 && u >= fib[k + 1])
				u -= fib[++k];
			addr4(r->src, 0x0a000000 + (uint32_t)rnd_below(&s, 500));
			addr4(r->dst, 0x0b000000 + (uint32_t)rnd_below(&s, 70000));
			addr4(r->exporter, 0xc0000201);
			r->ipver = 4;
			r->proto = (uint8_t)k;
			r->tos = (uint8_t)(k * 3);
			r->in_if = i < n / 2 ? 1 : (uint32_t)rnd_below(&s, 2000);
			r->out_if = 2;
			r->vlan = i < n / 2 ? 10 : (uint16_t)rnd_below(&s, 100);
			r->sport = rnd_below(&s, 4) ? (uint16_t)(1024 + rnd_below(&s, 60000))
						   : (uint16_t)(i % 7 * 1000);
			r->dport = rnd_below(&s, 3) ? 443 : (uint16_t)rnd_below(&s, 65536);
			r->src_as = rnd_below(&s, 2) ? 4000000000u : 65551;
			r->sampling = 1;
			r->packets = 1 + (uint64_t)k;
			r->bytes = rnd_below(&s, 50) ? 40 + rnd_below(&s, 1500)
						     : UINT64_MAX - rnd_below(&s, 1000);
			r->first_ms = T0 + i * 3;
			r->last_ms = r->first_ms + (rnd_below(&s, 2) ? 0 : rnd_below(&s, 1u << 20));
			r->end_reason = (uint8_t)(i % 3);
			assert_int_equal(store_writer_add(w, r), 0);
		}
		/* the tuple took the first block only */
		assert_true(store_writer_stats(w)->tuple_bytes > 0);
		assert_true(store_writer_stats(w)->col_bytes[STORE_COL_IN_IF] > 0);
		assert_int_equal(store_writer_close(w), 0);
		assert_int_equal(read_all(dir, &out, &bad, &tail), n);
		assert_int_equal(bad, 0);
		assert_recs_equal(in, out, n);
		check_time_subsets(dir, in, n);
		free(out);
		rmtree(dir);
	}
	free(in);
}

/* A one-packet IPv4 TCP flow at t of random size from an ephemeral port (s: the
 * random state; addresses and dport left zero). */
static void tcp_rec(struct flow_rec *r, uint64_t *s, uint64_t t)
{
	memset(r, 0, sizeof(*r));
	r->ipver = 4;
	r->proto = 6;
	r->packets = 1;
	r->bytes = 40 + rnd_below(s, 1000);
	r->first_ms = r->last_ms = t;
	r->sport = (uint16_t)(1024 + rnd_below(s, 60000));
}

/* Address columns as dictionary codes (store_reader_decode_codes): each record's
 * address through its code is the one a plain decode gives; codes come for the
 * dictionary-coded columns only, and in a block with mirrored records for both or
 * neither. */
struct codes_seen {
	struct store_cols plain, coded;
	uint32_t got[8];        /* codes handed out per block: asked for both */
	uint32_t got_src[8];    /* ... asked for src only, dst wanted as addresses */
	unsigned nb;
};

static void check_codes_block(struct store_reader *r, const struct store_block_info *bi,
			      void *arg)
{
	struct codes_seen *a = arg;
	const uint32_t addrs = STORE_COLBIT(STORE_COL_SRC) | STORE_COLBIT(STORE_COL_DST);
	const uint32_t mask = addrs | STORE_COLBIT(STORE_COL_BYTES);
	struct store_cols *c = &a->coded;

	assert_true(a->nb < 8);
	assert_int_equal(store_reader_decode(r, STORE_COLS_ALL, &a->plain), 0);
	for (int pass = 0; pass < 2; pass++) {
		uint32_t want = pass ? STORE_COLBIT(STORE_COL_SRC) : addrs;
		assert_int_equal(store_reader_decode_codes(r, mask, want, c), 0);
		assert_int_equal(c->n, bi->nrec);
		assert_int_equal(c->codes & ~want, 0);
		assert_int_equal(c->mask & c->codes, 0);
		assert_int_equal((c->mask | c->codes) & addrs, addrs);
		(pass ? a->got_src : a->got)[a->nb] = c->codes;
		for (uint32_t i = 0; i < c->n; i++) {
			struct flow_rec x;
			store_cols_get(c, i, &x);
			assert_memory_equal(x.src, a->plain.src[i], 16);
			assert_memory_equal(x.dst, a->plain.dst[i], 16);
			assert_int_equal(x.bytes, a->plain.bytes[i]);
			for (int k = 0; k < 2; k++)
				if (c->codes & STORE_COLBIT(k ? STORE_COL_DST : STORE_COL_SRC))
					assert_true(c->code[k][i] < c->nd[k]);
		}
	}
	a->nb++;
}

static void test_address_codes(void **state)
{
	enum { B = 1000 };
	const uint32_t S = STORE_COLBIT(STORE_COL_SRC), D = STORE_COLBIT(STORE_COL_DST);
	char *dir = mktmp();
	struct store_writer *w = wopen(dir, STORE_CODEC_LZ4, B, T0);
	struct codes_seen a = { .nb = 0 };
	uint64_t s = 5, bad, tail;
	struct flow_rec prev;
	(void)state;

	memset(&prev, 0, sizeof(prev));
	for (int b = 0; b < 4; b++) {
		for (uint32_t i = 0; i < B; i++) {
			struct flow_rec r;
			tcp_rec(&r, &s, T0 + (uint64_t)b * B + i);
			r.dport = 443;
			switch (b) {
			case 0: /* src from a few (dictionary), dst all different (raw) */
				addr4(r.src, 0x0a000000 + (uint32_t)rnd_below(&s, 50));
				addr4(r.dst, 0x0b000000 + i * 7919);
				break;
			case 1: /* src one address, dst a few, IPv6 among them */
				addr4(r.src, 0x0a000001);
				if (rnd_below(&s, 4)) {
					addr4(r.dst, 0x0b000000 + (uint32_t)rnd_below(&s, 20));
				} else {
					memcpy(r.dst, "\x20\x01\x0d\xb8\0\0\0\0\0\0\0\0\0\0\0", 16);
					r.dst[15] = (uint8_t)rnd_below(&s, 5);
				}
				break;
			default: /* replies to the flow before (mirrored); src: 2 a few, 3 many */
				addr4(r.src, 0x0a000000 + (uint32_t)rnd_below(&s, b == 2 ? 30 : 1u << 30));
				addr4(r.dst, 0x0b000000 + (uint32_t)rnd_below(&s, 10));
				if (i % 2) {
					memcpy(r.src, prev.dst, 16);
					memcpy(r.dst, prev.src, 16);
					r.sport = prev.dport;
					r.dport = prev.sport;
				}
				break;
			}
			prev = r;
			assert_int_equal(store_writer_add(w, &r), 0);
		}
	}
	assert_int_equal(store_writer_close(w), 0);
	store_cols_init(&a.plain);
	store_cols_init(&a.coded);
	each_block(dir, check_codes_block, &a, &bad, &tail);
	assert_int_equal(bad, 0);
	assert_int_equal(a.nb, 4);
	assert_int_equal(a.got[0], S);          /* dst raw: addresses */
	assert_int_equal(a.got[1], S | D);      /* one address is a dictionary of one */
	assert_int_equal(a.got[2], S | D);      /* mirrored: one code space */
	assert_int_equal(a.got[3], 0);          /* mirrored, src raw: neither */
	assert_int_equal(a.got_src[0], S);
	assert_int_equal(a.got_src[1], S);
	assert_int_equal(a.got_src[2], 0);      /* mirrored, dst wanted as addresses */
	store_cols_free(&a.plain);
	store_cols_free(&a.coded);
	rmtree(dir);
}

/* Port columns as codes (store_reader_decode_codes): given for blocks that store a port
 * as frequent values and exceptions, each record's port through them (one pass, or one
 * record) is the one a plain decode gives; other codings, and mirrored blocks, give
 * values. */
struct pcodes_seen {
	struct store_cols plain, coded;
	uint32_t got[4];
	unsigned nb;
};

static void check_pcodes_block(struct store_reader *r, const struct store_block_info *bi,
			       void *arg)
{
	struct pcodes_seen *a = arg;
	const uint32_t ports = STORE_COLBIT(STORE_COL_SPORT) | STORE_COLBIT(STORE_COL_DPORT);
	struct store_cols *c = &a->coded;

	assert_true(a->nb < 4);
	assert_int_equal(store_reader_decode(r, STORE_COLS_ALL, &a->plain), 0);
	assert_int_equal(store_reader_decode_codes(r, ports | STORE_COLBIT(STORE_COL_BYTES), ports,
						   c), 0);
	assert_int_equal(c->n, bi->nrec);
	assert_int_equal(c->mask & c->pcodes, 0);
	assert_int_equal((c->mask | c->pcodes) & ports, ports);
	a->got[a->nb++] = c->pcodes;
	for (int k = 0; k < 2; k++) {
		const uint16_t *want = k ? a->plain.dport : a->plain.sport;
		if (!(c->pcodes & STORE_COLBIT(k ? STORE_COL_DPORT : STORE_COL_SPORT)))
			continue;
		assert_true(c->pnf[k] >= 1 && c->pnf[k] <= STORE_PDICT_MAX);
		assert_memory_equal(store_cols_port_values(c, k), want, c->n * sizeof(*want));
		for (uint32_t i = 0; i < c->n; i += 97) {
			struct flow_rec x;
			store_cols_get(c, i, &x);
			assert_int_equal(k ? x.dport : x.sport, want[i]);
			assert_int_equal(x.bytes, a->plain.bytes[i]);
		}
	}
}

static void test_port_codes(void **state)
{
	enum { B = 8000 };      /* ports of more than 1024 values: no plain dictionary */
	static const uint16_t common[] = { 443, 80, 53, 22, 8080, 123 };
	char *dir = mktmp();
	struct store_writer *w = wopen(dir, STORE_CODEC_LZ4, B, T0);
	struct pcodes_seen a = { .nb = 0 };
	uint64_t s = 9, bad, tail;
	struct flow_rec prev;
	(void)state;

	memset(&prev, 0, sizeof(prev));
	for (int b = 0; b < 3; b++) {
		for (uint32_t i = 0; i < B; i++) {
			struct flow_rec r;
			tcp_rec(&r, &s, T0 + (uint64_t)b * B + i);
			addr4(r.src, 0x0a000000 + (uint32_t)rnd_below(&s, 5000));
			addr4(r.dst, 0x0b000000 + (uint32_t)rnd_below(&s, 5000));
			/* services a few ports, with ephemeral ones among them */
			r.dport = rnd_below(&s, 3) ? common[rnd_below(&s, 6)] :
				  (uint16_t)(1024 + rnd_below(&s, 60000));
			if (b == 1)             /* one port: no dictionary */
				r.dport = 443;
			if (b == 2 && i % 2) {  /* replies after their requests: mirrored */
				memcpy(r.src, prev.dst, 16);
				memcpy(r.dst, prev.src, 16);
				r.sport = prev.dport;
				r.dport = prev.sport;
			}
			prev = r;
			assert_int_equal(store_writer_add(w, &r), 0);
		}
	}
	assert_int_equal(store_writer_close(w), 0);
	store_cols_init(&a.plain);
	store_cols_init(&a.coded);
	each_block(dir, check_pcodes_block, &a, &bad, &tail);
	assert_int_equal(bad, 0);
	assert_int_equal(a.nb, 3);
	assert_int_equal(a.got[0], STORE_COLBIT(STORE_COL_DPORT));      /* sport spread out */
	assert_int_equal(a.got[1], 0);
	assert_int_equal(a.got[2], 0);
	store_cols_free(&a.plain);
	store_cols_free(&a.coded);
	rmtree(dir);
}

/* Counters and times stored as plain bit-packed values come packed where asked: LAST
 * even with FIRST coded against it, full-range values (64 bits), not a width of two
 * loads (57-63 bits); the values equal a plain decode's (compressed counters, which
 * stay unpacked, in test_coding_paths). So do address codes, and the indices of a
 * tuple dictionary of two. */
struct packed_seen {
	struct store_cols plain, c;
	uint32_t got[8];
	int lastdiff[8], tpacked[8];
	unsigned nb;
};

static void packed_block(struct store_reader *r, const struct store_block_info *bi, void *arg)
{
	struct packed_seen *a = arg;
	(void)bi;
	assert_true(a->nb < 8);
	assert_int_equal(store_reader_decode(r, STORE_COLS_ALL, &a->plain), 0);
	a->got[a->nb] = check_packed(r, PACKABLE | STORE_COLBIT(STORE_COL_DST), &a->plain, &a->c);
	assert_int_equal(store_reader_decode_codes(r, PACKABLE, PACKABLE, &a->c), 0);
	a->lastdiff[a->nb] = a->c.lastdiff;
	/* the tuple (TCP or UDP): one bit a record, handed out packed */
	assert_int_equal(store_reader_decode_codes(r, STORE_COLBIT(STORE_COL_PROTO),
						   STORE_TUPLE_MEMBERS, &a->c), 0);
	assert_int_equal(a->c.tuple, STORE_COLBIT(STORE_COL_PROTO));
	a->tpacked[a->nb++] = !a->c.tidx;
	for (uint32_t i = 0; i < a->c.n; i++) {
		struct flow_rec x;
		store_cols_get(&a->c, i, &x);
		assert_int_equal(x.proto, a->plain.proto[i]);
	}
	/* FIRST alone: LAST comes along, as it does unpacked */
	check_packed(r, STORE_COLBIT(STORE_COL_FIRST), &a->plain, &a->c);
}

static void test_packed_columns(void **state)
{
	enum { B = 5000 };
	uint64_t s = 23, bad, tail;
	struct packed_seen a = { .nb = 0 };
	(void)state;

	store_cols_init(&a.plain);
	store_cols_init(&a.c);
	for (int codec = STORE_CODEC_NONE; codec <= STORE_CODEC_LZ4; codec++) {
		char *dir = mktmp();
		struct store_writer *w = wopen(dir, (uint8_t)codec, B, T0);
		for (int b = 0; b < 3; b++) {
			for (uint32_t i = 0; i < B; i++) {
				struct flow_rec r;
				/* ends spread over the block's minute in no order, short flows */
				tcp_rec(&r, &s, T0 + (uint64_t)b * 60000 + rnd_below(&s, 60000));
				r.first_ms = r.last_ms - rnd_below(&s, 4);
				r.proto = rnd_below(&s, 3) ? 6 : 17;
				addr4(r.dst, 0x0b000000 + (uint32_t)rnd_below(&s, 1000));
				r.packets = 1 + rnd_below(&s, 1u << 20);
				if (b == 1)             /* the full range: 64 bits a value */
					r.bytes = rnd_below(&s, 2) ? rnd(&s) | 1ULL << 63 : rnd(&s) >> 1;
				else if (b == 2)        /* 60 bits */
					r.bytes = rnd(&s) >> 4;
				assert_int_equal(store_writer_add(w, &r), 0);
			}
		}
		assert_int_equal(store_writer_close(w), 0);
		a.nb = 0;
		each_block(dir, packed_block, &a, &bad, &tail);
		assert_int_equal(bad, 0);
		assert_int_equal(a.nb, 3);
		const uint32_t pb = STORE_COLBIT(STORE_COL_PACKETS) | STORE_COLBIT(STORE_COL_BYTES) |
				    STORE_COLBIT(STORE_COL_LAST);
		/* LZ4 leaves the counters and times as they are: they do not compress */
		assert_int_equal(a.got[0] & pb, pb);
		assert_int_equal(a.got[1] & pb, pb);
		assert_int_equal(a.got[2] & pb, pb & ~STORE_COLBIT(STORE_COL_BYTES));
		for (unsigned b = 0; codec == STORE_CODEC_NONE && b < 3; b++)   /* 10-bit codes */
			assert_true(a.got[b] & STORE_COLBIT(STORE_COL_DST));
		for (unsigned b = 0; b < 3; b++) {
			assert_int_equal(a.lastdiff[b], 1);
			assert_int_equal(a.tpacked[b], 1);
		}
		rmtree(dir);
	}
	store_cols_free(&a.plain);
	store_cols_free(&a.c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hash_vectors),
		cmocka_unit_test(test_time_str),
		cmocka_unit_test(test_roundtrip_lz4),
		cmocka_unit_test(test_roundtrip_zstd),
		cmocka_unit_test(test_roundtrip_none),
		cmocka_unit_test(test_column_mask),
		cmocka_unit_test(test_reader_reuse),
		cmocka_unit_test(test_big_zalloc),
		cmocka_unit_test(test_flush_visible),
		cmocka_unit_test(test_truncate_every_offset),
		cmocka_unit_test(test_corrupt_every_byte),
		cmocka_unit_test(test_bad_files),
		cmocka_unit_test(test_kill9_recovery),
		cmocka_unit_test(test_recover_older_and_zeroed_tail),
		cmocka_unit_test(test_rotation),
		cmocka_unit_test(test_retention_age),
		cmocka_unit_test(test_retention_size),
		cmocka_unit_test(test_zone_skip),
		cmocka_unit_test(test_late_export),
		cmocka_unit_test(test_bytes_per_flow),
		cmocka_unit_test(test_read_v1),
		cmocka_unit_test(test_continue_v1),
		cmocka_unit_test(test_payload_hashes),
		cmocka_unit_test(test_coding_paths),
		cmocka_unit_test(test_address_codes),
		cmocka_unit_test(test_port_codes),
		cmocka_unit_test(test_packed_columns),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
