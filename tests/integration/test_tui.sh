#!/bin/sh
# End-to-end tests of the TUI (issue 8): the real memchat runs in a private
# tmux server, is driven with send-keys and read back with capture-pane,
# offline and against the loopback LLM test server (tests/server/mockllm).
# Every wait polls the screen every 0.1 s until a condition holds, bounded by
# $MEMCHAT_TUI_TIMEOUT seconds (30 by default, for sanitizer builds); no wait
# is a fixed sleep. An absence is asserted only after a positive sign that the
# screen shows the state in question. Each memchat gets its own HOME, data
# and config dirs and only the environment set here, in its own tmux session
# whose shell outlives it, so that its exit status and the restored screen
# can be read (and remain-on-exit keeps a pane whose shell died). Prints
# TAP-like lines; exits 1 when a case fails. Needs MEMCHAT_BIN and
# MEMCHAT_MOCK_BIN (make check sets both, and MEMCHAT_SRCDIR, whose share/
# then holds the themes).
set -eu

if ! command -v tmux > /dev/null 2>&1; then
    echo "test_tui: tmux is not installed (apt-get install tmux; ./quickstart.sh check installs it)"
    exit 1
fi
for v in MEMCHAT_BIN MEMCHAT_MOCK_BIN; do
    eval "val=\${$v:-}"
    if [ -z "$val" ] || [ ! -x "$val" ]; then
        echo "test_tui: $v must name the built program (make check sets it); it is '$val'"
        exit 1
    fi
done
timeout=${MEMCHAT_TUI_TIMEOUT:-30}
# The panes' separator, U+2502 in UTF-8.
sep=$(printf '\342\224\202')
# An outer tmux must not capture our commands.
unset TMUX TMUX_PANE

