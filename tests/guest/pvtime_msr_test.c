// SPDX-License-Identifier: GPL-2.0
/*
 * Guest-side conformance test of a hypervisor's PV clock event device
 * (MSR_KVM_PV_CLOCKEVENT_CTRL / _DEADLINE, Documentation/virt/pvtime.rst),
 * driven through /dev/cpu/N/msr from a guest whose kernel does not use the
 * device (an unpatched kernel, or one booted with the fallback parameter).
 *
 * An MSR access that raises #GP makes pread()/pwrite() on /dev/cpu/N/msr
 * fail with EIO.
 *
 * Vector. The device injects the vector the guest wrote. This kernel has no
 * handler for the device, so the test uses a system vector that a guest on
 * a KVM-signature hypervisor never installs: HYPERV_STIMER0_VECTOR (0xed),
 * set up only when Linux runs on Hyper-V. The IDT routes such a vector to
 * spurious_interrupt(), which acknowledges it, logs one info line and
 * counts it in the "SPU" row of /proc/interrupts. That count is how the
 * test sees injections. Device vectors (below 0xeb) are not used: they may
 * belong to a real device on some CPU. LOCAL_TIMER_VECTOR is not used: it
 * would run the stock tick handler early.
 *
 * kvm-clock "now". Deadlines are absolute kvm-clock nanoseconds. Once the
 * kvm-clock clocksource has been enabled, the kernel maps vCPU 0's pvclock
 * structure read-only into every process (the "[vvar_vclock]" mapping, for
 * the vDSO). With PVCLOCK_TSC_STABLE_BIT set that structure is valid on
 * every vCPU, and system_time + scale(rdtsc - tsc_timestamp) is exactly the
 * timebase the hypervisor uses for the deadline. Without the stable bit
 * the timing tests run on CPU 0 only.
 *
 * Not firing early. A read of DEADLINE returns 0 once the timer expired.
 * The test reads DEADLINE and *then* kvm-clock: if the read returned 0 and
 * kvm-clock, read after it, is still before the deadline, the timer
 * certainly expired early. This can miss an early expiry shorter than one
 * poll iteration but never reports a false one.
 *
 * Usage: pvtime_msr_test [--cpus N] [--vector V] [--fuzz N]
 * (--fuzz: random accesses per CPU of the fuzz test, default 5000)
 * Exit: 0 all passed, 1 a test failed, 4 skipped (no /dev/cpu/0/msr, or the
 * kernel is using the device).
 */
#define _GNU_SOURCE
#include <cpuid.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define ARRAY_SIZE(a)	(sizeof(a) / sizeof((a)[0]))

#define KSFT_PASS	0
#define KSFT_FAIL	1
#define KSFT_SKIP	4

#define KVM_SIGNATURE			"KVMKVMKVM\0\0\0"
#define KVM_CPUID_SIGNATURE		0x40000000u
#define KVM_FEATURE_CLOCKSOURCE2	3
#define KVM_FEATURE_PV_CLOCKEVENT	18

#define MSR_KVM_WALL_CLOCK_NEW		0x4b564d00u
#define MSR_KVM_SYSTEM_TIME_NEW		0x4b564d01u
#define MSR_KVM_PV_CLOCKEVENT_CTRL	0x4b564d09u
#define MSR_KVM_PV_CLOCKEVENT_DEADLINE	0x4b564d0au

#define CTRL_ENABLE		(1ull << 0)
#define CTRL_VECTOR_SHIFT	8
#define CTRL_VECTOR(v)		((uint64_t)(v) << CTRL_VECTOR_SHIFT)
#define CTRL_VECTOR_MASK	CTRL_VECTOR(0xff)
#define CTRL_RESERVED		(~(CTRL_ENABLE | CTRL_VECTOR_MASK))
#define FIRST_VALID_VECTOR	32

#define DEFAULT_VECTOR		0xed	/* HYPERV_STIMER0_VECTOR, see above */
#define ALT_VECTOR		0xee	/* HYPERV_REENLIGHTENMENT_VECTOR */

#define NSEC_PER_USEC		1000ull
#define NSEC_PER_MSEC		1000000ull
#define NSEC_PER_SEC		1000000000ull

/*
 * A deadline no kvm-clock reaches during the test when kvm-clock "now" is
 * unknown: 2^62 ns is 146 years after the hypervisor's clock origin.
 */
#define FAR_DEADLINE		(1ull << 62)
/* A deadline that has certainly passed: kvm-clock is past 1 ns at boot. */
#define PAST_DEADLINE		1ull

/*
 * How long an expiry may take to show (DEADLINE reads 0, SPU grows). Under
 * TCG the vCPU threads share few host CPUs and run slowly, so this is far
 * above the expected microseconds; it only separates "late" from "lost".
 */
#define FIRE_TIMEOUT_NS		(1000 * NSEC_PER_MSEC)
/* Time for an injected interrupt to be taken and counted. */
#define SETTLE_NS		(20 * NSEC_PER_MSEC)
/* How long a timer that must not fire is watched. */
#define QUIET_NS		(200 * NSEC_PER_MSEC)

#define STORM_WRITES		10000
/* Accesses of the fuzz per CPU, unless --fuzz says otherwise */
#define FUZZ_ACCESSES		5000
/*
 * Vectors of the fuzz's enabled CTRL values: whatever fires during the
 * fuzz is injected with one of them, and must be harmless when it comes
 * unasked. RESCHEDULE_VECTOR and CALL_FUNCTION_SINGLE_VECTOR are: their
 * handlers find nothing to do, and neither logs a line.
 */
#define FUZZ_VECTOR		0xfd
#define FUZZ_VECTOR_ALT		0xfb
#define PAST_STORM_WRITES	32	/* each logs a line: keep it small */
#define TIMING_ITERS		20

#define MAX_CPUS		64

/* ----------------------------------------------------------------------
 * TAP
 */

static unsigned int tap_count, tap_failed, tap_plan;
static bool cur_ok;

static void diag(const char *fmt, ...)
{
	va_list ap;

	printf("# ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
}

static void tap_begin(void)
{
	cur_ok = true;
}

static void tap_end(const char *desc)
{
	tap_count++;
	if (!cur_ok)
		tap_failed++;
	printf("%sok %u - %s\n", cur_ok ? "" : "not ", tap_count, desc);
}

static void tap_skip(const char *desc, const char *reason)
{
	printf("ok %u - %s # SKIP %s\n", ++tap_count, desc, reason);
}

#define CHECK(cond, ...) do {			\
	if (!(cond)) {				\
		cur_ok = false;			\
		diag(__VA_ARGS__);		\
	}					\
} while (0)

static int ncpus;
static int cpus[MAX_CPUS];
/*
 * What this test did to each vCPU's device, counted the way the hypervisor
 * counts it: accesses to the two MSRs that raised #GP, and accepted
 * non-zero DEADLINE writes (arms). finish() prints them so that the harness
 * can hold them against the hypervisor's own counters; they are exact only
 * while the guest kernel leaves the device alone, which this test requires.
 */
static uint64_t n_gp[MAX_CPUS], n_arm[MAX_CPUS];

static int finish(void)
{
	int i;

	/* kselftest's rule: the plan and the results must agree. */
	if (tap_count != tap_plan) {
		printf("# Planned tests != run tests (%u != %u)\n", tap_plan, tap_count);
		tap_failed++;
	}
	printf("# %u tests, %u failed\n", tap_count, tap_failed);
	for (i = 0; i < ncpus; i++)
		printf("# PVTIME-QOM cpu=%d x-pvce-gps=%" PRIu64 " x-pvce-arms=%" PRIu64 "\n",
		       cpus[i], n_gp[i], n_arm[i]);
	return tap_failed ? KSFT_FAIL : KSFT_PASS;
}

/* ----------------------------------------------------------------------
 * Time, CPUs, files
 */

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * NSEC_PER_SEC + ts.tv_nsec;
}

