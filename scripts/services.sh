#!/usr/bin/env bash
# Makes sure the local PostgreSQL the integration tests use is up (127.0.0.1:5432, trust auth).
# Where no PostgreSQL is installed the PostgreSQL tests skip and say why.
# Also installs headless Chromium for the browser tests where it is missing (they skip, saying why,
# where it cannot be installed).
set -uo pipefail
if command -v pg_isready >/dev/null && ! pg_isready -q -h 127.0.0.1 -p 5432; then
    if command -v pg_ctlcluster >/dev/null; then
        version=$(ls /etc/postgresql 2>/dev/null | head -n 1)
        [ -n "$version" ] && pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
        for _ in $(seq 1 20); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 0.5; done
    fi
fi
bash "$(dirname "$0")/install_chromium.sh" || true
exit 0
