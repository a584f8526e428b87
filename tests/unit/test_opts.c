/* test_opts.c: one option table drives flags, config files and help. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "opts.h"
#include "tmpdir.h"

struct tcfg {
	const char *config;
	uint32_t timeout;
	const char *name;
	struct opt_list dest;
	int promisc;
	int help;
};

#define O(f) offsetof(struct tcfg, f)
static const struct opt_def defs[] = {
	{ "config", 'c', OPT_STR, O(config), 0, 0, "FILE", "config file" },
	{ "active-timeout", 't', OPT_UINT, O(timeout), 1, 3600, "SECS", "timeout" },
	{ "name", 0, OPT_STR, O(name), 0, 0, "S", "a name" },
	{ "collector", 'n', OPT_LIST, O(dest), 0, 0, "H:P", "where" },
	{ "promisc", 0, OPT_BOOL, O(promisc), 0, 0, NULL, "promisc" },
	{ "help", 'h', OPT_ACTION, O(help), 0, 0, NULL, "help" },
	{ NULL, 0, 0, 0, 0, 0, NULL, NULL },
};

static char path[TEST_PATH_MAX];
static struct opt_store store;

static void write_conf(const char *text)
{
	test_tmp_template(path, sizeof(path), "tf-opts");
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
}

static int parse(struct tcfg *c, char **argv, char *err)
{
	int argc = 0;
	while (argv[argc])
		argc++;
	memset(c, 0, sizeof(*c));
	c->timeout = 60;
	c->promisc = 1;
	return opt_parse(defs, c, argc, argv, &store, err, 256);
}

static void test_flags(void **st)
{
	(void)st;
	struct tcfg c;
	char err[256];
	char *argv[] = { "p", "-t", "30", "--no-promisc", "-n", "a:1", "--collector", "b:2",
			 "tcp", "and", "port", "1", NULL };
	int first = parse(&c, argv, err);
	assert_int_equal(first, 8);
	assert_int_equal(c.timeout, 30);
	assert_int_equal(c.promisc, 0);
	assert_int_equal(c.dest.n, 2);
	assert_string_equal(c.dest.v[1], "b:2");
}

static void test_bad_values(void **st)
{
	(void)st;
	struct tcfg c;
	char err[256];
	char *a1[] = { "p", "-t", "0", NULL };
	assert_int_equal(parse(&c, a1, err), -1);
	assert_non_null(strstr(err, "out of range"));
	char *a2[] = { "p", "--active-timeout", "ten", NULL };
	assert_int_equal(parse(&c, a2, err), -1);
	assert_non_null(strstr(err, "not a number"));
	char *a3[] = { "p", "--bogus", NULL };
	assert_int_equal(parse(&c, a3, err), -1);
	assert_non_null(strstr(err, "--bogus"));
	char *a4[] = { "p", "-t", "2k", NULL };
	assert_int_equal(parse(&c, a4, err), 3);
	assert_int_equal(c.timeout, 2000);
}

static void test_file_and_override(void **st)
{
	(void)st;
	struct tcfg c;
	char err[256];
	write_conf("# comment\nactive_timeout = 120;\nname = \"x\";\n"
		   "collector = [\"f:1\", \"f:2\"];\npromisc = false;\n");
	char *a1[] = { "p", "-c", path, NULL };
	assert_int_equal(parse(&c, a1, err), 3);
	assert_int_equal(c.timeout, 120);
	assert_string_equal(c.name, "x");
	assert_int_equal(c.dest.n, 2);
	assert_int_equal(c.promisc, 0);
	/* flags override the file, wherever -c stands */
	char *a2[] = { "p", "-t", "5", "-n", "cli:3", "-c", path, NULL };
	assert_int_equal(parse(&c, a2, err), 7);
	assert_int_equal(c.timeout, 5);
	assert_int_equal(c.dest.n, 1);
	assert_string_equal(c.dest.v[0], "cli:3");
	unlink(path);
}

static void test_file_errors(void **st)
{
	(void)st;
	struct tcfg c;
	char err[256];
	char *a[] = { "p", "-c", path, NULL };
	write_conf("active_timeout = 10;\nnmae = \"typo\";\n");
	assert_int_equal(parse(&c, a, err), -1);
	assert_non_null(strstr(err, ":2: unknown setting 'nmae'"));
	unlink(path);
	write_conf("active_timeout = 10;\nname = ;\n");
	assert_int_equal(parse(&c, a, err), -1);
	assert_non_null(strstr(err, ":2:")); /* libconfig names the line of the error */
	unlink(path);
	write_conf("\n\nactive_timeout = 99999;\n");
	assert_int_equal(parse(&c, a, err), -1);
	assert_non_null(strstr(err, ":3: active_timeout = 99999 is out of range"));
	unlink(path);
	write_conf("name = 5;\n");
	assert_int_equal(parse(&c, a, err), -1);
	assert_non_null(strstr(err, ":1: name must be a string"));
	unlink(path);
	char *b[] = { "p", "-c", "/nonexistent/x.conf", NULL };
	assert_int_equal(parse(&c, b, err), -1);
	assert_non_null(strstr(err, "/nonexistent/x.conf: cannot read"));
}

static void test_help_lists_every_option(void **st)
{
	(void)st;
	struct tcfg d = { NULL, 60, NULL, { { NULL }, 0 }, 1, 0 };
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	opt_print_help(defs, &d, f);
	fclose(f);
	for (const struct opt_def *o = defs; o->name; o++)
		assert_non_null(strstr(buf, o->name));
	assert_non_null(strstr(buf, "active_timeout = N; default 60."));
	assert_non_null(strstr(buf, "--[no-]promisc"));
	free(buf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_flags),
		cmocka_unit_test(test_bad_values),
		cmocka_unit_test(test_file_and_override),
		cmocka_unit_test(test_file_errors),
		cmocka_unit_test(test_help_lists_every_option),
	};
	int r = cmocka_run_group_tests(tests, NULL, NULL);
	opt_store_free(&store);
	return r;
}
