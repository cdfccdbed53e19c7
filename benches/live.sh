# Sourced after cluster.sh by the live-traffic scripts: the game database
# ($URL, $USERS example users, initialized by ${GAME_DECANT:-$DECANT})
# beside pgbench's own (scale 20), analyzed and checkpointed; and the
# report of one phase of pgbench's log. Needs $PORT, $URL, $W, $USERS.
game_and_pgbench() {
  local decant=${GAME_DECANT:-$DECANT}
  psql -q -h 127.0.0.1 -p $PORT -U postgres -c "CREATE DATABASE game" -c "CREATE DATABASE bench"
  pgbench -h 127.0.0.1 -p $PORT -U postgres -i -s 20 -q bench >/dev/null 2>&1
  (cd "$W" && "$decant" example --users "$USERS" --database-url $URL >/dev/null 2>&1 && "$decant" init --database-url $URL >/dev/null 2>&1)
  if [ -n "${MAXWAL:-}" ]; then
    psql -q -h 127.0.0.1 -p $PORT -U postgres -c "ALTER SYSTEM SET max_wal_size = '$MAXWAL'" -c "SELECT pg_reload_conf()" >/dev/null
  fi
  psql -q -h 127.0.0.1 -p $PORT -U postgres -d game -c "VACUUM ANALYZE" -c "CHECKPOINT"
}

# pgbench_report NAME DIR: p50/p99 of the pgbench logs pg.* in DIR, its p99
# per 5 s slice, and the daemon's summary when DIR has a daemon.out.
pgbench_report() {
  local name=$1 dir=$2
  cat "$dir"/pg.* | awk '{print $3}' | sort -n | awk -v n="$name" '{a[NR]=$1} END {printf "%-8s pgbench p50 %6.2f ms  p99 %7.2f ms  (%d transactions)\n", n, a[int(NR*0.5)]/1000, a[int(NR*0.99)]/1000, NR}'
  cat "$dir"/pg.* | awk '{print int($5/5), $3}' | sort -k1,1n -k2,2n | awk '
    function flush() { if (n > 0) line = line sprintf(" %.1f", a[(int(n*0.99) > 0) ? int(n*0.99) : 1]/1000); n = 0 }
    BEGIN { line = "         p99 per 5 s (ms):" }
    $1 != k { flush(); k = $1 }
    { a[++n] = $2 }
    END { flush(); print line }'
  if [ -f "$dir/daemon.out" ]; then grep -hE "^(done|stopped|held|batch)" "$dir/daemon.out" | sed 's/^/         /'; fi
}
