#!/usr/bin/env bash
# Usage: fuzz/run.sh [SECONDS] [TARGET ...]
# Builds every fuzz target and runs each (or each TARGET named) for SECONDS
# (default 60), one after another, from a copy of the committed seeds in fuzz/corpus/ (the copy, in
# fuzz/work/, grows and is not committed). Prints each target's executions
# and corpus size from libFuzzer's last stats line; exits non-zero if any
# target crashed (its input is left in fuzz/artifacts/<target>/).
set -uo pipefail

seconds="${1:-60}"
shift $(( $# > 0 ? 1 : 0 ))
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here"

# Inputs far above any parser's interesting size only slow a run down; 4 KiB
# holds a frame of messages, a handshake and an envelope with room to spare.
max_len=4096
# A parser that allocates more than this for a 4 KiB input does not bound
# what it reads: report it as a crash.
malloc_limit_mb=256

cargo +nightly fuzz build || exit 2
if [ $# -gt 0 ]; then
    targets="$*"
else
    targets=$(cargo +nightly fuzz list)
fi

failed=()
printf '%-12s %12s %10s %8s  %s\n' target execs exec/s corpus result
for target in $targets; do
    work="$here/work/$target"
    mkdir -p "$work" "$here/artifacts/$target"
    cp -n "$here/corpus/$target/"* "$work/" 2>/dev/null || true
    log="$here/work/$target.log"
    cargo +nightly fuzz run "$target" "$work" -- \
        -max_total_time="$seconds" -max_len="$max_len" \
        -malloc_limit_mb="$malloc_limit_mb" -print_final_stats=1 \
        >"$log" 2>&1
    rc=$?
    # The last status line: "#N  DONE  cov: .. corp: N/..b .. exec/s: N".
    stats=$(grep -E '^#[0-9]+' "$log" | tail -1)
    execs=$(sed -nE 's/^#([0-9]+).*/\1/p' <<<"$stats")
    corpus=$(sed -nE 's/.* corp: ([0-9]+)\/.*/\1/p' <<<"$stats")
    rate=$(sed -nE 's/.* exec\/s: ([0-9]+).*/\1/p' <<<"$stats")
    if [ "$rc" -eq 0 ]; then
        result=ok
    else
        result="CRASH (rc $rc, see $log)"
        failed+=("$target")
    fi
    printf '%-12s %12s %10s %8s  %s\n' "$target" "${execs:-?}" "${rate:-?}" "${corpus:-?}" "$result"
done

if [ "${#failed[@]}" -ne 0 ]; then
    echo "crashed: ${failed[*]}" >&2
    exit 1
fi
