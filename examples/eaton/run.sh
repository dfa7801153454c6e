#!/usr/bin/env bash
# Runs Haven on the bundled example school: SQLite, a local Maildir as the intake mailbox, and
# alerts written to a Maildir instead of being sent. Every run starts from a fresh var/:
#   var/haven.db                 the database
#   var/secrets/                 the encryption, reply-signing and audit keys (mode 0600)
#   var/mail/intake/new/         the intake mailbox: drop .eml files here while Haven runs
#   var/outbox/new/              the alerts Haven "sent"
# Stop with Ctrl-C (SIGTERM/SIGINT: Haven finishes the message in hand and exits 0).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cd "$root"
cargo build --quiet --bin haven
haven="$root/target/debug/haven"

cd "$here"
rm -rf var
mkdir -p var/mail/intake/{new,cur,tmp} var/outbox var/secrets
cp mail/intake/new/*.eml var/mail/intake/new/
# Fresh keys for this run; never committed.
( umask 077
  head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >var/secrets/haven.key
  head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >var/secrets/reply.key
  head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >var/secrets/audit.key )

"$haven" rules check --config haven.toml
"$haven" directory import --config haven.toml \
  --pupils directory/pupils.csv --staff directory/staff.csv --contacts directory/contacts.csv
"$haven" run --config haven.toml 2>var/haven.log &
daemon=$!
trap 'kill -TERM $daemon 2>/dev/null; wait $daemon' INT TERM
# Wait until every example message has been recorded (the daemon keeps running).
for _ in $(seq 100); do
  [[ -z $(ls var/mail/intake/new) ]] && break
  sleep 0.2
done
echo
"$haven" status --config haven.toml
echo
"$haven" chronology "Jane Smith" --config haven.toml --as dsl@eaton.sch.example
echo
echo "Haven is still running on the example school (log: $here/var/haven.log). In another terminal, from $here:"
echo "  $haven status --config haven.toml"
echo "  $haven messages --config haven.toml        # every message and why it is in its state"
echo "  $haven chronology \"Amira Khan\" --config haven.toml --as dsl@eaton.sch.example"
echo "  ls var/outbox/new/                        # the alerts Haven sent"
echo "  cp some.eml var/mail/intake/new/          # file another message"
echo "Stop with Ctrl-C."
wait $daemon