tmp=$(mktemp -d "${TMPDIR:-/tmp}/memchat-tui.XXXXXX")
sock=memchat-tui-$$
sock_path=
mock_pid=
mock_port=
cleanup() {
    tm kill-server > /dev/null 2>&1 || true
    # tmux leaves its socket file behind.
    [ -z "$sock_path" ] || rm -f "$sock_path"
    if [ -n "$mock_pid" ]; then
        exec 9>&-
        kill "$mock_pid" 2> /dev/null || true
        wait "$mock_pid" 2> /dev/null || true
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 143' TERM

# tmux on the private server; never with the mock's stdin (fd 9) open, so
# closing our end is the mock's EOF.
tm() {
    tmux -L "$sock" -f /dev/null "$@" 9>&-
}

# --- output -------------------------------------------------------------------

diag() {
    printf '# %s\n' "$*"
}

# Prints session $S's last screen, memchat's stderr and any sanitizer
# report as diagnostics.
dump() {
    diag "--- the screen of session '$S' ---"
    sed 's/^/# | /' "$scr"
    for f in "$tmp/$S/stderr" "$tmp/$S"/asan.* "$tmp/$S"/ubsan.*; do
        if [ -s "$f" ]; then
            diag "--- $(basename "$f") ---"
            sed 's/^/# | /' "$f"
        fi
    done
}

fail() {
    diag "$*"
    dump
    return 1
}

# --- sessions -----------------------------------------------------------------

# Single-quotes $1 for sh.
q() {
    printf "'%s'" "$(printf '%s' "$1" | sed "s/'/'\\\\''/g")"
}

# start_tui NAME [VAR=VALUE...]: memchat in a new 120x36 session NAME (which
# becomes $S) with HOME, data and config dirs under $tmp/NAME and no other
# environment than the given one, TERM, a UTF-8 locale, the shipped themes
# and the sanitizers' options; waits for its first screen. Its shell saves
# `stty -g` before and after memchat, prints EXIT=<memchat's status> and
# then waits (cat) until the server is killed.
start_tui() {
    S=$1
    shift
    d=$tmp/$S
    scr=$d/screen
    mkdir -p "$d/home" "$d/data" "$d/config"
    set -- "PATH=/usr/bin:/bin" "HOME=$d/home" "MEMCHAT_DATA_DIR=$d/data" \
        "MEMCHAT_CONFIG_DIR=$d/config" "TERM=screen-256color" "LC_ALL=C.UTF-8" "$@"
    if [ -n "${MEMCHAT_SRCDIR:-}" ] && [ -d "$MEMCHAT_SRCDIR/share/themes" ]; then
        set -- "$@" "MEMCHAT_SHARE_DIR=$MEMCHAT_SRCDIR/share"
    fi
    # A sanitizer's report goes to a file: memchat's stderr is a temporary
    # file while the TUI runs, and a report would be lost with it.
    set -- "$@" "ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}log_path=$d/asan" \
        "UBSAN_OPTIONS=${UBSAN_OPTIONS:+$UBSAN_OPTIONS:}log_path=$d/ubsan"
    [ -z "${LSAN_OPTIONS:-}" ] || set -- "$@" "LSAN_OPTIONS=$LSAN_OPTIONS"
    {
        echo '#!/bin/sh'
        echo "cd $(q "$d/home") || exit 1"
        # The shell shares memchat's process group (no job control): Ctrl-C
        # must not end it. A handler, unlike an ignore, is not inherited.
        echo "trap : INT"
        echo "stty -g > $(q "$d/stty.before")"
        echo "echo 'memchat-tui-test: the shell before memchat'"
        printf 'env -i'
        for kv in "$@"; do
            printf ' %s' "$(q "$kv")"
        done
        printf ' %s 2> %s\n' "$(q "$MEMCHAT_BIN")" "$(q "$d/stderr")"
        # shellcheck disable=SC2016 # expanded by run.sh, not here
        echo 'st=$?'
        echo "stty -g > $(q "$d/stty.after")"
        # shellcheck disable=SC2016
        echo 'echo "EXIT=$st"'
        # The pane stays as memchat left it (a dead pane's notice would
        # scroll it and hide the cursor).
        echo 'exec cat > /dev/null'
    } > "$d/run.sh"
    tm new-session -d -s "$S" -x 120 -y 36 "sh $(q "$d/run.sh")"
    wait_for "Type a message and press Enter"
}

# Makes the running session NAME current; fails when it is gone (an earlier
# case that set it up failed).
use() {
    S=$1
    scr=$tmp/$S/screen
    if ! tm has-session -t "=$S" 2> /dev/null; then
        diag "session '$S' is not running: the case that starts it failed"
        return 1
    fi
}

# The mock server's environment: the openai provider on 127.0.0.1.
mock_env() {
    if [ -z "$mock_port" ]; then
        diag "the mock LLM server is not running (see the first diagnostics)" >&2
        return 1
    fi
    echo "MEMCHAT_PROVIDER=openai OPENAI_BASE_URL=http://127.0.0.1:$mock_port/v1" \
        "OPENAI_API_KEY=sk-memchat-tui-test-0123"
}

type_line() {
    tm send-keys -t "=$S:" -l -- "$1"
    tm send-keys -t "=$S:" Enter
}

keys() {
    tm send-keys -t "=$S:" "$@"
}

# --- reading the screen -------------------------------------------------------

capture() {
    tm capture-pane -p -t "=$S:" "$@" > "$scr" 2> /dev/null ||
        echo "(session '$S' cannot be captured)" > "$scr"
}

# wait_until DESCRIPTION COMMAND...: captures the screen into $scr every
# 0.1 s until COMMAND succeeds; after $timeout seconds says what it waited
# for, prints the last screen and fails.
wait_until() {
    w_desc=$1
    shift
    w_start=$(date +%s)
    while :; do
        capture
        if "$@"; then
            return 0
        fi
        if [ $(($(date +%s) - w_start)) -ge "$timeout" ]; then
            fail "timed out after ${timeout}s waiting for: $w_desc"
            return 1
        fi
        sleep 0.1
    done
}

# wait_for TEXT [TIMEOUT]: waits until TEXT (fixed) is on the screen.
wait_for() {
    w_saved=$timeout
    timeout=${2:-$timeout}
    w_rc=0
    wait_until "\"$1\" on the screen" has "$1" || w_rc=1
    timeout=$w_saved
    return $w_rc
}

has() {
    grep -qF -- "$1" "$scr"
}

# The status line: the one starting with the tenant and ending with F1 help.
status_line() {
    grep -E '^ tenant .* F1 help *$' "$scr" || true
}

status_has() {
    status_line | grep -qF -- "$1"
}

# In the wide layout every pane row holds the separator: the conversation
# is left of it, the context pane (down to the metrics title) right of it.
conv_pane() {
    awk -v s="$sep" '{ i = index($0, s); if (i > 0) print substr($0, 1, i - 1) }' "$scr"
}

ctx_pane() {
    awk -v s="$sep" '
        { i = index($0, s); if (i == 0) next; r = substr($0, i + length(s))
          if (NR > 1 && r ~ /^ Metrics/) exit; print r }' "$scr"
}

# The context pane's text as one line (its words wrapped back), for phrases.
ctx_has() {
    ctx_pane | sed 's/^ *//; s/ *$//' | tr '\n' ' ' | grep -qF -- "$1"
}

# The conversation from the last line containing $1 to the end.
conv_from_last() {
    conv_pane | awk -v m="$1" '{ l[NR] = $0; if (index($0, m) > 0) s = NR }
        END { if (s) for (i = s; i <= NR; i++) print l[i] }'
}

# The number of foreground colours set by the SGR sequences in file $1
# (capture-pane -e): 30-37, 90-97, and 38 (256 colours or RGB).
count_fg() {
    awk '{ s = $0
        while (match(s, /\033\[[0-9;:]*m/)) {
            n = split(substr(s, RSTART + 2, RLENGTH - 3), a, /[;:]/)
            s = substr(s, RSTART + RLENGTH)
            for (i = 1; i <= n; i++) {
                if (a[i] == "38") { c++; break }
                if (a[i] == "48") { i += a[i + 1] == "5" ? 2 : 4; continue }
                v = a[i] + 0
                if ((v >= 30 && v <= 37) || (v >= 90 && v <= 97)) c++
            }
        } } END { print c + 0 }' "$1"
}

# --- the mock LLM server ------------------------------------------------------

# Started after the tmux server so that no pane inherits fd 9, its stdin.
start_mock() {
    mkfifo "$tmp/mock.in"
    "$MEMCHAT_MOCK_BIN" --log "$tmp/mock.log" < "$tmp/mock.in" > "$tmp/mock.out" \
        2> "$tmp/mock.err" &
    mock_pid=$!
    exec 9> "$tmp/mock.in"
    m_start=$(date +%s)
    while [ $(($(date +%s) - m_start)) -lt "$timeout" ]; do
        mock_port=$(sed -n 's/^PORT=\([0-9][0-9]*\)$/\1/p' "$tmp/mock.out" 2> /dev/null || true)
        [ -z "$mock_port" ] || return 0
        kill -0 "$mock_pid" 2> /dev/null || break
        sleep 0.1
    done
    diag "the mock LLM server ($MEMCHAT_MOCK_BIN) printed no PORT=<n>; its stderr:"
    sed 's/^/# | /' "$tmp/mock.err"
}

# Closes the mock's stdin (its EOF) and saves its exit status.
stop_mock() {
    [ -n "$mock_pid" ] || return 0
    exec 9>&-
    st=0
    wait "$mock_pid" || st=$?
    mock_pid=
    echo "$st" > "$tmp/mock.status"
}

# --- the cases ----------------------------------------------------------------

# Offline, a message gets the offline provider's reply (its fixed opening and
# the quoted message) under the offline header, and the status line says
# OFFLINE.
t_offline_reply() {
    start_tui offline MEMCHAT_PROVIDER=offline
    wait_until "the status line saying OFFLINE" status_has " OFFLINE "
    type_line "Hello, offline world"
    wait_for '"Hello, offline world"'
    has "[offline] No model was called" || fail "no offline reply text"
    has "assistant (offline/offline)" || fail "no 'assistant (offline/offline)' header"
}

# Against the mock, a message gets the mock's reply ("mock reply: " and the
# message), asked for as a stream, and the status line names openai and
# does not say OFFLINE.
t_mock_reply() {
    menv=$(mock_env)
    # shellcheck disable=SC2086 # the words of mock_env are separate VAR=VALUE
    start_tui mock $menv
    type_line "Hello from the TUI test"
    wait_for "mock reply: Hello from the TUI test"
    has "assistant (openai/" || fail "no 'assistant (openai/...)' header"
    status_has "openai/" || fail "the status line does not name openai"
    ! status_has "OFFLINE" || fail "the status line says OFFLINE against a server"
    grep -F 'Hello from the TUI test' "$tmp/mock.log" | grep -qF '\"stream\":true' ||
        fail "the mock received no streamed request with the message"
}

# A tool that is not read-only asks in the conversation; /deny refuses it
# (the model is told, the tool never runs), /allow runs it.
t_tool_confirm() {
    d=$tmp/tools
    mkdir -p "$d/config/tools" "$d/config/agents" "$d/home"
    # shellcheck disable=SC2016 # $HOME is the tool's, expanded when it runs
    printf '#!/bin/sh\ncat > /dev/null\ntouch "$HOME/rw.ran"\necho %s\n' "'{\"done\":true}'" \
        > "$d/config/tools/rw.sh"
    chmod 755 "$d/config/tools/rw.sh"
    echo '{"name": "rw", "description": "changes something",
      "parameters": {"type": "object", "properties": {"text": {"type": "string"}}},
      "command": ["./rw.sh"], "read_only": false}' > "$d/config/tools/rw.json"
    echo '{"name": "toolbox", "description": "an agent with a tool that writes",
      "system_prompt": "Use your tools.", "tools": ["rw"]}' > "$d/config/agents/toolbox.json"
    menv=$(mock_env)
    # shellcheck disable=SC2086 # the words of mock_env are separate VAR=VALUE
    start_tui tools $menv MEMCHAT_AGENT=toolbox MEMCHAT_MODEL=mock:tool=rw
    type_line "please deny this one"
    wait_until "the tool asks after the first message" tool_asks "please deny this one"
    type_line "/deny"
    wait_for "tool results: the user did not allow tool rw to run"
    [ ! -e "$d/home/rw.ran" ] || fail "the tool ran although /deny refused it"
    type_line "please allow this one"
    wait_until "the tool asks after the second message" tool_asks "please allow this one"
    [ ! -e "$d/home/rw.ran" ] || fail "the tool ran before /allow"
    type_line "/allow"
    wait_for 'tool results: {"done":true}'
    [ -e "$d/home/rw.ran" ] || fail "the tool did not run after /allow"
}

