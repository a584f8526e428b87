/* filt.c: nfdump filter expressions, parsed into a tree, normalised, compiled into a flat
 * program over column blocks, and evaluated three ways: over a block (filt_eval), over
 * one record (filt_match) and over a block's zone map (filt_zone_may_match).
 *
 * Pipeline:
 *   text -> tokens -> parse tree (n-ary AND/OR, NOT, leaves; what filt_match walks)
 *        -> normal form (NOTs pushed into the leaves, constants folded, nested AND/OR
 *           flattened; what the zone map and the compiler read)
 *        -> program: LEAF/DIFF/UNION ops over registers holding sorted selection vectors.
 *
 * A leaf tests one or two columns (src and/or dst) in one pass. AND runs its children
 * one after the other, each over the survivors of the previous one (in place). OR runs
 * each child only over the records no earlier child matched (DIFF) and merges the
 * results (UNION). Register 0 is "every record of the block" and costs nothing.
 *
 * nfdump quirks kept on purpose: `flags XY` means all of X and Y set and implies proto
 * tcp, but under an odd number of NOTs it tests any of them (nfdump's CMP_FLAGS), which
 * is what makes its documented idiom `flags S and not flags AFRPU` (SYN only) work.
 * Scaling suffixes k/m/g/t are powers of 1000; duration is in milliseconds; pps, bps and
 * bpp use nfdump's integer formulas (0 when the divisor is 0).
 */
#include "filt.h"

#include "addr.h"
#include "bytes.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define FILT_MAX_NEST 64        /* parentheses and NOTs; bounds every recursion below */
#define NONE UINT32_MAX

/* ---- tokens ---- */

enum tok_type {
	T_END, T_WORD, T_LPAREN, T_RPAREN, T_LBRACK, T_RBRACK, T_COMMA, T_SLASH,
	T_ANDAND, T_OROR, T_BANG, T_CMP, T_OTHER,
};

enum cmp { C_EQ, C_LT, C_GT, C_LE, C_GE };

struct tok {
	uint8_t type;
	uint8_t cmp;            /* T_CMP */
	uint32_t pos, len;
};

/* ---- leaves ---- */

enum leaf_kind {
	LK_RANGE,       /* lo <= x <= hi, on a numeric column */
	LK_MASK,        /* (x & m) == v, on a numeric column */
	LK_ADDR,        /* (addr & m) == v, on an address column */
	LK_ADDRSET,     /* address in a list of addresses and prefixes */
	LK_U16SET,      /* x in a set of 16-bit values (bitmap) */
	LK_U32SET,      /* x in a sorted list of 32-bit values */
	LK_DERIVED,     /* lo <= f(record) <= hi: duration, pps, bps, bpp */
};

enum mode { M_ONE, M_ANY, M_ALL };        /* one column; either of two; both */
enum derived { D_DUR, D_PPS, D_BPS, D_BPP };
enum ipreq { IPV_NONE, IPV_4, IPV_6 };   /* the record must (not) be IPv6 */

struct aprefix {
	uint8_t v[16], m[16];
	uint8_t v6;
};

/* Address list grouped by prefix mask: per group the masked values as big-endian word
 * pairs (so that numeric order is address order), sorted for binary search. */
struct a128 {
	uint64_t hi, lo;
};

struct agroup {
	struct a128 m;
	uint8_t v6;
	uint32_t n;
	struct a128 *v;
};

struct aset {
	uint32_t ngroups, nlist;
	struct agroup *g;
	struct aprefix *list;   /* as written: filt_match scans it, independent of g */
};

struct u32set {
	uint32_t n;
	uint32_t *v;            /* sorted, unique */
};

struct leaf {
	uint8_t kind;
	uint8_t mode;
	uint8_t col_a, col_b;   /* enum store_col; col_b only for M_ANY/M_ALL */
	uint8_t ipreq;          /* LK_ADDR, LK_ADDRSET */
	uint8_t derived;
	uint64_t a, b;          /* RANGE/DERIVED: lo, hi; MASK: mask, value */
	uint8_t am[16], av[16]; /* LK_ADDR */
	uint64_t *bits;         /* LK_U16SET: 1024 words */
	struct u32set *u32;
	struct aset *as;
};

/* ---- trees ---- */

enum node_type { N_TRUE, N_FALSE, N_LEAF, N_NOT, N_AND, N_OR };

struct node {
	uint8_t type;
	uint8_t neg;            /* N_LEAF: negated */
	uint32_t leaf;
	uint32_t first, last, next;     /* children (first/last), siblings (next) */
};

struct nodes {
	struct node *v;
	uint32_t n, cap;
};

/* ---- program ---- */

enum op_code { OP_LEAF, OP_DIFF, OP_UNION };

/* LEAF: out = {i in in : leaf(i) ^ neg}; DIFF: out = in \ aux (aux a subset of in);
 * UNION: out = out + in (disjoint). out may equal in for LEAF and DIFF. */
struct op {
	uint8_t code;
	uint8_t neg;
	uint16_t in, out, aux;
	uint32_t leaf;
};

enum result { R_NONE, R_ALL, R_REG };

struct filt {
	struct leaf *leaves;
	uint32_t nleaves;
	struct nodes tree;      /* as parsed */
	uint32_t tree_root;
	struct nodes norm;      /* normal form */
	uint32_t norm_root;
	struct op *ops;
	uint32_t nops;
	uint32_t nregs;
	uint32_t result_reg;
	uint8_t result;
	uint32_t columns;
};

/* ---- column access ---- */

static int col_width(unsigned col)
{
	switch (col) {
	case STORE_COL_SRC: case STORE_COL_DST: case STORE_COL_NEXTHOP: case STORE_COL_EXPORTER:
		return 16;
	case STORE_COL_PACKETS: case STORE_COL_BYTES: case STORE_COL_FIRST: case STORE_COL_LAST:
		return 8;
	case STORE_COL_IN_IF: case STORE_COL_OUT_IF: case STORE_COL_SRC_AS: case STORE_COL_DST_AS:
	case STORE_COL_DOMAIN_ID: case STORE_COL_SAMPLING:
		return 4;
	case STORE_COL_SPORT: case STORE_COL_DPORT: case STORE_COL_VLAN:
		return 2;
	default:
		return 1;
	}
}

static const void *col_ptr(const struct store_cols *c, unsigned col)
{
	return store_cols_array(c, (int)col);
}

static uint64_t rec_num(const struct flow_rec *r, unsigned col)
{
	switch (col) {
	case STORE_COL_PACKETS: return r->packets;
	case STORE_COL_BYTES: return r->bytes;
	case STORE_COL_FIRST: return r->first_ms;
	case STORE_COL_LAST: return r->last_ms;
	case STORE_COL_IN_IF: return r->in_if;
	case STORE_COL_OUT_IF: return r->out_if;
	case STORE_COL_SRC_AS: return r->src_as;
	case STORE_COL_DST_AS: return r->dst_as;
	case STORE_COL_DOMAIN_ID: return r->domain_id;
	case STORE_COL_SAMPLING: return r->sampling;
	case STORE_COL_SPORT: return r->sport;
	case STORE_COL_DPORT: return r->dport;
	case STORE_COL_VLAN: return r->vlan;
	case STORE_COL_PROTO: return r->proto;
	case STORE_COL_TOS: return r->tos;
	case STORE_COL_TCP_FLAGS: return r->tcp_flags;
	case STORE_COL_IPVER: return r->ipver;
	case STORE_COL_SRC_MASK: return r->src_mask;
	case STORE_COL_DST_MASK: return r->dst_mask;
	default: return r->end_reason;
	}
}

static const uint8_t *rec_addr(const struct flow_rec *r, unsigned col)
{
	switch (col) {
	case STORE_COL_SRC: return r->src;
	case STORE_COL_DST: return r->dst;
	case STORE_COL_NEXTHOP: return r->nexthop;
	default: return r->exporter;
	}
}

/* nfdump's derived values, same integer arithmetic (wraps as nfdump's does). */
static inline __attribute__((always_inline)) uint64_t
derive(int kind, uint64_t first, uint64_t last, uint64_t pk, uint64_t by)
{
	uint64_t dur = last - first;

	switch (kind) {
	case D_DUR: return dur;
	case D_PPS: return dur ? 1000 * pk / dur : 0;
	case D_BPS: return dur ? 8000 * by / dur : 0;
	default: return pk ? by / pk : 0;
	}
}

/* ---- parser context ---- */

/* A host name in the expression and what it stood for (filt_expand_names). */
struct namesub {
	uint32_t pos, len;
	int in_list;
	int n;
	uint8_t a[FILT_MAX_NAME_ADDRS][16];
};

struct pc {
	const char *s;
	size_t len;
	struct tok *toks;
	uint32_t ntok, cap, i;  /* i: current token */
	char *err;
	size_t errlen;
	size_t *err_pos;
	int failed;
	int depth;
	struct filt *f;
	uint32_t leafcap;
	filt_resolve_fn resolve;        /* NULL: host names are refused */
	struct namesub *subs;           /* names looked up, for filt_expand_names */
	uint32_t nsubs, capsubs;
	int record;
};

static const struct tok *cur(const struct pc *p)
{
	return &p->toks[p->i];
}

static const struct tok *peek(const struct pc *p, uint32_t k)
{
	uint32_t j = p->i + k;
	return &p->toks[j < p->ntok ? j : p->ntok - 1];
}

static void advance(struct pc *p)
{
	if (p->i + 1 < p->ntok)
		p->i++;
}

static void fail(struct pc *p, uint32_t pos, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void fail(struct pc *p, uint32_t pos, const char *fmt, ...)
{
	va_list ap;

	if (p->failed)
		return;
	p->failed = 1;
	if (p->err_pos)
		*p->err_pos = pos;
	if (p->err && p->errlen) {
		va_start(ap, fmt);
		vsnprintf(p->err, p->errlen, fmt, ap);
		va_end(ap);
	}
}

/* Quoted text of a token for messages, cut to 40 bytes. */
static int tok_show(const struct pc *p, const struct tok *t, char *buf, size_t len)
{
	if (t->type == T_END)
		return snprintf(buf, len, "end of filter");
	return snprintf(buf, len, "'%.*s%s'", t->len > 40 ? 40 : (int)t->len, p->s + t->pos,
			t->len > 40 ? "..." : "");
}

static void unexpected(struct pc *p, const struct tok *t, const char *expected)
{
	char q[64];

	tok_show(p, t, q, sizeof(q));
	fail(p, t->pos, "unexpected %s at position %u: expected %s", q, t->pos, expected);
}

static int is_word(const struct pc *p, const struct tok *t, const char *w)
{
	return t->type == T_WORD && strlen(w) == t->len && strncasecmp(p->s + t->pos, w, t->len) == 0;
}

static int word_char(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '_' || c == ':' || c == '.' || c == '-';
}

static int push_tok(struct pc *p, uint8_t type, uint8_t cmp, size_t pos, size_t len)
{
	if (p->ntok == p->cap) {
		uint32_t cap = p->cap ? p->cap * 2 : 32;
		struct tok *t = realloc(p->toks, cap * sizeof(*t));
		if (!t)
			return -ENOMEM;
		p->toks = t;
		p->cap = cap;
	}
	p->toks[p->ntok].type = type;
	p->toks[p->ntok].cmp = cmp;
	p->toks[p->ntok].pos = (uint32_t)pos;
	p->toks[p->ntok].len = (uint32_t)len;
	p->ntok++;
	return 0;
}

/* Splits the text as nfdump's scanner does: words of [A-Za-z0-9_:.-], punctuation,
 * comparators, && || !, and '#' comments to the end of the line. */
static int lex(struct pc *p)
{
	const char *s = p->s;
	size_t i = 0, n = p->len;

	while (i < n) {
		unsigned char c = (unsigned char)s[i];
		uint8_t type = T_OTHER, cmp = 0;
		size_t len = 1;

		if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v') {
			i++;
			continue;
		}
		if (c == '#') {
			while (i < n && s[i] != '\n')
				i++;
			continue;
		}
		if (word_char(c)) {
			while (i + len < n && word_char((unsigned char)s[i + len]))
				len++;
			type = T_WORD;
		} else if (c == '(') {
			type = T_LPAREN;
		} else if (c == ')') {
			type = T_RPAREN;
		} else if (c == '[') {
			type = T_LBRACK;
		} else if (c == ']') {
			type = T_RBRACK;
		} else if (c == ',') {
			type = T_COMMA;
		} else if (c == '/') {
			type = T_SLASH;
		} else if (c == '&' && i + 1 < n && s[i + 1] == '&') {
			type = T_ANDAND;
			len = 2;
		} else if (c == '|' && i + 1 < n && s[i + 1] == '|') {
			type = T_OROR;
			len = 2;
		} else if (c == '!') {
			type = T_BANG;
		} else if (c == '=' || c == '<' || c == '>') {
			int eq = i + 1 < n && s[i + 1] == '=';
			type = T_CMP;
			len = eq ? 2 : 1;
			cmp = c == '=' ? C_EQ : c == '<' ? (eq ? C_LE : C_LT) : (eq ? C_GE : C_GT);
		}
		if (i > UINT32_MAX - len)
			return -E2BIG;
		if (push_tok(p, type, cmp, i, len) < 0)
			return -ENOMEM;
		i += len;
	}
	return push_tok(p, T_END, 0, n, 0);
}

/* ---- building trees ---- */

