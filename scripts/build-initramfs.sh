#!/bin/sh
# build-initramfs.sh KERNEL_OUT: busybox-static, the kselftests (timers and
# pvtime) built static from the patched tree, the
# project's own guest test programs, cyclictest with its libraries, the init
# and the test sets. Prints the path of the cpio archive.
set -eu
. "$(dirname "$0")/lib.sh"

kout=${1:?usage: build-initramfs.sh KERNEL_OUT}
src=$PVTIME_CACHE/work/linux
need busybox /bin/busybox busybox-static
need cyclictest /usr/bin/cyclictest rt-tests
need cpio cpio cpio
need rsync rsync rsync

# The selftest collections: the upstream timers suite and the series' own.
TARGETS="timers pvtime"
[ -d "$src/tools/testing/selftests/pvtime" ] ||
	die "tools/testing/selftests/pvtime not in the patched tree"

key=$( (cat "$kout/.pvtime-key"; echo "$TARGETS";
	find "$TOP/guest" "$TOP/tests/guest" -type f 2>/dev/null | sort | xargs cat;
	cat "$0") | sha256sum | cut -c1-16)
img=$PVTIME_CACHE/work/initramfs-$key.cpio.gz
if [ -f "$img" ]; then
	echo "$img"
	exit 0
fi

root=$PVTIME_CACHE/work/initramfs.d
rm -rf "$root"
mkdir -p "$root"/bin "$root"/sbin "$root"/usr/bin "$root"/usr/sbin "$root"/proc \
	"$root"/sys "$root"/dev "$root"/tmp "$root"/pvtime "$root"/lib64 "$root"/lib
cp /bin/busybox "$root/bin/busybox"
for a in $(/bin/busybox --list-full); do
	[ -e "$root/$a" ] || ln -s /bin/busybox "$root/$a"
done
# kselftest's runner calls "timeout --foreground N", which busybox lacks,
# and means "no limit" by N = 0, which busybox takes literally.
rm -f "$root/usr/bin/timeout"
cat >"$root/usr/bin/timeout" <<'EOT'
#!/bin/sh
[ "$1" = --foreground ] && shift
if [ "$1" = 0 ]; then shift; exec "$@"; fi
exec /bin/busybox timeout "$@"
EOT
chmod +x "$root/usr/bin/timeout"

msg "building kselftests ($TARGETS)"
# Static: the initramfs has no libc. timers/valid-adjtimex defines its own
# clock_adjtime(), which static glibc also provides: let the test's win.
kst=$PVTIME_CACHE/work/kselftest-build
rm -rf "$kst"
make -s -C "$src/tools/testing/selftests" TARGETS="$TARGETS" \
	KHDR_INCLUDES="-isystem $kout/usr/include" \
	LDFLAGS="-static -Wl,--allow-multiple-definition" \
	O="$kst" INSTALL_PATH="$root/kselftest" install >"$PVTIME_CACHE/work/kselftest.log" 2>&1 ||
	{ tail -n 20 "$PVTIME_CACHE/work/kselftest.log" >&2; die "kselftest build failed"; }

# The project's own guest-side test programs (tests/guest/*.c), static.
if ls "$TOP"/tests/guest/*.c >/dev/null 2>&1; then
	for c in "$TOP"/tests/guest/*.c; do
		gcc -static -O2 -Wall -Wextra -Werror -pthread -o "$root/usr/bin/$(basename "$c" .c)" "$c" ||
			die "cannot build $c"
	done
fi

# cyclictest from Debian, with the shared libraries it needs.
cp /usr/bin/cyclictest "$root/usr/bin/"
for l in $(ldd /usr/bin/cyclictest | awk '/=>/ {print $3} /^\t\/lib/ {print $1}'); do
	mkdir -p "$root$(dirname "$l")"
	cp -L "$l" "$root$l"
done

cp "$TOP/guest/init" "$root/init"
chmod +x "$root/init"
cp -r "$TOP/guest/sets" "$root/pvtime/sets"
cp -r "$TOP/guest/hooks" "$root/pvtime/hooks"
cp "$TOP/guest/defaults" "$root/pvtime/defaults"

(cd "$root" && find . | cpio -o -H newc --quiet | gzip -1 >"$img.tmp")
prune_outputs 'initramfs-????????????????.cpio.gz' "$img"
mv "$img.tmp" "$img"
echo "$img"
