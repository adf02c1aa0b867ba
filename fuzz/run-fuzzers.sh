#!/bin/sh
# run-fuzzers.sh: the driver of make check-long-fuzz, fuzz-merge and
# fuzz-minimize, run from the top of a fuzzer build (--enable-fuzzers).
#
#   run-fuzzers.sh run SRCDIR SECONDS TARGET...
#     runs each fuzz/fuzz_TARGET for SECONDS on a scratch copy of
#     SRCDIR/fuzz/corpus/TARGET (never the source corpus), with the
#     target's dictionary and inputs of at most 64 KiB; FUZZ_JOBS (1)
#     targets at a time. Logs, new inputs and crashes go to
#     fuzz-out/TARGET/; the table of execs/s, coverage, corpus and crashes
#     to fuzz-out/results.md. Exits 1 when any target crashed, leaked,
#     timed out or ran out of memory.
#   run-fuzzers.sh merge SRCDIR 0 TARGET...
#     merges the inputs of the last run that add coverage into
#     SRCDIR/fuzz/corpus/TARGET (libFuzzer's -merge=1), at most about
#     FUZZ_CORPUS_MAX (200) files.
#   run-fuzzers.sh minimize SRCDIR 0 TARGET...
#     rewrites SRCDIR/fuzz/corpus/TARGET as its hand-written seed-* inputs,
#     every regress-* input (a fixed bug's reproducer) and the fewest others
#     that keep its coverage.
set -u
mode=${1:?mode}
src=${2:?srcdir}
seconds=${3:?seconds}
shift 3
jobs=${FUZZ_JOBS:-1}
max_len=65536
corpus_max=${FUZZ_CORPUS_MAX:-200}
out=fuzz-out

flags_for() {
    t=$1
    f="-max_len=$max_len -timeout=25 -rss_limit_mb=2048 -print_final_stats=1"
    if [ -f "$src/fuzz/dict/$t.dict" ]; then
        f="$f -dict=$src/fuzz/dict/$t.dict"
    fi
    echo "$f"
}

# One target's run; its exit status goes to fuzz-out/T/status.
run_one() {
    t=$1
    d=$out/$t
    rm -rf "$d"
    mkdir -p "$d/corpus" "$d/artifacts"
    if [ -d "$src/fuzz/corpus/$t" ]; then
        cp "$src/fuzz/corpus/$t"/* "$d/corpus/" 2>/dev/null
    fi
    # shellcheck disable=SC2046
    ./fuzz/fuzz_"$t" $(flags_for "$t") -max_total_time="$seconds" \
        -artifact_prefix="$d/artifacts/" "$d/corpus" >"$d/log" 2>&1
    echo $? >"$d/status"
}

# The figures of one run, as a Markdown table row.
row() {
    t=$1
    d=$out/$t
    log=$d/log
    last=$(grep -E '^#[0-9]+.*cov: ' "$log" | tail -n 1)
    cov=$(echo "$last" | sed -n 's/.* cov: \([0-9]*\).*/\1/p')
    ft=$(echo "$last" | sed -n 's/.* ft: \([0-9]*\).*/\1/p')
    corp=$(echo "$last" | sed -n 's/.* corp: \([^ ]*\).*/\1/p')
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    eps=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
    rss=$(sed -n 's/^stat::peak_rss_mb: *//p' "$log" | tail -n 1)
    crashes=$(find "$d/artifacts" -type f | wc -l)
    st=$(cat "$d/status" 2>/dev/null || echo '?')
    echo "| $t | ${seconds} s | ${execs:-?} | ${eps:-?} | ${cov:-?} | ${ft:-?} | ${corp:-?} | ${rss:-?} MB | $crashes | $st |"
}

# Merges the inputs of dir that add coverage into corpus (kept as it is),
# libFuzzer's -merge=1. Counting how often each edge runs gives the finer
# corpus; when that passes FUZZ_CORPUS_MAX files, edges alone decide.
merge_into() {
    t=$1
    corpus=$2
    dir=$3
    tmp=$(mktemp -d) || return 1
    cp "$corpus"/* "$tmp"/ 2>/dev/null
    ./fuzz/fuzz_"$t" -merge=1 -max_len=$max_len "$tmp" "$dir" >"$tmp.log" 2>&1 ||
        { echo "fuzz: merging $t failed (see $tmp.log)"; return 1; }
    if [ "$(ls "$tmp" | wc -l)" -gt "$corpus_max" ]; then
        rm -rf "$tmp"
        mkdir "$tmp"
        cp "$corpus"/* "$tmp"/ 2>/dev/null
        ./fuzz/fuzz_"$t" -merge=1 -use_counters=0 -max_len=$max_len "$tmp" "$dir" \
            >"$tmp.log" 2>&1 || { echo "fuzz: merging $t failed (see $tmp.log)"; return 1; }
    fi
    cp "$tmp"/* "$corpus"/ 2>/dev/null
    rm -rf "$tmp" "$tmp.log"
}

case $mode in
run)
    mkdir -p "$out"
    running=0
    for t in "$@"; do
        echo "fuzz: $t for $seconds s"
        run_one "$t" &
        running=$((running + 1))
        if [ "$running" -ge "$jobs" ]; then
            wait
            running=0
        fi
    done
    wait
    {
        echo "| target | time | execs | execs/s | cov | ft | corpus (units/bytes) | peak RSS | crashes | exit |"
        echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
        for t in "$@"; do row "$t"; done
    } >"$out/results.md"
    cat "$out/results.md"
    failed=0
    for t in "$@"; do
        st=$(cat "$out/$t/status" 2>/dev/null || echo 1)
        n=$(find "$out/$t/artifacts" -type f | wc -l)
        if [ "$st" != 0 ] || [ "$n" -ne 0 ]; then
            echo "fuzz: $t FAILED (exit $st); see $out/$t/log and $out/$t/artifacts/"
            failed=1
        fi
    done
    exit $failed
    ;;
merge)
    for t in "$@"; do
        if [ ! -d "$out/$t/corpus" ]; then
            echo "fuzz-merge: $t: no run to merge (make check-long-fuzz first)"
            continue
        fi
        c=$src/fuzz/corpus/$t
        before=$(ls "$c" | wc -l)
        merge_into "$t" "$c" "$out/$t/corpus" || exit 1
        echo "fuzz-merge: $t: $before -> $(ls "$c" | wc -l) inputs ($(cat "$c"/* | wc -c) bytes)"
    done
    ;;
minimize)
    for t in "$@"; do
        c=$src/fuzz/corpus/$t
        before=$(ls "$c" | wc -l)
        keep=$(mktemp -d) || exit 1
        # The hand-written seeds and the reproducers stay; the rest is
        # chosen again from scratch.
        find "$c" -maxdepth 1 -type f \( -name 'seed-*' -o -name 'regress-*' \) \
            -exec cp {} "$keep"/ \;
        all=$(mktemp -d) || exit 1
        cp "$c"/* "$all"/
        merge_into "$t" "$keep" "$all" || exit 1
        find "$c" -maxdepth 1 -type f -delete
        cp "$keep"/* "$c"/
        rm -rf "$keep" "$all"
        echo "fuzz-minimize: $t: $before -> $(ls "$c" | wc -l) inputs ($(cat "$c"/* | wc -c) bytes)"
    done
    ;;
*)
    echo "run-fuzzers.sh: unknown mode $mode" >&2
    exit 2
    ;;
esac
