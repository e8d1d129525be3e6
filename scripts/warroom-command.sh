# shellcheck shell=bash
# Sourced by the seed's scripts beside it, so they work from any directory, with or without
# .venv/bin on PATH: sets the array `warroom` to the command that runs warroom, the first of
#   the project's ./.venv/bin/warroom, `warroom` on PATH, python3 -m warroom (when importable).
# Without any of them it exits 2, saying how to install warroom.
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [ -x "$root/.venv/bin/warroom" ]; then
  warroom=("$root/.venv/bin/warroom")
elif command -v warroom >/dev/null 2>&1; then
  warroom=(warroom)
elif python3 -c 'import warroom' >/dev/null 2>&1; then
  warroom=(python3 -m warroom)
else
  echo "error: warroom is not installed: run $root/scripts/bootstrap.sh (it creates $root/.venv)," \
    "or install the project with pip" >&2
  exit 2
fi
