#!/bin/sh
# make check: static gates, builds, harness self-tests and the guest matrix.
#
# Every check is one or more results in one stream, $LOGS/results.jsonl
# (scripts/tally.py): the gates, builds and self-tests here, one line per
# guest row from its runner. The run ends with the line the tally computes
# from that stream, "N passed, N failed, N skipped", and exits non-zero on
# any failure. It fails closed: a row whose runner wrote nothing, a line of
# the stream that is not a result, a result that could not be recorded, a
# self-test block that ran fewer checks than it planned, all fail.
set -u
. "$(dirname "$0")/lib.sh"

LOGS=$BUILD/logs
RESULTS=$(results_stream "$LOGS") || die "cannot make $LOGS"
LOST=0

result() { # result ok|fail|skip NAME [DETAIL]
	/usr/bin/python3 "$TOP/scripts/tally.py" add "$RESULTS" "$1" "$2" "${3:-}" || LOST=1
	case $1 in
	ok) echo "ok: $2" ;;
	skip) echo "skip: $2${3:+ ($3)}" ;;
	*) echo "FAIL: $2${3:+ ($3)}" ;;
	esac
}

# long NAME CMD...: run CMD in the background, its standard output in
# $LOGS/NAME.out and its errors in $LOGS/NAME.log, with a line every minute
# so that a long build shows it is alive. Returns CMD's exit status.
long() {
	n=$1; shift
	"$@" >"$LOGS/$n.out" 2>"$LOGS/$n.log" &
	pid=$! t=0
	while kill -0 $pid 2>/dev/null; do
		sleep 1
		t=$((t + 1))
		[ $((t % 60)) = 0 ] &&
			echo "  $n: running, $((t / 60)) min; $(tail -n1 "$LOGS/$n.log" | cut -c1-100)"
	done
	wait $pid
}

# script_results WHAT STATUS FILE [PREFIX]: each "ok NAME" or "fail NAME"
# line of FILE, which a script with exit status STATUS wrote, as a result
# (PREFIX before the name). A script that reported nothing, or exited
# non-zero without naming a failure, fails WHAT.
script_results() {
	sr_n=0
	while IFS=' ' read -r kind name; do
		result "$kind" "${4:-}$name"
		sr_n=$((sr_n + 1))
	done <"$3"
	if [ "$sr_n" = 0 ] || { [ "$2" != 0 ] && ! grep -q '^fail ' "$3"; }; then
		result fail "$1" "exit $2, $sr_n results (log: $3)"
	fi
}

# step NAME CMD...: run CMD with its output in $LOGS/NAME.log; one result.
step() {
	n=$1; shift
	long "$n" "$@"
	st=$?
	# The end of its messages (stderr: the reason, as a rule) and of its
	# output, both shown on failure.
	tail -n 8 "$LOGS/$n.log" >"$LOGS/$n.err-tail"
	cat "$LOGS/$n.out" >>"$LOGS/$n.log"
	if [ "$st" = 0 ]; then
		result ok "$n"
	else
		result fail "$n" "log: $LOGS/$n.log"
		{ cat "$LOGS/$n.err-tail"; echo "..."; tail -n 5 "$LOGS/$n.out"; } |
			cut -c1-400 | sed 's/^/    /'
		return 1
	fi
}

summary() {
	if [ "$LOST" != 0 ]; then
		echo "FAIL: a result could not be recorded in $RESULTS"
		echo "FAIL: results" >>"$RESULTS"
	fi
	/usr/bin/python3 "$TOP/scripts/tally.py" sum "$RESULTS" --filter "${MATRIX_FILTER:-}"
	st=$?
	[ "$st" = 0 ] && [ "$LOST" = 0 ]
	exit $?
}

[ -z "${MATRIX_FILTER:-}" ] || echo "MATRIX_FILTER='$MATRIX_FILTER': only the rows it matches run"

echo "== fetch"
step fetch "$TOP/scripts/fetch.sh" || summary

echo "== harness self-tests (static)"
# static.sh exits non-zero when a check failed or did not run (its blocks
# hold themselves to their plans); an exit without a failed check named is
# still a failure.
"$TOP/tests/harness/static.sh" "$LOGS/harness-static" >/dev/null 2>&1
script_results "harness static self-tests" $? "$LOGS/harness-static/results"
# The guard of those blocks: a crash in either is a failed check, never
# silently fewer checks.
for b in 1 2; do
	d=$LOGS/harness-static-break$b
	if PVTIME_STATIC_BREAK=$b "$TOP/tests/harness/static.sh" "$d" >/dev/null 2>&1; then
		result fail "static self-tests: a crash in block $b fails" "it passed"
	elif grep -q "^fail .*block ran 0 of [0-9]* planned checks" "$d/results"; then
		result ok "static self-tests: a crash in block $b fails"
	else
		result fail "static self-tests: a crash in block $b fails" "not reported: see $d"
	fi
done