static void sleep_ns(uint64_t ns)
{
	struct timespec ts = {
		.tv_sec = ns / NSEC_PER_SEC,
		.tv_nsec = ns % NSEC_PER_SEC,
	};

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

static int pin_to_cpu(int cpu)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	return sched_setaffinity(0, sizeof(set), &set) ? -errno : 0;
}

/* Pins the caller to CPU @idx; a CPU it cannot run on fails the test. */
static bool pinned(int idx)
{
	int ret = pin_to_cpu(cpus[idx]);

	CHECK(!ret, "cpu%d: cannot run there: %s", cpus[idx], strerror(-ret));
	return !ret;
}

static int read_text(const char *path, char *buf, size_t size)
{
	ssize_t len;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	len = read(fd, buf, size - 1);
	close(fd);
	if (len < 0)
		return -errno;
	buf[len] = '\0';
	if (len && buf[len - 1] == '\n')
		buf[--len] = '\0';
	return len;
}

static int write_text(const char *path, const char *text)
{
	ssize_t len;
	int fd;

	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	len = write(fd, text, strlen(text));
	close(fd);
	return len < 0 ? -errno : 0;
}

/* ----------------------------------------------------------------------
 * MSRs through /dev/cpu/N/msr: 0, or -EIO for #GP, or another -errno.
 */

static int msr_fd[MAX_CPUS];

static bool is_pv_msr(uint32_t msr)
{
	return msr == MSR_KVM_PV_CLOCKEVENT_CTRL ||
	       msr == MSR_KVM_PV_CLOCKEVENT_DEADLINE;
}

static int rdmsr(int idx, uint32_t msr, uint64_t *val)
{
	int ret = pread(msr_fd[idx], val, 8, msr) == 8 ? 0 : -errno;

	if (ret == -EIO && is_pv_msr(msr))
		n_gp[idx]++;
	return ret;
}

static int wrmsr(int idx, uint32_t msr, uint64_t val)
{
	int ret = pwrite(msr_fd[idx], &val, 8, msr) == 8 ? 0 : -errno;

	if (ret == -EIO && is_pv_msr(msr))
		n_gp[idx]++;
	if (!ret && msr == MSR_KVM_PV_CLOCKEVENT_DEADLINE && val)
		n_arm[idx]++;
	return ret;
}

static uint64_t rd(int idx, uint32_t msr)
{
	uint64_t val = 0xdeadbeefdeadbeefull;
	int ret = rdmsr(idx, msr, &val);

	CHECK(!ret, "cpu%d: read of MSR %#x failed: %s", cpus[idx], msr,
	      strerror(-ret));
	return val;
}

static void wr(int idx, uint32_t msr, uint64_t val)
{
	int ret = wrmsr(idx, msr, val);

	CHECK(!ret, "cpu%d: write %#" PRIx64 " to MSR %#x failed: %s",
	      cpus[idx], val, msr, strerror(-ret));
}

/* Expects the write to raise #GP. */
static void wr_gp(int idx, uint32_t msr, uint64_t val)
{
	int ret = wrmsr(idx, msr, val);

	CHECK(ret == -EIO, "cpu%d: write %#" PRIx64 " to MSR %#x: %s, expected #GP",
	      cpus[idx], val, msr, ret ? strerror(-ret) : "accepted");
}

static const char *name_of(uint32_t msr)
{
	switch (msr) {
	case MSR_KVM_PV_CLOCKEVENT_CTRL:
		return "CTRL";
	case MSR_KVM_PV_CLOCKEVENT_DEADLINE:
		return "DEADLINE";
	case MSR_KVM_SYSTEM_TIME_NEW:
		return "MSR_KVM_SYSTEM_TIME_NEW";
	default:
		return "MSR_KVM_WALL_CLOCK_NEW";
	}
}

static void expect_msr(int idx, uint32_t msr, uint64_t want, const char *when)
{
	uint64_t val = rd(idx, msr);

	CHECK(val == want, "cpu%d: %s reads %#" PRIx64 ", expected %#" PRIx64 " (%s)",
	      cpus[idx], name_of(msr), val, want, when);
}

static void expect_state(int idx, uint64_t ctrl, uint64_t deadline,
			 const char *when)
{
	expect_msr(idx, MSR_KVM_PV_CLOCKEVENT_CTRL, ctrl, when);
	expect_msr(idx, MSR_KVM_PV_CLOCKEVENT_DEADLINE, deadline, when);
}

/* ----------------------------------------------------------------------
 * Interrupt counting: the SPU row of /proc/interrupts.
 */

static bool have_spu;

/* Fills spu[idx] for the tested CPUs; false if there is no SPU row. */
static bool read_spu(unsigned long long *spu)
{
	int col2cpu[1024], ncols = 0, i, j;
	char line[16384], *tok, *save, *p, *end;
	bool found = false;
	FILE *f;

	f = fopen("/proc/interrupts", "re");
	if (!f)
		return false;
	if (fgets(line, sizeof(line), f))
		for (tok = strtok_r(line, " \t\n", &save); tok && ncols < 1024;
		     tok = strtok_r(NULL, " \t\n", &save))
			if (!strncmp(tok, "CPU", 3))
				col2cpu[ncols++] = atoi(tok + 3);
	while (fgets(line, sizeof(line), f)) {
		p = line + strspn(line, " ");
		if (strncmp(p, "SPU:", 4))
			continue;
		p += 4;
		for (i = 0; i < ncols; i++) {
			unsigned long long v = strtoull(p, &end, 10);

			if (end == p)
				break;
			p = end;
			for (j = 0; j < ncpus; j++)
				if (cpus[j] == col2cpu[i])
					spu[j] = v;
		}
		found = true;
		break;
	}
	fclose(f);
	return found;
}

static unsigned long long spu_of(int idx)
{
	unsigned long long spu[MAX_CPUS] = { 0 };

	read_spu(spu);
	return spu[idx];
}

/* Checks that @idx took exactly @want interrupts since @before. */
static void expect_irqs(int idx, unsigned long long before,
			unsigned long long want, const char *what)
{
	unsigned long long got;

	CHECK(have_spu, "cpu%d: no SPU row in /proc/interrupts: %s not counted",
	      cpus[idx], what);
	if (!have_spu)
		return;
	sleep_ns(SETTLE_NS);
	got = spu_of(idx) - before;
	CHECK(got == want, "cpu%d: %llu interrupts counted, expected %llu (%s)",
	      cpus[idx], got, want, what);
}

/* ----------------------------------------------------------------------
 * kvm-clock from the pvclock page mapped for the vDSO
 */

struct pvclock_vcpu_time_info {
	uint32_t version;
	uint32_t pad0;
	uint64_t tsc_timestamp;
	uint64_t system_time;
	uint32_t tsc_to_system_mul;
	int8_t tsc_shift;
	uint8_t flags;
	uint8_t pad[2];
};

_Static_assert(sizeof(struct pvclock_vcpu_time_info) == 32,
	       "pvclock ABI layout");

#define PVCLOCK_TSC_STABLE_BIT	(1 << 0)

/* The hypervisor rewrites it under us: every access must be a real load. */
static const volatile struct pvclock_vcpu_time_info *pvti;
static bool pvti_stable;

/*
 * Whether the timing tests run on CPU @idx, and if so pins the caller
 * there: kvm-clock "now" comes from vCPU 0's pvclock page, which is valid
 * on the other vCPUs only with the stable bit.
 */
static bool timed_on(int idx)
{
	if (idx && !pvti_stable) {
		CHECK(0, "cpu%d: not timed: the pvclock is not marked stable, so kvm-clock \"now\" is known on CPU 0 only",
		      cpus[idx]);
		return false;
	}
	return pinned(idx);
}
static sigjmp_buf pvti_jmp;

static void pvti_sigbus(int sig)
{
	siglongjmp(pvti_jmp, sig);
}

static inline uint64_t rdtsc_ordered(void)
{
	uint32_t lo, hi;

	asm volatile("lfence; rdtsc" : "=a"(lo), "=d"(hi) :: "memory");
	return ((uint64_t)hi << 32) | lo;
}

