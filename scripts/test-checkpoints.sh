#!/usr/bin/env bash
# The seed's self-test of the checkpoint system: workflow, database backup, verify, restore into
# a scratch database and deployment validation, one PASS/FAIL line each (exit 1 if any fails).
# It works in a temporary repository; the database is DATABASE_URL when set, else an example
# SQLite database. Same as `warroom selftest`.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [ -x "$root/.venv/bin/warroom" ]; then
  exec "$root/.venv/bin/warroom" selftest "$@"
fi
exec warroom selftest "$@"
