#!/usr/bin/env bash
# Live traffic: pgbench (TPC-B-like, fixed rate, its own database in the
# same cluster) stands for the rest of the game while `decant run` migrates
# the example game. Prints pgbench's latency p50/p99 per phase and per
# 5-second slice, and the daemon's summary, for:
#   idle        pgbench alone
#   default     decant run at default settings (the throttle sees the whole server)
#   this-db     decant run --this-database-only (the throttle of before: blind to pgbench)
#   after       pgbench alone again, right after the daemon stopped
#   max         decant run --rate max --workers 2
# Usage: benches/live_traffic.sh   (USERS=200000 SECS=60 RATE=200 CLIENTS=4)
# Needs: initdb, pg_ctl, pgbench, psql on PATH; run as root (the server runs
# as the postgres user); a release build (cargo build --release).
set -euo pipefail
USERS=${USERS:-200000}; SECS=${SECS:-60}; RATE=${RATE:-200}; CLIENTS=${CLIENTS:-4}
PORT=55441; URL=postgres://postgres@127.0.0.1:$PORT/game
source "$(dirname "$0")/cluster.sh"
source "$(dirname "$0")/live.sh"
game_and_pgbench
echo "# live traffic: $USERS users, pgbench -R $RATE -c $CLIENTS on its own database, $SECS s per phase"
echo "# $(nproc) cores, PostgreSQL $(postgres --version | awk '{print $3}'), fsync on"
phase() {
  local name=$1; shift
  local dir="$W/$name"; mkdir "$dir"
  local dp=""
  if [ "$#" -gt 0 ]; then
    (cd "$dir" && exec "$DECANT" run --database-url $URL --spec "$W/decant.toml" "$@" >daemon.out 2>daemon.err) &
    dp=$!
  fi
  (cd "$dir" && pgbench -h 127.0.0.1 -p $PORT -U postgres -R "$RATE" -c "$CLIENTS" -j 2 -T "$SECS" -l --log-prefix=pg bench >pgbench.out 2>&1)
  if [ -n "$dp" ]; then kill -TERM "$dp" 2>/dev/null || true; wait "$dp" || true; fi
  pgbench_report "$name" "$dir"
}
phase idle
phase default --max-commit-slowdown 1.5   # (the default, spelled out)
phase this-db --this-database-only
phase after
phase max --rate max --workers 2
