/* nfdec.c: NetFlow v5 / v9 / IPFIX decoding (see nfdec.h for the contract).
 *
 * One codec serves all three versions. A template (v9, IPFIX, or the fixed v5 record
 * layout, which is just a built-in template) is compiled once into a flat list of steps:
 * (offset, length, op, slot), one per field we map, in record order. Decoding a record
 * runs the steps, each loading a big-endian value into a slot of a scratch array, then
 * one finishing pass turns slots into a struct flow_rec using choices made at compile
 * time (which counter, which clock, which address family). Unmapped fields cost nothing
 * per record: they only move the offsets of later steps. A variable-length field splits
 * the record into segments; an OP_VAR step reads its length prefix and rebases the
 * offsets of the steps after it.
 */
#include "nfdec.h"

#include <stdlib.h>
#include <string.h>

#include "bytes.h"

#define NIL UINT32_MAX
#define MAX_FIELDS 16384       /* more than a 64 KiB set can describe */
#define MAX_RECORD 65531       /* a record must fit in one set after its header */
#define VARLEN 65535           /* IPFIX (and some v9 exporters): length follows inline */
#define NTP_UNIX_OFFSET 2208988800ull  /* seconds from 1900 to 1970 */
/* Held sets per exporter: bounds the work of looking for the ones a datagram's
 * templates made decodable (one hash lookup each, once per datagram). */
#define PEND_MAX_PER_EXPORTER 1024

/* Scratch value slots a step can load into. S_ZERO is never written: "absent". */
enum slot {
	S_ZERO,
	S_BYTES, S_PKTS, S_OUT_BYTES, S_OUT_PKTS, S_TOT_BYTES, S_TOT_PKTS,
	S_INI_BYTES, S_INI_PKTS, S_RSP_BYTES, S_RSP_PKTS,
	S_PROTO, S_TOS, S_FLAGS, S_SPORT, S_DPORT, S_SMASK, S_DMASK,
	S_INIF, S_OUTIF, S_SRCAS, S_DSTAS,
	S_ICMP, S_ICMP_TYPE, S_ICMP_CODE, S_VLAN, S_DOT1Q, S_IPVER, S_END_REASON,
	S_FIRST_UP, S_LAST_UP, S_FIRST_S, S_LAST_S, S_FIRST_MS, S_LAST_MS,
	S_FIRST_NTP_US, S_LAST_NTP_US, S_FIRST_NTP_NS, S_LAST_NTP_NS,
	S_FIRST_DUS, S_LAST_DUS, S_OBS_MS, S_DUR_MS, S_DUR_US,
	S_SYSINIT, S_SAMP_INT, S_SAMP_RINT, S_PKT_INT, S_PKT_SPACE,
	S__COUNT
};
_Static_assert(S__COUNT <= 64, "slot mask is 64 bits");

enum aslot { A_SRC4, A_DST4, A_NH4, A_SRC6, A_DST6, A_NH6, A__COUNT };

#define BIT(s) (1ull << (s))
#define SAMPLING_BITS (BIT(S_SAMP_INT) | BIT(S_SAMP_RINT) | BIT(S_PKT_INT) | BIT(S_PKT_SPACE))
/* What an options template is read for; everything else in it is skipped. */
#define OPTION_BITS (SAMPLING_BITS | BIT(S_SYSINIT))

enum kind { K_NONE, K_NUM, K_A4, K_A6 };

struct iemap {
	uint8_t kind;
	uint8_t slot;
};

/* Information elements we map, by number (IANA IPFIX registry; v9 numbers agree below
 * 128 and NSEL's 231/323 are the IANA ones). Anything not here is skipped by length. */
static const struct iemap ie_table[] = {
	[1] = { K_NUM, S_BYTES },        /* octetDeltaCount / IN_BYTES */
	[2] = { K_NUM, S_PKTS },         /* packetDeltaCount / IN_PKTS */
	[4] = { K_NUM, S_PROTO },
	[5] = { K_NUM, S_TOS },
	[6] = { K_NUM, S_FLAGS },
	[7] = { K_NUM, S_SPORT },
	[8] = { K_A4, A_SRC4 },
	[9] = { K_NUM, S_SMASK },
	[10] = { K_NUM, S_INIF },
	[11] = { K_NUM, S_DPORT },
	[12] = { K_A4, A_DST4 },
	[13] = { K_NUM, S_DMASK },
	[14] = { K_NUM, S_OUTIF },
	[15] = { K_A4, A_NH4 },
	[16] = { K_NUM, S_SRCAS },
	[17] = { K_NUM, S_DSTAS },
	[21] = { K_NUM, S_LAST_UP },     /* LAST_SWITCHED / flowEndSysUpTime */
	[22] = { K_NUM, S_FIRST_UP },
	[23] = { K_NUM, S_OUT_BYTES },
	[24] = { K_NUM, S_OUT_PKTS },
	[27] = { K_A6, A_SRC6 },
	[28] = { K_A6, A_DST6 },
	[29] = { K_NUM, S_SMASK },
	[30] = { K_NUM, S_DMASK },
	[32] = { K_NUM, S_ICMP },        /* icmpTypeCodeIPv4 */
	[34] = { K_NUM, S_SAMP_INT },    /* samplingInterval */
	[50] = { K_NUM, S_SAMP_RINT },   /* samplerRandomInterval */
	[58] = { K_NUM, S_VLAN },
	[60] = { K_NUM, S_IPVER },
	[62] = { K_A6, A_NH6 },
	[85] = { K_NUM, S_TOT_BYTES },
	[86] = { K_NUM, S_TOT_PKTS },
	[136] = { K_NUM, S_END_REASON },
	[139] = { K_NUM, S_ICMP },       /* icmpTypeCodeIPv6 */
	[150] = { K_NUM, S_FIRST_S },
	[151] = { K_NUM, S_LAST_S },
	[152] = { K_NUM, S_FIRST_MS },
	[153] = { K_NUM, S_LAST_MS },
	[154] = { K_NUM, S_FIRST_NTP_US },
	[155] = { K_NUM, S_LAST_NTP_US },
	[156] = { K_NUM, S_FIRST_NTP_NS },
	[157] = { K_NUM, S_LAST_NTP_NS },
	[158] = { K_NUM, S_FIRST_DUS },  /* flowStartDeltaMicroseconds */
	[159] = { K_NUM, S_LAST_DUS },
	[160] = { K_NUM, S_SYSINIT },    /* systemInitTimeMilliseconds */
	[161] = { K_NUM, S_DUR_MS },
	[162] = { K_NUM, S_DUR_US },
	[176] = { K_NUM, S_ICMP_TYPE },  /* icmpTypeIPv4 */
	[177] = { K_NUM, S_ICMP_CODE },
	[178] = { K_NUM, S_ICMP_TYPE },  /* icmpTypeIPv6 */
	[179] = { K_NUM, S_ICMP_CODE },
	[231] = { K_NUM, S_INI_BYTES },  /* initiatorOctets (ASA NSEL) */
	[232] = { K_NUM, S_RSP_BYTES },  /* responderOctets */
	[243] = { K_NUM, S_DOT1Q },      /* dot1qVlanId */
	[298] = { K_NUM, S_INI_PKTS },   /* initiatorPackets */
	[299] = { K_NUM, S_RSP_PKTS },   /* responderPackets */
	[305] = { K_NUM, S_PKT_INT },    /* samplingPacketInterval */
	[306] = { K_NUM, S_PKT_SPACE },  /* samplingPacketSpace */
	[323] = { K_NUM, S_OBS_MS },     /* observationTimeMilliseconds (ASA event time) */
};
#define IE_TABLE_LEN (sizeof ie_table / sizeof ie_table[0])

