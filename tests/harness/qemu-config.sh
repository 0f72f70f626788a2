#!/bin/sh
# qemu-config.sh QEMU: the CPU property configurations QEMU must refuse or
# accept under TCG, without booting a guest. Each QEMU starts stopped (-S)
# with its monitor on stdin, reads CPU 0's properties and quits.
#
# Prints one "ok NAME" or "fail NAME" line per case, as the harness's
# static self-tests write their results; what QEMU said in a failed case
# goes to standard error. Fewer cases than planned is a failure of its
# own. Exits non-zero on any failure.
set -u
qemu=${1:?usage: qemu-config.sh QEMU}
plan=8 n=0 rc=0
w=$(mktemp -d)
finish() {
	if [ "$n" != "$plan" ]; then
		echo "fail qemu-config.sh: $n of $plan planned cases ran"
		rc=1
	fi
	rm -rf "$w"
	exit $rc
}
trap finish EXIT

# start CPU [PROPERTY...]: QEMU's exit status in $w/rc, the monitor's
# answers to a qom-get of each property of CPU 0 in $w/out.
start() {
	cpu=$1; shift
	for p in "$@"; do
		echo "qom-get /machine/unattached/device[0] $p"
	done >"$w/in"
	echo quit >>"$w/in"
	timeout 60 "$qemu" -accel tcg -cpu "$cpu" -smp 1 -S -nodefaults \
		-display none -m 128 -L /usr/share/seabios -L /usr/share/qemu \
		-monitor stdio <"$w/in" >"$w/raw" 2>&1
	echo $? >"$w/rc"
	# QEMU's messages and the answers, without the monitor's echo.
	tr -d '\r' <"$w/raw" | grep -av "$(printf '\033')" |
		grep -v '^(qemu)\|monitor - type' >"$w/out"
}

judge() { # judge OK DESCRIPTION
	n=$((n + 1))
	if [ "$1" = 0 ]; then
		echo "ok $2"
	else
		echo "fail $2 (exit $(cat "$w/rc"))"
		while IFS= read -r l; do echo "$2: $l"; done <"$w/out" >&2
		rc=1
	fi
}

# refused CPU MESSAGE: QEMU exits non-zero and says MESSAGE.
refused() {
	start "$1"
	[ "$(cat "$w/rc")" != 0 ] && grep -qF "$2" "$w/out"
	judge $? "-cpu $1: refused, \"$2\""
}

# answers CPU PROPERTY=VALUE...: QEMU starts, and each property reads VALUE.
answers() {
	cpu=$1; shift
	# shellcheck disable=SC2046 # one argument per property name
	start "$cpu" $(for pv in "$@"; do echo "${pv%%=*}"; done)
	ok=$(cat "$w/rc")
	for pv in "$@"; do
		grep -qx "${pv#*=}" "$w/out" || ok=1
	done
	[ "$(grep -c . "$w/out")" = $# ] || ok=1
	judge "$ok" "-cpu $cpu: starts, $*"
}

# absent CPU PROPERTY: QEMU starts, and CPU 0 has no such property.
absent() {
	start "$1" "$2"
	[ "$(cat "$w/rc")" = 0 ] && grep -q "Property '.*$2' not found" "$w/out"
	judge $? "-cpu $1: no property $2"
}

kvmclock='tcg-kvmclock=on provides kvm-clock'
refused max,tcg-kvmclock=on,kvmclock=off "$kvmclock"
refused max,tcg-kvmclock=on,kvmclock-stable-bit=off "$kvmclock"
refused max,tcg-kvmclock=on,kvm=off 'tcg-kvmclock=on needs the KVM signature'
refused max,kvm-pv-clockevent=on 'kvm-pv-clockevent=on needs tcg-kvmclock=on'
answers max,tcg-kvmclock=on,kvmclock=on tcg-kvmclock=true
answers max,tcg-kvmclock=on,kvm-pv-clockevent=on kvm-pv-clockevent=true x-pvce-fires=0
# The counters are experimental properties: only their x- names exist.
absent max,tcg-kvmclock=on,kvm-pv-clockevent=on pvce-fires
absent max,tcg-kvmclock=on,kvm-pv-clockevent=on apic-eois
