/* scan.bpf.c: the flow map's periodic scan, run in the kernel. User space (cap_ebpf.c)
 * runs tf_scan once a scan (BPF_PROG_TEST_RUN, never attached): it walks flow.bpf.c's
 * tf_flows (the same map, by fd) with bpf_for_each_map_elem and copies out, to the
 * memory-mapped array tf_scan_out, only the flows user space may have to act on: those
 * whose inactive, TCP-end or active timeout may be due at the scan's time. The rest
 * are only counted. Read from user space, every flow costs a batch lookup's bucket
 * lock, interrupts off and on, and a copy to user memory (about 0.6-1 us a flow in a
 * VM): an idle probe holding 30k flows spent 20-30 ms of CPU a second on it.
 *
 * The test here is a superset of user space's (flowtab_due, in ms of Unix time) by a
 * margin: user space decides about every flow copied out exactly as about one read by
 * a batch lookup, so a flow left out is one that would have stayed. A flow past its
 * active timeout stays due from then on, so a flow user space keeps a shadow entry for
 * (cut by an active timeout) is always copied out. Flows idle past their timeout by
 * more than the margin, and younger than the active timeout (so without a shadow),
 * are deleted here too: one system call each, the rest of the cost of an ended flow,
 * is saved; user space only exports them.
 *
 * When more flows are due than the output holds, the program stops there; user space
 * handles what it got and runs it again, passing over the flows already walked (less
 * those deleted meanwhile): a walk of the map per output-full, each flow handed out
 * once. A flow the programs insert meanwhile before that point shifts the walk by
 * one: a flow seen twice in a scan, which user space's decisions allow.
 *
 * A separate object from flow.bpf.c: bpf_for_each_map_elem needs kernel 5.13 and a
 * BPF-to-BPF call (the callback), which 32-bit ARM JITs lack; where this object does
 * not load, user space reads the map with batch lookups as before, and flow.bpf.c loads
 * regardless.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "flow.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Set by the loader before load. */
const volatile uint32_t tf_cfg_ncpu = 1;         /* slots in a flow value, as flow.bpf.c */
const volatile uint64_t tf_cfg_inactive_ns = 0;  /* flowtab_cfg's spans, in ns */
const volatile uint64_t tf_cfg_active_ns = 0;
const volatile uint64_t tf_cfg_grace_ns = 0;

/* Written by user space before each run: the scan's time (bpf_ktime_get_ns clock),
 * and how many flows of the walk to pass over (a scan goes on where the last run's
 * output filled up, in another run). */
uint64_t tf_scan_now_ns = 0;
uint64_t tf_scan_skip = 0;

/* Written by the program: entries filled in tf_scan_out; flows walked, those passed
 * over included; whether the output filled up (the walk stopped at the flow that did
 * not fit, which the next run must see again). */
uint32_t tf_scan_n = 0;
uint32_t tf_scan_over = 0;
uint64_t tf_scan_walked = 0;

/* Rounding of user space's ms (the Unix time of a packet and of the scan each lose
 * under 1 ms) and clock-offset conversion: copying a flow out early is harmless. */
#define TF_SCAN_MARGIN_NS 3000000ull

/* flow.bpf.c's map, reused by fd (the loader sets the same sizes). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, struct pkt_key);
	__type(value, struct tf_flow_val);
} tf_flows SEC(".maps");

/* A flow copied out: its key, whether this program deleted it (TF_SCAN_DELETED), and
 * its per-CPU values (tf_cfg_ncpu of them: the loader sets the value size). */
struct tf_scan_ent {
	struct pkt_key key;
	uint32_t del;
	uint32_t pad;
	struct tf_flow_val v[1];
};

_Static_assert(sizeof(struct tf_scan_ent) == TF_SCAN_HDR + sizeof(struct tf_flow_val),
	       "scan entry layout shared with user space");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(max_entries, 4096);  /* the loader sets it */
	__type(key, uint32_t);
	__type(value, struct tf_scan_ent);
} tf_scan_out SEC(".maps");

_Static_assert(sizeof(struct pkt_key) == 48, "the map key is struct pkt_key");
_Static_assert(sizeof(struct tf_flow_val) == 88, "flow value layout shared with user space");