static uint32_t node_new(struct pc *p, struct nodes *ns, uint8_t type)
{
	if (ns->n == ns->cap) {
		uint32_t cap = ns->cap ? ns->cap * 2 : 32;
		struct node *v = realloc(ns->v, cap * sizeof(*v));
		if (!v) {
			fail(p, 0, "out of memory");
			return NONE;
		}
		ns->v = v;
		ns->cap = cap;
	}
	struct node *x = &ns->v[ns->n];
	memset(x, 0, sizeof(*x));
	x->type = type;
	x->first = x->last = x->next = NONE;
	x->leaf = NONE;
	return ns->n++;
}

static void node_add(struct nodes *ns, uint32_t parent, uint32_t child)
{
	struct node *pa = &ns->v[parent];

	ns->v[child].next = NONE;
	if (pa->first == NONE)
		pa->first = child;
	else
		ns->v[pa->last].next = child;
	pa->last = child;
}

static uint32_t tnode(struct pc *p, uint8_t type)
{
	return node_new(p, &p->f->tree, type);
}

static uint32_t tnode2(struct pc *p, uint8_t type, uint32_t a, uint32_t b)
{
	uint32_t x;

	if (a == NONE || b == NONE || (x = tnode(p, type)) == NONE)
		return NONE;
	node_add(&p->f->tree, x, a);
	node_add(&p->f->tree, x, b);
	return x;
}

static uint32_t tnot(struct pc *p, uint32_t a)
{
	uint32_t x;

	if (a == NONE || (x = tnode(p, N_NOT)) == NONE)
		return NONE;
	node_add(&p->f->tree, x, a);
	return x;
}

/* Adds a zeroed leaf; returns its index or NONE. */
static uint32_t leaf_new(struct pc *p, uint8_t kind)
{
	struct filt *f = p->f;

	if (f->nleaves == p->leafcap) {
		uint32_t cap = p->leafcap ? p->leafcap * 2 : 16;
		struct leaf *v = realloc(f->leaves, cap * sizeof(*v));
		if (!v) {
			fail(p, 0, "out of memory");
			return NONE;
		}
		f->leaves = v;
		p->leafcap = cap;
	}
	memset(&f->leaves[f->nleaves], 0, sizeof(struct leaf));
	f->leaves[f->nleaves].kind = kind;
	return f->nleaves++;
}

static uint32_t tleaf(struct pc *p, uint32_t leaf, int neg)
{
	uint32_t x;

	if (leaf == NONE || (x = tnode(p, N_LEAF)) == NONE)
		return NONE;
	p->f->tree.v[x].leaf = leaf;
	p->f->tree.v[x].neg = (uint8_t)(neg != 0);
	return x;
}

/* ---- direction qualifiers ---- */

enum dq { DQ_NONE, DQ_SRC, DQ_DST, DQ_EITHER, DQ_BOTH, DQ_IN, DQ_OUT };

static const char *const dq_names[] = {
	"", "src", "dst", "src or dst", "src and dst", "in", "out",
};

/* Sets mode and columns for a src/dst field pair under qualifier dq (NONE = either). */
static void dq_cols(int dq, uint8_t cs, uint8_t cd, struct leaf *l)
{
	switch (dq) {
	case DQ_SRC:
		l->mode = M_ONE;
		l->col_a = cs;
		break;
	case DQ_DST:
		l->mode = M_ONE;
		l->col_a = cd;
		break;
	case DQ_BOTH:
		l->mode = M_ALL;
		l->col_a = cs;
		l->col_b = cd;
		break;
	default:
		l->mode = M_ANY;
		l->col_a = cs;
		l->col_b = cd;
		break;
	}
}

/* ---- values ---- */

/* Parses a number as nfdump does: decimal, 0x hex, or decimal with one k/m/g/t suffix
 * (powers of 1000). Returns 0, -1 not a number, -2 out of 64-bit range. */
static int parse_u64(const char *s, size_t len, uint64_t *out)
{
	uint64_t v = 0, mul = 1;
	size_t i = 0;

	if (len == 0)
		return -1;
	if (len > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
		for (i = 2; i < len; i++) {
			unsigned char c = (unsigned char)s[i];
			unsigned d;
			if (c >= '0' && c <= '9')
				d = c - '0';
			else if (c >= 'a' && c <= 'f')
				d = c - 'a' + 10;
			else if (c >= 'A' && c <= 'F')
				d = c - 'A' + 10;
			else
				return -1;
			if (v >> 60)
				return -2;
			v = v << 4 | d;
		}
		*out = v;
		return 0;
	}
	switch (s[len - 1]) {
	case 'k': case 'K': mul = 1000ULL; len--; break;
	case 'm': case 'M': mul = 1000000ULL; len--; break;
	case 'g': case 'G': mul = 1000000000ULL; len--; break;
	case 't': case 'T': mul = 1000000000000ULL; len--; break;
	}
	if (len == 0)
		return -1;
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c < '0' || c > '9')
			return -1;
		if (v > (UINT64_MAX - (c - '0')) / 10)
			return -2;
		v = v * 10 + (c - '0');
	}
	if (v > UINT64_MAX / mul)
		return -2;
	*out = v * mul;
	return 0;
}

/* Reads the current token as a number in [0, max]; what names it in messages. */
static int take_num(struct pc *p, uint64_t max, const char *what, uint64_t *v)
{
	const struct tok *t = cur(p);
	char exp[96];
	int rc;

	snprintf(exp, sizeof(exp), "%s (0..%llu)", what, (unsigned long long)max);
	if (t->type != T_WORD) {
		unexpected(p, t, exp);
		return -1;
	}
	rc = parse_u64(p->s + t->pos, t->len, v);
	if (rc == -1) {
		char q[64];
		tok_show(p, t, q, sizeof(q));
		fail(p, t->pos, "bad number %s at position %u: expected %s", q, t->pos, exp);
		return -1;
	}
	if (rc == -2 || *v > max) {
		char q[64];
		tok_show(p, t, q, sizeof(q));
		fail(p, t->pos, "number %s at position %u out of range: expected %s", q, t->pos, exp);
		return -1;
	}
	advance(p);
	return 0;
}

/* Optional comparator: =, ==, <, >, <=, >=, eq, lt, gt, le, ge (nfdump's set). */
static int take_cmp(struct pc *p)
{
	const struct tok *t = cur(p);
	static const char *const w[] = { "eq", "lt", "gt", "le", "ge" };

	if (t->type == T_CMP) {
		advance(p);
		return t->cmp;
	}
	for (int i = 0; i < 5; i++) {
		if (is_word(p, t, w[i])) {
			advance(p);
			return i;
		}
	}
	return C_EQ;
}

/* Turns "x cmp v" over values 0..max into a range; returns 0 if it can never hold. */
static int cmp_range(int cmp, uint64_t v, uint64_t max, uint64_t *lo, uint64_t *hi)
{
	switch (cmp) {
	case C_LT:
		if (v == 0)
			return 0;
		*lo = 0;
		*hi = v - 1;
		return 1;
	case C_LE:
		*lo = 0;
		*hi = v;
		return 1;
	case C_GT:
		if (v >= max)
			return 0;
		*lo = v + 1;
		*hi = max;
		return 1;
	case C_GE:
		*lo = v;
		*hi = max;
		return 1;
	default:
		*lo = *hi = v;
		return 1;
	}
}

/* Address text (no host names) into 16 bytes, v4 mapped. Returns 4, 6, or 0. */
static int parse_addr(const char *s, size_t len, uint8_t a[16])
{
	char buf[64];
	uint8_t v4[4];

	if (len == 0 || len >= sizeof(buf))
		return 0;
	memcpy(buf, s, len);
	buf[len] = 0;
	if (inet_pton(AF_INET, buf, v4) == 1) {
		flowrec_addr4(a, v4);
		return 4;
	}
	if (strchr(buf, ':') && inet_pton(AF_INET6, buf, a) == 1)
		return 6;
	return 0;
}

static int take_addr(struct pc *p, uint8_t a[16])
{
	const struct tok *t = cur(p);
	int fam;

	if (t->type != T_WORD) {
		unexpected(p, t, "an IPv4 or IPv6 address");
		return 0;
	}
	fam = parse_addr(p->s + t->pos, t->len, a);
	if (!fam) {
		char q[64];
		tok_show(p, t, q, sizeof(q));
		fail(p, t->pos, "bad address %s at position %u: expected an IPv4 or IPv6 address",
		     q, t->pos);
		return 0;
	}
	advance(p);
	return fam;
}

/* Mask of a prefix: for IPv4 the 96 mapped-prefix bits plus bits of the address. */
static void prefix_mask(int fam, unsigned bits, uint8_t m[16])
{
	unsigned total = fam == 4 ? 96 + bits : bits;

	for (unsigned i = 0; i < 16; i++) {
		unsigned b = total > i * 8 ? total - i * 8 : 0;
		m[i] = b >= 8 ? 0xff : (uint8_t)(0xff00u >> b);
	}
}

/* "/len" after an address, if there; returns 1 with *m set, 0 if none, -1 on error. */
static int take_prefix(struct pc *p, int fam, uint8_t m[16])
{
	const struct tok *t;
	uint64_t bits;

	if (cur(p)->type != T_SLASH)
		return 0;
	advance(p);
	t = cur(p);
	if (t->type == T_WORD && parse_u64(p->s + t->pos, t->len, &bits) == 0 &&
	    bits > (fam == 4 ? 32u : 128u)) {
		char q[64];
		tok_show(p, t, q, sizeof(q));
		fail(p, t->pos, "bad prefix length %s at position %u: an IPv%d prefix is 0..%u bits",
		     q, t->pos, fam, fam == 4 ? 32 : 128);
		return -1;
	}
	if (take_num(p, fam == 4 ? 32 : 128, "a prefix length", &bits) < 0)
		return -1;
	prefix_mask(fam, (unsigned)bits, m);
	return 1;
}

/* ---- primitives ---- */

/* Numeric leaf "cols in [lo, hi]"; constant TRUE/FALSE if the comparison decides. */
static uint32_t num_leaf(struct pc *p, int dq, uint8_t cs, uint8_t cd, int cmp, uint64_t v,
			 uint64_t max)
{
	uint64_t lo, hi;
	uint32_t li;

	if (!cmp_range(cmp, v, max, &lo, &hi))
		return tnode(p, N_FALSE);
	if (lo == 0 && hi == max)
		return tnode(p, N_TRUE);
	if ((li = leaf_new(p, LK_RANGE)) == NONE)
		return NONE;
	struct leaf *l = &p->f->leaves[li];
	if (cd == 0xff) {
		l->mode = M_ONE;
		l->col_a = cs;
	} else {
		dq_cols(dq, cs, cd, l);
	}
	l->a = lo;
	l->b = hi;
	return tleaf(p, li, 0);
}

static uint32_t proto_leaf(struct pc *p, uint8_t proto)
{
	uint32_t li = leaf_new(p, LK_RANGE);

	if (li == NONE)
		return NONE;
	p->f->leaves[li].col_a = STORE_COL_PROTO;
	p->f->leaves[li].a = proto;
	p->f->leaves[li].b = proto;
	return tleaf(p, li, 0);
}

/* proto icmp or proto icmp6: what icmp-type and icmp-code imply. */
static uint32_t icmp_any(struct pc *p)
{
	return tnode2(p, N_OR, proto_leaf(p, 1), proto_leaf(p, 58));
}

/* IANA protocol keywords as nfdump 1.7 names them (first match wins: IPIP is 4). */
static const char *const proto_names[] = {
	"0", "ICMP", "IGMP", "GGP", "IPIP", "ST", "TCP", "CBT", "EGP", "IGP", "BBN", "NVPII",
	"PUP", "ARGUS", "ENCOM", "XNET", "CHAOS", "UDP", "MUX", "DCN", "HMP", "PRM", "XNS",
	"Trnk1", "Trnk2", "Leaf1", "Leaf2", "RDP", "IRTP", "ISO-4", "NETBK", "MFESP", "MEINP",
	"DCCP", "3PC", "IDPR", "XTP", "DDP", "IDPR", "TP++", "IL", "IPv6", "SDRP", "Rte6",
	"Frag6", "IDRP", "RSVP", "GRE", "MHRP", "BNA", "ESP", "AH", "INLSP", "SWIPE", "NARP",
	"MOBIL", "TLSP", "SKIP", "ICMP6", "NOHE6", "OPTS6", "HOST", "CFTP", "NET", "SATNT",
	"KLAN", "RVD", "IPPC", "FS", "SATM", "VISA", "IPCV", "CPNX", "CPHB", "WSN", "PVP",
	"BSATM", "SUNND", "WBMON", "WBEXP", "ISOIP", "VMTP", "SVMTP", "VINES", "TTP", "NSIGP",
	"DGP", "TCF", "EIGRP", "OSPF", "S-RPC", "LARP", "MTP", "AX.25", "IPIP", "MICP",
	"SCCSP", "ETHIP", "ENCAP", "99", "GMTP", "IFMP", "PNNI", "PIM", "ARIS", "SCPS", "QNX",
	"A/N", "IPcmp", "SNP", "CpqPP", "IPXIP", "VRRP", "PGM", "0hop", "L2TP", "DDX", "IATP",
	"STP", "SRP", "UTI", "SMP", "SM", "PTP", "ISIS4", "FIRE", "CRTP", "CRUDP", "128",
	"IPLT", "SPS", "PIPE", "SCTP", "FC", "134", "MHEAD", "UDP-L", "MPLS",
};

