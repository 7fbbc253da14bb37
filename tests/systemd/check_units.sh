#!/usr/bin/env bash
# The systemd units parse (systemd-analyze verify) and the service's sandbox keeps its
# exposure score low (systemd-analyze security --offline). No systemd runs as PID 1 on the
# test machines, so this is what can be checked without booting one.
set -euo pipefail
src=$1
bin=$2
cli=$3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# verify resolves ExecStart and ExecReload: point them at the built binaries.
sed -e "s|/usr/sbin/sealkeepd|$bin|" -e "s|/usr/bin/sealkeep |$cli |" "$src/systemd/sealkeepd.service" >"$work/sealkeepd.service"
cp "$src/systemd/sealkeepd.socket" "$work/"
# --man=no: the man page named in Documentation= is installed by the package, not here.
out=$(cd "$work" && systemd-analyze verify --man=no sealkeepd.service sealkeepd.socket 2>&1 || true)
if [ -n "$out" ]; then
  echo "systemd-analyze verify complained:"
  echo "$out"
  exit 1
fi
score=$(systemd-analyze security --offline=true "$work/sealkeepd.service" 2>/dev/null | sed -n 's/.*Overall exposure level for .*: \([0-9.]*\).*/\1/p')
echo "exposure score: $score (0 is best, 10 worst)"
awk -v s="$score" 'BEGIN { exit !(s != "" && s <= 2.0) }' || { echo "exposure score too high"; exit 1; }
