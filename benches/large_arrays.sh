#!/usr/bin/env bash
# The SQL API on users of large arrays: one user each of $N rounds of a
# path through an array (`scores.{team}[{round}].points`, the other keys
# of each round left in the residual), $N/2 arrays under captured keys
# (`decks.{deck}[{pos}]`, three cards each, every seventh deck with one
# card its rule refuses and keeps), and an array of 2 x $N elements every
# tenth of which is refused (`picks[{pos}]`), migrated by `decant run`,
# then `decant.load` of each timed twice by psql, and one `decant.patch`
# each; with the build before the change ($OLD, optional) and this one,
# each on its own copy of the database.
# Usage: OLD=/path/to/old/decant benches/large_arrays.sh   (N=5000)
# Needs: initdb, pg_ctl, psql on PATH; run as root; a release build.
set -euo pipefail
N=${N:-5000}; OLD=${OLD:-}
PORT=55448; BASE=postgres://postgres@127.0.0.1:$PORT
source "$(dirname "$0")/cluster.sh"
cp "$ROOT/fixtures/specs/large_arrays.toml" "$W/decant.toml"
psql -q "$BASE/postgres" -c "CREATE DATABASE template_arrays"
psql -q "$BASE/template_arrays" <<SQL
CREATE TABLE "user" (id bigint PRIMARY KEY, name text NOT NULL, data jsonb NOT NULL);
INSERT INTO "user" SELECT 1, 'rounds', jsonb_build_object('scores', jsonb_build_object('red',
  (SELECT jsonb_agg(jsonb_build_object('points', g, 'at', g) ORDER BY g) FROM generate_series(1, $N) g)));
INSERT INTO "user" SELECT 2, 'decks', jsonb_build_object('decks',
  (SELECT jsonb_object_agg('d' || d, (SELECT jsonb_agg(CASE WHEN c = 2 AND d % 7 = 0 THEN '5'::jsonb
                                                            ELSE to_jsonb('c' || c) END ORDER BY c)
                                        FROM generate_series(1, 3) c))
     FROM generate_series(1, $N / 2) d));
INSERT INTO "user" SELECT 3, 'picks', jsonb_build_object('picks',
  (SELECT jsonb_agg(CASE WHEN g % 10 = 0 THEN 'null'::jsonb ELSE to_jsonb('b' || g) END ORDER BY g)
     FROM generate_series(1, 2 * $N) g));
INSERT INTO "user" SELECT g, 'small', '{"picks": ["a", null, "b"]}' FROM generate_series(10, 100) g;
CREATE TABLE original AS SELECT id, data FROM "user";
SQL
echo "# users of large arrays (N=$N), PostgreSQL $(postgres --version | awk '{print $3}'), $(nproc) cores"
phase() {  # name exe
  local name=$1 exe=$2 db="arrays_$1"
  psql -q "$BASE/postgres" -c "CREATE DATABASE $db TEMPLATE template_arrays"
  (cd "$W" && "$exe" init --database-url "$BASE/$db" >/dev/null 2>&1 &&
     "$exe" run --database-url "$BASE/$db" --rate max >/dev/null 2>&1)
  psql -q "$BASE/$db" -c "ANALYZE"
  for u in 1 2 3; do
    psql "$BASE/$db" -At -c '\timing on' \
      -c "SELECT octet_length(decant.load($u)::text)" \
      -c "SELECT octet_length(decant.load($u)::text)" \
      -c "SELECT octet_length(decant.patch($u, '{\"zz\": 1}')::text)" |
      awk -v n="$name" -v u=$u '/^Time/ {t[++k] = $2} END {printf "%-6s user %d: load %9.1f ms  again %9.1f ms  patch %9.1f ms\n", n, u, t[1], t[2], t[3]}'
  done
  psql "$BASE/$db" -At -c "SELECT '$name: decant.load equal to the blob before: ' || count(*) FILTER (WHERE decant.load(id) - 'zz' = o.data)
                             || ' of ' || count(*) || ' users, ' || count(*) FILTER (WHERE u.migrated) || ' migrated'
                           FROM \"user\" AS u JOIN original AS o USING (id)"
}
if [ -n "$OLD" ]; then phase before "$OLD"; fi
phase after "$DECANT"
