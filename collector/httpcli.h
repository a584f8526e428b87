/* httpcli.h: a minimal HTTP/1.1 client over one TCP connection, for `tapflow-query
 * --remote URL`: plain http only (put TLS in front with a proxy if the API crosses an
 * untrusted network), GET, Content-Length or chunked bodies, a bounded response. Owns
 * the translation of tapflow-query's options into /api/v1/query parameters.
 */
#ifndef TF_HTTPCLI_H
#define TF_HTTPCLI_H

#include <stddef.h>
#include <stdint.h>

#define HTTPCLI_MAX_HOST 256
#define HTTPCLI_MAX_PREFIX 512
#define HTTPCLI_DEFAULT_PORT 9996
#define HTTPCLI_MAX_RESPONSE (1ull << 30)

struct httpcli_url {
	char host[HTTPCLI_MAX_HOST];    /* name or address, IPv6 without brackets */
	char port[8];
	char prefix[HTTPCLI_MAX_PREFIX]; /* path before /api/v1/..., no trailing '/' */
};

struct httpcli_resp {
	unsigned status;
	char *body;                     /* malloc'd, NUL-terminated; free() it */
	size_t len;
	char ctype[128];                /* Content-Type, "" if none */
	char www_auth[128];             /* WWW-Authenticate, "" if none */
	unsigned retry_after;           /* Retry-After in seconds, 0 if none */
};

/* Parses "http://HOST[:PORT][/PREFIX]" (HOST a name, an IPv4 address or [IPV6]; port
 * 9996 by default). Returns 0, or -EINVAL with a message in err. */
int httpcli_parse_url(const char *url, struct httpcli_url *u, char *err, size_t errlen);

/* Parses a complete response buf[0..len) (status line, headers, body by
 * Content-Length, chunked, or up to the end). Returns bytes consumed (> 0) with *r
 * filled (r->body malloc'd), -1 malformed, -2 incomplete. */
long httpcli_parse_response(const char *buf, size_t len, struct httpcli_resp *r);

/* GETs u's prefix + target (which starts with '/') with "Authorization: Bearer token"
 * when token is non-empty, within timeout_ms for the whole exchange. Returns 0 with *r
 * filled (any status), or a negative errno with a message in err. */
int httpcli_get(const struct httpcli_url *u, const char *target, const char *token,
		uint32_t timeout_ms, struct httpcli_resp *r, char *err, size_t errlen);

/* Appends s percent-encoded (RFC 3986 unreserved bytes kept) to buf[*n..cap). Returns 0,
 * or -1 if it does not fit. */
int httpcli_urlencode(char *buf, size_t *n, size_t cap, const char *s);

/* tapflow-query's remote mode. If argv holds --remote URL (or --remote=URL), runs the
 * whole command against the API: the same options become request parameters, the
 * token comes from --token or $TAPFLOW_TOKEN, the answer's body goes to stdout as is.
 * Returns the exit status (0 ok, 1 runtime error, 2 usage or a refused request), or -1
 * when there is no --remote (the caller then answers locally). */
int httpcli_query_main(int argc, char **argv);

/* The remote mode's description, shared by both --help texts. */
extern const char httpcli_remote_help[];

/* Frees r's body (r itself is the caller's); r may be freed twice. */
void httpcli_resp_free(struct httpcli_resp *r);

#endif
