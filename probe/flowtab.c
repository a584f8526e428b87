/* flowtab.c: the probe's flow table (see flowtab.h for the rules it applies).
 *
 * Owns three allocations made in flowtab_new: the entry array (max_flows entries, an
 * entry's index never changes while its flow lives), the open-addressing index (a
 * power of two of slots, linear probing, backward-shift deletion, no tombstones) and
 * the table itself. Flows are threaded on intrusive lists by u32 entry index:
 *   lru  flows without FIN/RST, least recently seen at the head (inactive timeout);
 *   fin  flows that saw FIN/RST, least recently seen at the head (grace);
 *   age  every flow, in creation order (active timeout).
 * Each list stays in time order as long as time does not run backwards, so expiry
 * pops heads while they are due and stops at the first that is not.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "flowtab.h"

#define FT_NIL UINT32_MAX
#define FT_TCP_FIN 0x01
#define FT_TCP_RST 0x04
#define FT_TCP_END (FT_TCP_FIN | FT_TCP_RST)

struct ft_link {
	uint32_t prev;
	uint32_t next;
};

/* One flow. A packet reads or writes everything up to tcp_flags (89 bytes); tag and
 * age only matter when the flow is created, restarted or removed. */
struct ft_entry {
	struct pkt_key key;
	uint64_t packets;
	uint64_t bytes;
	uint64_t last_ms;
	uint64_t first_ms;
	struct ft_link lru;     /* on lru or fin list; lru.next links the free list */
	uint8_t tcp_flags;      /* FIN or RST here = the flow is on the fin list */
	uint8_t pad[3];
	uint32_t tag;           /* its index hash, so removal need not rehash the key */
	struct ft_link age;
};

_Static_assert(sizeof(struct pkt_key) == 48, "pkt_key is hashed as 6 words");
_Static_assert(sizeof(struct ft_entry) == 104, "entry size is in the memory budget");

/* Index slot: ent is the entry index + 1 (0 = empty, so calloc makes an empty index);
 * tag is the key's 32-bit hash, whose low bits are the home slot. */
struct ft_slot {
	uint32_t ent;
	uint32_t tag;
};

struct ft_list {
	uint32_t head;
	uint32_t tail;
};

struct flowtab {
	struct ft_entry *ents;
	struct ft_slot *slots;
	uint32_t mask;          /* slots - 1 */
	uint32_t max_flows;
	uint32_t n_used;        /* entries ever handed out; [n_used, max_flows) untouched */
	uint32_t free_head;     /* entries given back, linked through lru.next */
	struct ft_list lru;
	struct ft_list fin;
	struct ft_list age;
	uint64_t seed;
	struct flowtab_cfg cfg;
	struct flowtab_stats st;
	size_t mem;
};

/* --- hashing ------------------------------------------------------------------ */

static inline uint64_t ft_word(const uint8_t *p)
{
	uint64_t w;
	memcpy(&w, p, sizeof w);  /* host order is fine: the hash never leaves the table */
	return w;
}

/* One round: the multiply carries each bit upwards, the rotation brings the well-mixed
 * high half down, so no input bit stays confined to the top (a plain multiply chain
 * leaves dport, in the top bits of its word, out of the home slot and clusters scans). */
static inline uint64_t ft_mix(uint64_t h, uint64_t w)
{
	h = (h ^ w) * 0x9e3779b97f4a7c15ull;
	return h << 31 | h >> 33;
}

static inline uint32_t ft_hash(const struct pkt_key *k, uint64_t seed)
{
	const uint8_t *p = (const uint8_t *)k;
	uint64_t h = seed;

	h = ft_mix(h, ft_word(p));
	h = ft_mix(h, ft_word(p + 8));
	h = ft_mix(h, ft_word(p + 16));
	h = ft_mix(h, ft_word(p + 24));
	h = ft_mix(h, ft_word(p + 32));
	h = ft_mix(h, ft_word(p + 40));
	h ^= h >> 32;
	return (uint32_t)((h * 0xd6e8feb86659fd93ull) >> 32);
}

static inline int ft_key_eq(const struct pkt_key *a, const struct pkt_key *b)
{
	const uint8_t *x = (const uint8_t *)a, *y = (const uint8_t *)b;

	return ((ft_word(x) ^ ft_word(y)) | (ft_word(x + 8) ^ ft_word(y + 8)) |
		(ft_word(x + 16) ^ ft_word(y + 16)) | (ft_word(x + 24) ^ ft_word(y + 24)) |
		(ft_word(x + 32) ^ ft_word(y + 32)) | (ft_word(x + 40) ^ ft_word(y + 40))) == 0;
}

/* --- lists -------------------------------------------------------------------- */

