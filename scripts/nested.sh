#!/bin/sh
# nested.sh [boot.py arguments]: one boot of the nested rig by hand. Builds
# (cached) QEMU, the kernel, the guest and L1 initramfs images and the KVM
# selftests, then boots the L1 host the way a nested row of make check
# does (-cpu max, 1536 MiB, L2's console in l2-console.log); the arguments
# name the set and the rest, and override those defaults, e.g.
#   scripts/nested.sh --set l2 --smp 2 --print-status \
#       --append 'pvtime.l2set=demo pvtime.l2smp=2 pvtime.l2hook=kvm-stats'
# Logs go to build/logs/NAME (--name, default: the set).
set -eu
. "$(dirname "$0")/lib.sh"

QEMU=$("$TOP/scripts/build-qemu.sh")
KOUT=$("$TOP/scripts/build-kernel.sh")
INITRD=$("$TOP/scripts/build-initramfs.sh" "$KOUT")
KVMST=$("$TOP/scripts/build-kvm-selftests.sh" "$KOUT")
INITRD_L1=$("$TOP/scripts/build-initramfs-l1.sh" "$KOUT" "$QEMU" "$INITRD" "$KVMST")
exec /usr/bin/python3 "$TOP/scripts/boot.py" --qemu "$QEMU" \
	--kernel "$KOUT/arch/x86/boot/bzImage" --initrd "$INITRD" \
	--initrd-l1 "$INITRD_L1" --rig l1 --timeout 900 --log-dir "$BUILD/logs" "$@"
