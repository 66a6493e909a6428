#!/usr/bin/env bash
# Start (or stop) a throw-away PostgreSQL server on a loopback port for tests and benchmarks.
#   scripts/postgres.sh start   → installs Debian's postgresql if needed, prints the URL
#   scripts/postgres.sh stop
set -euo pipefail
PORT="${EFA_PG_PORT:-54329}"
DIR="${EFA_PG_DIR:-/tmp/efa-postgres-$PORT}"
URL="postgresql://postgres@127.0.0.1:$PORT/postgres"

as_owner() {
    if [ "$(id -u)" = "0" ]; then su postgres -s /bin/bash -c "$*"; else bash -c "$*"; fi
}

pg_bin() {
    ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1
}

case "${1:-start}" in
start)
    if [ -z "$(pg_bin)" ]; then
        echo "» Installiere PostgreSQL (Debian) ..." >&2
        (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql) >/dev/null
    fi
    BIN="$(pg_bin)"
    if [ ! -f "$DIR/PG_VERSION" ]; then
        mkdir -p "$DIR"
        [ "$(id -u)" = "0" ] && chown postgres "$DIR"
        as_owner "$BIN/initdb -D $DIR -A trust -U postgres -E UTF8 --locale=C.UTF-8" >/dev/null
    fi
    if ! as_owner "$BIN/pg_ctl -D $DIR status" >/dev/null 2>&1; then
        as_owner "$BIN/pg_ctl -D $DIR -l $DIR/server.log -w -o \"-p $PORT -k /tmp -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200\" start" >/dev/null
    fi
    echo "$URL"
    ;;
stop)
    BIN="$(pg_bin)"
    if [ -n "$BIN" ] && [ -f "$DIR/PG_VERSION" ]; then
        as_owner "$BIN/pg_ctl -D $DIR -m fast stop" >/dev/null 2>&1 || true
        rm -rf "$DIR"
    fi
    ;;
*)
    echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