/* pvclock_scale_delta(): (delta << shift) * mul / 2^32. */
static uint64_t scale_delta(uint64_t delta, uint32_t mul, int shift)
{
	if (shift < 0)
		delta >>= -shift;
	else
		delta <<= shift;
	return (uint64_t)(((unsigned __int128)delta * mul) >> 32);
}

/* kvm-clock now, as the hypervisor and the guest's kvm-clock see it. */
static uint64_t kvmclock_ns(void)
{
	uint32_t version;
	uint64_t ns;

	do {
		version = pvti->version;
		__atomic_thread_fence(__ATOMIC_ACQUIRE);
		ns = pvti->system_time +
		     scale_delta(rdtsc_ordered() - pvti->tsc_timestamp,
				 pvti->tsc_to_system_mul, pvti->tsc_shift);
		__atomic_thread_fence(__ATOMIC_ACQUIRE);
	} while ((version & 1) || version != pvti->version);
	return ns;
}

#define CS_DIR "/sys/devices/system/clocksource/clocksource0"

/*
 * Maps vCPU 0's pvclock. The kernel exposes it only after the kvm-clock
 * clocksource was enabled once, so select it briefly if it is not current.
 * Returns NULL with @why set if there is no usable pvclock.
 */
static const char *setup_kvmclock(void)
{
	char cur[64], avail[512], line[512];
	struct sigaction sa = { .sa_handler = pvti_sigbus }, old;
	unsigned long start = 0, end;
	const char *why = NULL;
	FILE *f;

	if (read_text(CS_DIR "/current_clocksource", cur, sizeof(cur)) > 0 &&
	    strcmp(cur, "kvm-clock")) {
		if (read_text(CS_DIR "/available_clocksource", avail,
			      sizeof(avail)) <= 0 || !strstr(avail, "kvm-clock"))
			return "kvm-clock is not an available clocksource";
		if (write_text(CS_DIR "/current_clocksource", "kvm-clock"))
			return "cannot select the kvm-clock clocksource";
		sleep_ns(SETTLE_NS);
		write_text(CS_DIR "/current_clocksource", cur);
		diag("selected kvm-clock once to have its pvclock mapped, back on %s",
		     cur);
	}

	f = fopen("/proc/self/maps", "re");
	if (!f)
		return "cannot read /proc/self/maps";
	while (fgets(line, sizeof(line), f))
		if (strstr(line, "[vvar_vclock]") &&
		    sscanf(line, "%lx-%lx", &start, &end) == 2)
			break;
	fclose(f);
	if (!start)
		return "no [vvar_vclock] mapping";

	/* The pvclock page is the first page of the mapping. */
	sigemptyset(&sa.sa_mask);
	sigaction(SIGBUS, &sa, &old);
	if (sigsetjmp(pvti_jmp, 1) == 0) {
		const volatile struct pvclock_vcpu_time_info *p = (void *)start;

		if (!p->version && !p->system_time)
			why = "pvclock page is empty";
		else if (!p->tsc_to_system_mul)
			why = "pvclock page has no TSC scale";
		else
			pvti = p;
	} else {
		why = "pvclock page not mapped (kvm-clock never used)";
	}
	sigaction(SIGBUS, &old, NULL);
	if (pvti)
		pvti_stable = pvti->flags & PVCLOCK_TSC_STABLE_BIT;
	return why;
}

/* ----------------------------------------------------------------------
 * Discovery
 */

static uint32_t kvm_base;
static uint32_t kvm_features;

static void discover(void)
{
	unsigned int eax, ebx, ecx, edx;
	uint32_t base;
	char sig[12];

	__cpuid(1, eax, ebx, ecx, edx);
	if (!(ecx & (1u << 31)))
		return;
	for (base = KVM_CPUID_SIGNATURE; base < 0x40010000u; base += 0x100) {
		__cpuid(base, eax, ebx, ecx, edx);
		memcpy(sig + 0, &ebx, 4);
		memcpy(sig + 4, &ecx, 4);
		memcpy(sig + 8, &edx, 4);
		if (!memcmp(sig, KVM_SIGNATURE, 12) && eax >= base + 1) {
			kvm_base = base;
			__cpuid(base + 1, eax, ebx, ecx, edx);
			kvm_features = eax;
			return;
		}
	}
}

static bool has_feature(int bit)
{
	return kvm_features & (1u << bit);
}

/* ----------------------------------------------------------------------
 * Tests without the feature
 */

static void test_absent_reads(void)
{
	static const uint32_t msrs[] = { MSR_KVM_PV_CLOCKEVENT_CTRL,
					 MSR_KVM_PV_CLOCKEVENT_DEADLINE };
	uint64_t val;
	int i, m, ret;

	tap_begin();
	for (i = 0; i < ncpus; i++)
		for (m = 0; m < 2; m++) {
			ret = rdmsr(i, msrs[m], &val);
			CHECK(ret == -EIO, "cpu%d: read of %s: %s, expected #GP",
			      cpus[i], name_of(msrs[m]),
			      ret ? strerror(-ret) : "succeeded");
		}
	tap_end("feature absent: CTRL and DEADLINE reads #GP");
}

static void test_absent_writes(void)
{
	int i;

	tap_begin();
	for (i = 0; i < ncpus; i++) {
		wr_gp(i, MSR_KVM_PV_CLOCKEVENT_CTRL, 0);
		wr_gp(i, MSR_KVM_PV_CLOCKEVENT_CTRL,
		      CTRL_ENABLE | CTRL_VECTOR(DEFAULT_VECTOR));
		wr_gp(i, MSR_KVM_PV_CLOCKEVENT_DEADLINE, 0);
		wr_gp(i, MSR_KVM_PV_CLOCKEVENT_DEADLINE, FAR_DEADLINE);
		/* In case an enable was wrongly accepted. */
		wrmsr(i, MSR_KVM_PV_CLOCKEVENT_CTRL, 0);
	}
	tap_end("feature absent: CTRL and DEADLINE writes #GP");
}

/* ----------------------------------------------------------------------
 * Tests with the feature
 */

static unsigned int vector = DEFAULT_VECTOR;

static uint64_t ctrl_on(void)
{
	return CTRL_ENABLE | CTRL_VECTOR(vector);
}

/* Enables CPU @idx with the test vector and a disarmed timer. */
static void enable(int idx)
{
	wr(idx, MSR_KVM_PV_CLOCKEVENT_CTRL, 0);
	wr(idx, MSR_KVM_PV_CLOCKEVENT_CTRL, ctrl_on());
}

static void test_reset_state(void)
{
	int i;

	tap_begin();
	for (i = 0; i < ncpus; i++)
		expect_state(i, 0, 0, "initial state");
	tap_end("initial state: CTRL and DEADLINE read 0 on every CPU");
}

static void test_deadline_while_disabled(void)
{
	static const uint64_t vals[] = { 0, PAST_DEADLINE, FAR_DEADLINE,
					 UINT64_MAX };
	size_t v;
	int i;

	tap_begin();
	for (i = 0; i < ncpus; i++) {
		wr(i, MSR_KVM_PV_CLOCKEVENT_CTRL, 0);
		for (v = 0; v < ARRAY_SIZE(vals); v++) {
			wr_gp(i, MSR_KVM_PV_CLOCKEVENT_DEADLINE, vals[v]);
			expect_state(i, 0, 0, "after DEADLINE write while disabled");
		}
		/* Disabled with a vector set is still disabled. */
		wr(i, MSR_KVM_PV_CLOCKEVENT_CTRL, CTRL_VECTOR(vector));
		wr_gp(i, MSR_KVM_PV_CLOCKEVENT_DEADLINE, FAR_DEADLINE);
		expect_state(i, CTRL_VECTOR(vector), 0,
			     "after DEADLINE write while disabled, vector set");
		wr(i, MSR_KVM_PV_CLOCKEVENT_CTRL, 0);
	}
	tap_end("DEADLINE write while disabled: #GP, state unchanged");
}

