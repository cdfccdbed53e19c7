#!/usr/bin/env bash
# Two daemons at default settings against one: each phase restores the same
# freshly loaded copy of the example game (CREATE DATABASE ... TEMPLATE),
# runs `decant run` at default settings (one worker, rate max, the commit
# probe on) for SECS seconds, stops it with SIGTERM and prints each
# daemon's summary and the users/s of the phase (issue 15, item 6).
# Usage: benches/two_daemons.sh   (USERS=150000 SECS=20)
# Needs: initdb, pg_ctl, psql on PATH; run as root (the server runs as the
# postgres user); a release build (cargo build --release).
set -euo pipefail
USERS=${USERS:-150000}; SECS=${SECS:-20}
PORT=55442; BASE=postgres://postgres@127.0.0.1:$PORT
source "$(dirname "$0")/cluster.sh"
psql -q -h 127.0.0.1 -p $PORT -U postgres -c "CREATE DATABASE template_game"
(cd "$W" && "$DECANT" example --users "$USERS" --database-url $BASE/template_game >/dev/null 2>&1 \
  && "$DECANT" init --database-url $BASE/template_game >/dev/null 2>&1)
psql -q -h 127.0.0.1 -p $PORT -U postgres -d template_game -c "VACUUM ANALYZE" -c "CHECKPOINT"
echo "# two daemons: $USERS users, $SECS s per phase, $(nproc) cores, PostgreSQL $(postgres --version | awk '{print $3}'), fsync on"
phase() {
  local name=$1 n=$2 db="game_$1"
  psql -q -h 127.0.0.1 -p $PORT -U postgres -c "CREATE DATABASE $db TEMPLATE template_game" -c "CHECKPOINT"
  local pids=() i
  for i in $(seq 1 "$n"); do
    (cd "$W" && exec "$DECANT" run --database-url $BASE/$db --spec "$W/decant.toml" >"$W/$name.$i.out" 2>"$W/$name.$i.err") &
    pids+=($!)
  done
  sleep "$SECS"
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done  # (a small table may be done already)
  for p in "${pids[@]}"; do wait "$p" || true; done
  for i in $(seq 1 "$n"); do
    grep -hE "^(done|stopped|held)" "$W/$name.$i.out" | sed "s/^/  $name daemon $i: /"
  done
  # the sum of the daemons' own rates (each over its own run)
  cat "$W"/$name.*.out | grep -hoE "\(([0-9]+) users/s" | grep -oE "[0-9]+" \
    | awk -v n="$name" '{s += $1} END {printf "%s: %d users/s in all\n", n, s}'
}
phase one 1
phase two 2
