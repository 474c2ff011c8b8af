#!/usr/bin/env bash
# Measures the daemon on the SQLite default:
#   1. idle: RSS and CPU of `retentiond run` over IDLE_SECONDS (default 600)
#      with an every-second schedule and nothing eligible;
#   2. stop: the time from SIGTERM to exit while it sweeps JOBS (default
#      1,000,000) eligible jobs, and that every job gone has its audit row.
# Usage: bash bench/daemon.sh   (builds the release binary first; BIN=path skips that)
# Figures go to stdout; each part runs in a fresh temporary directory.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${BIN:-}" ]; then
    cargo build --release --quiet
fi
bin=${BIN:-$PWD/target/release/retentiond}
idle_seconds=${IDLE_SECONDS:-600}
jobs=${JOBS:-1000000}
ticks_per_second=$(getconf CLK_TCK)

cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
rss_kib() { awk '/^VmRSS/ { print $2 }' "/proc/$1/status"; }
peak_kib() { awk '/^VmHWM/ { print $2 }' "/proc/$1/status"; }

echo "== idle daemon, every-second schedule, ${idle_seconds} s"
dir=$(mktemp -d)
(
    cd "$dir"
    "$bin" jobs seed --count 10000 >/dev/null 2>&1
    "$bin" purge >/dev/null 2>&1   # nothing eligible is left for the daemon
    RETENTIOND__SCHEDULE__CRON='* * * * * *' RETENTIOND__METRICS__LISTEN=127.0.0.1:0 \
        RETENTIOND__LOG__LEVEL=warn "$bin" run 2>daemon.log &
    pid=$!
    sleep 10   # warm-up: start, first sweeps
    start_cpu=$(cpu_ticks "$pid")
    start_runs=$(sqlite3 retentiond.db "SELECT count(*) FROM retention_runs")
    sleep "$idle_seconds"
    end_cpu=$(cpu_ticks "$pid")
    end_runs=$(sqlite3 retentiond.db "SELECT count(*) FROM retention_runs")
    echo "rss_kib=$(rss_kib "$pid") peak_rss_kib=$(peak_kib "$pid")"
    awk -v t=$((end_cpu - start_cpu)) -v hz="$ticks_per_second" -v s="$idle_seconds" -v r=$((end_runs - start_runs)) \
        'BEGIN { printf "cpu_seconds=%.2f cpu_percent=%.3f sweeps=%d cpu_ms_per_sweep=%.2f\n", t/hz, 100*t/hz/s, r, 1000*t/hz/(r>0?r:1) }'
    kill -TERM "$pid"
    wait "$pid"
)
rm -rf "$dir"

echo "== SIGTERM during a sweep of ${jobs} eligible jobs"
dir=$(mktemp -d)
(
    cd "$dir"
    "$bin" jobs seed --count "$jobs" >/dev/null 2>&1
    # Every job eligible: Completed 200 days ago, no hold.
    old=$(( ($(date +%s) - 200 * 86400) * 1000000 ))
    sqlite3 retentiond.db "UPDATE jobs SET state = 'Completed', state_changed_at = $old, hold_reason = NULL"
    RETENTIOND__METRICS__LISTEN=127.0.0.1:0 RETENTIOND__LOG__LEVEL=warn "$bin" run 2>daemon.log &
    pid=$!
    sleep 15
    signalled=$(date +%s%N)
    kill -TERM "$pid"
    code=0
    wait "$pid" || code=$?
    exited=$(date +%s%N)
    echo "exit=$code sigterm_to_exit_ms=$(( (exited - signalled) / 1000000 ))"
    sqlite3 retentiond.db "SELECT 'run status=' || status || ' stopped_by=' || stopped_by || ' deleted=' || deleted_completed FROM retention_runs"
    sqlite3 retentiond.db "SELECT 'jobs_left=' || (SELECT count(*) FROM jobs) || ' audit_rows=' || (SELECT count(*) FROM retention_audit) || ' sum=' || ((SELECT count(*) FROM jobs) + (SELECT count(*) FROM retention_audit))"
)
rm -rf "$dir"
