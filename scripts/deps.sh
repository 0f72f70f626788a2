#!/bin/sh
# Install everything the pvtime harness needs from Debian 12 packages.
# Idempotent: packages already present are left alone.
set -eu

PKGS="build-essential git flex bison bc libelf-dev libssl-dev cpio xz-utils
      ninja-build pkg-config libglib2.0-dev libfdt-dev libpixman-1-dev zlib1g-dev
      python3 python3-venv busybox-static sparse ccache rt-tests
      seabios qemu-system-data socat jq rsync gnuplot-nox kmod
      python3-sphinx python3-yaml"
BPO_PKGS="meson python3-pycotap"

SUDO=
[ "$(id -u)" = 0 ] || SUDO=sudo

missing=
for p in $PKGS; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' ||
		missing="$missing $p"
done

# meson >= 1.5 (QEMU 10.2) only exists in bookworm-backports.
need_bpo=
mv=$(dpkg-query -W -f='${Version}' meson 2>/dev/null || true)
if [ -z "$mv" ] || dpkg --compare-versions "$mv" lt 1.5; then
	need_bpo=1
fi
dpkg-query -W -f='${Status}' python3-pycotap 2>/dev/null | grep -q 'ok installed' ||
	need_bpo=1

if [ -z "$missing" ] && [ -z "$need_bpo" ]; then
	echo "deps: all packages present"
	exit 0
fi

# Derive a backports source from the machine's own Debian source list, so no
# mirror is named here.
src=/etc/apt/sources.list.d/debian.sources
bpo=/etc/apt/sources.list.d/pvtime-backports.sources
if [ -n "$need_bpo" ] && [ ! -e "$bpo" ]; then
	[ -r "$src" ] || { echo "deps: $src missing; cannot derive bookworm-backports" >&2; exit 1; }
	awk -v RS= -v ORS='\n\n' '/Suites:[^\n]*bookworm( |$|-updates)/ && !/security/' "$src" |
		sed -e 's/^Suites:.*/Suites: bookworm-backports/' | $SUDO tee "$bpo" >/dev/null
fi

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
[ -z "$missing" ] || $SUDO apt-get install -y -q --no-install-recommends $missing
[ -z "$need_bpo" ] || $SUDO apt-get install -y -q --no-install-recommends -t bookworm-backports $BPO_PKGS
echo "deps: done"
