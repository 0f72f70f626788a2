# Common settings for the pvtime scripts; sourced, not run.
# shellcheck shell=sh

LINUX_VERSION=7.1.8
LINUX_DEBVER=7.1.8-2
LINUX_SHA256=47f9ce629bc14dd96c16a6a6a8cae4f7f3c3ff6138e2f64befc7bdad426e9728
QEMU_UPSTREAM=10.2.2
QEMU_DEBVER=1:10.2.2+ds-1
QEMU_SHA256=be05230fe47a6937cd29f28f562932c8125f9c93c2a82c625198f7a4aa601dfb
SPARSE_DEBVER=0.6.5~rc1-2
SPARSE_SHA256=3ac8855ec7f3ab92f325be0f64347ccc2b10f8b4d7c2906783ee8e2bdab3f0de

TOP=$(cd "$(dirname "$0")/.." && pwd)
PVTIME_CACHE=${PVTIME_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/pvtime}
LINUX_BASE=$PVTIME_CACHE/base/linux-$LINUX_VERSION
QEMU_BASE=$PVTIME_CACHE/base/qemu-$QEMU_UPSTREAM
SPARSE_BASE=$PVTIME_CACHE/base/sparse-$SPARSE_DEBVER
BUILD=${PVTIME_BUILD:-$TOP/build}
# The compiler of every build; the kernel's sparse run must use the same one
# so that kbuild does not see a changed command line and recompile.
BUILD_CC=gcc
command -v ccache >/dev/null 2>&1 && BUILD_CC="ccache gcc"

msg() { echo "pvtime: $*" >&2; }

# results_stream DIR: DIR made anew, with an empty results stream in it
# (scripts/tally.py); prints the stream's path.
results_stream() {
	rm -rf "$1" && mkdir -p "$1" && : >"$1/results.jsonl" && echo "$1/results.jsonl"
}
die() { echo "pvtime: error: $*" >&2; exit 1; }

# need TOOL PATH-OR-CMD PACKAGE: one-line, actionable error when missing.
need() {
	case $2 in
	/*) [ -e "$2" ] || die "$2 not found: install $3 (make deps)" ;;
	*) command -v "$2" >/dev/null 2>&1 || die "$1 not found: install $3 (make deps)" ;;
	esac
}

# series_patches DIR: the patch files DIR/series lists, in order. Comments,
# blank lines and the cover letter (0000-*) are not patches. The one parser
# of a series file.
series_patches() {
	[ -f "$1/series" ] || return 0
	grep -v -e '^[[:space:]]*#' -e '^[[:space:]]*$' "$1/series" | grep -v '^0000-' || true
}

# Hash of a series directory (the patches it lists, in order), for cache
# keys. The cover letter carries no code: editing it rebuilds nothing.
series_hash() {
	[ -d "$1" ] || { echo none; return 0; }
	(p=$(series_patches "$1") && cd "$1" && { printf '%s\n' $p; cat $p; }) 2>/dev/null |
		sha256sum | cut -c1-16
}

# cache_key FILE...: a short hash of the files and of standard input, for
# the cache keys of the builds (each hashes its own script too).
cache_key() {
	{ cat; cat "$@"; } | sha256sum | cut -c1-16
}

# prune_outputs PATTERN KEEP: remove the cache's older outputs of a build
# step (files or directories in $PVTIME_CACHE/work named PATTERN), all but
# KEEP: they are never used again.
prune_outputs() {
	find "$PVTIME_CACHE/work" -maxdepth 1 -name "$1" ! -name "$(basename "$2")" \
		-exec rm -rf {} +
}