echo "== static gates"
for s in linux qemu; do
	# tree.sh refuses a missing or empty series: the gate needs a patch.
	step "apply-$s" "$TOP/scripts/tree.sh" ensure "$s" "$PVTIME_CACHE/work/$s" || continue
	# checkpatch's FILE_PATH_CHANGES only asks whether MAINTAINERS needs
	# updating for an added file; maintained.sh answers it for the kernel.
	# UNKNOWN_COMMIT_ID looks a Fixes: tag's commit up in git history,
	# which the release tarball the base comes from does not have.
	if [ $s = linux ]; then
		base=$LINUX_BASE opts="--strict --quiet --ignore FILE_PATH_CHANGES,UNKNOWN_COMMIT_ID"
	else
		base=$QEMU_BASE opts=
	fi
	patches=$(series_patches "$TOP/$s")
	for p in $patches; do
		# shellcheck disable=SC2086
		step "checkpatch-$s-$p" sh -c 'cd "$1" && shift && perl scripts/checkpatch.pl "$@"' \
			- "$base" $opts "$TOP/$s/$p"
	done
	# shellcheck disable=SC2046
	[ $s = linux ] && step maintainers-linux "$TOP/scripts/maintained.sh" "$PVTIME_CACHE/work/linux" \
		$(for p in $patches; do echo "$TOP/$s/$p"; done)
done

echo "== builds"
# build NAME VAR CMD...: a build step whose one line of output (a path)
# goes into VAR; a failed build ends the run.
build() {
	n=$1 var=$2; shift 2
	if long "$n" "$@" && [ -s "$LOGS/$n.out" ]; then
		eval "$var=\$(tail -n1 \"\$LOGS/\$n.out\")"
		result ok "$n"
	else
		result fail "$n" "log: $LOGS/$n.log"
		tail -n 5 "$LOGS/$n.log" | sed 's/^/    /'
		summary
	fi
}
build build-qemu QEMU "$TOP/scripts/build-qemu.sh"
build build-kernel KOUT "$TOP/scripts/build-kernel.sh"
build build-initramfs INITRD "$TOP/scripts/build-initramfs.sh" "$KOUT"
KERNEL=$KOUT/arch/x86/boot/bzImage

echo "== QEMU configurations"
# What QEMU must refuse or accept under TCG (tests/harness/qemu-config.sh,
# held to its own plan): one result per case; QEMU's words in the log.
"$TOP/tests/harness/qemu-config.sh" "$QEMU" >"$LOGS/qemu-config.results" \
	2>"$LOGS/qemu-config.log"
script_results "qemu configurations" $? "$LOGS/qemu-config.results" "qemu: "

# The QEMU series' qtest, under TCG here (its KVM cases run in the nested
# rig, set qemu-kvm): a result per TAP line, and its TCG cases must be
# among them.
QTEST=$(dirname "$QEMU")/tests/qtest/pvclockevent-test
QTEST_QEMU_BINARY=$QEMU timeout 300 "$QTEST" --tap >"$LOGS/qtest.tap" 2>"$LOGS/qtest.log"
qst=$?
# A skipped case is a failed one.
awk '/^ok [0-9]+ .*# SKIP/ { sub(/ # SKIP.*/, ""); print "fail", $3, "(skipped)"; next }
	/^ok [0-9]+ / { print "ok", $3 } /^not ok [0-9]+ / { print "fail", $4 }' \
	"$LOGS/qtest.tap" >"$LOGS/qtest.results"
for c in apic-disabled migrate reset init tsc-write far; do
	grep -q "^[a-z]* /x86_64/x86/pvclockevent/$c/tcg" "$LOGS/qtest.results" ||
		echo "fail /x86_64/x86/pvclockevent/$c/tcg: not run" >>"$LOGS/qtest.results"
done
script_results "qtest pvclockevent-test" $qst "$LOGS/qtest.results" "qtest: "

echo "== kernel quality gates"
# sparse (make C=2) over the series' C files; Documentation/virt with Sphinx.
step sparse "$TOP/scripts/sparse.sh" "$KOUT"
step htmldocs "$TOP/scripts/htmldocs.sh"

# The rows this run boots: every row of tests/matrix, or those whose names
# match MATRIX_FILTER.
if ! /usr/bin/python3 "$TOP/scripts/boot.py" --matrix "$TOP/tests/matrix" \
	--list "${MATRIX_FILTER:-}" >"$LOGS/matrix" 2>"$LOGS/matrix.log"; then
	result fail "tests/matrix" "$(cat "$LOGS/matrix.log")"
	summary
fi

# The nested rig (rows with rig=l1): its L1 host boots the same kernel on
# a stock CPU model with SVM and nested paging, so the kernel's KVM_AMD
# gives it /dev/kvm; the L1 initramfs adds QEMU, the KVM selftests and the
# L2 kernel and initramfs. Built only when a selected row needs it.
INITRD_L1=
if grep -q ' l1$' "$LOGS/matrix"; then
	build build-kvm-selftests KVMST "$TOP/scripts/build-kvm-selftests.sh" "$KOUT"
	build build-initramfs-l1 INITRD_L1 "$TOP/scripts/build-initramfs-l1.sh" \
		"$KOUT" "$QEMU" "$INITRD" "$KVMST"