enum op { OP_N1, OP_N2, OP_N4, OP_N8, OP_NN, OP_A4, OP_A6, OP_VAR };

/* One compiled step. For OP_VAR, off is where the variable-length field starts in the
 * current segment and len the length of the fixed segment that follows it. */
struct step {
	uint16_t off;
	uint16_t len;
	uint8_t op;
	uint8_t slot;
};

/* A field as the template states it. */
struct fspec {
	uint16_t type;
	uint16_t len;
	uint8_t skip;   /* enterprise-specific or v9 scope: never mapped */
};

/* How a record's time is found, in order of preference. */
enum tmode { T_NONE, T_MS, T_NTP, T_S, T_UP, T_DUS, T_OBS };
enum amode { AD_NONE, AD_V4, AD_V6, AD_BOTH };

struct tpl {
	uint32_t exp;
	uint32_t domain;
	uint16_t id;
	uint8_t version;
	uint8_t options;
	uint32_t hnext;          /* hash chain */
	uint32_t prev, next;     /* LRU list (or free list through next) */
	uint32_t min_len;        /* shortest record: fixed bytes + 1 per variable field */
	uint32_t seg0;           /* bytes before the first variable field (all if none) */
	uint64_t has;            /* slots some step loads */
	struct step *steps;
	uint16_t nsteps;
	/* finishing plan, chosen once per template */
	uint8_t bytes, pkts, vlan, dur;
	uint8_t addr, nh;
	uint8_t first_mode, first_slot, last_mode, last_slot;
	uint8_t icmp;            /* 0 none, 1 combined type/code, 2 separate */
};

struct domain {
	struct nfdec_domain_stats st;
	uint32_t next_seq;
	uint8_t seq_valid;
};

struct pend;

struct exporter {
	struct nfdec_exporter_stats st;
	struct domain *doms;
	size_t ndom, domcap, last;
	struct pend *pend_head, *pend_tail;   /* this exporter's held sets, oldest first */
	size_t npend;
};

/* A data set held until its template comes, with the header values it needs. It is on
 * two lists: all held sets (for age and the byte cap) and its exporter's. */
struct pend {
	struct pend *prev, *next;
	struct pend *eprev, *enext;
	uint64_t arrived_ms;
	uint64_t export_ms;
	uint32_t uptime;
	uint32_t exp, domain;
	uint32_t dom_idx;        /* in the exporter's domain table (never shrinks) */
	uint16_t tpl_id;
	uint8_t version;
	size_t len, cost;
	uint8_t data[];
};

struct nfdec {
	struct nfdec_cfg cfg;
	struct nfdec_stats tot;
	/* exporters, found through an open-addressing table of indexes */
	struct exporter *exps;
	size_t nexp, expcap;
	uint32_t *exphash;
	size_t exphmask;
	/* template cache: fixed slots, chained hash, LRU list */
	struct tpl *tpls;
	uint32_t *tplhash;
	size_t tplhmask;
	uint32_t lru_head, lru_tail, free_head;
	size_t ntpl;
	struct tpl v5;           /* the v5 record layout as a template */
	/* pending data sets, oldest first */
	struct pend *pend_head, *pend_tail;
	/* scratch, reused by every call */
	uint64_t v[S__COUNT];
	uint8_t a[A__COUNT][16];
	struct fspec fs[MAX_FIELDS];
	struct step cs[MAX_FIELDS];
};

/* Per-message decoding context. */
struct dctx {
	struct exporter *ex;
	uint32_t exp;
	struct domain *dom;
	uint8_t version;
	uint64_t export_ms;
	uint32_t uptime;         /* v5/v9 header sysUptime */
	uint32_t v5_sampling;    /* v5 header interval (0: not v5) */
	uint64_t nrec;           /* data records read (flows and options) */
	uint64_t ntpl;           /* template records read (v9 header count) */
	int seq_unknown;         /* some data could not be counted */
	int stored;              /* a template was stored: look at held sets */
	uint8_t withdrawn;       /* bit 0: all data, bit 1: all options templates */
	int err;                 /* first error */
	nfdec_emit_fn emit;
	void *arg;
};

/* ---------------------------------------------------------------- errors, config */

static const char *const err_names[NFDEC_E__COUNT] = {
	[NFDEC_OK] = "ok",
	[NFDEC_E_SHORT] = "short",
	[NFDEC_E_VERSION] = "version",
	[NFDEC_E_V5_COUNT] = "v5_count",
	[NFDEC_E_MSG_LENGTH] = "msg_length",
	[NFDEC_E_SET_LENGTH] = "set_length",
	[NFDEC_E_SET_ID] = "set_id",
	[NFDEC_E_TEMPLATE] = "template",
	[NFDEC_E_TEMPLATE_EMPTY] = "template_empty",
	[NFDEC_E_RECORD] = "record",
	[NFDEC_E_EXPORTER_CAP] = "exporter_cap",
	[NFDEC_E_DOMAIN_CAP] = "domain_cap",
	[NFDEC_E_NOMEM] = "nomem",
};

const char *nfdec_err_name(int err)
{
	if (err <= -NFDEC_E__COUNT || err >= NFDEC_E__COUNT)
		return "unknown";
	return err_names[err < 0 ? -err : err];
}

void nfdec_cfg_default(struct nfdec_cfg *cfg)
{
	cfg->max_templates = 4096;
	cfg->max_exporters = 256;
	cfg->max_domains = 64;
	cfg->pending_max_bytes = 4u << 20;
	cfg->pending_max_ms = 60000;
	cfg->apply_sampling = 0;
}

static void count_err(struct nfdec *d, struct dctx *c, enum nfdec_err e)
{
	d->tot.errors[e]++;
	if (c && c->ex)
		c->ex->st.errors[e]++;
	if (c && !c->err)
		c->err = e;
}

/* ---------------------------------------------------------------- compiling */

static uint8_t op_for(uint8_t kind, uint16_t len)
{
	if (kind == K_A4)
		return len == 4 ? OP_A4 : 0xff;
	if (kind == K_A6)
		return len == 16 ? OP_A6 : 0xff;
	switch (len) {
	case 1: return OP_N1;
	case 2: return OP_N2;
	case 4: return OP_N4;
	case 8: return OP_N8;
	default: return len <= 8 ? OP_NN : 0xff;
	}
}

static uint8_t first_of(uint64_t has, const uint8_t *slots, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (has & BIT(slots[i]))
			return slots[i];
	return S_ZERO;
}

static uint8_t tmode_of(uint8_t slot)
{
	switch (slot) {
	case S_FIRST_MS: case S_LAST_MS: return T_MS;
	case S_FIRST_NTP_NS: case S_LAST_NTP_NS:
	case S_FIRST_NTP_US: case S_LAST_NTP_US: return T_NTP;
	case S_FIRST_S: case S_LAST_S: return T_S;
	case S_FIRST_UP: case S_LAST_UP: return T_UP;
	case S_FIRST_DUS: case S_LAST_DUS: return T_DUS;
	case S_OBS_MS: return T_OBS;
	default: return T_NONE;
	}
}