static uint32_t prim_proto(struct pc *p)
{
	const struct tok *t = cur(p);
	uint64_t v;

	if (t->type == T_WORD && !(p->s[t->pos] >= '0' && p->s[t->pos] <= '9')) {
		for (size_t i = 0; i < sizeof(proto_names) / sizeof(proto_names[0]); i++) {
			if (is_word(p, t, proto_names[i])) {
				advance(p);
				return proto_leaf(p, (uint8_t)i);
			}
		}
		char q[64];
		tok_show(p, t, q, sizeof(q));
		fail(p, t->pos, "unknown protocol %s at position %u: expected a protocol name "
		     "(tcp, udp, icmp, icmp6, gre, esp, ...) or number (0..255)", q, t->pos);
		return NONE;
	}
	if (take_num(p, 255, "a protocol name or number", &v) < 0)
		return NONE;
	return proto_leaf(p, (uint8_t)v);
}

/* Address leaf on cs/cd under dq; ipv4/6 records only when req is set. */
static uint32_t addr_leaf(struct pc *p, int dq, uint8_t cs, uint8_t cd, const uint8_t v[16],
			  const uint8_t m[16], int fam, int req)
{
	uint32_t li = leaf_new(p, LK_ADDR);

	if (li == NONE)
		return NONE;
	struct leaf *l = &p->f->leaves[li];
	if (cd == 0xff) {
		l->mode = M_ONE;
		l->col_a = cs;
	} else {
		dq_cols(dq, cs, cd, l);
	}
	l->ipreq = req ? (fam == 6 ? IPV_6 : IPV_4) : IPV_NONE;
	for (int i = 0; i < 16; i++) {
		l->am[i] = m[i];
		l->av[i] = v[i] & m[i];
	}
	return tleaf(p, li, 0);
}

static struct a128 a128_of(const uint8_t a[16])
{
	struct a128 x = { ld_be64(a), ld_be64(a + 8) };
	return x;
}

static int cmp_a128(const void *a, const void *b)
{
	const struct a128 *x = a, *y = b;

	if (x->hi != y->hi)
		return x->hi < y->hi ? -1 : 1;
	return x->lo < y->lo ? -1 : x->lo > y->lo;
}

/* A new address set leaf over columns cs/cd (cd 0xff: cs alone) with room for cap
 * prefixes; NONE on failure. */
static uint32_t aset_new(struct pc *p, int dq, uint8_t cs, uint8_t cd, int req, uint32_t cap,
			 struct aset **out)
{
	struct aset *as;
	uint32_t li;

	if ((li = leaf_new(p, LK_ADDRSET)) == NONE)
		return NONE;
	as = calloc(1, sizeof(*as));
	if (!as || !(as->list = malloc(cap * sizeof(*as->list)))) {
		free(as);
		fail(p, 0, "out of memory");
		return NONE;
	}
	struct leaf *l = &p->f->leaves[li];
	l->as = as;
	if (cd == 0xff) {
		l->mode = M_ONE;
		l->col_a = cs;
	} else {
		dq_cols(dq, cs, cd, l);
	}
	l->ipreq = req ? IPV_4 : IPV_NONE; /* per group below; marks "check ipver" */
	*out = as;
	return li;
}

static uint32_t aset_finish(struct pc *p, uint32_t li, struct aset *as);
static int take_name(struct pc *p, struct aset *as, uint32_t *cap, int in_list);

/* "[ addr[/len] ... ]" into an address set leaf. */
static uint32_t addr_list(struct pc *p, int dq, uint8_t cs, uint8_t cd, int req)
{
	struct aset *as;
	uint32_t li, cap = 8;
	const struct tok *open = cur(p);

	advance(p); /* '[' */
	if ((li = aset_new(p, dq, cs, cd, req, cap, &as)) == NONE)
		return NONE;
	for (;;) {
		const struct tok *t = cur(p);
		uint8_t a[16], m[16];
		int fam, rc;

		if (t->type == T_COMMA && as->nlist) {
			advance(p);
			continue;
		}
		if (t->type == T_RBRACK && as->nlist) {
			advance(p);
			break;
		}
		if (t->type == T_END) {
			char exp[96];
			snprintf(exp, sizeof(exp), "%s to close '[' at position %u",
				 as->nlist ? "an address or ']'" : "an address", open->pos);
			unexpected(p, t, exp);
			return NONE;
		}
		if (req && (rc = take_name(p, as, &cap, 1)) != 0) {  /* host lists take names */
			if (rc < 0)
				return NONE;
			continue;
		}
		if (!(fam = take_addr(p, a)))
			return NONE;
		prefix_mask(fam, fam == 4 ? 32 : 128, m);
		if ((rc = take_prefix(p, fam, m)) < 0)
			return NONE;
		if (as->nlist == cap) {
			struct aprefix *n = realloc(as->list, 2 * cap * sizeof(*n));
			if (!n) {
				fail(p, 0, "out of memory");
				return NONE;
			}
			as->list = n;
			cap *= 2;
		}
		struct aprefix *e = &as->list[as->nlist++];
		for (int i = 0; i < 16; i++) {
			e->m[i] = m[i];
			e->v[i] = a[i] & m[i];
		}
		e->v6 = fam == 6;
	}
	return aset_finish(p, li, as);
}

/* Groups the set's prefixes by (mask, family), each group sorted for binary search. */
static uint32_t aset_finish(struct pc *p, uint32_t li, struct aset *as)
{
	as->g = calloc(as->nlist, sizeof(*as->g));
	if (!as->g) {
		fail(p, 0, "out of memory");
		return NONE;
	}
	for (uint32_t i = 0; i < as->nlist; i++) {
		const struct aprefix *e = &as->list[i];
		struct a128 m = a128_of(e->m);
		struct agroup *g = NULL;
		for (uint32_t k = 0; k < as->ngroups; k++) {
			if (as->g[k].v6 == e->v6 && as->g[k].m.hi == m.hi && as->g[k].m.lo == m.lo) {
				g = &as->g[k];
				break;
			}
		}
		if (!g) {
			g = &as->g[as->ngroups++];
			g->m = m;
			g->v6 = e->v6;
			if (!(g->v = malloc(as->nlist * sizeof(*g->v)))) {
				fail(p, 0, "out of memory");
				return NONE;
			}
		}
		g->v[g->n++] = a128_of(e->v);
	}
	for (uint32_t k = 0; k < as->ngroups; k++)
		qsort(as->g[k].v, as->g[k].n, sizeof(struct a128), cmp_a128);
	return tleaf(p, li, 0);
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

/* "[ n n, n ... ]" of numbers up to max: a bitmap for 16-bit columns, else sorted. */
static uint32_t num_list(struct pc *p, int dq, uint8_t cs, uint8_t cd, uint64_t max,
			 const char *what)
{
	const struct tok *open = cur(p);
	int u16 = col_width(cs) == 2;
	uint32_t li, cap = 16, n = 0;
	struct leaf *l;

	advance(p); /* '[' */
	if ((li = leaf_new(p, u16 ? LK_U16SET : LK_U32SET)) == NONE)
		return NONE;
	l = &p->f->leaves[li];
	dq_cols(dq, cs, cd, l);
	if (u16) {
		if (!(l->bits = calloc(1024, sizeof(uint64_t)))) {
			fail(p, 0, "out of memory");
			return NONE;
		}
	} else {
		if (!(l->u32 = calloc(1, sizeof(*l->u32))) ||
		    !(l->u32->v = malloc(cap * sizeof(uint32_t)))) {
			fail(p, 0, "out of memory");
			return NONE;
		}
	}
	for (;;) {
		const struct tok *t = cur(p);
		uint64_t v;

		if (t->type == T_COMMA && n) {
			advance(p);
			continue;
		}
		if (t->type == T_RBRACK && n) {
			advance(p);
			break;
		}
		if (t->type == T_END) {
			char exp[96];
			snprintf(exp, sizeof(exp), "%s to close '[' at position %u",
				 n ? "a number or ']'" : "a number", open->pos);
			unexpected(p, t, exp);
			return NONE;
		}
		if (take_num(p, max, what, &v) < 0)
			return NONE;
		n++;
		l = &p->f->leaves[li];
		if (u16) {
			l->bits[v >> 6] |= 1ULL << (v & 63);
			continue;
		}
		if (l->u32->n == cap) {
			uint32_t *nv = realloc(l->u32->v, 2 * cap * sizeof(uint32_t));
			if (!nv) {
				fail(p, 0, "out of memory");
				return NONE;
			}
			l->u32->v = nv;
			cap *= 2;
		}
		l->u32->v[l->u32->n++] = (uint32_t)v;
	}
	if (!u16) {
		struct u32set *s = p->f->leaves[li].u32;
		uint32_t k = 0;
		qsort(s->v, s->n, sizeof(uint32_t), cmp_u32);
		for (uint32_t i = 0; i < s->n; i++)
			if (i == 0 || s->v[i] != s->v[k - 1])
				s->v[k++] = s->v[i];
		s->n = k;
	}
	return tleaf(p, li, 0);
}

/* TCP flags as letters (UAPRSF, X for all) or a number with a comparator; implies
 * proto tcp. neg: under an odd number of NOTs, where nfdump tests "any of". */
static uint32_t prim_flags(struct pc *p, int neg)
{
	const struct tok *t = cur(p);
	const char *s = p->s + t->pos;
	uint32_t li, test;
	unsigned fl = 0, seen = 0;

	if (t->type == T_CMP || (t->type == T_WORD && s[0] >= '0' && s[0] <= '9') ||
	    is_word(p, t, "eq") || is_word(p, t, "lt") || is_word(p, t, "gt") ||
	    is_word(p, t, "le") || is_word(p, t, "ge")) {
		int cmp = take_cmp(p);
		uint64_t v;
		if (take_num(p, 63, "TCP flags as a number", &v) < 0)
			return NONE;
		test = num_leaf(p, DQ_NONE, STORE_COL_TCP_FLAGS, 0xff, cmp, v, 255);
		return tnode2(p, N_AND, proto_leaf(p, 6), test);
	}
	if (t->type != T_WORD) {
		unexpected(p, t, "TCP flags (letters of UAPRSFX, or a number)");
		return NONE;
	}
	/* as nfdump: each letter at most once, X alone or with others means all six;
	 * lower case accepted too */
	for (uint32_t i = 0; i < t->len; i++) {
		static const char letters[] = "FSRPAUX";
		char ch = (char)(s[i] >= 'a' && s[i] <= 'z' ? s[i] - 'a' + 'A' : s[i]);
		const char *q = strchr(letters, ch);
		unsigned idx = q && ch ? (unsigned)(q - letters) : 7;
		if (idx == 7 || (seen >> idx & 1) || t->len > 7) {
			char w[64];
			tok_show(p, t, w, sizeof(w));
			fail(p, t->pos, "bad TCP flags %s at position %u: expected letters of "
			     "UAPRSF (each once) or X for all", w, t->pos);
			return NONE;
		}
		seen |= 1u << idx;
		fl |= idx == 6 ? 63u : 1u << idx;
	}
	advance(p);
	if ((li = leaf_new(p, LK_MASK)) == NONE)
		return NONE;
	p->f->leaves[li].col_a = STORE_COL_TCP_FLAGS;
	p->f->leaves[li].a = fl;
	if (!neg) {
		p->f->leaves[li].b = fl;                /* all of them set */
		test = tleaf(p, li, 0);
	} else {
		p->f->leaves[li].b = 0;                 /* not none of them: any set */
		test = tleaf(p, li, 1);
	}
	return tnode2(p, N_AND, proto_leaf(p, 6), test);
}

/* nfdump primitives tapflow's records cannot answer. */
static const char *const unsupported[] = {
	"ident", "tunip", "mac", "mpls", "tun", "count", "flowdir", "dir", "geo", "flowlabel",
	"nfversion", "engine-type", "engine-id", "sysid", "fwdstat", "client", "server", "app",
	"latency", "asa", "nat", "xip", "xnet", "xport", "nip", "nport", "pblock", "payload",
	"ingress", "egress", "bgpnext", "prev", "previous", "pf", "vrf", "@include",
};


enum field {
	F_ANY, F_IPV4, F_IPV6, F_HOST, F_NET, F_PORT, F_PROTO, F_TOS, F_FLAGS, F_IF, F_AS,
	F_VLAN, F_MASK, F_PACKETS, F_BYTES, F_FLOWS, F_PPS, F_BPS, F_BPP, F_DURATION,
	F_ICMPTYPE, F_ICMPCODE, F_NEXTIP, F_ROUTERIP, F_DOMAIN,
};

#define QN (1u << DQ_NONE)
#define QSD ((1u << DQ_NONE) | (1u << DQ_SRC) | (1u << DQ_DST) | (1u << DQ_EITHER) | \
	     (1u << DQ_BOTH))

/* Primitive keywords and the qualifiers each takes (nfdump's, less what we lack). */
static const struct {
	const char *kw;
	uint8_t f;
	uint8_t dqs;
} fields[] = {
	{ "any", F_ANY, QN }, { "ipv4", F_IPV4, QN }, { "inet", F_IPV4, QN },
	{ "ipv6", F_IPV6, QN }, { "inet6", F_IPV6, QN }, { "host", F_HOST, QSD },
	{ "ip", F_HOST, QSD }, { "net", F_NET, QSD }, { "port", F_PORT, QSD },
	{ "proto", F_PROTO, QN }, { "tos", F_TOS, QN | 1u << DQ_SRC }, { "flags", F_FLAGS, QN },
	{ "if", F_IF, QN | 1u << DQ_IN | 1u << DQ_OUT }, { "as", F_AS, QSD },
	{ "vlan", F_VLAN, QN | 1u << DQ_SRC }, { "mask", F_MASK, QSD },
	{ "packets", F_PACKETS, QN | 1u << DQ_IN }, { "bytes", F_BYTES, QN | 1u << DQ_IN },
	{ "flows", F_FLOWS, QN }, { "pps", F_PPS, QN }, { "bps", F_BPS, QN },
	{ "bpp", F_BPP, QN }, { "duration", F_DURATION, QN }, { "icmp-type", F_ICMPTYPE, QN },
	{ "icmp-code", F_ICMPCODE, QN }, { "next", F_NEXTIP, QN }, { "router", F_ROUTERIP, QN },
	{ "observation", F_DOMAIN, QN },
};

