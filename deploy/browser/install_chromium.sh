#!/usr/bin/env bash
# Headless Chromium and its WebDriver for the browser test, from the OS packages (as root).
set -euo pipefail
if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then exit 0; fi
[ "$(id -u)" = 0 ] || { echo "chromium/chromedriver missing and this is not root: install the chromium and chromium-driver packages" >&2; exit 1; }
bash "$(dirname "$0")/../lib/os_packages.sh" chromium chromium-driver