/* What a scan at tf_scan_now_ns makes of a flow with per-CPU values v: 0 it stays,
 * 1 user space decides (it may be due), 2 it is due for sure and can have no shadow
 * entry in user space (it has not reached its active timeout): it ends idle or after
 * its TCP end, whatever user space's rounding. */
static __always_inline int tf_scan_due(const struct tf_flow_val *v)
{
	uint64_t first = ~0ull, last = 0, now = tf_scan_now_ns, idle, age, span;
	uint8_t flags = 0;

	for (uint32_t i = 0; i < TF_SCAN_MAXCPU && i < tf_cfg_ncpu; i++) {
		const struct tf_flow_val *c = &v[i];

		if (!c->packets)
			continue;
		if (c->first_ns < first)
			first = c->first_ns;
		if (c->last_ns > last)
			last = c->last_ns;
		flags |= c->tcp_flags;
	}
	if (first == ~0ull)
		return 1;  /* no packet in any copy: let user space see it */
	idle = now > last ? now - last : 0;
	age = now > first ? now - first : 0;
	span = flags & TF_TCP_END ? tf_cfg_grace_ns : tf_cfg_inactive_ns;
	if (age + TF_SCAN_MARGIN_NS < tf_cfg_active_ns && idle >= span + TF_SCAN_MARGIN_NS)
		return 2;
	return idle + TF_SCAN_MARGIN_NS >= span || age + TF_SCAN_MARGIN_NS >= tf_cfg_active_ns;
}

static __always_inline void tf_scan_copy(struct tf_scan_ent *ent, const struct tf_flow_val *v)
{
	for (uint32_t i = 0; i < TF_SCAN_MAXCPU && i < tf_cfg_ncpu; i++)
		__builtin_memcpy(&ent->v[i], &v[i], sizeof(ent->v[i]));
}

/* First walk: copies out the flows that may be due. */
static long tf_scan_one(void *map, const struct pkt_key *key, struct tf_flow_val *v,
			void *ctx)
{
	struct tf_scan_ent *ent;
	uint32_t idx = tf_scan_n;
	uint64_t *pos = ctx;
	int due;

	(void)map;
	if ((*pos)++ < tf_scan_skip)
		return 0;  /* seen by an earlier run of this scan */
	due = tf_scan_due(v);
	if (!due)
		return 0;
	ent = bpf_map_lookup_elem(&tf_scan_out, &idx);
	if (!ent) {
		tf_scan_over = 1;  /* full: the next run goes on from this flow */
		return 1;
	}
	__builtin_memcpy(&ent->key, key, sizeof(ent->key));
	ent->del = due == 2;
	tf_scan_copy(ent, v);
	tf_scan_n = idx + 1;
	return 0;
}

/* Second walk, over the copies: deletes the flows due for sure, their values copied
 * again right before (as BPF_MAP_LOOKUP_AND_DELETE_ELEM does, so the record holds
 * every packet counted up to the deletion), unless a packet came since the first walk.
 * Deleting here, not during the first walk, keeps that walk off elements that a
 * deletion hands back to the map's free list. */
static long tf_scan_del(void *map, const uint32_t *idx, struct tf_scan_ent *ent, void *ctx)
{
	struct tf_flow_val *v;

	(void)map;
	(void)ctx;
	if (*idx >= tf_scan_n)
		return 1;
	if (!ent->del)
		return 0;
	ent->del = 0;
	v = bpf_map_lookup_elem(&tf_flows, &ent->key);
	if (!v)
		return 0;
	tf_scan_copy(ent, v);
	if (tf_scan_due(v) != 2)
		return 0;  /* it went on: user space decides with the new values */
	if (bpf_map_delete_elem(&tf_flows, &ent->key) == 0)
		ent->del = TF_SCAN_DELETED;
	return 0;
}

SEC("tc")
int tf_scan(struct __sk_buff *skb)
{
	uint64_t pos = 0;

	(void)skb;
	tf_scan_n = 0;
	tf_scan_over = 0;
	tf_scan_walked = (uint64_t)bpf_for_each_map_elem(&tf_flows, tf_scan_one, &pos, 0);
	if (tf_scan_n)
		bpf_for_each_map_elem(&tf_scan_out, tf_scan_del, (void *)0, 0);
	return 0;
}
