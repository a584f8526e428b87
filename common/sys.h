/* sys.h: process-level helpers the programs share: the wall clock in milliseconds,
 * dropping root once sockets are open, big zeroed allocations, the descriptor limit. */
#ifndef TF_SYS_H
#define TF_SYS_H

#include <stddef.h>
#include <stdint.h>

/* Unix time now, in milliseconds (CLOCK_REALTIME). */
uint64_t sys_wall_ms(void);

/* If running as root and user is set (not "" or "root"), switches to that user's uid,
 * gid and no supplementary groups. keep_caps is a mask of capabilities (1u << CAP_X,
 * the first 32) the process keeps, permitted and effective, across the switch (the
 * probe's eBPF backend needs CAP_NET_ADMIN to take its TC filters off at exit); 0
 * keeps none. Returns 0, or -1 after logging why. */
int sys_drop_privileges(const char *user, uint32_t keep_caps);

/* Zeroed memory for big, long-lived scratch arrays (a query's decoded columns): from
 * 2 MiB up, a 2 MiB-aligned private mapping the kernel may back with transparent huge
 * pages, so touching it costs a page fault and a zeroing per 2 MiB instead of per 4 KiB
 * (in a VM each fault costs microseconds); below, calloc. NULL when out of memory.
 * Give back with sys_big_free() and the same len. */
void *sys_big_zalloc(size_t len);
void sys_big_free(void *p, size_t len);

/* Raises the soft limit on open descriptors to the hard one (a query holds its store
 * files open: query.c's list_store). Best effort. */
void sys_raise_nofile(void);

#endif
