/* opts.c: see opts.h. */
#include <errno.h>
#include <getopt.h>
#include <libconfig.h>
#include <stdlib.h>
#include <string.h>

#include "opts.h"

#define OPT_MAX 96

static void *field(void *cfg, const struct opt_def *d)
{
	return (char *)cfg + d->off;
}

static const void *cfield(const void *cfg, const struct opt_def *d)
{
	return (const char *)cfg + d->off;
}

/* Parses an unsigned number with an optional k/M/G suffix into *v within bounds. */
static int parse_uint(const struct opt_def *d, const char *s, uint32_t *v, char *err,
		      size_t errlen)
{
	char *end;
	errno = 0;
	unsigned long long x = strtoull(s, &end, 0);
	if (end == s || *s == '-' || errno) {
		snprintf(err, errlen, "--%s: '%s' is not a number", d->name, s);
		return -1;
	}
	unsigned long long mul = 1;
	if (*end == 'k' || *end == 'K')
		mul = 1000, end++;
	else if (*end == 'M')
		mul = 1000000, end++;
	else if (*end == 'G')
		mul = 1000000000, end++;
	if (*end) {
		snprintf(err, errlen, "--%s: '%s' is not a number", d->name, s);
		return -1;
	}
	x *= mul;
	if (x < d->min || x > d->max) {
		snprintf(err, errlen, "--%s: %s is out of range (%u..%u)", d->name, s, d->min,
			 d->max);
		return -1;
	}
	*v = (uint32_t)x;
	return 0;
}

/* Parses N with an optional unit suffix (time for OPT_SECS, size for OPT_SIZE). */
static int parse_unit(const struct opt_def *d, const char *s, uint64_t *v, char *err,
		      size_t errlen)
{
	static const struct { char c; uint64_t mul; } secs[] = {
		{ 's', 1 }, { 'm', 60 }, { 'h', 3600 }, { 'd', 86400 }, { 'w', 604800 }, { 0, 0 } };
	static const struct { char c; uint64_t mul; } size[] = {
		{ 'k', 1ull << 10 }, { 'K', 1ull << 10 }, { 'M', 1ull << 20 }, { 'G', 1ull << 30 },
		{ 'T', 1ull << 40 }, { 0, 0 } };
	char *end;
	errno = 0;
	unsigned long long x = strtoull(s, &end, 10);
	if (end == s || *s == '-' || errno) {
		snprintf(err, errlen, "--%s: '%s' is not a number", d->name, s);
		return -1;
	}
	uint64_t mul = 1;
	if (*end) {
		int found = 0;
		for (int i = 0; d->type == OPT_SECS ? secs[i].c : size[i].c; i++) {
			char c = d->type == OPT_SECS ? secs[i].c : size[i].c;
			if (*end == c) {
				mul = d->type == OPT_SECS ? secs[i].mul : size[i].mul;
				found = 1;
			}
		}
		if (!found || (end[1] != 0 && !(d->type == OPT_SIZE && !strcmp(end + 1, "iB")))) {
			snprintf(err, errlen, "--%s: '%s': unknown unit (use %s)", d->name, s,
				 d->type == OPT_SECS ? "s, m, h, d or w" : "k, M, G or T");
			return -1;
		}
	}
	if (x > UINT64_MAX / mul) {
		snprintf(err, errlen, "--%s: %s is too large", d->name, s);
		return -1;
	}
	x *= mul;
	if (d->type == OPT_SECS && (x > d->max || x < d->min)) {
		snprintf(err, errlen, "--%s: %s is out of range (%u..%u seconds)", d->name, s,
			 d->min, d->max);
		return -1;
	}
	*v = x;
	return 0;
}

static int set_unit(const struct opt_def *d, void *cfg, const char *s, char *err,
		    size_t errlen)
{
	uint64_t v;
	if (parse_unit(d, s, &v, err, errlen) < 0)
		return -1;
	if (d->type == OPT_SECS)
		*(uint32_t *)field(cfg, d) = (uint32_t)v;
	else
		*(uint64_t *)field(cfg, d) = v;
	return 0;
}

static void key_of(const struct opt_def *d, char *key, size_t n)
{
	snprintf(key, n, "%s", d->name);
	for (char *p = key; *p; p++)
		if (*p == '-')
			*p = '_';
}

