#!/usr/bin/env bash
# Makes sure the programs the tests and the demo run for real are installed: installs
# Debian's packages with apt-get when one is missing and we are root, otherwise prints a
# one-line hint. With --require, a missing program is an error (exit 1).
set -euo pipefail
require=0
if [ "${1:-}" = "--require" ]; then require=1; shift; fi

# Each argument is a program, or program=package when Debian's package is named otherwise
# (chromedriver=chromium-driver).
missing=()
for arg in "$@"; do
  prog=${arg%%=*}
  pkg=${arg#*=}
  if ! command -v "$prog" >/dev/null 2>&1 && [ ! -x "/usr/sbin/$prog" ] && [ ! -x "/usr/bin/$prog" ]; then
    missing+=("$pkg")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

# docker-compose: only its `config` check runs in the tests, no Docker engine. chromium and
# chromedriver: the status page is looked at in headless Chromium.
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing ${missing[*]} with apt-get" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # Debian starts redis-server as a service on install; the tests start their own.
  if command -v systemctl >/dev/null 2>&1; then systemctl stop redis-server >/dev/null 2>&1 || true; fi
  exit 0
fi

echo "missing: ${missing[*]} — install with: sudo apt-get install ${missing[*]}" >&2
exit $require
