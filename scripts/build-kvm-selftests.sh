#!/bin/sh
# build-kvm-selftests.sh KERNEL_OUT: the upstream KVM selftests the nested
# rig runs on its L1 host, built static from the patched tree against the
# kernel's exported headers. Cached by the series hash and the test list.
# Prints a directory holding the tests (x86/NAME) and "list", the names the
# guest set runs, one per line.
set -eu
. "$(dirname "$0")/lib.sh"

# Every test is required: one missing from the tree fails the build, and
# one that skips in the guest fails its row (guest/sets/kvm-selftests).
KVM_TESTS="x86/kvm_clock_test x86/tsc_rate_test x86/pvtime_test"

kout=${1:?usage: build-kvm-selftests.sh KERNEL_OUT}
src=$PVTIME_CACHE/work/linux
kst=$src/tools/testing/selftests/kvm
need make make build-essential
need gcc gcc build-essential
[ -f "$kout/usr/include/linux/kvm.h" ] || die "$kout/usr/include missing: run make kernel"

"$TOP/scripts/tree.sh" ensure linux "$src" >&2
for t in $KVM_TESTS; do
	[ -f "$kst/$t.c" ] || die "KVM selftest $t.c not in the tree"
done
build=$KVM_TESTS

key=$( (series_hash "$TOP/linux"; cat "$kout/.pvtime-key";
	echo "$KVM_TESTS"; cat "$0") |
	sha256sum | cut -c1-16)
out=$PVTIME_CACHE/work/kvm-selftests-$key
if [ -f "$out/list" ]; then
	echo "$out"
	exit 0
fi

msg "building KVM selftests:$build"
obj=$PVTIME_CACHE/work/kvm-selftests-build
rm -rf "$obj" "$out.tmp"
mkdir -p "$obj" "$out.tmp"
# shellcheck disable=SC2086
make -s -C "$kst" -j"$(nproc)" OUTPUT="$obj" \
	KHDR_INCLUDES="-isystem $kout/usr/include" LDFLAGS=-static \
	$(for t in $build; do echo "$obj/$t"; done) >"$obj.log" 2>&1 ||
	{ tail -n 20 "$obj.log" >&2; die "KVM selftests build failed (log: $obj.log)"; }
for t in $build; do
	mkdir -p "$out.tmp/$(dirname "$t")"
	cp "$obj/$t" "$out.tmp/$t"
done
for t in $KVM_TESTS; do
	echo "$t"
done >"$out.tmp/list"
rm -rf "$out"
prune_outputs 'kvm-selftests-????????????????' "$out"
mv "$out.tmp" "$out"
echo "$out"
