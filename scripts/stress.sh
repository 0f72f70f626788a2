#!/bin/sh
# make stress: the long counts of the robustness figures (tests/stress),
# with the builds of make check. Each row's result joins
# $BUILD/stress/results.jsonl; the run ends with the same closing line as
# make check and writes stress/results/<date>/README.md: every row with its
# verdict and its counts, the commands and the revision.
#
# STRESS_FILTER=REGEX runs only the rows whose names match.
set -u
. "$(dirname "$0")/lib.sh"

out=$BUILD/stress
results=$(results_stream "$out") || die "cannot make $out"

"$TOP/scripts/fetch.sh" >"$out/fetch.log" 2>&1 || die "fetch failed (log: $out/fetch.log)"
build() { # build NAME CMD...: the last line of CMD's output, or die
	n=$1; shift
	msg "building $n"
	"$@" >"$out/$n.out" 2>"$out/$n.log" || die "$n failed (log: $out/$n.log)"
	tail -n1 "$out/$n.out"
}
QEMU=$(build qemu "$TOP/scripts/build-qemu.sh")
KOUT=$(build kernel "$TOP/scripts/build-kernel.sh")
INITRD=$(build initramfs "$TOP/scripts/build-initramfs.sh" "$KOUT")
KVMST=$(build kvm-selftests "$TOP/scripts/build-kvm-selftests.sh" "$KOUT")
INITRD_L1=$(build initramfs-l1 "$TOP/scripts/build-initramfs-l1.sh" "$KOUT" "$QEMU" "$INITRD" "$KVMST")

/usr/bin/python3 "$TOP/scripts/boot.py" --matrix "$TOP/tests/stress" \
	--list "${STRESS_FILTER:-}" >"$out/rows" || die "tests/stress does not read"
t0=$(date +%s)
while read -r name _; do
	/usr/bin/python3 "$TOP/scripts/boot.py" --qemu "$QEMU" \
		--kernel "$KOUT/arch/x86/boot/bzImage" --initrd "$INITRD" \
		--initrd-l1 "$INITRD_L1" --log-dir "$out/guests" \
		--matrix "$TOP/tests/stress" --row "$name" --results "$results" \
		--progress </dev/null
done <"$out/rows"
t1=$(date +%s)

/usr/bin/python3 "$TOP/scripts/stress-report.py" "$results" "$out/guests" \
	--minutes $(((t1 - t0 + 59) / 60)) --filter "${STRESS_FILTER:-}" ||
	msg "no results set written"
/usr/bin/python3 "$TOP/scripts/tally.py" sum "$results" --filter "${STRESS_FILTER:-}"
