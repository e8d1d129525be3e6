#!/usr/bin/env bash
# Creates ./.venv (if needed) and installs warroom into it with the given extras.
# Usage: scripts/bootstrap.sh [EXTRAS]    e.g. scripts/bootstrap.sh test
# PYTHON (default python3) is the interpreter, VENV (default ./.venv) the environment's directory.
# Sourced by run.sh and test.sh; safe to run again (it only installs what changed).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
extras="${1:-}"
python="${PYTHON:-python3}"
venv="${VENV:-$root/.venv}"
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "error: warroom needs Python 3.11 or newer ($python is $("$python" --version 2>&1))" >&2
  exit 2
fi
if [ ! -x "$venv/bin/python" ]; then
  "$python" -m venv "$venv"
fi
stamp="$venv/.installed-$(cat "$root/pyproject.toml" | sha256sum | cut -c1-16)-${extras}"
if [ ! -f "$stamp" ]; then
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
  spec="$root"
  [ -n "$extras" ] && spec="$root[$extras]"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -e "$spec"
  rm -f "$venv"/.installed-*
  touch "$stamp"
fi
