#!/bin/sh
# The demo's health check: the application starts with its database password from the
# agent (sealkeep run, so the value is in its environment only) and "connects" to a
# database that accepts $DB_ACCEPTS. The demo's database still has the old password, so
# a release that changed it fails here.
set -eu
exec sealkeep run --env DB_PASSWORD=apps/web/db-password -- \
  sh -c 'if [ "$DB_PASSWORD" = "$DB_ACCEPTS" ]; then echo "health: database login ok"; else echo "health: database login refused" >&2; exit 1; fi'
