/* fuzz_httpreq.c: the query string of GET /api/v1/query, as any client may send it.
 * Input: the bytes after '?'. Every input is parsed; the run traps if a parsed request
 * breaks the parser's promises (table count, a NUL-terminated filter within its limit,
 * a known format, memory and threads within the limits), if a refusal comes without a
 * message or with a filter position past the filter, or if query_run answers a request
 * the parser built with anything but the missing store or a refusal with a message.
 * Seeds: tests/fuzz/seeds/fuzz_httpreq/ (one query string per file).
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "httpapi.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct httpapi_limits lim = { 30000, 64u << 20, 100000, 16u << 20, 2, 4 };
	struct httpapi_query *q = malloc(sizeof(*q));
	char err[HTTPAPI_ERR_LEN];
	long pos = -5;

	if (!q)
		return 0;
	memset(err, 'x', sizeof(err));
	int rc = httpapi_parse_query((const char *)data, size, "/nonexistent/tapflow-fuzz",
				     1767225600000ull, &lim, q, err, sizeof(err), &pos);
	if (rc < 0) {
		if (rc != -EINVAL || !memchr(err, 0, sizeof(err)) || !err[0])
			__builtin_trap();
		if (pos < -1 || pos > HTTPAPI_MAX_FILTER)
			__builtin_trap();
		free(q);
		return 0;
	}
	if (rc != 0 || q->rq.ntables > QUERY_MAX_TABLES || q->fmt < HTTPAPI_FMT_TABLE ||
	    q->fmt > HTTPAPI_FMT_JSON || pos != -1)
		__builtin_trap();
	if (q->rq.filter && (q->rq.filter != q->filter ||
			     !memchr(q->filter, 0, sizeof(q->filter))))
		__builtin_trap();
	if (q->rq.max_memory == 0 || q->rq.max_memory > lim.max_memory || q->rq.threads > 4 ||
	    q->rq.threads == 0)
		__builtin_trap();
	/* the engine checks the request before it looks for the store */
	struct query_result *res = malloc(sizeof(*res));
	if (res) {
		int qr = query_run(&q->rq, res);
		if (qr >= 0 || (qr != -ENOENT && !res->err[0]))
			__builtin_trap();
		query_result_free(res);
		free(res);
	}
	free(q);
	return 0;
}
