#!/bin/sh
# sparse.sh KOUT: run sparse (make C=2) over every C file of the kernel that
# the linux/ series touches and the configuration in KOUT builds. Any sparse
# warning or error in them fails. Debian 12's sparse (0.6.4) cannot parse the
# 7.1 headers, so sparse is built from Debian's newer source package.
set -eu
. "$(dirname "$0")/lib.sh"

KOUT=${1:?usage: sparse.sh KERNEL-BUILD-DIR}
"$TOP/scripts/fetch.sh" sparse >/dev/null
bin=$PVTIME_CACHE/work/sparse/sparse
# Keyed by the version: raising SPARSE_DEBVER rebuilds it.
if [ ! -x "$bin" ] || [ "$(cat "$PVTIME_CACHE/work/sparse/.pvtime-key" 2>/dev/null)" != "$SPARSE_DEBVER" ]; then
	msg "building sparse $SPARSE_DEBVER"
	rm -rf "$PVTIME_CACHE/work/sparse"
	cp -a "$SPARSE_BASE" "$PVTIME_CACHE/work/sparse"
	make -C "$PVTIME_CACHE/work/sparse" -s -j"$(nproc)" HAVE_GTK=no \
		HAVE_LLVM=no HAVE_SQLITE=no HAVE_LIBXML=no sparse >&2 ||
		die "building sparse failed"
	echo "$SPARSE_DEBVER" >"$PVTIME_CACHE/work/sparse/.pvtime-key"
fi

src=$PVTIME_CACHE/work/linux
"$TOP/scripts/tree.sh" ensure linux "$src" >&2
objs=
for f in $(sed -n 's|^+++ b/\(.*\.c\)$|\1|p' $(series_patches "$TOP/linux" | sed "s|^|$TOP/linux/|") |
	grep -v '^tools/' | sort -u); do
	[ -f "$KOUT/${f%.c}.o" ] && objs="$objs ${f%.c}.o"
done
[ -n "$objs" ] || die "no object of the series is built in $KOUT"
log=$KOUT/sparse.log
# shellcheck disable=SC2086
make -C "$src" O="$KOUT" CC="$BUILD_CC" C=2 CHECK="$bin" $objs >"$log" 2>&1 ||
	{ tail -n 20 "$log" >&2; die "make C=2 failed (log: $log)"; }
n=$(grep -c '^  CHECK' "$log" || true)
w=$(grep -E ':[0-9]+:[0-9]+: (warning|error):' "$log" || true)
[ -z "$w" ] || { echo "$w" >&2; die "sparse: warnings in files of the series"; }
msg "sparse: $n files checked, no warnings:$objs"
