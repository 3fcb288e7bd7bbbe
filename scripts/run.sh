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
# Demo corpus: English text every Debian machine has, one paragraph per line.
mkdir -p var/demo
if [ ! -s var/demo/corpus.txt ]; then
    cat /usr/share/common-licenses/* 2>/dev/null | awk 'BEGIN{RS=""} {gsub(/[ \t\n]+/, " "); print}' > var/demo/corpus.txt || true
fi
export SAED_DATA_ROOTS=${SAED_DATA_ROOTS:-$PWD/tests/data:$PWD/var/demo}

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
# Demo data: the tiny GPT-2 and its three SAEs from tests/data; exit status 3 = already there.
quiet_import() {
    local out rc=0
    out=$("$bin" "$@" 2>&1 >/dev/null) || rc=$?
    if [ "$rc" -ne 0 ] && [ "$rc" -ne 3 ]; then echo "$out" >&2; return "$rc"; fi
}
quiet_import import-model --id tiny-a --path tests/data/models/tiny-a --display-name "tiny-a (demo GPT-2)"
for sae in standard jumprelu topk; do
    quiet_import import-sae --model tiny-a --path "tests/data/sae/tiny-a-res-$sae" --set-name "$sae"
done
echo "saed: serving on http://${SAED_LISTEN:-127.0.0.1:8080} — try: curl -s localhost:8080/api/models"
"$bin" serve &
saed_pid=$!
# First start: queue a demo dashboard job so a newcomer sees a finished dashboard.
listen=${SAED_LISTEN:-127.0.0.1:8080}
keys=${SAED_API_KEYS:-}
key=${keys%%,*}
for _ in $(seq 50); do curl -sf "http://$listen/readyz" >/dev/null && break; sleep 0.2; done
if [ -s var/demo/corpus.txt ] && [ "$(curl -s "http://$listen/api/dashboard-jobs?modelId=tiny-a")" = "[]" ]; then
    curl -s -X POST "http://$listen/api/dashboard-jobs" -H 'Content-Type: application/json' ${key:+-H "x-api-key: $key"} \
        -d "{\"modelId\":\"tiny-a\",\"saeId\":\"1-jumprelu\",\"dataset\":{\"path\":\"$PWD/var/demo/corpus.txt\"},\"nPrompts\":512,\"nTokensInPrompt\":64}" \
        >/dev/null && echo "saed: queued a demo dashboard job: curl -s http://$listen/api/dashboard-jobs/1"
fi
wait "$saed_pid" || true
