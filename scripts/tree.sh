#!/bin/sh
# tree.sh linux|qemu [DEST] build a git tree: pristine base + one commit per patch
# tree.sh export linux|qemu write the tree's commits back as the series
# tree.sh ensure linux|qemu DEST  the same, skipped when already done
# tree.sh apply-check DIR BASE  apply a series dir onto a base in a scratch tree
set -eu
. "$(dirname "$0")/lib.sh"

need git git git

GIT="git -c user.name=pvtime -c user.email=pvtime-devel@example.org -c init.defaultBranch=main -c advice.detachedHead=false"

base_of() {
	case $1 in
	linux) echo "$LINUX_BASE" ;;
	qemu) echo "$QEMU_BASE" ;;
	*) die "unknown series '$1' (linux or qemu)" ;;
	esac
}

# patches_of DIR: patch files in series order (cover letter excluded).
patches_of() { series_patches "$1"; }

# make_base_repo BASE DEST: DEST becomes a git repo whose first commit is
# BASE. An existing tree is reset to the base instead of copied anew, so that
# files the series does not touch keep their times and builds stay
# incremental; its previous HEAD stays reachable as the tag pvtime-prev.
make_base_repo() {
	[ -f "$1/.pvtime-pristine" ] || die "$1 missing: run make fetch"
	if [ -d "$2/.git" ] && (cd "$2" && git rev-parse -q --verify pvtime-base >/dev/null); then
		(cd "$2" && { $GIT am --abort >/dev/null 2>&1 || true; } &&
		 $GIT tag -f pvtime-prev HEAD >/dev/null &&
		 $GIT checkout -q -f -B main pvtime-base && $GIT clean -q -f -d)
		return 0
	fi
	rm -rf "$2"
	mkdir -p "$(dirname "$2")"
	cp -a "$1" "$2"
	rm -f "$2/.pvtime-pristine"
	(cd "$2" && $GIT init -q && $GIT add -A -f &&
	 $GIT commit -q --no-verify -m "base: $(basename "$1")" && $GIT tag pvtime-base)
}

# am_series SERIESDIR REPO: git am every patch, naming the one that fails.
# A series must list at least one patch: a missing or empty series file is
# an error, never a gate passed with nothing applied.
am_series() {
	[ -f "$1/series" ] || die "$1/series missing: no patch to apply"
	patches=$(patches_of "$1")
	[ -n "$patches" ] || die "$1/series lists no patch"
	for p in $patches; do
		[ -f "$1/$p" ] || die "$1/series names $p, which does not exist"
		if ! (cd "$2" && $GIT am -q --keep-cr "$1/$p" >"$2.am.log" 2>&1); then
			cat "$2.am.log" >&2
			(cd "$2" && $GIT am --abort >/dev/null 2>&1 || true)
			die "patch does not apply: $1/$p"
		fi
	done
}

cmd=$1; shift
case $cmd in
linux|qemu)
	dest=${1:-$BUILD/tree-$cmd}
	make_base_repo "$(base_of "$cmd")" "$dest"
	am_series "$TOP/$cmd" "$dest"
	msg "$dest: $(patches_of "$TOP/$cmd" | wc -l) patches applied"
	;;
export)
	s=$1; src=$BUILD/tree-$s; out=$TOP/$s
	[ -d "$src/.git" ] || die "$src missing: run make tree-$s"
	tmp=$(mktemp -d)
	# RFC: new guest/host ABI whose benefit is not established outside
	# emulation yet (see the cover letters).
	(cd "$src" && $GIT format-patch -q --no-signature --subject-prefix="RFC PATCH" \
		-o "$tmp" pvtime-base..HEAD)
	[ -f "$out/0000-cover-letter.patch" ] && cp "$out/0000-cover-letter.patch" "$tmp/"
	find "$out" -maxdepth 1 -name '*.patch' -delete
	mkdir -p "$out"
	cp "$tmp"/*.patch "$out/" 2>/dev/null || true
	(cd "$out" && ls -1 ./*.patch 2>/dev/null | sed 's|^\./||' | sort >series)
	rm -rf "$tmp"
	msg "exported $(patches_of "$out" | wc -l) patches to $s/"
	;;
ensure)
	# ensure linux|qemu DEST: DEST holds base + series, rebuilt only when
	# the series changed since the last successful application.
	s=$1; dest=$2
	key=$(series_hash "$TOP/$s")
	if [ "$(cat "$dest/.pvtime-series" 2>/dev/null)" != "$key" ]; then
		rm -f "$dest/.pvtime-series"
		make_base_repo "$(base_of "$s")" "$dest"
		am_series "$TOP/$s" "$dest"
		echo "$key" >"$dest/.pvtime-series"
		msg "$dest: $(patches_of "$TOP/$s" | wc -l) patches applied"
	fi
	;;
apply-check)
	# apply-check SERIESDIR BASE: used by the gate and the harness self-test.
	dir=$1; base=$2
	scratch=$(mktemp -d)/tree
	make_base_repo "$base" "$scratch"
	rc=0
	(am_series "$dir" "$scratch") || rc=$?
	rm -rf "$(dirname "$scratch")"
	exit $rc
	;;
*) die "usage: tree.sh linux|qemu | export linux|qemu | apply-check DIR BASE" ;;
esac
