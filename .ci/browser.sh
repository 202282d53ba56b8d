#!/usr/bin/env bash
# Makes sure Debian's Chromium is installed for the browser tests (test/browser, playwright-core
# drives it through executablePath; no browser download).
set -euo pipefail

echo "== Chromium"
if [ ! -x /usr/bin/chromium ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
/usr/bin/chromium --version