static inline struct ft_link *ft_lnk(struct flowtab *ft, uint32_t i, int age)
{
	return age ? &ft->ents[i].age : &ft->ents[i].lru;
}

static inline void ft_unlink(struct flowtab *ft, struct ft_list *l, uint32_t i, int age)
{
	struct ft_link *n = ft_lnk(ft, i, age);

	if (n->prev != FT_NIL)
		ft_lnk(ft, n->prev, age)->next = n->next;
	else
		l->head = n->next;
	if (n->next != FT_NIL)
		ft_lnk(ft, n->next, age)->prev = n->prev;
	else
		l->tail = n->prev;
}

static inline void ft_append(struct flowtab *ft, struct ft_list *l, uint32_t i, int age)
{
	struct ft_link *n = ft_lnk(ft, i, age);

	n->prev = l->tail;
	n->next = FT_NIL;
	if (l->tail != FT_NIL)
		ft_lnk(ft, l->tail, age)->next = i;
	else
		l->head = i;
	l->tail = i;
}

static inline struct ft_list *ft_seen_list(struct flowtab *ft, uint8_t tcp_flags)
{
	return (tcp_flags & FT_TCP_END) ? &ft->fin : &ft->lru;
}

/* --- expiry decision ---------------------------------------------------------- */

/* The one place that decides whether a flow is due at now, and why (0: not due). */
static inline int ft_due(const struct flowtab *ft, const struct ft_entry *e, uint64_t now)
{
	return flowtab_due(&ft->cfg, e->tcp_flags & FT_TCP_END, e->first_ms, e->last_ms, now);
}

/* --- records and removal ------------------------------------------------------ */

static void ft_emit(const struct ft_entry *e, int reason, flowtab_emit_fn emit, void *arg)
{
	struct flow_rec rec;

	if (!emit)
		return;
	memset(&rec, 0, sizeof rec);
	memcpy(rec.src, e->key.src, sizeof rec.src);
	memcpy(rec.dst, e->key.dst, sizeof rec.dst);
	rec.packets = e->packets;
	rec.bytes = e->bytes;
	rec.first_ms = e->first_ms;
	rec.last_ms = e->last_ms;
	rec.in_if = e->key.in_if;
	rec.sampling = 1;
	rec.sport = e->key.sport;
	rec.dport = e->key.dport;
	rec.vlan = e->key.vlan;
	rec.proto = e->key.proto;
	rec.tos = e->key.tos;
	rec.tcp_flags = e->tcp_flags;
	rec.ipver = e->key.ipver;
	rec.end_reason = (uint8_t)reason;
	emit(&rec, arg);
}

/* Takes entry i out of the index: finds its slot from its stored tag, then shifts
 * back each later member of the cluster that may move into the hole, so lookups never
 * meet a gap inside a probe sequence. */
static void ft_index_del(struct flowtab *ft, uint32_t i, uint32_t tag)
{
	struct ft_slot *s = ft->slots;
	uint32_t mask = ft->mask;
	uint32_t hole = tag & mask;

	while (s[hole].ent != i + 1)
		hole = (hole + 1) & mask;
	for (uint32_t j = (hole + 1) & mask; s[j].ent; j = (j + 1) & mask) {
		uint32_t home = s[j].tag & mask;
		/* The entry at j may fill the hole if the hole lies between its home and j. */
		if (((j - home) & mask) >= ((j - hole) & mask)) {
			s[hole] = s[j];
			hole = j;
		}
	}
	s[hole].ent = 0;
	s[hole].tag = 0;
}

/* Emits entry i with reason and gives it back. */
static void ft_remove(struct flowtab *ft, uint32_t i, int reason, flowtab_emit_fn emit,
		      void *arg)
{
	struct ft_entry *e = &ft->ents[i];

	ft_index_del(ft, i, e->tag);
	ft_unlink(ft, ft_seen_list(ft, e->tcp_flags), i, 0);
	ft_unlink(ft, &ft->age, i, 1);
	e->lru.next = ft->free_head;
	ft->free_head = i;
	ft->st.active--;
	ft->st.expired[reason]++;
	/* Emit last: the entry is already out of every structure, but still intact. */
	ft_emit(e, reason, emit, arg);
}

/* --- public ------------------------------------------------------------------- */

struct flowtab *flowtab_new(const struct flowtab_cfg *cfg)
{
	struct flowtab *ft = NULL;
	uint64_t need, slots = 1;

	if (!cfg || cfg->max_flows == 0 || cfg->max_flows > FLOWTAB_MAX_FLOWS) {
		errno = EINVAL;
		return NULL;
	}
	/* Load factor at most 3/4 keeps linear probing short. */
	need = (uint64_t)cfg->max_flows + (cfg->max_flows + 2) / 3;
	while (slots < need)
		slots <<= 1;
	if ((uint64_t)cfg->max_flows * sizeof(struct ft_entry) > SIZE_MAX / 2 ||
	    slots * sizeof(struct ft_slot) > SIZE_MAX / 2) {
		errno = ENOMEM;
		return NULL;
	}