tool_asks() {
    conv_from_last "$1" | grep -qF -- "/allow or /deny"
}

store_settled() {
    ctx_has "this turn's memory: stored" || ctx_has "this turn's memory: skipped"
}

# Waits for the reply to $1 (the offline reply quotes the message) and for
# the store stage of that turn (the context pane shows the latest turn) to
# be over, so the next turn sees what it stored.
offline_turn() {
    type_line "$1"
    wait_for "\"$1\""
    wait_until "this turn's memory stored or skipped (context pane)" store_settled
}

# A candidate line (kept or not, then the score) directly above the fact's
# text in the context pane.
fact_scored() {
    ctx_pane | awk '/^ [^ ]+ +-?[0-9]+\.[0-9][0-9] / { c = NR }
        index($0, "User: My name is Ada and I live in Lisbon.") && c == NR - 1 { f = 1 }
        END { exit !f }'
}

# A fact told two turns earlier is recalled for a question about it: the
# context pane shows the score header, a candidate line with numbers and
# the fact's text under it.
t_fact_scores() {
    start_tui facts MEMCHAT_PROVIDER=offline
    offline_turn "My name is Ada and I live in Lisbon."
    ctx_has "this turn's memory: stored" || fail "the fact was not stored"
    offline_turn "What is the weather like today?"
    type_line "Where do I live?"
    wait_for '"Where do I live?"'
    wait_until "the fact with its scores in the context pane" fact_scored
    ctx_has "memory on (rule: " || fail "the context pane does not say memory is on"
    ctx_pane | grep -qE '^ +score   vec    kw fused   mmr  age user *$' || fail "no score header"
}

