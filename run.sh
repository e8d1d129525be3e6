#!/usr/bin/env bash
# Sets up warroom (./.venv) and demonstrates it on the embedded defaults, with no server to
# install: an example SQLite database under ./data/example is backed up into ./data/backups
# (catalog: ./data/catalog.db), verified with a restore test, and restored into a new file.
set -euo pipefail
cd "$(dirname "$0")"
scripts/bootstrap.sh
export PATH="$PWD/.venv/bin:$PATH"
mkdir -p data/example
app_db="data/example/app.db"
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "1. an example application database: $app_db"
python - "$app_db" <<'PY'
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1])
conn.executescript("""
CREATE TABLE IF NOT EXISTS customers (id INTEGER PRIMARY KEY, email TEXT UNIQUE NOT NULL);
CREATE TABLE IF NOT EXISTS orders (id INTEGER PRIMARY KEY,
    customer_id INTEGER NOT NULL REFERENCES customers(id), total REAL NOT NULL);
""")
start = conn.execute("SELECT count(*) FROM customers").fetchone()[0]
conn.executemany("INSERT INTO customers (email) VALUES (?)",
                 [(f"user{start + i}@example.com",) for i in range(1000)])
conn.executemany("INSERT INTO orders (customer_id, total) VALUES (?, ?)",
                 [(start + 1 + i % 1000, i * 1.5) for i in range(5000)])
conn.commit()
for table in ("customers", "orders"):
    print(f"  {table}: {conn.execute(f'SELECT count(*) FROM {table}').fetchone()[0]} rows")
PY

name="example-$(date -u +%Y%m%dT%H%M%SZ)"
step "2. warroom create database --url sqlite:///$app_db --name $name"
warroom create database --url "sqlite:///$app_db" --name "$name"

step "3. warroom list --type database"
warroom list --type database

step "4. warroom verify $name --restore-test"
warroom verify "$name" --restore-test

restored="app-restored-$name.db"
step "5. warroom restore database $name --new-db $restored"
warroom restore database "$name" --new-db "$restored" --url "sqlite:///$app_db"
ls -l "data/example/$restored"

step "done: backups in ./data/backups, catalog in ./data/catalog.db (try: warroom --help)"
