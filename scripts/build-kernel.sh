#!/bin/sh
# Build the kernel: pristine 7.1.8 + linux/ series, tinyconfig plus the
# fragments in configs/ (default: guest.config and host.config, one kernel
# for the TCG guests and for both levels of the nested KVM rig), then
# olddefconfig. Incremental: the tree and the object directory live in the
# cache; a stamp keyed by the series hash and the fragments skips the step
# when nothing changed.
# Prints the directory holding bzImage, .config and usr/include.
set -eu
. "$(dirname "$0")/lib.sh"

need make make build-essential
need gcc gcc build-essential
need flex flex flex
need bison bison bison
need bc bc bc
need /usr/include/libelf.h /usr/include/libelf.h libelf-dev
need /usr/include/openssl/ssl.h /usr/include/openssl/ssl.h libssl-dev

FRAGS=${KERNEL_FRAGMENTS:-guest host}
name=$(echo "$FRAGS" | tr ' ' '+')
src=$PVTIME_CACHE/work/linux
out=$PVTIME_CACHE/work/linux-build-$name

fragfiles=
for f in $FRAGS; do
	[ -f "$TOP/configs/$f.config" ] || die "configs/$f.config not found"
	fragfiles="$fragfiles $TOP/configs/$f.config"
done

# shellcheck disable=SC2086
# The key: the series, the fragments and this script.
key=$(series_hash "$TOP/linux" | cache_key $fragfiles "$0")
if [ -f "$out/arch/x86/boot/bzImage" ] && [ "$(cat "$out/.pvtime-key" 2>/dev/null)" = "$key" ]; then
	msg "kernel $name up to date ($key)"
	echo "$out"
	exit 0
fi

# The tree is shared by all configurations: rebuilt only for a new series.
"$TOP/scripts/tree.sh" ensure linux "$src" >&2

mkdir -p "$out"
K() { make -C "$src" O="$out" CC="$BUILD_CC" -s "$@"; }
msg "configuring kernel ($name)"
K tinyconfig >/dev/null
# shellcheck disable=SC2086
(cd "$out" && "$src/scripts/kconfig/merge_config.sh" -m -O "$out" "$out/.config" $fragfiles >/dev/null)
K olddefconfig >/dev/null
# Every option a fragment asks for must survive olddefconfig.
# shellcheck disable=SC2086
bad=$(grep -h '^CONFIG_' $fragfiles | while IFS= read -r l; do
	grep -qxF "$l" "$out/.config" || echo "$l"
done)
[ -z "$bad" ] || die "config options lost in olddefconfig (missing dependency?): $(echo $bad)"

msg "building bzImage ($name)"
K -j"$(nproc)" bzImage >"$out/build.log" 2>&1 ||
	{ grep -E 'error|Error' "$out/build.log" | head -n 30 >&2; die "kernel build failed (log: $out/build.log)"; }
K headers >/dev/null 2>&1 || die "make headers failed"
echo "$key" >"$out/.pvtime-key"
echo "$out"