	ft = calloc(1, sizeof *ft);
	if (!ft)
		goto fail;
	/* calloc: the kernel hands out zero pages lazily, so a big budget costs memory
	 * only as flows come; entries need no zeroing (set up when handed out). */
	ft->ents = calloc(cfg->max_flows, sizeof(struct ft_entry));
	if (!ft->ents)
		goto fail_ents;
	ft->slots = calloc((size_t)slots, sizeof(struct ft_slot));
	if (!ft->slots)
		goto fail_slots;

	ft->mask = (uint32_t)(slots - 1);
	ft->max_flows = cfg->max_flows;
	ft->free_head = FT_NIL;
	ft->lru.head = ft->lru.tail = FT_NIL;
	ft->fin.head = ft->fin.tail = FT_NIL;
	ft->age.head = ft->age.tail = FT_NIL;
	ft->cfg = *cfg;
	ft->mem = sizeof *ft + (size_t)cfg->max_flows * sizeof(struct ft_entry) +
		  (size_t)slots * sizeof(struct ft_slot);
	/* A per-table random seed keeps crafted traffic from aiming at one cluster. Record
	 * order never depends on the hash, so output stays deterministic. */
	if (getrandom(&ft->seed, sizeof ft->seed, GRND_NONBLOCK) != sizeof ft->seed)
		ft->seed = 0x2545f4914f6cdd1dull ^ (uint64_t)(uintptr_t)ft;
	return ft;

fail_slots:
	free(ft->ents);
fail_ents:
	free(ft);
fail:
	errno = ENOMEM;
	return NULL;
}

void flowtab_free(struct flowtab *ft)
{
	if (!ft)
		return;
	free(ft->slots);
	free(ft->ents);
	free(ft);
}

/* Sets entry i up as a fresh flow holding no packet yet, at the tails of its lists. */
static void ft_start(struct flowtab *ft, uint32_t i, uint64_t now)
{
	struct ft_entry *e = &ft->ents[i];

	e->packets = 0;
	e->bytes = 0;
	e->first_ms = now;
	e->last_ms = now;
	e->tcp_flags = 0;
	ft_append(ft, &ft->lru, i, 0);
	ft_append(ft, &ft->age, i, 1);
	ft->st.created++;
}

/* Counts one packet in entry i. The flow moves to the tail of its time list when its
 * last time advances; the first FIN/RST moves it to the fin list, whatever its time. */
/* always_inline: gcc otherwise keeps it out of line, at ~10% of the per-packet cost. */
static inline __attribute__((always_inline)) void
ft_account(struct flowtab *ft, uint32_t i, const struct pkt_info *pi, uint64_t now)
{
	struct ft_entry *e = &ft->ents[i];
	uint8_t was = e->tcp_flags, flags = was | pi->tcp_flags;
	struct ft_list *l;

	e->packets++;
	e->bytes += pi->ip_len;
	e->tcp_flags = flags;
	/* Only the first of FIN/RST switches lists: RST after FIN finds it there already. */
	if (__builtin_expect((flags & FT_TCP_END) && !(was & FT_TCP_END), 0)) {
		ft_unlink(ft, &ft->lru, i, 0);
		ft_append(ft, &ft->fin, i, 0);
	}
	if (__builtin_expect(now < e->last_ms, 0)) {
		if (now < e->first_ms)
			e->first_ms = now;
		return;  /* an old packet: its place in time order does not change */
	}
	e->last_ms = now;
	l = ft_seen_list(ft, flags);
	if (l->tail != i) {
		ft_unlink(ft, l, i, 0);
		ft_append(ft, l, i, 0);
	}
}

/* The packet's flow is not in the table (slot pos is the empty slot its probe ended
 * on), or it is at pos but due: make room or restart it, then count the packet. */
