#!/bin/sh
# check-style: memchat's machine-checked rules, run by `make check` and
# `make check-style`.
#  1. banned functions (unbounded or unsafe): sprintf vsprintf strcpy strcat
#     strncat strtok gets atoi. A line may carry "checksrc: allow NAME" with a
#     reason when the use is proven safe (tests only).
#  2. clang-format (.clang-format at the top) when clang-format is installed.
# Prints what is wrong with file and line; exits 1 on any finding.
set -u
top=${MEMCHAT_SRCDIR:-$(cd "$(dirname "$0")/.." && pwd)}
cd "$top" || exit 1
status=0
files=$(find src include tests fuzz -name '*.[ch]' | sort)

banned='\b(sprintf|vsprintf|strcpy|strcat|strncat|strtok|gets|atoi)[[:space:]]*\('
hits=$(grep -n -E "$banned" $files | grep -v 'checksrc: allow' | grep -v -E '^[^:]+:[0-9]+:[[:space:]]*(/?\*|//)')
if [ -n "$hits" ]; then
    echo "check-style: banned functions (use snprintf, the buf_* helpers, strtol):"
    echo "$hits"
    status=1
fi

cf=${CLANG_FORMAT:-$(command -v clang-format)}
if [ -n "$cf" ] && [ -x "$cf" ]; then
    for f in $files; do
        if ! "$cf" --dry-run -Werror --style=file "$f" >/dev/null 2>&1; then
            echo "check-style: $f is not clang-formatted (run: clang-format -i $f)"
            status=1
        fi
    done
else
    echo "check-style: clang-format not installed; formatting not checked"
fi
[ $status -eq 0 ] && echo "check-style: ok"
exit $status
