// SPDX-License-Identifier: GPL-2.0
/*
 * burst BURST_US PERIOD_US [PRIO]: a SCHED_FIFO CPU hog that runs in
 * bursts. Every PERIOD_US it spins for BURST_US on CLOCK_MONOTONIC, then
 * sleeps until the next period (absolute, so the bursts do not drift).
 * Pinned to the CPU it starts on, it preempts whatever runs there
 * (SCHED_OTHER tasks such as a KVM vCPU thread) for BURST_US of every
 * PERIOD_US. Runs until killed. make bench uses it in the nested rig's L1
 * host to preempt L2's vCPU at moments unrelated to L2's timers.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static long long now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int main(int argc, char **argv)
{
	struct sched_param sp = { .sched_priority = 50 };
	long long burst, period, next;
	struct timespec ts;
	cpu_set_t set;
	char *end;

	if (argc < 3 || argc > 4) {
		fprintf(stderr, "usage: burst BURST_US PERIOD_US [PRIO]\n");
		return 2;
	}
	burst = strtoll(argv[1], &end, 10) * 1000;
	if (*end || burst <= 0)
		goto bad;
	period = strtoll(argv[2], &end, 10) * 1000;
	if (*end || period <= burst)
		goto bad;
	if (argc == 4) {
		sp.sched_priority = strtol(argv[3], &end, 10);
		if (*end)
			goto bad;
	}
	CPU_ZERO(&set);
	CPU_SET(sched_getcpu(), &set);
	if (sched_setaffinity(0, sizeof(set), &set) ||
	    sched_setscheduler(0, SCHED_FIFO, &sp)) {
		fprintf(stderr, "burst: %s\n", strerror(errno));
		return 1;
	}
	next = now_ns();
	for (;;) {
		while (now_ns() < next + burst)
			;
		next += period;
		ts.tv_sec = next / 1000000000LL;
		ts.tv_nsec = next % 1000000000LL;
		while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
			;
	}
bad:
	fprintf(stderr, "burst: need 0 < BURST_US < PERIOD_US and a numeric PRIO\n");
	return 2;
}