/* Chooses, once per template, where each flow_rec field comes from. */
static void tpl_plan(struct tpl *t, uint64_t ahas)
{
	/* IN_* or OUT_*, by value (S_BYTES/S_PKTS): exporters that send both either
	 * repeat the count (Fortigate) or leave the side they did not see at zero
	 * (egress flows), so adding them would double count. Initiator and responder
	 * counts are the two directions of one connection record (ASA NSEL): their sum
	 * (S_INI_*) is its traffic, as nfdump's totals say. */
	static const uint8_t bytes[] = { S_BYTES, S_OUT_BYTES, S_TOT_BYTES, S_INI_BYTES,
		S_RSP_BYTES };
	static const uint8_t pkts[] = { S_PKTS, S_OUT_PKTS, S_TOT_PKTS, S_INI_PKTS,
		S_RSP_PKTS };
	/* absolute clocks first, the most precise first; exporter-relative ones after */
	static const uint8_t first[] = { S_FIRST_MS, S_FIRST_NTP_NS, S_FIRST_NTP_US,
		S_FIRST_S, S_FIRST_UP, S_FIRST_DUS, S_OBS_MS };
	static const uint8_t last[] = { S_LAST_MS, S_LAST_NTP_NS, S_LAST_NTP_US,
		S_LAST_S, S_LAST_UP, S_LAST_DUS, S_OBS_MS };
	static const uint8_t vlan[] = { S_VLAN, S_DOT1Q };
	static const uint8_t dur[] = { S_DUR_MS, S_DUR_US };
	uint64_t h = t->has;
	int v4 = (ahas & (BIT(A_SRC4) | BIT(A_DST4))) != 0;
	int v6 = (ahas & (BIT(A_SRC6) | BIT(A_DST6))) != 0;
	int n4 = (ahas & BIT(A_NH4)) != 0, n6 = (ahas & BIT(A_NH6)) != 0;

	t->bytes = first_of(h, bytes, sizeof bytes);
	t->pkts = first_of(h, pkts, sizeof pkts);
	if (t->bytes == S_OUT_BYTES)
		t->bytes = S_BYTES;
	if (t->pkts == S_OUT_PKTS)
		t->pkts = S_PKTS;
	if (t->bytes == S_RSP_BYTES)
		t->bytes = S_INI_BYTES;
	if (t->pkts == S_RSP_PKTS)
		t->pkts = S_INI_PKTS;
	t->vlan = first_of(h, vlan, sizeof vlan);
	t->dur = first_of(h, dur, sizeof dur);
	t->first_slot = first_of(h, first, sizeof first);
	t->last_slot = first_of(h, last, sizeof last);
	t->first_mode = tmode_of(t->first_slot);
	t->last_mode = tmode_of(t->last_slot);
	t->addr = v4 && v6 ? AD_BOTH : v4 ? AD_V4 : v6 ? AD_V6 : AD_NONE;
	t->nh = n4 && n6 ? AD_BOTH : n4 ? AD_V4 : n6 ? AD_V6 : AD_NONE;
	t->icmp = (h & BIT(S_ICMP)) ? 1 : (h & (BIT(S_ICMP_TYPE) | BIT(S_ICMP_CODE))) ? 2 : 0;
}

/* Compiles fs[0..n) into t (steps allocated; t->steps must be free). Returns 0, or
 * -NFDEC_E_TEMPLATE if a record could not fit in a set, -NFDEC_E_NOMEM. */
static int tpl_compile(struct nfdec *d, struct tpl *t, const struct fspec *fs, size_t n,
		       int options)
{
	uint32_t seg = 0, min_len = 0, ns = 0, lastvar = NIL;
	uint64_t has = 0, ahas = 0;
	int var = 0;

	for (size_t i = 0; i < n; i++) {
		uint16_t len = fs[i].len;
		if (len == VARLEN) {
			struct step *s = &d->cs[ns];
			if (!var)
				t->seg0 = seg;
			else
				d->cs[lastvar].len = (uint16_t)seg;
			var = 1;
			s->op = OP_VAR;
			s->off = (uint16_t)seg;
			s->len = 0;
			s->slot = 0;
			lastvar = ns++;
			seg = 0;
			min_len += 1;
		} else if (len) {
			struct iemap m = { K_NONE, 0 };
			if (!fs[i].skip && fs[i].type < IE_TABLE_LEN)
				m = ie_table[fs[i].type];
			if (options && (m.kind != K_NUM || !(BIT(m.slot) & OPTION_BITS)))
				m.kind = K_NONE;
			uint8_t op = m.kind == K_NONE ? 0xff : op_for(m.kind, len);
			if (op != 0xff) {
				d->cs[ns] = (struct step){ (uint16_t)seg, len, op, m.slot };
				ns++;
				if (m.kind == K_NUM)
					has |= BIT(m.slot);
				else
					ahas |= BIT(m.slot);
			}
			seg += len;
			min_len += len;
		}
		if (min_len > MAX_RECORD)
			return -NFDEC_E_TEMPLATE;
	}
	if (!var)
		t->seg0 = seg;
	else
		d->cs[lastvar].len = (uint16_t)seg;
	t->min_len = min_len;
	t->has = has;
	t->options = (uint8_t)(options != 0);
	t->nsteps = (uint16_t)ns;
	t->steps = NULL;
	if (ns) {
		t->steps = malloc(ns * sizeof *t->steps);
		if (!t->steps)
			return -NFDEC_E_NOMEM;
		memcpy(t->steps, d->cs, ns * sizeof *t->steps);
	}
	tpl_plan(t, ahas);
	return 0;
}

/* ---------------------------------------------------------------- template cache */

static size_t tpl_hash(const struct nfdec *d, uint32_t exp, uint8_t ver, uint32_t dom,
		       uint16_t id)
{
	uint64_t h = ((uint64_t)dom << 32 | (uint64_t)id << 8 | ver) * 0x9e3779b97f4a7c15ull;
	h ^= (uint64_t)exp * 0xc2b2ae3d27d4eb4full;
	h ^= h >> 32;
	h *= 0xd6e8feb86659fd93ull;
	h ^= h >> 29;
	return (size_t)(h & d->tplhmask);
}

static struct tpl *tpl_find(struct nfdec *d, uint32_t exp, uint8_t ver, uint32_t dom,
			    uint16_t id)
{
	uint32_t i = d->tplhash[tpl_hash(d, exp, ver, dom, id)];
	while (i != NIL) {
		struct tpl *t = &d->tpls[i];
		if (t->id == id && t->exp == exp && t->domain == dom && t->version == ver)
			return t;
		i = t->hnext;
	}
	return NULL;
}

static void lru_unlink(struct nfdec *d, struct tpl *t)
{
	if (t->prev != NIL)
		d->tpls[t->prev].next = t->next;
	else
		d->lru_head = t->next;
	if (t->next != NIL)
		d->tpls[t->next].prev = t->prev;
	else
		d->lru_tail = t->prev;
}

static void lru_push(struct nfdec *d, struct tpl *t)
{
	uint32_t i = (uint32_t)(t - d->tpls);
	t->prev = NIL;
	t->next = d->lru_head;
	if (d->lru_head != NIL)
		d->tpls[d->lru_head].prev = i;
	d->lru_head = i;
	if (d->lru_tail == NIL)
		d->lru_tail = i;
}

