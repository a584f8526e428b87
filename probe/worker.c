/* worker.c: see worker.h. */
#include <errno.h>
#include <string.h>

#include "worker.h"

int worker_init(struct worker *w, const struct flowtab_cfg *fc, uint32_t sample,
		struct export_link *exp, struct cap *cap)
{
	w->ft = flowtab_new(fc);
	if (!w->ft)
		return -ENOMEM;
	w->exp = exp;
	w->cap = cap;
	w->sample = sample ? sample : 1;
	w->sample_left = 1;
	return 0;
}

void worker_fini(struct worker *w)
{
	flowtab_free(w->ft);
	w->ft = NULL;
}

/* Hands the queued records to the exporter under its lock. */
static void drain(struct worker *w, uint64_t now_ms)
{
	if (w->nout == 0)
		return;
	pthread_mutex_lock(&w->exp->mu);
	for (int i = 0; i < w->nout; i++)
		export_flow(w->exp->x, &w->out[i], now_ms);
	pthread_mutex_unlock(&w->exp->mu);
	w->nout = 0;
}

static void on_expired(const struct flow_rec *rec, void *arg)
{
	struct worker *w = arg;
	if (w->nout == WORKER_OUTQ)
		drain(w, w->clock_ms);
	w->out[w->nout++] = *rec;
}

static uint32_t frag_hash(const struct pkt_info *pi)
{
	uint32_t h = pi->frag_id * 2654435761u;
	h ^= (uint32_t)pi->key.src[15] << 16 ^ (uint32_t)pi->key.dst[15] << 8 ^ pi->key.proto;
	return (h ^ h >> 15) & (WORKER_FRAG_SLOTS - 1);
}

/* Gives a later fragment the ports of its first fragment, or counts it as an orphan
 * (it stays in a flow with ports 0: its bytes are still counted). */
static void frag_map(struct worker *w, struct pkt_info *pi, uint64_t now_ms)
{
	struct frag_slot *s = &w->frag[frag_hash(pi)];
	if (pi->frag == PKT_FRAG_FIRST) {
		memcpy(s->src, pi->key.src, 16);
		memcpy(s->dst, pi->key.dst, 16);
		s->id = pi->frag_id;
		s->proto = pi->key.proto;
		s->sport = pi->key.sport;
		s->dport = pi->key.dport;
		s->seen_ms = now_ms;
		s->used = 1;
		return;
	}
	w->st.frag_later++;
	/* A datagram's fragments arrive within a reassembly timeout (30 s in Linux). */
	if (s->used && s->id == pi->frag_id && s->proto == pi->key.proto &&
	    now_ms - s->seen_ms < 30000 && !memcmp(s->src, pi->key.src, 16) &&
	    !memcmp(s->dst, pi->key.dst, 16)) {
		pi->key.sport = s->sport;
		pi->key.dport = s->dport;
		return;
	}
	w->st.frag_orphans++;
}

/* Takes a frame through sampling and parsing: 1 with *pi filled, 0 when it stops here. */
static int take(struct worker *w, const struct cap_pkt *p, struct pkt_info *pi)
{
	w->st.frames++;
	if (w->sample > 1) {
		if (--w->sample_left) {
			w->st.sampled_out++;
			return 0;
		}
		w->sample_left = w->sample;
	}
	int r = pkt_parse(p->data, p->caplen, (enum pkt_link)p->link, p->ifindex, pi);
	w->st.parse[r < PKT_NRESULTS ? r : PKT_NRESULTS - 1]++;
	if (r != PKT_OK)
		return 0;
	if (p->vlan) /* the kernel took the outermost tag off the frame */
		pi->key.vlan = p->vlan;
	return 1;
}

