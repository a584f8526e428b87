/* log.c: see log.h. Program-wide settings, written once at start-up. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "log.h"

static const char *log_prog = "tapflow";
static int log_level = LOG_INFO_;

void log_init(const char *prog, int level)
{
	log_prog = prog;
	log_level = level;
}

void log_msg(int level, const char *fmt, ...)
{
	static const char *const names[] = { "error", "warning", "info", "debug" };
	char line[1024];
	va_list ap;
	if (level > log_level)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	/* One write per line so lines from several threads do not interleave. */
	fprintf(stderr, "%s: %s: %s\n", log_prog, names[level < 0 ? 0 : level > 3 ? 3 : level],
		line);
}