static void tpl_touch(struct nfdec *d, struct tpl *t)
{
	if (d->lru_head == (uint32_t)(t - d->tpls))
		return;
	lru_unlink(d, t);
	lru_push(d, t);
}

/* Removes t from the cache and returns its slot to the free list. */
static void tpl_remove(struct nfdec *d, struct tpl *t)
{
	uint32_t i = (uint32_t)(t - d->tpls);
	uint32_t *pp = &d->tplhash[tpl_hash(d, t->exp, t->version, t->domain, t->id)];
	while (*pp != i)
		pp = &d->tpls[*pp].hnext;
	*pp = t->hnext;
	lru_unlink(d, t);
	free(t->steps);
	t->steps = NULL;
	d->exps[t->exp].st.templates--;
	d->ntpl--;
	t->next = d->free_head;
	d->free_head = i;
}

/* Stores a compiled template under its key, replacing one with the same key and
 * evicting the least recently used if the cache is full. Takes ownership of nt->steps.
 * Returns the cached template. */
static struct tpl *tpl_store(struct nfdec *d, struct tpl *nt)
{
	struct tpl *t = tpl_find(d, nt->exp, nt->version, nt->domain, nt->id);
	if (t) {
		uint32_t hnext = t->hnext;
		free(t->steps);
		lru_unlink(d, t);
		*t = *nt;
		t->hnext = hnext;
		lru_push(d, t);
		return t;
	}
	if (d->free_head == NIL) {
		struct tpl *old = &d->tpls[d->lru_tail];
		d->exps[old->exp].st.template_evictions++;
		d->tot.template_evictions++;
		tpl_remove(d, old);
	}
	uint32_t i = d->free_head;
	t = &d->tpls[i];
	d->free_head = t->next;
	*t = *nt;
	size_t h = tpl_hash(d, t->exp, t->version, t->domain, t->id);
	t->hnext = d->tplhash[h];
	d->tplhash[h] = i;
	lru_push(d, t);
	d->ntpl++;
	d->exps[t->exp].st.templates++;
	return t;
}

/* IPFIX withdrawal of every template (options != 0: every options template) of a domain. */
static void tpl_withdraw_all(struct nfdec *d, uint32_t exp, uint32_t dom, int options)
{
	uint32_t i = d->lru_head;
	while (i != NIL) {
		struct tpl *t = &d->tpls[i];
		i = t->next;
		if (t->exp == exp && t->domain == dom && t->version == 10 &&
		    t->options == (options != 0))
			tpl_remove(d, t);
	}
}

/* ---------------------------------------------------------------- records */

static void scratch_reset(struct nfdec *d)
{
	memset(d->v, 0, sizeof d->v);
	memset(d->a, 0, sizeof d->a);
	for (int i = A_SRC4; i <= A_NH4; i++)
		d->a[i][10] = d->a[i][11] = 0xff;
}

/* Loads one record at p into the scratch slots. Returns its length, or 0 if it runs
 * past end. The caller checked end - p >= t->min_len (so >= t->seg0). */
static size_t rec_load(struct nfdec *d, const struct tpl *t, const uint8_t *p,
		       const uint8_t *end)
{
	const uint8_t *base = p;
	size_t seg = t->seg0;
	uint64_t *v = d->v;

	const struct step *s = t->steps, *e = t->nsteps ? s + t->nsteps : s;
	for (; s < e; s++) {
		const uint8_t *q = base + s->off;
		switch (s->op) {
		case OP_N1: v[s->slot] = q[0]; break;
		case OP_N2: v[s->slot] = ld_be16(q); break;
		case OP_N4: v[s->slot] = ld_be32(q); break;
		case OP_N8: v[s->slot] = ld_be64(q); break;
		case OP_NN: v[s->slot] = ld_beN(q, s->len); break;
		case OP_A4: memcpy(d->a[s->slot] + 12, q, 4); break;
		case OP_A6: memcpy(d->a[s->slot], q, 16); break;
		case OP_VAR: {
			/* RFC 7011 7: one length byte, or 255 and two length bytes */
			size_t n;
			if (q >= end)
				return 0;
			n = *q++;
			if (n == 255) {
				if (end - q < 2)
					return 0;
				n = ld_be16(q);
				q += 2;
			}
			if ((size_t)(end - q) < n)
				return 0;
			base = q + n;
			seg = s->len;
			if ((size_t)(end - base) < seg)
				return 0;
			break;
		}
		}
	}
	return (size_t)(base + seg - p);
}

static uint64_t ntp_ms(uint64_t v)
{
	uint64_t sec = v >> 32, frac = v & 0xffffffffu;
	if (!v)
		return 0;
	/* RFC 5905 era rule: a clear top bit means era 1 (after 2036-02-07) */
	if (!(sec & 0x80000000u))
		sec += 1ull << 32;
	if (sec < NTP_UNIX_OFFSET)
		return 0;
	return (sec - NTP_UNIX_OFFSET) * 1000 + ((frac * 1000) >> 32);
}

static uint64_t add_signed(uint64_t base, int64_t delta)
{
	if (delta < 0 && (uint64_t)-delta > base)
		return 0;
	return base + (uint64_t)delta;
}

/* Unix ms for a clock value of mode m held in slot. */
static uint64_t rec_time(const struct nfdec *d, const struct dctx *c, const struct tpl *t,
			 uint8_t m, uint8_t slot)
{
	const uint64_t *v = d->v;
	uint64_t x = v[slot];
	switch (m) {
	case T_MS:
	case T_OBS:
		return x;
	case T_NTP:
		return ntp_ms(x);
	case T_S:
		return x * 1000;
	case T_DUS: {
		/* microseconds before the export time (whole seconds in the header) */
		uint64_t us = c->export_ms * 1000;
		return us > x ? (us - x) / 1000 : 0;
	}
	case T_UP: {
		uint32_t ref = c->uptime;
		if (c->version == 10) {
			/* IPFIX: relative to systemInitTimeMilliseconds, in the record or
			 * learned from options data. Without it, assume the flow ended when
			 * it was exported: that keeps durations right. */
			uint64_t init = (t->has & BIT(S_SYSINIT)) && v[S_SYSINIT] ?
				v[S_SYSINIT] : c->dom->st.sys_init_ms;
			if (init)
				return init + (uint32_t)x;
			ref = (uint32_t)((t->has & BIT(S_LAST_UP)) ? v[S_LAST_UP] : v[S_FIRST_UP]);
		}
		/* v5/v9: export time - sysUptime + value; a signed 32-bit difference
		 * survives the 49.7-day wrap of both counters */
		return add_signed(c->export_ms, (int32_t)((uint32_t)x - ref));
	}
	default:
		return c->export_ms;
	}
}

/* Sampling interval stated by the sampling slots, 0 if they state none. */
static uint32_t sampling_of(const uint64_t *v)
{
	uint64_t r = 0;
	if (v[S_PKT_INT])
		/* PSAMP count-based: select interval packets, then skip space */
		r = (v[S_PKT_INT] + v[S_PKT_SPACE]) / v[S_PKT_INT];
	else if (v[S_SAMP_INT])
		r = v[S_SAMP_INT];
	else if (v[S_SAMP_RINT])
		r = v[S_SAMP_RINT];
	return r > UINT32_MAX ? UINT32_MAX : (uint32_t)r;
}

