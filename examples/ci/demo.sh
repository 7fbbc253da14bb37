#!/bin/sh
# The pipeline end to end against a running agent: seed apps/web, run a release that
# changes its secrets, watch the health check fail, abort, and see the old values served
# again. The test suite runs this (tests/cli/cli_deploy_test.cc).
#
#   SEALKEEP_SOCKET=/run/sealkeep/api.sock examples/ci/demo.sh [RELEASE]
set -eu
here=$(cd "$(dirname "$0")" && pwd)
release=${1:-web-$(date +%Y%m%d%H%M%S)}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

printf %s old-password | sealkeep put apps/web/db-password
printf %s old-key | sealkeep put apps/web/api-key

cat >"$work/new-secrets.json" <<'JSON'
{"ops": [
  {"op": "put", "path": "apps/web/db-password", "value": "new-password"},
  {"op": "put", "path": "apps/web/api-key", "value": "new-key"}
]}
JSON

export DB_ACCEPTS=old-password  # the database was not migrated: the release is broken
if "$here/pipeline.sh" "$release" apps/web "$work/new-secrets.json" "$here/health-check.sh"; then
  echo "demo: the health check should have failed" >&2
  exit 1
fi

db=$(sealkeep get apps/web/db-password)
key=$(sealkeep get apps/web/api-key)
if [ "$db" != old-password ] || [ "$key" != old-key ]; then
  echo "demo: the old values are not served" >&2
  exit 1
fi
echo "demo: release $release was rolled back; the old values are served again"
