#!/usr/bin/env bash
# run.sh: what `make run` does after building. Uses DATABASE_URL when set; otherwise a private
# PostgreSQL cluster under var/pg (created on first use, reused after). Applies migrations,
# registers the demo model and SAEs shipped in tests/data, and serves on SAED_LISTEN (127.0.0.1:8080).
# Ctrl-C stops saed gracefully, then the private cluster.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=build/saed
own_pg=0
if [ -z "${DATABASE_URL:-}" ]; then
    DATABASE_URL=$(bash scripts/pg.sh start var/pg)
    own_pg=1
    echo "saed: private PostgreSQL in var/pg ($DATABASE_URL)"
fi
export DATABASE_URL
export SAED_DATA_ROOTS=${SAED_DATA_ROOTS:-$PWD/tests/data}

saed_pid=
stop() {
    trap - INT TERM EXIT
    if [ -n "$saed_pid" ] && kill -0 "$saed_pid" 2>/dev/null; then
        kill -TERM "$saed_pid" 2>/dev/null || true
        wait "$saed_pid" 2>/dev/null || true
    fi
    if [ "$own_pg" = 1 ]; then
        bash scripts/pg.sh stop var/pg
        echo "saed: private PostgreSQL stopped"
    fi
}
trap stop INT TERM EXIT

"$bin" migrate
# Demo data: the tiny GPT-2 from tests/data (exit status 3 = already registered).
"$bin" import-model --id tiny-a --path tests/data/models/tiny-a --display-name "tiny-a (demo GPT-2)" >/dev/null \
    || [ $? -eq 3 ]
for sae in standard jumprelu topk; do
    "$bin" import-sae --model tiny-a --path "tests/data/sae/tiny-a-res-$sae" --set-name "$sae" >/dev/null || [ $? -eq 3 ]
done
echo "saed: serving on http://${SAED_LISTEN:-127.0.0.1:8080} — try: curl -s localhost:8080/api/models"
"$bin" serve &
saed_pid=$!
wait "$saed_pid" || true