static void ft_update_slow(struct flowtab *ft, const struct pkt_info *pi, uint64_t now,
			   flowtab_emit_fn emit, void *arg, uint32_t tag, uint32_t pos)
{
	uint32_t i = ft->slots[pos].ent;

	if (i) {
		/* Due: emit it and start over in the same entry and slot (same key). */
		struct ft_entry *e = &ft->ents[--i];
		int reason = ft_due(ft, e, now);

		ft_unlink(ft, ft_seen_list(ft, e->tcp_flags), i, 0);
		ft_unlink(ft, &ft->age, i, 1);
		ft->st.expired[reason]++;
		ft_emit(e, reason, emit, arg);
		ft_start(ft, i, now);
		ft_account(ft, i, pi, now);
		return;
	}
	if (ft->st.active == ft->max_flows) {
		/* Finished flows go first; otherwise the least recently seen. */
		i = ft->fin.head != FT_NIL ? ft->fin.head : ft->lru.head;
		ft_remove(ft, i, FLOW_END_RESOURCE, emit, arg);
		ft->st.table_full++;
		/* The removal may have shifted slots: probe again for the first hole. */
		pos = tag & ft->mask;
		while (ft->slots[pos].ent)
			pos = (pos + 1) & ft->mask;
	}
	if (ft->free_head != FT_NIL) {
		i = ft->free_head;
		ft->free_head = ft->ents[i].lru.next;
	} else {
		i = ft->n_used++;
	}
	ft->ents[i].key = pi->key;
	ft->ents[i].tag = tag;
	ft->slots[pos].ent = i + 1;
	ft->slots[pos].tag = tag;
	ft->st.active++;
	ft_start(ft, i, now);
	ft_account(ft, i, pi, now);
}

uint32_t flowtab_prefetch(const struct flowtab *ft, const struct pkt_key *key)
{
	uint32_t tag = ft_hash(key, ft->seed);

	__builtin_prefetch(&ft->slots[tag & ft->mask]);
	return tag;
}

void flowtab_prefetch_entry(const struct flowtab *ft, uint32_t tag)
{
	struct ft_slot s = ft->slots[tag & ft->mask];

	if (s.ent) {
		const char *e = (const char *)&ft->ents[s.ent - 1];
		__builtin_prefetch(e);
		__builtin_prefetch(e + sizeof(struct ft_entry) - 1);
	}
}

/* The per-packet path: one probe sequence, and on a hit that is not due a counter
 * update and a list move. Everything else is in ft_update_slow. */
void flowtab_update_hashed(struct flowtab *ft, const struct pkt_info *pi, uint32_t tag,
			   uint64_t now_ms, flowtab_emit_fn emit, void *arg)
{
	uint32_t pos = tag & ft->mask;

	for (;;) {
		struct ft_slot s = ft->slots[pos];

		if (s.ent == 0)
			break;
		if (s.tag == tag && ft_key_eq(&ft->ents[s.ent - 1].key, &pi->key)) {
			if (__builtin_expect(ft_due(ft, &ft->ents[s.ent - 1], now_ms), 0))
				break;
			ft_account(ft, s.ent - 1, pi, now_ms);
			return;
		}
		pos = (pos + 1) & ft->mask;
	}
	ft_update_slow(ft, pi, now_ms, emit, arg, tag, pos);
}

void flowtab_update(struct flowtab *ft, const struct pkt_info *pi, uint64_t now_ms,
		    flowtab_emit_fn emit, void *arg)
{
	flowtab_update_hashed(ft, pi, ft_hash(&pi->key, ft->seed), now_ms, emit, arg);
}

size_t flowtab_expire(struct flowtab *ft, uint64_t now_ms, flowtab_emit_fn emit, void *arg)
{
	size_t n = 0;

	/* Each list is in time order for its own rule, so the head is the first due. */
	while (ft->fin.head != FT_NIL) {
		uint32_t i = ft->fin.head;
		ft->st.expire_checks++;
		if (!flowtab_after(now_ms, ft->ents[i].last_ms, ft->cfg.fin_grace_ms))
			break;
		ft_remove(ft, i, FLOW_END_EOF, emit, arg);
		n++;
	}
	while (ft->lru.head != FT_NIL) {
		uint32_t i = ft->lru.head;
		ft->st.expire_checks++;
		if (!flowtab_after(now_ms, ft->ents[i].last_ms, ft->cfg.inactive_ms))
			break;
		ft_remove(ft, i, FLOW_END_IDLE, emit, arg);
		n++;
	}
	while (ft->age.head != FT_NIL) {
		uint32_t i = ft->age.head;
		ft->st.expire_checks++;
		if (!flowtab_after(now_ms, ft->ents[i].first_ms, ft->cfg.active_ms))
			break;
		ft_remove(ft, i, FLOW_END_ACTIVE, emit, arg);
		n++;
	}
	return n;
}

size_t flowtab_flush(struct flowtab *ft, flowtab_emit_fn emit, void *arg)
{
	size_t n = 0;

	while (ft->age.head != FT_NIL) {
		ft_remove(ft, ft->age.head, FLOW_END_FORCED, emit, arg);
		n++;
	}
	return n;
}

const struct flowtab_stats *flowtab_stats(const struct flowtab *ft)
{
	return &ft->st;
}

size_t flowtab_mem_bytes(const struct flowtab *ft)
{
	return ft->mem;
}

uint32_t flowtab_hash(const struct flowtab *ft, const struct pkt_key *key)
{
	return ft_hash(key, ft->seed);
}
