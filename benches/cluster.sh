# Sourced by the bench scripts: a throwaway PostgreSQL cluster on 127.0.0.1
# port $PORT (set before sourcing) in a temporary directory $W, run as the
# postgres user, stopped and removed when the script exits; $DECANT is the
# release build (or $DECANT when set). Needs initdb and pg_ctl on PATH and root.
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DECANT=${DECANT:-$ROOT/target/release/decant}
W=$(mktemp -d /tmp/decant-bench.XXXXXX); chmod 777 "$W"
stop() { runuser -u postgres -- pg_ctl -D "$W/data" -m immediate stop >/dev/null 2>&1 || true; rm -rf "$W"; }
trap stop EXIT
mkdir "$W/data"; chown postgres "$W/data"
runuser -u postgres -- initdb -D "$W/data" -A trust -U postgres >/dev/null
cat >> "$W/data/postgresql.conf" <<C
port = $PORT
listen_addresses = '127.0.0.1'
unix_socket_directories = '$W'
shared_buffers = 512MB
C
runuser -u postgres -- pg_ctl -D "$W/data" -l "$W/server.log" -w start >/dev/null
