#!/bin/sh
# A deployment whose secrets roll back with it: begin a release over PREFIX, write the
# release's secrets in one transaction, run the health check, then commit the release, or
# abort it so every secret under PREFIX is served at its old version again (a rotated
# credential keeps its new one). docs/cli.md, "deploy".
#
#   pipeline.sh RELEASE PREFIX SECRETS.json HEALTH_CHECK [ARGS...]
#
# SECRETS.json is a transaction ({"ops":[...]}, docs/api.md): values travel in that file,
# never on a command line. Safe to re-run for the same RELEASE: begin is idempotent and the
# transaction carries an idempotency key, so a retried job applies nothing twice.
# Needs `sealkeep` on PATH, $SEALKEEP_SOCKET (default /run/sealkeep/api.sock), and
# `snapshot` and `write` on PREFIX.
set -eu

if [ $# -lt 4 ]; then
  echo "usage: $0 RELEASE PREFIX SECRETS.json HEALTH_CHECK [ARGS...]" >&2
  exit 2
fi
release=$1 prefix=$2 secrets=$3
shift 3

sealkeep deploy begin "$release" --prefix "$prefix"
sealkeep txn --idempotency-key "deploy-$release" "$secrets"

if "$@"; then
  sealkeep deploy commit "$release"
  echo "release $release is live"
else
  echo "health check failed: rolling the secrets of $release back" >&2
  sealkeep deploy abort "$release"
  exit 1
fi
