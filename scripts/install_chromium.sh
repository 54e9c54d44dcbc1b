#!/usr/bin/env bash
# Installs headless Chromium (Debian's `chromium`) for the browser tests, where it is missing and
# this machine lets us: root with apt-get. Safe to run again; says why when it cannot.
set -uo pipefail
for name in chromium chromium-browser google-chrome; do
    command -v "$name" >/dev/null && exit 0
done
if ! command -v apt-get >/dev/null; then
    echo "cannot install chromium: no apt-get on this machine (install Chromium yourself)" >&2
    exit 1
fi
if [ "$(id -u)" != 0 ]; then
    echo "cannot install chromium: apt-get needs root (run: sudo apt-get install -y chromium)" >&2
    exit 1
fi
apt() { DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 -qq "$@" >/dev/null; }
# The package lists may be missing (a fresh container) or stale: update once if the first try fails.
apt install -y chromium || { apt update && apt install -y chromium; } || {
    echo "cannot install chromium: apt-get install chromium failed" >&2
    exit 1
}
