#!/usr/bin/env bash
# What makes pgbench's p99 slow while the daemon runs: CPU or the WAL?
# pgbench (TPC-B-like, -R RATE -c 4, its own database) runs SECS seconds per
# phase while `decant run --rate DRATE --max-commit-slowdown 0` (a fixed
# rate, the probe off, so every phase migrates alike) migrates the example
# game:
#   idle      pgbench alone
#   shared    the daemon as it is
#   pinned    the daemon's process and its server sessions on core 1,
#             pgbench and its sessions on core 0 (taskset)
#   async     the daemon's sessions with synchronous_commit = off (set on
#             the game database): its WAL is flushed by others' commits
#   flush     the daemon's sessions with backend_flush_after = FLUSH (256kB):
#             the pages they write out are written back by the kernel at once
#   after     pgbench alone again
# the middle ones (MODES) twice, interleaved. Prints pgbench's p50/p99 per
# phase with the end time of its five slowest transactions, then the
# server's checkpoints (the slow ones line up with "checkpoint complete").
# Usage: benches/tail_cause.sh   (USERS=200000 SECS=30 RATE=200 DRATE=700/s
#        MODES="shared pinned async" MAXWAL=1GB FLUSH=256kB)
# Needs: initdb, pg_ctl, pgbench, psql, taskset on PATH; root; a release build.
set -euo pipefail
USERS=${USERS:-200000}; SECS=${SECS:-30}; RATE=${RATE:-200}; DRATE=${DRATE:-700/s}
MODES=${MODES:-shared pinned async}; MAXWAL=${MAXWAL:-1GB}; FLUSH=${FLUSH:-256kB}
PORT=55447; URL=postgres://postgres@127.0.0.1:$PORT/game
source "$(dirname "$0")/cluster.sh"
q() { psql -q -h 127.0.0.1 -p $PORT -U postgres "$@"; }
source "$(dirname "$0")/live.sh"
game_and_pgbench
echo "# tail cause: $USERS users, pgbench -R $RATE -c 4, decant run --rate $DRATE, $SECS s per phase, max_wal_size $MAXWAL"
echo "# $(nproc) cores, PostgreSQL $(postgres --version | awk '{print $3}'), fsync on"
pct() { cat "$1"/pg.* | awk '{print $3}' | sort -n | awk -v n="$2" '{a[NR]=$1} END {printf "%-8s pgbench p50 %6.2f ms  p99 %7.2f ms  (%d transactions)\n", n, a[int(NR*0.5)]/1000, a[int(NR*0.99)]/1000, NR}'; }
phase() {
  local name=$1 mode=$2; local dir="$W/$name"; mkdir "$dir"
  local dp=""
  q -c "ALTER DATABASE game RESET ALL"
  if [ "$mode" = async ]; then q -c "ALTER DATABASE game SET synchronous_commit = off"; fi
  if [ "$mode" = flush ]; then q -c "ALTER DATABASE game SET backend_flush_after = '$FLUSH'"; fi
  if [ "$mode" != none ]; then
    (cd "$dir" && exec "$DECANT" run --database-url $URL --spec "$W/decant.toml" --rate "$DRATE" --max-commit-slowdown 0 >daemon.out 2>&1) &
    dp=$!
    sleep 1
  fi
  (cd "$dir" && pgbench -h 127.0.0.1 -p $PORT -U postgres -R "$RATE" -c 4 -j 2 -T "$SECS" -l --log-prefix=pg bench >pgbench.out 2>&1) &
  local bp=$!
  if [ "$mode" = pinned ]; then
    sleep 2
    taskset -a -p -c 1 "$dp" >/dev/null
    for p in $(q -At -c "SELECT pid FROM pg_stat_activity WHERE datname = 'game'"); do taskset -p -c 1 "$p" >/dev/null || true; done
    for p in $(q -At -c "SELECT pid FROM pg_stat_activity WHERE datname = 'bench'"); do taskset -p -c 0 "$p" >/dev/null || true; done
    for p in $(pgrep -x pgbench); do taskset -a -p -c 0 "$p" >/dev/null; done
  fi
  wait $bp
  if [ -n "$dp" ]; then kill -TERM "$dp" 2>/dev/null || true; wait "$dp" || true; fi
  pct "$dir" "$name"
  cat "$dir"/pg.* | sort -k3,3n | tail -5 | awk '{printf "         slow %.1f ms, ended %s\n", $3/1000, strftime("%H:%M:%S", $5, 1)}' 
  if [ -n "$dp" ]; then grep -hE "^(done|stopped)" "$dir/daemon.out" | sed 's/^/         /'; fi
}
phase idle none
for i in 1 2; do
  for m in $MODES; do phase "$m$i" "$m"; done
done
phase after none
grep -E "checkpoint (starting|complete)" "$W/server.log" | awk '{print "checkpoint", $2, $6, $7}'
