#!/usr/bin/env bash
# Deploy to Railway as the seed's script did. Before `railway up` it
#   1. creates a deployment checkpoint (the deploy's record: `warroom list --type deployment`),
#   2. validates every requirement ([deployment] in warroom.toml; the deploy stops if one fails),
#   3. backs up the database (DATABASE_URL, Railway's PostgreSQL) as pre-deploy-VERSION-...,
#   4. tags the commit deploy-VERSION,
# then runs `railway up --ci` (which waits for the build) and the health check
# ([deployment.deploy] health_url, e.g. "https://your-app.up.railway.app/healthz"). When either
# fails, it runs the rollback below and removes the tag. `warroom deploy` runs these stages.
#
#   ./scripts/railway-deploy.sh [VERSION]              VERSION defaults to the short git commit
#   ./scripts/railway-deploy.sh --rollback VERSION     the rollback, by hand
#
# The rollback is defined here and nowhere else: it deploys VERSION's tagged source again
# (deploy-VERSION, from a temporary git worktree) with `railway up --ci`. Set restore_database =
# true in [deployment.deploy] to restore the pre-deploy backup too. Needs the Railway CLI,
# logged in (or RAILWAY_TOKEN) and linked to the project; works from any directory.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/warroom-command.sh"
self="$root/scripts/railway-deploy.sh"
if ! command -v railway >/dev/null 2>&1; then
  echo "error: the Railway CLI (railway) is not installed or not on PATH; install it, then" \
    "run railway login and railway link" >&2
  exit 2
fi
cd "$root"

if [ "${1:-}" = "--rollback" ]; then
  version="${2:?usage: $0 --rollback VERSION}"
  tag="deploy-$version"
  if ! git rev-parse -q --verify "refs/tags/$tag" >/dev/null; then
    echo "error: no git tag $tag: VERSION must be one deployed by this script" \
      "(git tag --list 'deploy-*')" >&2
    exit 2
  fi
  tree="$(mktemp -d)"
  trap 'git worktree remove --force "$tree"' EXIT
  git worktree add --detach --quiet "$tree" "$tag"
  railway up "$tree" --ci
  exit 0
fi

version="${1:-${RAILWAY_GIT_COMMIT_SHA:-$(git rev-parse --short HEAD)}}"
exec "${warroom[@]}" deploy --version "$version" \
  --rollback-command "$self --rollback {previous_version}" -- railway up --ci
