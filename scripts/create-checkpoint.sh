#!/usr/bin/env bash
# The seed's checkpoint script, kept for the users who know it:
#   ./scripts/create-checkpoint.sh database --name my-backup
#   ./scripts/create-checkpoint.sh deployment
#   ./scripts/create-checkpoint.sh all
# It runs `warroom create KIND [OPTIONS]` (see `warroom create --help`) from any directory,
# with the project's ./.venv when there is one, else the `warroom` on PATH. Exit codes are
# warroom's; with no KIND it prints the usage and exits 2.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/warroom-command.sh"
usage="usage: $0 database|deployment|all [OPTIONS]   (e.g. $0 database --name my-backup)"
if [ $# -eq 0 ]; then
  echo "error: name what to create; $usage" >&2
  exit 2
fi
if [ "$1" = "-h" ] || [ "$1" = "--help" ]; then
  echo "$usage"
  exec "${warroom[@]}" create --help
fi
exec "${warroom[@]}" create "$@"