/* Qualifier/field pairs nfdump has but our records cannot answer. */
static int dq_unsupported(struct pc *p, const struct tok *qt, int dq, int f)
{
	const char *why = NULL;

	if ((f == F_TOS || f == F_VLAN) && (dq == DQ_DST || dq == DQ_EITHER || dq == DQ_BOTH))
		why = f == F_TOS ? "tapflow records hold one ToS byte (use 'tos' or 'src tos')"
				 : "tapflow records hold one VLAN id (use 'vlan' or 'src vlan')";
	else if ((f == F_PACKETS || f == F_BYTES) && dq == DQ_OUT)
		why = "tapflow records count one direction (use 'packets' or 'bytes')";
	if (!why)
		return 0;
	fail(p, qt->pos, "'%s %s' at position %u is not supported: %s", dq_names[dq],
	     f == F_TOS ? "tos" : f == F_VLAN ? "vlan" : f == F_PACKETS ? "packets" : "bytes",
	     qt->pos, why);
	return 1;
}

static uint32_t derived_leaf(struct pc *p, int kind, int cmp, uint64_t v)
{
	uint64_t lo, hi;
	uint32_t li;

	if (!cmp_range(cmp, v, UINT64_MAX, &lo, &hi))
		return tnode(p, N_FALSE);
	if (lo == 0 && hi == UINT64_MAX)
		return tnode(p, N_TRUE);
	if ((li = leaf_new(p, LK_DERIVED)) == NONE)
		return NONE;
	p->f->leaves[li].derived = (uint8_t)kind;
	p->f->leaves[li].a = lo;
	p->f->leaves[li].b = hi;
	return tleaf(p, li, 0);
}

static int list_follows(const struct pc *p)
{
	return is_word(p, cur(p), "in") && peek(p, 1)->type == T_LBRACK;
}

/* Whether text could be a host name: letters, digits, '-', '_' and '.', at least one
 * letter, and not a word of the filter language. */
static int is_host_name(const char *s, size_t len)
{
	static const char *const words[] = { "and", "or", "not", "in", "src", "dst", NULL };
	int letter = 0;

	if (len == 0 || len > FILT_MAX_NAME || s[0] == '-' || s[0] == '.')
		return 0;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
			letter = 1;
		else if (!(c >= '0' && c <= '9') && c != '-' && c != '_' && c != '.')
			return 0;
	}
	if (!letter)
		return 0;
	for (int i = 0; words[i]; i++)
		if (strlen(words[i]) == len && !strncasecmp(words[i], s, len))
			return 0;
	for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
		if (strlen(fields[i].kw) == len && !strncasecmp(fields[i].kw, s, len))
			return 0;
	return 1;
}

/* Whether the current token is a host name rather than an address. */
static int at_host_name(const struct pc *p)
{
	const struct tok *t = cur(p);
	uint8_t a[16];

	return t->type == T_WORD && !parse_addr(p->s + t->pos, t->len, a) &&
	       is_host_name(p->s + t->pos, t->len);
}

/* If the current token is a host name ("host NAME", "ip NAME", and in their lists):
 * looks it up and adds every address it has to as (nfdump or's them), then returns 1; 0
 * if it is no name (the caller reads an address), -1 on error (reported). */
static int take_name(struct pc *p, struct aset *as, uint32_t *cap, int in_list)
{
	const struct tok *t = cur(p);
	uint8_t a[FILT_MAX_NAME_ADDRS][16];
	char name[FILT_MAX_NAME + 1], q[64], why[160];
	int n;

	if (!at_host_name(p))
		return 0;
	tok_show(p, t, q, sizeof(q));
	if (!p->resolve) {
		fail(p, t->pos, "host name %s at position %u: names are not looked up here, give "
		     "an IPv4 or IPv6 address", q, t->pos);
		return -1;
	}
	memcpy(name, p->s + t->pos, t->len);
	name[t->len] = 0;
	why[0] = 0;
	n = p->resolve(name, a, FILT_MAX_NAME_ADDRS, why, sizeof(why));
	if (n <= 0 || n > FILT_MAX_NAME_ADDRS) {
		fail(p, t->pos, "host name %s at position %u: %s", q, t->pos,
		     why[0] ? why : "no address");
		return -1;
	}
	if (as->nlist + (uint32_t)n > *cap) {
		uint32_t c = (as->nlist + (uint32_t)n) * 2;
		struct aprefix *l = realloc(as->list, c * sizeof(*l));
		if (!l) {
			fail(p, 0, "out of memory");
			return -1;
		}
		as->list = l;
		*cap = c;
	}
	for (int i = 0; i < n; i++) {
		struct aprefix *e = &as->list[as->nlist++];
		int fam = flowrec_is4(a[i]) ? 4 : 6;
		prefix_mask(fam, fam == 4 ? 32 : 128, e->m);
		memcpy(e->v, a[i], 16);
		e->v6 = fam == 6;
	}
	if (p->record) {
		if (p->nsubs == p->capsubs) {
			uint32_t c = p->capsubs ? 2 * p->capsubs : 4;
			struct namesub *ns = realloc(p->subs, c * sizeof(*ns));
			if (!ns) {
				fail(p, 0, "out of memory");
				return -1;
			}
			p->subs = ns;
			p->capsubs = c;
		}
		struct namesub *sub = &p->subs[p->nsubs++];
		sub->pos = t->pos;
		sub->len = t->len;
		sub->in_list = in_list;
		sub->n = n;
		memcpy(sub->a, a, (size_t)n * 16);
	}
	advance(p);
	return 1;
}

int filt_resolve_system(const char *name, uint8_t (*out)[16], int max, char *err,
			size_t errlen)
{
	struct addrinfo hints, *res = NULL;
	int n = 0, rc;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_DGRAM;  /* one answer per address */
	rc = getaddrinfo(name, NULL, &hints, &res);
	if (rc != 0) {
		snprintf(err, errlen, "cannot look it up: %s",
			 rc == EAI_SYSTEM ? strerror(errno) : gai_strerror(rc));
		return -1;
	}
	for (struct addrinfo *ai = res; ai && n < max; ai = ai->ai_next) {
		uint8_t a[16];
		if (ai->ai_family == AF_INET)
			flowrec_addr4(a, (const uint8_t *)&((struct sockaddr_in *)ai->ai_addr)->sin_addr);
		else if (ai->ai_family == AF_INET6)
			memcpy(a, &((struct sockaddr_in6 *)ai->ai_addr)->sin6_addr, 16);
		else
			continue;
		int dup = 0;
		for (int i = 0; i < n && !dup; i++)
			dup = !memcmp(out[i], a, 16);
		if (!dup)
			memcpy(out[n++], a, 16);
	}
	freeaddrinfo(res);
	if (!n)
		snprintf(err, errlen, "no IPv4 or IPv6 address");
	return n ? n : -1;
}

/* The value part of a primitive whose keywords (and qualifier) were read. */
static uint32_t parse_value(struct pc *p, int f, int dq, int neg)
{
	uint8_t a[16], m[16];
	uint64_t v, lo, hi;
	int fam, cmp, rc;
	uint32_t li, x;

	switch (f) {
	case F_HOST:
		if (list_follows(p)) {
			advance(p);
			return addr_list(p, dq, STORE_COL_SRC, STORE_COL_DST, 1);
		}
		if (at_host_name(p)) {
			struct aset *as;
			uint32_t cap = 4;
			if ((li = aset_new(p, dq, STORE_COL_SRC, STORE_COL_DST, 1, cap, &as)) == NONE ||
			    take_name(p, as, &cap, 0) < 0)
				return NONE;
			return aset_finish(p, li, as);
		}
		if (!(fam = take_addr(p, a)))
			return NONE;
		prefix_mask(fam, fam == 4 ? 32 : 128, m);
		return addr_leaf(p, dq, STORE_COL_SRC, STORE_COL_DST, a, m, fam, 1);
	case F_NET:
		if (!(fam = take_addr(p, a)))
			return NONE;
		if ((rc = take_prefix(p, fam, m)) < 0)
			return NONE;
		if (rc == 0) {
			const struct tok *t = cur(p);
			uint8_t nm[16];
			if (fam != 4 || t->type != T_WORD || parse_addr(p->s + t->pos, t->len, nm) != 4) {
				unexpected(p, t, fam == 4 ? "'/' and a prefix length, or a netmask"
							  : "'/' and a prefix length");
				return NONE;
			}
			advance(p);
			prefix_mask(4, 0, m);
			for (int i = 12; i < 16; i++)
				m[i] = nm[i];
		}
		return addr_leaf(p, dq, STORE_COL_SRC, STORE_COL_DST, a, m, fam, 1);
	case F_PORT:
		if (list_follows(p)) {
			advance(p);
			return num_list(p, dq, STORE_COL_SPORT, STORE_COL_DPORT, 65535, "a port number");
		}
		cmp = take_cmp(p);
		if (take_num(p, 65535, "a port number", &v) < 0)
			return NONE;
		return num_leaf(p, dq, STORE_COL_SPORT, STORE_COL_DPORT, cmp, v, 65535);
	case F_PROTO:
		return prim_proto(p);
	case F_TOS:
		cmp = take_cmp(p);
		if (take_num(p, 255, "a ToS value", &v) < 0)
			return NONE;
		return num_leaf(p, DQ_NONE, STORE_COL_TOS, 0xff, cmp, v, 255);
	case F_FLAGS:
		return prim_flags(p, neg);
	case F_IF:
		if (take_num(p, UINT32_MAX, "an interface index", &v) < 0)
			return NONE;
		return num_leaf(p, dq == DQ_IN ? DQ_SRC : dq == DQ_OUT ? DQ_DST : DQ_EITHER,
				STORE_COL_IN_IF, STORE_COL_OUT_IF, C_EQ, v, UINT32_MAX);
	case F_AS:
		if (list_follows(p)) {
			advance(p);
			return num_list(p, dq, STORE_COL_SRC_AS, STORE_COL_DST_AS, UINT32_MAX,
					"an AS number");
		}
		cmp = take_cmp(p);
		if (take_num(p, UINT32_MAX, "an AS number", &v) < 0)
			return NONE;
		return num_leaf(p, dq, STORE_COL_SRC_AS, STORE_COL_DST_AS, cmp, v, UINT32_MAX);
	case F_VLAN:
		if (take_num(p, 65535, "a VLAN id", &v) < 0)
			return NONE;
		return num_leaf(p, DQ_NONE, STORE_COL_VLAN, 0xff, C_EQ, v, 65535);
	case F_MASK:
		if (take_num(p, 255, "a prefix mask length", &v) < 0)
			return NONE;
		return num_leaf(p, dq, STORE_COL_SRC_MASK, STORE_COL_DST_MASK, C_EQ, v, 255);
	case F_PACKETS:
	case F_BYTES:
		cmp = take_cmp(p);
		if (take_num(p, UINT64_MAX, f == F_PACKETS ? "a packet count" : "a byte count", &v) < 0)
			return NONE;
		return num_leaf(p, DQ_NONE, f == F_PACKETS ? STORE_COL_PACKETS : STORE_COL_BYTES,
				0xff, cmp, v, UINT64_MAX);
	case F_FLOWS:
		/* every stored record is one flow */
		cmp = take_cmp(p);
		if (take_num(p, UINT64_MAX, "a flow count", &v) < 0)
			return NONE;
		return tnode(p, cmp_range(cmp, v, UINT64_MAX, &lo, &hi) && lo <= 1 && 1 <= hi
			     ? N_TRUE : N_FALSE);
	case F_PPS:
	case F_BPS:
	case F_BPP:
	case F_DURATION:
		cmp = take_cmp(p);
		if (take_num(p, UINT64_MAX, f == F_DURATION ? "a duration in ms" : "a rate", &v) < 0)
			return NONE;
		return derived_leaf(p, f == F_PPS ? D_PPS : f == F_BPS ? D_BPS :
				    f == F_BPP ? D_BPP : D_DUR, cmp, v);
	case F_ICMPTYPE:
	case F_ICMPCODE:
		/* type and code travel in the destination port: type << 8 | code */
		if (take_num(p, 255, f == F_ICMPTYPE ? "an ICMP type" : "an ICMP code", &v) < 0)
			return NONE;
		if ((li = leaf_new(p, f == F_ICMPTYPE ? LK_RANGE : LK_MASK)) == NONE)
			return NONE;
		p->f->leaves[li].col_a = STORE_COL_DPORT;
		p->f->leaves[li].a = f == F_ICMPTYPE ? v << 8 : 0xff;
		p->f->leaves[li].b = f == F_ICMPTYPE ? (v << 8) | 0xff : v;
		x = tleaf(p, li, 0);
		return tnode2(p, N_AND, icmp_any(p), x);
	case F_NEXTIP:
	case F_ROUTERIP: {
		uint8_t col = f == F_NEXTIP ? STORE_COL_NEXTHOP : STORE_COL_EXPORTER;
		if (list_follows(p)) {
			advance(p);
			return addr_list(p, DQ_SRC, col, 0xff, 0);
		}
		if (!(fam = take_addr(p, a)))
			return NONE;
		prefix_mask(fam, fam == 4 ? 32 : 128, m);
		return addr_leaf(p, DQ_SRC, col, 0xff, a, m, fam, 0);
	}
	case F_DOMAIN:
		if (take_num(p, UINT32_MAX, "an observation domain id", &v) < 0)
			return NONE;
		return num_leaf(p, DQ_NONE, STORE_COL_DOMAIN_ID, 0xff, C_EQ, v, UINT32_MAX);
	}
	return NONE;
}