static uint64_t mul_sat(uint64_t a, uint64_t b)
{
	uint64_t r;
	return __builtin_mul_overflow(a, b, &r) ? UINT64_MAX : r;
}

static int zero16(const uint8_t *a)
{
	uint8_t x = 0;
	for (int i = 0; i < 16; i++)
		x |= a[i];
	return !x;
}

/* Turns the scratch slots into *r by t's plan. */
static void rec_finish(struct nfdec *d, const struct dctx *c, const struct tpl *t,
		       struct flow_rec *r)
{
	const uint64_t *v = d->v;
	int six;

	switch (t->addr) {
	case AD_V4: six = 0; break;
	case AD_V6: six = 1; break;
	case AD_BOTH:
		/* both families in one template: the version field, else whichever
		 * family carries an address */
		six = v[S_IPVER] == 6 ? 1 : v[S_IPVER] == 4 ? 0 :
			!zero16(d->a[A_SRC6]) || !zero16(d->a[A_DST6]);
		break;
	default: six = v[S_IPVER] == 6; break;
	}
	if (six) {
		memcpy(r->src, d->a[A_SRC6], 16);
		memcpy(r->dst, d->a[A_DST6], 16);
	} else {
		memcpy(r->src, d->a[A_SRC4], 16);
		memcpy(r->dst, d->a[A_DST4], 16);
	}
	r->ipver = six ? 6 : 4;
	memset(r->nexthop, 0, 16);
	if (t->nh == AD_V6 || (t->nh == AD_BOTH && six))
		memcpy(r->nexthop, d->a[A_NH6], 16);
	else if (t->nh != AD_NONE && ld_be32(d->a[A_NH4] + 12))
		memcpy(r->nexthop, d->a[A_NH4], 16);   /* 0.0.0.0 means none */

	/* an absent slot reads 0: the choices below hold with either side missing */
	r->packets = t->pkts == S_PKTS ? (v[S_PKTS] ? v[S_PKTS] : v[S_OUT_PKTS]) :
		t->pkts == S_INI_PKTS ? v[S_INI_PKTS] + v[S_RSP_PKTS] : v[t->pkts];
	r->bytes = t->bytes == S_BYTES ? (v[S_BYTES] ? v[S_BYTES] : v[S_OUT_BYTES]) :
		t->bytes == S_INI_BYTES ? v[S_INI_BYTES] + v[S_RSP_BYTES] : v[t->bytes];
	r->in_if = (uint32_t)v[S_INIF];
	r->out_if = (uint32_t)v[S_OUTIF];
	r->src_as = (uint32_t)v[S_SRCAS];
	r->dst_as = (uint32_t)v[S_DSTAS];
	r->domain_id = c->dom->st.domain_id;
	r->sport = (uint16_t)v[S_SPORT];
	r->dport = (uint16_t)v[S_DPORT];
	r->vlan = (uint16_t)v[t->vlan];
	r->proto = (uint8_t)v[S_PROTO];
	r->tos = (uint8_t)v[S_TOS];
	r->tcp_flags = (uint8_t)v[S_FLAGS];
	r->src_mask = (uint8_t)v[S_SMASK];
	r->dst_mask = (uint8_t)v[S_DMASK];
	r->end_reason = v[S_END_REASON] <= FLOW_END_RESOURCE ? (uint8_t)v[S_END_REASON] : 0;
	memset(r->pad, 0, sizeof r->pad);
	if (t->icmp && r->dport == 0 && (r->proto == 1 || r->proto == 58))
		r->dport = t->icmp == 1 ? (uint16_t)v[S_ICMP] :
			(uint16_t)(v[S_ICMP_TYPE] << 8 | (v[S_ICMP_CODE] & 0xff));

	uint64_t dur = t->dur == S_DUR_US ? v[S_DUR_US] / 1000 : v[t->dur];
	if (t->first_mode != T_NONE) {
		r->first_ms = rec_time(d, c, t, t->first_mode, t->first_slot);
		r->last_ms = t->last_mode != T_NONE ?
			rec_time(d, c, t, t->last_mode, t->last_slot) : r->first_ms + dur;
	} else if (t->last_mode != T_NONE) {
		r->last_ms = rec_time(d, c, t, t->last_mode, t->last_slot);
		r->first_ms = r->last_ms > dur ? r->last_ms - dur : 0;
	} else {
		r->first_ms = r->last_ms = c->export_ms;
	}

	uint32_t rate = c->v5_sampling;
	if (!rate && (t->has & SAMPLING_BITS))
		rate = sampling_of(v);
	if (!rate)
		rate = c->dom->st.sampling;
	r->sampling = rate ? rate : 1;
	if (d->cfg.apply_sampling && r->sampling > 1) {
		r->packets = mul_sat(r->packets, r->sampling);
		r->bytes = mul_sat(r->bytes, r->sampling);
	}
}

/* An options data record: learn sampling and system init time for the domain. */
static void opt_apply(struct nfdec *d, struct dctx *c, const struct tpl *t)
{
	if (t->has & SAMPLING_BITS) {
		uint32_t r = sampling_of(d->v);
		c->dom->st.sampling = r ? r : 1;
	}
	if ((t->has & BIT(S_SYSINIT)) && d->v[S_SYSINIT])
		c->dom->st.sys_init_ms = d->v[S_SYSINIT];
}

/* Decodes the records of one data set body with template t. */
static void set_decode(struct nfdec *d, struct dctx *c, const struct tpl *t,
		       const uint8_t *p, size_t len)
{
	const uint8_t *end = p + len;
	struct flow_rec r;
	uint64_t flows = 0, opts = 0;

	if (!t->min_len) {
		/* every field zero-length: records without bytes cannot be counted */
		count_err(d, c, NFDEC_E_TEMPLATE_EMPTY);
		c->seq_unknown = 1;
		return;
	}
	scratch_reset(d);
	/* fewer bytes than the shortest record left: set padding, stop */
	while ((size_t)(end - p) >= t->min_len) {
		size_t n = rec_load(d, t, p, end);
		if (!n) {
			count_err(d, c, NFDEC_E_RECORD);
			c->seq_unknown = 1;
			break;
		}
		p += n;
		if (t->options) {
			opt_apply(d, c, t);
			opts++;
			continue;
		}
		rec_finish(d, c, t, &r);
		memcpy(r.exporter, c->ex->st.addr, 16);
		if (c->emit)
			c->emit(&r, c->arg);
		flows++;
	}
	c->nrec += flows + opts;
	c->ex->st.records += flows;
	c->ex->st.options_records += opts;
	c->dom->st.records += flows;
	d->tot.records += flows;
	d->tot.options_records += opts;
	if (c->version == 5)
		c->ex->st.records_v5 += flows;
	else if (c->version == 9)
		c->ex->st.records_v9 += flows;
	else
		c->ex->st.records_ipfix += flows;
}

/* ---------------------------------------------------------------- pending data */

static void pend_unlink(struct nfdec *d, struct pend *p)
{
	if (p->prev)
		p->prev->next = p->next;
	else
		d->pend_head = p->next;
	if (p->next)
		p->next->prev = p->prev;
	else
		d->pend_tail = p->prev;
	struct exporter *ex = &d->exps[p->exp];
	if (p->eprev)
		p->eprev->enext = p->enext;
	else
		ex->pend_head = p->enext;
	if (p->enext)
		p->enext->eprev = p->eprev;
	else
		ex->pend_tail = p->eprev;
	ex->npend--;
	d->tot.pending_sets--;
	d->tot.pending_bytes -= p->cost;
}

