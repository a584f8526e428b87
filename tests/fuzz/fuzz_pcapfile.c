/* fuzz_pcapfile.c: libFuzzer target for the capture-file reader (cap_pcap.c). The
 * input is a whole file. It is read twice, as a regular file (mapped) and through a
 * pipe (read() into a buffer, records crossing its refills), and both readings must
 * hand out the same records; every record must lie inside what was read.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "cap.h"

static void check(int cond)
{
	if (!cond)
		abort();
}

struct summary {
	uint64_t records;
	uint64_t caplen_sum;
	uint64_t ts_sum;
	uint64_t byte_sum;  /* every byte of every record, so each is read */
	int end;            /* CAP_EOF, or the error */
};

static void read_all(const char *path, struct summary *s)
{
	char err[256];
	struct cap_pkt pk[64];
	struct cap *c = cap_open_pcap(path, NULL, err, sizeof(err));

	memset(s, 0, sizeof(*s));
	if (!c) {
		s->end = -1;
		return;
	}
	for (;;) {
		int n = cap_next(c, pk, 64, 0);
		if (n < 0) {
			s->end = n;
			break;
		}
		check(n <= 64);
		for (int i = 0; i < n; i++) {
			check(pk[i].caplen == 0 || pk[i].data != NULL);
			s->records++;
			s->caplen_sum += pk[i].caplen;
			s->ts_sum += pk[i].ts_ns;
			for (uint32_t j = 0; j < pk[i].caplen; j++)
				s->byte_sum += pk[i].data[j];
		}
	}
	cap_close(c);
}

struct feed {
	int fd;
	const uint8_t *data;
	size_t size;
};

static void *feeder(void *arg)
{
	struct feed *f = arg;
	size_t off = 0;
	while (off < f->size) {
		ssize_t n = write(f->fd, f->data + off, f->size - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break; /* the reader stopped early (a damaged file) */
		off += (size_t)n;
	}
	close(f->fd);
	return NULL;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	signal(SIGPIPE, SIG_IGN); /* the feeder meets a reader that stopped early */
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char path[64];
	struct summary a, b;

	int mfd = memfd_create("fuzz_pcapfile", 0);
	check(mfd >= 0);
	check(write(mfd, data, size) == (ssize_t)size);
	snprintf(path, sizeof(path), "/proc/self/fd/%d", mfd);
	read_all(path, &a);
	close(mfd);

	int p[2];
	check(pipe(p) == 0);
	struct feed f = { p[1], data, size };
	pthread_t t;
	check(pthread_create(&t, NULL, feeder, &f) == 0);
	snprintf(path, sizeof(path), "/proc/self/fd/%d", p[0]);
	read_all(path, &b);
	close(p[0]);
	pthread_join(t, NULL);

	/* libpcap reads what our reader does not (pcapng): the same either way too. */
	check(a.records == b.records && a.caplen_sum == b.caplen_sum &&
	      a.ts_sum == b.ts_sum && a.byte_sum == b.byte_sum && a.end == b.end);
	return 0;
}
