#!/usr/bin/env bash
# A backend surge mid-phase: `decant run` at default settings migrates the
# example game while pgbench (TPC-B-like, its own database in the same
# cluster) runs at RATE for the whole phase and a second pgbench adds RATE
# more in the middle third (the load doubles, then drops back). Prints,
# per 5-second slice, the daemon's users/s (scraped from its metrics
# endpoint) and pgbench's p99, so the back-off and the recovery show.
# Usage: benches/surge.sh   (USERS=200000 SECS=90 RATE=200 CLIENTS=4; DAEMON_ARGS="..." adds
# arguments to `decant run`; VARIANTS="a=ARGS;b=ARGS" runs several phases
# one after the other on the same database, see the end)
# Needs: initdb, pg_ctl, pgbench, psql, curl on PATH; root; a release build.
set -euo pipefail
USERS=${USERS:-200000}; SECS=${SECS:-90}; RATE=${RATE:-200}; CLIENTS=${CLIENTS:-4}
PORT=55444; URL=postgres://postgres@127.0.0.1:$PORT/game; MPORT=19187
source "$(dirname "$0")/cluster.sh"
source "$(dirname "$0")/live.sh"
game_and_pgbench
echo "# surge: $USERS users, pgbench -R $RATE -c $CLIENTS for $SECS s, +$RATE in the middle third"
echo "# $(nproc) cores, PostgreSQL $(postgres --version | awk '{print $3}'), fsync on"
surge() {
  local name=$1 args=$2
  D="$W/surge-$name"; mkdir "$D"; echo; echo "## $name: decant run $args"
  (cd "$D" && exec "$DECANT" run --database-url $URL --spec "$W/decant.toml" --metrics-addr 127.0.0.1:$MPORT $args >daemon.out 2>daemon.err) &
  DP=$!
  sleep 2
  (cd "$D" && pgbench -h 127.0.0.1 -p $PORT -U postgres -R "$RATE" -c "$CLIENTS" -j 2 -T "$SECS" -l --log-prefix=base bench >base.out 2>&1) &
  BP=$!
  ( sleep $((SECS / 3)); cd "$D" && pgbench -h 127.0.0.1 -p $PORT -U postgres -R "$RATE" -c "$CLIENTS" -j 2 -T $((SECS / 3)) -l --log-prefix=extra bench >extra.out 2>&1 ) &
  EP=$!
  T0=$(date +%s)
  for i in $(seq 0 5 "$SECS"); do
    m=$(curl -s 127.0.0.1:$MPORT/metrics)
    n=$(awk '/^decant_users_migrated_total/ {print $2}' <<<"$m")
    o=$(awk '/^decant_others_transactions_per_second/ {printf "%.0f", $2}' <<<"$m")
    y=$(awk '/^decant_load_yield_share/ {printf "%.2f", $2}' <<<"$m")
    echo "$(( $(date +%s) - T0 )) ${n:-0} ${o:--} ${y:--}" >> "$D/migrated"
    sleep 5
  done
  wait "$BP" "$EP" || true
  kill -TERM "$DP" 2>/dev/null || true; wait "$DP" || true
  echo "slice(s)  load  daemon users/s  pgbench p99 (ms)  others' xacts/s  yield share (at the slice's end)"
  # pgbench log: client xact latency(us) script epoch_s epoch_us
  FIRST=$(cat "$D"/base.* | awk 'NR == 1 {print $5}')
  cat "$D"/base.* "$D"/extra.* 2>/dev/null | awk -v f="$FIRST" '{print int(($5 - f) / 5), $3}' | sort -k1,1n -k2,2n | awk '
    function flush() { if (n > 0) printf "%d %.1f\n", k, a[(int(n*0.99) > 0) ? int(n*0.99) : 1]/1000; n = 0 }
    $1 != k { flush(); k = $1 }
    { a[++n] = $2 }
    END { flush() }' > "$D/p99"
  awk 'NR > 1 {printf "%d %.0f %s %s\n", int(p / 5), ($2 - prev) / ($1 - p), $3, $4} {p = $1; prev = $2}' "$D/migrated" > "$D/rate"
  awk -v s="$SECS" 'FNR == NR {p99[$1] = $2; next}
    {load = ($1 * 5 >= s / 3 && $1 * 5 < 2 * s / 3) ? "2x" : "1x";
     printf "%4d-%-4d %4s  %14s  %16s  %15s  %s\n", $1 * 5, $1 * 5 + 5, load, $2, (($1 in p99) ? p99[$1] : "-"), $3, $4}' "$D/p99" "$D/rate"
  grep -hE "^(done|stopped|held|batch)" "$D/daemon.out" | sed 's/^/  /'
  # the daemon's mean users/s by third of the run (its slices' mean) and the
  # surge's third over the first
  awk -v s="$SECS" '{t = int($1 * 5 * 3 / s); if (t > 2) t = 2; sum[t] += $2; n[t]++}
    END {for (t = 0; t < 3; t++) m[t] = (n[t] ? sum[t] / n[t] : 0);
         printf "users/s by third: %.0f / %.0f / %.0f; the surge at %.2fx the first third\n", m[0], m[1], m[2], (m[0] ? m[1] / m[0] : 0)}' "$D/rate"
}

# VARIANTS: "name=args;name=args" run one after the other on the same
# database (each phase takes the next users), e.g.
# VARIANTS="off=--load-yield 0;on=;on2=;off2=--load-yield 0"
IFS=';' read -ra VS <<<"${VARIANTS:-default=${DAEMON_ARGS:-}}"
for v in "${VS[@]}"; do
  surge "${v%%=*}" "${v#*=}"; sleep 5
done