static void pend_drop(struct nfdec *d, struct pend *p)
{
	struct exporter *ex = &d->exps[p->exp];
	pend_unlink(d, p);
	ex->st.notpl_dropped_sets++;
	ex->st.notpl_dropped_bytes += p->len;
	d->tot.notpl_dropped_sets++;
	d->tot.notpl_dropped_bytes += p->len;
	free(p);
}

static void pend_expire(struct nfdec *d, uint64_t now_ms)
{
	while (d->pend_head) {
		struct pend *p = d->pend_head;
		uint64_t age = now_ms > p->arrived_ms ? now_ms - p->arrived_ms : 0;
		if (age <= d->cfg.pending_max_ms)
			break;
		pend_drop(d, p);
	}
}

/* Holds a copy of a data set whose template is unknown, dropping the oldest held sets
 * to stay under pending_max_bytes and PEND_MAX_PER_EXPORTER. */
static void pend_add(struct nfdec *d, struct dctx *c, uint16_t id, const uint8_t *body,
		     size_t len, uint64_t now_ms)
{
	size_t cost = sizeof(struct pend) + len;
	struct exporter *ex = c->ex;
	struct pend *p;

	ex->st.notpl_sets++;
	d->tot.notpl_sets++;
	if (cost > d->cfg.pending_max_bytes)
		goto drop;
	while (d->tot.pending_bytes + cost > d->cfg.pending_max_bytes)
		pend_drop(d, d->pend_head);
	if (ex->npend == PEND_MAX_PER_EXPORTER)
		pend_drop(d, ex->pend_head);
	p = malloc(cost);
	if (!p) {
		count_err(d, c, NFDEC_E_NOMEM);
		goto drop;
	}
	p->arrived_ms = now_ms;
	p->export_ms = c->export_ms;
	p->uptime = c->uptime;
	p->exp = c->exp;
	p->domain = c->dom->st.domain_id;
	p->dom_idx = (uint32_t)(c->dom - ex->doms);
	p->tpl_id = id;
	p->version = c->version;
	p->len = len;
	p->cost = cost;
	memcpy(p->data, body, len);
	p->next = NULL;
	p->prev = d->pend_tail;
	if (d->pend_tail)
		d->pend_tail->next = p;
	else
		d->pend_head = p;
	d->pend_tail = p;
	p->enext = NULL;
	p->eprev = ex->pend_tail;
	if (ex->pend_tail)
		ex->pend_tail->enext = p;
	else
		ex->pend_head = p;
	ex->pend_tail = p;
	d->tot.pending_sets++;
	d->tot.pending_bytes += cost;
	ex->npend++;
	return;
drop:
	ex->st.notpl_dropped_sets++;
	ex->st.notpl_dropped_bytes += len;
	d->tot.notpl_dropped_sets++;
	d->tot.notpl_dropped_bytes += len;
}

/* Decodes, in arrival order, the exporter's held sets whose template is now known.
 * Runs once per datagram that stored a template, so a datagram of many templates costs
 * one pass over at most PEND_MAX_PER_EXPORTER sets. */
static void pend_release(struct nfdec *d, struct dctx *c)
{
	struct pend *p = c->ex->pend_head;
	while (p) {
		struct pend *next = p->enext;
		const struct tpl *t = tpl_find(d, p->exp, p->version, p->domain, p->tpl_id);
		if (t) {
			/* decode under the header it came with; errors count, but belong
			 * to that older datagram, not this call's result */
			struct dctx pc = *c;
			pc.dom = &c->ex->doms[p->dom_idx];
			pc.version = p->version;
			pc.export_ms = p->export_ms;
			pc.uptime = p->uptime;
			pc.nrec = 0;
			pc.err = NFDEC_OK;
			pend_unlink(d, p);
			set_decode(d, &pc, t, p->data, p->len);
			c->ex->st.notpl_decoded_sets++;
			c->ex->st.notpl_records += pc.nrec;
			d->tot.notpl_decoded_sets++;
			free(p);
		}
		p = next;
	}
}

/* ---------------------------------------------------------------- sets */

/* Reads n field specifiers of a v9 or IPFIX template into d->fs. The first nscope are
 * scope fields (v9 scope types are not element numbers: never mapped). Returns 0 or -1
 * if they run past the set. */
static int fields_read(struct nfdec *d, struct cur *cu, uint8_t ver, size_t n,
		       size_t nscope)
{
	for (size_t i = 0; i < n; i++) {
		const uint8_t *f = cur_take(cu, 4);
		if (!f)
			return -1;
		struct fspec *s = &d->fs[i];
		s->type = ld_be16(f);
		s->len = ld_be16(f + 2);
		s->skip = ver == 9 && i < nscope;
		/* IPFIX enterprise bit: a 4-byte PEN follows; v9 has no such bit */
		if (ver == 10 && (s->type & 0x8000)) {
			if (!cur_take(cu, 4))
				return -1;
			s->skip = 1;
		}
	}
	return 0;
}

/* A template or options template set body. set_id says which (v9 0/1, IPFIX 2/3). */
static void tpl_set(struct nfdec *d, struct dctx *c, uint16_t set_id, const uint8_t *p,
		    size_t len)
{
	struct cur cu = cur_make(p, len);
	int options = set_id == 1 || set_id == 3;
	uint8_t ver = c->version;

	while (cur_left(&cu) >= 4) {
		const uint8_t *h = cu.p;
		uint16_t id = ld_be16(h), cnt = ld_be16(h + 2);
		size_t n, nscope = 0;

		if (id == 0 && cnt == 0)
			break;          /* zero padding to the set's end */
		if (ver == 10 && cnt == 0) {
			cur_take(&cu, 4);
			c->ntpl++;
			/* RFC 7011 8.1: withdrawal; template id = set id withdraws all
			 * (a cache scan: once per kind per message, which is all a sane
			 * exporter sends) */
			if (id == set_id) {
				if (!(c->withdrawn & (1u << options)))
					tpl_withdraw_all(d, c->exp, c->dom->st.domain_id, options);
				c->withdrawn |= (uint8_t)(1u << options);
			} else if (id >= 256) {
				struct tpl *t = tpl_find(d, c->exp, ver, c->dom->st.domain_id, id);
				if (t)
					tpl_remove(d, t);
			} else {
				count_err(d, c, NFDEC_E_TEMPLATE);
			}
			continue;
		}
		if (options) {
			const uint8_t *oh = cur_take(&cu, 6);
			if (!oh) {
				count_err(d, c, NFDEC_E_TEMPLATE);
				return;
			}
			if (ver == 9) {
				/* v9: scope and option lengths are in bytes */
				uint16_t sl = ld_be16(oh + 2), ol = ld_be16(oh + 4);
				if (sl % 4 || ol % 4) {
					count_err(d, c, NFDEC_E_TEMPLATE);
					return;
				}
				nscope = sl / 4u;
				n = nscope + ol / 4u;
			} else {
				n = cnt;
				nscope = ld_be16(oh + 4);
				if (nscope > n) {
					count_err(d, c, NFDEC_E_TEMPLATE);
					return;
				}
			}
		} else {
			cur_take(&cu, 4);
			n = cnt;
		}
		if (n == 0 || n > MAX_FIELDS || fields_read(d, &cu, ver, n, nscope)) {
			/* a field list that runs past the set: nothing after it is trusted */
			count_err(d, c, NFDEC_E_TEMPLATE);
			return;
		}
		c->ntpl++;
		if (id < 256) {
			count_err(d, c, NFDEC_E_TEMPLATE);
			continue;
		}
		struct tpl nt = { 0 };
		int rc = tpl_compile(d, &nt, d->fs, n, options);
		if (rc) {
			count_err(d, c, (enum nfdec_err)-rc);
			continue;
		}
		nt.exp = c->exp;
		nt.domain = c->dom->st.domain_id;
		nt.id = id;
		nt.version = ver;
		tpl_store(d, &nt);
		c->stored = 1;
	}
}

