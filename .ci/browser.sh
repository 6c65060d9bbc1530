#!/usr/bin/env bash
# Install Debian's Chromium for the Playwright browser tests (tests/test_browser*.py).
#
#   bash .ci/browser.sh           # as root (or with sudo) on Debian 12; idempotent
#
# `playwright install` downloads its own browsers and cannot run offline; the tests drive
# /usr/lib/chromium/chromium instead (override with MMDEMO_CHROMIUM).
set -euo pipefail

binary="${MMDEMO_CHROMIUM:-/usr/lib/chromium/chromium}"
if [ -x "$binary" ]; then
    echo "browser.sh: $binary is installed"
    exit 0
fi

as_root=()
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || { echo "browser.sh: run as root (or install sudo)" >&2; exit 1; }
    as_root=(sudo)
fi

echo "browser.sh: installing chromium" >&2
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
[ -x "$binary" ] || { echo "browser.sh: $binary missing after the install" >&2; exit 1; }
"$binary" --version || true
