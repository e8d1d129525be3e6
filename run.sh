#!/usr/bin/env bash
# Sets up warroom (./.venv) and runs the service on embedded defaults, with no server to
# install: local storage (./data/backups, ./data/checkpoints), the SQLite catalog in the
# checkpoint directory (./data/checkpoints/catalog.db; one left at ./data/catalog.db by an
# earlier version is moved there) and, when DATABASE_URL is not set, an example SQLite database
# (./data/example/app.db) to back up. On first start it creates an admin API token and prints
# it with the URL. WARROOM_HOST / WARROOM_PORT (or PORT, on every interface) change where it
# listens (default 127.0.0.1:8000), as for `warroom serve`.
set -euo pipefail
cd "$(dirname "$0")"
scripts/bootstrap.sh
export PATH="$PWD/.venv/bin:$PATH"
mkdir -p data/backups data/checkpoints data/example
host="${WARROOM_HOST:-${PORT:+0.0.0.0}}"
host="${host:-127.0.0.1}"
port="${WARROOM_PORT:-${PORT:-8000}}"

if [ -z "${DATABASE_URL:-}" ]; then
  export DATABASE_URL="sqlite:///data/example/app.db"
  python - data/example/app.db <<'PY'
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1])
conn.executescript("""
CREATE TABLE IF NOT EXISTS customers (id INTEGER PRIMARY KEY, email TEXT UNIQUE NOT NULL);
CREATE TABLE IF NOT EXISTS orders (id INTEGER PRIMARY KEY,
    customer_id INTEGER NOT NULL REFERENCES customers(id), total REAL NOT NULL);
""")
if conn.execute("SELECT count(*) FROM customers").fetchone()[0] == 0:
    conn.executemany("INSERT INTO customers (email) VALUES (?)",
                     [(f"user{i}@example.com",) for i in range(1000)])
    conn.executemany("INSERT INTO orders (customer_id, total) VALUES (?, ?)",
                     [(1 + i % 1000, i * 1.5) for i in range(5000)])
conn.commit()
PY
  echo "DATABASE_URL not set: using the example database $DATABASE_URL"
fi

has_admin=$(warroom token list --json | python -c \
  'import json, sys; print(any(t["role"] == "admin" and not t["revoked_at"] for t in json.load(sys.stdin)["tokens"]))')
if [ "$has_admin" = "False" ]; then
  token=$(warroom token create --role admin --name "admin-$(date -u +%Y%m%dT%H%M%SZ)" 2>/dev/null)
  cat <<MSG

  War Room Checkpoints: http://$host:$port   (API docs: http://$host:$port/docs)
  Admin token (shown once, keep it): $token

  Try: curl -H "Authorization: Bearer $token" http://$host:$port/api/v1/checkpoints/list
       curl -X POST -H "Authorization: Bearer $token" "http://$host:$port/api/v1/checkpoints/database?wait=true"

MSG
else
  echo "War Room Checkpoints: http://$host:$port (an admin token exists; make more with: warroom token create --role admin --name NAME)"
fi
exec warroom serve --host "$host" --port "$port"