static void data_set(struct nfdec *d, struct dctx *c, uint16_t id, const uint8_t *p,
		     size_t len, uint64_t now_ms)
{
	struct tpl *t = tpl_find(d, c->exp, c->version, c->dom->st.domain_id, id);
	if (!t) {
		if (!len)
			return;         /* an empty set holds no record */
		pend_add(d, c, id, p, len, now_ms);
		c->seq_unknown = 1;
		return;
	}
	tpl_touch(d, t);
	set_decode(d, c, t, p, len);
}

/* Walks the sets of a v9 or IPFIX message body. */
static void sets_walk(struct nfdec *d, struct dctx *c, const uint8_t *p, size_t len,
		      uint64_t now_ms)
{
	struct cur cu = cur_make(p, len);
	uint16_t tpl_id = c->version == 9 ? 0 : 2, opt_id = c->version == 9 ? 1 : 3;

	while (cur_left(&cu) >= 4) {    /* fewer: padding after the last set */
		const uint8_t *h = cu.p;
		uint16_t sid = ld_be16(h), slen = ld_be16(h + 2);
		if (slen < 4 || !cur_take(&cu, slen)) {
			count_err(d, c, NFDEC_E_SET_LENGTH);
			c->seq_unknown = 1;
			return;
		}
		if (sid == tpl_id || sid == opt_id)
			tpl_set(d, c, sid, h + 4, slen - 4u);
		else if (sid >= 256)
			data_set(d, c, sid, h + 4, slen - 4u, now_ms);
		else
			count_err(d, c, NFDEC_E_SET_ID);
	}
}

/* ---------------------------------------------------------------- exporters, domains */

static size_t exp_slot(const struct nfdec *d, const uint8_t addr[16])
{
	uint64_t h = ld_be64(addr) * 0x9e3779b97f4a7c15ull ^ ld_be64(addr + 8);
	h *= 0xc2b2ae3d27d4eb4full;
	return (size_t)(h >> 32) & d->exphmask;
}

/* Returns the index of exporter addr, or NIL. *slot gets the table slot to insert at. */
static uint32_t exp_find(const struct nfdec *d, const uint8_t addr[16], size_t *slot)
{
	size_t i = exp_slot(d, addr);
	while (d->exphash[i] != NIL) {
		uint32_t e = d->exphash[i];
		if (!memcmp(d->exps[e].st.addr, addr, 16))
			return e;
		i = (i + 1) & d->exphmask;
	}
	*slot = i;
	return NIL;
}

static uint32_t exp_add(struct nfdec *d, const uint8_t addr[16], size_t slot)
{
	if (d->nexp == d->expcap) {
		size_t cap = d->expcap ? d->expcap * 2 : 8;
		if (cap > d->cfg.max_exporters)
			cap = d->cfg.max_exporters;
		struct exporter *e = realloc(d->exps, cap * sizeof *e);
		if (!e)
			return NIL;
		d->exps = e;
		d->expcap = cap;
	}
	struct exporter *ex = &d->exps[d->nexp];
	memset(ex, 0, sizeof *ex);
	memcpy(ex->st.addr, addr, 16);
	d->exphash[slot] = (uint32_t)d->nexp;
	d->tot.exporters++;
	return (uint32_t)d->nexp++;
}

static struct domain *dom_get(struct exporter *ex, uint8_t ver, uint32_t id,
			      size_t max)
{
	if (ex->ndom) {
		struct domain *m = &ex->doms[ex->last];
		if (m->st.domain_id == id && m->st.version == ver)
			return m;
	}
	for (size_t i = 0; i < ex->ndom; i++) {
		if (ex->doms[i].st.domain_id == id && ex->doms[i].st.version == ver) {
			ex->last = i;
			return &ex->doms[i];
		}
	}
	if (ex->ndom == max)
		return NULL;
	if (ex->ndom == ex->domcap) {
		size_t cap = ex->domcap ? ex->domcap * 2 : 2;
		if (cap > max)
			cap = max;
		struct domain *m = realloc(ex->doms, cap * sizeof *m);
		if (!m)
			return NULL;
		ex->doms = m;
		ex->domcap = cap;
	}
	struct domain *m = &ex->doms[ex->ndom];
	memset(m, 0, sizeof *m);
	m->st.domain_id = id;
	m->st.version = ver;
	m->st.sampling = 1;
	ex->last = ex->ndom++;
	return m;
}

/* Sequence check on arrival; the expectation for the next message is set after. */
static void seq_check(struct domain *m, uint32_t seq)
{
	if (!m->seq_valid)
		return;
	uint32_t diff = seq - m->next_seq;
	if (!diff)
		return;
	if (diff < 0x80000000u) {
		m->st.seq_gaps++;
		m->st.seq_lost += diff;
	} else {
		m->st.seq_backward++;
	}
}

/* ---------------------------------------------------------------- entry points */

