#!/usr/bin/env bash
# The seed's checkpoint script, kept for the users who know it:
#   ./scripts/create-checkpoint.sh database --name my-backup
# It runs `warroom create KIND [OPTIONS]` (see `warroom create --help`), with the project's
# ./.venv when there is one, else the `warroom` on PATH. Exit codes are warroom's.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [ $# -eq 0 ] || [ "$1" = "-h" ] || [ "$1" = "--help" ]; then
  echo "usage: $0 KIND [OPTIONS]   (e.g. $0 database --name my-backup)" >&2
  exec "${WARROOM:-warroom}" create --help
fi
if [ -x "$root/.venv/bin/warroom" ]; then
  exec "$root/.venv/bin/warroom" create "$@"
fi
exec warroom create "$@"
