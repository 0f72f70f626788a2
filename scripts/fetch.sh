#!/bin/sh
# Fetch the pinned Linux and QEMU bases through apt with a private
# configuration derived from the machine's own Debian sources, verify their
# checksums and unpack pristine trees into the cache.
set -eu
. "$(dirname "$0")/lib.sh"

LINUX_ORIG=linux_${LINUX_VERSION}.orig.tar.xz
QEMU_ORIG=qemu_${QEMU_UPSTREAM}+ds.orig.tar.xz
QEMU_DEB=qemu_${QEMU_DEBVER#*:}.debian.tar.xz
SPARSE_ORIG=sparse_${SPARSE_DEBVER%-*}.orig.tar.gz

dl=$PVTIME_CACHE/dl
mkdir -p "$dl"

have() { [ -f "$dl/$1" ] && echo "$2  $dl/$1" | sha256sum -c --status; }

apt_private() {
	a=$PVTIME_CACHE/apt
	if [ ! -d "$a/lists" ] || [ -z "$(ls "$a/lists" 2>/dev/null)" ] ||
	   [ "${PVTIME_APT_REFRESH:-}" = 1 ]; then
		need debian.sources /etc/apt/sources.list.d/debian.sources base-files
		mkdir -p "$a/sources.list.d" "$a/lists/partial" "$a/cache/archives/partial"
		# The machine's first Debian archive stanza, re-pointed at sid sources.
		awk -v RS= '!/security/ {print; exit}' /etc/apt/sources.list.d/debian.sources |
			sed -e 's/^Types:.*/Types: deb-src/' -e 's/^Suites:.*/Suites: sid/' \
			>"$a/sources.list.d/sid-src.sources"
		apt_run update -q >"$a/update.log" 2>&1 ||
			{ cat "$a/update.log" >&2; die "apt-get update of the private source list failed"; }
	fi
}

apt_run() {
	a=$PVTIME_CACHE/apt
	apt-get -o Dir::Etc::SourceList=/dev/null \
		-o Dir::Etc::SourceParts="$a/sources.list.d" \
		-o Dir::State::Lists="$a/lists" \
		-o Dir::Cache="$a/cache" \
		-o APT::Sandbox::User=root "$@"
}

get_src() { # pkg=version file sha
	if have "$2" "$3"; then return 0; fi
	apt_private
	# apt's exit code is not trusted: the kernel's debian tarball of this
	# version is not served, so apt fails after the orig has arrived. Its
	# messages are kept in a log and shown only when the file we need did
	# not arrive: an expected miss is not an error to show.
	msg "downloading $2"
	log=$dl/apt-${1%%=*}.log
	(cd "$dl" && apt_run source --download-only -q "$1" >"$log" 2>&1) || true
	have "$2" "$3" || { cat "$log" >&2; die "$2: missing or bad sha256 after download (expected $3)"; }
}

# Pristine trees, unpacked once.
unpack() { # DIR TARBALL
	[ -f "$1/.pvtime-pristine" ] && return 0
	rm -rf "$1.tmp" && mkdir -p "$1.tmp"
	msg "unpacking $(basename "$2")"
	tar -C "$1.tmp" --strip-components=1 -xf "$2"
	touch "$1.tmp/.pvtime-pristine"
	rm -rf "$1" && mv "$1.tmp" "$1"
}

# fetch.sh sparse: Debian 12's sparse (0.6.4) cannot parse the 7.1 headers;
# the sparse gate builds the newer Debian source package instead.
if [ "${1:-}" = sparse ]; then
	get_src "sparse=$SPARSE_DEBVER" "$SPARSE_ORIG" "$SPARSE_SHA256"
	unpack "$SPARSE_BASE" "$dl/$SPARSE_ORIG"
	echo "$SPARSE_BASE"
	exit 0
fi

get_src "linux=$LINUX_DEBVER" "$LINUX_ORIG" "$LINUX_SHA256"
get_src "qemu=$QEMU_DEBVER" "$QEMU_ORIG" "$QEMU_SHA256"
[ -f "$dl/$QEMU_DEB" ] || die "$QEMU_DEB missing (needed for Debian's build fixes)"

unpack "$LINUX_BASE" "$dl/$LINUX_ORIG"
if [ ! -f "$QEMU_BASE/.pvtime-pristine" ]; then
	unpack "$QEMU_BASE.raw" "$dl/$QEMU_ORIG"
	rm -rf "$QEMU_BASE.deb" && mkdir -p "$QEMU_BASE.deb"
	tar -C "$QEMU_BASE.deb" -xf "$dl/$QEMU_DEB"
	# Debian's +ds repack drops firmware and the bundled meson wheel; its own
	# two patches make the tree configure without them.
	for p in skip-unpack-edk2-blobs.patch skip-install-dtb.patch; do
		f=$(find "$QEMU_BASE.deb/debian/patches" -name "$p" | head -n1)
		[ -n "$f" ] || die "debian patch $p not found in $QEMU_DEB"
		patch -d "$QEMU_BASE.raw" -p1 -s <"$f"
	done
	rm -rf "$QEMU_BASE.deb"
	mv "$QEMU_BASE.raw" "$QEMU_BASE"
fi
msg "bases ready: $LINUX_BASE $QEMU_BASE"
