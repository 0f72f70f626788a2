#!/bin/sh
# Build the kernel's Documentation/virt (pvtime.rst, kvm/x86/msr.rst and
# cpuid.rst) with Sphinx from the patched tree; any warning about our text
# fails. Only graphviz's absence is tolerated (no figure of ours needs it).
set -eu
. "$(dirname "$0")/lib.sh"

need sphinx-build /usr/bin/sphinx-build python3-sphinx
src=$PVTIME_CACHE/work/linux
out=$PVTIME_CACHE/work/docs
"$TOP/scripts/tree.sh" ensure linux "$src" >&2
mkdir -p "$out"
# Debian's sphinx-build runs /usr/bin/python3; keep other interpreters out.
PATH=/usr/bin:$PATH make -C "$src" O="$out" SPHINXDIRS=virt htmldocs >"$out/htmldocs.log" 2>&1 ||
	{ tail -n 20 "$out/htmldocs.log" >&2; die "htmldocs failed (log: $out/htmldocs.log)"; }
w=$(grep -E 'WARNING|ERROR' "$out/htmldocs.log" | grep -v 'dot(1) not found' || true)
[ -z "$w" ] || { echo "$w" >&2; die "htmldocs: warnings in Documentation/virt"; }
[ -f "$out/Documentation/output/virt/pvtime.html" ] || die "htmldocs: pvtime.html was not built"
msg "htmldocs: Documentation/virt built without warnings"
