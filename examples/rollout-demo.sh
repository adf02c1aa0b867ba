#!/bin/sh
# The rollout of memory, tenant by tenant, as the original plan did it:
# deploy with memory off, turn it on for one test tenant, watch its figures
# against the targets, then turn it on for everyone. docs/demo.md explains
# each step and what to look for.
#
# Offline by default (no key, no network); with OPENAI_API_KEY or
# ANTHROPIC_API_KEY set it uses that provider (MEMCHAT_PROVIDER=auto).
# Everything goes to a fresh data and config dir (DEMO_DIR, default a new
# temporary directory), so your own memories and ledger are not touched.
#
#   examples/rollout-demo.sh            (from the source tree, after a build)
#   MEMCHAT=/usr/bin/memchat DEMO_DIR=/tmp/demo examples/rollout-demo.sh
set -eu

here=$(cd "$(dirname "$0")/.." && pwd)
MEMCHAT=${MEMCHAT:-$here/memchat}
DEMO_DIR=${DEMO_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/memchat-demo.XXXXXX")}
export MEMCHAT_DATA_DIR="$DEMO_DIR/data" MEMCHAT_CONFIG_DIR="$DEMO_DIR/config"
if [ -z "${OPENAI_API_KEY:-}${ANTHROPIC_API_KEY:-}" ]; then
    export MEMCHAT_PROVIDER=offline
fi
[ -x "$MEMCHAT" ] || { echo "rollout-demo: no memchat at $MEMCHAT (build it first, or set MEMCHAT)" >&2; exit 2; }

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { printf '$ memchat %s\n' "$*"; "$MEMCHAT" "$@"; }

# One tenant's conversation: two facts, then a question that needs them.
talk() {
    tenant=$1
    run ask --tenant "$tenant" "I am planning the $2 launch for $3."
    run ask --tenant "$tenant" --continue "The $2 budget is $4."
    run ask --tenant "$tenant" --continue "When is the $2 launch, and what is its budget?"
}

step "Data and config in $DEMO_DIR; provider: ${MEMCHAT_PROVIDER:-auto}"

step "1. Deploy with memory off for everyone"
run rollout global off
run rollout status

step "2. Three tenants chat with memory off"
talk acme Apollo March "2 million dollars"
talk globex Gemini June "900 thousand dollars"
talk initech Mercury September "300 thousand dollars"

step "3. Turn memory on for one test tenant (acme) and chat again"
run rollout enable acme
talk acme Apollo March "2 million dollars"
run ask --tenant acme "What did I tell you about the Apollo budget?"
run ask --tenant acme "Which month is the Apollo launch?"
run ask --tenant acme "Remind me of my Apollo plans."

step "4. acme's figures against the rollout targets (the others stay off)"
run rollout status --since 1h

step "5. The value of memory before rolling it out further: one question, both ways"
run ask --tenant acme --compare "When is the Apollo launch?"

step "6. Half of the tenants by hash bucket, then everyone"
run rollout percent 50
run rollout status
run rollout percent off
run rollout global on
run rollout reset acme
run rollout status

step "Done. Look around with: MEMCHAT_DATA_DIR=$MEMCHAT_DATA_DIR MEMCHAT_CONFIG_DIR=$MEMCHAT_CONFIG_DIR $MEMCHAT costs --by memory"