/* Bad CTRL writes on a disabled and on an enabled, armed CPU. */
static void bad_ctrl_writes(const uint64_t *bad, int nbad, const char *desc)
{
	unsigned long long spu;
	int i, b;

	tap_begin();
	for (i = 0; i < ncpus; i++) {
		wr(i, MSR_KVM_PV_CLOCKEVENT_CTRL, 0);
		for (b = 0; b < nbad; b++) {
			wr_gp(i, MSR_KVM_PV_CLOCKEVENT_CTRL, bad[b]);
			expect_state(i, 0, 0, "disabled, after a bad CTRL write");
		}
		spu = spu_of(i);
		enable(i);
		wr(i, MSR_KVM_PV_CLOCKEVENT_DEADLINE, FAR_DEADLINE);
		for (b = 0; b < nbad; b++) {
			wr_gp(i, MSR_KVM_PV_CLOCKEVENT_CTRL, bad[b]);
			expect_state(i, ctrl_on(), FAR_DEADLINE,
				     "enabled and armed, after a bad CTRL write");
		}
		wr(i, MSR_KVM_PV_CLOCKEVENT_CTRL, 0);
		expect_irqs(i, spu, 0, "bad CTRL writes");
	}
	tap_end(desc);
}

static void test_ctrl_reserved_low(void)
{
	uint64_t bad[14];
	int n = 0, bit;

	for (bit = 1; bit <= 7; bit++) {
		bad[n++] = (1ull << bit) | ctrl_on();
		bad[n++] = (1ull << bit) | CTRL_VECTOR(vector);
	}
	bad_ctrl_writes(bad, n, "CTRL reserved bits 7:1: #GP, state unchanged");
}

static void test_ctrl_reserved_high(void)
{
	static const int bits[] = { 16, 17, 23, 24, 31, 32, 33, 47, 48, 55,
				    56, 62, 63 };
	uint64_t bad[2 * ARRAY_SIZE(bits) + 1];
	size_t k;
	int n = 0;

	for (k = 0; k < ARRAY_SIZE(bits); k++) {
		bad[n++] = (1ull << bits[k]) | ctrl_on();
		bad[n++] = 1ull << bits[k];
	}
	bad[n++] = ~0ull;
	bad_ctrl_writes(bad, n,
			"CTRL reserved bits 63:16 (sample): #GP, state unchanged");
}

static void test_ctrl_low_vector(void)
{
	uint64_t bad[FIRST_VALID_VECTOR];
	int v;

	for (v = 0; v < FIRST_VALID_VECTOR; v++)
		bad[v] = CTRL_ENABLE | CTRL_VECTOR(v);
	bad_ctrl_writes(bad, FIRST_VALID_VECTOR,
			"CTRL ENABLE with vector 0..31: #GP, state unchanged");
}

static void test_ctrl_disabled_values(void)
{
	static const unsigned int vecs[] = { 0, 5, 31, 32, DEFAULT_VECTOR, 0xff };
	size_t k;
	int i;

	tap_begin();
	for (i = 0; i < ncpus; i++) {
		for (k = 0; k < ARRAY_SIZE(vecs); k++) {
			wr(i, MSR_KVM_PV_CLOCKEVENT_CTRL, CTRL_VECTOR(vecs[k]));
			expect_state(i, CTRL_VECTOR(vecs[k]), 0,
				     "ENABLE=0 with a vector");
		}
		wr(i, MSR_KVM_PV_CLOCKEVENT_CTRL, 0);
		expect_state(i, 0, 0, "CTRL=0");
	}
	tap_end("CTRL with ENABLE=0 and any vector: accepted, read back exactly");
}

static void test_ctrl_readback(void)
{
	unsigned int v;
	int i;

	tap_begin();
	for (i = 0; i < ncpus; i++) {
		for (v = FIRST_VALID_VECTOR; v <= 0xff; v++) {
			wr(i, MSR_KVM_PV_CLOCKEVENT_CTRL,
			   CTRL_ENABLE | CTRL_VECTOR(v));
			expect_state(i, CTRL_ENABLE | CTRL_VECTOR(v), 0,
				     "enabled, not armed");
		}
		wr(i, MSR_KVM_PV_CLOCKEVENT_CTRL, 0);
	}
	tap_end("CTRL enable with every vector 32..255: read back exactly");
}

static uint64_t now_or(uint64_t fallback)
{
	return pvti ? kvmclock_ns() : fallback;
}

static void test_arm_far(void)
{
	const uint64_t base = pvti ? kvmclock_ns() + 1000 * NSEC_PER_SEC :
				     FAR_DEADLINE;
	const uint64_t vals[] = { base, base + 1, FAR_DEADLINE,
				  0x7123456789abcdefull, 1ull << 63,
				  UINT64_MAX - 1 };
	unsigned long long spu;
	size_t k;
	int i;

	tap_begin();
	for (i = 0; i < ncpus; i++) {
		spu = spu_of(i);
		enable(i);
		for (k = 0; k < ARRAY_SIZE(vals); k++) {
			wr(i, MSR_KVM_PV_CLOCKEVENT_DEADLINE, vals[k]);
			expect_state(i, ctrl_on(), vals[k], "armed far ahead");
		}
		wr(i, MSR_KVM_PV_CLOCKEVENT_DEADLINE, 0);
		expect_state(i, ctrl_on(), 0, "after writing 0");
		wr(i, MSR_KVM_PV_CLOCKEVENT_CTRL, 0);
		expect_irqs(i, spu, 0, "far deadlines");
	}
	tap_end("arm far future: DEADLINE reads back the exact value; 0 disarms");
}

/* Polls until DEADLINE reads 0; returns false if it does not by @until. */
static bool wait_fired(int idx, uint64_t until_mono)
{
	uint64_t val;

	do {
		if (rdmsr(idx, MSR_KVM_PV_CLOCKEVENT_DEADLINE, &val))
			return false;
		if (!val)
			return true;
	} while (mono_ns() < until_mono);
	return false;
}

/*
 * How far ahead a deadline is armed before it is disarmed or replaced: far
 * more than two MSR writes take, so that only a stalled vCPU lets it pass
 * (the test then notices and does not judge).
 */
#define DISARM_AHEAD_NS		(50 * NSEC_PER_MSEC)
#define REARM_LATER_NS		(400 * NSEC_PER_MSEC)

static void test_disarm(void)
{
	unsigned long long spu;
	uint64_t dl;
	int i, judged = 0;

	if (!pvti) {
		tap_skip("write 0 disarms a near deadline: it never fires",
			 "kvm-clock now unknown");
		return;
	}
	tap_begin();
	for (i = 0; i < ncpus; i++) {
		if (!timed_on(i))
			continue;
		enable(i);
		spu = spu_of(i);
		dl = kvmclock_ns() + DISARM_AHEAD_NS;
		wr(i, MSR_KVM_PV_CLOCKEVENT_DEADLINE, dl);
		wr(i, MSR_KVM_PV_CLOCKEVENT_DEADLINE, 0);
		if (kvmclock_ns() >= dl) {
			diag("cpu%d: vCPU stalled past the deadline before the disarm; not checked",
			     cpus[i]);
		} else {
			judged++;
			sleep_ns(QUIET_NS);
			expect_state(i, ctrl_on(), 0, "disarmed before expiry");
			expect_irqs(i, spu, 0, "disarmed deadline");
		}
		wr(i, MSR_KVM_PV_CLOCKEVENT_CTRL, 0);
	}
	CHECK(judged, "no CPU judged: every vCPU stalled past its deadline");
	tap_end("write 0 disarms a near deadline: it never fires");
}

static void test_vector_change(void)
{
	int i;

	tap_begin();
	for (i = 0; i < ncpus; i++) {
		enable(i);
		wr(i, MSR_KVM_PV_CLOCKEVENT_DEADLINE, FAR_DEADLINE);
		wr(i, MSR_KVM_PV_CLOCKEVENT_CTRL,
		   CTRL_ENABLE | CTRL_VECTOR(ALT_VECTOR));
		expect_state(i, CTRL_ENABLE | CTRL_VECTOR(ALT_VECTOR),
			     FAR_DEADLINE, "vector changed while armed");
		wr(i, MSR_KVM_PV_CLOCKEVENT_CTRL, ctrl_on());
		expect_state(i, ctrl_on(), FAR_DEADLINE, "vector changed back");
		wr(i, MSR_KVM_PV_CLOCKEVENT_CTRL, 0);
	}
	tap_end("CTRL write while enabled changes the vector, deadline stays armed");
}

