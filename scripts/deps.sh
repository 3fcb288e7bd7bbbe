#!/usr/bin/env bash
# deps.sh [--test] [--list]: make sure the Debian packages saed builds, tests and runs with are
# installed. As root it installs what is missing with apt-get; otherwise it prints the one
# command to run and exits 1. --test adds the test-only packages (`make test`): chromium for
# the feature page test (tests/web/; node comes from tests/run.sh). `--list` prints the names only.
set -euo pipefail

PKGS=(gcc make pkg-config curl ca-certificates
      libmicrohttpd-dev libjansson-dev libpq-dev libcurl4-openssl-dev libuv1-dev
      libopenblas-dev zlib1g-dev libyaml-dev postgresql)
TEST_PKGS=(chromium)

list=0
for a in "$@"; do
    case "$a" in
        --test) PKGS+=("${TEST_PKGS[@]}") ;;
        --list) list=1 ;;
        *) echo "deps.sh: unknown option $a" >&2; exit 2 ;;
    esac
done
if [ "$list" = 1 ]; then printf '%s\n' "${PKGS[@]}"; exit 0; fi

missing=()
for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
    echo "saed: missing Debian packages: ${missing[*]}" >&2
    echo "run as root:  apt-get update && apt-get install -y ${missing[*]}" >&2
    exit 1
fi
echo "saed: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
