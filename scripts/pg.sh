#!/usr/bin/env bash
# pg.sh: a private PostgreSQL cluster in a directory, with Debian's initdb/pg_ctl.
#   pg.sh start DIR   initialise DIR/data on first use, start it (unix socket in DIR, no TCP),
#                     create database "saed"; prints the DATABASE_URL on stdout
#   pg.sh stop DIR    fast shutdown
#   pg.sh url DIR     print the DATABASE_URL of a started cluster
# As root the server runs as the "postgres" user (PostgreSQL refuses to run as root).
set -euo pipefail

cmd=${1:?usage: pg.sh start|stop|url DIR}
dir=${2:?usage: pg.sh start|stop|url DIR}
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)

bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
[ -x "$bindir/initdb" ] || { echo "pg.sh: Debian's postgresql package is not installed (no initdb)" >&2; exit 1; }

as_pg() {
    if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

# A port is only a socket name here (listen_addresses is empty), but pick one nobody uses
# on TCP either so that a later switch to TCP cannot collide.
free_port() {
    local p
    for p in $(seq 54330 54529); do
        [ -e "$dir/.s.PGSQL.$p" ] && continue
        (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null && continue
        echo "$p"; return 0
    done
    echo "pg.sh: no free port in 54330-54529" >&2; return 1
}

url() { echo "postgresql:///saed?host=$dir&port=$(cat "$dir/port")&user=postgres"; }

case "$cmd" in
start)
    if [ "$(id -u)" -eq 0 ]; then
        chown postgres: "$dir"
        runuser -u postgres -- test -x "$dir" || {
            echo "pg.sh: user postgres cannot reach $dir (a parent directory is not world-searchable)" >&2; exit 1; }
    fi
    if [ ! -f "$dir/data/PG_VERSION" ]; then
        as_pg "$bindir/initdb" -D "$dir/data" -A trust -U postgres -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 \
            || { cat "$dir/initdb.log" >&2; exit 1; }
    fi
    if as_pg "$bindir/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
        url; exit 0
    fi
    # Keep the port of an earlier start so that DATABASE_URLs handed out before stay valid.
    if [ ! -f "$dir/port" ] || (exec 3<>"/dev/tcp/127.0.0.1/$(cat "$dir/port")") 2>/dev/null; then
        free_port >"$dir/port.new"; mv "$dir/port.new" "$dir/port"
    fi
    [ "$(id -u)" -eq 0 ] && chown postgres: "$dir/port"
    as_pg "$bindir/pg_ctl" -D "$dir/data" -w -t 60 -l "$dir/server.log" \
        -o "-c listen_addresses= -k $dir -p $(cat "$dir/port") -c fsync=off -c max_connections=200" start >/dev/null \
        || { tail -n 20 "$dir/server.log" >&2; exit 1; }
    as_pg "$bindir/psql" -h "$dir" -p "$(cat "$dir/port")" -U postgres -d postgres -qtA \
        -c "SELECT 1 FROM pg_database WHERE datname='saed'" | grep -q 1 \
        || as_pg "$bindir/createdb" -h "$dir" -p "$(cat "$dir/port")" -U postgres saed
    url
    ;;
stop)
    [ -f "$dir/data/PG_VERSION" ] || exit 0
    as_pg "$bindir/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true
    ;;
url) url ;;
*) echo "usage: pg.sh start|stop|url DIR" >&2; exit 2 ;;
esac