fi

# runner [boot.py args]: the guest runner with this run's builds and logs.
runner() {
	/usr/bin/python3 "$TOP/scripts/boot.py" --qemu "$QEMU" --kernel "$KERNEL" \
		--initrd "$INITRD" ${INITRD_L1:+--initrd-l1 "$INITRD_L1"} \
		--log-dir "$LOGS/guests" "$@" </dev/null
}

boot() { # boot NAME [boot.py args]: one guest outside the matrix
	n=$1; shift
	runner --name "$n" --timeout 300 "$@" >"$LOGS/$n.out" 2>&1
}

# must_fail NAME WHAT PATTERN [boot.py args]: the runner must fail this
# guest, and say PATTERN about it.
must_fail() {
	n=$1 what=$2 pat=$3; shift 3
	if boot "$n" "$@"; then
		result fail "$what" "the run passed"
	elif grep -qE "$pat" "$LOGS/$n.out"; then
		result ok "$what"
	else
		result fail "$what" "not said: $(head -c 300 "$LOGS/$n.out")"
	fi
}

echo "== harness self-tests (boot runner)"
must_fail selftest-panic "runner fails a panicking guest" 'panic: .*Kernel panic' \
	--set selftest-panic
# A TAP "not ok" must be counted as a failure, the "ok" as a pass.
boot selftest-notok --set selftest-notok
if grep -q '^row selftest-notok: 1 passed, 2 failed, 0 skipped' "$LOGS/selftest-notok.out"; then
	result ok "runner counts TAP not ok as failed"
else
	result fail "runner counts TAP not ok as failed" "$(head -n1 "$LOGS/selftest-notok.out")"
fi
must_fail selftest-early-exit "runner fails a set that exits before writing its status" \
	'wrote no exit status' --set selftest-early-exit
must_fail selftest-notap "runner fails a set that printed no TAP result" \
	'the set printed no TAP result' --set selftest-notap
# A row that expects the paravirtual device fails where it is not offered.
must_fail selftest-expect "runner fails a row whose guest lacks the device it expects" \
	'not ok 2 pvtime: every CPU ticks on the expected device' --set pvtime \
	--cpu KVMCLOCK --append 'pvtime.expect=pv pvtime.timers=none'
# selftests/pvtime's device-level test must fail on a device that fires
# early, drops expiries, delivers on the wrong vector or delivers twice
# (QEMU's x-pvce-fault-* test knobs), and its log must say what it saw.
fault() { # fault NAME KNOB PATTERN
	n=$1 knob=$2 pat=$3
	what="selftests/pvtime fails a device with $knob"
	if boot "$n" --set device --smp 2 \
		--cpu "max,tcg-kvmclock=on,kvm-pv-clockevent=on,$knob"; then
		result fail "$what" "the run passed"
	elif ! grep -q '^  not ok 1 pvtime.device_expiry' "$LOGS/$n.out"; then
		result fail "$what" "device_expiry did not fail: $(head -c 300 "$LOGS/$n.out")"
	elif grep -qE "device_expiry:.*$pat" "$LOGS/guests/$n/console.log"; then
		result ok "$what"
	else
		result fail "$what" "not said: $pat"
	fi
}
fault fault-early x-pvce-fault-early-us=1000 'first: cpu[0-9]+: early interrupt'
fault fault-drop x-pvce-fault-drop=25 'first: cpu[0-9]+: lost expiry'
fault fault-vector x-pvce-fault-vector=25 'first: cpu[0-9]+: lost expiry'
fault fault-twice x-pvce-fault-twice=25 'first: cpu[0-9]+: (early interrupt|interrupt with nothing programmed)'
# A panic in the nested rig's L2 guest must fail its L1 row, from L2's console.
if [ -n "$INITRD_L1" ]; then
	must_fail selftest-l2-panic "runner fails a row whose L2 guest panics" \
		'l2-console: panic: .*Kernel panic' --set l2 --rig l1 --append pvtime.l2set=selftest-panic
fi

echo "== guest matrix"
while read -r name _; do
	before=$(wc -l <"$RESULTS")
	runner --matrix "$TOP/tests/matrix" --row "$name" --results "$RESULTS" --progress
	# A runner that died before judging the row still fails it.
	if [ "$(wc -l <"$RESULTS")" = "$before" ]; then
		result fail "row $name" "runner produced no result"
	fi
done <"$LOGS/matrix"

# The benchmark's quick mode, once per platform (TCG; KVM nested, with its
# peers), so that make bench cannot rot: every figure must be produced, and
# every boot must run cleanly (no timeout, splat or unfinished set).
for pf in tcg kvm; do
	if [ -z "${MATRIX_FILTER:-}" ] || echo "bench-quick-$pf" | grep -qE "$MATRIX_FILTER"; then
		echo "== benchmark (quick, $pf)"
		step "bench-quick-$pf" env BENCH_QUICK=1 /usr/bin/python3 "$TOP/scripts/bench.py" \
			--platform "$pf" --out "$LOGS/bench-quick-$pf"
	fi
done
summary
