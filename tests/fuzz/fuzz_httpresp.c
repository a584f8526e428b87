/* fuzz_httpresp.c: HTTP responses as tapflow-query --remote reads them from a server
 * it does not control. Input: the bytes received. The run traps if a parse claims more
 * bytes than it was given, a body that is not NUL-terminated at its length, a status
 * outside 100..999, or if a complete answer stops parsing when more bytes follow it.
 * Seeds: tests/fuzz/seeds/fuzz_httpresp/ (one response per file).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "httpcli.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct httpcli_resp r;
	long n = httpcli_parse_response((const char *)data, size, &r);
	if (n == -1 || n == -2)
		return 0;
	if (n <= 0 || (size_t)n > size || !r.body || r.body[r.len] != 0 || r.status < 100 ||
	    r.status > 999 || !memchr(r.ctype, 0, sizeof(r.ctype)))
		__builtin_trap();
	size_t len = r.len;
	httpcli_resp_free(&r);
	/* trailing bytes (a pipelined answer) never turn a complete answer bad */
	if ((size_t)n < size) {
		long m = httpcli_parse_response((const char *)data, (size_t)n, &r);
		if (m != n || r.len != len)
			__builtin_trap();
		httpcli_resp_free(&r);
	}
	return 0;
}
