/* sys.c: see sys.h. */
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "sys.h"

uint64_t sys_wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

int sys_drop_privileges(const char *user)
{
	if (!user || !*user || !strcmp(user, "root") || geteuid() != 0)
		return 0;
	struct passwd *pw = getpwnam(user);
	if (!pw) {
		log_err("user '%s' does not exist (set --user root to keep privileges)", user);
		return -1;
	}
	if (setgroups(0, NULL) < 0 || setgid(pw->pw_gid) < 0 || setuid(pw->pw_uid) < 0) {
		log_err("cannot drop privileges to '%s': %s", user, strerror(errno));
		return -1;
	}
	log_info("running as user %s", user);
	return 0;
}
