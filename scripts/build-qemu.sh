#!/bin/sh
# Build qemu-system-x86_64 (TCG and KVM) from the pristine base plus the
# qemu/ series, and the series' qtest (tests/qtest/pvclockevent-test).
# Firmware comes from Debian's seabios and qemu-system-data, on the
# firmware path, so that QEMU finds it without -L (the qtest passes none).
# Incremental: the source tree and build directory live in the cache and
# are reused; a stamp keyed by the series hash and the configure line
# skips the whole step when nothing changed.
set -eu
. "$(dirname "$0")/lib.sh"

need ninja ninja ninja-build
need meson meson "meson (bookworm-backports)"
need python3 /usr/bin/python3 python3
need pkg-config pkg-config pkg-config

src=$PVTIME_CACHE/work/qemu
out=$PVTIME_CACHE/work/qemu-build

CONFIGURE="--python=/usr/bin/python3 --target-list=x86_64-softmmu
 --disable-docs --disable-debug-info --disable-werror --disable-user
 --enable-tcg --enable-kvm --disable-xen --disable-gtk --disable-sdl
 --disable-vnc --disable-spice --disable-opengl --disable-curl
 --disable-libusb --disable-slirp --disable-capstone --disable-guest-agent
 --disable-install-blobs --disable-tools --disable-linux-io-uring --disable-libudev --disable-gio
 --firmwarepath=/usr/share/seabios:/usr/share/qemu"

# The key: the series, the configure line and this script.
key=$(printf '%s\n%s\n' "$(series_hash "$TOP/qemu")" "$CONFIGURE" | cache_key "$0")
# Run from the build directory, QEMU looks for the firmware path's
# directories under qemu-bundle/ (get_relocated_path()): link them there.
bundle_firmware() {
	for d in /usr/share/seabios /usr/share/qemu; do
		mkdir -p "$out/qemu-bundle$(dirname "$d")"
		ln -sfn "$d" "$out/qemu-bundle$d"
	done
}
if [ -x "$out/qemu-system-x86_64" ] && [ "$(cat "$out/.pvtime-key" 2>/dev/null)" = "$key" ]; then
	bundle_firmware
	msg "qemu up to date ($key)"
	echo "$out/qemu-system-x86_64"
	exit 0
fi

"$TOP/scripts/tree.sh" ensure qemu "$src" >&2
mkdir -p "$out"
if [ ! -f "$out/build.ninja" ] || [ "$(cat "$out/.pvtime-conf" 2>/dev/null)" != "$CONFIGURE" ]; then
	msg "configuring qemu"
	rm -rf "$out" && mkdir -p "$out"
	# shellcheck disable=SC2086
	(cd "$out" && "$src/configure" $CONFIGURE --cc="$BUILD_CC" >configure.log 2>&1) ||
		{ tail -n 30 "$out/configure.log" >&2; die "qemu configure failed (log: $out/configure.log)"; }
	echo "$CONFIGURE" >"$out/.pvtime-conf"
fi
msg "building qemu-system-x86_64 and the series' qtest"
(cd "$out" && ninja -j"$(nproc)" qemu-system-x86_64 tests/qtest/pvclockevent-test >ninja.log 2>&1) ||
	{ grep -E 'error|Error' "$out/ninja.log" | head -n 30 >&2; die "qemu build failed (log: $out/ninja.log)"; }
bundle_firmware
echo "$key" >"$out/.pvtime-key"
echo "$out/qemu-system-x86_64"
