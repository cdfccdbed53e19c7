#!/usr/bin/env bash
# The cost of the user id's kind: the same example game migrated with its
# bigint ids by the build before uuid/text ids ($OLD, optional), by this
# build, and with the ids turned into uuids and into text. Each phase takes
# a fresh copy of one loaded database (CREATE DATABASE ... TEMPLATE), runs
# `decant init` then `decant run --rate max --workers 2` for SECS seconds,
# stops it with SIGTERM and prints its summary (users/s, lock hold).
# Usage: OLD=/path/to/old/decant benches/id_kinds.sh   (USERS=100000 SECS=20)
# Needs: initdb, pg_ctl, psql on PATH; run as root; a release build.
set -euo pipefail
USERS=${USERS:-100000}; SECS=${SECS:-20}; OLD=${OLD:-}
PORT=55443; BASE=postgres://postgres@127.0.0.1:$PORT
source "$(dirname "$0")/cluster.sh"
psql -q -h 127.0.0.1 -p $PORT -U postgres -c "CREATE DATABASE template_game"
(cd "$W" && "$DECANT" example --users "$USERS" --database-url $BASE/template_game >/dev/null 2>&1)
psql -q -h 127.0.0.1 -p $PORT -U postgres -d template_game -c "VACUUM ANALYZE" -c "CHECKPOINT"
echo "# id kinds: $USERS users, $SECS s per phase, $(nproc) cores, PostgreSQL $(postgres --version | awk '{print $3}'), fsync on"
phase() {  # name exe id_type retype-sql
  local name=$1 exe=$2 kind=$3 retype=$4 db="game_$1" dir="$W/$1"
  mkdir -p "$dir"
  psql -q -h 127.0.0.1 -p $PORT -U postgres -c "CREATE DATABASE $db TEMPLATE template_game"
  if [ -n "$retype" ]; then
    psql -q -h 127.0.0.1 -p $PORT -U postgres -d "$db" -c "ALTER TABLE \"user\" DROP CONSTRAINT user_pkey" \
      -c "ALTER TABLE \"user\" ALTER COLUMN id TYPE $kind USING $retype" \
      -c "ALTER TABLE \"user\" ADD PRIMARY KEY (id)" -c "VACUUM ANALYZE \"user\""
  fi
  if [ "$kind" = bigint ]; then cp "$W/decant.toml" "$dir/"; else
    sed "s/^\[source\]$/[source]\nid_type = \"$kind\"/" "$W/decant.toml" > "$dir/decant.toml"; fi
  (cd "$dir" && "$exe" init --database-url $BASE/$db >/dev/null 2>&1)
  psql -q -h 127.0.0.1 -p $PORT -U postgres -c "CHECKPOINT"
  (cd "$dir" && exec "$exe" run --rate max --workers 2 --database-url $BASE/$db >"$dir/out" 2>"$dir/err") &
  local pid=$!
  sleep "$SECS"; kill -TERM "$pid" 2>/dev/null || true; wait "$pid" || true
  grep -hE "^(done|stopped)|lock hold" "$dir/out" | sed "s/^/  $name: /"
}
[ -n "$OLD" ] && phase bigint_before "$OLD" bigint ""
phase bigint "$DECANT" bigint ""
phase uuid "$DECANT" uuid "md5(id::text)::uuid"
phase text "$DECANT" text "'player-' || id"
[ -n "$OLD" ] && phase bigint_before_again "$OLD" bigint ""
phase bigint_again "$DECANT" bigint ""
