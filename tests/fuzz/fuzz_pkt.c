/* fuzz_pkt.c: libFuzzer target for the packet parser. Every input is parsed as each
 * link type (and one value outside the enum), and the results are checked against
 * what pkt.h promises; any broken promise aborts.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pkt.h"

static void check(int cond)
{
	if (!cond)
		abort();
}

static void check_ok(const struct pkt_info *pi, uint32_t in_if)
{
	static const uint8_t mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

	check(pi->key.ipver == 4 || pi->key.ipver == 6);
	check(pi->key.in_if == in_if);
	check(!pi->key.pad[0] && !pi->key.pad[1] && !pi->key.pad[2]);
	check(pi->key.vlan <= 0x0fff);
	check(pi->frag <= PKT_FRAG_LATER);
	if (pi->key.ipver == 4) {
		check(!memcmp(pi->key.src, mapped, 12) && !memcmp(pi->key.dst, mapped, 12));
		check(pi->ip_len >= 20);
	} else {
		check(pi->ip_len >= 40);
	}
	if (pi->frag == PKT_FRAG_LATER)
		check(!pi->key.sport && !pi->key.dport && !pi->tcp_flags);
	if (pi->frag == PKT_FRAG_NONE)
		check(pi->frag_id == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* An odd-aligned copy must parse the same as the original. */
	uint8_t *odd = malloc(size + 1);
	if (!odd)
		return 0;
	if (size)
		memcpy(odd + 1, data, size);

	for (int link = PKT_LINK_ETH; link <= PKT_LINK_CHDLC + 1; link++) {
		struct pkt_info a, b;
		uint32_t in_if = (uint32_t)size * 31u + (uint32_t)link;

		memset(&a, 0x5a, sizeof(a));
		memset(&b, 0xa5, sizeof(b));
		int r = pkt_parse(data, size, (enum pkt_link)link, in_if, &a);
		int r2 = pkt_parse(odd + 1, size, (enum pkt_link)link, in_if, &b);
		check(r >= 0 && r < PKT_NRESULTS);
		check(strcmp(pkt_result_name(r), "unknown") != 0);
		check(r == r2);
		if (r != PKT_OK)
			continue;
		check_ok(&a, in_if);
		check(!memcmp(&a.key, &b.key, sizeof(a.key)) && a.ip_len == b.ip_len &&
		      a.frag_id == b.frag_id && a.tcp_flags == b.tcp_flags && a.frag == b.frag);
	}
	free(odd);
	return 0;
}
