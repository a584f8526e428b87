/* cap_ebpf.c: the eBPF capture backend, user space. Loads probe/bpf/flow.bpf.c from the
 * skeleton compiled into the binary, sets its read-only configuration, attaches it to
 * every interface (TC through tcx links, or a clsact filter at a fixed handle and
 * priority on kernels before 6.6; or XDP through a link),
 * and once a second scans its flow map: adds up each flow's per-CPU slots,
 * applies the flow table's expiry rules (flowtab.h) and hands finished flows to the
 * worker, which exports them as it does the flow table's. Detaches on close.
 *
 * The scan is run in the kernel where it can be (probe/bpf/scan.bpf.c, kernel 5.13+):
 * that program walks the map and copies out only the flows that may be due, deleting
 * those surely due (idle or past their TCP end, younger than the active timeout); user
 * space decides about the others exactly as about flows it read itself; when more are
 * due than its output holds, it runs again from where it stopped. Otherwise (kernels
 * before 5.13, --bpf-scan user), under table pressure and at shutdown, user space reads
 * the whole map with batch lookups (eb_pass).
 *
 * No packet is lost between kernel and record:
 *  - An active timeout cuts the flow at the next generation bump (the end of the scan
 *    that found it due) and exports the part before the cut at the following scan: the
 *    programs split each CPU's copy at a bump exactly (struct tf_flow_val), so the next
 *    record starts with the first packet after the cut. The entry stays in the map; a
 *    shadow entry here remembers what went out (packets, bytes, last time, flags), and
 *    the flow's next record holds what was counted since. Nothing is deleted under a
 *    busy flow.
 *  - Entries are deleted only once idle (inactive timeout, TCP FIN/RST grace), under
 *    table pressure, or at shutdown after the programs are detached, and with
 *    BPF_MAP_LOOKUP_AND_DELETE_ELEM (or, by the scan program, with a copy made right
 *    before the delete), so the record holds every packet counted up to the
 *    deletion. (Kernels before 5.14 lack it for hash maps: there the entry is deleted
 *    after the scan read it, and a packet counted in between is lost; counted as
 *    ebpf_unsafe_deletes.)
 *  - Packets the program could not add (map full, -EBUSY) are counted by the kernel and
 *    reported (flow.h).
 * A continued record's first time comes from the generation fields of struct
 * tf_flow_val: exact when it starts right at the cut (a busy flow); a flow that pauses
 * through a whole scan after its cut and resumes while a scan runs (between reading its
 * entry and the bump, a few ms) gets the time of its first packet after that bump. The
 * TCP flags of a continued record are those its packets brought since the last record,
 * plus any flag the flow had not shown before.
 *
 * Owns: the skeletons (programs, maps), the attachments, one AF_PACKET socket that holds
 * promiscuous mode (the kernel drops it when the socket closes, even after kill -9),
 * the scan buffers, the scan program's mapped output and the shadow table (sized at
 * open, nothing allocated per flow).
 */
#include <dirent.h>
#include <errno.h>
#include <linux/if_link.h>
#include <linux/if_packet.h>
#include <linux/pkt_sched.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <net/if_arp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "bpf/flow.h"
#include "cap.h"
#include "flow.skel.h"
#include "scan.skel.h"
#include "log.h"

_Static_assert(sizeof(struct tf_flow_val) == 88, "flow value layout shared with flow.bpf.c");
_Static_assert(sizeof(struct tf_flow_val) % 8 == 0, "per-CPU values are 8-byte strides");

#define EB_HOOK_IN 1
#define EB_HOOK_OUT 2
/* tcx (6.6): TC programs attach through links, with no qdisc and no cls_bpf in the
 * way (about 0.1 us a packet less than clsact here, make bench), and the kernel
 * detaches a link when its last fd closes, a killed probe's too. The attach types
 * are the kernel's uapi numbers: older headers do not name them. */
#define EB_TCX_INGRESS 46
#define EB_TCX_EGRESS 47
#define EB_BATCH 256            /* entries per batch lookup, grown on -ENOSPC */
#define EB_HIST 65              /* idle-time histogram buckets: log2 of idle ms */

struct eb_if {
	char name[IF_NAMESIZE];
	int ifindex;
	int xdp_fd;             /* XDP link, -1 if none */
	int tcx_fd[2];          /* tcx links, [EB_HOOK_* - 1], -1 if none */
	uint32_t xdp_flags;     /* XDP_FLAGS_DRV_MODE or XDP_FLAGS_SKB_MODE */
	uint8_t tc;             /* EB_HOOK_* with our clsact filter attached */
	uint8_t qdisc;          /* the clsact qdisc is ours to remove: we created it, or a
				 * killed probe did (its filter was still there) */
};

/* What was already exported of a flow whose entry stays in the map. */
struct eb_shadow {
	struct pkt_key key;
	uint64_t exp_packets;
	uint64_t exp_bytes;
	uint64_t exp_last_ns;   /* newest packet in the exported records */
	uint64_t rec_first_ns;  /* first packet of the record in progress, 0: none yet */
	uint32_t hash;
	uint32_t cut_gen;       /* active timeout: cut at the bump to this generation, 0 none */
	uint8_t exp_flags;      /* TCP flags seen up to the last export */
	uint8_t rec_flags;      /* flags of the record in progress */
	uint8_t used;
	uint8_t pad;
};

/* A flow's per-CPU copies added up. */
struct eb_sum {
	uint64_t packets;
	uint64_t bytes;
	uint64_t first_ns;
	uint64_t last_ns;
	uint64_t next_first_ns; /* earliest packet after the since_ns given to eb_add_up */
	uint32_t out_if;
	uint8_t nexthop[16];
	uint8_t flags;
	uint8_t gen_flags;      /* flags since the last scan */
};

struct cap_ebpf {
	struct cap c;
	struct tf_flow_bpf *skel;
	struct eb_if *ifs;
	int nifs;
	int flows_fd;
	int counters_fd;
	int ncpu;               /* possible CPUs: per-CPU values come in this many copies */
	int promisc_fd;
	int attached;
	int lad;                /* lookup-and-delete works: 1, does not: 0, untried: -1 */
	uint32_t map_size;
	uint32_t gen;
	int router;
	int64_t mono_to_unix_ns;
	uint64_t tick_lag_ms;   /* how far a packet's time may lag (the tick clock) */
	struct flowtab_cfg exp;

	uint32_t batch;
	struct pkt_key *keys;
	struct tf_flow_val *vals;       /* batch x ncpu */
	struct tf_flow_val *one;        /* ncpu: one entry's values (lookup-and-delete) */
	void *pcpu;                     /* ncpu x struct tf_percpu */
	uint32_t *del;                  /* indexes into the batch to delete */
	uint8_t *del_reason;
	uint64_t hist[EB_HIST];
	uint64_t live;
	uint64_t evict_quota;

	/* The scan run in the kernel (scan.bpf.c), NULL where it does not load: then every
	 * scan reads the whole map with batch lookups. */
	struct tf_scan_bpf *scan;
	uint8_t *scan_out;              /* tf_scan_out, mapped: scan_max entries */
	size_t scan_ent;                /* bytes an entry: key, flag, ncpu values (flow.h) */
	uint32_t scan_max;
	int scan_off;                   /* it failed once: batch lookups from then on */
	char scan_how[96];
	uint64_t kscans;                /* scans the kernel made */
	uint64_t kscan_out;             /* ... flows they handed to user space */
	uint64_t kscan_reruns;          /* ... times its output filled up: it ran again */
	uint64_t kscan_full;            /* ... that did not come to an end: batch reads */
	uint64_t kscan_deleted;         /* flows the scan program deleted itself */

	struct eb_shadow *sh;
	uint32_t sh_mask;
	uint32_t sh_n;
	uint32_t sh_max;
	uint64_t sh_seed;

	uint64_t kc[TF_C_N];            /* kernel counters summed over CPUs */
	struct flowtab_stats fs;
	uint64_t scans;
	uint64_t scan_us_last;
	uint64_t scan_us_max;
	uint64_t continued;     /* active-timeout exports that kept their entry */
	uint64_t restarted;     /* ... after which the flow went on (a new record) */
	uint64_t shadow_full;
	uint64_t unsafe_deletes;
	uint64_t scan_errors;
	char how[128];
};

