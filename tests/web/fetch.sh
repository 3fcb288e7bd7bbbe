#!/usr/bin/env bash
# fetch.sh [DIR]: fetches playwright-core (pinned; no dependencies of its own, no browser
# download: the tests drive Debian's chromium) with `npm pack` into DIR/playwright-core/ (default
# build/npm), for tests/web/feature_page.mjs. Idempotent. Exits 0 without npm (the test skips).
set -uo pipefail
cd "$(dirname "$0")/../.."
dir=${1:-build/npm}
ver=1.65.2
mkdir -p "$dir" || exit 1
[ -f "$dir/playwright-core/package.json" ] && grep -q "\"version\": \"$ver\"" "$dir/playwright-core/package.json" && exit 0
command -v npm >/dev/null || { echo "tests/web/fetch.sh: npm not found; the feature page test will skip" >&2; exit 0; }
tgz=playwright-core-$ver.tgz
[ -f "$dir/$tgz" ] || (cd "$dir" && npm pack --silent "playwright-core@$ver" >/dev/null) ||
    { echo "tests/web/fetch.sh: npm pack playwright-core@$ver failed" >&2; exit 1; }
rm -rf "$dir/playwright-core.tmp" && mkdir -p "$dir/playwright-core.tmp" &&
    tar xzf "$dir/$tgz" -C "$dir/playwright-core.tmp" --strip-components=1 &&
    rm -rf "$dir/playwright-core" && mv "$dir/playwright-core.tmp" "$dir/playwright-core" && rm -f "$dir/$tgz"
