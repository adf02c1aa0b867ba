#!/bin/sh
# The PGlite test server of the pgvector store's tests: PostgreSQL (PGlite,
# WebAssembly, from $MEMCHAT_SRCDIR/node_modules, pinned by package-lock.json)
# with the pgvector extension, in memory, on 127.0.0.1. Prints PORT=<n> once
# it accepts connections, then lives until its stdin closes, like
# tests/server/mockllm, so a crashed test never leaves it running.
#
# Usage: sh pglite-server.sh [PORT]   (default 0: the system picks a free
# port; a test restarting the server where it was passes that port).
#
# Why a shell wrapper: pglite-server itself ignores its stdin and logs every
# connection to stdout, so node's stdout goes through a FIFO to a reader that
# keeps draining it (a closed pipe would kill node at its next log line) and
# turns its 'listening on {"port":N,...}' line into PORT=N.
set -u
src=${MEMCHAT_SRCDIR:-$(dirname "$0")/../..}
server=$src/node_modules/@electric-sql/pglite-socket/dist/scripts/server.js
if [ ! -f "$server" ]; then
    echo "pglite-server.sh: $server is missing: run npm ci (./quickstart.sh check does it)" >&2
    exit 2
fi
port=${1:-0}
dir=$(mktemp -d "${TMPDIR:-/tmp}/pglite.XXXXXX") || exit 1
mkfifo "$dir/out" || exit 1
# -m 8: several clients (the stores of one test) share the one PGlite session.
node "$server" --db=memory:// --host=127.0.0.1 --port="$port" \
    --extensions=@electric-sql/pglite-pgvector:vector --max-connections=8 \
    </dev/null >"$dir/out" &
node_pid=$!
trap 'kill "$node_pid" 2>/dev/null; wait "$node_pid" 2>/dev/null; rm -rf "$dir"' EXIT
trap 'exit 1' HUP INT TERM
(
    while IFS= read -r line; do
        case $line in
        *'listening on {"port":'*)
            p=${line#*\"port\":}
            echo "PORT=${p%%[!0-9]*}"
            ;;
        esac
    done
) <"$dir/out" &
# Until the test closes our stdin (or dies): then the EXIT trap stops node.
cat >/dev/null
exit 0
