#!/usr/bin/env bash
# The seed's self-test of the checkpoint system: workflow, database backup, verify, restore into
# a scratch database and deployment validation, one PASS/FAIL line each on stdout (exit 1 if any
# fails). It works in a temporary repository; the database is DATABASE_URL when set, else an
# example SQLite database. Same as `warroom selftest`; runs from any directory.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/warroom-command.sh"
exec "${warroom[@]}" selftest "$@"
