/* sys.h: process-level helpers both daemons use: the wall clock in milliseconds and
 * dropping root once sockets are open. */
#ifndef TF_SYS_H
#define TF_SYS_H

#include <stdint.h>

/* Unix time now, in milliseconds (CLOCK_REALTIME). */
uint64_t sys_wall_ms(void);

/* If running as root and user is set (not "" or "root"), switches to that user's uid,
 * gid and no supplementary groups. Returns 0, or -1 after logging why. */
int sys_drop_privileges(const char *user);

#endif
