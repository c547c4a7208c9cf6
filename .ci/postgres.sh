#!/usr/bin/env bash
# A throwaway PostgreSQL server on loopback for the study tests (tests/test_study.py).
#
#   url=$(.ci/postgres.sh start)          # installs postgresql if needed, prints the URL
#   AUXLAB_TEST_POSTGRES_URL=$url pytest tests/test_study.py -k postgres
#   .ci/postgres.sh stop                   # stops the server and removes its data
#
# Settings (environment): AUXLAB_PG_PORT (54329), AUXLAB_PG_DATA (/tmp/auxlab-pg).
# Everything but the URL goes to stderr, so `url=$(...)` captures the URL only.
set -euo pipefail

PORT="${AUXLAB_PG_PORT:-54329}"
DATA="${AUXLAB_PG_DATA:-/tmp/auxlab-pg}"
SOCK="$DATA/socket"
DB=auxlab_test
ROLE=auxlab
PASSWORD=auxlab

log() { echo "postgres.sh: $*" >&2; }

bindir() {
    local d
    d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
    if [ -n "$d" ] && [ -x "$d/initdb" ]; then echo "$d"; fi
}

# initdb and the server refuse to run as root: run them as the postgres user.
as_pg() {
    if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

start() {
    local bin
    bin=$(bindir)
    if [ -z "$bin" ]; then
        log "installing postgresql from the distribution"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq >&2
        apt-get install -y -qq postgresql >&2
        bin=$(bindir)
    fi
    [ -n "$bin" ] || { log "no PostgreSQL binaries after installing"; exit 1; }
    if [ ! -f "$DATA/PG_VERSION" ]; then
        mkdir -p "$DATA"
        if [ "$(id -u)" = 0 ]; then chown postgres:postgres "$DATA"; fi
        log "initdb $DATA"
        as_pg "$bin/initdb" -D "$DATA" -U postgres --auth-local=trust \
            --auth-host=scram-sha-256 -E UTF8 >&2
        as_pg mkdir -p "$SOCK"
    fi
    if as_pg "$bin/pg_ctl" -D "$DATA" status >/dev/null 2>&1; then
        log "already running"
    else
        log "starting on 127.0.0.1:$PORT"
        as_pg "$bin/pg_ctl" -D "$DATA" -l "$DATA/server.log" -w -t 60 \
            -o "-c listen_addresses=127.0.0.1 -p $PORT -k $SOCK" start >&2
    fi
    local psql=("$bin/psql" -h "$SOCK" -p "$PORT" -U postgres -v ON_ERROR_STOP=1 -qtA)
    if [ "$(as_pg "${psql[@]}" -d postgres -c "SELECT 1 FROM pg_roles WHERE rolname='$ROLE'")" != 1 ]; then
        as_pg "${psql[@]}" -d postgres -c "CREATE ROLE $ROLE LOGIN PASSWORD '$PASSWORD'" >&2
    fi
    if [ "$(as_pg "${psql[@]}" -d postgres -c "SELECT 1 FROM pg_database WHERE datname='$DB'")" != 1 ]; then
        as_pg "${psql[@]}" -d postgres -c "CREATE DATABASE $DB OWNER $ROLE" >&2
    fi
    echo "postgresql://$ROLE:$PASSWORD@127.0.0.1:$PORT/$DB"
}

stop() {
    local bin
    bin=$(bindir)
    if [ -n "$bin" ] && [ -f "$DATA/PG_VERSION" ]; then
        as_pg "$bin/pg_ctl" -D "$DATA" -m fast -w stop >&2 || true
    fi
    rm -rf "$DATA"
    log "stopped"
}

case "${1:-start}" in
    start) start ;;
    stop) stop ;;
    *) echo "usage: $0 [start|stop]" >&2; exit 2 ;;
esac