void opt_store_free(struct opt_store *st)
{
	for (size_t i = 0; i < st->n; i++)
		free(st->s[i]);
	free(st->s);
	st->s = NULL;
	st->n = st->cap = 0;
}

/* Strings read from a config file must outlive the config_t: keep a copy in st. */
static const char *keep(struct opt_store *st, const char *s)
{
	if (st->n == st->cap) {
		size_t cap = st->cap ? st->cap * 2 : 16;
		char **n = realloc(st->s, cap * sizeof(*n));
		if (!n)
			return NULL;
		st->s = n;
		st->cap = cap;
	}
	char *c = strdup(s);
	if (c)
		st->s[st->n++] = c;
	return c;
}

static int load_setting(const struct opt_def *d, void *cfg, config_setting_t *s,
			const char *path, struct opt_store *st, char *err, size_t errlen)
{
	int line = config_setting_source_line(s);
	char buf[64];
	switch (d->type) {
	case OPT_UINT: {
		int t = config_setting_type(s);
		if (t == CONFIG_TYPE_INT || t == CONFIG_TYPE_INT64) {
			long long v = config_setting_get_int64(s);
			if (v < 0 || (unsigned long long)v < d->min || (unsigned long long)v > d->max) {
				snprintf(err, errlen, "%s:%d: %s = %lld is out of range (%u..%u)",
					 path, line, config_setting_name(s), v, d->min, d->max);
				return -1;
			}
			*(uint32_t *)field(cfg, d) = (uint32_t)v;
			return 0;
		}
		if (t == CONFIG_TYPE_STRING) {
			if (parse_uint(d, config_setting_get_string(s), field(cfg, d), buf,
				       sizeof(buf)) == 0)
				return 0;
		}
		snprintf(err, errlen, "%s:%d: %s must be a number", path, line,
			 config_setting_name(s));
		return -1;
	}
	case OPT_SECS:
	case OPT_SIZE: {
		int t = config_setting_type(s);
		char num[32];
		const char *txt = NULL;
		if (t == CONFIG_TYPE_INT || t == CONFIG_TYPE_INT64) {
			snprintf(num, sizeof(num), "%lld", config_setting_get_int64(s));
			txt = num;
		} else if (t == CONFIG_TYPE_STRING) {
			txt = config_setting_get_string(s);
		}
		char why[160];
		if (txt && set_unit(d, cfg, txt, why, sizeof(why)) == 0)
			return 0;
		snprintf(err, errlen, "%s:%d: %s: %s", path, line, config_setting_name(s),
			 txt ? why : "must be a number or a string like \"30d\"");
		return -1;
	}
	case OPT_STR:
		if (config_setting_type(s) != CONFIG_TYPE_STRING) {
			snprintf(err, errlen, "%s:%d: %s must be a string in double quotes", path,
				 line, config_setting_name(s));
			return -1;
		}
		*(const char **)field(cfg, d) = keep(st, config_setting_get_string(s));
		return 0;
	case OPT_BOOL:
		if (config_setting_type(s) != CONFIG_TYPE_BOOL) {
			snprintf(err, errlen, "%s:%d: %s must be true or false", path, line,
				 config_setting_name(s));
			return -1;
		}
		*(int *)field(cfg, d) = config_setting_get_bool(s);
		return 0;
	case OPT_LIST: {
		struct opt_list *l = field(cfg, d);
		l->n = 0;
		if (config_setting_type(s) == CONFIG_TYPE_STRING) {
			l->v[l->n++] = keep(st, config_setting_get_string(s));
			return 0;
		}
		if (!config_setting_is_aggregate(s)) {
			snprintf(err, errlen, "%s:%d: %s must be a string or a list of strings "
				 "[\"a\", \"b\"]", path, line, config_setting_name(s));
			return -1;
		}
		int n = config_setting_length(s);
		if (n > OPT_LIST_MAX) {
			snprintf(err, errlen, "%s:%d: %s has more than %d entries", path, line,
				 config_setting_name(s), OPT_LIST_MAX);
			return -1;
		}
		for (int i = 0; i < n; i++) {
			config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
			if (config_setting_type(e) != CONFIG_TYPE_STRING) {
				snprintf(err, errlen, "%s:%d: %s: entry %d must be a string", path,
					 config_setting_source_line(e), config_setting_name(s), i + 1);
				return -1;
			}
			l->v[l->n++] = keep(st, config_setting_get_string(e));
		}
		return 0;
	}
	case OPT_ACTION:
		break;
	}
	snprintf(err, errlen, "%s:%d: %s cannot be set in a file", path, line,
		 config_setting_name(s));
	return -1;
}

