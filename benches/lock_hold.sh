#!/usr/bin/env bash
# Lock hold at full speed on a long-lived cluster: one template database of
# USERS example users, then for each set of `decant run` arguments given,
# RUNS runs of SECS seconds each on a fresh copy of it (`decant init`, a
# checkpoint, then `timeout -s INT SECS decant run --rate max ...`), the
# variants interleaved run by run so that the machine's drift falls on all
# of them alike. PROCS=2 runs two daemon processes side by side on each copy.
# Prints each run's users/s and lock hold p50 / p99 (the daemon's summary).
# Usage: benches/lock_hold.sh "--target-batch-ms 25" "--target-batch-ms 100"
#        (USERS=400000 SECS=20 RUNS=2 PROCS=1; DECANT=<build> to compare builds)
# Needs: initdb, pg_ctl, psql on PATH; root; a release build.
set -euo pipefail
USERS=${USERS:-400000}; SECS=${SECS:-20}; RUNS=${RUNS:-2}; PROCS=${PROCS:-1}
[ "$#" -gt 0 ] || set -- ""
PORT=55446
source "$(dirname "$0")/cluster.sh"
url() { echo "postgres://postgres@127.0.0.1:$PORT/$1"; }
psql -q -h 127.0.0.1 -p $PORT -U postgres -c "CREATE DATABASE tpl"
(cd "$W" && "$DECANT" example --users "$USERS" --database-url "$(url tpl)" >/dev/null 2>&1)
psql -q -h 127.0.0.1 -p $PORT -U postgres -d tpl -c "VACUUM ANALYZE"
echo "# lock hold: $USERS users, $SECS s per run, $PROCS daemon process(es), --rate max"
echo "# $(nproc) cores, PostgreSQL $(postgres --version | awk '{print $3}'), fsync on"
for run in $(seq 1 "$RUNS"); do
  for args in "$@"; do
    psql -q -h 127.0.0.1 -p $PORT -U postgres -c "DROP DATABASE IF EXISTS copy" -c "CREATE DATABASE copy TEMPLATE tpl"
    "$DECANT" init --database-url "$(url copy)" --spec "$W/decant.toml" >/dev/null 2>&1
    psql -q -h 127.0.0.1 -p $PORT -U postgres -d copy -c "CHECKPOINT"
    for p in $(seq 1 "$PROCS"); do
      # shellcheck disable=SC2086 # $args is a list of arguments
      (timeout -s INT "$SECS" "$DECANT" run --database-url "$(url copy)" --spec "$W/decant.toml" \
         --rate max $args >"$W/run.$p.out" 2>&1 || true) &
    done
    wait
    for p in $(seq 1 "$PROCS"); do
      summary=$(grep -E "^(done|stopped):" "$W/run.$p.out" | tail -1)
      hold=$(grep -E "lock hold|batch" "$W/run.$p.out" | grep -oE "p50 [0-9.]+ ms, p99 [0-9.]+ ms" | tail -1)
      echo "run $run [${args:-default}] process $p: $summary; lock hold ${hold:-?}"
    done
  done
done
