#!/bin/sh
# make demo: boot a 2-vCPU guest and show its clock event devices,
# clocksources and timer interrupt lines. DEMO_CPU selects the -cpu model
# and properties, DEMO_APPEND adds kernel arguments.
set -eu
. "$(dirname "$0")/lib.sh"

QEMU=$("$TOP/scripts/build-qemu.sh")
KOUT=$("$TOP/scripts/build-kernel.sh")
INITRD=$("$TOP/scripts/build-initramfs.sh" "$KOUT")
# Default: kvm-clock and the paravirtual device on; DEMO_CPU=max shows the
# stock devices of the same kernel and QEMU.
cpu=${DEMO_CPU:-PV}
echo "== guest: 2 vCPUs, -cpu $cpu ${DEMO_APPEND:+, kernel args: $DEMO_APPEND}"
/usr/bin/python3 "$TOP/scripts/boot.py" --qemu "$QEMU" \
	--kernel "$KOUT/arch/x86/boot/bzImage" --initrd "$INITRD" \
	--set demo --name demo --smp 2 --cpu "$cpu" --timeout 300 \
	--append "${DEMO_APPEND:-}" --log-dir "$BUILD/logs" --print-status --no-tap
