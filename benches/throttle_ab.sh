#!/usr/bin/env bash
# Two builds of decant against the same live traffic, interleaved: pgbench
# (TPC-B-like, fixed rate, its own database in the same cluster) runs each
# phase while `decant run` at default settings (plus DAEMON_ARGS) from
# build A or build B migrates the example game. Phases: idle, A, B, B, A,
# after (pgbench alone again). Prints per phase pgbench's p50/p99 and its
# p99 per 5 s, and the daemon's summary (users/s, lock hold, held back).
# Usage: A=/path/to/old/decant B=/path/to/new/decant benches/throttle_ab.sh
#        (USERS=200000 SECS=45 RATE=200 CLIENTS=4; DAEMON_ARGS="" for both,
#        A_ARGS / B_ARGS for one; A and B may be the same build with
#        different arguments)
# Needs: initdb, pg_ctl, pgbench, psql on PATH; root.
set -euo pipefail
USERS=${USERS:-200000}; SECS=${SECS:-45}; RATE=${RATE:-200}; CLIENTS=${CLIENTS:-4}
: "${A:?A=path of build A}" "${B:?B=path of build B}"
PORT=55446; URL=postgres://postgres@127.0.0.1:$PORT/game
DECANT=$B
source "$(dirname "$0")/cluster.sh"
source "$(dirname "$0")/live.sh"
game_and_pgbench
echo "# throttle A/B: $USERS users, pgbench -R $RATE -c $CLIENTS on its own database, $SECS s per phase"
echo "# A=$A ${A_ARGS:-}"; echo "# B=$B ${B_ARGS:-}"
echo "# $(nproc) cores, PostgreSQL $(postgres --version | awk '{print $3}'), fsync on"
phase() {
  local name=$1 bin=${2:-} args=${3:-}
  local dir="$W/$name"; mkdir "$dir"
  local dp=""
  if [ -n "$bin" ]; then
    # shellcheck disable=SC2086
    (cd "$dir" && exec "$bin" run --database-url $URL --spec "$W/decant.toml" ${DAEMON_ARGS:-} $args >daemon.out 2>daemon.err) &
    dp=$!
  fi
  (cd "$dir" && pgbench -h 127.0.0.1 -p $PORT -U postgres -R "$RATE" -c "$CLIENTS" -j 2 -T "$SECS" -l --log-prefix=pg bench >pgbench.out 2>&1)
  if [ -n "$dp" ]; then kill -TERM "$dp" 2>/dev/null || true; wait "$dp" || true; fi
  pgbench_report "$name" "$dir"
}
phase idle
phase A1 "$A" "${A_ARGS:-}"
phase B1 "$B" "${B_ARGS:-}"
phase B2 "$B" "${B_ARGS:-}"
phase A2 "$A" "${A_ARGS:-}"
phase after
