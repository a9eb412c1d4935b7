#!/usr/bin/env bash
# `make test-stress`: the whole suite, RUNS times in a row (default 3), while other processes
# keep every core busy. It proves no test leans on a timing margin a loaded machine eats.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${RUNS:-3}
cores=$(nproc)

busy_pids=()
stop_load() { [ ${#busy_pids[@]} -eq 0 ] || kill "${busy_pids[@]}" 2>/dev/null || true; }
trap stop_load EXIT

if command -v stress-ng >/dev/null 2>&1; then
    stress-ng --cpu "$cores" --quiet &
    busy_pids+=($!)
else
    for _ in $(seq "$cores"); do
        python3 -c 'while True: pass' &
        busy_pids+=($!)
    done
fi
echo "test-stress: $cores busy workers; running the suite $runs time(s)"

for run in $(seq "$runs"); do
    began=$SECONDS
    make --no-print-directory test
    echo "test-stress: run $run/$runs passed in $((SECONDS - began)) s under load"
done