search_shown() {
    ctx_pane | grep -qE '^ "Lisbon": [1-9][0-9]* memories' &&
        ctx_has "User: My name is Ada and I live in Lisbon."
}

# /search fills the context pane with the tenant's matching memories.
t_search() {
    use facts
    type_line "/search Lisbon"
    wait_until "the search results in the context pane" search_shown
    has "Search results" || fail "no 'Search results' title"
}

other_turn_done() {
    ctx_has "tenant other:" && ctx_has "this turn's memory:" &&
        conv_from_last "you (other/user)" | grep -qF '"Where do I live?"'
}

# After /tenant other, the same question recalls nothing of the default
# tenant: neither the context pane nor the new reply mention the fact.
t_tenant_hides() {
    use facts
    type_line "/tenant other"
    wait_for "tenant other: a new conversation"
    wait_until "the status line naming tenant other" status_has "tenant other"
    type_line "Where do I live?"
    wait_until "the reply in tenant other and its context" other_turn_done
    ! ctx_has "Lisbon" || fail "the context pane of tenant other shows the fact"
    ! conv_from_last "you (other/user)" | grep -qF "Lisbon" ||
        fail "the reply in tenant other uses the fact"
}

# The mock stalls after its first two pieces ("mock re", "ply: " and the
# message's first two characters): the reply is streaming.
stalled() {
    conv_pane | grep -qE "^ +mock reply: $1 *\$" && status_has "streaming (Esc cancels)"
}