static uint64_t eb_clock_ns(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Unix time minus bpf_ktime_get_ns() time (CLOCK_MONOTONIC), from the tightest of a few
 * readings: taken once, so every record converts with the same offset. */
static int64_t eb_mono_offset(void)
{
	int64_t best = 0;
	uint64_t gap = UINT64_MAX;

	for (int i = 0; i < 5; i++) {
		uint64_t a = eb_clock_ns(CLOCK_MONOTONIC);
		uint64_t r = eb_clock_ns(CLOCK_REALTIME);
		uint64_t b = eb_clock_ns(CLOCK_MONOTONIC);

		if (b - a < gap) {
			gap = b - a;
			best = (int64_t)(r - (a + (b - a) / 2));
		}
	}
	return best;
}

static uint64_t eb_ms(const struct cap_ebpf *e, uint64_t ns)
{
	return (uint64_t)((int64_t)ns + e->mono_to_unix_ns) / 1000000u;
}

/* --- expiry: the flow table's rules ------------------------------------------- */

/* --- shadow table: open addressing, linear probing, backward-shift deletion ---- */

static uint32_t eb_hash(const struct cap_ebpf *e, const struct pkt_key *k)
{
	const uint8_t *p = (const uint8_t *)k;
	uint64_t h = e->sh_seed;

	for (size_t i = 0; i < sizeof(*k); i += 8) {
		uint64_t w;

		memcpy(&w, p + i, 8);
		h = (h ^ w) * 0x9e3779b97f4a7c15ull;
		h ^= h >> 29;
	}
	return (uint32_t)(h >> 32);
}

static struct eb_shadow *eb_sh_find(struct cap_ebpf *e, const struct pkt_key *k,
				    uint32_t h)
{
	if (e->sh_n == 0)
		return NULL;
	for (uint32_t i = h & e->sh_mask;; i = (i + 1) & e->sh_mask) {
		struct eb_shadow *s = &e->sh[i];

		if (!s->used)
			return NULL;
		if (s->hash == h && !memcmp(&s->key, k, sizeof(*k)))
			return s;
	}
}

/* A new, cleared shadow for k, or NULL when the table holds its maximum. */
static struct eb_shadow *eb_sh_add(struct cap_ebpf *e, const struct pkt_key *k, uint32_t h)
{
	uint32_t i = h & e->sh_mask;

	if (e->sh_n >= e->sh_max)
		return NULL;
	while (e->sh[i].used)
		i = (i + 1) & e->sh_mask;
	memset(&e->sh[i], 0, sizeof(e->sh[i]));
	e->sh[i].key = *k;
	e->sh[i].hash = h;
	e->sh[i].used = 1;
	e->sh_n++;
	return &e->sh[i];
}

static void eb_sh_del(struct cap_ebpf *e, struct eb_shadow *s)
{
	uint32_t mask = e->sh_mask, hole = (uint32_t)(s - e->sh);

	for (uint32_t j = (hole + 1) & mask; e->sh[j].used; j = (j + 1) & mask) {
		uint32_t home = e->sh[j].hash & mask;

		if (((j - home) & mask) >= ((j - hole) & mask)) {
			e->sh[hole] = e->sh[j];
			hole = j;
		}
	}
	e->sh[hole].used = 0;
	e->sh_n--;
}

/* --- scanning ----------------------------------------------------------------- */

/* Adds up the per-CPU copies v[0..ncpu). next_first_ns estimates the first packet after
 * since_ns: a CPU that counted since the last scan knows its first packet of this
 * generation exactly; one that counted only while the scan ran gives its last. */
static void eb_add_up(const struct cap_ebpf *e, const struct tf_flow_val *v,
		      uint64_t since_ns, struct eb_sum *s)
{
	memset(s, 0, sizeof(*s));
	s->first_ns = UINT64_MAX;
	s->next_first_ns = UINT64_MAX;
	for (int i = 0; i < e->ncpu; i++) {
		const struct tf_flow_val *c = &v[i];

		if (c->packets == 0)
			continue;
		s->packets += c->packets;
		s->bytes += c->bytes;
		if (c->first_ns < s->first_ns)
			s->first_ns = c->first_ns;
		if (c->last_ns > s->last_ns)
			s->last_ns = c->last_ns;
		s->flags |= c->tcp_flags;
		if (c->gen == e->gen)
			s->gen_flags |= c->gen_flags;
		if (c->out_if && !s->out_if) {
			s->out_if = c->out_if;
			memcpy(s->nexthop, c->nexthop, sizeof(s->nexthop));
		}
		if (c->last_ns > since_ns) {
			uint64_t t = c->gen == e->gen && c->gen_first_ns > since_ns ?
				     c->gen_first_ns : c->last_ns;
			if (t < s->next_first_ns)
				s->next_first_ns = t;
		}
	}
	if (s->first_ns == UINT64_MAX)
		s->first_ns = 0;
}

/* The record of k from s, less what its shadow says went out already; 0 if it holds
 * no packet. */
static int eb_record(const struct cap_ebpf *e, const struct pkt_key *k,
		     const struct eb_sum *s, const struct eb_shadow *sh, int reason,
		     struct flow_rec *rec)
{
	memset(rec, 0, sizeof(*rec));
	rec->packets = s->packets;
	rec->bytes = s->bytes;
	rec->first_ms = eb_ms(e, s->first_ns);
	rec->tcp_flags = s->flags;
	if (sh) {
		rec->packets -= sh->exp_packets;
		rec->bytes -= sh->exp_bytes;
		rec->tcp_flags = sh->rec_flags | s->gen_flags | (s->flags & ~sh->exp_flags);
		rec->first_ms = eb_ms(e, sh->rec_first_ns ? sh->rec_first_ns :
				      s->next_first_ns != UINT64_MAX ? s->next_first_ns :
				      s->last_ns);
	}
	if (rec->packets == 0)
		return 0;
	memcpy(rec->src, k->src, 16);
	memcpy(rec->dst, k->dst, 16);
	memcpy(rec->nexthop, s->nexthop, 16);
	rec->last_ms = eb_ms(e, s->last_ns);
	rec->in_if = k->in_if;
	rec->out_if = s->out_if;
	rec->sampling = 1;
	rec->sport = k->sport;
	rec->dport = k->dport;
	rec->vlan = k->vlan;
	rec->proto = k->proto;
	rec->tos = k->tos;
	rec->ipver = k->ipver;
	rec->end_reason = (uint8_t)reason;
	return 1;
}

static void eb_emit(struct cap_ebpf *e, const struct flow_rec *rec, flowtab_emit_fn emit,
		    void *arg)
{
	e->fs.expired[rec->end_reason]++;
	if (rec->end_reason == FLOW_END_RESOURCE)
		e->fs.table_full++;
	if (emit)
		emit(rec, arg);
}

/* Splits the copies v of a flow at the bump to generation cut: a copy that counted
 * since has that generation, its gen_ fields hold what came after and its pre_ fields
 * end what came before; any other copy is all from before. */
static void eb_split(const struct cap_ebpf *e, const struct tf_flow_val *v, uint32_t cut,
		     struct eb_sum *before, struct eb_sum *after)
{
	eb_add_up(e, v, 0, before);
	before->packets = before->bytes = before->last_ns = 0;
	before->flags = before->gen_flags = 0;
	memset(after, 0, sizeof(*after));
	after->first_ns = UINT64_MAX;
	for (int i = 0; i < e->ncpu; i++) {
		const struct tf_flow_val *c = &v[i];
		uint64_t last = c->last_ns, packets = 0, bytes = 0;  /* these two: after */
		uint8_t flags = c->tcp_flags;

		if (c->packets == 0)
			continue;
		if (c->gen == cut) {
			packets = c->gen_packets;
			bytes = c->gen_bytes;
			after->packets += packets;
			after->bytes += bytes;
			after->flags |= c->gen_flags;
			if (c->gen_first_ns < after->first_ns)
				after->first_ns = c->gen_first_ns;
			last = c->pre_last_ns;
			flags = c->pre_flags;
		}
		before->packets += c->packets - packets;
		before->bytes += c->bytes - bytes;
		before->flags |= flags;
		if (last > before->last_ns)
			before->last_ns = last;
	}
}

/* Whether the bump a flow's cut waits for is past. Normally the scan after the cut is
 * the bump's own (e->gen == cut_gen); one that missed the flow (a failed scan) must not
 * leave it waiting for ever: the split is then rougher (copies that counted after a
 * later bump count as before the cut), nothing is lost. */
static int eb_cut_due(const struct cap_ebpf *e, const struct eb_shadow *sh)
{
	return sh->cut_gen && (int32_t)(e->gen - sh->cut_gen) >= 0;
}

/* A flow's active timeout takes effect (the bump to sh->cut_gen is past): exports what
 * it counted before the cut and since its last record, and starts the next record with
 * the first packet after the cut, if there is one yet. */
static void eb_cut(struct cap_ebpf *e, const struct pkt_key *k, const struct tf_flow_val *v,
		   struct eb_shadow *sh, flowtab_emit_fn emit, void *arg)
{
	struct eb_sum before, after;
	struct flow_rec rec;

	eb_split(e, v, sh->cut_gen, &before, &after);
	if (eb_record(e, k, &before, sh->exp_packets ? sh : NULL, FLOW_END_ACTIVE, &rec))
		eb_emit(e, &rec, emit, arg);
	sh->exp_packets = before.packets;
	sh->exp_bytes = before.bytes;
	sh->exp_last_ns = before.last_ns;
	sh->exp_flags = before.flags;
	sh->rec_first_ns = after.packets ? after.first_ns : 0;
	sh->rec_flags = after.flags;
	sh->cut_gen = 0;
	e->continued++;
	if (after.packets)
		e->restarted++;
}

/* Deletes entry i of the batch and exports what it holds (with reason, or as an idle
 * or forced record if a quietly dropped continuation turns out to have packets). With
 * force the programs are detached already: the values read are final, and the map
 * goes when the capture closes. */
/* Exports what is left of flow k, just deleted from the map with final values v (its
 * shadow sh, or NULL), with reason, and forgets its shadow. */
static void eb_gone(struct cap_ebpf *e, const struct pkt_key *k, const struct tf_flow_val *v,
		    struct eb_shadow *sh, int reason, flowtab_emit_fn emit, void *arg)
{
	struct flow_rec rec;
	struct eb_sum s;

	if (sh && eb_cut_due(e, sh))
		eb_cut(e, k, v, sh, emit, arg);
	else if (sh)
		sh->cut_gen = 0;  /* deleted before its cut took effect: one record */
	eb_add_up(e, v, sh ? sh->exp_last_ns : 0, &s);
	if (eb_record(e, k, &s, sh && sh->exp_packets ? sh : NULL, reason, &rec))
		eb_emit(e, &rec, emit, arg);
	if (sh)
		eb_sh_del(e, sh);
}

static void eb_delete(struct cap_ebpf *e, uint32_t i, int reason, int force,
		      flowtab_emit_fn emit, void *arg)
{
	const struct pkt_key *k = &e->keys[i];
	const struct tf_flow_val *v = &e->vals[(size_t)i * (size_t)e->ncpu];
	uint32_t h = eb_hash(e, k);
	struct eb_shadow *sh = eb_sh_find(e, k, h);
	int r = -EOPNOTSUPP;

	if (!force && e->lad != 0)
		r = bpf_map_lookup_and_delete_elem(e->flows_fd, k, e->one);
	if (force) {
		/* nothing to delete */
	} else if (r == 0) {
		e->lad = 1;
		v = e->one;  /* the values at the deletion: nothing counted is lost */
	} else if (r == -ENOENT) {
		e->scan_errors++;  /* only we delete: should not happen */
		if (sh)
			eb_sh_del(e, sh);
		return;
	} else {
		if (e->lad < 0) {
			e->lad = 0;
			log_info("ebpf: no lookup-and-delete for hash maps on this kernel (%s): "
				 "deleting after the scan's read", strerror(-r));
		}
		bpf_map_delete_elem(e->flows_fd, k);
		e->unsafe_deletes++;
	}
	eb_gone(e, k, v, sh, reason ? reason : force ? FLOW_END_FORCED : FLOW_END_IDLE, emit,
		arg);
}

/* Exports entry i of the batch, which the scan program deleted: an idle flow, or one
 * past its TCP end, that never reached its active timeout (its values are final). */
static void eb_deleted(struct cap_ebpf *e, uint32_t i, flowtab_emit_fn emit, void *arg)
{
	const struct pkt_key *k = &e->keys[i];
	const struct tf_flow_val *v = &e->vals[(size_t)i * (size_t)e->ncpu];
	uint8_t flags = 0;

	for (int c = 0; c < e->ncpu; c++)
		flags |= v[c].tcp_flags;
	eb_gone(e, k, v, eb_sh_find(e, k, eb_hash(e, k)),
		flags & TF_TCP_END ? FLOW_END_EOF : FLOW_END_IDLE, emit, arg);
	e->kscan_deleted++;
}

static unsigned eb_log2(uint64_t x)
{
	return x ? 64u - (unsigned)__builtin_clzll(x) : 0u;
}

/* Table pressure: whether a flow idle in log2 bucket idle goes now. The bucket at the
 * boundary gives up only its quota, in the map's (hash) order: an unbiased pick. */
static int eb_evict(struct cap_ebpf *e, unsigned idle, unsigned bucket)
{
	if (bucket >= EB_HIST || idle < bucket)
		return 0;
	if (idle > bucket)
		return 1;
	if (e->evict_quota == 0)
		return 0;
	e->evict_quota--;
	return 1;
}

/* Decides about entry i of the batch at now_ms: keep it (0), or returns the reason to
 * delete it with (-1: delete without a reason of its own). Exports active timeouts in
 * place. evict_bucket: table pressure, evict the flows idle in a log2 bucket above it,
 * and e->evict_quota of those in it. */
static int eb_visit(struct cap_ebpf *e, uint32_t i, uint64_t now_ms, int force,
		    unsigned evict_bucket, flowtab_emit_fn emit, void *arg)
{
	const struct pkt_key *k = &e->keys[i];
	const struct tf_flow_val *v = &e->vals[(size_t)i * (size_t)e->ncpu];
	uint32_t h = eb_hash(e, k);
	struct eb_shadow *sh = eb_sh_find(e, k, h);
	uint64_t first_ms, last_ms;
	struct eb_sum s;
	unsigned idle;
	uint8_t flags;
	int reason;

	if (force)
		return FLOW_END_FORCED;
	if (sh && eb_cut_due(e, sh))
		eb_cut(e, k, v, sh, emit, arg);
	eb_add_up(e, v, sh ? sh->exp_last_ns : 0, &s);
	last_ms = eb_ms(e, s.last_ns);
	first_ms = eb_ms(e, s.first_ns);
	flags = s.flags;
	idle = eb_log2(now_ms > last_ms ? now_ms - last_ms : 0);
	if (sh && sh->cut_gen)
		goto keep;  /* cut this scan (table pressure's second pass): keep it */
	if (sh && sh->exp_packets) {
		int more = s.packets > sh->exp_packets;

		if (more && !sh->rec_first_ns) {
			/* The flow goes on: its next record starts (flowtab restarts it). */
			sh->rec_first_ns = s.next_first_ns != UINT64_MAX ? s.next_first_ns :
					   s.last_ns;
			e->restarted++;
		}
		sh->rec_flags |= s.gen_flags | (s.flags & ~sh->exp_flags);
		flags = sh->rec_flags;
		first_ms = eb_ms(e, sh->rec_first_ns);
		if (!more) {
			/* Nothing since its last record: no flow in the flow table's terms. Keep
			 * the entry while the flow may go on; drop it once idle that long. */
			if (flowtab_after(now_ms, last_ms, e->exp.inactive_ms) ||
			    eb_evict(e, idle, evict_bucket))
				return -1;
			goto keep;
		}
	}
	reason = flowtab_due(&e->exp, flags & TF_TCP_END, first_ms, last_ms, now_ms);
	if (!reason && eb_evict(e, idle, evict_bucket))
		reason = FLOW_END_RESOURCE;
	if (reason != FLOW_END_ACTIVE) {
		if (reason)
			return reason;
		goto keep;
	}
	/* Active timeout: cut the flow at this scan's bump, keep its entry; the next scan
	 * exports the part before the cut (eb_cut). */
	if (!sh) {
		sh = eb_sh_add(e, k, h);
		if (!sh) {
			e->shadow_full++;
			return FLOW_END_ACTIVE;  /* no room to remember: delete it instead */
		}
	}
	sh->cut_gen = e->gen + 1;
keep:
	e->hist[idle]++;
	e->live++;
	return 0;
}

/* Grows the batch buffers to n entries. */
static int eb_batch_alloc(struct cap_ebpf *e, uint32_t n)
{
	struct pkt_key *k = realloc(e->keys, (size_t)n * sizeof(*k));

	if (!k)
		return -ENOMEM;
	e->keys = k;
	struct tf_flow_val *v = realloc(e->vals, (size_t)n * (size_t)e->ncpu * sizeof(*v));
	if (!v)
		return -ENOMEM;
	e->vals = v;
	uint32_t *d = realloc(e->del, (size_t)n * sizeof(*d));
	if (!d)
		return -ENOMEM;
	e->del = d;
	uint8_t *r = realloc(e->del_reason, n);
	if (!r)
		return -ENOMEM;
	e->del_reason = r;
	e->batch = n;
	return 0;
}

/* Visits the n flows read into e->keys and e->vals, then deletes those due; how many
 * it deleted. */
static uint32_t eb_visit_batch(struct cap_ebpf *e, uint32_t n, uint64_t now_ms, int force,
			       unsigned evict_bucket, flowtab_emit_fn emit, void *arg)
{
	uint32_t ndel = 0;

	for (uint32_t i = 0; i < n; i++) {
		int reason = eb_visit(e, i, now_ms, force, evict_bucket, emit, arg);

		if (reason) {
			e->del[ndel] = i;
			e->del_reason[ndel++] = (uint8_t)(reason < 0 ? 0 : reason);
		}
	}
	for (uint32_t j = 0; j < ndel; j++)
		eb_delete(e, e->del[j], e->del_reason[j], force, emit, arg);
	return ndel;
}

/* One pass over the map in batches; entries due are deleted batch by batch (the batch
 * walk goes bucket by bucket, so deleting what it has passed is safe). Counts the live
 * flows and their idle times (e->live, e->hist) afresh. */
static int eb_pass(struct cap_ebpf *e, uint64_t now_ms, int force, unsigned evict_bucket,
		   flowtab_emit_fn emit, void *arg)
{
	uint32_t token = 0;
	int first = 1, done = 0;

	memset(e->hist, 0, sizeof(e->hist));
	e->live = 0;
	while (!done) {
		uint32_t n = e->batch;
		int r = bpf_map_lookup_batch(e->flows_fd, first ? NULL : &token, &token, e->keys,
					     e->vals, &n, NULL);
		if (r == -ENOSPC && n == 0) {
			/* One bucket holds more than a batch: grow, ask again. */
			if (e->batch >= (1u << 20) || eb_batch_alloc(e, e->batch * 2) < 0)
				return -ENOMEM;
			continue;
		}
		if (r == -ENOENT)
			done = 1;
		else if (r < 0)
			return r;
		first = 0;
		eb_visit_batch(e, n, now_ms, force, evict_bucket, emit, arg);
	}
	return 0;
}

/* Visits the n entries the scan program copied out, exporting those it deleted; the
 * number of flows that left the map (deleted by the program or here). */
static uint32_t eb_kscan_out(struct cap_ebpf *e, uint32_t n, uint64_t now_ms,
			     flowtab_emit_fn emit, void *arg)
{
	uint32_t gone = 0;

	for (uint32_t i = 0; i < n;) {
		uint32_t m = 0;

		for (; i < n && m < e->batch; i++) {
			const uint8_t *p = e->scan_out + (size_t)i * e->scan_ent;
			uint32_t del;

			memcpy(&e->keys[m], p, sizeof(struct pkt_key));
			memcpy(&e->vals[(size_t)m * (size_t)e->ncpu], p + TF_SCAN_HDR,
			       (size_t)e->ncpu * sizeof(struct tf_flow_val));
			memcpy(&del, p + sizeof(struct pkt_key), sizeof(del));
			if (del == TF_SCAN_DELETED) {
				eb_deleted(e, m, emit, arg);
				gone++;
			} else {
				m++;
			}
		}
		gone += eb_visit_batch(e, m, now_ms, 0, EB_HIST, emit, arg);
	}
	return gone;
}

/* A scan by the kernel (scan.bpf.c): it walks the map and copies out only the flows
 * that may be due at now_ms, which user space visits as eb_pass() would; the others
 * only count as live (e->live afresh; e->hist only for those visited). When its
 * output fills up, it runs again from where it stopped. -ENOSPC if that does not come
 * to an end (nothing lost: a pass reads the map). */
static int eb_kscan(struct cap_ebpf *e, uint64_t now_ms, flowtab_emit_fn emit, void *arg)
{
	uint8_t frame[64] = { 0 };  /* a test run needs a frame; the program ignores it */
	LIBBPF_OPTS(bpf_test_run_opts, run, .data_in = frame, .data_size_in = sizeof(frame),
		    .repeat = 1);
	struct tf_scan_bpf__bss *bss = e->scan->bss;
	/* each run but the last hands out scan_max flows, and they leave the map or move
	 * the start of the next run past them */
	uint32_t max_runs = 2 * (e->map_size / e->scan_max) + 4;
	uint64_t skip = 0;

	memset(e->hist, 0, sizeof(e->hist));
	e->live = 0;
	/* user space's now in the programs' clock (the inverse of eb_ms) */
	bss->tf_scan_now_ns = (uint64_t)((int64_t)(now_ms * 1000000u) - e->mono_to_unix_ns);
	for (uint32_t runs = 1;; runs++) {
		uint64_t walked;
		uint32_t n, over, gone;
		int r;

		bss->tf_scan_skip = skip;
		r = bpf_prog_test_run_opts(bpf_program__fd(e->scan->progs.tf_scan), &run);
		if (r < 0)
			return r;
		n = __atomic_load_n(&bss->tf_scan_n, __ATOMIC_ACQUIRE);
		over = bss->tf_scan_over;
		walked = bss->tf_scan_walked;
		if (n > e->scan_max || walked < skip + n + over)
			return -EPROTO;
		gone = eb_kscan_out(e, n, now_ms, emit, arg);
		e->live += walked - skip - over - n;
		e->kscan_out += n;
		if (!over)
			break;
		e->kscan_reruns++;
		if (runs >= max_runs)
			return -ENOSPC;
		skip = walked - 1 - gone;
	}
	e->kscans++;
	return 0;
}

/* Sums the kernel's per-CPU counters into e->kc. */
static void eb_read_counters(struct cap_ebpf *e)
{
	uint32_t zero = 0;
	const struct tf_percpu *pc = e->pcpu;

	if (bpf_map_lookup_elem(e->counters_fd, &zero, e->pcpu) < 0)
		return;
	memset(e->kc, 0, sizeof(e->kc));
	for (int i = 0; i < e->ncpu; i++)
		for (int j = 0; j < TF_C_N; j++)
			e->kc[j] += pc[i].c[j];
}

/* --- attaching ---------------------------------------------------------------- */

/* True if program id is one of ours (by name): left by an earlier run. */
static int eb_prog_is_ours(uint32_t id)
{
	struct bpf_prog_info info;
	uint32_t len = sizeof(info);
	int fd = bpf_prog_get_fd_by_id(id), ours;

	if (fd < 0)
		return 0;
	memset(&info, 0, sizeof(info));
	ours = bpf_obj_get_info_by_fd(fd, &info, &len) == 0 &&
	       !strncmp(info.name, TF_PROG_PREFIX, strlen(TF_PROG_PREFIX));
	close(fd);
	return ours;
}

/* The pid of another process holding program id open (a running probe), or 0: a
 * program of ours that nobody holds was left by a probe that was killed. */
static int eb_prog_holder(uint32_t id)
{
	DIR *proc = opendir("/proc");
	struct dirent *p;
	int self = (int)getpid(), holder = 0;

	if (!proc)
		return 0;
	while (!holder && (p = readdir(proc)) != NULL) {
		int pid = atoi(p->d_name);
		char path[320], target[32], line[64];
		struct dirent *fd;
		DIR *fds;

		if (pid <= 0 || pid == self)
			continue;
		snprintf(path, sizeof(path), "/proc/%d/fd", pid);
		fds = opendir(path);
		if (!fds)
			continue;
		while (!holder && (fd = readdir(fds)) != NULL) {
			unsigned int pid_id;
			ssize_t n;
			FILE *fi;

			snprintf(path, sizeof(path), "/proc/%d/fd/%s", pid, fd->d_name);
			n = readlink(path, target, sizeof(target) - 1);
			if (n <= 0)
				continue;
			target[n] = '\0';
			if (strcmp(target, "anon_inode:bpf-prog"))
				continue;
			snprintf(path, sizeof(path), "/proc/%d/fdinfo/%s", pid, fd->d_name);
			fi = fopen(path, "r");
			if (!fi)
				continue;
			while (fgets(line, sizeof(line), fi))
				if (sscanf(line, "prog_id: %u", &pid_id) == 1 && pid_id == id)
					holder = pid;
			fclose(fi);
		}
		closedir(fds);
	}
	closedir(proc);
	return holder;
}

/* Filters on the clsact hook parent of ifindex (any owner), by a netlink dump; or -errno. */
static int eb_tc_count(int ifindex, uint32_t parent)
{
	struct {
		struct nlmsghdr nh;
		struct tcmsg tc;
	} req;
	uint32_t buf[4096];  /* u32: netlink headers are 4-byte aligned */
	int fd, n = 0, rc = 0, done = 0;

	fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
	if (fd < 0)
		return -errno;
	memset(&req, 0, sizeof(req));
	req.nh.nlmsg_len = NLMSG_LENGTH(sizeof(struct tcmsg));
	req.nh.nlmsg_type = RTM_GETTFILTER;
	req.nh.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
	req.nh.nlmsg_seq = 1;
	req.tc.tcm_family = AF_UNSPEC;
	req.tc.tcm_ifindex = ifindex;
	req.tc.tcm_parent = parent;
	if (send(fd, &req, req.nh.nlmsg_len, 0) < 0) {
		rc = -errno;
		goto out;
	}
	while (!done) {
		ssize_t len = recv(fd, buf, sizeof(buf), 0);
		struct nlmsghdr *nh = (struct nlmsghdr *)buf;

		if (len < 0) {
			rc = -errno;
			break;
		}
		if (len == 0)
			break;
		for (; NLMSG_OK(nh, (size_t)len); nh = NLMSG_NEXT(nh, len)) {
			if (nh->nlmsg_type == NLMSG_DONE) {
				done = 1;
				break;
			}
			if (nh->nlmsg_type == NLMSG_ERROR) {
				const struct nlmsgerr *ne = NLMSG_DATA(nh);
				rc = ne->error;
				done = 1;
				break;
			}
			if (nh->nlmsg_type == RTM_NEWTFILTER)
				n++;
		}
	}
out:
	close(fd);
	return rc < 0 ? rc : n;
}

static const char *eb_hook_name(int hook)
{
	return hook == EB_HOOK_IN ? "ingress" : "egress";
}

/* -EBUSY with a message if another running probe holds program id (ours) on f's
 * hook, else 0. */
static int eb_held(const struct eb_if *f, int hook, uint32_t id, char *err, size_t errlen)
{
	int holder = eb_prog_holder(id);

	if (!holder)
		return 0;
	snprintf(err, errlen, "%s: TC %s is in use by another tapflow-probe (pid %d)", f->name,
		 eb_hook_name(hook), holder);
	return -EBUSY;
}

static void eb_tc_hook(struct bpf_tc_hook *h, int ifindex, int hook)
{
	memset(h, 0, sizeof(*h));
	h->sz = sizeof(*h);
	h->ifindex = ifindex;
	h->attach_point = hook == EB_HOOK_IN ? BPF_TC_INGRESS : BPF_TC_EGRESS;
}

/* Takes the filter at our handle and priority off one clsact hook of f: 0, or -errno. */
static int eb_clsact_detach(const struct eb_if *f, int hook)
{
	struct bpf_tc_hook h;
	LIBBPF_OPTS(bpf_tc_opts, d, .handle = TF_TC_HANDLE, .priority = TF_TC_PRIO);

	eb_tc_hook(&h, f->ifindex, hook);
	return bpf_tc_detach(&h, &d);
}

/* A filter of ours at our handle and priority on one clsact hook of f: 0 if there is
 * none (or no qdisc), 1 if a killed run left it, -EBUSY with a message if another
 * probe holds it, -EEXIST with a message if the filter there is not ours. */
static int eb_tc_leftover(struct eb_if *f, int hook, char *err, size_t errlen)
{
	struct bpf_tc_hook h;

	eb_tc_hook(&h, f->ifindex, hook);
	LIBBPF_OPTS(bpf_tc_opts, q, .handle = TF_TC_HANDLE, .priority = TF_TC_PRIO);
	if (bpf_tc_query(&h, &q) != 0)
		return 0;
	if (!eb_prog_is_ours(q.prog_id)) {
		snprintf(err, errlen, "%s: TC %s handle 0x%x priority 0x%x holds another "
			 "program (id %u)", f->name, eb_hook_name(hook), TF_TC_HANDLE, TF_TC_PRIO,
			 q.prog_id);
		return -EEXIST;
	}
	return eb_held(f, hook, q.prog_id, err, errlen) < 0 ? -EBUSY : 1;
}

/* Attaches prog_fd to one tcx hook of f: 0; -EBUSY with a message if another probe
 * counts there (on tcx or clsact); another -errno if the kernel has no tcx. A filter
 * of ours that a killed clsact run left on the hook is taken off (it would count on
 * into a map nobody reads); its qdisc goes when this probe stops, if empty. */
static int eb_tcx_attach(struct eb_if *f, int hook, int prog_fd, char *err, size_t errlen)
{
	uint32_t type = hook == EB_HOOK_IN ? EB_TCX_INGRESS : EB_TCX_EGRESS;
	enum { IDS = 64 };  /* a tcx hook holds at most 64 (BPF_MPROG_MAX) */
	uint32_t ids[IDS], n = IDS;
	int r, stale;

	r = eb_tc_leftover(f, hook, err, errlen);
	if (r == -EBUSY)
		return r;
	stale = r == 1;
	if (bpf_prog_query(f->ifindex, type, 0, NULL, ids, &n) == 0) {
		for (uint32_t i = 0; i < n && i < IDS; i++)
			if (eb_prog_is_ours(ids[i]) && eb_held(f, hook, ids[i], err, errlen))
				return -EBUSY;
	}
	r = bpf_link_create(prog_fd, f->ifindex, type, NULL);
	if (r < 0)
		return r;
	f->tcx_fd[hook - 1] = r;
	if (stale && eb_clsact_detach(f, hook) == 0) {
		log_info("%s: removed the eBPF program a previous run left on TC %s", f->name,
			 eb_hook_name(hook));
		f->qdisc = 1;
	}
	return 0;
}

/* Attaches prog_fd at our handle and priority on one clsact hook of f, creating the
 * qdisc if there is none, replacing a program of ours a killed run left there. */
static int eb_clsact_attach(struct eb_if *f, int hook, int prog_fd, char *err,
			    size_t errlen)
{
	const char *where = eb_hook_name(hook);
	struct bpf_tc_hook h;
	int r, replace = 0;

	eb_tc_hook(&h, f->ifindex, hook);
	r = bpf_tc_hook_create(&h);
	if (r == 0) {
		f->qdisc = 1;
	} else if (r != -EEXIST) {
		snprintf(err, errlen, "%s: cannot add a clsact qdisc: %s", f->name, strerror(-r));
		return r;
	}
	r = eb_tc_leftover(f, hook, err, errlen);
	if (r < 0)
		return -EBUSY;
	if (r == 1) {
		log_info("%s: replacing the eBPF program a previous run left on TC %s", f->name,
			 where);
		replace = 1;
		f->qdisc = 1;
	}
	LIBBPF_OPTS(bpf_tc_opts, a, .handle = TF_TC_HANDLE, .priority = TF_TC_PRIO,
		    .prog_fd = prog_fd, .flags = replace ? BPF_TC_F_REPLACE : 0);
	r = bpf_tc_attach(&h, &a);
	if (r < 0) {
		snprintf(err, errlen, "%s: cannot attach to TC %s: %s", f->name, where,
			 strerror(-r));
		return r;
	}
	f->tc |= (uint8_t)hook;
	return 0;
}

/* Attaches prog_fd to one TC hook of f the way mode (CAP_TC_*) says. */
static int eb_tc_attach(struct eb_if *f, int hook, int prog_fd, int mode, char *err,
			size_t errlen)
{
	if (mode != CAP_TC_CLSACT) {
		int r = eb_tcx_attach(f, hook, prog_fd, err, errlen);
		if (r == 0 || r == -EBUSY)
			return r;
		if (mode == CAP_TC_TCX) {
			snprintf(err, errlen, "%s: cannot attach to tcx %s (kernel 6.6 or "
				 "later): %s", f->name, eb_hook_name(hook), strerror(-r));
			return r;
		}
	}
	return eb_clsact_attach(f, hook, prog_fd, err, errlen);
}

/* Takes our filters off f, and the clsact qdisc if it is ours and nobody else's
 * filters sit on it. */
static void eb_tc_detach(struct eb_if *f)
{
	struct bpf_tc_hook h;

	for (int i = 0; i < 2; i++) {
		if (f->tcx_fd[i] >= 0) {
			close(f->tcx_fd[i]);  /* the link's last fd: detached */
			f->tcx_fd[i] = -1;
		}
	}

	for (int hook = EB_HOOK_IN; hook <= EB_HOOK_OUT; hook <<= 1) {
		if (!(f->tc & hook))
			continue;
		int r = eb_clsact_detach(f, hook);
		if (r < 0 && r != -ENOENT && r != -ENODEV)
			log_warn("%s: cannot detach the eBPF program: %s", f->name, strerror(-r));
	}
	f->tc = 0;
	if (!f->qdisc)
		return;
	f->qdisc = 0;
	int in = eb_tc_count(f->ifindex, TC_H_MAKE(TC_H_CLSACT, TC_H_MIN_INGRESS));
	int out = eb_tc_count(f->ifindex, TC_H_MAKE(TC_H_CLSACT, TC_H_MIN_EGRESS));
	if (in < 0 || out < 0)
		return;  /* interface gone, or cannot tell: leave it */
	if (in || out) {
		log_info("%s: leaving the clsact qdisc: other filters use it", f->name);
		return;
	}
	eb_tc_hook(&h, f->ifindex, EB_HOOK_IN);
	h.attach_point = BPF_TC_INGRESS | BPF_TC_EGRESS;  /* this pair names the qdisc */
	bpf_tc_hook_destroy(&h);
}

static int eb_xdp_attach(struct eb_if *f, int prog_fd, int mode, char *err, size_t errlen)
{
	uint32_t tries[2];
	int n = 0, r = -EINVAL;

	if (mode == CAP_XDP_NATIVE || mode == CAP_XDP_AUTO)
		tries[n++] = XDP_FLAGS_DRV_MODE;
	if (mode == CAP_XDP_GENERIC || mode == CAP_XDP_AUTO)
		tries[n++] = XDP_FLAGS_SKB_MODE;
	for (int i = 0; i < n; i++) {
		LIBBPF_OPTS(bpf_link_create_opts, o, .flags = tries[i]);
		r = bpf_link_create(prog_fd, f->ifindex, BPF_XDP, &o);
		if (r >= 0) {
			f->xdp_fd = r;
			f->xdp_flags = tries[i];
			return 0;
		}
	}
	snprintf(err, errlen, "%s: cannot attach XDP (%s): %s", f->name,
		 mode == CAP_XDP_NATIVE ? "native" : mode == CAP_XDP_GENERIC ? "generic" :
		 "native or generic", strerror(-r));
	return r;
}

/* Detaches every program (XDP links close, TC filters go); counting stops. */
static void eb_detach(struct cap_ebpf *e)
{
	for (int i = 0; i < e->nifs; i++) {
		struct eb_if *f = &e->ifs[i];

		if (f->xdp_fd >= 0) {
			close(f->xdp_fd);
			f->xdp_fd = -1;
		}
		eb_tc_detach(f);
	}
	e->attached = 0;
}

/* The interface index of an Ethernet interface, or -errno with a message. */
static int eb_ifindex(const char *name, char *err, size_t errlen)
{
	struct ifreq ifr;
	int fd, idx = (int)if_nametoindex(name);

	if (idx == 0) {
		snprintf(err, errlen, "%s: no such interface", name);
		return -ENODEV;
	}
	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
	fd = socket(AF_PACKET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || ioctl(fd, SIOCGIFHWADDR, &ifr) < 0) {
		int r = -errno;
		if (fd >= 0)
			close(fd);
		snprintf(err, errlen, "%s: cannot read the link type: %s", name, strerror(-r));
		return r;
	}
	close(fd);
	/* The program parses Ethernet frames (loopback carries a zeroed Ethernet header). */
	if (ifr.ifr_hwaddr.sa_family != ARPHRD_ETHER &&
	    ifr.ifr_hwaddr.sa_family != ARPHRD_LOOPBACK) {
		snprintf(err, errlen, "%s: not an Ethernet interface (link type %u): the eBPF "
			 "backend parses Ethernet frames only", name, ifr.ifr_hwaddr.sa_family);
		return -EPROTONOSUPPORT;
	}
	return idx;
}

/* --- cap ops ------------------------------------------------------------------ */

/* Flows are counted in the kernel: nothing to hand out, only time to let pass (a
 * signal ends the wait early). */
static int eb_next(struct cap *c, struct cap_pkt *pkts, int max, int timeout_ms)
{
	struct timespec ts = { timeout_ms / 1000, (long)(timeout_ms % 1000) * 1000000L };

	(void)c;
	(void)pkts;
	(void)max;
	if (timeout_ms > 0)
		ppoll(NULL, 0, &ts, NULL);
	return 0;
}

static void eb_stats(struct cap *c, struct cap_stats *st)
{
	struct cap_ebpf *e = (struct cap_ebpf *)c;

	eb_read_counters(e);
	st->packets = e->kc[TF_C_FRAMES];
	st->drops = e->kc[TF_C_MAP_FULL] + e->kc[TF_C_MAP_BUSY] + e->kc[TF_C_MAP_ERROR];
	st->filtered = 0;
}

static int eb_flows(struct cap *c, uint64_t now_ms, int force, flowtab_emit_fn emit,
		    void *arg, struct cap_counts *cnt)
{
	struct cap_ebpf *e = (struct cap_ebpf *)c;
	uint64_t t0 = eb_clock_ns(CLOCK_MONOTONIC);
	uint64_t high = e->map_size - e->map_size / 8;
	unsigned evict = EB_HIST;
	int r = -EOPNOTSUPP, kernel = 0;

	if (force && e->attached)
		eb_detach(e);  /* count nothing more: the last records hold every packet */
	/* Decide as of a moment the packets' times surely reached: a flow ends a few ms
	 * late, never early. */
	if (now_ms > e->tick_lag_ms)
		now_ms -= e->tick_lag_ms;
	if (!force && e->scan && !e->scan_off) {
		r = eb_kscan(e, now_ms, emit, arg);
		kernel = r == 0;
		if (r == -ENOSPC) {
			e->kscan_full++;
		} else if (r < 0) {
			e->scan_off = 1;
			snprintf(e->scan_how, sizeof(e->scan_how), "batch lookups (the scan "
				 "program failed: %s)", strerror(-r));
			log_warn("ebpf: the scan program failed (%s): the map is read from user "
				 "space from now on", strerror(-r));
		}
	}
	if (r < 0)
		r = eb_pass(e, now_ms, force, EB_HIST, emit, arg);
	/* Table pressure: above 7/8 full, the least recently seen flows go early
	 * (FLOW_END_RESOURCE, as the flow table does), down to about 3/4. The kernel's
	 * scan does not tell how long each flow has been idle: a pass reads them all. */
	if (r == 0 && kernel && e->live > high)
		r = eb_pass(e, now_ms, 0, EB_HIST, emit, arg);
	if (r == 0 && !force && e->live > high) {
		uint64_t want = e->live - (e->map_size - e->map_size / 4), n = 0;

		for (evict = EB_HIST; evict > 0 && n < want;)
			n += e->hist[--evict];
		e->evict_quota = want - (n - e->hist[evict]);
		r = eb_pass(e, now_ms, 0, evict, emit, arg);
	}
	if (r < 0) {
		e->scan_errors++;
		log_warn("ebpf: scanning the flow map: %s", strerror(-r));
	}
	/* A new generation: what the programs count from now on is "since this scan". */
	e->gen++;
	__atomic_store_n(&e->skel->bss->tf_gen, e->gen, __ATOMIC_RELEASE);

	eb_read_counters(e);
	e->fs.active = e->live;
	e->fs.created = e->kc[TF_C_CREATED] + e->restarted;
	memset(cnt, 0, sizeof(*cnt));
	cnt->frames = e->kc[TF_C_FRAMES];
	cnt->sampled_out = e->kc[TF_C_SAMPLED_OUT];
	cnt->packets = e->kc[TF_C_PACKETS];
	cnt->bytes = e->kc[TF_C_BYTES];
	cnt->outgoing = e->kc[TF_C_OUTGOING];
	cnt->frag_later = e->kc[TF_C_FRAG_LATER];
	cnt->frag_orphans = e->kc[TF_C_FRAG_ORPHANS];
	for (int i = 0; i < PKT_NRESULTS; i++)
		cnt->parse[i] = e->kc[TF_C_PARSE + i];
	cnt->flows = e->fs;
	e->scans++;
	e->scan_us_last = (eb_clock_ns(CLOCK_MONOTONIC) - t0) / 1000u;
	if (e->scan_us_last > e->scan_us_max)
		e->scan_us_max = e->scan_us_last;
	return r < 0 ? r : 0;
}

static void eb_report(struct cap *c, FILE *out)
{
	struct cap_ebpf *e = (struct cap_ebpf *)c;
	const uint64_t *k = e->kc;

	eb_read_counters(e);
	fprintf(out, "  ebpf_attach: %s\n", e->how);
	fprintf(out, "  ebpf_map_size: %u\n", e->map_size);
	/* Preallocated: key, a value per possible CPU, and the kernel's element header. */
	fprintf(out, "  ebpf_map_bytes: %llu (%d CPUs)\n",
		(unsigned long long)e->map_size *
			(sizeof(struct pkt_key) + 8u + 48u +
			 (uint64_t)e->ncpu * sizeof(struct tf_flow_val)), e->ncpu);
	fprintf(out, "  ebpf_map_full: %llu\n", (unsigned long long)k[TF_C_MAP_FULL]);
	fprintf(out, "  ebpf_map_busy: %llu\n", (unsigned long long)k[TF_C_MAP_BUSY]);
	fprintf(out, "  ebpf_map_errors: %llu\n", (unsigned long long)k[TF_C_MAP_ERROR]);
	fprintf(out, "  ebpf_lost_bytes: %llu\n", (unsigned long long)k[TF_C_LOST_BYTES]);
	fprintf(out, "  ebpf_insert_races: %llu\n", (unsigned long long)k[TF_C_INSERT_RACE]);
	fprintf(out, "  ebpf_pulled: %llu\n", (unsigned long long)k[TF_C_PULLED]);
	if (e->router) {
		fprintf(out, "  ebpf_fib_ok: %llu\n", (unsigned long long)k[TF_C_FIB_OK]);
		fprintf(out, "  ebpf_fib_not_forwarded: %llu\n",
			(unsigned long long)k[TF_C_FIB_NOT_FWD]);
		fprintf(out, "  ebpf_fib_failed: %llu\n", (unsigned long long)k[TF_C_FIB_FAIL]);
	}
	/* Run time of the programs: the kernel counts it while kernel.bpf_stats_enabled=1. */
	struct bpf_program *progs[3] = { e->skel->progs.tf_flow_in, e->skel->progs.tf_flow_out,
					 e->skel->progs.tf_flow_xdp };
	uint64_t runs = 0, ns = 0;
	for (int i = 0; i < 3; i++) {
		struct bpf_prog_info info;
		uint32_t len = sizeof(info);
		int fd = bpf_program__fd(progs[i]);

		memset(&info, 0, sizeof(info));
		if (fd >= 0 && bpf_obj_get_info_by_fd(fd, &info, &len) == 0) {
			runs += info.run_cnt;
			ns += info.run_time_ns;
		}
	}
	fprintf(out, "  ebpf_prog_runs: %llu\n", (unsigned long long)runs);
	fprintf(out, "  ebpf_prog_ns: %llu\n", (unsigned long long)ns);
	fprintf(out, "  ebpf_continued: %llu\n", (unsigned long long)e->continued);
	fprintf(out, "  ebpf_shadow_full: %llu\n", (unsigned long long)e->shadow_full);
	fprintf(out, "  ebpf_unsafe_deletes: %llu\n", (unsigned long long)e->unsafe_deletes);
	fprintf(out, "  ebpf_scans: %llu\n", (unsigned long long)e->scans);
	fprintf(out, "  ebpf_scan_by: %s\n", e->scan_how);
	fprintf(out, "  ebpf_kernel_scans: %llu\n", (unsigned long long)e->kscans);
	fprintf(out, "  ebpf_kernel_scan_flows_out: %llu\n", (unsigned long long)e->kscan_out);
	fprintf(out, "  ebpf_kernel_scan_deleted: %llu\n", (unsigned long long)e->kscan_deleted);
	fprintf(out, "  ebpf_kernel_scan_reruns: %llu\n", (unsigned long long)e->kscan_reruns);
	fprintf(out, "  ebpf_kernel_scan_fallbacks: %llu\n", (unsigned long long)e->kscan_full);
	fprintf(out, "  ebpf_scan_errors: %llu\n", (unsigned long long)e->scan_errors);
	fprintf(out, "  ebpf_scan_us_last: %llu\n", (unsigned long long)e->scan_us_last);
	fprintf(out, "  ebpf_scan_us_max: %llu\n", (unsigned long long)e->scan_us_max);
}

static void eb_close(struct cap *c)
{
	struct cap_ebpf *e = (struct cap_ebpf *)c;

	if (!e)
		return;
	if (e->ifs)
		eb_detach(e);
	if (e->promisc_fd >= 0)
		close(e->promisc_fd);
	if (e->scan_out)
		munmap(e->scan_out, (size_t)e->scan_max * e->scan_ent);
	tf_scan_bpf__destroy(e->scan);
	tf_flow_bpf__destroy(e->skel);
	free(e->ifs);
	free(e->keys);
	free(e->vals);
	free(e->one);
	free(e->pcpu);
	free(e->del);
	free(e->del_reason);
	free(e->sh);
	free(e);
}

static const struct cap_ops eb_ops = {
	.name = "ebpf",
	.next = eb_next,
	.stats = eb_stats,
	.close = eb_close,
	.flows = eb_flows,
	.report = eb_report,
};

/* libbpf's messages (verifier logs on a failed load) are for debugging only: the
 * caller gets the error itself. */
static int eb_libbpf_print(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	char line[512];

	if (level == LIBBPF_DEBUG)
		return 0;
	vsnprintf(line, sizeof(line), fmt, ap);
	line[strcspn(line, "\n")] = '\0';
	log_debug("libbpf: %s", line);
	return 0;
}

/* Sets up the buffers the scans use and the shadow table (a quarter of the map: only
 * flows that outlive an active timeout need a shadow). */
static int eb_buffers(struct cap_ebpf *e)
{
	uint32_t slots = 256;

	e->one = calloc((size_t)e->ncpu, sizeof(struct tf_flow_val));
	e->pcpu = calloc((size_t)e->ncpu, sizeof(struct tf_percpu));
	if (!e->one || !e->pcpu || eb_batch_alloc(e, EB_BATCH) < 0)
		return -ENOMEM;
	while (slots < e->map_size / 3)
		slots <<= 1;
	e->sh = calloc(slots, sizeof(*e->sh));
	if (!e->sh)
		return -ENOMEM;
	e->sh_mask = slots - 1;
	e->sh_max = slots / 4 * 3;
	if (getrandom(&e->sh_seed, sizeof(e->sh_seed), GRND_NONBLOCK) != sizeof(e->sh_seed))
		e->sh_seed = 0x9e3779b97f4a7c15ull ^ (uint64_t)(uintptr_t)e;
	return 0;
}

/* Loads scan.bpf.c on the flow map, or says in e->scan_how why not: the backend works
 * without it (batch lookups), only at more cost per live flow. */
static void eb_scan_open(struct cap_ebpf *e, int user_scan)
{
	const char *why = NULL;
	struct tf_scan_bpf *s = NULL;
	int r = 0;
	void *m;

	e->scan_max = e->map_size / 8 < 64 ? 64 : e->map_size / 8 > 8192 ? 8192 :
		      e->map_size / 8;
	e->scan_ent = TF_SCAN_HDR + (size_t)e->ncpu * sizeof(struct tf_flow_val);
	if (user_scan)
		why = "--bpf-scan user";
	else if (e->ncpu > TF_SCAN_MAXCPU)
		why = "more CPUs than it handles";
	else if (libbpf_probe_bpf_helper(BPF_PROG_TYPE_SCHED_CLS, BPF_FUNC_for_each_map_elem,
					 NULL) != 1)
		why = "no bpf_for_each_map_elem (kernel 5.13)";
	else if (!(s = tf_scan_bpf__open()))
		r = -errno;
	if (!why && !r) {
		s->rodata->tf_cfg_ncpu = (uint32_t)e->ncpu;
		s->rodata->tf_cfg_inactive_ns = (uint64_t)e->exp.inactive_ms * 1000000u;
		s->rodata->tf_cfg_active_ns = (uint64_t)e->exp.active_ms * 1000000u;
		s->rodata->tf_cfg_grace_ns = (uint64_t)e->exp.fin_grace_ms * 1000000u;
		bpf_map__set_max_entries(s->maps.tf_flows, e->map_size);
		bpf_map__set_value_size(s->maps.tf_flows,
					(uint32_t)e->ncpu * (uint32_t)sizeof(struct tf_flow_val));
		bpf_map__set_max_entries(s->maps.tf_scan_out, e->scan_max);
		bpf_map__set_value_size(s->maps.tf_scan_out, (uint32_t)e->scan_ent);
		if ((r = bpf_map__reuse_fd(s->maps.tf_flows, e->flows_fd)) == 0)
			r = tf_scan_bpf__load(s);
	}
	if (!why && !r) {
		/* an mmapable array's values start page-aligned at offset 0 */
		m = mmap(NULL, (size_t)e->scan_max * e->scan_ent, PROT_READ, MAP_SHARED,
			 bpf_map__fd(s->maps.tf_scan_out), 0);
		if (m == MAP_FAILED)
			r = -errno;
		else
			e->scan_out = m;
	}
	if (why || r) {
		snprintf(e->scan_how, sizeof(e->scan_how), "batch lookups (no scan program: %s)",
			 why ? why : strerror(-r));
		log_info("ebpf: the flow map is read with batch lookups: %s",
			 why ? why : strerror(-r));
		tf_scan_bpf__destroy(s);
		return;
	}
	e->scan = s;
	snprintf(e->scan_how, sizeof(e->scan_how), "in the kernel, up to %u due flows out",
		 e->scan_max);
}

static int eb_attach_all(struct cap_ebpf *e, const struct cap_ebpf_cfg *cfg, char *err,
			 size_t errlen)
{
	int in = cfg->router || cfg->direction != CAP_DIR_OUT;
	int out = cfg->router || cfg->direction != CAP_DIR_IN;
	int r;

	for (int i = 0; i < e->nifs; i++) {
		struct eb_if *f = &e->ifs[i];

		if (in && cfg->xdp != CAP_XDP_OFF)
			r = eb_xdp_attach(f, bpf_program__fd(e->skel->progs.tf_flow_xdp), cfg->xdp,
					  err, errlen);
		else if (in)
			r = eb_tc_attach(f, EB_HOOK_IN, bpf_program__fd(e->skel->progs.tf_flow_in),
					 cfg->tc, err, errlen);
		else
			r = 0;
		if (r == 0 && out)
			r = eb_tc_attach(f, EB_HOOK_OUT,
					 bpf_program__fd(e->skel->progs.tf_flow_out), cfg->tc, err,
					 errlen);
		if (r < 0)
			return r;
	}
	e->attached = 1;
	const struct eb_if *f0 = &e->ifs[0];
	char hin[16] = "", hout[40] = "";
	if (in && cfg->xdp != CAP_XDP_OFF)
		snprintf(hin, sizeof(hin), "xdp %s",
			 f0->xdp_flags == XDP_FLAGS_DRV_MODE ? "native" : "generic");
	else if (in)
		snprintf(hin, sizeof(hin), "%s ingress", f0->tcx_fd[0] >= 0 ? "tcx" : "tc");
	if (out)
		snprintf(hout, sizeof(hout), "%s egress%s", f0->tcx_fd[1] >= 0 ? "tcx" : "tc",
			 cfg->router ? " (own packets)" : "");
	snprintf(e->how, sizeof(e->how), "%s%s%s on %d interface%s%s", hin,
		 in && out ? " + " : "", hout, e->nifs, e->nifs > 1 ? "s" : "",
		 cfg->router ? ", router" : "");
	return 0;
}

struct cap *cap_open_ebpf(const struct cap_ebpf_cfg *cfg, char *err, size_t errlen)
{
	struct cap_ebpf *e;
	uint32_t n, token;
	int r;

	if (cfg->nifaces < 1) {
		snprintf(err, errlen, "ebpf: no interface");
		return NULL;
	}
	e = calloc(1, sizeof(*e));
	if (!e)
		goto nomem;
	e->c.ops = &eb_ops;
	e->promisc_fd = -1;
	e->lad = -1;
	e->gen = 1;
	e->router = cfg->router;
	e->exp = cfg->expiry;
	e->map_size = cfg->map_size ? cfg->map_size : 65536;
	e->ncpu = libbpf_num_possible_cpus();
	if (e->ncpu <= 0) {
		snprintf(err, errlen, "ebpf: cannot count the CPUs: %s", strerror(-e->ncpu));
		goto fail;
	}
	e->ifs = calloc((size_t)cfg->nifaces, sizeof(*e->ifs));
	if (!e->ifs)
		goto nomem;
	for (int i = 0; i < cfg->nifaces; i++) {
		struct eb_if *f = &e->ifs[i];

		f->xdp_fd = -1;
		f->tcx_fd[0] = f->tcx_fd[1] = -1;
		snprintf(f->name, sizeof(f->name), "%s", cfg->ifaces[i]);
		r = eb_ifindex(cfg->ifaces[i], err, errlen);
		if (r < 0)
			goto fail;
		for (int j = 0; j < i; j++) {
			if (e->ifs[j].ifindex == r) {
				snprintf(err, errlen, "%s: interface given twice", f->name);
				goto fail;
			}
		}
		f->ifindex = r;
		e->nifs++;
	}

	libbpf_set_print(eb_libbpf_print);
	e->skel = tf_flow_bpf__open();
	if (!e->skel) {
		snprintf(err, errlen, "ebpf: cannot open the program: %s", strerror(errno));
		goto fail;
	}
	e->skel->rodata->tf_cfg_sample = cfg->sample > 1 ? cfg->sample : 1;
	e->skel->rodata->tf_cfg_router = cfg->router ? 1 : 0;
	e->skel->rodata->tf_cfg_ncpu = (uint32_t)e->ncpu;
	e->skel->rodata->tf_cfg_coarse =
		libbpf_probe_bpf_helper(BPF_PROG_TYPE_SCHED_CLS, BPF_FUNC_ktime_get_coarse_ns,
					NULL) == 1;
	if (e->skel->rodata->tf_cfg_coarse) {
		/* The tick's time lags by up to a tick, by two measured while CPUs sleep:
		 * three of them, so that no flow is judged idle before it is. */
		struct timespec res = { 0, 10000000 };
		clock_getres(CLOCK_MONOTONIC_COARSE, &res);
		e->tick_lag_ms = ((uint64_t)res.tv_sec * 1000000000u + (uint64_t)res.tv_nsec) *
				 3 / 1000000u + 1;
	}
	bpf_map__set_max_entries(e->skel->maps.tf_flows, e->map_size);
	bpf_map__set_value_size(e->skel->maps.tf_flows,
				(uint32_t)e->ncpu * (uint32_t)sizeof(struct tf_flow_val));
	bpf_map__set_value_size(e->skel->maps.tf_newval,
				(uint32_t)e->ncpu * (uint32_t)sizeof(struct tf_flow_val));
	/* Load only the programs this run attaches (each costs verifier time). */
	int in = cfg->router || cfg->direction != CAP_DIR_OUT;
	int out = cfg->router || cfg->direction != CAP_DIR_IN;
	bpf_program__set_autoload(e->skel->progs.tf_flow_xdp, in && cfg->xdp != CAP_XDP_OFF);
	bpf_program__set_autoload(e->skel->progs.tf_flow_in, in && cfg->xdp == CAP_XDP_OFF);
	bpf_program__set_autoload(e->skel->progs.tf_flow_out, out);
	r = tf_flow_bpf__load(e->skel);
	if (r < 0) {
		snprintf(err, errlen, "ebpf: cannot load the program: %s%s", strerror(-r),
			 r == -EPERM ? " (needs root, or CAP_BPF, CAP_PERFMON and "
			 "CAP_NET_ADMIN)" : "");
		goto fail;
	}
	e->skel->bss->tf_gen = e->gen;  /* .bss is mapped in memory once loaded */
	e->flows_fd = bpf_map__fd(e->skel->maps.tf_flows);
	e->counters_fd = bpf_map__fd(e->skel->maps.tf_counters);
	if (bpf_map__key_size(e->skel->maps.tf_flows) != sizeof(struct pkt_key) ||
	    bpf_map__value_size(e->skel->maps.tf_flows) !=
		    (size_t)e->ncpu * sizeof(struct tf_flow_val) ||
	    bpf_map__value_size(e->skel->maps.tf_counters) != sizeof(struct tf_percpu)) {
		snprintf(err, errlen, "ebpf: the program's maps do not match this build");
		goto fail;
	}
	if (eb_buffers(e) < 0)
		goto nomem;
	/* Batch map operations (5.6) are how the map is read: check before attaching. */
	n = e->batch;
	r = bpf_map_lookup_batch(e->flows_fd, NULL, &token, e->keys, e->vals, &n, NULL);
	if (r < 0 && r != -ENOENT) {
		snprintf(err, errlen, "ebpf: no batch map lookups on this kernel: %s",
			 strerror(-r));
		goto fail;
	}
	e->mono_to_unix_ns = eb_mono_offset();
	eb_scan_open(e, cfg->user_scan);
	if (cfg->promisc) {
		e->promisc_fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0);
		for (int i = 0; e->promisc_fd >= 0 && i < e->nifs; i++) {
			struct packet_mreq mr;

			memset(&mr, 0, sizeof(mr));
			mr.mr_ifindex = e->ifs[i].ifindex;
			mr.mr_type = PACKET_MR_PROMISC;
			if (setsockopt(e->promisc_fd, SOL_PACKET, PACKET_ADD_MEMBERSHIP, &mr,
				       sizeof(mr)) < 0)
				break;
		}
		if (e->promisc_fd < 0) {
			snprintf(err, errlen, "ebpf: promiscuous mode: %s", strerror(errno));
			goto fail;
		}
	}
	if (eb_attach_all(e, cfg, err, errlen) < 0)
		goto fail;
	return &e->c;

nomem:
	snprintf(err, errlen, "ebpf: out of memory");
fail:
	eb_close(e ? &e->c : NULL);
	return NULL;
}
