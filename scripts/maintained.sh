#!/bin/sh
# maintained.sh TREE PATCH...: every file the patches add falls under a
# MAINTAINERS section of TREE (the series applied) other than THE REST.
# checkpatch asks "does MAINTAINERS need updating?" (FILE_PATH_CHANGES) of
# every patch that adds a file without touching MAINTAINERS; this answers it.
set -eu
. "$(dirname "$0")/lib.sh"

tree=${1:?usage: maintained.sh TREE PATCH...}
shift
bad=0
for f in $(awk '/^diff --git /{cur = substr($4, 3)} /^new file mode/{print cur}' "$@" | sort -u); do
	sections=$(cd "$tree" && perl scripts/get_maintainer.pl --no-git --no-git-fallback \
		--sections -f "$f" | grep -E '^[A-Z0-9]' | grep -v -e '^[A-Z]:' -e '^THE REST$' || true)
	if [ -n "$sections" ]; then
		echo "$f: $(echo "$sections" | head -n 1)"
	else
		echo "$f: no MAINTAINERS section"
		bad=1
	fi
done
exit $bad