# The turn whose partial reply is "mock reply: $1" shows cancelled.
cancelled() {
    conv_pane | awk -v p="mock reply: $1" '
        { sub(/ +$/, "") }
        $0 ~ /\[cancelled\]$/ { h = NR }
        $0 == "   " p && h == NR - 1 { r = NR }
        r && NR == r + 1 && index($0, "(cancelled: the reply so far is kept)") { f = 1 }
        END { exit !f }'
}

# Esc alone cancels a stalled stream: the partial reply stays, the turn says
# [cancelled], the status line no longer says streaming.
t_cancel_esc() {
    menv=$(mock_env)
    # shellcheck disable=SC2086
    start_tui stall $menv MEMCHAT_MODEL=mock:stall
    type_line "Please wait for me"
    wait_until "the stalled partial reply" stalled Pl
    keys Escape
    wait_until "the turn cancelled with its partial reply" cancelled Pl
    ! status_has "streaming" || fail "the status line still says streaming"
}

# Ctrl-C cancels the next stalled stream the same way (and does not quit).
t_cancel_ctrl_c() {
    use stall
    type_line "Second message"
    wait_until "the stalled partial reply" stalled Se
    keys C-c
    wait_until "the turn cancelled with its partial reply" cancelled Se
    ! status_has "streaming" || fail "the status line still says streaming"
    ! has "EXIT=" || fail "Ctrl-C ended memchat"
}

status_drawn() {
    [ -n "$(status_line)" ]
}

# Each layout, recognised by where its titles are and with a status line
# drawn at the new width (F1 help at its end).
layout_wide() {
    status_drawn && grep -qE "^ Conversation +$sep Recalled context *\$" "$scr" &&
        grep -qE "$sep Metrics *\$" "$scr"
}

layout_medium() {
    status_drawn && grep -qE '^ Conversation *$' "$scr" &&
        grep -qE "^ Recalled context +$sep Metrics *\$" "$scr"
}

layout_narrow() {
    status_drawn && grep -qE '^ Conversation *$' "$scr" && ! has "Recalled context" &&
        ! has "Metrics"
}

