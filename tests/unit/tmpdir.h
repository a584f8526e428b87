/* Where unit tests make their files: under $TMPDIR, else /tmp. tests/run.sh gives each
 * test binary a directory of its own there and removes it when the test passes, so a
 * failed test leaves its files for a look and a passing one leaves nothing. */
#ifndef TF_TEST_TMPDIR_H
#define TF_TEST_TMPDIR_H

#include <stdio.h>
#include <stdlib.h>

#define TEST_PATH_MAX 256

/* buf = "<dir>/<name>.XXXXXX", for mkdtemp or mkstemp. */
static inline void test_tmp_template(char *buf, size_t len, const char *name)
{
	const char *t = getenv("TMPDIR");
	snprintf(buf, len, "%s/%s.XXXXXX", t && *t ? t : "/tmp", name);
}

/* A new directory named after name in buf (as above); buf, or NULL with errno. */
static inline char *test_mkdtemp(char *buf, size_t len, const char *name)
{
	test_tmp_template(buf, len, name);
	return mkdtemp(buf);
}

#endif
