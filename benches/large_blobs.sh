#!/usr/bin/env bash
# Very large blobs behind ordinary users: two builds of decant migrate the
# example game plus WHALES users of ACH achievements each (about 50 bytes of
# JSON an achievement: 24,000 make 1.2 MB), ids after the ordinary users,
# each build on a fresh copy, interleaved A, B, B, A, with `decant run
# --rate max` (probe and load yield off) to the end. Prints each run's
# summary: users/s, rows/s, lock hold p50/p99, peak memory. With CENSUS=1
# the builds run `decant check` (read-only, the same database) instead:
# users/s, pages, peak memory.
# Usage: A=/path/to/old/decant B=/path/to/new/decant benches/large_blobs.sh
#        (USERS=3000 WHALES=60 ACH=24000 CENSUS=0)
# Needs: initdb, pg_ctl, psql on PATH; root.
set -euo pipefail
USERS=${USERS:-3000}; WHALES=${WHALES:-60}; ACH=${ACH:-24000}
: "${A:?A=path of build A}" "${B:?B=path of build B}"
PORT=55447; BASE=postgres://postgres@127.0.0.1:$PORT
DECANT=$B
source "$(dirname "$0")/cluster.sh"
psql -q "$BASE/postgres" -c "CREATE DATABASE tmpl"
(cd "$W" && "$DECANT" example --database-url "$BASE/tmpl" --users "$USERS" --spec "$W/decant.toml" >/dev/null)
psql -q "$BASE/tmpl" -c "INSERT INTO \"user\" (id, name, data)
  SELECT w, 'whale', jsonb_build_object('xp', w, 'marriage', jsonb_build_object('achievements',
    (SELECT jsonb_object_agg('a' || w || '_' || i, jsonb_build_object('unlockedAt', 1669702024365 + i, 'progress', i % 7))
       FROM generate_series(1, $ACH) AS i)))
  FROM generate_series($USERS + 1, $USERS + $WHALES) AS w"
"$DECANT" init --database-url "$BASE/tmpl" --spec "$W/decant.toml" >/dev/null
psql -q "$BASE/tmpl" -c "VACUUM ANALYZE"
echo "# large blobs: $USERS example users, then $WHALES of $ACH achievements each"
psql -Atq "$BASE/tmpl" -c "SELECT '# blobs: ordinary p50 ' || percentile_disc(0.5) WITHIN GROUP (ORDER BY octet_length(data::text))
  || ' bytes; large ' || max(octet_length(data::text)) || ' bytes of JSON, ' || max(pg_column_size(data)) || ' stored' FROM \"user\""
echo "# A=$A"; echo "# B=$B"
echo "# $(nproc) cores, PostgreSQL $(postgres --version | awk '{print $3}'), fsync on"
run() {
  local name=$1 bin=$2
  if [ "${CENSUS:-0}" = 1 ]; then
    echo "== $name (census)"
    (cd "$W" && "$bin" check --database-url "$BASE/tmpl" --spec "$W/decant.toml" 2>&1 \
       | grep -E "^users |peak memory") || true
    return
  fi
  psql -q "$BASE/postgres" -c "DROP DATABASE IF EXISTS r" -c "CREATE DATABASE r TEMPLATE tmpl" -c "CHECKPOINT"
  echo "== $name"
  (cd "$W" && "$bin" run --database-url "$BASE/r" --spec "$W/decant.toml" --rate max \
     --max-commit-slowdown 0 --load-yield 0 2>&1 | grep -E "^done|^stopped|lock hold|peak memory") || true
}
run A1 "$A"; run B1 "$B"; run B2 "$B"; run A2 "$A"