# Resizing redraws every pane the layout has: 120x36 and 80x24 all three
# titles, 50x20 the conversation alone, 20x6 the "too small" notice, 120x36
# all three again, and memchat still answers.
t_resize() {
    start_tui resize MEMCHAT_PROVIDER=offline
    wait_until "the wide layout at 120x36" layout_wide
    tm resize-window -t "=$S:" -x 80 -y 24
    wait_until "the medium layout at 80x24" layout_medium
    tm resize-window -t "=$S:" -x 50 -y 20
    wait_until "the conversation alone at 50x20" layout_narrow
    tm resize-window -t "=$S:" -x 20 -y 6
    wait_for "terminal too small"
    tm resize-window -t "=$S:" -x 120 -y 36
    wait_until "the wide layout at 120x36 again" layout_wide
    type_line "Still alive after resizing"
    wait_for '"Still alive after resizing"'
}

# Right of the separator (context and metrics) and the status line: what
# /theme must not change.
fixed_text() {
    awk -v s="$sep" '{ i = index($0, s); if (i > 0) print substr($0, i) }' "$1"
    grep -E '^ tenant .* F1 help *$' "$1" || true
}

theme_notice() {
    conv_pane | grep -qE '^ theme mono *$'
}

# /theme mono turns the default theme's colours off: foreground colours on
# the screen before, none after, and the same text.
t_theme_mono() {
    start_tui theme MEMCHAT_PROVIDER=offline
    wait_until "the status line with the provider" status_has "offline/offline"
    capture -e
    cp "$scr" "$tmp/theme/before.esc"
    capture
    fixed_text "$scr" > "$tmp/theme/before.txt"
    [ "$(count_fg "$tmp/theme/before.esc")" -gt 0 ] || fail "no colours before /theme mono"
    type_line "/theme mono"
    wait_until "the notice 'theme mono'" theme_notice
    capture -e
    [ "$(count_fg "$scr")" -eq 0 ] || fail "colours remain after /theme mono"
    capture
    fixed_text "$scr" > "$tmp/theme/after.txt"
    if ! cmp -s "$tmp/theme/before.txt" "$tmp/theme/after.txt"; then
        diff "$tmp/theme/before.txt" "$tmp/theme/after.txt" | sed 's/^/# /'
        fail "/theme mono changed the text"
    fi
}

# NO_COLOR=1: no foreground colour at all, while attributes (bold, reverse)
# still show that the capture has the escapes.
t_no_color() {
    start_tui nocolor MEMCHAT_PROVIDER=offline NO_COLOR=1
    wait_until "the status line with the provider" status_has "offline/offline"
    capture -e
    [ "$(count_fg "$scr")" -eq 0 ] || fail "colours despite NO_COLOR=1"
    grep -qE "$(printf '\033')\\[([0-9;]*;)?[17]m" "$scr" || fail "no attributes in the capture"
}

help_open() {
    has "memchat help  (Esc closes"
}

help_quit_shown() {
    help_open && has "/quit" && has "leave memchat"
}

help_closed() {
    ! help_open && has "Type a message and press Enter"
}

# F1 opens the help overlay, which lists /quit (last: PgDn scrolls to it);
# Esc closes it.
t_help() {
    start_tui help MEMCHAT_PROVIDER=offline
    keys F1
    wait_until "the help overlay" help_open
    keys NPage
    wait_until "the help overlay listing /quit" help_quit_shown
    keys Escape
    wait_until "the help overlay closed" help_closed
}

# True when no sanitizer wrote a report for session $S.
no_reports() {
    for f in "$tmp/$S"/asan.* "$tmp/$S"/ubsan.*; do
        [ ! -e "$f" ] || return 1
    done
}

flag() {
    tm display-message -p -t "=$S:" "#{$1}"
}

# /quit leaves the terminal as it found it: exit status 0, the same stty
# settings, the alternate screen left (the shell's earlier output is back),
# mouse reporting off and the cursor visible.
t_quit() {
    start_tui quit MEMCHAT_PROVIDER=offline
    type_line "/quit"
    wait_for "EXIT="
    grep -qx "EXIT=0" "$scr" || fail "memchat did not exit with 0"
    no_reports || fail "a sanitizer reported on memchat"
    has "memchat-tui-test: the shell before memchat" || fail "the shell's output is not back"
    ! has "Conversation" || fail "the TUI is still on the screen"
    [ "$(flag alternate_on)" = 0 ] || fail "the alternate screen is still on"
    [ "$(flag mouse_any_flag)" = 0 ] || fail "mouse reporting is still on"
    [ "$(flag cursor_flag)" = 1 ] || fail "the cursor is hidden"
    cmp -s "$tmp/quit/stty.before" "$tmp/quit/stty.after" ||
        fail "stty -g differs: $(cat "$tmp/quit/stty.before") then $(cat "$tmp/quit/stty.after")"
}