int nfdec_datagram(struct nfdec *d, const uint8_t exporter[16], const uint8_t *buf,
		   size_t len, uint64_t now_ms, nfdec_emit_fn emit, void *arg)
{
	struct dctx c = { 0 };
	size_t slot = 0, hlen, mlen = len;
	uint16_t ver;
	uint32_t seq, dom_id;

	d->tot.datagrams++;
	pend_expire(d, now_ms);
	c.emit = emit;
	c.arg = arg;
	c.exp = exp_find(d, exporter, &slot);
	if (c.exp != NIL)
		c.ex = &d->exps[c.exp];

	/* validate the header before an unknown sender takes an exporter slot */
	if (len < 2) {
		count_err(d, &c, NFDEC_E_SHORT);
		return -c.err;
	}
	ver = ld_be16(buf);
	hlen = ver == 5 ? 24 : ver == 9 ? 20 : 16;
	if (ver != 5 && ver != 9 && ver != 10) {
		count_err(d, &c, NFDEC_E_VERSION);
		return -c.err;
	}
	if (len < hlen) {
		count_err(d, &c, NFDEC_E_SHORT);
		return -c.err;
	}
	if (ver == 10) {
		mlen = ld_be16(buf + 2);
		if (mlen < hlen || mlen > len) {
			count_err(d, &c, NFDEC_E_MSG_LENGTH);
			return -c.err;
		}
	}
	if (c.exp == NIL) {
		if (d->nexp >= d->cfg.max_exporters) {
			count_err(d, &c, NFDEC_E_EXPORTER_CAP);
			return -c.err;
		}
		c.exp = exp_add(d, exporter, slot);
		if (c.exp == NIL) {
			count_err(d, &c, NFDEC_E_NOMEM);
			return -c.err;
		}
		c.ex = &d->exps[c.exp];
	}
	c.version = (uint8_t)ver;
	if (ver == 5) {
		dom_id = (uint32_t)buf[20] << 8 | buf[21];
		seq = ld_be32(buf + 16);
		c.uptime = ld_be32(buf + 4);
		c.export_ms = (uint64_t)ld_be32(buf + 8) * 1000 + ld_be32(buf + 12) / 1000000;
	} else if (ver == 9) {
		dom_id = ld_be32(buf + 16);
		seq = ld_be32(buf + 12);
		c.uptime = ld_be32(buf + 4);
		c.export_ms = (uint64_t)ld_be32(buf + 8) * 1000;
	} else {
		dom_id = ld_be32(buf + 12);
		seq = ld_be32(buf + 8);
		c.export_ms = (uint64_t)ld_be32(buf + 4) * 1000;
	}
	c.dom = dom_get(c.ex, c.version, dom_id, d->cfg.max_domains);
	if (!c.dom) {
		count_err(d, &c, c.ex->ndom == d->cfg.max_domains ? NFDEC_E_DOMAIN_CAP :
			  NFDEC_E_NOMEM);
		return -c.err;
	}
	c.ex->st.datagrams++;
	c.dom->st.datagrams++;
	seq_check(c.dom, seq);

	if (ver == 5) {
		/* A count the datagram cannot hold means the header lies about the
		 * layout (v5 has no per-record framing to resynchronise on): trust no
		 * record of it. Real cases (netflow-5-invalid-*) carry garbage there. */
		uint16_t count = ld_be16(buf + 2);
		uint16_t si = ld_be16(buf + 22);
		if (hlen + (size_t)count * 48 > len) {
			count_err(d, &c, NFDEC_E_V5_COUNT);
			c.dom->seq_valid = 0;
			return -c.err;
		}
		/* low 14 bits: interval; the top 2 (mode) are often left 0 by exporters
		 * that do sample, so the interval alone decides */
		c.v5_sampling = (si & 0x3fff) > 1 ? (si & 0x3fffu) : 1;
		c.dom->st.sampling = c.v5_sampling;
		set_decode(d, &c, &d->v5, buf + hlen, (size_t)count * 48);
		c.dom->next_seq = seq + count;   /* v5 sequence counts flows */
		c.dom->seq_valid = 1;
		return -c.err;
	}

	sets_walk(d, &c, buf + hlen, mlen - hlen, now_ms);
	if (c.stored && c.ex->npend)
		pend_release(d, &c);
	if (ver == 9) {
		/* v9 sequence counts export packets; the count is informational */
		c.dom->next_seq = seq + 1;
		c.dom->seq_valid = 1;
		if (!c.seq_unknown && c.nrec + c.ntpl != ld_be16(buf + 2))
			c.ex->st.count_mismatch++;
	} else {
		/* IPFIX sequence counts data records, so only a fully read message
		 * tells where the next one should start */
		c.dom->next_seq = seq + (uint32_t)c.nrec;
		c.dom->seq_valid = !c.seq_unknown;
	}
	return -c.err;
}

void nfdec_tick(struct nfdec *d, uint64_t now_ms)
{
	pend_expire(d, now_ms);
}

void nfdec_stats(const struct nfdec *d, struct nfdec_stats *st)
{
	*st = d->tot;
	st->templates = d->ntpl;
}

size_t nfdec_exporter_count(const struct nfdec *d)
{
	return d->nexp;
}

const struct nfdec_exporter_stats *nfdec_exporter(const struct nfdec *d, size_t i)
{
	return i < d->nexp ? &d->exps[i].st : NULL;
}

size_t nfdec_domain_count(const struct nfdec *d, size_t exporter)
{
	return exporter < d->nexp ? d->exps[exporter].ndom : 0;
}

const struct nfdec_domain_stats *nfdec_domain(const struct nfdec *d, size_t exporter,
					      size_t j)
{
	if (exporter >= d->nexp || j >= d->exps[exporter].ndom)
		return NULL;
	return &d->exps[exporter].doms[j].st;
}

/* The v5 record (48 bytes) as a template; type 0 marks padding. */
static const struct fspec v5_fields[] = {
	{ 8, 4, 0 }, { 12, 4, 0 }, { 15, 4, 0 }, { 10, 2, 0 }, { 14, 2, 0 },
	{ 2, 4, 0 }, { 1, 4, 0 }, { 22, 4, 0 }, { 21, 4, 0 }, { 7, 2, 0 }, { 11, 2, 0 },
	{ 0, 1, 0 }, { 6, 1, 0 }, { 4, 1, 0 }, { 5, 1, 0 }, { 16, 2, 0 }, { 17, 2, 0 },
	{ 9, 1, 0 }, { 13, 1, 0 }, { 0, 2, 0 },
};

static size_t pow2_at_least(size_t n)
{
	size_t p = 1;
	while (p < n)
		p <<= 1;
	return p;
}

struct nfdec *nfdec_new(const struct nfdec_cfg *cfg)
{
	struct nfdec *d;
	size_t nb;

	d = calloc(1, sizeof *d);
	if (!d)
		return NULL;
	if (cfg)
		d->cfg = *cfg;
	else
		nfdec_cfg_default(&d->cfg);
	if (!d->cfg.max_templates || !d->cfg.max_exporters || !d->cfg.max_domains ||
	    d->cfg.max_templates >= NIL / 2 || d->cfg.max_exporters >= NIL / 2)
		goto fail;
	d->lru_head = d->lru_tail = d->free_head = NIL;
	d->tpls = calloc(d->cfg.max_templates, sizeof *d->tpls);
	nb = pow2_at_least(d->cfg.max_templates);
	d->tplhash = malloc(nb * sizeof *d->tplhash);
	d->tplhmask = nb - 1;
	if (!d->tpls || !d->tplhash)
		goto fail;
	memset(d->tplhash, 0xff, nb * sizeof *d->tplhash);
	for (size_t i = d->cfg.max_templates; i-- > 0;) {
		d->tpls[i].next = d->free_head;
		d->free_head = (uint32_t)i;
	}
	nb = pow2_at_least(d->cfg.max_exporters * 2);
	d->exphash = malloc(nb * sizeof *d->exphash);
	d->exphmask = nb - 1;
	if (!d->exphash)
		goto fail;
	memset(d->exphash, 0xff, nb * sizeof *d->exphash);
	if (tpl_compile(d, &d->v5, v5_fields, sizeof v5_fields / sizeof v5_fields[0], 0))
		goto fail;
	d->v5.version = 5;
	return d;
fail:
	nfdec_free(d);
	return NULL;
}

void nfdec_free(struct nfdec *d)
{
	if (!d)
		return;
	while (d->pend_head) {
		struct pend *p = d->pend_head;
		d->pend_head = p->next;
		free(p);
	}
	if (d->tpls)
		for (size_t i = 0; i < d->cfg.max_templates; i++)
			free(d->tpls[i].steps);
	for (size_t i = 0; i < d->nexp; i++)
		free(d->exps[i].doms);
	free(d->v5.steps);
	free(d->exps);
	free(d->exphash);
	free(d->tplhash);
	free(d->tpls);
	free(d);
}