static void test_disable_clears(void)
{
	unsigned long long spu;
	int i;

	tap_begin();
	for (i = 0; i < ncpus; i++) {
		spu = spu_of(i);
		enable(i);
		wr(i, MSR_KVM_PV_CLOCKEVENT_DEADLINE, FAR_DEADLINE);
		wr(i, MSR_KVM_PV_CLOCKEVENT_CTRL, CTRL_VECTOR(vector));
		expect_state(i, CTRL_VECTOR(vector), 0, "disabled while armed");
		wr_gp(i, MSR_KVM_PV_CLOCKEVENT_DEADLINE, FAR_DEADLINE);
		wr(i, MSR_KVM_PV_CLOCKEVENT_CTRL, ctrl_on());
		expect_state(i, ctrl_on(), 0, "re-enabled: deadline stays cleared");
		wr(i, MSR_KVM_PV_CLOCKEVENT_CTRL, 0);
		expect_state(i, 0, 0, "CTRL=0");
		expect_irqs(i, spu, 0, "disabled while armed");
	}
	tap_end("disable clears the deadline; DEADLINE write then #GPs");
}

static void test_past_fires(void)
{
	uint64_t vals[3] = { PAST_DEADLINE };
	unsigned long long spu;
	int i, n, k;

	tap_begin();
	for (i = 0; i < ncpus; i++) {
		if (!pinned(i))
			continue;
		enable(i);
		n = 1;
		if (pvti && (!i || pvti_stable)) {
			n = 3;
			vals[1] = kvmclock_ns() - NSEC_PER_MSEC;
			vals[2] = 0;	/* "now", computed right before the write */
		}
		for (k = 0; k < n; k++) {
			uint64_t dl = vals[k] ? vals[k] : kvmclock_ns();

			spu = spu_of(i);
			wr(i, MSR_KVM_PV_CLOCKEVENT_DEADLINE, dl);
			CHECK(wait_fired(i, mono_ns() + FIRE_TIMEOUT_NS),
			      "cpu%d: deadline %#" PRIx64 " (past) did not fire within %llu ms",
			      cpus[i], dl, FIRE_TIMEOUT_NS / NSEC_PER_MSEC);
			expect_irqs(i, spu, 1, "deadline in the past");
			expect_state(i, ctrl_on(), 0, "after a past deadline fired");
		}
		wr(i, MSR_KVM_PV_CLOCKEVENT_CTRL, 0);
	}
	tap_end("deadline at or before now fires at once, exactly once");
}

#define TIMED_NOT_FIRED	(-1)
#define TIMED_EARLY	(-2)

/*
 * Arms @delta_ns ahead and checks expiry is not early. Returns the observed
 * lateness, TIMED_EARLY or TIMED_NOT_FIRED.
 */
static int64_t timed_fire(int idx, uint64_t delta_ns)
{
	uint64_t dl = kvmclock_ns() + delta_ns, val, t;
	uint64_t give_up = mono_ns() + delta_ns + FIRE_TIMEOUT_NS;

	wr(idx, MSR_KVM_PV_CLOCKEVENT_DEADLINE, dl);
	for (;;) {
		if (rdmsr(idx, MSR_KVM_PV_CLOCKEVENT_DEADLINE, &val)) {
			CHECK(0, "cpu%d: DEADLINE read failed", cpus[idx]);
			return TIMED_NOT_FIRED;
		}
		t = kvmclock_ns();	/* after the read: see top of file */
		if (!val) {
			CHECK(t >= dl, "cpu%d: fired early: DEADLINE read 0 at least %" PRIu64 " ns before the deadline",
			      cpus[idx], dl - t);
			return t >= dl ? (int64_t)(t - dl) : TIMED_EARLY;
		}
		CHECK(val == dl, "cpu%d: armed DEADLINE reads %#" PRIx64 ", wrote %#" PRIx64,
		      cpus[idx], val, dl);
		if (val != dl || mono_ns() > give_up)
			break;
	}
	CHECK(0, "cpu%d: deadline %" PRIu64 " ns ahead did not fire within %llu ms",
	      cpus[idx], delta_ns, FIRE_TIMEOUT_NS / NSEC_PER_MSEC);
	wr(idx, MSR_KVM_PV_CLOCKEVENT_DEADLINE, 0);
	return TIMED_NOT_FIRED;
}

/*
 * Counts the kernel's "Spurious interrupt (vector 0x..) on CPU#n" lines:
 * they name the vector and the CPU that took it. -1 if /dev/kmsg is
 * unreadable.
 */