# Every other session ends with /quit and exit status 0: no crash and, in a
# sanitizer build, no report (which would change the status).
t_all_exit_zero() {
    rc=0
    sessions=
    for s in offline mock facts stall resize theme nocolor help tools; do
        if ! use "$s"; then
            rc=1
            continue
        fi
        type_line "/quit"
        sessions="$sessions $s"
    done
    for s in $sessions; do
        use "$s"
        if ! wait_for "EXIT="; then
            rc=1
        elif ! grep -qx "EXIT=0" "$scr"; then
            fail "memchat in session '$s' did not exit with 0" || rc=1
        elif ! no_reports; then
            fail "a sanitizer reported on memchat in session '$s'" || rc=1
        fi
    done
    return $rc
}

# The mock server, its stdin closed, exits 0 (it frees everything: under ASan
# a leak or error would change its status). stop_mock, in the main shell
# (the mock's parent, holding its stdin), saved the status.
t_mock_exit() {
    if [ ! -s "$tmp/mock.status" ]; then
        diag "the mock server never started"
        return 1
    fi
    st=$(cat "$tmp/mock.status")
    if [ "$st" -ne 0 ]; then
        diag "mockllm exited with $st; its stderr:"
        sed 's/^/# | /' "$tmp/mock.err"
        return 1
    fi
}

# --- running them -------------------------------------------------------------

n=0
failed=0
# run_case FUNCTION DESCRIPTION: runs FUNCTION in a subshell with set -e (the
# first failing step ends the case), then prints its result and diagnostics.
run_case() {
    n=$((n + 1))
    set +e
    (
        set -e
        "$1"
    ) > "$tmp/case.out" 2>&1
    st=$?
    set -e
    if [ "$st" -eq 0 ]; then
        echo "ok $n - $2"
    else
        echo "not ok $n - $2"
        failed=$((failed + 1))
    fi
    cat "$tmp/case.out"
}

# A holder session starts the server with the options every pane needs.
tm new-session -d -s holder -x 120 -y 36 "exec cat"
sock_path=$(tm display-message -p '#{socket_path}')
tm set-option -g default-terminal screen-256color
tm set-option -gw remain-on-exit on
tm set-option -s escape-time 0
start_mock

started=$(date +%s)
run_case t_offline_reply "offline, a streamed reply appears and the status line says OFFLINE"
run_case t_mock_reply "against the mock server, its streamed reply appears"
run_case t_fact_scores "a fact told two turns earlier shows in the context pane with its scores"
run_case t_search "/search fills the context pane with the matching memories"
run_case t_tenant_hides "after /tenant other the context pane no longer shows the fact"
run_case t_cancel_esc "Esc cancels a stalled stream and keeps the partial reply"
run_case t_cancel_ctrl_c "Ctrl-C cancels a stalled stream too"
run_case t_resize "resizing keeps every pane drawn, too small says so, memchat still answers"
run_case t_theme_mono "/theme mono removes the colours and keeps the text"
run_case t_no_color "NO_COLOR=1 draws no colours"
run_case t_help "F1 shows the help overlay listing /quit and Esc closes it"
run_case t_tool_confirm "a tool that is not read-only asks: /deny refuses it, /allow runs it"
run_case t_quit "/quit exits 0 and restores the terminal"
run_case t_all_exit_zero "every other session exits 0 after /quit"
stop_mock
run_case t_mock_exit "the mock server exits cleanly"
echo "1..$n"
diag "$failed of $n failed in $(($(date +%s) - started)) s"
[ "$failed" -eq 0 ]
