/* fuzz_nfdec.c: libFuzzer target for the NetFlow v5/v9/IPFIX decoder. One input is a
 * sequence of datagrams fed to one decoder, so templates, options and held data meet
 * the data sets that follow them:
 *   [ctl: 1 byte][length: 2 bytes, big-endian][datagram] ...
 * ctl bits 0-1 choose one of four exporter addresses (one more than max_exporters, so
 * the cap is hit too); bits 2-7 advance the clock by that many seconds, after which
 * nfdec_tick runs. Each datagram is copied to a buffer of its exact size so a read past
 * its end is caught. Broken promises of nfdec.h abort.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bytes.h"
#include "nfdec.h"

#define MAX_TEMPLATES 8
#define MAX_EXPORTERS 3
#define PENDING_BYTES 8192

static void check(int cond)
{
	if (!cond)
		abort();
}

struct seen {
	uint64_t flows;
};

static void on_flow(const struct flow_rec *r, void *arg)
{
	struct seen *s = arg;
	static const uint8_t mapped[12] = { [10] = 0xff, [11] = 0xff };

	s->flows++;
	check(r->ipver == 4 || r->ipver == 6);
	if (r->ipver == 4)
		check(!memcmp(r->src, mapped, 12) && !memcmp(r->dst, mapped, 12));
	check(r->sampling >= 1);
	check(r->end_reason <= FLOW_END_RESOURCE);
	check(!r->pad[0] && !r->pad[1] && !r->pad[2]);
	check(flowrec_is4(r->exporter));
}

static void check_stats(const struct nfdec *d, const struct seen *s)
{
	struct nfdec_stats st;
	uint64_t tpl = 0, recs = 0;

	nfdec_stats(d, &st);
	check(st.records == s->flows);
	check(st.templates <= MAX_TEMPLATES);
	check(st.pending_bytes <= PENDING_BYTES);
	check(st.exporters == nfdec_exporter_count(d));
	check(st.exporters <= MAX_EXPORTERS);
	for (size_t i = 0; i < nfdec_exporter_count(d); i++) {
		const struct nfdec_exporter_stats *e = nfdec_exporter(d, i);
		check(e != NULL);
		tpl += e->templates;
		recs += e->records;
		check(e->records == e->records_v5 + e->records_v9 + e->records_ipfix);
		uint64_t drecs = 0;
		for (size_t j = 0; j < nfdec_domain_count(d, i); j++) {
			const struct nfdec_domain_stats *m = nfdec_domain(d, i, j);
			check(m != NULL && m->sampling >= 1);
			drecs += m->records;
		}
		check(drecs == e->records);
		check(nfdec_domain(d, i, nfdec_domain_count(d, i)) == NULL);
	}
	check(tpl == st.templates);
	check(recs == st.records);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct nfdec_cfg cfg;
	struct seen s = { 0 };
	uint64_t now = 1700000000000ull;
	uint8_t exp[4][16] = {
		{ [10] = 0xff, [11] = 0xff, 192, 0, 2, 1 },
		{ [10] = 0xff, [11] = 0xff, 192, 0, 2, 2 },
		{ [10] = 0xff, [11] = 0xff, 198, 51, 100, 1 },
		{ [10] = 0xff, [11] = 0xff, 203, 0, 113, 1 },
	};
	struct cur c = cur_make(data, size);
	const uint8_t *h;

	nfdec_cfg_default(&cfg);
	cfg.max_templates = MAX_TEMPLATES;
	cfg.max_exporters = MAX_EXPORTERS;
	cfg.max_domains = 4;
	cfg.pending_max_bytes = PENDING_BYTES;
	cfg.pending_max_ms = 10000;
	cfg.apply_sampling = size & 1;
	struct nfdec *d = nfdec_new(&cfg);
	if (!d)
		return 0;
	while ((h = cur_take(&c, 3)) != NULL) {
		size_t n = ld_be16(h + 1);
		if (n > cur_left(&c))
			n = cur_left(&c);
		const uint8_t *p = cur_take(&c, n);
		uint8_t *copy = malloc(n ? n : 1);
		if (!copy)
			break;
		memcpy(copy, p, n);
		if (h[0] >> 2) {
			now += (uint64_t)(h[0] >> 2) * 1000;
			nfdec_tick(d, now);
		}
		int rc = nfdec_datagram(d, exp[h[0] & 3], copy, n, now, on_flow, &s);
		check(rc <= 0 && rc > -NFDEC_E__COUNT);
		check(nfdec_err_name(rc) != NULL);
		free(copy);
		check_stats(d, &s);
	}
	nfdec_free(d);
	return 0;
}
