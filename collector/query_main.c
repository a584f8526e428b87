/* query_main.c: tapflow-query, first version: totals over a whole store. Options and
 * output only; the scan lives in the store library (store_summary()). */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store.h"

#ifndef TF_VERSION
#define TF_VERSION "unknown"
#endif

#define EXIT_USAGE 2

static const char usage_text[] =
"NAME\n"
"       tapflow-query - answer questions from a tapflow flow store\n"
"\n"
"SYNOPSIS\n"
"       tapflow-query -R DIR [-o json|table]\n"
"       tapflow-query -h | --help\n"
"       tapflow-query -V | --version\n"
"\n"
"DESCRIPTION\n"
"       Reads every flow that tapflow-collector stored under DIR and prints the totals:\n"
"       flows, packets, bytes, and the time span from the earliest flow start to the\n"
"       latest flow end. DIR is the collector's -l directory (files DIR/YYYY/MM/DD/\n"
"       tf-YYYYMMDDhhmm.tfs) or one such file. The file still being written is read up\n"
"       to its last flushed block. Damaged blocks are skipped, counted and reported on\n"
"       standard error; the totals cover everything else.\n"
"\n"
"       Filters, top N (-s) and aggregation (-A) are not implemented yet.\n"
"\n"
"OPTIONS\n"
"       -R DIR, --read DIR\n"
"              The store to read (required).\n"
"\n"
"       -o FORMAT, --output FORMAT\n"
"              table (default): nfdump-style summary lines.\n"
"              json: one JSON object,\n"
"              {\"summary\":{\"flows\":N,\"packets\":N,\"bytes\":N,\"first\":T,\"last\":T,\n"
"              \"first_ms\":N,\"last_ms\":N,\"files\":N,\"blocks\":N,\"bad_blocks\":N}}\n"
"              where T is an ISO 8601 UTC time (null when there are no flows) and\n"
"              first_ms/last_ms are Unix milliseconds.\n"
"\n"
"       -h, --help\n"
"              Print this help and exit.\n"
"\n"
"       -V, --version\n"
"              Print the version and exit.\n"
"\n"
"EXIT STATUS\n"
"       0 success (also when damaged blocks were skipped), 1 DIR is missing, is not a\n"
"       tapflow store or cannot be read, 2 wrong usage.\n"
"\n"
"EXAMPLES\n"
"       tapflow-query -R /var/lib/tapflow\n"
"       tapflow-query -R /var/lib/tapflow -o json | jq .summary.bytes\n"
"\n"
"SEE ALSO\n"
"       tapflow-collector(8), nfdump(1)\n";

static void warn_cb(const char *path, int err, const char *what, void *arg)
{
	(void)arg;
	fprintf(stderr, "tapflow-query: warning: %s: %s (%s)\n", path, what, store_strerror(err));
}

static void print_json(const struct store_summary *s)
{
	char a[32], b[32];

	printf("{\"summary\":{\"flows\":%" PRIu64 ",\"packets\":%" PRIu64 ",\"bytes\":%" PRIu64,
	       s->flows, s->packets, s->bytes);
	if (s->flows)
		printf(",\"first\":\"%s\",\"last\":\"%s\"", store_time_str(s->first_ms, a, sizeof(a)),
		       store_time_str(s->last_ms, b, sizeof(b)));
	else
		printf(",\"first\":null,\"last\":null");
	printf(",\"first_ms\":%" PRIu64 ",\"last_ms\":%" PRIu64 ",\"files\":%" PRIu64
	       ",\"blocks\":%" PRIu64 ",\"bad_blocks\":%" PRIu64 "}}\n",
	       s->first_ms, s->last_ms, s->scan.files, s->scan.blocks, s->scan.bad_blocks);
}

static void print_table(const struct store_summary *s)
{
	uint64_t span = s->last_ms > s->first_ms ? s->last_ms - s->first_ms : 0;
	char a[32], b[32];

	/* averages over the time window, as nfdump's summary line has them */
	printf("Summary: total flows: %" PRIu64 ", total bytes: %" PRIu64 ", total packets: %" PRIu64
	       ", avg bps: %" PRIu64 ", avg pps: %" PRIu64 ", avg bpp: %" PRIu64 "\n",
	       s->flows, s->bytes, s->packets, span ? s->bytes * 8000 / span : 0,
	       span ? s->packets * 1000 / span : 0, s->packets ? s->bytes / s->packets : 0);
	if (s->flows)
		printf("Time window: %s - %s\n", store_time_str(s->first_ms, a, sizeof(a)),
		       store_time_str(s->last_ms, b, sizeof(b)));
	else
		printf("Time window: none\n");
	printf("Total files: %" PRIu64 ", blocks: %" PRIu64 ", bad blocks: %" PRIu64
	       ", bad files: %" PRIu64 "\n",
	       s->scan.files, s->scan.blocks, s->scan.bad_blocks, s->scan.bad_files);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "read", required_argument, NULL, 'R' },
		{ "output", required_argument, NULL, 'o' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	const char *dir = NULL, *fmt = "table";
	struct store_summary sum;
	int c, rc;

	while ((c = getopt_long(argc, argv, "R:o:hV", opts, NULL)) != -1) {
		switch (c) {
		case 'R':
			dir = optarg;
			break;
		case 'o':
			fmt = optarg;
			break;
		case 'h':
			fputs(usage_text, stdout);
			return 0;
		case 'V':
			printf("tapflow-query %s\n", TF_VERSION);
			return 0;
		default:
			fprintf(stderr, "Try 'tapflow-query --help'.\n");
			return EXIT_USAGE;
		}
	}
	if (strcmp(fmt, "json") && strcmp(fmt, "table")) {
		fprintf(stderr, "tapflow-query: unknown output format '%s' (json or table)\n", fmt);
		return EXIT_USAGE;
	}
	if (optind < argc) {
		fprintf(stderr, "tapflow-query: filters are not supported yet ('%s')\n", argv[optind]);
		return EXIT_USAGE;
	}
	if (!dir) {
		fprintf(stderr, "tapflow-query: -R DIR is required\nTry 'tapflow-query --help'.\n");
		return EXIT_USAGE;
	}
	rc = store_check(dir);
	if (rc == -EILSEQ) {
		fprintf(stderr, "tapflow-query: %s: not a tapflow store\n", dir);
		return EXIT_FAILURE;
	}
	if (rc < 0) {
		fprintf(stderr, "tapflow-query: %s: %s\n", dir, store_strerror(rc));
		return EXIT_FAILURE;
	}
	rc = store_summary(dir, NULL, warn_cb, NULL, &sum);
	if (rc < 0) {
		fprintf(stderr, "tapflow-query: %s: %s\n", dir, store_strerror(rc));
		return EXIT_FAILURE;
	}
	if (!strcmp(fmt, "json"))
		print_json(&sum);
	else
		print_table(&sum);
	return fflush(stdout) == 0 ? 0 : EXIT_FAILURE;
}
