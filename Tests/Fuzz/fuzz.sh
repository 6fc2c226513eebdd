#!/usr/bin/env bash
# Fuzzes ScratchNetIO's parsers with libFuzzer + AddressSanitizer.
#
#   Tests/Fuzz/fuzz.sh [TARGET|all] [SECONDS]      (defaults: all 30)
#
# TARGET: pickle safetensors npy npz idx gzip weights. Builds Sources/ScratchNetFuzz with -sanitize=fuzzer,address
# into .build-fuzz (set FUZZ_NO_BUILD=1 to skip), then runs each target for SECONDS, starting from the seeds in
# Tests/Fuzz/corpus/<target>/ plus every saved crash in Tests/Fuzz/crashes/<target>/ (so old crashes are re-run
# first). The growing corpus lives in .build-fuzz/corpus/<target>/; logs in .build-fuzz/logs/. A crash, leak,
# timeout (>10 s for one input) or out-of-memory (>2 GB) is saved to Tests/Fuzz/crashes/<target>/ and the script
# exits 1. FUZZ_JOBS=2 runs two targets at a time. Extra libFuzzer flags: FUZZ_FLAGS="-dict=..." etc.
set -uo pipefail
cd "$(dirname "$0")/../.."
ALL=(pickle safetensors npy npz idx gzip weights)
what=${1:-all}
seconds=${2:-30}
if [[ $what == all ]]; then targets=("${ALL[@]}"); else targets=("$what"); fi
for t in "${targets[@]}"; do
    [[ " ${ALL[*]} " == *" $t "* ]] || { echo "unknown target '$t' (use one of: ${ALL[*]} or all)" >&2; exit 2; }
done

scratch=.build-fuzz
bin=$scratch/release/scratchnet-fuzz
mkdir -p "$scratch"
if [[ ${FUZZ_NO_BUILD:-0} != 1 ]]; then
    echo "building $bin (-sanitize=fuzzer,address)..."
    # The gold linker may print internal errors for the (unused) sanitized build-tool plugin; only the product matters.
    if ! swift build -c release --scratch-path "$scratch" --product scratchnet-fuzz \
        -Xswiftc -sanitize=fuzzer,address -Xswiftc -DSCRATCHNET_FUZZ > "$scratch/build.log" 2>&1; then
        tail -30 "$scratch/build.log" >&2
        echo "fuzz build failed (log: $scratch/build.log)" >&2
        exit 2
    fi
fi
[[ -x $bin ]] || { echo "$bin is missing" >&2; exit 2; }
mkdir -p "$scratch/logs"

run_one() {
    local t=$1
    local corpus=$scratch/corpus/$t crashes=Tests/Fuzz/crashes/$t log=$scratch/logs/$t.log
    mkdir -p "$corpus" "$crashes"
    SCRATCHNET_FUZZ_TARGET=$t "$bin" "$corpus" Tests/Fuzz/corpus/"$t" "$crashes" \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
        -artifact_prefix="$crashes/" -print_final_stats=1 ${FUZZ_FLAGS:-} > "$log" 2>&1
    local rc=$?
    local execs rate cov ft units
    execs=$(grep -oE 'number_of_executed_units: +[0-9]+' "$log" | awk '{print $2}')
    rate=$(grep -oE 'average_exec_per_sec: +[0-9]+' "$log" | awk '{print $2}')
    cov=$(grep -oE 'cov: [0-9]+' "$log" | tail -1 | awk '{print $2}')
    ft=$(grep -oE 'ft: [0-9]+' "$log" | tail -1 | awk '{print $2}')
    units=$(ls "$corpus" | wc -l)
    local verdict=ok
    [[ $rc == 0 ]] || verdict="FAILED (exit $rc; see $log and $crashes/)"
    printf '%-12s %5ss  execs %-10s exec/s %-7s cov %-6s ft %-7s corpus %-6s %s\n' \
        "$t" "$seconds" "${execs:-?}" "${rate:-?}" "${cov:-?}" "${ft:-?}" "$units" "$verdict"
    return $rc
}

status=0
jobs=${FUZZ_JOBS:-1}
pids=()
for t in "${targets[@]}"; do
    if (( jobs > 1 )); then
        run_one "$t" & pids+=($!)
        while (( $(jobs -rp | wc -l) >= jobs )); do sleep 1; done
    else
        run_one "$t" || status=1
    fi
done
for p in "${pids[@]}"; do wait "$p" || status=1; done
exit $status