/* Accounts a parsed packet whose key hashes to tag. */
static void account(struct worker *w, const struct cap_pkt *p, struct pkt_info *pi,
		    uint32_t tag)
{
	uint64_t now = p->ts_ns / 1000000u;
	if (now > w->clock_ms)
		w->clock_ms = now;
	w->st.outgoing += p->outgoing;
	if (pi->frag != PKT_FRAG_NONE) {
		frag_map(w, pi, now);
		if (pi->frag == PKT_FRAG_LATER) /* it may carry its first's ports now */
			tag = flowtab_hash(w->ft, &pi->key);
	}
	w->st.packets++;
	w->st.bytes += pi->ip_len;
	flowtab_update_hashed(w->ft, pi, tag, now, on_expired, w);
}

void worker_packet(struct worker *w, const struct cap_pkt *p)
{
	struct pkt_info pi;
	if (take(w, p, &pi))
		account(w, p, &pi, flowtab_hash(w->ft, &pi.key));
}

void worker_packets(struct worker *w, const struct cap_pkt *pkts, int n,
		    uint64_t *file_tick)
{
	struct pkt_info pi[WORKER_BATCH];
	uint32_t tag[WORKER_BATCH];
	uint8_t ok[WORKER_BATCH];

	while (n > 0) {
		int m = n < WORKER_BATCH ? n : WORKER_BATCH;
		/* The table's cache misses for the whole batch overlap (flowtab.h). */
		for (int i = 0; i < m; i++) {
			ok[i] = (uint8_t)take(w, &pkts[i], &pi[i]);
			if (ok[i])
				tag[i] = flowtab_prefetch(w->ft, &pi[i].key);
		}
		for (int i = 0; i < m; i++)
			if (ok[i])
				flowtab_prefetch_entry(w->ft, tag[i]);
		for (int i = 0; i < m; i++) {
			if (ok[i])
				account(w, &pkts[i], &pi[i], tag[i]);
			/* A file's own clock drives expiry and export, once per second of it. */
			if (file_tick && w->clock_ms >= *file_tick) {
				if (*file_tick)
					worker_tick(w, w->clock_ms);
				*file_tick = w->clock_ms + 1000;
			}
		}
		pkts += m;
		n -= m;
	}
}

/* A flow backend's finished flows take the flow table's way out; its counters stand
 * in for the ones worker_packet would have kept. */
static void backend_flows(struct worker *w, uint64_t now_ms, int force)
{
	struct cap_counts cc;

	if (!w->cap || !w->cap->ops->flows)
		return;
	memset(&cc, 0, sizeof(cc));
	if (w->cap->ops->flows(w->cap, now_ms, force, on_expired, w, &cc) < 0)
		return;  /* the backend counts and reports its own errors */
	w->st.frames = cc.frames;
	w->st.sampled_out = cc.sampled_out;
	w->st.packets = cc.packets;
	w->st.bytes = cc.bytes;
	w->st.outgoing = cc.outgoing;
	w->st.frag_later = cc.frag_later;
	w->st.frag_orphans = cc.frag_orphans;
	memcpy(w->st.parse, cc.parse, sizeof(w->st.parse));
	w->cap_flows = cc.flows;
}

const struct flowtab_stats *worker_flow_stats(const struct worker *w)
{
	if (w->cap && w->cap->ops->flows)
		return &w->cap_flows;
	return flowtab_stats(w->ft);
}

void worker_tick(struct worker *w, uint64_t now_ms)
{
	if (now_ms > w->clock_ms)
		w->clock_ms = now_ms;
	backend_flows(w, now_ms, 0);
	flowtab_expire(w->ft, now_ms, on_expired, w);
	drain(w, now_ms);
	pthread_mutex_lock(&w->exp->mu);
	export_tick(w->exp->x, now_ms);
	pthread_mutex_unlock(&w->exp->mu);
}

void worker_flush(struct worker *w, uint64_t now_ms)
{
	if (now_ms > w->clock_ms)
		w->clock_ms = now_ms;
	backend_flows(w, now_ms, 1);
	flowtab_flush(w->ft, on_expired, w);
	drain(w, now_ms);
	pthread_mutex_lock(&w->exp->mu);
	export_flush(w->exp->x, now_ms);
	pthread_mutex_unlock(&w->exp->mu);
}
