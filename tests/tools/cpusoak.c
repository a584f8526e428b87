/* cpusoak: how much of each CPU something else used, measured exactly (make bench).
 *
 *   cpusoak -c CPU [-c CPU ...] [-t SECS]
 *
 * Runs one SCHED_IDLE thread pinned to each CPU given, counting turns of a fixed busy
 * loop, until SIGTERM or SIGINT (or SECS seconds). Anything else that runs on that CPU,
 * softirq included, preempts it, so the turns it did not do are the time the CPU spent
 * on other work: other_ns = elapsed_ns - turns / rate, the rate taken from a run on an
 * otherwise idle machine. /proc/stat cannot tell this: with tick accounting (and no
 * IRQ time accounting, as on this machine's kernel) it samples who runs at each timer
 * tick, and softirq time between ticks lands on whatever the tick finds. A CPU kept
 * busy also never sleeps, so the work measured does not include waking it up.
 * Prints one line per CPU when it ends: cpu=N turns=N ns=N. Exit 0, or 1 with a message.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAX_CPUS 64
#define SPIN 1024       /* loop steps a turn: a turn is a few hundred ns */

struct soaker {
	int cpu;
	pthread_t th;
	_Atomic uint64_t turns;
	_Atomic int ready;
};

static _Atomic int stop_flag;

static void *soak(void *arg)
{
	struct soaker *s = arg;
	struct sched_param sp = { 0 };
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(s->cpu, &set);
	if (pthread_setaffinity_np(pthread_self(), sizeof(set), &set) != 0 ||
	    pthread_setschedparam(pthread_self(), SCHED_IDLE, &sp) != 0) {
		atomic_store(&s->ready, -1);
		return NULL;
	}
	atomic_store(&s->ready, 1);
	while (!atomic_load_explicit(&stop_flag, memory_order_relaxed)) {
		for (unsigned i = 0; i < SPIN; i++)
			__asm__ volatile("" ::: "memory");
		atomic_fetch_add_explicit(&s->turns, 1, memory_order_relaxed);
	}
	return NULL;
}

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: cpusoak -c CPU [-c CPU ...] [-t SECS]\n"
		   "  Soaks up the idle time of each CPU with a SCHED_IDLE thread until SIGTERM,\n"
		   "  SIGINT or SECS seconds; prints cpu=N turns=N ns=N per CPU.\n");
}

int main(int argc, char **argv)
{
	static struct soaker s[MAX_CPUS];
	int n = 0, opt, ncpu = (int)sysconf(_SC_NPROCESSORS_CONF), sig;
	double secs = 0;
	sigset_t set;

	while ((opt = getopt(argc, argv, "c:t:h")) != -1) {
		char *end;
		long v;
		switch (opt) {
		case 'c':
			errno = 0;
			v = strtol(optarg, &end, 10);
			if (errno || *end || v < 0 || v >= ncpu || n == MAX_CPUS) {
				fprintf(stderr, "cpusoak: -c %s: not a CPU of this machine (0..%d)\n",
					optarg, ncpu - 1);
				return 1;
			}
			s[n++].cpu = (int)v;
			break;
		case 't':
			secs = strtod(optarg, &end);
			if (*end || !(secs > 0 && secs < 86400)) {
				fprintf(stderr, "cpusoak: -t %s: want seconds, above 0\n", optarg);
				return 1;
			}
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 1;
		}
	}
	if (!n || optind != argc) {
		usage(stderr);
		return 1;
	}
	/* The signals come to sigwait below, in this thread only. */
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGALRM);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	for (int i = 0; i < n; i++) {
		int err = pthread_create(&s[i].th, NULL, soak, &s[i]);
		if (err) {
			fprintf(stderr, "cpusoak: thread: %s\n", strerror(err));
			return 1;
		}
	}
	for (int i = 0; i < n; i++) {
		while (!atomic_load(&s[i].ready))
			usleep(1000);
		if (atomic_load(&s[i].ready) < 0) {
			fprintf(stderr, "cpusoak: cannot pin a SCHED_IDLE thread to CPU %d\n",
				s[i].cpu);
			return 1;
		}
	}
	/* Counting starts once every thread runs where it should. */
	uint64_t t0 = now_ns(), base[MAX_CPUS];
	for (int i = 0; i < n; i++)
		base[i] = atomic_load(&s[i].turns);
	if (secs > 0) {
		timer_t tm;
		struct sigevent ev = { .sigev_notify = SIGEV_SIGNAL, .sigev_signo = SIGALRM };
		struct itimerspec its = { .it_value = { (time_t)secs,
							(long)((secs - (double)(time_t)secs) * 1e9) } };
		if (timer_create(CLOCK_MONOTONIC, &ev, &tm) != 0 || timer_settime(tm, 0, &its, NULL)) {
			fprintf(stderr, "cpusoak: timer: %s\n", strerror(errno));
			return 1;
		}
	}
	sigwait(&set, &sig);
	uint64_t t1 = now_ns();
	for (int i = 0; i < n; i++)
		printf("cpu=%d turns=%" PRIu64 " ns=%" PRIu64 "\n", s[i].cpu,
		       atomic_load(&s[i].turns) - base[i], t1 - t0);
	fflush(stdout);
	atomic_store(&stop_flag, 1);
	for (int i = 0; i < n; i++)
		pthread_join(s[i].th, NULL);
	return 0;
}
