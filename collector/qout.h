/* qout.h: renders query results (query.h) as text. Owns the three output formats of
 * tapflow-query:
 *   table  aligned columns like nfdump's line format, human units ("12.5 M") unless
 *          plain, times in local time (TZ) as nfdump prints them;
 *   csv    one header line per table, then rows; a blank line between sections;
 *          times ISO 8601 UTC; plain numbers;
 *   json   one object: the first table's description and "rows", "stats" for the
 *          other tables, "series", and "summary" (see tapflow-query --help).
 * A qout is a query_sink, so rows are written as the engine delivers them (listings of
 * any size in bounded memory); qout_finish() then writes series and summary.
 */
#ifndef TF_QOUT_H
#define TF_QOUT_H

#include <stdio.h>

#include "query.h"

enum qout_fmt {
	QOUT_TABLE,
	QOUT_CSV,
	QOUT_JSON,
};

struct qout;

/* Parses "table" (also "line"), "csv" or "json". Returns enum qout_fmt or -1. */
int qout_parse_fmt(const char *s);

/* A renderer writing to out (not closed by qout_free). plain: whole numbers instead of
 * human units in tables. NULL on allocation failure. */
struct qout *qout_new(FILE *out, enum qout_fmt fmt, int plain);

/* The sink to put in query_req.sink; valid while o lives. */
const struct query_sink *qout_sink(struct qout *o);

/* Writes what query_run() left in res and did not stream (kept rows when no sink was
 * used, the series, the summary) and flushes. rq is the request res answers. Returns 0,
 * or -EIO if writing failed. */
int qout_finish(struct qout *o, const struct query_req *rq, const struct query_result *res);

void qout_free(struct qout *o);

#endif
