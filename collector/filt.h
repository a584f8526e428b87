/* filt.h: flow filters in nfdump's syntax ("proto tcp and dst port 443",
 * "src net 10.0.0.0/8 and not port 53", "bytes > 10k"), compiled once into a small
 * program evaluated over column blocks of the store. The program also answers, from a
 * block's zone map alone, whether the block can match at all, so queries skip it.
 *
 * Primitives and their meaning are nfdump 1.7's (host/ip, net, port, proto, tos, flags,
 * if, as, vlan, mask, packets, bytes, duration, pps, bps, bpp, icmp-type/-code, next ip,
 * router ip, observation domain id, ipv4/ipv6, any; lists with "in [ ... ]"; and, or,
 * not, &&, ||, !, parentheses, '#' comments), including its quirks (see filt.c). One
 * addition: "port not 53" means "not port 53". nfdump primitives for fields tapflow
 * records lack (mac, mpls, dst tos, dst vlan, out bytes, ...) are refused by name.
 * A compiled filter is never written after filt_compile: threads may share it.
 */
#ifndef TF_FILT_H
#define TF_FILT_H

#include <stddef.h>
#include <stdint.h>

#include "flowrec.h"
#include "store.h"

struct filt;

/* Compiles expr. On error returns NULL, writes a message into err that quotes the
 * offending token and says what was expected, and sets *err_pos (if non-NULL) to the
 * byte offset of that token in expr. An empty or all-blank expr matches everything. */
struct filt *filt_compile(const char *expr, char *err, size_t errlen, size_t *err_pos);
/* Looks up a host name: up to max addresses (16 bytes, IPv4 v4-mapped) into out.
 * Returns how many (at least 1), or -1 with the reason in err. */
typedef int (*filt_resolve_fn)(const char *name, uint8_t (*out)[16], int max, char *err,
			       size_t errlen);
#define FILT_MAX_NAME 253       /* characters in a host name */
#define FILT_MAX_NAME_ADDRS 64  /* addresses a name stands for, at most */

/* As filt_compile, and a host name may stand for an address after host or ip and in
 * their lists (as in nfdump, not after next ip or router ip): resolve looks it up and
 * the filter matches any of its addresses. filt_compile refuses names. */
struct filt *filt_compile_names(const char *expr, filt_resolve_fn resolve, char *err,
				size_t errlen, size_t *err_pos);

/* expr with each host name in it replaced by its addresses ("host NAME" becomes "host
 * in [A, B]", a name in a list its addresses), for a server that refuses names: the
 * command line's --remote. A malloc'd string, or NULL with err and *err_pos as
 * filt_compile's (a bad filter, a name that does not resolve). */
char *filt_expand_names(const char *expr, filt_resolve_fn resolve, char *err, size_t errlen,
			size_t *err_pos);

/* The system's resolver (getaddrinfo: /etc/hosts, then DNS), as a filt_resolve_fn. It
 * blocks while it asks: for the command-line tools, not for a server. */
int filt_resolve_system(const char *name, uint8_t (*out)[16], int max, char *err,
			size_t errlen);

/* Frees f and all it owns; NULL is fine. */
void filt_free(struct filt *f);

/* Store columns (STORE_COLBIT mask) the filter reads. */
uint32_t filt_columns(const struct filt *f);
/* Those of them filt_eval can take as the block's tuple dictionary (store_cols' tuple):
 * tuple members that only leaves on tuple members read. Such a leaf is evaluated once a
 * dictionary entry instead of once a record. */
uint32_t filt_tuple_columns(const struct filt *f);
/* Those of them filt_eval can take as port codes (store_cols' pcodes): port columns that
 * only leaves reading that one column read. Such a leaf is evaluated once a frequent
 * value, and on the exceptions, instead of once a record. */
uint32_t filt_port_code_columns(const struct filt *f);

/* 0 if no record of a block with zone z can match (skip it), 1 if some may. Uses the
 * protocol and IP version sets, the port ranges and the packet and byte sums (which it
 * takes as upper bounds of every record's counts, so they must not wrap). */
int filt_zone_may_match(const struct filt *f, const struct store_zone *z);

/* Evaluates the filter over the c->n records of c (which must hold filt_columns(f); those
 * of filt_tuple_columns(f) may come as the tuple dictionary, those of
 * filt_port_code_columns(f) as port codes), writes the indices of
 * matching records in increasing order to sel (room for c->n), and returns how many
 * matched. Filters with "or" take scratch memory per call; should that fail, or a
 * needed column be missing from c->mask (it then reads as zero), the records are
 * matched one by one instead: same result, slower. */
uint32_t filt_eval(const struct filt *f, const struct store_cols *c, uint32_t *sel);

/* 1 if the single record r matches, else 0. */
int filt_match(const struct filt *f, const struct flow_rec *r);

#endif
