#!/usr/bin/env bash
# api.sh: `make bench-api`. GET /api/feature under load on loopback: a private PostgreSQL, a
# dashboard of SAED_BENCH_FEATURES (4096) features built by a real dashboard job (a random SAE
# on tests/data/models/tiny-a, 256 prompts of 64 tokens), then wrk over random feature indices:
#   1. cold: the cache starts empty (every feature's first request reads PostgreSQL),
#   2. warm: the same load again (the steady state: responses come from the feature cache),
#   3. paced: 50 connections that each wait 4 ms between requests (about 10k req/s), for the
#      latency at that rate rather than at saturation,
#   4. database only: saed restarted with --feature-cache 0 (every request is a round trip).
# Prints req/s and latency percentiles for each. Needs wrk (apt-get install wrk; installed
# here when run as root). Knobs: SAED_BENCH_DURATION (10s), SAED_BENCH_CONNECTIONS (32),
# SAED_BENCH_THREADS (2), SAED_BENCH_FEATURES (4096), BUILD (build).
set -euo pipefail
cd "$(dirname "$0")/.."

BUILD=${BUILD:-build}
DURATION=${SAED_BENCH_DURATION:-10s}
CONNS=${SAED_BENCH_CONNECTIONS:-32}
THREADS=${SAED_BENCH_THREADS:-2}
export SAED_BENCH_FEATURES=${SAED_BENCH_FEATURES:-4096}

if ! command -v wrk >/dev/null; then
    if [ "$(id -u)" -eq 0 ]; then
        echo "bench-api: installing wrk" >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null || {
            apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; }
    else
        echo "bench-api: wrk is missing; run as root: apt-get install -y wrk" >&2
        exit 1
    fi
fi

work=$(mktemp -d /tmp/saed-bench-api-XXXXXX)
chmod 755 "$work"
saed_pid=
cleanup() {
    if [ -n "$saed_pid" ]; then kill "$saed_pid" 2>/dev/null || true; wait "$saed_pid" 2>/dev/null || true; fi
    bash scripts/pg.sh stop "$work/pg" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

port=$(( 20000 + RANDOM % 20000 ))
base="http://127.0.0.1:$port"
url=$(bash scripts/pg.sh start "$work/pg")

start_saed() {
    "$BUILD/saed" serve --database-url "$url" --migrate --listen "127.0.0.1:$port" --data-roots "$PWD/tests/data:$work" \
        --access-log off "$@" >>"$work/saed.log" 2>&1 &
    saed_pid=$!
    for _ in $(seq 100); do curl -sf "$base/healthz" >/dev/null && return 0; sleep 0.1; done
    echo "bench-api: saed did not start:" >&2; tail -5 "$work/saed.log" >&2; exit 1
}
stop_saed() { kill "$saed_pid"; wait "$saed_pid" 2>/dev/null || true; saed_pid=; }
post() { curl -sf -X POST "$base$1" -H 'Content-Type: application/json' -d "$2"; }

# The SAE and a corpus of 2000 documents of 80 words (deterministic).
"$BUILD/bench/api-sae" --model tests/data/models/tiny-a --out "$work/sae" --d-sae "$SAED_BENCH_FEATURES" --layer 1 >/dev/null
awk 'BEGIN { srand(7); split("the river bank money cat sat on mat quick brown fox jumps over lazy dog and then a very long story about Paris London numbers tree house water light city music", w, " ");
     for (d = 0; d < 2000; d++) { s = ""; for (i = 0; i < 80; i++) s = s (i ? " " : "") (rand() < 0.25 ? "w" int(rand() * 500) : w[1 + int(rand() * 36)]); print s } }' \
    >"$work/corpus.txt"

start_saed --workers 1
post /api/models '{"id":"tiny-a","path":"tests/data/models/tiny-a"}' >/dev/null
post /api/saes "{\"modelId\":\"tiny-a\",\"path\":\"$work/sae\",\"setName\":\"bench\"}" >/dev/null
t0=$(date +%s.%N)
post /api/dashboard-jobs "{\"modelId\":\"tiny-a\",\"saeId\":\"1-bench\",\"dataset\":{\"path\":\"$work/corpus.txt\"},\"nPrompts\":256,\"nTokensInPrompt\":64,\"seed\":1}" >/dev/null
while :; do
    state=$(curl -sf "$base/api/dashboard-jobs/1" | sed -n 's/.*"state":"\([a-z]*\)".*/\1/p')
    case "$state" in completed) break ;; failed|cancelled) echo "bench-api: the dashboard job $state" >&2; exit 1 ;; esac
    sleep 1
done
t1=$(date +%s.%N)
psql() { command psql "$url" -qtAc "$1"; }
nf=$(psql "SELECT count(*) FROM features WHERE layer = '1-bench'")
na=$(psql "SELECT count(*) FROM activations WHERE layer = '1-bench'")
echo "dashboard: $nf features, $na activations (64-token windows) from one job in $(awk "BEGIN { printf \"%.1f\", $t1 - $t0 }") s"
echo "load: wrk -t$THREADS -c$CONNS -d$DURATION, GET /api/feature/tiny-a/1-bench/{random index}, loopback, $(nproc) CPUs shared by wrk, saed and PostgreSQL"

run() {
    wrk -t"$THREADS" -c"${1:-$CONNS}" -d"$DURATION" --latency -s bench/api.lua "$base" | sed -n 's/^RESULT //p'
}
printf '%-24s %s\n' "cold (cache empty):" "$(run)"
printf '%-24s %s\n' "warm (feature cache):" "$(run)"
printf '%-24s %s\n' "warm, paced ~10k req/s:" "$(SAED_BENCH_DELAY_MS=4 run 50)"
hits=$(curl -sf "$base/metrics" | sed -n 's/^saed_feature_cache_requests_total{result="hit"} //p')
miss=$(curl -sf "$base/metrics" | sed -n 's/^saed_feature_cache_requests_total{result="miss"} //p')
stop_saed
start_saed --workers 0 --feature-cache 0
printf '%-24s %s\n' "database only:" "$(run)"
echo "feature cache over the two cached runs: $hits hits, $miss misses"
