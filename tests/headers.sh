#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Every header compiles on its own (STYLE.md). Prints TAP.
set -u
SRC=$(cd "$(dirname "$0")/../src" && pwd)
CFLAGS=$(pkg-config --cflags jansson libcurl 2>/dev/null)
n=0; bad=0
hdrs=$(cd "$SRC" && find . -name '*.h' | sed 's|^\./||' | sort)
echo "1..$(echo "$hdrs" | wc -l)"
for h in $hdrs; do
	n=$((n + 1))
	if echo "#include \"$h\"" | cc -std=gnu17 -D_GNU_SOURCE -Wall -Wextra -Werror -fsyntax-only \
		-I"$SRC" $CFLAGS -x c - 2>/tmp/hdr-err.$$; then
		echo "ok $n - $h"
	else
		echo "not ok $n - $h"; sed 's/^/# /' /tmp/hdr-err.$$; bad=1
	fi
done
rm -f /tmp/hdr-err.$$
exit $bad
