#!/bin/sh
# make check: static gates, builds, harness self-tests and the guest matrix.
# Every step is one or more results; the run ends with one line
# "N passed, N failed, N skipped" and exits non-zero on any failure.
set -u
. "$(dirname "$0")/lib.sh"

LOGS=$BUILD/logs
rm -rf "$LOGS"
mkdir -p "$LOGS"
RESULTS=$LOGS/results.jsonl
: >"$RESULTS"
PASS=0 FAIL=0 SKIP=0

result() { # result ok|fail|skip NAME [DETAIL]
	case $1 in
	ok) PASS=$((PASS + 1)); echo "ok: $2" ;;
	skip) SKIP=$((SKIP + 1)); echo "skip: $2${3:+ ($3)}" ;;
	*) FAIL=$((FAIL + 1)); echo "FAIL: $2${3:+ ($3)}" ;;
	esac
}

# step NAME CMD...: run CMD with its output in $LOGS/NAME.log; one result.
step() {
	n=$1; shift
	if "$@" >"$LOGS/$n.log" 2>&1; then
		result ok "$n"
	else
		result fail "$n" "log: $LOGS/$n.log"
		tail -n 5 "$LOGS/$n.log" | sed 's/^/    /'
		return 1
	fi
}

summary() {
	echo "$PASS passed, $FAIL failed, $SKIP skipped"
	[ "$FAIL" = 0 ]
	exit $?
}

echo "== fetch"
step fetch "$TOP/scripts/fetch.sh" || summary

echo "== harness self-tests (static)"
"$TOP/tests/harness/static.sh" "$LOGS/harness-static" >/dev/null 2>&1
while IFS=' ' read -r st name; do
	result "$st" "$name"
done <"$LOGS/harness-static/results"

echo "== static gates"
for s in linux qemu; do
	step "apply-$s" "$TOP/scripts/tree.sh" ensure "$s" "$PVTIME_CACHE/work/$s" || continue
	[ -f "$TOP/$s/series" ] || continue
	# checkpatch's FILE_PATH_CHANGES only asks whether MAINTAINERS needs
	# updating for an added file; maintained.sh answers it for the kernel.
	if [ $s = linux ]; then
		base=$LINUX_BASE opts="--strict --quiet --ignore FILE_PATH_CHANGES"
	else
		base=$QEMU_BASE opts=
	fi
	patches=$(grep -v -e '^#' -e '^0000-' "$TOP/$s/series")
	for p in $patches; do
		# shellcheck disable=SC2086
		step "checkpatch-$s-$p" sh -c 'cd "$1" && shift && perl scripts/checkpatch.pl "$@"' \
			- "$base" $opts "$TOP/$s/$p"
	done
	[ $s = linux ] && step maintainers-linux "$TOP/scripts/maintained.sh" "$PVTIME_CACHE/work/linux" \
		$(for p in $patches; do echo "$TOP/$s/$p"; done)
done

echo "== builds"
QEMU=$("$TOP/scripts/build-qemu.sh" 2>"$LOGS/build-qemu.log") &&
	result ok build-qemu || { result fail build-qemu "log: $LOGS/build-qemu.log"; summary; }
KOUT=$("$TOP/scripts/build-kernel.sh" 2>"$LOGS/build-kernel.log") &&
	result ok build-kernel || { result fail build-kernel "log: $LOGS/build-kernel.log"; summary; }
INITRD=$("$TOP/scripts/build-initramfs.sh" "$KOUT" 2>"$LOGS/build-initramfs.log") &&
	result ok build-initramfs || { result fail build-initramfs "log: $LOGS/build-initramfs.log"; summary; }
KERNEL=$KOUT/arch/x86/boot/bzImage

echo "== kernel quality gates"
# sparse (make C=2) over the series' C files; Documentation/virt with Sphinx.
step sparse "$TOP/scripts/sparse.sh" "$KOUT"
step htmldocs "$TOP/scripts/htmldocs.sh"

# The rows this run boots.
grep -v -e '^#' -e '^[[:space:]]*$' "$TOP/tests/matrix" |
	while read -r name rest; do
		if [ -z "${MATRIX_FILTER:-}" ] || echo "$name" | grep -qE "$MATRIX_FILTER"; then
			echo "$name $rest"
		fi
	done >"$LOGS/matrix"

# The nested rig (rows whose cpu is L1): its L1 host boots the same kernel on
# a stock CPU model with SVM and nested paging, so the kernel's KVM_AMD gives
# it /dev/kvm; the L1 initramfs adds QEMU, the KVM selftests and the L2
# kernel and initramfs. Built only when a selected row needs it.
L1_CPU=max
L1_MEM=1536
if awk '$3 ~ /^L1(:|$)/ {f = 1} END {exit !f}' "$LOGS/matrix"; then
	KVMST=$("$TOP/scripts/build-kvm-selftests.sh" "$KOUT" 2>"$LOGS/build-kvm-selftests.log") &&
		result ok build-kvm-selftests ||
		{ result fail build-kvm-selftests "log: $LOGS/build-kvm-selftests.log"; summary; }
	INITRD_L1=$("$TOP/scripts/build-initramfs-l1.sh" "$KOUT" "$QEMU" "$INITRD" "$KVMST" \
		2>"$LOGS/build-initramfs-l1.log") && result ok build-initramfs-l1 ||
		{ result fail build-initramfs-l1 "log: $LOGS/build-initramfs-l1.log"; summary; }
