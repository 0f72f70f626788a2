// SPDX-License-Identifier: GPL-2.0
/*
 * pvtime_sleepcheck: one thread per online CPU, pinned, sleeps in absolute
 * CLOCK_MONOTONIC steps for a while and checks that no wakeup comes before
 * its target and none is lost. Used around a snapshot/restore or a
 * migration: if an armed deadline were dropped on the way, an idle CPU
 * would never wake and the run would time out.
 *
 * Usage: pvtime_sleepcheck [SECONDS [PERIOD_US]]   (defaults: 8 s, 10000 us)
 * Prints TAP; exit 0 when both checks pass.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#define NSEC_PER_SEC	1000000000LL
/*
 * Lateness bound for "not lost": a wakeup more than this late is counted as
 * lost. Generous because TCG runs vCPUs as host threads that the host may
 * deschedule; a dropped deadline shows up as seconds (or a hang), not ms.
 */
#define LOST_NS		(500 * 1000 * 1000LL)

struct worker {
	pthread_t thread;
	int cpu;
	int64_t seconds, period_ns;
	int64_t early, lost, wakeups, max_late_ns;
};

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * NSEC_PER_SEC + ts.tv_nsec;
}

static void *run(void *arg)
{
	struct worker *w = arg;
	cpu_set_t set;
	int64_t target, end, t, late;
	struct timespec ts;

	CPU_ZERO(&set);
	CPU_SET(w->cpu, &set);
	if (sched_setaffinity(0, sizeof(set), &set))
		return NULL;
	target = now_ns();
	end = target + w->seconds * NSEC_PER_SEC;
	while (target < end) {
		target += w->period_ns;
		ts.tv_sec = target / NSEC_PER_SEC;
		ts.tv_nsec = target % NSEC_PER_SEC;
		while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL))
			;
		t = now_ns();
		late = t - target;
		w->wakeups++;
		if (late < 0)
			w->early++;
		else if (late > LOST_NS)
			w->lost++;
		if (late > w->max_late_ns)
			w->max_late_ns = late;
		/* Do not try to catch up after a long stall: re-base. */
		if (late > w->period_ns)
			target = t;
	}
	return NULL;
}

int main(int argc, char **argv)
{
	int64_t seconds = argc > 1 ? atoll(argv[1]) : 8;
	int64_t period = (argc > 2 ? atoll(argv[2]) : 10000) * 1000;
	int n = sysconf(_SC_NPROCESSORS_ONLN), i;
	int64_t early = 0, lost = 0, wakeups = 0, max_late = 0;
	struct worker *w = calloc(n, sizeof(*w));

	if (!w || seconds <= 0 || period <= 0)
		return 2;
	printf("TAP version 13\n1..2\n");
	for (i = 0; i < n; i++) {
		w[i].cpu = i;
		w[i].seconds = seconds;
		w[i].period_ns = period;
		pthread_create(&w[i].thread, NULL, run, &w[i]);
	}
	for (i = 0; i < n; i++) {
		pthread_join(w[i].thread, NULL);
		early += w[i].early;
		lost += w[i].lost;
		wakeups += w[i].wakeups;
		if (w[i].max_late_ns > max_late)
			max_late = w[i].max_late_ns;
	}
	printf("# %d CPUs, %lld wakeups, max lateness %lld us\n", n,
	       (long long)wakeups, (long long)max_late / 1000);
	printf("%sok 1 no wakeup before its absolute target (%lld early)\n",
	       early ? "not " : "", (long long)early);
	printf("%sok 2 no wakeup lost (%lld later than %lld ms)\n",
	       lost || !wakeups ? "not " : "", (long long)lost,
	       LOST_NS / 1000000);
	return early || lost || !wakeups;
}
