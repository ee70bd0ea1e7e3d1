#!/usr/bin/env bash
# Make sure Debian's chromium is installed at /usr/bin/chromium (tests/test_report_browser.py opens the energy
# report's HTML page in it, headless). Does nothing when it is already there. On a fresh CI machine (Debian, root)
# it runs apt-get update + apt-get install -y chromium; without root it uses sudo -n when that works, otherwise it
# prints what to run and exits 1.
set -euo pipefail
CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
if [ -x "$CHROMIUM" ]; then
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "error: $CHROMIUM is missing and apt-get is not available; install Chromium and set CHROMIUM=/path/to/it" >&2
  exit 1
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    SUDO="sudo -n"
  else
    echo "error: $CHROMIUM is missing; run as root: apt-get update && apt-get install -y chromium" >&2
    exit 1
  fi
fi
echo "installing Debian's chromium (needed by tests/test_report_browser.py)" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends chromium
if [ ! -x "$CHROMIUM" ]; then
  echo "error: apt-get installed chromium but $CHROMIUM does not exist" >&2
  exit 1
fi
