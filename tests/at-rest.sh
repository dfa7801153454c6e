#!/usr/bin/env bash
# A stolen database reveals nothing. Fills a database with the example school (examples/eaton:
# directory import, every intake message filed, an outcome recorded, the outbox delivered to its
# Maildir), stops Haven, takes what a thief would (the SQLite files as they are on disk, or a
# pg_dump of the PostgreSQL database, and the storage folder, without the key), and searches
# those bytes for every pupil's first, last and preferred name, every contact's address and
# name, every subject, note, body line, attachment name, sender and the outcome text.
#
#   tests/at-rest.sh HAVEN_BINARY [postgres://…/EMPTY_DATABASE]
#
# Without a URL it uses SQLite in the work folder. Exit 0: nothing found; 1: something found
# (each hit is listed); 2: the example did not file as expected. Run by tests/at_rest.rs.
# HAVEN_AT_REST_DIR keeps the work folder there for inspection (default: a temp dir, removed).
set -euo pipefail
export LC_ALL=C

haven=$(realpath "$1")
pg_url=${2:-}
here=$(cd "$(dirname "$0")" && pwd)
example="$here/../examples/eaton"
if [[ -n ${HAVEN_AT_REST_DIR:-} ]]; then
  work=$HAVEN_AT_REST_DIR; rm -rf "$work"; mkdir -p "$work"
else
  work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
fi
fail() { echo "at-rest: $*" >&2; exit 2; }
for tool in jq perl sqlite3 pg_dump; do
  command -v "$tool" >/dev/null || fail "needs $tool (tests/run.sh installs jq, sqlite3 and postgresql-client)"
done

# --- an installation of the example school -------------------------------------------------
cd "$work"
mkdir -p var/mail/intake/{new,cur,tmp} var/outbox var/secrets var/data stolen
cp -r "$example/directory" "$example/terms.toml" .
( umask 077
  head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >var/secrets/haven.key
  head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >var/secrets/reply.key
  head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >var/secrets/audit.key )
