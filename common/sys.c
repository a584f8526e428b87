/* sys.c: see sys.h. */
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <linux/capability.h>
#include <sys/prctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>

#include "log.h"
#include "sys.h"

uint64_t sys_wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* PR_SET_KEEPCAPS saves the permitted set across setuid; capset afterwards makes the
 * kept capabilities the only ones, effective. */
static int keep_caps_step(uint32_t caps, int after_setuid)
{
	struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct d[2];

	if (!after_setuid)
		return prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0);
	memset(d, 0, sizeof(d));
	d[0].effective = d[0].permitted = caps;
	return (int)syscall(SYS_capset, &h, d);
}

int sys_drop_privileges(const char *user, uint32_t keep_caps)
{
	if (!user || !*user || !strcmp(user, "root") || geteuid() != 0)
		return 0;
	struct passwd *pw = getpwnam(user);
	if (!pw) {
		log_err("user '%s' does not exist (set --user root to keep privileges)", user);
		return -1;
	}
	if ((keep_caps && keep_caps_step(keep_caps, 0) < 0) || setgroups(0, NULL) < 0 ||
	    setgid(pw->pw_gid) < 0 || setuid(pw->pw_uid) < 0 ||
	    (keep_caps && keep_caps_step(keep_caps, 1) < 0)) {
		log_err("cannot drop privileges to '%s': %s", user, strerror(errno));
		return -1;
	}
	log_info("running as user %s%s", user, keep_caps ? " (keeping the capabilities it needs)" : "");
	return 0;
}

void sys_raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

#define BIG_ALIGN ((size_t)2 << 20)     /* a huge page on x86-64 and arm64 (4 KiB pages) */

void *sys_big_zalloc(size_t len)
{
	if (len < BIG_ALIGN)
		return calloc(1, len ? len : 1);
	if (len > SIZE_MAX - BIG_ALIGN)
		return NULL;
	/* map BIG_ALIGN more than asked and unmap what lies outside the aligned part */
	uint8_t *m = mmap(NULL, len + BIG_ALIGN, PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (m == MAP_FAILED)
		return NULL;
	size_t head = (BIG_ALIGN - (uintptr_t)m % BIG_ALIGN) % BIG_ALIGN;
	size_t pg = (size_t)sysconf(_SC_PAGESIZE), end = (len + pg - 1) / pg * pg;
	if (head)
		munmap(m, head);
	munmap(m + head + end, BIG_ALIGN - head);      /* the mapping ran to end + BIG_ALIGN */
#ifdef MADV_HUGEPAGE
	madvise(m + head, len, MADV_HUGEPAGE);  /* advice: without THP, small pages */
#endif
	return m + head;
}

void sys_big_free(void *p, size_t len)
{
	if (!p)
		return;
	if (len < BIG_ALIGN)
		free(p);
	else
		munmap(p, len);
}