static const char *dq_expect(int dq)
{
	switch (dq) {
	case DQ_IN: return "'if', 'packets' or 'bytes' after 'in'";
	case DQ_OUT: return "'if' after 'out'";
	default: return "host, ip, net, port, as, mask, tos or vlan after the direction";
	}
}

static uint32_t parse_primitive(struct pc *p, int neg)
{
	const struct tok *qt = cur(p), *t;
	int dq = DQ_NONE, f = -1;

	/* direction: src, dst, src or dst, src and dst (either order), in, out */
	if (is_word(p, qt, "src") || is_word(p, qt, "dst")) {
		int src = is_word(p, qt, "src");
		const struct tok *c = peek(p, 1), *o = peek(p, 2);
		dq = src ? DQ_SRC : DQ_DST;
		advance(p);
		if ((is_word(p, c, "or") || is_word(p, c, "and") || c->type == T_OROR ||
		     c->type == T_ANDAND) && is_word(p, o, src ? "dst" : "src")) {
			dq = is_word(p, c, "or") || c->type == T_OROR ? DQ_EITHER : DQ_BOTH;
			advance(p);
			advance(p);
		}
	} else if (is_word(p, qt, "in") || is_word(p, qt, "out")) {
		dq = is_word(p, qt, "in") ? DQ_IN : DQ_OUT;
		advance(p);
	}
	t = cur(p);
	for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
		if (is_word(p, t, fields[i].kw)) {
			f = i;
			break;
		}
	}
	if (f < 0) {
		for (size_t i = 0; i < sizeof(unsupported) / sizeof(unsupported[0]); i++) {
			if (is_word(p, t, unsupported[i])) {
				fail(p, t->pos, "'%.*s' at position %u is an nfdump filter tapflow does "
				     "not support: its flow records have no such field", (int)t->len,
				     p->s + t->pos, t->pos);
				return NONE;
			}
		}
		unexpected(p, t, dq == DQ_NONE ? "a filter primitive (host, net, port, proto, ...)"
			   : dq_expect(dq));
		return NONE;
	}
	f = fields[f].f;
	{
		int allowed = 0;
		for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
			if (fields[i].f == f && (fields[i].dqs >> dq & 1))
				allowed = 1;
		if (!allowed) {
			if (!dq_unsupported(p, qt, dq, f))
				unexpected(p, t, dq_expect(dq));
			return NONE;
		}
	}
	advance(p);
	/* multi-word keywords */
	if (f == F_NEXTIP || f == F_ROUTERIP) {
		if (f == F_NEXTIP && is_word(p, cur(p), "as")) {
			fail(p, t->pos, "'next as' at position %u is not supported: tapflow records "
			     "carry no BGP adjacent AS", t->pos);
			return NONE;
		}
		if (!is_word(p, cur(p), "ip")) {
			unexpected(p, cur(p), f == F_NEXTIP ? "'ip' after 'next'" : "'ip' after 'router'");
			return NONE;
		}
		advance(p);
	} else if (f == F_DOMAIN) {
		if (is_word(p, cur(p), "point")) {
			fail(p, cur(p)->pos, "'observation point' at position %u is not supported: "
			     "tapflow records have no such field", cur(p)->pos);
			return NONE;
		}
		if (!is_word(p, cur(p), "domain")) {
			unexpected(p, cur(p), "'domain' after 'observation'");
			return NONE;
		}
		advance(p);
		if (!is_word(p, cur(p), "id")) {
			unexpected(p, cur(p), "'id' after 'observation domain'");
			return NONE;
		}
		advance(p);
	}
	if (f == F_ANY)
		return tnode(p, N_TRUE);
	if (f == F_IPV4 || f == F_IPV6) {
		uint32_t li = leaf_new(p, LK_RANGE);
		if (li == NONE)
			return NONE;
		p->f->leaves[li].col_a = STORE_COL_IPVER;
		p->f->leaves[li].a = 6;
		p->f->leaves[li].b = 6;
		return tleaf(p, li, f == F_IPV4);
	}
	/* "port not 53": tapflow's shorthand for "not port 53" */
	if (is_word(p, cur(p), "not") || cur(p)->type == T_BANG) {
		advance(p);
		return tnot(p, parse_value(p, f, dq, !neg));
	}
	return parse_value(p, f, dq, neg);
}

static uint32_t parse_or(struct pc *p, int neg);

static int nest(struct pc *p, const struct tok *t)
{
	if (++p->depth > FILT_MAX_NEST) {
		fail(p, t->pos, "filter nested too deeply at position %u: at most %d levels of "
		     "parentheses and 'not'", t->pos, FILT_MAX_NEST);
		return -1;
	}
	return 0;
}

static uint32_t parse_unary(struct pc *p, int neg)
{
	const struct tok *t = cur(p);
	uint32_t x;

	if (is_word(p, t, "not") || t->type == T_BANG) {
		if (nest(p, t) < 0)
			return NONE;
		advance(p);
		x = tnot(p, parse_unary(p, !neg));
		p->depth--;
		return x;
	}
	if (t->type == T_LPAREN) {
		uint32_t open = t->pos;
		if (nest(p, t) < 0)
			return NONE;
		advance(p);
		x = parse_or(p, neg);
		if (x == NONE)
			return NONE;
		if (cur(p)->type != T_RPAREN) {
			char exp[96];
			snprintf(exp, sizeof(exp), "'and', 'or' or ')' to close '(' at position %u", open);
			unexpected(p, cur(p), exp);
			return NONE;
		}
		advance(p);
		p->depth--;
		return x;
	}
	return parse_primitive(p, neg);
}

static int is_and(const struct pc *p)
{
	return is_word(p, cur(p), "and") || cur(p)->type == T_ANDAND;
}

static int is_or(const struct pc *p)
{
	return is_word(p, cur(p), "or") || cur(p)->type == T_OROR;
}

static uint32_t parse_and(struct pc *p, int neg)
{
	uint32_t x = parse_unary(p, neg), y, all = NONE;

	while (x != NONE && is_and(p)) {
		advance(p);
		if ((y = parse_unary(p, neg)) == NONE)
			return NONE;
		if (all == NONE) {
			if ((all = tnode(p, N_AND)) == NONE)
				return NONE;
			node_add(&p->f->tree, all, x);
		}
		node_add(&p->f->tree, all, y);
	}
	return all == NONE ? x : all;
}

static uint32_t parse_or(struct pc *p, int neg)
{
	uint32_t x = parse_and(p, neg), y, any = NONE;

	while (x != NONE && is_or(p)) {
		advance(p);
		if ((y = parse_and(p, neg)) == NONE)
			return NONE;
		if (any == NONE) {
			if ((any = tnode(p, N_OR)) == NONE)
				return NONE;
			node_add(&p->f->tree, any, x);
		}
		node_add(&p->f->tree, any, y);
	}
	return any == NONE ? x : any;
}

static uint32_t parse_top(struct pc *p)
{
	uint32_t x;

	if (cur(p)->type == T_END)
		return tnode(p, N_TRUE);
	x = parse_or(p, 0);
	if (x == NONE)
		return NONE;
	if (cur(p)->type == T_RPAREN) {
		fail(p, cur(p)->pos, "unexpected ')' at position %u: no '(' to close", cur(p)->pos);
		return NONE;
	}
	if (cur(p)->type != T_END) {
		unexpected(p, cur(p), "'and', 'or' or end of filter");
		return NONE;
	}
	return x;
}

/* ---- normal form ---- */

/* Copies tree node x into f->norm with NOTs pushed into the leaves (De Morgan),
 * constants folded and nested AND/OR flattened. Returns the new node or NONE. */
static uint32_t normalise(struct pc *p, uint32_t x, int negate)
{
	struct filt *f = p->f;
	const struct node n = f->tree.v[x];
	uint32_t y, c;
	uint8_t type, unit, zero;

	switch (n.type) {
	case N_TRUE:
	case N_FALSE:
		return node_new(p, &f->norm, (n.type == N_TRUE) != negate ? N_TRUE : N_FALSE);
	case N_LEAF:
		if ((y = node_new(p, &f->norm, N_LEAF)) == NONE)
			return NONE;
		f->norm.v[y].leaf = n.leaf;
		f->norm.v[y].neg = (uint8_t)(n.neg ^ (negate != 0));
		return y;
	case N_NOT:
		return normalise(p, n.first, !negate);
	}
	type = (n.type == N_AND) != (negate != 0) ? N_AND : N_OR;
	unit = type == N_AND ? N_TRUE : N_FALSE;        /* drops out */
	zero = type == N_AND ? N_FALSE : N_TRUE;        /* decides */
	if ((y = node_new(p, &f->norm, type)) == NONE)
		return NONE;
	for (c = n.first; c != NONE; c = f->tree.v[c].next) {
		uint32_t z = normalise(p, c, negate);
		if (z == NONE)
			return NONE;
		if (f->norm.v[z].type == unit)
			continue;
		if (f->norm.v[z].type == zero)
			return z;
		if (f->norm.v[z].type == type) {
			for (uint32_t g = f->norm.v[z].first, nx; g != NONE; g = nx) {
				nx = f->norm.v[g].next;
				node_add(&f->norm, y, g);
			}
		} else {
			node_add(&f->norm, y, z);
		}
	}
	if (f->norm.v[y].first == NONE)
		return node_new(p, &f->norm, unit);
	if (f->norm.v[y].first == f->norm.v[y].last)
		return f->norm.v[y].first;
	return y;
}

/* ---- program ---- */

struct cc {
	struct pc *p;
	struct op *ops;
	uint32_t nops, cap;
	uint16_t freel[1024];
	uint32_t nfree;
	uint32_t nregs;
};

#define FILT_MAX_REGS 1024

static uint16_t ralloc(struct cc *c)
{
	if (c->nfree)
		return c->freel[--c->nfree];
	if (c->nregs >= FILT_MAX_REGS) {
		fail(c->p, 0, "filter too complex");
		return 0;
	}
	return (uint16_t)c->nregs++;
}

static void rfree(struct cc *c, uint16_t r)
{
	if (r && c->nfree < FILT_MAX_REGS)
		c->freel[c->nfree++] = r;
}

static void emit(struct cc *c, uint8_t code, uint8_t neg, uint16_t in, uint16_t out, uint16_t aux,
		 uint32_t leaf)
{
	if (c->nops == c->cap) {
		uint32_t cap = c->cap ? c->cap * 2 : 16;
		struct op *v = realloc(c->ops, cap * sizeof(*v));
		if (!v) {
			fail(c->p, 0, "out of memory");
			return;
		}
		c->ops = v;
		c->cap = cap;
	}
	c->ops[c->nops++] = (struct op){ .code = code, .neg = neg, .in = in, .out = out,
					 .aux = aux, .leaf = leaf };
}

/* Emits ops computing node x over the records in register in; returns the register
 * holding the result. consume: the caller gives in up (it may be reused or freed). */
static uint16_t compile(struct cc *c, uint32_t x, uint16_t in, int consume)
{
	const struct nodes *ns = &c->p->f->norm;
	const struct node n = ns->v[x];
	uint16_t out, acc, rest, r;
	uint32_t ch;

	if (c->p->failed)
		return 0;
	if (in == 0)
		consume = 0;
	switch (n.type) {
	case N_LEAF:
		out = consume ? in : ralloc(c);
		emit(c, OP_LEAF, n.neg, in, out, 0, n.leaf);
		return out;
	case N_AND:
		out = in;
		for (ch = n.first; ch != NONE; ch = ns->v[ch].next) {
			out = compile(c, ch, out, consume);
			consume = 1;
		}
		return out;
	case N_OR:
		/* each child sees only what no earlier child matched */
		acc = compile(c, n.first, in, 0);
		rest = consume ? in : ralloc(c);
		emit(c, OP_DIFF, 0, in, rest, acc, 0);
		for (ch = ns->v[n.first].next; ch != NONE; ch = ns->v[ch].next) {
			int last = ns->v[ch].next == NONE;
			r = compile(c, ch, rest, last);
			emit(c, OP_UNION, 0, r, acc, 0, 0);
			if (!last)
				emit(c, OP_DIFF, 0, rest, rest, r, 0);
			rfree(c, r);
		}
		return acc;
	}
	return in; /* not reached: constants are folded away below the root */
}

/* ---- column kernels ----
 * The loops below are written once, with the column width, the test kind, the
 * one/either/both mode and dense/sparse input as parameters, and force-inlined from
 * switches on those parameters, so each combination compiles to its own tight loop. */

static inline __attribute__((always_inline)) uint64_t
ld(const void *p, int w, uint32_t i)
{
	switch (w) {
	case 1: return ((const uint8_t *)p)[i];
	case 2: return ((const uint16_t *)p)[i];
	case 4: return ((const uint32_t *)p)[i];
	default: return ((const uint64_t *)p)[i];
	}
}

/* RANGE: a = lo, b = hi - lo; MASK: a = mask, b = value. */
static inline __attribute__((always_inline)) unsigned
num_hit(int kind, uint64_t x, uint64_t a, uint64_t b)
{
	return kind == LK_RANGE ? x - a <= b : (x & a) == b;
}

