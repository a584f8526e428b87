/* nfdec.c: NetFlow v5 / v9 / IPFIX decoding (see nfdec.h for the contract).
 *
 * One codec serves all three versions. A template (v9, IPFIX, or the fixed v5 record
 * layout, which is just a built-in template) is compiled once into a list of steps.
 * Compiling makes every choice that depends on the template alone: which counter,
 * which clock, which address family, which fields nothing reads (those get no step:
 * they only move the offsets of later ones). Each step loads a field of a fixed size
 * and stores it, already truncated, widened or converted (a sysUptime clock into Unix
 * ms), straight into the template's own output record, or into scratch values when a
 * finishing pass must look at them whole (a counter with a fallback, a per-record
 * address family). Output fields no step writes hold the template's constants.
 *
 * sets_run runs the steps threaded (each ends by jumping to the next one's code),
 * steps of the same op grouped, then hands the record to the callback: a record costs
 * about one load and store per field. It goes on from one data set to the next while
 * their templates are at hand (a per-domain cache), since exporters alternate
 * templates (IPv4, IPv6) every few records. A template sent again byte for byte is
 * recognised, not compiled again. A variable-length field splits the record into
 * segments; an OP_VAR step reads its length prefix and moves the base of the steps
 * after it.
 */
#include "nfdec.h"

#include <stddef.h>
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
/* Templates remembered per domain by id: exporters alternate between a few templates
 * (IPv4 and IPv6), and a hit skips the hash lookup. */
#define DOM_TPL_CACHE_BITS 3
#define DOM_TPL_CACHE (1u << DOM_TPL_CACHE_BITS)

/* The values fields carry (scratch slots of struct tplmem). S_ZERO is never written:
 * "absent". */
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
#define SAMPLING_BITS (BIT(S_SAMP_INT) | BIT(S_SAMP_RINT) | BIT(S_PKT_INT) | \
		       BIT(S_PKT_SPACE))
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

/* What a step does: load 1, 2, 4 or 8 bytes (N: 3, 5, 6 or 7) and store 1, 2, 4 or 8;
 * a longer field stored narrower is loaded from its last bytes (truncation). A step of
 * an op before OP__GROUPED does it for up to GROUP_MAX fields. */
enum op {
	OP_1_1, OP_1_2, OP_1_4, OP_1_8,
	OP_2_2, OP_2_4, OP_2_8,
	OP_4_4, OP_4_8,
	OP_8_8,
	OP_A4,         /* 4 address bytes as they are */
	OP_A16,        /* 16 address bytes as they are */
	OP_UP,         /* v5/v9 sysUptime ms (last 4 bytes) to Unix ms */
	OP_UPI,        /* IPFIX sysUptime ms (last 4 bytes) + the domain's init time */
	OP__GROUPED,
	OP_2_2W = OP__GROUPED, /* two OP_2_2, adjacent in the record and in tplmem */
	OP_4_4W,       /* two OP_4_4, adjacent in the record and in tplmem */
	OP_N_4, OP_N_8,
	OP_UPN,        /* OP_UP of a 1..3-byte field */
	OP_END,        /* 2..8 bytes of flowEndReason, out-of-range values as 0, 1 byte */
	OP_END1,       /* OP_END of 1 byte */
	OP_NH4,        /* IPv4 next hop: v4-mapped, or all zero for 0.0.0.0 */
	OP_ICMP,       /* dport (off[2] if n is 3, else 0), or if it is 0 and the protocol
			* (off[1]) is ICMP, the type and code (off[0]) */
	OP_VAR,        /* variable-length field: read its length, rebase later steps */
	OP_STOP,       /* end of the record: the next starts off[0] after the last
			* segment's start */
	OP__COUNT
};
#define GROUP_MAX 4

/* One compiled step: for i < n, load at off[i] (in the current segment) and store at
 * dst[i] (a byte offset in struct tplmem). For OP_VAR, off[0] is where the
 * variable-length field starts and dst[0] the length of the fixed segment after it;
 * len is the field length for OP_N_*, OP_UPN and OP_END. code is where sets_run's
 * code for op and n is: each step jumps straight to the next one's. */
struct step {
	const void *code;
	uint16_t off[GROUP_MAX];
	uint16_t dst[GROUP_MAX];
	uint8_t op;
	uint8_t n;
	uint8_t len;
};

/* A step for one field, before steps are sorted and grouped (compile scratch). */
struct one {
	uint16_t off, dst;
	uint8_t op, len;
};

/* What a compiled template owns, in one allocation: the record its data records are
 * built in (fields no step writes hold the template's constants), the scratch values
 * and addresses the finishing pass reads, its steps (up to OP_STOP) and, to recognise
 * the same template sent again, the template record's bytes (after the steps). Slots
 * and addresses no step writes stay zero (v4-mapped zero for the IPv4 ones). */
