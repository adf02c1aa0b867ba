#!/bin/sh
# memchat's quick start, on a fresh Debian 12 machine (as root or with sudo):
#
#   ./quickstart.sh          install what is missing, build, start memchat
#   ./quickstart.sh check    install what is missing, build, run the CI tier
#
# Every build is a VPATH build: build/ for the user's program (./memchat is a
# link to build/memchat) and build-asan/ for the ASan+UBSan run of the suite.
# The CI tier is exactly DESIGN.md's: make check in build/ and build-asan/,
# both configured with --enable-werror, and make check-valgrind in build/.
set -eu
cd "$(dirname "$0")"
top=$(pwd)
mode=${1:-run}
case "$mode" in
run | check) ;;
-h | --help)
    sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'
    exit 0
    ;;
*)
    echo "usage: ./quickstart.sh [check]" >&2
    exit 2
    ;;
esac

say() { printf 'quickstart: %s\n' "$*" >&2; }
jobs=$(nproc 2>/dev/null || echo 2)

# --- 1. Debian packages ------------------------------------------------------
build_pkgs="gcc make autoconf automake pkgconf libncurses-dev libcurl4-openssl-dev \
libcjson-dev libreadline-dev libsodium-dev libsqlite3-dev libpq-dev libhiredis-dev libcmocka-dev"
check_pkgs="valgrind clang-format tmux redis-server"
pkgs=$build_pkgs
[ "$mode" = check ] && pkgs="$pkgs $check_pkgs"

missing=""
for p in $pkgs; do
    st=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
    case "$st" in *" installed") ;; *) missing="$missing $p" ;; esac
done
sudo=""
[ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1 && sudo="sudo"
if [ -n "$missing" ]; then
    if [ "$(id -u)" -eq 0 ]; then
        sudo=""
    elif command -v sudo >/dev/null 2>&1; then
        sudo="sudo"
    else
        say "missing Debian packages:$missing"
        say "run as root: apt-get install$missing"
        exit 1
    fi
    say "installing:$missing"
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get update -qq
    # shellcheck disable=SC2086
    $sudo apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

# --- 1b. servers from the npm registry (pinned in package-lock.json) ---------
# Only the benchmarks and tests start them (PGlite with pgvector for the
# pgvector store's tests, the Portkey gateway for make bench); memchat
# itself links nothing from npm. A failure here is reported and does not
# stop the quick start: the suites that need a server say so.
npm_ready() {
    command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1
}
if [ -f package-lock.json ]; then
    if ! npm_ready; then
        say "installing Debian's nodejs and npm (for the test and bench servers)"
        { ${sudo:-} apt-get update -qq && ${sudo:-} apt-get install -y -qq --no-install-recommends nodejs npm; } >/dev/null 2>&1 ||
            say "could not install nodejs/npm; the pgvector tests will fail and make bench will skip the gateway comparison"
    fi
    if npm_ready && { [ ! -f node_modules/.package-lock.json ] ||
        [ package-lock.json -nt node_modules/.package-lock.json ]; }; then
        say "npm ci (test and bench servers)"
        npm ci --no-audit --no-fund --loglevel=error >/dev/null 2>&1 ||
            say "npm ci failed; the pgvector tests will fail and make bench will skip the gateway comparison"
    fi
fi

# --- 2. build ----------------------------------------------------------------
if [ ! -x configure ] || [ configure.ac -nt configure ] || [ Makefile.am -nt Makefile.in ]; then
    say "generating configure"
    ./autogen.sh >/dev/null 2>&1 || { ./autogen.sh; exit 1; }
fi

# configure_in DIR [FLAGS...]: configure DIR when it has not been, or was
# configured with other flags.
configure_in() {
    dir=$1
    shift
    want="$*"
    mkdir -p "$dir"
    if [ ! -f "$dir/Makefile" ] || [ "$(cat "$dir/.quickstart-flags" 2>/dev/null)" != "$want" ]; then
        say "configuring $dir ($want)"
        (cd "$dir" && "$top/configure" -q "$@") || exit 1
        printf '%s' "$want" >"$dir/.quickstart-flags"
    fi
}

configure_in build --enable-werror
say "building in build/"
make -C build -j"$jobs" -s >/dev/null || make -C build -s
ln -sf build/memchat memchat

if [ "$mode" = run ]; then
    say "starting memchat (offline until you set an API key; /help for commands)"
    exec ./memchat
fi

# --- 3. the CI tier ------------------------------------------------------------
status=0
run_check() { # run_check DIR TARGET
    say "make $2 in $1/"
    make -C "$1" -j"$jobs" "$2" || status=1
}
run_check build check
configure_in build-asan --enable-werror --enable-sanitizers
run_check build-asan check
say "make check-valgrind in build/"
{
    make -C build check-valgrind
    echo $? >build/.valgrind-status
} 2>&1 | tee build/check-valgrind.out
[ "$(cat build/.valgrind-status)" = 0 ] || status=1

# One closing line with the totals of all three runs.
passed=0
failed=0
for log in build/test-suite.log build-asan/test-suite.log; do
    [ -f "$log" ] || { failed=$((failed + 1)); continue; }
    p=$(sed -n 's/^# PASS: *//p' "$log" | head -1)
    f=$(sed -n 's/^# \(FAIL\|ERROR\|XPASS\): *//p' "$log" | awk '{s += $1} END {print s + 0}')
    passed=$((passed + ${p:-0}))
    failed=$((failed + f))
done
vpass=$(grep -c '^PASS: valgrind' build/check-valgrind.out || true)
vfail=$(grep -c '^FAIL: valgrind' build/check-valgrind.out || true)
passed=$((passed + vpass))
failed=$((failed + vfail))
cases=$(cat build/tests/unit/*.log build/tests/integration/*.log 2>/dev/null |
    sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' | awk '{s += $1} END {print s + 0}')
say "cmocka cases passed in build/: $cases"
[ $status -ne 0 ] && [ $failed -eq 0 ] && failed=1
echo "tests: $passed passed, $failed failed"
exit $status
