#!/usr/bin/env bash
# System packages the tests need beyond npm (run by `npm test` as its pretest step).
#   chromium: the real browser the page test (test/web.test.ts) drives through playwright-core.
# Installs what is missing with apt-get when run as root on a Debian-like machine; otherwise says what to do.
set -euo pipefail

PACKAGES=(chromium)

if ! command -v dpkg >/dev/null 2>&1; then
  echo "system-deps: not a Debian-like system; install Chromium yourself and set DITTO_CHROMIUM=/path/to/chromium" >&2
  exit 0
fi

missing=()
for pkg in "${PACKAGES[@]}"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ -n "${DITTO_CHROMIUM:-}" ] && [ "${missing[*]}" = "chromium" ]; then
  exit 0 # the browser test uses the Chromium named there
fi

if [ "$(id -u)" -eq 0 ]; then
  echo "system-deps: installing ${missing[*]} with apt-get" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  echo "system-deps: missing Debian packages: ${missing[*]}" >&2
  echo "  install them with: sudo apt-get install -y ${missing[*]}" >&2
  echo "  (or set DITTO_CHROMIUM=/path/to/chromium for the browser test)" >&2
fi