struct tplmem {
	struct flow_rec r;
	uint64_t x[S__COUNT];
	uint8_t a[A__COUNT][16];
	uint32_t rawlen;
	uint32_t nsteps;         /* OP_STOP included */
	struct step steps[];
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
/* The time plan: none (export time, set once per set), by steps (v5/v9 sysUptime or
 * absolute ms, both sides), IPFIX sysUptime on both sides without an init time in the
 * record (by steps while the domain's is known), or general. */
enum tplan { TP_NONE, TP_STEPS, TP_UP10, TP_GENERAL };

/* Finishing work a template's records need after their steps (rec_finish_rare). */
#define F_ADDR 0x01      /* address family chosen per record */
#define F_NH 0x02        /* next hop of either family, chosen per record */
#define F_BYTES_OR 0x04  /* IN_BYTES, else OUT_BYTES */
#define F_BYTES_SUM 0x08 /* initiator + responder octets */
#define F_PKTS_OR 0x10
#define F_PKTS_SUM 0x20
#define F_ICMP 0x40      /* ICMP type/code into dport */
#define F_SAMP 0x80      /* sampling interval in the record */

struct tpl {
	uint32_t exp;
	uint32_t domain;
	uint16_t id;             /* 0: free slot (templates are 256 and up) */
	uint8_t version;
	uint8_t options;
	uint32_t hnext;          /* hash chain; free slots: the free list */
	struct tpl *prev, *next; /* LRU list, circular through nfdec.lru */
	uint64_t gen;            /* times the slot was freed (domain caches check it) */
	uint32_t min_len;        /* shortest record: fixed bytes + 1 per variable field */
	uint64_t has;            /* slots some field carries */
	struct tplmem *m;
	uint8_t fin;             /* F_* */
	uint8_t tplan;           /* enum tplan */
	uint8_t slow;            /* records need more than steps: options, fin, times */
	uint8_t setup;           /* sets need more than the domain's sampling */
	/* finishing plan, chosen once per template */
	uint8_t bytes, pkts, vlan, dur;
	uint8_t addr, nh, six;   /* six: the family when not chosen per record */
	uint8_t first_mode, first_slot, last_mode, last_slot;
	uint8_t icmp;            /* 0 none, 1 combined type/code, 2 separate */
	uint8_t icmp_op;         /* ICMP into dport by an OP_ICMP step, not F_ICMP */
};

struct domain {
	struct nfdec_domain_stats st;
	uint32_t next_seq;
	uint8_t seq_valid;
	struct tcache {          /* recently used templates by id (see tpl_get) */
		struct tpl *t;
		uint64_t gen;
	} tcache[DOM_TPL_CACHE];
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
	uint32_t last_exp;       /* the last datagram's exporter, or NIL */
	/* template cache: fixed slots, chained hash, LRU list */
	struct tpl *tpls;
	uint32_t *tplhash;
	size_t tplhmask;
	struct tpl lru;          /* LRU list head: next the most recent, prev the least */
	uint32_t free_head;
	size_t ntpl;
	struct tpl v5;           /* the v5 record layout as a template */
	/* pending data sets, oldest first */
	struct pend *pend_head, *pend_tail;
	const void *const (*code)[GROUP_MAX]; /* sets_run's code for op, n - 1 */
	/* compile scratch, reused by every call */
	struct fspec fs[MAX_FIELDS];
	struct one cs[MAX_FIELDS], cs2[MAX_FIELDS];
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
	uint64_t opts;           /* options records among nrec - counted */
	uint64_t counted;        /* nrec already added to the counters (counts_flush) */
	uint64_t init_ms;        /* the current set's sys_init_ms (TP_UP10) */
	uint32_t mul;            /* the current set's sampling to apply (0: none) */
	struct cur *sets;        /* sets_run's rest of the message, or NULL */
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

/* Whether a field of this kind and length can be read: numbers of up to 8 bytes, IPv4
 * addresses of 4 and IPv6 of 16. Others are skipped like unknown ones. */
static int mappable(uint8_t kind, uint16_t len)
{
	if (kind == K_A4)
		return len == 4;
	if (kind == K_A6)
		return len == 16;
	return kind == K_NUM && len <= 8;
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

static const uint8_t bytes_slots[] = { S_BYTES, S_OUT_BYTES, S_TOT_BYTES, S_INI_BYTES,
	S_RSP_BYTES };
static const uint8_t pkts_slots[] = { S_PKTS, S_OUT_PKTS, S_TOT_PKTS, S_INI_PKTS,
	S_RSP_PKTS };

/* Chooses, once per template, where each flow_rec field comes from. flen: the length
 * of the last field carrying each slot; fixed: no variable-length field. */
static void tpl_plan(struct tpl *t, uint64_t ahas, const uint16_t *flen, int fixed)
{
	/* IN_* or OUT_*, by value (S_BYTES/S_PKTS): exporters that send both either
	 * repeat the count (Fortigate) or leave the side they did not see at zero
	 * (egress flows), so adding them would double count. Initiator and responder
	 * counts are the two directions of one connection record (ASA NSEL): their sum
	 * (S_INI_*) is its traffic, as nfdump's totals say. */
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

	t->bytes = first_of(h, bytes_slots, sizeof bytes_slots);
	t->pkts = first_of(h, pkts_slots, sizeof pkts_slots);
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
	t->six = t->addr == AD_V6;
	t->icmp = (h & BIT(S_ICMP)) ? 1 : (h & (BIT(S_ICMP_TYPE) | BIT(S_ICMP_CODE))) ? 2 : 0;
	/* the usual case by a step: type/code and dport of 2 bytes or more, offsets
	 * fixed (no variable-length field) */
	t->icmp_op = t->icmp == 1 && (h & BIT(S_PROTO)) && fixed && flen[S_ICMP] >= 2 &&
		(!(h & BIT(S_DPORT)) || flen[S_DPORT] >= 2);
	if (t->first_mode == T_NONE && t->last_mode == T_NONE)
		t->tplan = TP_NONE;
	else if (t->first_mode == T_UP && t->last_mode == T_UP && t->version != 10)
		t->tplan = TP_STEPS;
	else if (t->first_mode == T_UP && t->last_mode == T_UP && !(h & BIT(S_SYSINIT)) &&
		 flen[S_FIRST_UP] >= 4 && flen[S_LAST_UP] >= 4)
		t->tplan = TP_UP10;
	else if (t->first_mode == T_MS && t->last_mode == T_MS)
		t->tplan = TP_STEPS;
	else
		t->tplan = TP_GENERAL;
}

/* Where a slot's or an address's value goes: a byte offset in struct tplmem and a
 * store width (1, 2, 4, 8 or a W_* kind). D_DEAD: nothing reads it, so no step. */
struct dest {
	uint16_t off;
	uint8_t width;
};
#define D_DEAD 0xffff
#define W_END 0x10
#define W_A4 0x11
#define W_A16 0x12
#define W_NH4 0x13
#define W_UP 0x14
#define W_UPI 0x15

static struct dest dest_at(size_t off, uint8_t width)
{
	struct dest d = { (uint16_t)off, width };
	return d;
}

/* The scratch value of a slot, whole. */
static struct dest dest_x(uint8_t slot)
{
	return dest_at(offsetof(struct tplmem, x) + slot * sizeof(uint64_t), 8);
}

#define REC(f) offsetof(struct tplmem, r.f)
_Static_assert(sizeof(((struct flow_rec *)0)->in_if) == 4 &&
	       sizeof(((struct flow_rec *)0)->sport) == 2 &&
	       sizeof(((struct flow_rec *)0)->proto) == 1 &&
	       sizeof(((struct flow_rec *)0)->bytes) == 8, "flow_rec field widths");
_Static_assert(sizeof(struct tplmem) < D_DEAD, "step destinations are 16 bits");

/* A counter by t's plan: s is { in, out, total, initiator, responder }. One source goes
 * straight to out; two (in and out, initiator and responder) go to scratch and the
 * finishing pass chooses (f_or) or adds (f_sum) them. */
static void counter_dests(struct dest *dn, uint64_t h, uint8_t plan, const uint8_t s[5],
			  struct dest out, uint8_t *fin, uint8_t f_or, uint8_t f_sum)
{
	uint8_t a, b, f;

	if (plan == s[0]) {
		a = s[0], b = s[1], f = f_or;
	} else if (plan == s[3]) {
		a = s[3], b = s[4], f = f_sum;
	} else {
		if (plan != S_ZERO)
			dn[plan] = out;
		return;
	}
	if ((h & BIT(a)) && (h & BIT(b))) {
		dn[a] = dest_x(a);
		dn[b] = dest_x(b);
		*fin |= f;
	} else {
		dn[(h & BIT(a)) ? a : b] = out;
	}
}

/* Chooses, for t's plan, where each slot (dn) and address (da) is stored, D_DEAD on
 * entry, and which finishing work the records need (t->fin). */
static void tpl_dests(struct tpl *t, struct dest *dn, struct dest *da)
{
	static const uint8_t samp[] = { S_SAMP_INT, S_SAMP_RINT, S_PKT_INT, S_PKT_SPACE };
	uint64_t h = t->has;
	uint8_t fin = 0;

	if (t->options) {
		/* opt_apply reads the scratch values */
		for (uint8_t s = 0; s < S__COUNT; s++)
			if (h & BIT(s))
				dn[s] = dest_x(s);
		t->fin = 0;
		return;
	}
	counter_dests(dn, h, t->bytes, bytes_slots, dest_at(REC(bytes), 8), &fin,
		      F_BYTES_OR, F_BYTES_SUM);
	counter_dests(dn, h, t->pkts, pkts_slots, dest_at(REC(packets), 8), &fin,
		      F_PKTS_OR, F_PKTS_SUM);
	dn[S_PROTO] = dest_at(REC(proto), 1);
	dn[S_TOS] = dest_at(REC(tos), 1);
	dn[S_FLAGS] = dest_at(REC(tcp_flags), 1);
	dn[S_SMASK] = dest_at(REC(src_mask), 1);
	dn[S_DMASK] = dest_at(REC(dst_mask), 1);
	dn[S_SPORT] = dest_at(REC(sport), 2);
	dn[S_DPORT] = dest_at(REC(dport), 2);
	dn[S_INIF] = dest_at(REC(in_if), 4);
	dn[S_OUTIF] = dest_at(REC(out_if), 4);
	dn[S_SRCAS] = dest_at(REC(src_as), 4);
	dn[S_DSTAS] = dest_at(REC(dst_as), 4);
	dn[S_END_REASON] = dest_at(REC(end_reason), W_END);
	if (t->vlan != S_ZERO)
		dn[t->vlan] = dest_at(REC(vlan), 2);
	/* without a protocol field no record is ICMP: dport stays as sent */
	if (t->icmp_op) {
		dn[S_DPORT].off = D_DEAD;       /* the OP_ICMP step's */
	} else if (t->icmp && (h & BIT(S_PROTO))) {
		fin |= F_ICMP;
		dn[S_DPORT] = dest_x(S_DPORT);
		if (t->icmp == 1) {
			dn[S_ICMP] = dest_x(S_ICMP);
		} else {
			dn[S_ICMP_TYPE] = dest_x(S_ICMP_TYPE);
			dn[S_ICMP_CODE] = dest_x(S_ICMP_CODE);
		}
	}
	if (t->tplan == TP_STEPS || t->tplan == TP_UP10) {
		/* both sides the same clock, converted as they are loaded */
		uint8_t w = t->tplan == TP_UP10 ? W_UPI :
			t->first_mode == T_UP ? W_UP : 8;
		dn[t->first_slot] = dest_at(REC(first_ms), w);
		dn[t->last_slot] = dest_at(REC(last_ms), w);
	} else {
		if (t->first_mode != T_NONE)
			dn[t->first_slot] = dest_x(t->first_slot);
		if (t->last_mode != T_NONE)
			dn[t->last_slot] = dest_x(t->last_slot);
		/* a duration only fills a missing start or end */
		if ((t->first_mode == T_NONE) != (t->last_mode == T_NONE) &&
		    t->dur != S_ZERO)
			dn[t->dur] = dest_x(t->dur);
		if (t->version == 10 && (t->first_mode == T_UP || t->last_mode == T_UP)) {
			dn[S_FIRST_UP] = dest_x(S_FIRST_UP);
			dn[S_LAST_UP] = dest_x(S_LAST_UP);
			dn[S_SYSINIT] = dest_x(S_SYSINIT);
		}
	}
	if (h & SAMPLING_BITS) {
		fin |= F_SAMP;
		for (size_t i = 0; i < sizeof samp; i++)
			dn[samp[i]] = dest_x(samp[i]);
	}

	if (t->addr == AD_BOTH || (t->addr == AD_NONE && (h & BIT(S_IPVER)))) {
		fin |= F_ADDR;
		dn[S_IPVER] = dest_x(S_IPVER);
		da[A_SRC4] = dest_at(offsetof(struct tplmem, a[A_SRC4]) + 12, W_A4);
		da[A_DST4] = dest_at(offsetof(struct tplmem, a[A_DST4]) + 12, W_A4);
		da[A_SRC6] = dest_at(offsetof(struct tplmem, a[A_SRC6]), W_A16);
		da[A_DST6] = dest_at(offsetof(struct tplmem, a[A_DST6]), W_A16);
	} else if (t->addr == AD_V4) {
		da[A_SRC4] = dest_at(REC(src) + 12, W_A4);
		da[A_DST4] = dest_at(REC(dst) + 12, W_A4);
	} else if (t->addr == AD_V6) {
		da[A_SRC6] = dest_at(REC(src), W_A16);
		da[A_DST6] = dest_at(REC(dst), W_A16);
	}
	if (t->nh == AD_BOTH) {
		fin |= F_NH;
		da[A_NH4] = dest_at(offsetof(struct tplmem, a[A_NH4]) + 12, W_A4);
		da[A_NH6] = dest_at(offsetof(struct tplmem, a[A_NH6]), W_A16);
	} else if (t->nh == AD_V4) {
		da[A_NH4] = dest_at(REC(nexthop), W_NH4);
	} else if (t->nh == AD_V6) {
		da[A_NH6] = dest_at(REC(nexthop), W_A16);
	}
	t->fin = fin;
}

/* The step that loads a field of len bytes at off (in its segment) into dst. */
static struct one step_make(uint32_t off, uint16_t len, struct dest dst)
{
	struct one s = { (uint16_t)off, dst.off, 0, 0 };
	uint8_t w = dst.width;

	switch (w) {
	case W_END:
		s.op = len == 1 ? OP_END1 : OP_END;
		s.len = (uint8_t)len;
		break;
	case W_A4: s.op = OP_A4; break;
	case W_A16: s.op = OP_A16; break;
	case W_NH4: s.op = OP_NH4; break;
	case W_UPI:
		s.off = (uint16_t)(off + len - 4);      /* tpl_plan: len >= 4 */
		s.op = OP_UPI;
		break;
	case W_UP:
		/* the clock is 32 bits: a longer field's last 4 bytes */
		if (len >= 4) {
			s.off = (uint16_t)(off + len - 4);
			s.op = OP_UP;
		} else {
			s.op = OP_UPN;
			s.len = (uint8_t)len;
		}
		break;
	default:
		if (len >= w) {
			/* the low-order (last) bytes are what a narrower store keeps */
			s.off = (uint16_t)(off + len - w);
			s.op = w == 1 ? OP_1_1 : w == 2 ? OP_2_2 :
				w == 4 ? OP_4_4 : OP_8_8;
		} else if (len == 1) {
			s.op = w == 2 ? OP_1_2 : w == 4 ? OP_1_4 : OP_1_8;
		} else if (len == 2) {
			s.op = w == 4 ? OP_2_4 : OP_2_8;
		} else if (len == 4) {
			s.op = OP_4_8;
		} else {
			s.op = w == 4 ? OP_N_4 : OP_N_8;
			s.len = (uint8_t)len;
		}
		break;
	}
	return s;
}

/* Whether field f is read for t, and as what (*kind K_NUM: slot; K_A4/K_A6: aslot). */
static int field_map(const struct tpl *t, const struct fspec *f, uint8_t *kind,
		     uint8_t *slot)
{
	struct iemap m = { K_NONE, 0 };
	if (!f->skip && f->type < IE_TABLE_LEN)
		m = ie_table[f->type];
	if (t->options && (m.kind != K_NUM || !(BIT(m.slot) & OPTION_BITS)))
		return 0;
	if (m.kind == K_NONE || !mappable(m.kind, f->len))
		return 0;
	*kind = m.kind;
	*slot = m.slot;
	return 1;
}

/* Makes in[i] (OP_2_2 or OP_4_4) an OP_2_2W or OP_4_4W if another step of its op
 * loads the next bytes into the next field (ports, interfaces), and drops that one. */
static void seg_widen(struct one *in, uint32_t n, uint32_t i)
{
	uint16_t w = in[i].op == OP_2_2 ? 2 : 4;
	for (uint32_t j = 0; j < n; j++) {
		if (in[j].op == in[i].op && in[j].off == in[i].off + w &&
		    in[j].dst == in[i].dst + w) {
			in[i].op = w == 2 ? OP_2_2W : OP_4_4W;
			in[j].op = OP__COUNT;           /* dropped */
			return;
		}
	}
}

/* Writes the steps in[0..n) of one segment to out sorted by op (through tmp), up to
 * GROUP_MAX of the same op as one step, and returns how many it wrote. The order in a
 * segment is free: steps only read the record and each stores a different value. */
static uint32_t seg_emit(struct step *out, struct one *in, struct one *tmp, uint32_t n)
{
	uint32_t at[OP__COUNT + 2] = { 0 }, k = 0;

	for (uint32_t i = 0; i < n; i++)
		if (in[i].op == OP_2_2 || in[i].op == OP_4_4)
			seg_widen(in, n, i);
	for (uint32_t i = 0; i < n; i++)
		at[in[i].op + 1]++;
	for (uint32_t o = 0; o <= OP__COUNT; o++)
		at[o + 1] += at[o];
	for (uint32_t i = 0; i < n; i++)
		tmp[at[in[i].op]++] = in[i];
	n = at[OP__COUNT - 1];                  /* the dropped ones sort last */
	for (uint32_t i = 0; i < n; i++) {
		struct step *s = &out[k++];
		*s = (struct step){ NULL, { tmp[i].off }, { tmp[i].dst }, tmp[i].op, 1,
				    tmp[i].len };
		while (s->op < OP__GROUPED && s->n < GROUP_MAX && i + 1 < n &&
		       tmp[i + 1].op == s->op) {
			i++;
			s->off[s->n] = tmp[i].off;
			s->dst[s->n] = tmp[i].dst;
			s->n++;
		}
	}
	return k;
}

/* Compiles fs[0..n) into t (t->version and t->options set, t->m free); raw[0..rawlen)
 * is the template record, kept to recognise it when sent again. Returns 0, or
 * -NFDEC_E_TEMPLATE if a record could not fit in a set, -NFDEC_E_NOMEM. */
static int tpl_compile(struct nfdec *d, struct tpl *t, const struct fspec *fs, size_t n,
		       const uint8_t *raw, size_t rawlen)
{
	uint32_t last[S__COUNT], alast[A__COUNT];   /* the last field carrying each */
	uint16_t flen[S__COUNT] = { 0 }, foff[S__COUNT] = { 0 };
	struct dest dn[S__COUNT], da[A__COUNT];
	struct one *cs = d->cs;
	uint32_t seg = 0, min_len = 0, ns = 0, lastvar = NIL;
	uint64_t has = 0, ahas = 0;
	uint8_t kind, slot;
	int var = 0;

	for (size_t i = 0; i < n; i++) {
		uint16_t len = fs[i].len;
		if (len == VARLEN) {
			var = 1;
			seg = 0;
			min_len += 1;
		} else if (len) {
			if (field_map(t, &fs[i], &kind, &slot)) {
				if (kind == K_NUM) {
					has |= BIT(slot);
					last[slot] = (uint32_t)i;
					flen[slot] = len;
				} else {
					ahas |= BIT(slot);
					alast[slot] = (uint32_t)i;
				}
			}
			seg += len;
			min_len += len;
		}
		if (min_len > MAX_RECORD)
			return -NFDEC_E_TEMPLATE;
	}
	t->min_len = min_len;
	t->has = has;
	tpl_plan(t, ahas, flen, !var);
	for (size_t i = 0; i < S__COUNT; i++)
		dn[i].off = D_DEAD;
	for (size_t i = 0; i < A__COUNT; i++)
		da[i].off = D_DEAD;
	tpl_dests(t, dn, da);

	/* Every step runs for every record, so of the fields that carry the same value
	 * only the last counts: a step for it alone, if anything reads the value. */
	seg = 0;
	for (size_t i = 0; i < n; i++) {
		uint16_t len = fs[i].len;
		if (len == VARLEN) {
			if (lastvar != NIL)
				cs[lastvar].dst = (uint16_t)seg;
			cs[ns] = (struct one){ (uint16_t)seg, 0, OP_VAR, 0 };
			lastvar = ns++;
			seg = 0;
		} else if (len) {
			if (field_map(t, &fs[i], &kind, &slot)) {
				struct dest to = kind == K_NUM ? dn[slot] : da[slot];
				uint32_t li = kind == K_NUM ? last[slot] : alast[slot];
				if (kind == K_NUM && li == i)
					foff[slot] = (uint16_t)seg;
				if (to.off != D_DEAD && li == i)
					cs[ns++] = step_make(seg, len, to);
			}
			seg += len;
		}
	}
	if (lastvar != NIL)
		cs[lastvar].dst = (uint16_t)seg;

	/* ns steps at most, plus OP_ICMP and OP_STOP */
	struct tplmem *m = calloc(1, sizeof *m + (ns + 2) * sizeof(struct step) + rawlen);
	if (!m)
		return -NFDEC_E_NOMEM;
	uint32_t k = 0, from = 0;
	for (uint32_t i = 0; i <= ns; i++) {
		if (i < ns && cs[i].op != OP_VAR)
			continue;
		k += seg_emit(m->steps + k, cs + from, d->cs2, i - from);
		if (i < ns)
			m->steps[k++] = (struct step){ NULL, { cs[i].off }, { cs[i].dst },
						       OP_VAR, 1, 0 };
		from = i + 1;
	}
	if (t->icmp_op) {
		/* one segment (tpl_plan); the last bytes of each field, as narrower
		 * values keep them */
		struct step *s = &m->steps[k++];
		*s = (struct step){ NULL, { 0 }, { (uint16_t)REC(dport) }, OP_ICMP, 2,
				    0 };
		s->off[0] = (uint16_t)(foff[S_ICMP] + flen[S_ICMP] - 2);
		s->off[1] = (uint16_t)(foff[S_PROTO] + flen[S_PROTO] - 1);
		if (has & BIT(S_DPORT)) {
			s->off[2] = (uint16_t)(foff[S_DPORT] + flen[S_DPORT] - 2);
			s->n = 3;
		}
	}
	/* the record ends the last segment's length after that segment's start */
	m->steps[k++] = (struct step){ NULL, { (uint16_t)seg }, { 0 }, OP_STOP, 1, 0 };
	m->nsteps = k;
	for (uint32_t i = 0; i < k; i++)
		m->steps[i].code = d->code[m->steps[i].op][m->steps[i].n - 1];
	if (rawlen)
		memcpy(m->steps + k, raw, rawlen);
	m->rawlen = (uint32_t)rawlen;

	for (int i = A_SRC4; i <= A_NH4; i++)
		m->a[i][10] = m->a[i][11] = 0xff;
	if (!(t->fin & F_ADDR)) {
		/* the family is the template's: set it and the v4-mapped prefix once */
		m->r.ipver = t->six ? 6 : 4;
		if (!t->six)
			m->r.src[10] = m->r.src[11] = m->r.dst[10] = m->r.dst[11] = 0xff;
	}
	t->slow = t->options || t->fin || t->tplan == TP_GENERAL;
	t->setup = t->version == 5 || t->options || (t->fin & F_SAMP) ||
		t->tplan == TP_NONE || t->tplan == TP_UP10 || !min_len;
	t->m = m;
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

static inline void lru_unlink(struct tpl *t)
{
	t->prev->next = t->next;
	t->next->prev = t->prev;
}

static inline void lru_push(struct nfdec *d, struct tpl *t)
{
	struct tpl *h = d->lru.next;
	h->prev = t;
	t->next = h;
	d->lru.next = t;
	t->prev = &d->lru;
}

static inline void tpl_touch(struct nfdec *d, struct tpl *t)
{
	if (d->lru.next == t)
		return;
	lru_unlink(t);
	lru_push(d, t);
}

/* The template id of the message's domain, or NULL. The domain's small cache holds
 * templates it found before; one still holds if its slot was not freed since. */
static inline struct tpl *tpl_get(struct nfdec *d, const struct dctx *c, uint16_t id)
{
	struct domain *m = c->dom;
	/* Fibonacci hashing: ids are often 256, 257... or 1024, 2048... */
	uint32_t h = (uint32_t)(id * 0x9e3779b1u) >> (32 - DOM_TPL_CACHE_BITS);
	struct tcache *e = &m->tcache[h];
	struct tpl *t = e->t;

	if (t->id == id && t->gen == e->gen)
		return t;
	t = tpl_find(d, c->exp, c->version, m->st.domain_id, id);
	if (t) {
		e->t = t;
		e->gen = t->gen;
	}
	return t;
}

/* Removes t from the cache and returns its slot to the free list. */
static void tpl_remove(struct nfdec *d, struct tpl *t)
{
	uint32_t i = (uint32_t)(t - d->tpls);
	uint32_t *pp = &d->tplhash[tpl_hash(d, t->exp, t->version, t->domain, t->id)];
	while (*pp != i)
		pp = &d->tpls[*pp].hnext;
	*pp = t->hnext;
	lru_unlink(t);
	free(t->m);
	t->m = NULL;
	t->id = 0;              /* no lookup matches a free slot */
	t->gen++;
	d->exps[t->exp].st.templates--;
	d->ntpl--;
	t->hnext = d->free_head;
	d->free_head = i;
}

/* Stores a compiled template under its key, replacing one with the same key and
 * evicting the least recently used if the cache is full. Takes ownership of nt->m.
 * Returns the cached template. */
static struct tpl *tpl_store(struct nfdec *d, struct tpl *nt)
{
	struct tpl *t = tpl_find(d, nt->exp, nt->version, nt->domain, nt->id);
	if (t) {
		uint32_t hnext = t->hnext;
		free(t->m);
		lru_unlink(t);
		nt->gen = t->gen;
		*t = *nt;
		t->hnext = hnext;
		lru_push(d, t);
		return t;
	}
	if (d->free_head == NIL) {
		struct tpl *old = d->lru.prev;
		d->exps[old->exp].st.template_evictions++;
		d->tot.template_evictions++;
		tpl_remove(d, old);
	}
	uint32_t i = d->free_head;
	t = &d->tpls[i];
	d->free_head = t->hnext;
	nt->gen = t->gen;
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
	struct tpl *t = d->lru.next;
	while (t != &d->lru) {
		struct tpl *next = t->next;
		if (t->exp == exp && t->domain == dom && t->version == 10 &&
		    t->options == (options != 0))
			tpl_remove(d, t);
		t = next;
	}
}

/* ---------------------------------------------------------------- records */

/* Native-order stores into the template's own record and scratch (aligned fields). */
static inline void put16(uint8_t *p, uint16_t v)
{
	memcpy(p, &v, sizeof v);
}

static inline void put32(uint8_t *p, uint32_t v)
{
	memcpy(p, &v, sizeof v);
}

static inline void put64(uint8_t *p, uint64_t v)
{
	memcpy(p, &v, sizeof v);
}

static const uint8_t v4mapped_prefix[12] = { [10] = 0xff, [11] = 0xff };

static inline uint64_t add_signed(uint64_t base, int64_t delta)
{
	if (delta < 0 && (uint64_t)-delta > base)
		return 0;
	return base + (uint64_t)delta;
}

/* v5/v9: export time - sysUptime + value; a signed 32-bit difference survives the
 * 49.7-day wrap of both counters. */
static inline uint64_t uptime_ms(uint64_t export_ms, uint32_t uptime, uint32_t x)
{
	int32_t delta = (int32_t)(x - uptime);
	if (delta < 0 && (uint64_t)-(int64_t)delta > export_ms)
		return 0;
	return export_ms + (uint64_t)(int64_t)delta;
}

/* What the grouped steps do to one field at q (w: the template's struct tplmem). */
static inline void do_1_1(uint8_t *w, const uint8_t *q, uint16_t dst)
{
	w[dst] = q[0];
}

static inline void do_1_2(uint8_t *w, const uint8_t *q, uint16_t dst)
{
	put16(w + dst, q[0]);
}

static inline void do_1_4(uint8_t *w, const uint8_t *q, uint16_t dst)
{
	put32(w + dst, q[0]);
}

static inline void do_1_8(uint8_t *w, const uint8_t *q, uint16_t dst)
{
	put64(w + dst, q[0]);
}

static inline void do_2_2(uint8_t *w, const uint8_t *q, uint16_t dst)
{
	put16(w + dst, ld_be16(q));
}

static inline void do_2_4(uint8_t *w, const uint8_t *q, uint16_t dst)
{
	put32(w + dst, ld_be16(q));
}

static inline void do_2_8(uint8_t *w, const uint8_t *q, uint16_t dst)
{
	put64(w + dst, ld_be16(q));
}

static inline void do_4_4(uint8_t *w, const uint8_t *q, uint16_t dst)
{
	put32(w + dst, ld_be32(q));
}

static inline void do_4_8(uint8_t *w, const uint8_t *q, uint16_t dst)
{
	put64(w + dst, ld_be32(q));
}

static inline void do_8_8(uint8_t *w, const uint8_t *q, uint16_t dst)
{
	put64(w + dst, ld_be64(q));
}

static inline void do_a4(uint8_t *w, const uint8_t *q, uint16_t dst)
{
	memcpy(w + dst, q, 4);
}

static inline void do_a16(uint8_t *w, const uint8_t *q, uint16_t dst)
{
	memcpy(w + dst, q, 16);
}

/* IPFIX sysUptime relative to the domain's systemInitTimeMilliseconds */
static inline void do_upi(uint8_t *w, const uint8_t *q, uint16_t dst, uint64_t init_ms)
{
	put64(w + dst, init_ms + ld_be32(q));
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

/* Unix ms for a clock value of mode m held in slot. */
static uint64_t rec_time(const struct dctx *c, const struct tpl *t, uint8_t m,
			 uint8_t slot)
{
	const uint64_t *v = t->m->x;
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
	case T_UP:
		if (c->version == 10) {
			/* IPFIX: relative to systemInitTimeMilliseconds, in the record or
			 * learned from options data. Without it, assume the flow ended when
			 * it was exported: that keeps durations right. */
			uint64_t init = (t->has & BIT(S_SYSINIT)) && v[S_SYSINIT] ?
				v[S_SYSINIT] : c->dom->st.sys_init_ms;
			if (init)
				return init + (uint32_t)x;
			uint32_t ref = (uint32_t)((t->has & BIT(S_LAST_UP)) ? v[S_LAST_UP] :
						 v[S_FIRST_UP]);
			return add_signed(c->export_ms, (int32_t)((uint32_t)x - ref));
		}
		return uptime_ms(c->export_ms, c->uptime, (uint32_t)x);
	default:
		return c->export_ms;
	}
}

/* First and last times by any plan but TP_NONE; a duration fills a missing side. */
static void rec_times(const struct dctx *c, const struct tpl *t)
{
	struct flow_rec *r = &t->m->r;
	const uint64_t *x = t->m->x;
	uint64_t dur = t->dur == S_DUR_US ? x[S_DUR_US] / 1000 : x[t->dur];

	if (t->first_mode != T_NONE) {
		r->first_ms = rec_time(c, t, t->first_mode, t->first_slot);
		r->last_ms = t->last_mode != T_NONE ?
			rec_time(c, t, t->last_mode, t->last_slot) : r->first_ms + dur;
	} else {
		r->last_ms = rec_time(c, t, t->last_mode, t->last_slot);
		r->first_ms = r->last_ms > dur ? r->last_ms - dur : 0;
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

static inline uint64_t mul_sat(uint64_t a, uint64_t b)
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

/* The finishing work of t->fin, on the record its steps just loaded. */
static void rec_finish_rare(const struct nfdec *d, const struct dctx *c,
			    const struct tpl *t)
{
	struct tplmem *m = t->m;
	struct flow_rec *r = &m->r;
	const uint64_t *x = m->x;
	int six = t->six;

	if (t->fin & F_ADDR) {
		/* both families in one template: the version field, else whichever
		 * family carries an address; neither: the version field alone */
		if (t->addr == AD_BOTH)
			six = x[S_IPVER] == 6 ? 1 : x[S_IPVER] == 4 ? 0 :
				!zero16(m->a[A_SRC6]) || !zero16(m->a[A_DST6]);
		else
			six = x[S_IPVER] == 6;
		memcpy(r->src, m->a[six ? A_SRC6 : A_SRC4], 16);
		memcpy(r->dst, m->a[six ? A_DST6 : A_DST4], 16);
		r->ipver = six ? 6 : 4;
	}
	if (t->fin & F_NH) {
		if (six)
			memcpy(r->nexthop, m->a[A_NH6], 16);
		else if (ld_be32(m->a[A_NH4] + 12))
			memcpy(r->nexthop, m->a[A_NH4], 16);
		else
			memset(r->nexthop, 0, 16);
	}
	/* an absent slot reads 0: the choices below hold with either side missing */
	if (t->fin & F_PKTS_OR)
		r->packets = x[S_PKTS] ? x[S_PKTS] : x[S_OUT_PKTS];
	if (t->fin & F_PKTS_SUM)
		r->packets = x[S_INI_PKTS] + x[S_RSP_PKTS];
	if (t->fin & F_BYTES_OR)
		r->bytes = x[S_BYTES] ? x[S_BYTES] : x[S_OUT_BYTES];
	if (t->fin & F_BYTES_SUM)
		r->bytes = x[S_INI_BYTES] + x[S_RSP_BYTES];
	if (t->fin & F_ICMP) {
		uint16_t dport = (uint16_t)x[S_DPORT];
		if (dport == 0 && (r->proto == 1 || r->proto == 58))
			dport = t->icmp == 1 ? (uint16_t)x[S_ICMP] :
				(uint16_t)(x[S_ICMP_TYPE] << 8 | (x[S_ICMP_CODE] & 0xff));
		r->dport = dport;
	}
	if (t->fin & F_SAMP) {
		uint32_t rate = sampling_of(x);
		if (!rate)
			rate = c->dom->st.sampling;
		r->sampling = rate ? rate : 1;
		if (d->cfg.apply_sampling && r->sampling > 1) {
			r->packets = mul_sat(r->packets, r->sampling);
			r->bytes = mul_sat(r->bytes, r->sampling);
		}
	}
}

/* An options data record: learn sampling and system init time for the domain. */
static void opt_apply(struct dctx *c, const struct tpl *t)
{
	const uint64_t *x = t->m->x;
	if (t->has & SAMPLING_BITS) {
		uint32_t r = sampling_of(x);
		c->dom->st.sampling = r ? r : 1;
	}
	if ((t->has & BIT(S_SYSINIT)) && x[S_SYSINIT])
		c->dom->st.sys_init_ms = x[S_SYSINIT];
}

/* What a set needs before its records when t->setup: the v5 template's exporter and
 * domain, the sampling interval unless the records carry one, the export time for
 * records without times, the IPFIX init time. Returns what to multiply counters by
 * (0: nothing). */
static uint32_t set_setup(const struct nfdec *d, struct dctx *c, const struct tpl *t)
{
	struct flow_rec *r = &t->m->r;
	uint32_t mul = 0;

	if (t->options)
		return 0;
	c->init_ms = c->dom->st.sys_init_ms;
	if (t->version == 5) {
		memcpy(r->exporter, c->ex->st.addr, 16);
		r->domain_id = c->dom->st.domain_id;
	}
	if (!(t->fin & F_SAMP)) {
		uint32_t rate = c->v5_sampling ? c->v5_sampling : c->dom->st.sampling;
		r->sampling = rate ? rate : 1;
		if (d->cfg.apply_sampling && r->sampling > 1)
			mul = r->sampling;
	}
	if (t->tplan == TP_NONE)
		r->first_ms = r->last_ms = c->export_ms;
	return mul;
}

/* What a record needs after its steps unless t->slow and mul are both 0: options data
 * applied (returns 0: nothing to emit), or the finishing work, times and sampling
 * applied (returns 1). */
static int rec_slow(const struct nfdec *d, struct dctx *c, const struct tpl *t)
{
	uint32_t mul = c->mul;
	struct flow_rec *r = &t->m->r;

	if (t->options) {
		opt_apply(c, t);
		c->opts++;
		return 0;
	}
	if (t->fin)
		rec_finish_rare(d, c, t);
	if (t->tplan == TP_UP10 && !c->init_ms) {
		/* the steps added 0: the raw clocks. Without an init time, the flow is
		 * taken to end when it was exported (see rec_time). */
		uint32_t first = (uint32_t)r->first_ms, last = (uint32_t)r->last_ms;
		r->first_ms = add_signed(c->export_ms, (int32_t)(first - last));
		r->last_ms = c->export_ms;
	} else if (t->tplan == TP_GENERAL) {
		rec_times(c, t);
	}
	if (mul) {
		r->packets = mul_sat(r->packets, mul);
		r->bytes = mul_sat(r->bytes, mul);
	}
	return 1;
}

/* Decodes data set bodies: first [p, p + len) with template t (found and touched by
 * the caller), then, if rest (the message after that set) is given, the sets at its
 * front for as long as they are data sets of templates cached for c's domain, moving
 * rest past them; the caller's loop takes over at the first other set. Each record
 * runs through t's steps, each jumping straight to the next one's code, until fewer
 * than t->min_len bytes are left; flows are then emitted (finished first if the set
 * needs it), options records applied. Counts go to c (see counts_flush). Called with
 * c NULL, it only gives d the code address of each op. */
static void sets_run(struct nfdec *d, struct dctx *c, struct tpl *t, const uint8_t *p,
		     size_t len, struct cur *rest)
{
	static const void *const code[OP__COUNT][GROUP_MAX] = {
		[OP_1_1] = { &&op_1_1, &&op_1_1x2, &&op_1_1x3, &&op_1_1x4 },
		[OP_1_2] = { &&op_1_2, &&op_1_2x2, &&op_1_2x3, &&op_1_2x4 },
		[OP_1_4] = { &&op_1_4, &&op_1_4x2, &&op_1_4x3, &&op_1_4x4 },
		[OP_1_8] = { &&op_1_8, &&op_1_8x2, &&op_1_8x3, &&op_1_8x4 },
		[OP_2_2] = { &&op_2_2, &&op_2_2x2, &&op_2_2x3, &&op_2_2x4 },
		[OP_2_4] = { &&op_2_4, &&op_2_4x2, &&op_2_4x3, &&op_2_4x4 },
		[OP_2_8] = { &&op_2_8, &&op_2_8x2, &&op_2_8x3, &&op_2_8x4 },
		[OP_4_4] = { &&op_4_4, &&op_4_4x2, &&op_4_4x3, &&op_4_4x4 },
		[OP_4_8] = { &&op_4_8, &&op_4_8x2, &&op_4_8x3, &&op_4_8x4 },
		[OP_8_8] = { &&op_8_8, &&op_8_8x2, &&op_8_8x3, &&op_8_8x4 },
		[OP_A4] = { &&op_a4, &&op_a4x2, &&op_a4x3, &&op_a4x4 },
		[OP_A16] = { &&op_a16, &&op_a16x2, &&op_a16x3, &&op_a16x4 },
		[OP_UP] = { &&op_up, &&op_upx2, &&op_upx3, &&op_upx4 },
		[OP_UPI] = { &&op_upi, &&op_upix2, &&op_upix3, &&op_upix4 },
		[OP_2_2W] = { &&op_2_2w }, [OP_4_4W] = { &&op_4_4w },
		[OP_N_4] = { &&op_n_4 }, [OP_N_8] = { &&op_n_8 }, [OP_UPN] = { &&op_upn },
		[OP_END] = { &&op_end }, [OP_END1] = { &&op_end1 },
		[OP_NH4] = { &&op_nh4 },
		[OP_ICMP] = { [1] = &&op_icmp, [2] = &&op_icmp },
		[OP_VAR] = { &&op_var }, [OP_STOP] = { &&op_stop },
	};
	struct tplmem *m;
	uint8_t *w;
	const struct step *s;
	const uint8_t *end, *lim, *base, *q;
	size_t vlen;
	const void *stop, *fast, *dstop;
	uint64_t export_ms;      /* c's, in locals: stores through w may alias c */
	uint32_t uptime;
	uint32_t drate, dmul;    /* the domain's sampling, and what applying it takes */
	int opts;

	if (!c) {
		d->code = code;
		return;
	}
	fast = c->emit ? &&emit : &&finish;
	c->sets = rest;
	export_ms = c->export_ms;
	uptime = c->uptime;
domain:
	/* the domain's sampling, for sets whose records do not carry one (never 0:
	 * see dom_get and opt_apply); options records may change it */
	drate = c->dom->st.sampling;
	dmul = d->cfg.apply_sampling && drate > 1 ? drate : 0;
	dstop = dmul ? &&finish : fast;
set:
	end = p + len;
	m = t->m;
	w = (uint8_t *)m;
	/* what this set's records share: the header's values (v9 and IPFIX data
	 * templates have their exporter and domain already) */
	if (t->setup) {
		if (!t->min_len) {
			/* every field zero-length: records without bytes cannot be
			 * counted */
			count_err(d, c, NFDEC_E_TEMPLATE_EMPTY);
			c->seq_unknown = 1;
			goto set_done;
		}
		c->mul = set_setup(d, c, t);
		/* how a record ends: straight to the callback, or the general way */
		stop = t->slow || c->mul || (t->tplan == TP_UP10 && !c->init_ms) ?
			&&finish : fast;
	} else {
		m->r.sampling = drate;
		c->mul = dmul;
		stop = t->slow ? &&finish : dstop;
	}
	/* fewer bytes than the shortest record left: set padding, stop */
	if (len < t->min_len)
		goto set_done;
	lim = end - t->min_len;
	base = p;

record:
	/* base: the record's start; steps rebase it past variable-length fields,
	 * OP_STOP moves it to the next record */
	if (base > lim)
		goto set_done;
	s = m->steps;
	goto *s->code;

	/* a step of n fields enters its op's chain at the label for n */
op_1_1x4: do_1_1(w, base + s->off[3], s->dst[3]);
op_1_1x3: do_1_1(w, base + s->off[2], s->dst[2]);
op_1_1x2: do_1_1(w, base + s->off[1], s->dst[1]);
op_1_1: do_1_1(w, base + s->off[0], s->dst[0]);
	goto *(++s)->code;
op_1_2x4: do_1_2(w, base + s->off[3], s->dst[3]);
op_1_2x3: do_1_2(w, base + s->off[2], s->dst[2]);
op_1_2x2: do_1_2(w, base + s->off[1], s->dst[1]);
op_1_2: do_1_2(w, base + s->off[0], s->dst[0]);
	goto *(++s)->code;
op_1_4x4: do_1_4(w, base + s->off[3], s->dst[3]);
op_1_4x3: do_1_4(w, base + s->off[2], s->dst[2]);
op_1_4x2: do_1_4(w, base + s->off[1], s->dst[1]);
op_1_4: do_1_4(w, base + s->off[0], s->dst[0]);
	goto *(++s)->code;
op_1_8x4: do_1_8(w, base + s->off[3], s->dst[3]);
op_1_8x3: do_1_8(w, base + s->off[2], s->dst[2]);
op_1_8x2: do_1_8(w, base + s->off[1], s->dst[1]);
op_1_8: do_1_8(w, base + s->off[0], s->dst[0]);
	goto *(++s)->code;
op_2_2x4: do_2_2(w, base + s->off[3], s->dst[3]);
op_2_2x3: do_2_2(w, base + s->off[2], s->dst[2]);
op_2_2x2: do_2_2(w, base + s->off[1], s->dst[1]);
op_2_2: do_2_2(w, base + s->off[0], s->dst[0]);
	goto *(++s)->code;
op_2_4x4: do_2_4(w, base + s->off[3], s->dst[3]);
op_2_4x3: do_2_4(w, base + s->off[2], s->dst[2]);
op_2_4x2: do_2_4(w, base + s->off[1], s->dst[1]);
op_2_4: do_2_4(w, base + s->off[0], s->dst[0]);
	goto *(++s)->code;
op_2_8x4: do_2_8(w, base + s->off[3], s->dst[3]);
op_2_8x3: do_2_8(w, base + s->off[2], s->dst[2]);
op_2_8x2: do_2_8(w, base + s->off[1], s->dst[1]);
op_2_8: do_2_8(w, base + s->off[0], s->dst[0]);
	goto *(++s)->code;
op_4_4x4: do_4_4(w, base + s->off[3], s->dst[3]);
op_4_4x3: do_4_4(w, base + s->off[2], s->dst[2]);
op_4_4x2: do_4_4(w, base + s->off[1], s->dst[1]);
op_4_4: do_4_4(w, base + s->off[0], s->dst[0]);
	goto *(++s)->code;
op_4_8x4: do_4_8(w, base + s->off[3], s->dst[3]);
op_4_8x3: do_4_8(w, base + s->off[2], s->dst[2]);
op_4_8x2: do_4_8(w, base + s->off[1], s->dst[1]);
op_4_8: do_4_8(w, base + s->off[0], s->dst[0]);
	goto *(++s)->code;
op_8_8x4: do_8_8(w, base + s->off[3], s->dst[3]);
op_8_8x3: do_8_8(w, base + s->off[2], s->dst[2]);
op_8_8x2: do_8_8(w, base + s->off[1], s->dst[1]);
op_8_8: do_8_8(w, base + s->off[0], s->dst[0]);
	goto *(++s)->code;
op_a4x4: do_a4(w, base + s->off[3], s->dst[3]);
op_a4x3: do_a4(w, base + s->off[2], s->dst[2]);
op_a4x2: do_a4(w, base + s->off[1], s->dst[1]);
op_a4: do_a4(w, base + s->off[0], s->dst[0]);
	goto *(++s)->code;
op_a16x4: do_a16(w, base + s->off[3], s->dst[3]);
op_a16x3: do_a16(w, base + s->off[2], s->dst[2]);
op_a16x2: do_a16(w, base + s->off[1], s->dst[1]);
op_a16: do_a16(w, base + s->off[0], s->dst[0]);
	goto *(++s)->code;
op_upx4:
	put64(w + s->dst[3], uptime_ms(export_ms, uptime, ld_be32(base + s->off[3])));
op_upx3:
	put64(w + s->dst[2], uptime_ms(export_ms, uptime, ld_be32(base + s->off[2])));
op_upx2:
	put64(w + s->dst[1], uptime_ms(export_ms, uptime, ld_be32(base + s->off[1])));
op_up:
	put64(w + s->dst[0], uptime_ms(export_ms, uptime, ld_be32(base + s->off[0])));
	goto *(++s)->code;
op_upix4: do_upi(w, base + s->off[3], s->dst[3], c->init_ms);
op_upix3: do_upi(w, base + s->off[2], s->dst[2], c->init_ms);
op_upix2: do_upi(w, base + s->off[1], s->dst[1], c->init_ms);
op_upi: do_upi(w, base + s->off[0], s->dst[0], c->init_ms);
	goto *(++s)->code;
op_2_2w: {
	uint32_t v = ld_be32(base + s->off[0]);
	uint8_t *o = w + s->dst[0];
	put16(o, (uint16_t)(v >> 16));
	put16(o + 2, (uint16_t)v);
	goto *(++s)->code;
}
op_4_4w: {
	uint64_t v = ld_be64(base + s->off[0]);
	uint8_t *o = w + s->dst[0];
	put32(o, (uint32_t)(v >> 32));
	put32(o + 4, (uint32_t)v);
	goto *(++s)->code;
}
op_n_4:
	put32(w + s->dst[0], (uint32_t)ld_beN(base + s->off[0], s->len));
	goto *(++s)->code;
op_n_8:
	put64(w + s->dst[0], ld_beN(base + s->off[0], s->len));
	goto *(++s)->code;
op_upn:
	put64(w + s->dst[0], uptime_ms(c->export_ms, c->uptime,
				       (uint32_t)ld_beN(base + s->off[0], s->len)));
	goto *(++s)->code;
op_end: {
	uint64_t v = ld_beN(base + s->off[0], s->len);
	w[s->dst[0]] = v <= FLOW_END_RESOURCE ? (uint8_t)v : 0;
	goto *(++s)->code;
}
op_end1: {
	uint8_t v = base[s->off[0]];
	w[s->dst[0]] = v <= FLOW_END_RESOURCE ? v : 0;
	goto *(++s)->code;
}
op_icmp: {
	uint16_t dport = s->n == 3 ? ld_be16(base + s->off[2]) : 0;
	uint8_t proto = base[s->off[1]];
	if (dport == 0 && (proto == 1 || proto == 58))
		dport = ld_be16(base + s->off[0]);
	put16(w + s->dst[0], dport);
	goto *(++s)->code;
}
op_nh4:
	/* 0.0.0.0 means none */
	q = base + s->off[0];
	if (ld_be32(q)) {
		memcpy(w + s->dst[0], v4mapped_prefix, 12);
		memcpy(w + s->dst[0] + 12, q, 4);
	} else {
		memset(w + s->dst[0], 0, 16);
	}
	goto *(++s)->code;
op_var:
	/* RFC 7011 7: one length byte, or 255 and two length bytes */
	q = base + s->off[0];
	if (q >= end)
		goto bad;
	vlen = *q++;
	if (vlen == 255) {
		if (end - q < 2)
			goto bad;
		vlen = ld_be16(q);
		q += 2;
	}
	if ((size_t)(end - q) < vlen)
		goto bad;
	base = q + vlen;
	if ((size_t)(end - base) < s->dst[0])
		goto bad;
	goto *(++s)->code;

op_stop:
	base += s->off[0];
	c->nrec++;
	goto *stop;
emit:
	c->emit(&m->r, c->arg);
	goto record;
finish:
	if (rec_slow(d, c, t) && c->emit)
		c->emit(&m->r, c->arg);
	goto record;

bad:
	count_err(d, c, NFDEC_E_RECORD);
	c->seq_unknown = 1;
set_done:
	/* the next set, if it is data whose template is at hand */
	opts = t->options;
	if (c->sets && cur_left(c->sets) >= 4) {
		struct cur *cu = c->sets;
		const uint8_t *h = cu->p;
		uint16_t sid = ld_be16(h), slen = ld_be16(h + 2);
		if (sid >= 256 && slen >= 4 && slen <= cur_left(cu) &&
		    (t = tpl_get(d, c, sid)) != NULL) {
			cu->p += slen;
			tpl_touch(d, t);
			p = h + 4;
			len = slen - 4u;
			if (opts)
				goto domain;
			goto set;
		}
	}
}

/* Adds the records c read since the last call to the exporter, domain and decoder
 * counters. */
static inline void counts_flush(struct nfdec *d, struct dctx *c)
{
	struct exporter *ex = c->ex;
	uint64_t flows = c->nrec - c->counted - c->opts;

	ex->st.records += flows;
	ex->st.options_records += c->opts;
	c->dom->st.records += flows;
	d->tot.records += flows;
	d->tot.options_records += c->opts;
	if (c->version == 5)
		ex->st.records_v5 += flows;
	else if (c->version == 9)
		ex->st.records_v9 += flows;
	else
		ex->st.records_ipfix += flows;
	c->counted = c->nrec;
	c->opts = 0;
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
		struct tpl *t = tpl_find(d, p->exp, p->version, p->domain, p->tpl_id);
		if (t) {
			/* decode under the header it came with; errors count, but belong
			 * to that older datagram, not this call's result */
			struct dctx pc = *c;
			pc.dom = &c->ex->doms[p->dom_idx];
			pc.version = p->version;
			pc.export_ms = p->export_ms;
			pc.uptime = p->uptime;
			pc.nrec = pc.counted = pc.opts = 0;
			pc.err = NFDEC_OK;
			pend_unlink(d, p);
			sets_run(d, &pc, t, p->data, p->len, NULL);
			counts_flush(d, &pc);
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

/* If the template record at cu is, byte for byte, the one the cached template of its id
 * was compiled from (exporters resend templates every few packets), counts it, moves
 * the template to the front as storing it again would, steps over it and returns 1;
 * else returns 0 with cu unmoved. options: the set is an options template set. */
static int tpl_resent(struct nfdec *d, struct dctx *c, struct cur *cu, int options)
{
	struct tpl *t = tpl_get(d, c, ld_be16(cu->p));
	if (!t || t->options != options || t->m->rawlen > cur_left(cu) ||
	    memcmp(cu->p, t->m->steps + t->m->nsteps, t->m->rawlen))
		return 0;
	cur_take(cu, t->m->rawlen);
	c->ntpl++;
	tpl_touch(d, t);
	c->stored = 1;
	return 1;
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
		if (id >= 256 && tpl_resent(d, c, &cu, options))
			continue;
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
		nt.version = ver;
		nt.options = (uint8_t)options;
		int rc = tpl_compile(d, &nt, d->fs, n, h, (size_t)(cu.p - h));
		if (rc) {
			count_err(d, c, (enum nfdec_err)-rc);
			continue;
		}
		nt.exp = c->exp;
		nt.domain = c->dom->st.domain_id;
		nt.id = id;
		memcpy(nt.m->r.exporter, c->ex->st.addr, 16);
		nt.m->r.domain_id = nt.domain;
		tpl_store(d, &nt);
		c->stored = 1;
	}
}

/* A data set body; cu: the message after it (see sets_run). */
static void data_set(struct nfdec *d, struct dctx *c, uint16_t id, const uint8_t *p,
		     size_t len, uint64_t now_ms, struct cur *cu)
{
	struct tpl *t = tpl_get(d, c, id);
	if (!t) {
		if (!len)
			return;         /* an empty set holds no record */
		pend_add(d, c, id, p, len, now_ms);
		c->seq_unknown = 1;
		return;
	}
	tpl_touch(d, t);
	sets_run(d, c, t, p, len, cu);
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
			data_set(d, c, sid, h + 4, slen - 4u, now_ms, &cu);
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

static struct domain *dom_get(struct nfdec *d, struct exporter *ex, uint8_t ver,
			      uint32_t id, size_t max)
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
	for (size_t i = 0; i < DOM_TPL_CACHE; i++)
		m->tcache[i].t = &d->lru;       /* id 0: matches nothing */
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
	/* most datagrams come from the exporter of the one before */
	if (d->last_exp != NIL && !memcmp(d->exps[d->last_exp].st.addr, exporter, 16))
		c.exp = d->last_exp;
	else
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
	d->last_exp = c.exp;
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
	c.dom = dom_get(d, c.ex, c.version, dom_id, d->cfg.max_domains);
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
		sets_run(d, &c, &d->v5, buf + hlen, (size_t)count * 48, NULL);
		counts_flush(d, &c);
		c.dom->next_seq = seq + count;   /* v5 sequence counts flows */
		c.dom->seq_valid = 1;
		return -c.err;
	}

	sets_walk(d, &c, buf + hlen, mlen - hlen, now_ms);
	counts_flush(d, &c);
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
	d->lru.next = d->lru.prev = &d->lru;
	d->last_exp = NIL;
	d->free_head = NIL;
	d->tpls = calloc(d->cfg.max_templates, sizeof *d->tpls);
	nb = pow2_at_least(d->cfg.max_templates);
	d->tplhash = malloc(nb * sizeof *d->tplhash);
	d->tplhmask = nb - 1;
	if (!d->tpls || !d->tplhash)
		goto fail;
	memset(d->tplhash, 0xff, nb * sizeof *d->tplhash);
	for (size_t i = d->cfg.max_templates; i-- > 0;) {
		d->tpls[i].hnext = d->free_head;
		d->free_head = (uint32_t)i;
	}
	nb = pow2_at_least(d->cfg.max_exporters * 2);
	d->exphash = malloc(nb * sizeof *d->exphash);
	d->exphmask = nb - 1;
	if (!d->exphash)
		goto fail;
	memset(d->exphash, 0xff, nb * sizeof *d->exphash);
	sets_run(d, NULL, NULL, NULL, 0, NULL);
	d->v5.version = 5;
	if (tpl_compile(d, &d->v5, v5_fields, sizeof v5_fields / sizeof v5_fields[0],
			NULL, 0))
		goto fail;
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
			free(d->tpls[i].m);
	for (size_t i = 0; i < d->nexp; i++)
		free(d->exps[i].doms);
	free(d->v5.m);
	free(d->exps);
	free(d->exphash);
	free(d->tplhash);
	free(d->tpls);
	free(d);
}