/* The selection loop: every record of in (all when dense) is written to out, and out's
 * end advances only past the ones that pass, so there is no branch on the data. */
static inline __attribute__((always_inline)) uint32_t
num_loop(int kind, int w, int mode, int dense, const void *ca, const void *cb,
	 uint64_t a, uint64_t b, unsigned neg, const uint32_t *in, uint32_t m,
	 uint32_t *out)
{
	uint32_t k = 0;

	for (uint32_t j = 0; j < m; j++) {
		uint32_t i = dense ? j : in[j];
		unsigned h = num_hit(kind, ld(ca, w, i), a, b);
		if (mode == M_ANY)
			h |= num_hit(kind, ld(cb, w, i), a, b);
		else if (mode == M_ALL)
			h &= num_hit(kind, ld(cb, w, i), a, b);
		out[k] = i;
		k += h ^ neg;
	}
	return k;
}

static inline __attribute__((always_inline)) uint32_t
num_w(int kind, int mode, int dense, int w, const void *ca, const void *cb,
      uint64_t a, uint64_t b, unsigned neg, const uint32_t *in, uint32_t m,
      uint32_t *out)
{
	switch (w) {
	case 1: return num_loop(kind, 1, mode, dense, ca, cb, a, b, neg, in, m, out);
	case 2: return num_loop(kind, 2, mode, dense, ca, cb, a, b, neg, in, m, out);
	case 4: return num_loop(kind, 4, mode, dense, ca, cb, a, b, neg, in, m, out);
	default: return num_loop(kind, 8, mode, dense, ca, cb, a, b, neg, in, m, out);
	}
}

static inline __attribute__((always_inline)) uint32_t
num_m(int kind, int dense, int mode, int w, const void *ca, const void *cb,
      uint64_t a, uint64_t b, unsigned neg, const uint32_t *in, uint32_t m,
      uint32_t *out)
{
	switch (mode) {
	case M_ONE: return num_w(kind, M_ONE, dense, w, ca, cb, a, b, neg, in, m, out);
	case M_ANY: return num_w(kind, M_ANY, dense, w, ca, cb, a, b, neg, in, m, out);
	default: return num_w(kind, M_ALL, dense, w, ca, cb, a, b, neg, in, m, out);
	}
}

static uint32_t run_num(const struct leaf *l, unsigned neg, const struct store_cols *c,
			const uint32_t *in, uint32_t m, uint32_t *out)
{
	const void *ca = col_ptr(c, l->col_a);
	const void *cb = l->mode == M_ONE ? ca : col_ptr(c, l->col_b);
	int w = col_width(l->col_a);
	uint64_t a = l->a, b = l->kind == LK_RANGE ? l->b - l->a : l->b;

	if (!in) {
		if (l->kind == LK_RANGE)
			return num_m(LK_RANGE, 1, l->mode, w, ca, cb, a, b, neg, in, m, out);
		return num_m(LK_MASK, 1, l->mode, w, ca, cb, a, b, neg, in, m, out);
	}
	if (l->kind == LK_RANGE)
		return num_m(LK_RANGE, 0, l->mode, w, ca, cb, a, b, neg, in, m, out);
	return num_m(LK_MASK, 0, l->mode, w, ca, cb, a, b, neg, in, m, out);
}

/* Addresses compare as two native 64-bit words (memcpy: any alignment), mask and value
 * converted the same way, so byte order does not matter. */
static inline __attribute__((always_inline)) unsigned
a_hit(const uint8_t (*col)[16], uint32_t i, const uint64_t mv[4])
{
	uint64_t w0, w1;

	memcpy(&w0, col[i], 8);
	memcpy(&w1, col[i] + 8, 8);
	return (((w0 & mv[0]) ^ mv[2]) | ((w1 & mv[1]) ^ mv[3])) == 0;
}

static inline __attribute__((always_inline)) uint32_t
addr_loop(int mode, int dense, int req, const uint8_t (*ca)[16],
	  const uint8_t (*cb)[16], const uint8_t *ipv, unsigned want6,
	  const uint64_t mv[4], unsigned neg, const uint32_t *in, uint32_t m,
	  uint32_t *out)
{
	uint32_t k = 0;

	for (uint32_t j = 0; j < m; j++) {
		uint32_t i = dense ? j : in[j];
		unsigned h = a_hit(ca, i, mv);
		if (mode == M_ANY)
			h |= a_hit(cb, i, mv);
		else if (mode == M_ALL)
			h &= a_hit(cb, i, mv);
		if (req)
			h &= (ipv[i] == 6) == want6;
		out[k] = i;
		k += h ^ neg;
	}
	return k;
}

static inline __attribute__((always_inline)) uint32_t
addr_r(int mode, int dense, int req, const uint8_t (*ca)[16],
       const uint8_t (*cb)[16], const uint8_t *ipv, unsigned want6,
       const uint64_t mv[4], unsigned neg, const uint32_t *in, uint32_t m,
       uint32_t *out)
{
	if (req)
		return addr_loop(mode, dense, 1, ca, cb, ipv, want6, mv, neg, in, m, out);
	return addr_loop(mode, dense, 0, ca, cb, ipv, want6, mv, neg, in, m, out);
}

static inline __attribute__((always_inline)) uint32_t
addr_m(int dense, int mode, int req, const uint8_t (*ca)[16],
       const uint8_t (*cb)[16], const uint8_t *ipv, unsigned want6,
       const uint64_t mv[4], unsigned neg, const uint32_t *in, uint32_t m,
       uint32_t *out)
{
	switch (mode) {
	case M_ONE: return addr_r(M_ONE, dense, req, ca, cb, ipv, want6, mv, neg, in, m, out);
	case M_ANY: return addr_r(M_ANY, dense, req, ca, cb, ipv, want6, mv, neg, in, m, out);
	default: return addr_r(M_ALL, dense, req, ca, cb, ipv, want6, mv, neg, in, m, out);
	}
}

static uint32_t run_addr(const struct leaf *l, unsigned neg, const struct store_cols *c,
			 const uint32_t *in, uint32_t m, uint32_t *out)
{
	const uint8_t (*ca)[16] = col_ptr(c, l->col_a);
	const uint8_t (*cb)[16] = l->mode == M_ONE ? ca : col_ptr(c, l->col_b);
	uint64_t mv[4];
	int req = l->ipreq != IPV_NONE;
	unsigned want6 = l->ipreq == IPV_6;

	memcpy(&mv[0], l->am, 8);
	memcpy(&mv[1], l->am + 8, 8);
	memcpy(&mv[2], l->av, 8);
	memcpy(&mv[3], l->av + 8, 8);
	if (!in)
		return addr_m(1, l->mode, req, ca, cb, c->ipver, want6, mv, neg, in, m, out);
	return addr_m(0, l->mode, req, ca, cb, c->ipver, want6, mv, neg, in, m, out);
}

static inline __attribute__((always_inline)) uint64_t
derive_at(int kind, const struct store_cols *c, uint32_t i)
{
	switch (kind) {
	case D_DUR: return derive(D_DUR, c->first_ms[i], c->last_ms[i], 0, 0);
	case D_PPS: return derive(D_PPS, c->first_ms[i], c->last_ms[i], c->packets[i], 0);
	case D_BPS: return derive(D_BPS, c->first_ms[i], c->last_ms[i], 0, c->bytes[i]);
	default: return derive(D_BPP, 0, 0, c->packets[i], c->bytes[i]);
	}
}

static inline __attribute__((always_inline)) uint32_t
der_loop(int kind, int dense, const struct store_cols *c, uint64_t lo,
	 uint64_t span, unsigned neg, const uint32_t *in, uint32_t m, uint32_t *out)
{
	uint32_t k = 0;

	for (uint32_t j = 0; j < m; j++) {
		uint32_t i = dense ? j : in[j];
		unsigned h = derive_at(kind, c, i) - lo <= span;
		out[k] = i;
		k += h ^ neg;
	}
	return k;
}

static inline __attribute__((always_inline)) uint32_t
der_d(int dense, int kind, const struct store_cols *c, uint64_t lo, uint64_t span,
      unsigned neg, const uint32_t *in, uint32_t m, uint32_t *out)
{
	switch (kind) {
	case D_DUR: return der_loop(D_DUR, dense, c, lo, span, neg, in, m, out);
	case D_PPS: return der_loop(D_PPS, dense, c, lo, span, neg, in, m, out);
	case D_BPS: return der_loop(D_BPS, dense, c, lo, span, neg, in, m, out);
	default: return der_loop(D_BPP, dense, c, lo, span, neg, in, m, out);
	}
}

static uint32_t run_derived(const struct leaf *l, unsigned neg, const struct store_cols *c,
			    const uint32_t *in, uint32_t m, uint32_t *out)
{
	if (!in)
		return der_d(1, l->derived, c, l->a, l->b - l->a, neg, in, m, out);
	return der_d(0, l->derived, c, l->a, l->b - l->a, neg, in, m, out);
}

static int u32_has(const struct u32set *s, uint32_t x)
{
	uint32_t lo = 0, hi = s->n;

	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		if (s->v[mid] < x)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < s->n && s->v[lo] == x;
}

static int aset_has(const struct aset *s, const uint8_t *a, int check, int is6)
{
	uint64_t hi = ld_be64(a), lo = ld_be64(a + 8);

	for (uint32_t g = 0; g < s->ngroups; g++) {
		const struct agroup *gr = &s->g[g];
		uint64_t kh = hi & gr->m.hi, kl = lo & gr->m.lo;
		uint32_t l = 0, h = gr->n;
		if (check && gr->v6 != is6)
			continue;
		while (l < h) {
			uint32_t mid = l + (h - l) / 2;
			const struct a128 *v = &gr->v[mid];
			if (v->hi == kh && v->lo == kl)
				return 1;
			if (v->hi < kh || (v->hi == kh && v->lo < kl))
				l = mid + 1;
			else
				h = mid;
		}
	}
	return 0;
}

/* Set leaves: a lookup per record, so one plain loop serves dense and sparse. */
static uint32_t run_set(const struct leaf *l, unsigned neg, const struct store_cols *c,
			const uint32_t *in, uint32_t m, uint32_t *out)
{
	const void *ca = col_ptr(c, l->col_a);
	const void *cb = l->mode == M_ONE ? ca : col_ptr(c, l->col_b);
	uint32_t k = 0;

	for (uint32_t j = 0; j < m; j++) {
		uint32_t i = in ? in[j] : j;
		unsigned ha, hb;
		if (l->kind == LK_U16SET) {
			uint16_t x = ((const uint16_t *)ca)[i], y = ((const uint16_t *)cb)[i];
			ha = (unsigned)(l->bits[x >> 6] >> (x & 63)) & 1;
			hb = (unsigned)(l->bits[y >> 6] >> (y & 63)) & 1;
		} else if (l->kind == LK_U32SET) {
			ha = (unsigned)u32_has(l->u32, ((const uint32_t *)ca)[i]);
			hb = l->mode == M_ONE ? ha : (unsigned)u32_has(l->u32, ((const uint32_t *)cb)[i]);
		} else {
			int check = l->ipreq != IPV_NONE, is6 = check && c->ipver[i] == 6;
			ha = (unsigned)aset_has(l->as, ((const uint8_t (*)[16])ca)[i], check, is6);
			hb = l->mode == M_ONE ? ha :
			     (unsigned)aset_has(l->as, ((const uint8_t (*)[16])cb)[i], check, is6);
		}
		unsigned h = l->mode == M_ONE ? ha : l->mode == M_ANY ? (ha | hb) : (ha & hb);
		out[k] = i;
		k += h ^ neg;
	}
	return k;
}

static uint32_t leaf_columns(const struct leaf *l);

static uint32_t run_leaf(const struct leaf *l, unsigned neg, const struct store_cols *c,
			 const uint32_t *in, uint32_t m, uint32_t *out);

/* Where a record's index into a block dictionary comes from (sel_hit). */
enum { IX_U32, IX_U64, IX_PACKED };

static inline __attribute__((always_inline)) uint64_t rec_index(int kind, const void *ix,
								  uint32_t i)
{
	switch (kind) {
	case IX_U32: return ((const uint32_t *)ix)[i];
	case IX_U64: return ((const uint64_t *)ix)[i];
	default: return store_packed_get(ix, i);
	}
}

/* The records of in (NULL: 0 .. m-1) whose index (kind, a constant, from ix) has hit
 * set, without a branch on it. */
static inline __attribute__((always_inline)) uint32_t sel_hit(const uint8_t *hit, int kind,
							       const void *ix,
							       const uint32_t *in, uint32_t m,
							       uint32_t *out)
{
	uint32_t k = 0;

	if (!in) {
		for (uint32_t i = 0; i < m; i++) {
			out[k] = i;
			k += hit[rec_index(kind, ix, i)];
		}
	} else {
		for (uint32_t j = 0; j < m; j++) {
			uint32_t i = in[j];
			out[k] = i;
			k += hit[rec_index(kind, ix, i)];
		}
	}
	return k;
}

/* The set bits of each byte value: their positions (32 bits each: eight come out in two
 * vector adds), and how many. */
static uint32_t bits8[256][8];
static uint8_t nbits8[256];

__attribute__((constructor)) static void bits8_init(void)
{
	for (unsigned x = 0; x < 256; x++)
		for (unsigned b = 0; b < 8; b++)
			if (x >> b & 1)
				bits8[x][nbits8[x]++] = b;
}