fi

boot() { # boot NAME SET SMP CPU TIMEOUT APPEND [boot.py args]
	n=$1 set=$2 smp=$3 cpu=$4 to=$5 app=$6; shift 6
	[ "$app" = - ] && app=
	/usr/bin/python3 "$TOP/scripts/boot.py" --qemu "$QEMU" --kernel "$KERNEL" \
		--initrd "${ROW_INITRD:-$INITRD}" --name "$n" --set "$set" --smp "$smp" --cpu "$cpu" \
		--timeout "$to" --append "$app" --log-dir "$LOGS/guests" "$@"
}

echo "== harness self-tests (boot runner)"
# A guest that panics must fail its run.
if boot selftest-panic selftest-panic 1 max 300 - >"$LOGS/selftest-panic.out" 2>&1; then
	result fail "runner fails a panicking guest" "the run passed"
elif grep -q 'panic: .*Kernel panic' "$LOGS/selftest-panic.out"; then
	result ok "runner fails a panicking guest"
else
	result fail "runner fails a panicking guest" "no panic reported: $(head -c 300 "$LOGS/selftest-panic.out")"
fi
# A TAP "not ok" must be counted as a failure, the "ok" as a pass.
boot selftest-notok selftest-notok 1 max 300 - >"$LOGS/selftest-notok.out" 2>&1
if grep -q '^row selftest-notok: 1 passed, 2 failed, 0 skipped' "$LOGS/selftest-notok.out"; then
	result ok "runner counts TAP not ok as failed"
else
	result fail "runner counts TAP not ok as failed" "$(head -n1 "$LOGS/selftest-notok.out")"
fi
# A panic in the nested rig's L2 guest must fail its L1 row, from L2's console.
if [ -n "${INITRD_L1:-}" ]; then
	if ROW_INITRD=$INITRD_L1 boot selftest-l2-panic l2 1 "$L1_CPU" 300 pvtime.l2set=selftest-panic \
		--mem "$L1_MEM" --extra-console l2-console >"$LOGS/selftest-l2-panic.out" 2>&1; then
		result fail "runner fails a row whose L2 guest panics" "the run passed"
	elif grep -q 'l2-console: panic: .*Kernel panic' "$LOGS/selftest-l2-panic.out"; then
		result ok "runner fails a row whose L2 guest panics"
	else
		result fail "runner fails a row whose L2 guest panics" "no L2 panic reported: $(head -c 300 "$LOGS/selftest-l2-panic.out")"
	fi
fi

echo "== guest matrix"
PV=max,tcg-kvmclock=on,kvm-pv-clockevent=on
KVMCLOCK=max,tcg-kvmclock=on
while read -r name smp cpu set to app; do
	ROW_INITRD= nested=
	case $cpu in
	PV) cpu=$PV ;;
	KVMCLOCK) cpu=$KVMCLOCK ;;
	L1) cpu=$L1_CPU nested=1 ;;
	L1:*) cpu=${cpu#L1:} nested=1 ;;
	esac
	before=$(wc -l <"$RESULTS")
	if [ -n "$nested" ]; then
		ROW_INITRD=$INITRD_L1 boot "$name" "$set" "$smp" "$cpu" "$to" "$app" \
			--mem "$L1_MEM" --extra-console l2-console --results "$RESULTS" </dev/null
	elif [ "$set" = snapshot ]; then
		[ "$app" = - ] && app=
		/usr/bin/python3 "$TOP/tests/snapshot.py" --qemu "$QEMU" --kernel "$KERNEL" \
			--initrd "$INITRD" --name "$name" --smp "$smp" --cpu "$cpu" \
			--timeout "$to" --append "$app" --log-dir "$LOGS/guests" \
			--counter pvce-fires --results "$RESULTS" </dev/null
	else
		extra=
		# The MSR test's own account is held against QEMU's counters.
		[ "$set" = msr ] && extra=--qom-check
		boot "$name" "$set" "$smp" "$cpu" "$to" "$app" --results "$RESULTS" $extra </dev/null
	fi
	# A runner that died before judging the row still fails it.
	if [ "$(wc -l <"$RESULTS")" = "$before" ]; then
		echo "row $name: runner produced no result"
		echo "{\"name\": \"$name\", \"passed\": 0, \"failed\": 1, \"skipped\": 0}" >>"$RESULTS"
	fi
done <"$LOGS/matrix"

# The benchmark's quick mode, once, so that make bench cannot rot: it checks
# that every figure was produced, not its value.
# One step per platform (TCG; KVM nested, with its peers).
for pf in tcg kvm; do
	if [ -z "${MATRIX_FILTER:-}" ] || echo "bench-quick-$pf" | grep -qE "$MATRIX_FILTER"; then
		echo "== benchmark (quick, $pf)"
		step "bench-quick-$pf" env BENCH_QUICK=1 /usr/bin/python3 "$TOP/scripts/bench.py" \
			--platform "$pf" --out "$LOGS/bench-quick-$pf"
	fi
done
# Fold the rows' results (TAP results plus one per boot) into the totals.
eval "$(/usr/bin/python3 - "$RESULTS" <<'PY'
import json, sys
p = f = s = 0
for l in open(sys.argv[1]):
    r = json.loads(l); p += r["passed"]; f += r["failed"]; s += r["skipped"]
print(f"PASS=$((PASS + {p})) FAIL=$((FAIL + {f})) SKIP=$((SKIP + {s}))")
PY
)"
summary
