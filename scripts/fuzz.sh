#!/usr/bin/env bash
# Builds and runs every cargo-fuzz target of Warren, one at a time, for N seconds each:
#
#   bash scripts/fuzz.sh [seconds-per-target]      (default 30)
#
# Projects: crates/amqp-codec/fuzz (wire codec) and crates/core/fuzz (filters, contracts,
# JSON <-> field tables); each is a workspace of its own with its own target/, corpus/ and
# artifacts/ dirs. Installs cargo-fuzz if missing; uses the nightly toolchain if there is one,
# else stable with RUSTC_BOOTSTRAP=1. A target that crashes, fails an assertion, leaks, or takes
# more than 10 s on one input stops with its reproducer in <project>/artifacts/<target>/; the
# script goes on with the other targets and exits 1 at the end if any failed.
# Corpora grow across runs (<project>/corpus/<target>/); set CARGO_BUILD_JOBS to limit build jobs.
set -uo pipefail

secs=${1:-30}
if ! [[ $secs =~ ^[0-9]+$ ]] || [ "$secs" -lt 1 ]; then
    echo "usage: bash scripts/fuzz.sh [seconds-per-target]" >&2
    exit 2
fi
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
projects=(crates/amqp-codec/fuzz crates/core/fuzz)

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "== installing cargo-fuzz"
    cargo install cargo-fuzz --locked || exit 1
fi
if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
    fuzz=(cargo +nightly fuzz)
else
    # cargo-fuzz passes nightly-only flags (-Zsanitizer=address); this lets stable accept them.
    export RUSTC_BOOTSTRAP=1
    fuzz=(cargo fuzz)
fi

start=$(date +%s)
for project in "${projects[@]}"; do
    echo "== building $project"
    t0=$(date +%s)
    (cd "$root/$project" && "${fuzz[@]}" build) || { echo "FAILED to build $project" >&2; exit 1; }
    echo "   built in $(($(date +%s) - t0)) s"
done
built=$(date +%s)

failed=()
for project in "${projects[@]}"; do
    dir="$root/$project"
    for target in $(cd "$dir" && "${fuzz[@]}" list); do
        mkdir -p "$dir/corpus/$target"
        args=(-max_total_time="$secs" -timeout=10 -print_final_stats=1)
        [ -f "$dir/dicts/$target.dict" ] && args+=(-dict="$dir/dicts/$target.dict")
        echo "== $project: $target for $secs s"
        log=$(mktemp)
        (cd "$dir" && "${fuzz[@]}" run "$target" -- "${args[@]}") >"$log" 2>&1
        status=$?
        grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -n 1 | sed 's/^/   /'
        if [ "$status" -ne 0 ]; then
            tail -n 40 "$log" >&2
            failed+=("$project:$target")
            echo "   FAILED (exit $status); reproducer in $dir/artifacts/$target/" >&2
        fi
        rm -f "$log"
    done
done

end=$(date +%s)
echo "== builds $((built - start)) s, fuzzing $((end - built)) s, total $((end - start)) s"
if [ "${#failed[@]}" -ne 0 ]; then
    echo "FAILED: ${failed[*]}" >&2
    exit 1
fi
echo "all targets ran for $secs s each without a crash"