/* The records of in (NULL: 0 .. m-1) whose packed tuple index v has hit set. One bit a
 * record (two tuples in the block) with in NULL: the records come eight at a time,
 * from the set (or clear) bits of each byte. */
static uint32_t run_tuple_packed(const struct store_packed *v, const uint8_t *hit,
				 const uint32_t *in, uint32_t m, uint32_t *out)
{
	uint32_t k = 0;

	if (!in && v->w <= 1) {
		const unsigned h0 = hit[v->base], h1 = v->w ? hit[v->base + 1] : h0;
		const uint8_t flip = h1 ? 0 : 0xff;
		uint32_t b = 0;
		if (h0 == h1) {
			for (uint32_t i = 0; h0 && i < m; i++)
				out[i] = i;
			return h0 ? m : 0;
		}
		/* eight entries written a byte, k + 8 <= b + 8 <= m: within out */
		for (; b + 8 <= m; b += 8) {
			const uint8_t x = v->p[b / 8] ^ flip;
			uint32_t t[8];
			memcpy(t, bits8[x], sizeof(t));
			for (unsigned q = 0; q < 8; q++)
				t[q] += b;
			memcpy(out + k, t, sizeof(t));
			k += nbits8[x];
		}
		for (; b < m; b++) {
			out[k] = b;
			k += (v->p[b / 8] >> (b % 8) & 1) ^ (flip & 1);
		}
		return k;
	}
	return sel_hit(hit, IX_PACKED, v, in, m, out);
}

/* A leaf on tuple members handed out as the block's tuple dictionary: evaluated once an
 * entry, then looked up a record by its index. */
static uint32_t run_tuple(const struct leaf *l, unsigned neg, const struct store_cols *c,
			  const uint32_t *in, uint32_t m, uint32_t *out)
{
	const struct store_cols *d = c->tdict;
	uint32_t dsel[STORE_TUPLE_MAX], nd = d->n;
	uint8_t hit[STORE_TUPLE_MAX];

	uint32_t nt = nd;
	memset(hit, (int)neg, nt);
	nd = run_leaf(l, 0, d, NULL, nt, dsel);
	for (uint32_t j = 0; j < nd; j++)
		hit[dsel[j]] = (uint8_t)!neg;
	if (nd == (neg ? nt : 0))
		return 0;                       /* no tuple of the block matches */
	if (nd == (neg ? 0 : nt)) {             /* every one does */
		for (uint32_t j = 0; j < m; j++)
			out[j] = in ? in[j] : j;
		return m;
	}
	if (!c->tidx)
		return run_tuple_packed(&c->tpk, hit, in, m, out);
	return sel_hit(hit, IX_U32, c->tidx, in, m, out);
}

/* c with port column k as values (store_cols_port_values) instead of codes. */
static void port_values_view(struct store_cols *v, const struct store_cols *c, int k)
{
	const uint32_t bit = STORE_COLBIT(k ? STORE_COL_DPORT : STORE_COL_SPORT);

	*v = *c;
	if (k)
		v->dport = (uint16_t *)store_cols_port_values(c, k);
	else
		v->sport = (uint16_t *)store_cols_port_values(c, k);
	v->pcodes &= ~bit;
	v->mask |= bit;
}

/* A leaf on one port column handed out as codes: evaluated once a frequent value and
 * over the exceptions; where the exceptions all match or all fail (a port filter on
 * well-known ports, which are frequent), a record's result is then its code's. Mixed
 * exceptions need each record's value: the column is turned into values. */
static uint32_t run_pcode(const struct leaf *l, unsigned neg, const struct store_cols *c,
			  const uint32_t *in, uint32_t m, uint32_t *out)
{
	const int k = l->col_a == STORE_COL_DPORT;
	uint32_t nf = c->pnf[k], ne = c->pne[k];
	uint32_t dsel[STORE_PDICT_MAX + 1], nd, eh = 0;
	uint8_t hit[STORE_PDICT_MAX + 1];
	struct store_cols d;

	memset(&d, 0, sizeof(d));
	d.mask = STORE_COLBIT(l->col_a);
	/* a range clear of the exceptions' range, or around it, decides them all */
	if (l->kind == LK_RANGE && (l->b < c->pemin[k] || l->a > c->pemax[k]))
		ne = 0;
	else if (l->kind == LK_RANGE && l->a <= c->pemin[k] && c->pemax[k] <= l->b)
		eh = ne;
	for (uint32_t off = 0; off < ne && eh < ne; off += STORE_PDICT_MAX) {
		d.n = ne - off < STORE_PDICT_MAX ? ne - off : STORE_PDICT_MAX;
		d.sport = d.dport = (uint16_t *)c->pexc[k] + off;
		eh += run_leaf(l, 0, &d, NULL, d.n, dsel);
	}
	if (eh && eh != ne) {
		struct store_cols v;
		port_values_view(&v, c, k);
		return run_leaf(l, neg, &v, in, m, out);
	}
	d.n = nf;
	d.sport = d.dport = (uint16_t *)c->pdict[k];
	nd = run_leaf(l, 0, &d, NULL, nf, dsel);
	memset(hit, (int)neg, nf + 1);
	hit[0] = (uint8_t)((eh != 0) ^ neg);
	for (uint32_t j = 0; j < nd; j++)
		hit[dsel[j] + 1] = (uint8_t)!neg;
	return sel_hit(hit, IX_U64, c->pcode[k], in, m, out);
}

static uint32_t run_leaf(const struct leaf *l, unsigned neg, const struct store_cols *c,
			 const uint32_t *in, uint32_t m, uint32_t *out)
{
	/* filt_tuple_columns() keeps a leaf's columns all in the dictionary or none */
	if (c->tuple && (leaf_columns(l) & c->tuple))
		return run_tuple(l, neg, c, in, m, out);
	/* and filt_port_code_columns() a port code column's leaves on it alone */
	if (c->pcodes && (leaf_columns(l) & c->pcodes))
		return run_pcode(l, neg, c, in, m, out);
	switch (l->kind) {
	case LK_RANGE:
	case LK_MASK:
		return run_num(l, neg, c, in, m, out);
	case LK_ADDR:
		return run_addr(l, neg, c, in, m, out);
	case LK_DERIVED:
		return run_derived(l, neg, c, in, m, out);
	default:
		return run_set(l, neg, c, in, m, out);
	}
}

/* out = a \ b, b a sorted subset of sorted a (a NULL: 0..na-1). out may be a. */
static uint32_t sel_diff(const uint32_t *a, uint32_t na, const uint32_t *b, uint32_t nb,
			 uint32_t *out)
{
	uint32_t k = 0, j = 0;

	for (uint32_t i = 0; i < na; i++) {
		uint32_t x = a ? a[i] : i;
		uint32_t bj = j < nb ? b[j] : UINT32_MAX;
		unsigned skip = bj == x;
		out[k] = x;
		k += !skip;
		j += skip;
	}
	return k;
}

/* acc += b (disjoint, both sorted), merged from the back so it works in place. */
static uint32_t sel_union(uint32_t *acc, uint32_t na, const uint32_t *b, uint32_t nb)
{
	uint32_t i = na, j = nb, k = na + nb;

	while (j > 0) {
		if (i > 0 && acc[i - 1] > b[j - 1])
			acc[--k] = acc[--i];
		else
			acc[--k] = b[--j];
	}
	return na + nb;
}

/* ---- single records ---- */

static int leaf_match(const struct leaf *l, const struct flow_rec *r)
{
	int ha = 0, hb = 0;

	for (int side = 0; side < (l->mode == M_ONE ? 1 : 2); side++) {
		unsigned col = side ? l->col_b : l->col_a;
		int h = 0;
		switch (l->kind) {
		case LK_RANGE: {
			uint64_t x = rec_num(r, col);
			h = l->a <= x && x <= l->b;
			break;
		}
		case LK_MASK:
			h = (rec_num(r, col) & l->a) == l->b;
			break;
		case LK_ADDR: {
			const uint8_t *x = rec_addr(r, col);
			h = 1;
			for (int i = 0; i < 16; i++)
				if ((x[i] & l->am[i]) != l->av[i])
					h = 0;
			if (l->ipreq == IPV_4 && r->ipver == 6)
				h = 0;
			if (l->ipreq == IPV_6 && r->ipver != 6)
				h = 0;
			break;
		}
		case LK_ADDRSET: {
			const uint8_t *x = rec_addr(r, col);
			for (uint32_t e = 0; e < l->as->nlist && !h; e++) {
				const struct aprefix *pf = &l->as->list[e];
				int ok = l->ipreq == IPV_NONE || pf->v6 == (r->ipver == 6);
				for (int i = 0; i < 16 && ok; i++)
					if ((x[i] & pf->m[i]) != pf->v[i])
						ok = 0;
				h = ok;
			}
			break;
		}
		case LK_U16SET: {
			uint64_t x = rec_num(r, col);
			h = (int)(l->bits[x >> 6] >> (x & 63)) & 1;
			break;
		}
		case LK_U32SET: {
			uint64_t x = rec_num(r, col);
			for (uint32_t e = 0; e < l->u32->n && !h; e++)
				h = l->u32->v[e] == x;
			break;
		}
		case LK_DERIVED: {
			uint64_t x = derive(l->derived, r->first_ms, r->last_ms, r->packets, r->bytes);
			h = l->a <= x && x <= l->b;
			break;
		}
		}
		if (side)
			hb = h;
		else
			ha = h;
	}
	if (l->mode == M_ANY)
		return ha || hb;
	if (l->mode == M_ALL)
		return ha && hb;
	return ha;
}

static int match_tree(const struct filt *f, uint32_t x, const struct flow_rec *r)
{
	const struct node *n = &f->tree.v[x];
	uint32_t c;

	switch (n->type) {
	case N_TRUE:
		return 1;
	case N_FALSE:
		return 0;
	case N_LEAF:
		return leaf_match(&f->leaves[n->leaf], r) != n->neg;
	case N_NOT:
		return !match_tree(f, n->first, r);
	case N_AND:
		for (c = n->first; c != NONE; c = f->tree.v[c].next)
			if (!match_tree(f, c, r))
				return 0;
		return 1;
	default:
		for (c = n->first; c != NONE; c = f->tree.v[c].next)
			if (match_tree(f, c, r))
				return 1;
		return 0;
	}
}

/* ---- zone maps ---- */

/* Whether some record of the zone may pass (*mt) and whether some may fail (*mf) the
 * plain test of one column; 1 where the zone cannot tell. */
static void zone_col(const struct leaf *l, unsigned col, const struct store_zone *z,
		     int *mt, int *mf)
{
	uint64_t lo = l->a, hi = l->b, min, max;

	*mt = *mf = 1;
	if (l->kind == LK_U16SET && (col == STORE_COL_SPORT || col == STORE_COL_DPORT)) {
		min = col == STORE_COL_SPORT ? z->sport_min : z->dport_min;
		max = col == STORE_COL_SPORT ? z->sport_max : z->dport_max;
		*mt = 0;
		for (uint64_t v = min; v <= max && !*mt; v++)
			*mt = (int)(l->bits[v >> 6] >> (v & 63)) & 1;
		return;
	}
	if (l->kind != LK_RANGE)
		return;
	switch (col) {
	case STORE_COL_SPORT:
	case STORE_COL_DPORT:
		min = col == STORE_COL_SPORT ? z->sport_min : z->dport_min;
		max = col == STORE_COL_SPORT ? z->sport_max : z->dport_max;
		*mt = !(hi < min || lo > max);
		*mf = !(lo <= min && max <= hi);
		break;
	case STORE_COL_PROTO:
		*mt = *mf = 0;
		for (unsigned v = 0; v < 256; v++) {
			if (z->proto[v >> 3] >> (v & 7) & 1) {
				if (lo <= v && v <= hi)
					*mt = 1;
				else
					*mf = 1;
			}
		}
		break;
	case STORE_COL_IPVER:
		/* bit 1: some record has ipver 6; bit 0: some record has another */
		*mt = ((z->ipver & 2) && lo <= 6 && 6 <= hi) || ((z->ipver & 1) && !(lo == 6 && hi == 6));
		*mf = (z->ipver & 1) || ((z->ipver & 2) && !(lo <= 6 && 6 <= hi));
		break;
	case STORE_COL_PACKETS:
	case STORE_COL_BYTES:
		/* every record's count lies in [0, the block's sum]; needs sums that saturate
		 * at UINT64_MAX instead of wrapping (bogus 2^64 counters) */
		max = col == STORE_COL_PACKETS ? z->packets : z->bytes;
		*mt = lo <= max;
		*mf = !(lo == 0 && hi >= max);
		break;
	}
}

static void zone_leaf(const struct leaf *l, const struct store_zone *z, int *mt, int *mf)
{
	int ta, fa, tb, fb;

	*mt = *mf = 1;
	switch (l->kind) {
	case LK_RANGE:
	case LK_U16SET:
		zone_col(l, l->col_a, z, &ta, &fa);
		if (l->mode == M_ONE) {
			*mt = ta;
			*mf = fa;
			return;
		}
		zone_col(l, l->col_b, z, &tb, &fb);
		if (l->mode == M_ANY) {
			*mt = ta || tb;
			*mf = fa && fb;
		} else {
			*mt = ta && tb;
			*mf = fa || fb;
		}
		return;
	case LK_ADDR:
		if (l->ipreq != IPV_NONE)
			*mt = (z->ipver & (l->ipreq == IPV_6 ? 2 : 1)) != 0;
		return;
	case LK_ADDRSET:
		if (l->ipreq != IPV_NONE) {
			*mt = 0;
			for (uint32_t g = 0; g < l->as->ngroups; g++)
				if (z->ipver & (l->as->g[g].v6 ? 2 : 1))
					*mt = 1;
		}
		return;
	case LK_DERIVED:
		/* bytes per packet never exceeds a record's bytes, nor the block's sum */
		if (l->derived == D_BPP)
			*mt = l->a <= z->bytes;
		return;
	}
}

