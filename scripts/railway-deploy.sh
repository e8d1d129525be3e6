#!/usr/bin/env bash
# Deploy to Railway through the warroom pipeline: validate → database checkpoint → tag →
# `railway up --ci` (waits for the build) → health check, with automated rollback when `railway up` or the health check fails.
#
#   ./scripts/railway-deploy.sh [VERSION]        VERSION defaults to the short git commit
#
# Needs the Railway CLI (`railway`, logged in and linked to the project) and, in warroom.toml:
#   [deployment.deploy]
#   health_url = "https://your-app.up.railway.app/healthz"
#   rollback_command = "railway redeploy --yes"      # or your own script taking {previous_version}
#   restore_database = false                         # true: also restore the pre-deploy backup
# DATABASE_URL (Railway's PostgreSQL) is backed up before the deploy; BACKUP_DIR should be
# a persistent volume (the seed used /app/backups).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
version="${1:-${RAILWAY_GIT_COMMIT_SHA:-$(git rev-parse --short HEAD)}}"
warroom="warroom"
[ -x "$root/.venv/bin/warroom" ] && warroom="$root/.venv/bin/warroom"
if ! command -v railway >/dev/null 2>&1; then
  echo "error: the Railway CLI (railway) is not installed; see Railway's documentation" >&2
  exit 2
fi
exec "$warroom" deploy --version "$version" -- railway up --ci
