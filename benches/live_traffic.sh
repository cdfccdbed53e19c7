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
psql -q -h 127.0.0.1 -p $PORT -U postgres -c "CREATE DATABASE game" -c "CREATE DATABASE bench"
pgbench -h 127.0.0.1 -p $PORT -U postgres -i -s 20 -q bench >/dev/null 2>&1
(cd "$W" && "$DECANT" example --users "$USERS" --database-url $URL >/dev/null 2>&1 && "$DECANT" init --database-url $URL >/dev/null 2>&1)
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
  if [ -n "$dp" ]; then kill -TERM "$dp"; wait "$dp" || true; fi
  cat "$dir"/pg.* | awk '{print $3}' | sort -n | awk -v n="$name" '{a[NR]=$1} END {printf "%-8s pgbench p50 %6.2f ms  p99 %7.2f ms  (%d transactions)\n", n, a[int(NR*0.5)]/1000, a[int(NR*0.99)]/1000, NR}'
  # per 5 s slice: p99 (ms)
  cat "$dir"/pg.* | awk '{print int($5/5), $3}' | sort -k1,1n -k2,2n | awk '
    function flush() { if (n > 0) line = line sprintf(" %.1f", a[(int(n*0.99) > 0) ? int(n*0.99) : 1]/1000); n = 0 }
    BEGIN { line = "         p99 per 5 s (ms):" }
    $1 != k { flush(); k = $1 }
    { a[++n] = $2 }
    END { flush(); print line }'
  if [ -n "$dp" ]; then grep -hE "^(done|stopped|held|batch)" "$dir/daemon.out" | sed 's/^/         /'; fi
}
phase idle
phase default --max-commit-slowdown 1.5   # (the default, spelled out)
phase this-db --this-database-only
phase after
phase max --rate max --workers 2