int opt_load_file(const struct opt_def *defs, void *cfg, const char *path,
		  struct opt_store *st, char *err, size_t errlen)
{
	config_t c;
	int rc = -1;
	config_init(&c);
	if (!config_read_file(&c, path)) {
		if (config_error_type(&c) == CONFIG_ERR_FILE_IO)
			snprintf(err, errlen, "%s: cannot read: %s", path, strerror(errno));
		else
			snprintf(err, errlen, "%s:%d: %s", config_error_file(&c) ?
				 config_error_file(&c) : path, config_error_line(&c),
				 config_error_text(&c));
		goto out;
	}
	config_setting_t *root = config_root_setting(&c);
	int n = config_setting_length(root);
	for (int i = 0; i < n; i++) {
		config_setting_t *s = config_setting_get_elem(root, (unsigned)i);
		const char *name = config_setting_name(s);
		const struct opt_def *d = NULL;
		char key[64];
		for (const struct opt_def *p = defs; p->name; p++) {
			key_of(p, key, sizeof(key));
			if (p->type != OPT_ACTION && strcmp(p->name, "config") &&
			    (!strcmp(key, name) || !strcmp(p->name, name))) {
				d = p;
				break;
			}
		}
		if (!d) {
			snprintf(err, errlen, "%s:%d: unknown setting '%s'", path,
				 config_setting_source_line(s), name);
			goto out;
		}
		if (load_setting(d, cfg, s, path, st, err, errlen) < 0)
			goto out;
	}
	rc = 0;
out:
	config_destroy(&c);
	return rc;
}

static int apply(const struct opt_def *d, void *cfg, const char *arg, int negate,
		 int *list_fresh, char *err, size_t errlen)
{
	switch (d->type) {
	case OPT_UINT:
		return parse_uint(d, arg, field(cfg, d), err, errlen);
	case OPT_SECS:
	case OPT_SIZE:
		return set_unit(d, cfg, arg, err, errlen);
	case OPT_STR:
		*(const char **)field(cfg, d) = arg;
		return 0;
	case OPT_BOOL:
		*(int *)field(cfg, d) = !negate;
		return 0;
	case OPT_ACTION:
		*(int *)field(cfg, d) = 1;
		return 0;
	case OPT_LIST: {
		struct opt_list *l = field(cfg, d);
		if (!*list_fresh) { /* flags replace what the file said */
			l->n = 0;
			*list_fresh = 1;
		}
		if (l->n >= OPT_LIST_MAX) {
			snprintf(err, errlen, "--%s: at most %d", d->name, OPT_LIST_MAX);
			return -1;
		}
		l->v[l->n++] = arg;
		return 0;
	}
	}
	return -1;
}

int opt_parse(const struct opt_def *defs, void *cfg, int argc, char **argv,
	      struct opt_store *st, char *err, size_t errlen)
{
	struct option lo[OPT_MAX * 2 + 1];
	char so[OPT_MAX * 2 + 2];
	char neg[OPT_MAX][48]; /* "--no-NAME" spellings, alive while getopt runs */
	int nd = 0, nl = 0, ns = 0;
	so[ns++] = '+'; /* stop at the first non-option: the capture filter follows */
	for (const struct opt_def *d = defs; d->name && nd < OPT_MAX; d++, nd++) {
		int has = (d->type == OPT_BOOL || d->type == OPT_ACTION) ? no_argument
									  : required_argument;
		lo[nl++] = (struct option){ d->name, has, NULL, 1000 + nd };
		if (d->type == OPT_BOOL) {
			snprintf(neg[nd], sizeof(neg[nd]), "no-%s", d->name);
			lo[nl++] = (struct option){ neg[nd], no_argument, NULL, 2000 + nd };
		}
		if (d->shortopt) {
			so[ns++] = (char)d->shortopt;
			if (has == required_argument)
				so[ns++] = ':';
		}
	}
	lo[nl] = (struct option){ NULL, 0, NULL, 0 };
	so[ns] = 0;