static void zone_eval(const struct filt *f, uint32_t x, const struct store_zone *z, int *mt,
		      int *mf)
{
	const struct node *n = &f->norm.v[x];
	int t, fl;

	switch (n->type) {
	case N_TRUE:
		*mt = 1;
		*mf = 0;
		return;
	case N_FALSE:
		*mt = 0;
		*mf = 1;
		return;
	case N_LEAF:
		zone_leaf(&f->leaves[n->leaf], z, &t, &fl);
		*mt = n->neg ? fl : t;
		*mf = n->neg ? t : fl;
		return;
	case N_AND:
		*mt = 1;
		*mf = 0;
		for (uint32_t c = n->first; c != NONE; c = f->norm.v[c].next) {
			zone_eval(f, c, z, &t, &fl);
			*mt = *mt && t;
			*mf = *mf || fl;
		}
		return;
	default:
		*mt = 0;
		*mf = 1;
		for (uint32_t c = n->first; c != NONE; c = f->norm.v[c].next) {
			zone_eval(f, c, z, &t, &fl);
			*mt = *mt || t;
			*mf = *mf && fl;
		}
		return;
	}
}

/* ---- columns ---- */

static uint32_t leaf_columns(const struct leaf *l)
{
	uint32_t m = STORE_COLBIT(l->col_a);

	if (l->mode != M_ONE)
		m |= STORE_COLBIT(l->col_b);
	if ((l->kind == LK_ADDR || l->kind == LK_ADDRSET) && l->ipreq != IPV_NONE)
		m |= STORE_COLBIT(STORE_COL_IPVER);
	if (l->kind == LK_DERIVED) {
		switch (l->derived) {
		case D_DUR:
			return STORE_COLBIT(STORE_COL_FIRST) | STORE_COLBIT(STORE_COL_LAST);
		case D_PPS:
			return STORE_COLBIT(STORE_COL_FIRST) | STORE_COLBIT(STORE_COL_LAST) |
			       STORE_COLBIT(STORE_COL_PACKETS);
		case D_BPS:
			return STORE_COLBIT(STORE_COL_FIRST) | STORE_COLBIT(STORE_COL_LAST) |
			       STORE_COLBIT(STORE_COL_BYTES);
		default:
			return STORE_COLBIT(STORE_COL_PACKETS) | STORE_COLBIT(STORE_COL_BYTES);
		}
	}
	return m;
}

static uint32_t norm_columns(const struct filt *f, uint32_t x)
{
	const struct node *n = &f->norm.v[x];
	uint32_t m = 0;

	if (n->type == N_LEAF)
		return leaf_columns(&f->leaves[n->leaf]);
	for (uint32_t c = n->first; c != NONE; c = f->norm.v[c].next)
		m |= norm_columns(f, c);
	return m;
}

/* ---- API ---- */

/* Compiles expr; with subs, also hands back the host names it looked up (*subs, *nsubs,
 * free(*subs) after, also on failure), for filt_expand_names. */
static struct filt *compile_expr(const char *expr, filt_resolve_fn resolve, char *err,
				 size_t errlen, size_t *err_pos, struct namesub **subs,
				 uint32_t *nsubs)
{
	struct pc p;
	struct cc cc;
	struct filt *f;
	uint32_t root;

	memset(&p, 0, sizeof(p));
	memset(&cc, 0, sizeof(cc));
	if (err && errlen)
		err[0] = 0;
	if (err_pos)
		*err_pos = 0;
	p.s = expr ? expr : "";
	p.len = strlen(p.s);
	p.err = err;
	p.errlen = errlen;
	p.err_pos = err_pos;
	p.resolve = resolve;
	p.record = subs != NULL;
	f = calloc(1, sizeof(*f));
	if (!f) {
		fail(&p, 0, "out of memory");
		goto bad;
	}
	p.f = f;
	if (p.len >= UINT32_MAX) {
		fail(&p, 0, "filter too long");
		goto bad;
	}
	if (lex(&p) < 0) {
		fail(&p, 0, "out of memory");
		goto bad;
	}
	root = parse_top(&p);
	if (p.failed || root == NONE)
		goto bad;
	f->tree_root = root;
	f->norm_root = normalise(&p, root, 0);
	if (p.failed || f->norm_root == NONE)
		goto bad;
	switch (f->norm.v[f->norm_root].type) {
	case N_TRUE:
		f->result = R_ALL;
		break;
	case N_FALSE:
		f->result = R_NONE;
		break;
	default:
		cc.p = &p;
		cc.nregs = 1; /* register 0: the whole block */
		f->result = R_REG;
		f->result_reg = compile(&cc, f->norm_root, 0, 0);
		if (p.failed)
			goto bad;
		f->ops = cc.ops;
		f->nops = cc.nops;
		f->nregs = cc.nregs;
		cc.ops = NULL;
		f->columns = norm_columns(f, f->norm_root);
	}
	goto done;
bad:
	filt_free(f);
	f = NULL;
done:
	free(cc.ops);
	free(p.toks);
	if (subs) {
		*subs = p.subs;
		*nsubs = p.nsubs;
	} else {
		free(p.subs);
	}
	return f;
}

struct filt *filt_compile(const char *expr, char *err, size_t errlen, size_t *err_pos)
{
	return filt_compile_names(expr, NULL, err, errlen, err_pos);
}

struct filt *filt_compile_names(const char *expr, filt_resolve_fn resolve, char *err,
				size_t errlen, size_t *err_pos)
{
	return compile_expr(expr, resolve, err, errlen, err_pos, NULL, NULL);
}

char *filt_expand_names(const char *expr, filt_resolve_fn resolve, char *err, size_t errlen,
			size_t *err_pos)
{
	struct namesub *subs = NULL;
	uint32_t nsubs = 0;
	struct filt *f = compile_expr(expr, resolve, err, errlen, err_pos, &subs, &nsubs);
	size_t len = strlen(expr ? expr : ""), cap = len + 1, at = 0, out = 0;
	char *o;

	if (!f) {
		free(subs);
		return NULL;
	}
	filt_free(f);
	for (uint32_t i = 0; i < nsubs; i++)
		cap += 8 + (size_t)subs[i].n * (INET6_ADDRSTRLEN + 2);
	o = malloc(cap);
	if (!o) {
		free(subs);
		if (err && errlen)
			snprintf(err, errlen, "out of memory");
		return NULL;
	}
	for (uint32_t i = 0; i < nsubs; i++) {
		const struct namesub *sub = &subs[i];
		memcpy(o + out, expr + at, sub->pos - at);
		out += sub->pos - at;
		if (!sub->in_list)
			out += (size_t)sprintf(o + out, "in [");
		for (int k = 0; k < sub->n; k++) {
			char a[INET6_ADDRSTRLEN];
			out += (size_t)sprintf(o + out, "%s%s", k ? ", " : "",
					       addr_str(sub->a[k], a, sizeof(a)));
		}
		if (!sub->in_list)
			out += (size_t)sprintf(o + out, "]");
		at = sub->pos + sub->len;
	}
	memcpy(o + out, expr + at, len - at);
	o[out + len - at] = 0;
	free(subs);
	return o;
}

void filt_free(struct filt *f)
{
	if (!f)
		return;
	for (uint32_t i = 0; i < f->nleaves; i++) {
		struct leaf *l = &f->leaves[i];
		free(l->bits);
		if (l->u32)
			free(l->u32->v);
		free(l->u32);
		if (l->as) {
			for (uint32_t g = 0; g < l->as->ngroups; g++)
				free(l->as->g[g].v);
			free(l->as->g);
			free(l->as->list);
		}
		free(l->as);
	}
	free(f->leaves);
	free(f->tree.v);
	free(f->norm.v);
	free(f->ops);
	free(f);
}

uint32_t filt_columns(const struct filt *f)
{
	return f->columns;
}

/* Columns a block may hand out as a dictionary: those read by leaves that alone(m) says
 * can be evaluated over it (m: the leaf's columns), less those any other leaf reads. */
static void dict_cols(const struct filt *f, uint32_t x, int (*alone)(uint32_t m),
		      uint32_t *only, uint32_t *other)
{
	const struct node *n = &f->norm.v[x];

	if (n->type == N_LEAF) {
		uint32_t m = leaf_columns(&f->leaves[n->leaf]);
		if (alone(m))
			*only |= m;
		else
			*other |= m;
		return;
	}
	for (uint32_t c = n->first; c != NONE; c = f->norm.v[c].next)
		dict_cols(f, c, alone, only, other);
}

static uint32_t dict_columns(const struct filt *f, int (*alone)(uint32_t m))
{
	uint32_t only = 0, other = 0;

	if (f->result != R_REG)
		return 0;
	dict_cols(f, f->norm_root, alone, &only, &other);
	return only & ~other;
}

/* Tuple members only (not an address leaf's IP version, read a record at a time). */
static int tuple_alone(uint32_t m)
{
	return !(m & ~STORE_TUPLE_MEMBERS);
}

/* One port column ("port 80" reads both, a record at a time). */
static int port_alone(uint32_t m)
{
	return m == STORE_COLBIT(STORE_COL_SPORT) || m == STORE_COLBIT(STORE_COL_DPORT);
}

uint32_t filt_tuple_columns(const struct filt *f)
{
	return dict_columns(f, tuple_alone);
}

uint32_t filt_port_code_columns(const struct filt *f)
{
	return dict_columns(f, port_alone);
}

int filt_zone_may_match(const struct filt *f, const struct store_zone *z)
{
	int mt, mf;

	if (z->first_min > z->first_max)
		return 0; /* empty block */
	if (f->result != R_REG)
		return f->result == R_ALL;
	zone_eval(f, f->norm_root, z, &mt, &mf);
	return mt;
}

int filt_match(const struct filt *f, const struct flow_rec *r)
{
	return match_tree(f, f->tree_root, r);
}

/* Record by record through filt_match: for blocks lacking a column the filter reads
 * (such columns read as zero, as store_cols_get says) or when memory runs out. */
static uint32_t eval_slow(const struct filt *f, const struct store_cols *c, uint32_t *sel)
{
	struct flow_rec r;
	struct store_cols v;
	uint32_t k = 0;

	for (int j = 0; j < 2; j++) {   /* port codes as values: one pass, not one a record */
		if (c->pcodes & STORE_COLBIT(j ? STORE_COL_DPORT : STORE_COL_SPORT)) {
			port_values_view(&v, c, j);
			c = &v;
		}
	}
	for (uint32_t i = 0; i < c->n; i++) {
		store_cols_get(c, i, &r);
		if (match_tree(f, f->tree_root, &r))
			sel[k++] = i;
	}
	return k;
}

#define FILT_STACK_REGS 16

uint32_t filt_eval(const struct filt *f, const struct store_cols *c, uint32_t *sel)
{
	uint32_t n = c->n, nr = f->nregs;
	uint32_t *bstack[FILT_STACK_REGS], cstack[FILT_STACK_REGS];
	uint32_t **buf = bstack, *cnt = cstack, *scratch = NULL, res;
	void *mem = NULL;

	if (n == 0 || f->result == R_NONE)
		return 0;
	if (f->result == R_ALL) {
		for (uint32_t i = 0; i < n; i++)
			sel[i] = i;
		return n;
	}
	if (((c->mask | c->tuple | c->pcodes) & f->columns) != f->columns ||
	    (c->tuple && (c->tuple & ~filt_tuple_columns(f))) ||
	    (c->pcodes && (c->pcodes & ~filt_port_code_columns(f))))
		return eval_slow(f, c, sel);
	if (nr > FILT_STACK_REGS) {
		mem = malloc(nr * (sizeof(uint32_t *) + sizeof(uint32_t)));
		if (!mem)
			return eval_slow(f, c, sel);
		buf = mem;
		cnt = (uint32_t *)(buf + nr);
	}
	/* register 0 is the whole block, the result register is sel, the rest scratch */
	if (nr > 2) {
		size_t per = n, want = (size_t)(nr - 2) * per;
		if (want / per != nr - 2 || want > SIZE_MAX / sizeof(uint32_t) ||
		    !(scratch = malloc(want * sizeof(uint32_t)))) {
			free(mem);
			return eval_slow(f, c, sel);
		}
	}
	for (uint32_t r = 0, k = 0; r < nr; r++) {
		cnt[r] = 0;
		if (r == 0)
			buf[r] = NULL;
		else if (r == f->result_reg)
			buf[r] = sel;
		else
			buf[r] = scratch + (size_t)(k++) * n;
	}
	cnt[0] = n;
	for (uint32_t i = 0; i < f->nops; i++) {
		const struct op *o = &f->ops[i];
		switch (o->code) {
		case OP_LEAF:
			cnt[o->out] = run_leaf(&f->leaves[o->leaf], o->neg, c, buf[o->in], cnt[o->in],
					       buf[o->out]);
			break;
		case OP_DIFF:
			cnt[o->out] = sel_diff(buf[o->in], cnt[o->in], buf[o->aux], cnt[o->aux],
					       buf[o->out]);
			break;
		default:
			cnt[o->out] = sel_union(buf[o->out], cnt[o->out], buf[o->in], cnt[o->in]);
			break;
		}
	}
	res = cnt[f->result_reg];
	free(scratch);
	free(mem);
	return res;
}
