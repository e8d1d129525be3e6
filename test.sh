#!/usr/bin/env bash
# Sets up everything the tests need (./.venv from pyproject.toml) and runs the whole suite:
# lint (ruff), types (mypy --strict) and pytest (unit, integration, e2e).
# PostgreSQL: the server at WARROOM_TEST_PG_URL (default postgresql://postgres@127.0.0.1:5432/postgres).
# Extra arguments go to pytest, e.g. ./test.sh -k sqlite -x
# Without arguments, the point-in-time recovery test then runs again under Debian 12's own
# /usr/bin/python3 (3.11.2, older than 3.11.4's tarfile filters) in .venv/debian-python3:
# warroom claims Python 3.11.0 and later. As root on a fresh Debian, the packages it needs
# (python3, python3-venv) are installed first.
set -euo pipefail
cd "$(dirname "$0")"
scripts/bootstrap.sh test
export WARROOM_TEST_PG_URL="${WARROOM_TEST_PG_URL:-postgresql://postgres@127.0.0.1:5432/postgres}"
if ! .venv/bin/python -c "import psycopg, os; psycopg.connect(os.environ['WARROOM_TEST_PG_URL'], connect_timeout=5).close()" 2>/dev/null; then
  echo "error: no PostgreSQL at $WARROOM_TEST_PG_URL; start it or set WARROOM_TEST_PG_URL" >&2
  exit 2
fi
# The web UI's tests drive Debian's Chromium (browsers cannot be downloaded by test tools here).
if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
  if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
    echo "error: the web UI tests need Debian's chromium and chromium-driver; install them" >&2
    exit 2
  fi
  apt-get update -qq && apt-get install -y -qq chromium chromium-driver >/dev/null
fi
echo "== ruff"; .venv/bin/ruff check src tests bench
echo "== mypy"; .venv/bin/mypy
echo "== pytest"; .venv/bin/pytest "$@"
[ $# -eq 0 ] || exit 0
debian_python=/usr/bin/python3
if ! dpkg -s python3 python3-venv >/dev/null 2>&1; then
  if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
    echo "error: the second run needs Debian's python3 and python3-venv; install them" >&2
    exit 2
  fi
  apt-get update -qq && apt-get install -y -qq python3 python3-venv >/dev/null
fi
PYTHON=$debian_python VENV=.venv/debian-python3 scripts/bootstrap.sh test
echo "== pytest under $($debian_python --version): tests/integration/test_pitr.py"
.venv/debian-python3/bin/pytest -p no:cacheprovider tests/integration/test_pitr.py
