#!/usr/bin/env bash
# Sets up everything the tests need (./.venv from pyproject.toml) and runs the whole suite:
# lint (ruff), types (mypy --strict) and pytest (unit, integration, e2e).
# PostgreSQL: the server at WARROOM_TEST_PG_URL (default postgresql://postgres@127.0.0.1:5432/postgres).
# Extra arguments go to pytest, e.g. ./test.sh -k sqlite -x
set -euo pipefail
cd "$(dirname "$0")"
scripts/bootstrap.sh test
export WARROOM_TEST_PG_URL="${WARROOM_TEST_PG_URL:-postgresql://postgres@127.0.0.1:5432/postgres}"
if ! .venv/bin/python -c "import psycopg, os; psycopg.connect(os.environ['WARROOM_TEST_PG_URL'], connect_timeout=5).close()" 2>/dev/null; then
  echo "error: no PostgreSQL at $WARROOM_TEST_PG_URL; start it or set WARROOM_TEST_PG_URL" >&2
  exit 2
fi
echo "== ruff"; .venv/bin/ruff check src tests bench
echo "== mypy"; .venv/bin/mypy
echo "== pytest"; .venv/bin/pytest "$@"
