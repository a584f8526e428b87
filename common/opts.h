/* opts.h: one table per program describes every option once; from it come the
 * command-line parser (getopt_long), the libconfig file loader (same names, '-' written
 * '_' in files), and the OPTIONS section of --help. Flags override the file.
 */
#ifndef TF_OPTS_H
#define TF_OPTS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

enum opt_type {
	OPT_UINT,    /* uint32_t; "k", "M", "G" suffixes accepted (powers of 1000) */
	OPT_STR,     /* const char * (points into argv or a copy owned by the config) */
	OPT_LIST,    /* struct opt_list: repeatable flag, array in the file */
	OPT_BOOL,    /* int; --NAME / --no-NAME, true/false in the file */
	OPT_ACTION,  /* flag only (--help, --version): sets int to 1, no config key */
	OPT_SECS,    /* uint32_t seconds; "s", "m", "h", "d", "w" suffixes accepted */
	OPT_SIZE,    /* uint64_t bytes; "k", "M", "G", "T" suffixes (powers of 1024) */
};

#define OPT_LIST_MAX 16

struct opt_list {
	const char *v[OPT_LIST_MAX];
	int n;
};

/* Strings copied out of config files; they live until opt_store_free. */
struct opt_store {
	char **s;
	size_t n, cap;
};

/* Frees every string the store holds (values in a config struct then dangle). */
void opt_store_free(struct opt_store *st);

struct opt_def {
	const char *name;      /* long option; config key with '-' as '_' (NULL ends table) */
	int shortopt;          /* single-letter flag, 0 if none */
	enum opt_type type;
	size_t off;            /* offset of the value in the program's config struct */
	uint32_t min, max;     /* OPT_UINT bounds */
	const char *arg;       /* argument name in help ("SECS") */
	const char *help;      /* one paragraph; may contain \n */
};

/* Parses argv against defs into cfg (which holds defaults). If a -c/--config FILE
 * option is among defs (name "config") the file is loaded first and flags override it.
 * Strings from the file are copied into st; strings from argv point into argv.
 * Returns the index of the first non-option argument, or -1 with a message in err
 * (bad flag, bad value, config file error with file and line). */
int opt_parse(const struct opt_def *defs, void *cfg, int argc, char **argv,
	      struct opt_store *st, char *err, size_t errlen);

/* Loads a libconfig file into cfg. 0, or -1 with "FILE:LINE: what" in err. Unknown
 * settings are errors (a typo must not be silently ignored). */
int opt_load_file(const struct opt_def *defs, void *cfg, const char *path,
		  struct opt_store *st, char *err, size_t errlen);

/* Prints the OPTIONS section: every flag, its config key, default and help. */
void opt_print_help(const struct opt_def *defs, const void *defaults, FILE *out);

#endif