db_url=${pg_url:-sqlite://var/haven.db}
sed -e "s|^url = .*|url = \"$db_url\"|" -e "s|^dir = \"../../rules\"|dir = \"$here/../rules\"|" \
  "$example/haven.toml" >haven.toml
h() { "$haven" "$@" --config haven.toml; }

h directory import --pupils directory/pupils.csv --staff directory/staff.csv --contacts directory/contacts.csv >/dev/null
"$haven" run --config haven.toml 2>var/haven.log &
daemon=$!
stop() { kill -TERM "$daemon" 2>/dev/null || true; wait "$daemon" || true; }
for f in "$example"/mail/intake/new/*.eml; do
  cp "$f" var/mail/intake/tmp/ && mv "var/mail/intake/tmp/$(basename "$f")" var/mail/intake/new/
done
settled() {
  local s; s=$(h status --json) || return 1
  [[ -z $(ls var/mail/intake/new) ]] &&
    [[ $(jq '.messages | add' <<<"$s") -ge 16 ]] && [[ $(jq '.outbox.pending' <<<"$s") -eq 0 ]]
}
for _ in $(seq 300); do settled && break; sleep 0.2; done
settled || { stop; cat var/haven.log >&2; fail "the example was not filed and delivered within 60 s"; }

# The outcome of Tom Price's disclosure (the incident with an outcome due).
as=(--as dsl@eaton.sch.example)
tom=$(h chronology "Tom Price" --json "${as[@]}" | jq -r '[.incidents[].incident] | first')
[[ $tom =~ ^[0-9]+$ ]] || { stop; fail "no incident filed on Tom Price"; }
outcome="Referred to the MASH after the home visit; mum agreed a safety plan with Mrs Ofori"
h outcome "$tom" "$outcome" --by dsl@eaton.sch.example >/dev/null
# A new alert or reminder would be pending now; let the outbox deliver it too.
for _ in $(seq 100); do settled && break; sleep 0.2; done

# --- what must not be found, gathered before the theft ---------------------------------------
terms=$work/terms
: >"$terms"
tail -n +2 directory/pupils.csv | cut -d, -f2,3,4 | tr ',' '\n' >>"$terms"
tail -n +2 directory/contacts.csv | cut -d, -f1,2 | tr ',' '\n' >>"$terms"
tail -n +2 directory/pupils.csv | cut -d, -f2,3 | tr ',' ' ' >>"$terms"
printf '%s\n' "$outcome" >>"$terms"
grep -h '^Subject:' "$example"/mail/intake/new/*.eml | sed 's/^Subject: *//' >>"$terms"
# What Haven read from the messages: notes, subjects, senders, attachment names, body lines.
while IFS=, read -r _ first last _; do
  h chronology "$first $last" --json "${as[@]}" |
    jq -r '.incidents[] | (.note, .original_subject, .original_from, .outcome, (.attachments[]?), ((.body // "") | split("\n")[])) | select(. != null)'
done < <(tail -n +2 directory/pupils.csv) |
  sed -e 's/^[> ]*//' -e 's/[[:space:]]*$//' >>"$terms"
grep -q 'body-map.pdf' "$terms" || { stop; fail "the chronologies did not show the example's attachments"; }
grep -qF "$outcome" <(h chronology "Tom Price" --json "${as[@]}") || { stop; fail "the outcome was not recorded"; }
stop

# Staff names and roles are kept in clear (the school's published staff list), so a body line
# that is only a signature ("Nadia", "SENCo") is not searched. Three-letter names (Tom, Ali,
# Kai…) are searched as whole words; shorter lines (an initial, "Hi") are not. Each term once.
{ tail -n +2 directory/staff.csv | cut -d, -f2,3,4 | tr ',;' '\n\n'; } | tr 'A-Z' 'a-z' | sort -u >"$work/clear"
awk 'length($0) >= 3' "$terms" | sort -u | awk 'NR == FNR { clear[$0]; next } !(tolower($0) in clear)' "$work/clear" - >"$terms.u"

# --- the theft: the database as stored, and the storage folder --------------------------------
if [[ -n $pg_url ]]; then
  pg_dump --no-owner "$pg_url" >stolen/dump.sql
else
  cp var/haven.db* stolen/
  # The same file as rows (sealed blobs shown as hex), so short names are searched in every
  # value without random bytes of ciphertext standing in for them.
  sqlite3 stolen/haven.db .dump >stolen/dump.sql
fi
cp -r var/data stolen/storage

# Sealed text (enc1: + base64) is opaque; drop it so its letters cannot pass for a name.
mkdir -p searched
for f in $(cd stolen && find . -type f); do
  mkdir -p "searched/$(dirname "$f")"
  perl -0777 -pe 's{enc1:[A-Za-z0-9+/=]+}{enc1:}g' "stolen/$f" >"searched/$f"
done

# The search works: what is meant to stay in clear is found (a staff address, a category).
for clear in dsl@eaton.sch.example safeguarding; do
  grep -rqaiF "$clear" searched || fail "the search finds nothing at all (not even '$clear'): is the copy empty?"
done

found=0
while IFS= read -r term; do
  # Binary files (the SQLite file itself holds sealed bytes) are searched for terms of five
  # characters or more; every file's text, and the row dump, for every term.
  for f in $(cd searched && find . -type f); do
    if [[ ${#term} -lt 5 && $f == *haven.db* ]]; then continue; fi
    if hit=$(grep -aioFw -m1 -- "$term" "searched/$f"); then
      echo "FOUND in ${f#./}: $term (as \"$hit\")"
      found=1
    fi
  done
done <"$terms.u"
n=$(wc -l <"$terms.u")
if [[ $found -eq 1 ]]; then
  echo "at-rest: a copy of the database and storage folder shows the text above" >&2
  exit 1
fi
echo "at-rest: searched $(cd stolen && find . -type f | wc -l) files ($(du -sk stolen | cut -f1) KB) for $n names, addresses, subjects, notes, body lines and the outcome: nothing found"
