// SPDX-License-Identifier: GPL-2.0
/*
 * pvtime_sleepcheck: one thread per online CPU, pinned, sleeps in absolute
 * CLOCK_MONOTONIC steps for a while and checks that no wakeup comes before
 * its target and none is lost. Used around a snapshot/restore or a
 * migration: if an armed deadline were dropped on the way, an idle CPU
 * would never wake and the run would time out.
 *
 * Each CPU is judged on its own: a thread that could not be pinned, or
 * that never woke, fails its CPU's result.
 *
 * Usage: pvtime_sleepcheck [SECONDS [PERIOD_US]]   (defaults: 8 s, 10000 us)
 * Prints TAP, one result per CPU; exit 0 when every CPU passed.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
	int cpu, pin_err, sleep_err;
	bool started;
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
	if (sched_setaffinity(0, sizeof(set), &set)) {
		w->pin_err = errno;
		return NULL;
	}
	target = now_ns();
	end = target + w->seconds * NSEC_PER_SEC;
	while (target < end) {
		target += w->period_ns;
		ts.tv_sec = target / NSEC_PER_SEC;
		ts.tv_nsec = target % NSEC_PER_SEC;
		do
			w->sleep_err = clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
		while (w->sleep_err == EINTR);
		if (w->sleep_err)
			return NULL;
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
	int n = sysconf(_SC_NPROCESSORS_ONLN), i, failed = 0, bad;
	struct worker *w = calloc(n, sizeof(*w));

	if (!w || seconds <= 0 || period <= 0)
		return 2;
	printf("TAP version 13\n1..%d\n", n);
	for (i = 0; i < n; i++) {
		w[i].cpu = i;
		w[i].seconds = seconds;
		w[i].period_ns = period;
		w[i].pin_err = pthread_create(&w[i].thread, NULL, run, &w[i]);
		w[i].started = !w[i].pin_err;
	}
	for (i = 0; i < n; i++) {
		if (w[i].started)
			pthread_join(w[i].thread, NULL);
		bad = w[i].pin_err || w[i].sleep_err || w[i].early || w[i].lost ||
		      !w[i].wakeups;
		failed += bad;
		printf("# cpu%d: %lld wakeups, %lld early, %lld later than %lld ms, max lateness %lld us%s%s\n",
		       i, (long long)w[i].wakeups, (long long)w[i].early,
		       (long long)w[i].lost, LOST_NS / 1000000,
		       (long long)w[i].max_late_ns / 1000,
		       w[i].pin_err ? ", not run there: " : "",
		       w[i].pin_err ? strerror(w[i].pin_err) : "");
		if (w[i].sleep_err)
			printf("# cpu%d: clock_nanosleep: %s\n", i, strerror(w[i].sleep_err));
		printf("%sok %d cpu%d: wakeups, none before its absolute target, none lost\n",
		       bad ? "not " : "", i + 1, i);
	}
	return failed != 0;
}