	/* First pass: find -c so the file is loaded before flags override it. */
	for (int pass = 0; pass < 2; pass++) {
		int list_fresh[OPT_MAX] = { 0 };
		optind = 1;
		opterr = 0;
		for (;;) {
			int li = -1;
			int c = getopt_long(argc, argv, so, lo, &li);
			if (c == -1)
				break;
			const struct opt_def *d = NULL;
			int negate = 0, idx = -1;
			if (c >= 2000) {
				idx = c - 2000;
				negate = 1;
			} else if (c >= 1000) {
				idx = c - 1000;
			} else if (c == '?' || c == ':') {
				if (optopt && optopt < 1000)
					snprintf(err, errlen, "option -%c %s", optopt,
						 strchr(so, optopt) ? "needs an argument" : "is unknown");
				else
					snprintf(err, errlen, "option '%s' is unknown or needs an "
						 "argument", argv[optind - 1]);
				return -1;
			} else {
				for (int i = 0; i < nd; i++)
					if (defs[i].shortopt == c)
						idx = i;
			}
			if (idx < 0)
				continue;
			d = &defs[idx];
			if (pass == 0) {
				if (!strcmp(d->name, "config")) {
					*(const char **)field(cfg, d) = optarg;
					if (opt_load_file(defs, cfg, optarg, st, err, errlen) < 0)
						return -1;
				}
				continue;
			}
			if (apply(d, cfg, optarg, negate, &list_fresh[idx], err, errlen) < 0)
				return -1;
		}
	}
	return optind;
}

void opt_print_help(const struct opt_def *defs, const void *dflt, FILE *out)
{
	for (const struct opt_def *d = defs; d->name; d++) {
		char head[128];
		int n = 0;
		if (d->shortopt)
			n = snprintf(head, sizeof(head), "-%c, ", d->shortopt);
		snprintf(head + n, sizeof(head) - (size_t)n, "--%s%s%s",
			 d->type == OPT_BOOL ? "[no-]" : "", d->name,
			 d->arg ? " " : "");
		fprintf(out, "  %s%s\n", head, d->arg ? d->arg : "");
		/* help text, indented */
		const char *h = d->help;
		while (h && *h) {
			const char *nl = strchr(h, '\n');
			int len = nl ? (int)(nl - h) : (int)strlen(h);
			fprintf(out, "        %.*s\n", len, h);
			h = nl ? nl + 1 : h + len;
		}
		char key[64];
		key_of(d, key, sizeof(key));
		const void *v = cfield(dflt, d);
		switch (d->type) {
		case OPT_UINT:
			fprintf(out, "        Config: %s = N; default %u.\n", key,
				*(const uint32_t *)v);
			break;
		case OPT_SECS:
			fprintf(out, "        Config: %s = N or \"N[smhdw]\"; default %u%s.\n", key,
				*(const uint32_t *)v, *(const uint32_t *)v ? " s" : "");
			break;
		case OPT_SIZE:
			fprintf(out, "        Config: %s = N or \"N[kMGT]\"; default %llu%s.\n", key,
				(unsigned long long)*(const uint64_t *)v,
				*(const uint64_t *)v ? " bytes" : "");
			break;
		case OPT_STR:
			if (strcmp(d->name, "config"))
				fprintf(out, "        Config: %s = \"...\";%s%s%s\n", key,
					*(const char *const *)v ? " default \"" : "",
					*(const char *const *)v ? *(const char *const *)v : "",
					*(const char *const *)v ? "\"." : "");
			break;
		case OPT_BOOL:
			fprintf(out, "        Config: %s = true|false; default %s.\n", key,
				*(const int *)v ? "true" : "false");
			break;
		case OPT_LIST:
			fprintf(out, "        Config: %s = [\"...\", ...];\n", key);
			break;
		case OPT_ACTION:
			break;
		}
		fputc('\n', out);
	}
}