static int kmsg_count(unsigned int vec, int cpu)
{
	char buf[8192], pat[64];
	ssize_t len;
	int fd, n = 0;

	fd = open("/dev/kmsg", O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return -1;
	snprintf(pat, sizeof(pat), "Spurious interrupt (vector 0x%02x) on CPU#%d.",
		 vec, cpu);
	for (;;) {
		len = read(fd, buf, sizeof(buf) - 1);
		if (len < 0 && errno == EPIPE)
			continue;	/* overwritten records: skip */
		if (len <= 0)
			break;
		buf[len] = '\0';
		if (strstr(buf, pat))
			n++;
	}
	close(fd);
	return n;
}

/* Fires a past deadline on @idx and checks which vector/CPU logged it. */
static void fire_and_check_vector(int idx, unsigned int want, unsigned int other)
{
	int w0 = kmsg_count(want, cpus[idx]), o0 = kmsg_count(other, cpus[idx]);
	int w1, o1;

	wr(idx, MSR_KVM_PV_CLOCKEVENT_DEADLINE, PAST_DEADLINE);
	CHECK(wait_fired(idx, mono_ns() + FIRE_TIMEOUT_NS),
	      "cpu%d: past deadline did not fire", cpus[idx]);
	sleep_ns(SETTLE_NS);
	w1 = kmsg_count(want, cpus[idx]);
	o1 = kmsg_count(other, cpus[idx]);
	CHECK(w1 - w0 == 1 && o1 == o0,
	      "cpu%d: vector %#x logged %d times (want 1), vector %#x %d times (want 0)",
	      cpus[idx], want, w1 - w0, other, o1 - o0);
}

static void test_vector_injected(void)
{
	int i;

	if (kmsg_count(vector, 0) < 0) {
		tap_skip("injects the programmed vector on the programmed vCPU",
			 "/dev/kmsg unreadable");
		return;
	}
	tap_begin();
	for (i = 0; i < ncpus; i++) {
		wr(i, MSR_KVM_PV_CLOCKEVENT_CTRL, 0);
		wr(i, MSR_KVM_PV_CLOCKEVENT_CTRL,
		   CTRL_ENABLE | CTRL_VECTOR(ALT_VECTOR));
		fire_and_check_vector(i, ALT_VECTOR, vector);
		/* A vector change while armed applies to that expiry. */
		wr(i, MSR_KVM_PV_CLOCKEVENT_DEADLINE, FAR_DEADLINE);
		wr(i, MSR_KVM_PV_CLOCKEVENT_CTRL, ctrl_on());
		fire_and_check_vector(i, vector, ALT_VECTOR);
		wr(i, MSR_KVM_PV_CLOCKEVENT_CTRL, 0);
	}
	tap_end("injects the programmed vector on the programmed vCPU");
}

static void test_not_early(void)
{
	unsigned int seed = (unsigned int)mono_ns();
	unsigned long long spu;
	int64_t late, max_late = 0;
	int i, k, fired;

	if (!pvti) {
		tap_skip("fires not before the deadline per kvm-clock",
			 "kvm-clock now unknown");
		return;
	}
	tap_begin();
	for (i = 0; i < ncpus; i++) {
		if (!timed_on(i))
			continue;
		enable(i);
		spu = spu_of(i);
		fired = 0;
		for (k = 0; k < TIMING_ITERS; k++) {
			/* 20 us .. 5 ms, and a few of 10..50 ms. */
			uint64_t d = 20 * NSEC_PER_USEC +
				     (uint64_t)rand_r(&seed) % (5 * NSEC_PER_MSEC);

			if (k % 5 == 4)
				d = 10 * NSEC_PER_MSEC +
				    (uint64_t)rand_r(&seed) % (40 * NSEC_PER_MSEC);
			late = timed_fire(i, d);
			if (late != TIMED_NOT_FIRED)
				fired++;
			if (late > max_late)
				max_late = late;
		}
		expect_irqs(i, spu, fired, "timed deadlines");
		wr(i, MSR_KVM_PV_CLOCKEVENT_CTRL, 0);
	}
	diag("max observed lateness %" PRId64 " us (includes the poll loop)",
	     max_late / (int64_t)NSEC_PER_USEC);
	tap_end("fires not before the deadline per kvm-clock, exactly once each");
}

static void test_rearm(void)
{
	unsigned long long spu;
	uint64_t first, dl;
	bool stalled;
	int i, judged = 0;

	if (!pvti) {
		tap_skip("re-arming replaces the deadline, earlier and later",
			 "kvm-clock now unknown");
		return;
	}
	tap_begin();
	for (i = 0; i < ncpus; i++) {
		if (!timed_on(i))
			continue;
		enable(i);

		/* Later replaces earlier: nothing at the first deadline. */
		spu = spu_of(i);
		first = kvmclock_ns() + DISARM_AHEAD_NS;
		wr(i, MSR_KVM_PV_CLOCKEVENT_DEADLINE, first);
		dl = kvmclock_ns() + REARM_LATER_NS;
		wr(i, MSR_KVM_PV_CLOCKEVENT_DEADLINE, dl);
		stalled = kvmclock_ns() >= first;
		if (stalled)
			diag("cpu%d: vCPU stalled past the first deadline; counts not checked",
			     cpus[i]);
		sleep_ns(2 * DISARM_AHEAD_NS);
		if (!stalled && kvmclock_ns() < dl) {
			expect_state(i, ctrl_on(), dl, "re-armed later, before it");
			expect_irqs(i, spu, 0, "re-armed later, before it");
		}
		CHECK(wait_fired(i, mono_ns() + REARM_LATER_NS +
				 FIRE_TIMEOUT_NS),
		      "cpu%d: re-armed deadline did not fire", cpus[i]);
		CHECK(kvmclock_ns() >= dl, "cpu%d: re-armed deadline fired early",
		      cpus[i]);
		if (!stalled) {
			judged++;
			expect_irqs(i, spu, 1, "re-armed later");
		}

		/* Earlier replaces later. */
		spu = spu_of(i);
		wr(i, MSR_KVM_PV_CLOCKEVENT_DEADLINE, FAR_DEADLINE);
		wr(i, MSR_KVM_PV_CLOCKEVENT_DEADLINE,
		   kvmclock_ns() + 5 * NSEC_PER_MSEC);
		CHECK(wait_fired(i, mono_ns() + FIRE_TIMEOUT_NS),
		      "cpu%d: earlier re-armed deadline did not fire", cpus[i]);
		expect_irqs(i, spu, 1, "re-armed earlier");
		wr(i, MSR_KVM_PV_CLOCKEVENT_CTRL, 0);
	}
	CHECK(judged, "no CPU judged: every vCPU stalled past its first deadline");
	tap_end("re-arming replaces the deadline, earlier and later");
}

static void test_per_cpu(void)
{
	const uint64_t far1 = FAR_DEADLINE + 12345;
	const uint64_t ctrl1 = CTRL_ENABLE | CTRL_VECTOR(ALT_VECTOR);
	unsigned long long spu0, spu1;

	if (ncpus < 2) {
		tap_skip("per-vCPU state is independent", "one CPU");
		return;
	}
	tap_begin();
	wr(1, MSR_KVM_PV_CLOCKEVENT_CTRL, 0);
	wr(1, MSR_KVM_PV_CLOCKEVENT_CTRL, ctrl1);
	wr(1, MSR_KVM_PV_CLOCKEVENT_DEADLINE, far1);
	spu1 = spu_of(1);
	spu0 = spu_of(0);

	enable(0);
	expect_state(0, ctrl_on(), 0, "cpu0 enabled");
	wr(0, MSR_KVM_PV_CLOCKEVENT_DEADLINE, FAR_DEADLINE);
	wr(0, MSR_KVM_PV_CLOCKEVENT_DEADLINE, 0);
	wr(0, MSR_KVM_PV_CLOCKEVENT_DEADLINE, PAST_DEADLINE);
	CHECK(wait_fired(0, mono_ns() + FIRE_TIMEOUT_NS),
	      "cpu%d: past deadline did not fire", cpus[0]);
	wr(0, MSR_KVM_PV_CLOCKEVENT_CTRL, CTRL_VECTOR(0x40));
	wr_gp(0, MSR_KVM_PV_CLOCKEVENT_CTRL, 1ull << 1);
	expect_irqs(0, spu0, 1, "cpu0 fired once");
	expect_irqs(1, spu1, 0, "cpu0's activity");
	expect_state(1, ctrl1, far1, "after cpu0 was programmed");

	/* And the other way round. */
	enable(0);
	wr(0, MSR_KVM_PV_CLOCKEVENT_DEADLINE, FAR_DEADLINE);
	wr(1, MSR_KVM_PV_CLOCKEVENT_CTRL, 0);
	expect_state(0, ctrl_on(), FAR_DEADLINE, "after cpu1 was disabled");
	expect_state(1, 0, 0, "cpu1 disabled");
	wr(0, MSR_KVM_PV_CLOCKEVENT_CTRL, 0);
	tap_end("per-vCPU state is independent");
}

static void test_uint64_max(void)
{
	unsigned long long spu;
	int i;

	tap_begin();
	for (i = 0; i < ncpus; i++) {
		spu = spu_of(i);
		enable(i);
		wr(i, MSR_KVM_PV_CLOCKEVENT_DEADLINE, UINT64_MAX);
		sleep_ns(QUIET_NS);
		expect_state(i, ctrl_on(), UINT64_MAX, "UINT64_MAX armed");
		expect_irqs(i, spu, 0, "UINT64_MAX");
		wr(i, MSR_KVM_PV_CLOCKEVENT_CTRL, 0);
	}
	tap_end("UINT64_MAX is accepted and does not fire");
}

static void test_storms(void)
{
	unsigned long long spu, got;
	uint64_t base, t0;
	int i, k;

	tap_begin();
	for (i = 0; i < ncpus; i++) {
		if (!pinned(i))
			continue;
		enable(i);

		/* Future deadlines 1 ns apart: each replaces the last. */
		spu = spu_of(i);
		base = now_or(FAR_DEADLINE) + NSEC_PER_SEC * 100;
		t0 = mono_ns();
		for (k = 0; k < STORM_WRITES && cur_ok; k++)
			wr(i, MSR_KVM_PV_CLOCKEVENT_DEADLINE, base + k);
		expect_state(i, ctrl_on(), base + STORM_WRITES - 1,
			     "after 1 ns apart future deadlines");
		diag("cpu%d: %d deadline writes 1 ns apart in %" PRIu64 " ms",
		     cpus[i], STORM_WRITES, (mono_ns() - t0) / NSEC_PER_MSEC);

		/* Arm/disarm storm. */
		t0 = mono_ns();
		for (k = 0; k < STORM_WRITES && cur_ok; k++)
			wr(i, MSR_KVM_PV_CLOCKEVENT_DEADLINE,
			   k & 1 ? 0 : base + k);
		wr(i, MSR_KVM_PV_CLOCKEVENT_DEADLINE, 0);
		expect_state(i, ctrl_on(), 0, "after the disarm storm");
		diag("cpu%d: %d arm/disarm writes in %" PRIu64 " ms",
		     cpus[i], STORM_WRITES, (mono_ns() - t0) / NSEC_PER_MSEC);
		expect_irqs(i, spu, 0, "future deadline storms");

		/*
		 * Past deadlines 1 ns apart: each fires at once. One still
		 * pending in the local APIC merges with the next (same
		 * vector, edge), so between 1 and all of them are counted.
		 */
		spu = spu_of(i);
		for (k = 0; k < PAST_STORM_WRITES && cur_ok; k++)
			wr(i, MSR_KVM_PV_CLOCKEVENT_DEADLINE, PAST_DEADLINE + k);
		CHECK(wait_fired(i, mono_ns() + FIRE_TIMEOUT_NS),
		      "cpu%d: last past deadline did not fire", cpus[i]);
		sleep_ns(SETTLE_NS);
		got = spu_of(i) - spu;
		CHECK(have_spu && got >= 1 && got <= PAST_STORM_WRITES,
		      "cpu%d: %llu interrupts for %d past deadlines",
		      cpus[i], got, PAST_STORM_WRITES);
		wr(i, MSR_KVM_PV_CLOCKEVENT_CTRL, 0);
	}
	tap_end("10000 deadlines 1 ns apart and disarm storms finish, no stray fires");
}

static void cleanup(void)
{
	int i;

	for (i = 0; i < ncpus; i++)
		wrmsr(i, MSR_KVM_PV_CLOCKEVENT_CTRL, 0);
}

static uint64_t fuzz_accesses = FUZZ_ACCESSES;

static uint64_t xorshift64(uint64_t *state)
{
	uint64_t x = *state;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	*state = x;
	return x;
}

/* A CTRL value: valid, disabled, a low vector, reserved bits, or anything. */
static uint64_t fuzz_ctrl(uint64_t r)
{
	uint64_t fv = CTRL_VECTOR(r & 0x100 ? FUZZ_VECTOR : FUZZ_VECTOR_ALT);
	uint64_t v;
	int bit;

	switch (r % 6) {
	case 0:
		return CTRL_ENABLE | fv;
	case 1:
		return CTRL_VECTOR(r >> 16);
	case 2:
		return CTRL_ENABLE | CTRL_VECTOR((r >> 16) % FIRST_VALID_VECTOR);
	case 3:
		/* One reserved bit, each as likely as the others */
		bit = (r >> 16) % 64;
		if (!((1ull << bit) & CTRL_RESERVED))
			bit = 1;
		return CTRL_ENABLE | fv | (1ull << bit);
	case 4:
		v = r * 0xbf58476d1ce4e5b9ull;
		/* An acceptable enable must not inject a vector of the kernel's */
		if (!(v & CTRL_RESERVED) && (v & CTRL_ENABLE))
			v = (v & ~CTRL_VECTOR_MASK) | fv;
		return v;
	default:
		return 0;
	}
}

/*
 * A DEADLINE value and whether it may have expired by the next read: 0,
 * in the past, now (only when kvm-clock can be read), far ahead or
 * UINT64_MAX.
 */
static uint64_t fuzz_deadline(uint64_t r, bool timed, bool *may_expire)
{
	*may_expire = true;
	switch (r % 5) {
	case 0:
		*may_expire = false;
		return 0;
	case 1:
		return PAST_DEADLINE + (r >> 8) % NSEC_PER_SEC;
	case 2:
		if (timed)
			return kvmclock_ns();
		return PAST_DEADLINE;
	case 3:
		*may_expire = false;
		return FAR_DEADLINE + (r >> 8);
	default:
		*may_expire = false;
		return UINT64_MAX;
	}
}

/* A write of the fuzz, which the model says is rejected (#GP) or not. */
static void fuzz_wr(int idx, uint64_t k, uint32_t msr, uint64_t v, bool gp)
{
	int ret = wrmsr(idx, msr, v);

	CHECK(ret == (gp ? -EIO : 0),
	      "cpu%d: access %" PRIu64 ": %s write %#" PRIx64 ": %s, the model predicts %s",
	      cpus[idx], k, name_of(msr), v, ret ? strerror(-ret) : "accepted",
	      gp ? "#GP" : "no #GP");
}

/*
 * fuzz_accesses random accesses to the device's MSRs and to kvm-clock's
 * on each CPU, each checked against a model of the ABI: CTRL with reserved
 * bits, or ENABLE with a vector below 32, is #GP; so is DEADLINE while
 * disabled; a rejected write changes nothing; disabling disarms; CTRL reads
 * what was written; DEADLINE reads the armed deadline or, once that has
 * passed, 0 (never before kvm-clock reaches it, where kvm-clock can be
 * read). kvm-clock's MSRs are written with the values the kernel uses and
 * must read them back. The tests after this one show the timer working on
 * every CPU.
 */
static void test_fuzz(void)
{
	uint64_t seed, r, v, got, ctrl, deadline, sys, wall, k, n = 0, gps = 0;
	bool gp, timed, may_expire = false;
	int i;

	tap_begin();
	for (i = 0; i < ncpus && cur_ok; i++) {
		if (!pinned(i))
			continue;
		timed = pvti && (!i || pvti_stable);
		sys = rd(i, MSR_KVM_SYSTEM_TIME_NEW);
		wall = rd(i, MSR_KVM_WALL_CLOCK_NEW);
		wr(i, MSR_KVM_PV_CLOCKEVENT_CTRL, 0);
		ctrl = 0;
		deadline = 0;
		seed = 0x9e3779b97f4a7c15ull * (cpus[i] + 1);
		for (k = 0; k < fuzz_accesses && cur_ok; k++, n++) {
			r = xorshift64(&seed);
			switch (r % 8) {
			case 0:
			case 1:
				v = fuzz_ctrl(r >> 3);
				gp = (v & CTRL_RESERVED) ||
				     ((v & CTRL_ENABLE) &&
				      (v & CTRL_VECTOR_MASK) >> CTRL_VECTOR_SHIFT < FIRST_VALID_VECTOR);
				fuzz_wr(i, k, MSR_KVM_PV_CLOCKEVENT_CTRL, v, gp);
				if (!gp) {
					ctrl = v;
					if (!(v & CTRL_ENABLE))
						deadline = 0;
				}
				gps += gp;
				break;
			case 2:
			case 3:
				gp = !(ctrl & CTRL_ENABLE);
				v = fuzz_deadline(r >> 3, timed, &may_expire);
				fuzz_wr(i, k, MSR_KVM_PV_CLOCKEVENT_DEADLINE, v, gp);
				if (!gp)
					deadline = v;
				gps += gp;
				break;
			case 4:
				got = rd(i, MSR_KVM_PV_CLOCKEVENT_CTRL);
				CHECK(got == ctrl, "cpu%d: access %" PRIu64 ": CTRL reads %#" PRIx64 ", the model %#" PRIx64,
				      cpus[i], k, got, ctrl);
				break;
			case 5:
				got = rd(i, MSR_KVM_PV_CLOCKEVENT_DEADLINE);
				CHECK(got == deadline ||
				      (!got && may_expire && (!timed || deadline <= kvmclock_ns())),
				      "cpu%d: access %" PRIu64 ": DEADLINE reads %#" PRIx64 ", the model %#" PRIx64 "%s",
				      cpus[i], k, got, deadline,
				      may_expire ? " or 0 once kvm-clock reaches it" : "");
				deadline = got;
				break;
			case 6:
				wr(i, MSR_KVM_SYSTEM_TIME_NEW, sys);
				expect_msr(i, MSR_KVM_SYSTEM_TIME_NEW, sys, "kvm-clock rewritten");
				break;
			default:
				wr(i, MSR_KVM_WALL_CLOCK_NEW, wall);
				expect_msr(i, MSR_KVM_WALL_CLOCK_NEW, wall, "wall clock rewritten");
				break;
			}
		}
		wr(i, MSR_KVM_PV_CLOCKEVENT_CTRL, 0);
		expect_state(i, 0, 0, "after the fuzz");
	}
	diag("fuzz: %" PRIu64 " accesses on %d CPU(s), %" PRIu64 " of them #GP", n, ncpus, gps);
	CHECK(gps, "fuzz: no access was rejected");
	tap_end("fuzz: random accesses to the device's and kvm-clock's MSRs match the ABI model");
}

static void test_cleanup(void)
{
	int i;

	tap_begin();
	cleanup();
	for (i = 0; i < ncpus; i++)
		expect_state(i, 0, 0, "after CTRL=0");
	tap_end("cleanup: CTRL=0 on every CPU, both MSRs read 0");
}

/* ----------------------------------------------------------------------
 * main
 */

static int online_cpus(int *out, int max)
{
	char buf[1024], *p = buf, *end;
	int n = 0;

	if (read_text("/sys/devices/system/cpu/online", buf, sizeof(buf)) <= 0)
		return 0;
	while (*p && n < max) {
		long a = strtol(p, &end, 10), b = a;

		if (end == p)
			break;
		p = end;
		if (*p == '-') {
			b = strtol(p + 1, &end, 10);
			p = end;
		}
		while (a <= b && n < max)
			out[n++] = a++;
		if (*p != ',')
			break;
		p++;
	}
	return n;
}

static void test_cpuid(void)
{
	tap_begin();
	CHECK(!has_feature(KVM_FEATURE_PV_CLOCKEVENT) ||
	      has_feature(KVM_FEATURE_CLOCKSOURCE2),
	      "KVM_FEATURE_PV_CLOCKEVENT without KVM_FEATURE_CLOCKSOURCE2");
	tap_end("CPUID: feature bit 18 only together with bit 3");
}

static void test_kvmclock_sane(void)
{
	uint64_t a0, k0, b0, a1, k1, b1;

	if (!pvti) {
		tap_skip("kvm-clock read from the pvclock page tracks CLOCK_MONOTONIC",
			 "kvm-clock now unknown");
		return;
	}
	tap_begin();
	/*
	 * Each kvm-clock read is bracketed by two CLOCK_MONOTONIC reads: a
	 * vCPU descheduled between the two clocks (TCG vCPUs are host
	 * threads) then widens the bracket instead of skewing the result.
	 */
	a0 = mono_ns();
	k0 = kvmclock_ns();
	b0 = mono_ns();
	sleep_ns(100 * NSEC_PER_MSEC);
	a1 = mono_ns();
	k1 = kvmclock_ns();
	b1 = mono_ns();
	/*
	 * kvm-clock and CLOCK_MONOTONIC run at the same rate up to NTP's
	 * 500 ppm; 1% on top of the bracket only proves that the pvclock
	 * reading is sane.
	 */
	CHECK((k1 - k0) * 100 >= (a1 - b0) * 99 &&
	      (k1 - k0) * 100 <= (b1 - a0) * 101,
	      "kvm-clock advanced %" PRIu64 " ns while CLOCK_MONOTONIC advanced %"
	      PRIu64 "..%" PRIu64 " ns", k1 - k0, a1 - b0, b1 - a0);
	tap_end("kvm-clock read from the pvclock page tracks CLOCK_MONOTONIC");
}

static const char allow_writes[] = "/sys/module/msr/parameters/allow_writes";

typedef void (*test_fn)(void);

/* Each test reports exactly one TAP result; the plan is the table's size. */
static const test_fn absent_tests[] = {
	test_cpuid,
	test_absent_reads,
	test_absent_writes,
};

static const test_fn present_tests[] = {
	test_cpuid,
	test_kvmclock_sane,
	test_reset_state,
	test_deadline_while_disabled,
	test_ctrl_reserved_low,
	test_ctrl_reserved_high,
	test_ctrl_low_vector,
	test_ctrl_disabled_values,
	test_ctrl_readback,
	test_fuzz,
	test_arm_far,
	test_disarm,
	test_vector_change,
	test_disable_clears,
	test_past_fires,
	test_vector_injected,
	test_not_early,
	test_rearm,
	test_per_cpu,
	test_uint64_max,
	test_storms,
	test_cleanup,
};

static void run_tests(const test_fn *tests, unsigned int n)
{
	unsigned int i, before;

	tap_plan = n;
	printf("1..%u\n", n);
	for (i = 0; i < n; i++) {
		before = tap_count;
		tests[i]();
		if (tap_count != before + 1) {
			diag("test %u reported %u results, not 1", i + 1, tap_count - before);
			tap_failed++;
		}
	}
}

int main(int argc, char **argv)
{
	char old_allow[16] = "";
	int i, want = MAX_CPUS, ret;
	const char *why;
	uint64_t ctrl;

	setvbuf(stdout, NULL, _IOLBF, 0);
	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--cpus") && i + 1 < argc) {
			want = atoi(argv[++i]);
		} else if (!strcmp(argv[i], "--vector") && i + 1 < argc) {
			vector = strtoul(argv[++i], NULL, 0);
		} else if (!strcmp(argv[i], "--fuzz") && i + 1 < argc) {
			fuzz_accesses = strtoull(argv[++i], NULL, 0);
		} else {
			fprintf(stderr, "usage: %s [--cpus N] [--vector V] [--fuzz N]\n",
				argv[0]);
			return KSFT_FAIL;
		}
	}
	if (vector < FIRST_VALID_VECTOR || vector > 0xff) {
		fprintf(stderr, "vector must be 32..255\n");
		return KSFT_FAIL;
	}

	printf("TAP version 13\n");
	if (access("/dev/cpu/0/msr", R_OK | W_OK)) {
		printf("1..0 # SKIP /dev/cpu/0/msr: %s (CONFIG_X86_MSR, root)\n",
		       strerror(errno));
		return KSFT_SKIP;
	}
	ncpus = online_cpus(cpus, want < MAX_CPUS ? want : MAX_CPUS);
	if (ncpus <= 0) {
		printf("Bail out! no online CPU read from /sys/devices/system/cpu/online\n");
		return KSFT_FAIL;
	}
	if (want < MAX_CPUS && ncpus != want) {
		printf("Bail out! --cpus %d, but %d CPU(s) are online\n", want, ncpus);
		return KSFT_FAIL;
	}
	for (i = 0; i < ncpus; i++) {
		char path[64];

		snprintf(path, sizeof(path), "/dev/cpu/%d/msr", cpus[i]);
		msr_fd[i] = open(path, O_RDWR | O_CLOEXEC);
		if (msr_fd[i] < 0) {
			printf("Bail out! %s: %s\n", path, strerror(errno));
			return KSFT_FAIL;
		}
	}
	diag("testing %d CPU(s), vector %#x", ncpus, vector);

	discover();
	diag("KVM signature %s at %#x, features %#x, PV clock event %s",
	     kvm_base ? "found" : "absent", kvm_base, kvm_features,
	     has_feature(KVM_FEATURE_PV_CLOCKEVENT) ? "present" : "absent");

	if (!has_feature(KVM_FEATURE_PV_CLOCKEVENT)) {
		run_tests(absent_tests, ARRAY_SIZE(absent_tests));
		return finish();
	}

	for (i = 0; i < ncpus; i++) {
		ret = rdmsr(i, MSR_KVM_PV_CLOCKEVENT_CTRL, &ctrl);
		if (!ret && (ctrl & CTRL_ENABLE)) {
			printf("1..0 # SKIP the guest kernel uses the device (cpu%d CTRL %#" PRIx64 ")\n",
			       cpus[i], ctrl);
			return KSFT_SKIP;
		}
	}

	/* Writes of unknown MSRs are logged unless allowed explicitly. */
	if (read_text(allow_writes, old_allow, sizeof(old_allow)) > 0)
		write_text(allow_writes, "on");

	why = setup_kvmclock();
	if (why)
		diag("no kvm-clock reading, timing tests skipped: %s", why);
	else
		diag("kvm-clock now %" PRIu64 " ns, pvclock %s", kvmclock_ns(),
		     pvti_stable ? "stable" : "not stable: timing on CPU 0 only");
	{
		unsigned long long spu[MAX_CPUS];

		/* Without it every interrupt count check fails, loudly. */
		have_spu = read_spu(spu);
		if (!have_spu)
			diag("no SPU row in /proc/interrupts: injections cannot be counted");
	}
	run_tests(present_tests, ARRAY_SIZE(present_tests));

	if (old_allow[0])
		write_text(allow_writes, old_allow);
	return finish();
}
