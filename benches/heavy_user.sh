#!/usr/bin/env bash
# The SQL API on one very heavy migrated user: the example game with one
# user given $STATS extra statistics (marriage.stats.heavy.s1..sN, one row
# each), migrated by `decant migrate`, then `decant.load` and a one-counter
# `decant.patch` of that user timed three times each by psql, with the
# build before the change ($OLD, optional) and this one, each on its own
# copy of the database.
# Usage: OLD=/path/to/old/decant benches/heavy_user.sh   (STATS=60000)
# Needs: initdb, pg_ctl, psql on PATH; run as root; a release build.
set -euo pipefail
STATS=${STATS:-60000}; OLD=${OLD:-}
PORT=55447; BASE=postgres://postgres@127.0.0.1:$PORT
source "$(dirname "$0")/cluster.sh"
psql -q -h 127.0.0.1 -p $PORT -U postgres -c "CREATE DATABASE template_heavy"
(cd "$W" && "$DECANT" example --users 100 --database-url $BASE/template_heavy >/dev/null 2>&1)
psql -q -h 127.0.0.1 -p $PORT -U postgres -d template_heavy -c "
  UPDATE \"user\" SET data = jsonb_set(data, '{marriage,stats,heavy}',
    (SELECT jsonb_object_agg('s' || i, i) FROM generate_series(1, $STATS) AS i)) WHERE id = 1" \
  -c "VACUUM ANALYZE"
echo "# one user with $STATS extra statistics, PostgreSQL $(postgres --version | awk '{print $3}'), $(nproc) cores"
phase() {  # name exe
  local name=$1 exe=$2 db="heavy_$1"
  psql -q -h 127.0.0.1 -p $PORT -U postgres -c "CREATE DATABASE $db TEMPLATE template_heavy"
  (cd "$W" && "$exe" init --database-url $BASE/$db >/dev/null 2>&1 && "$exe" migrate --user 1 --database-url $BASE/$db)
  for i in 1 2 3; do
    psql -h 127.0.0.1 -p $PORT -U postgres -d $db -At \
      -c '\timing on' \
      -c "SELECT octet_length(decant.load(1)::text)" \
      -c "SELECT octet_length(decant.patch(1, '{\"marriage\": {\"stats\": {\"heavy\": {\"s1\": $i}}}}')::text)" |
      awk -v n="$name" -v i=$i '/^Time/ {t[++k] = $2} END {printf "%-6s round %d: load %9.1f ms  patch %9.1f ms\n", n, i, t[1], t[2]}'
  done
}
if [ -n "$OLD" ]; then phase before "$OLD"; fi
phase after "$DECANT"
