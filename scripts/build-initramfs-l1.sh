#!/bin/sh
# build-initramfs-l1.sh KERNEL_OUT QEMU GUEST_INITRAMFS KVM_SELFTESTS: the
# initramfs of the nested rig's L1 host. It is the guest initramfs with a
# second cpio archive appended (the kernel unpacks both): the patched
# qemu-system-x86_64 and the series' qtest (pvclockevent-test) with their
# shared libraries and the dynamic loader, the firmware QEMU loads, the KVM
# selftests, and the L2 kernel and initramfs (/pvtime/l2/: the same
# kernel, the normal guest initramfs), and the benchmark's burst hog
# (guest/src/burst.c, static). Cached by the inputs' keys. Prints the path
# of the archive.
set -eu
. "$(dirname "$0")/lib.sh"

usage="usage: build-initramfs-l1.sh KERNEL_OUT QEMU GUEST_INITRAMFS KVM_SELFTESTS"
kout=${1:?$usage}
qemu=${2:?$usage}
initrd=${3:?$usage}
kvmst=${4:?$usage}
need cpio cpio cpio
need strip strip binutils
need ldd ldd libc-bin
need gcc gcc gcc
[ -f /usr/lib/x86_64-linux-gnu/libc.a ] ||
	die "static libc missing: install libc6-dev (scripts/deps.sh)"
burst=$TOP/guest/src/burst.c
# The firmware QEMU loads for -kernel on the pc machine, also under KVM.
FIRMWARE="/usr/share/seabios/bios-256k.bin /usr/share/qemu/linuxboot_dma.bin
 /usr/share/qemu/kvmvapic.bin"
for f in $FIRMWARE; do
	case $f in
	*/seabios/*) need "$(basename "$f")" "$f" seabios ;;
	*) need "$(basename "$f")" "$f" qemu-system-data ;;
	esac
done
kernel=$kout/arch/x86/boot/bzImage
[ -f "$kernel" ] || die "$kernel missing: run make kernel"
[ -x "$qemu" ] || die "$qemu missing: run make qemu"
qtest=$(dirname "$qemu")/tests/qtest/pvclockevent-test
[ -x "$qtest" ] || die "$qtest missing: run make qemu"
[ -f "$kvmst/list" ] || die "$kvmst/list missing: run scripts/build-kvm-selftests.sh"

key=$( (cat "$kout/.pvtime-key" "$(dirname "$qemu")/.pvtime-key" "$0";
	basename "$initrd"; basename "$kvmst"; echo "$FIRMWARE"; cat "$burst") |
	sha256sum | cut -c1-16)
img=$PVTIME_CACHE/work/initramfs-l1-$key.cpio
if [ -f "$img" ]; then
	echo "$img"
	exit 0
fi

root=$PVTIME_CACHE/work/initramfs-l1.d
rm -rf "$root"
mkdir -p "$root/usr/bin" "$root/usr/share/qemu" "$root/usr/share/seabios" \
	"$root/pvtime/l2" "$root/kvm-selftests"
strip -o "$root/usr/bin/qemu-system-x86_64" "$qemu"
strip -o "$root/usr/bin/pvclockevent-test" "$qtest"
# Their libraries at the paths ldd resolves them to, the loader included.
for l in $(ldd "$qemu" "$qtest" | awk '/=>/ {print $3} /^\t\/lib/ {print $1}' | sort -u); do
	mkdir -p "$root$(dirname "$l")"
	cp -L "$l" "$root$l"
done
for f in $FIRMWARE; do
	cp "$f" "$root$f"
done
cp -r "$kvmst"/. "$root/kvm-selftests/"
gcc -O2 -Wall -Werror -static -o "$root/usr/bin/burst" "$burst"
cp "$kernel" "$root/pvtime/l2/bzImage"
cp "$initrd" "$root/pvtime/l2/initramfs.cpio.gz"

# The appended archive stays uncompressed: most of it is compressed already,
# and L1 unpacks it under TCG, where gunzip is slow. The kernel looks for an
# uncompressed archive at a 4-byte boundary: zeros pad the gzip member.
pad=$(( (4 - $(stat -c %s "$initrd") % 4) % 4 ))
{ cat "$initrd"; head -c "$pad" /dev/zero;
  (cd "$root" && find . | cpio -o -H newc --quiet); } >"$img.tmp"
prune_outputs 'initramfs-l1-????????????????.cpio' "$img"
mv "$img.tmp" "$img"
rm -rf "$root"
echo "$img"
