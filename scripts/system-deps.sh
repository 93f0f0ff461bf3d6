#!/usr/bin/env bash
# Debian packages the tests and services need beyond npm. Installs the missing ones with apt-get when run as root;
# otherwise prints the command to run. Fast and silent when everything is present (it runs before every npm test).
set -euo pipefail

# command → Debian package
PACKAGES=(
  "redis-server:redis-server" # ditto serve / ditto worker queues (tests start a private one)
  "chromium:chromium"         # the real browser test/web.test.ts drives through playwright-core
)

missing=()
for entry in "${PACKAGES[@]}"; do
  command="${entry%%:*}"
  # A Chromium named by DITTO_CHROMIUM replaces the Debian one for the browser test.
  [ "$command" = chromium ] && [ -n "${DITTO_CHROMIUM:-}" ] && continue
  command -v "$command" >/dev/null 2>&1 || missing+=("${entry#*:}")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "system-deps: installing ${missing[*]} with apt-get" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2 || true
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
  # Debian starts a system redis-server on 6379 after install; the tests start their own on a free port.
  exit 0
fi

echo "system-deps: missing Debian packages: ${missing[*]}" >&2
echo "  install them with: sudo apt-get install ${missing[*]}" >&2
echo "  (on other systems, install the same programs with your package manager;" >&2
echo "   for the browser test, DITTO_CHROMIUM=/path/to/chromium names any Chromium)" >&2
exit 1
