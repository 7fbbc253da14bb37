# shellcheck shell=bash disable=SC2016
# tests/system/checks/00-install.sh: what `apt-get install ./sealkeep_*.deb` leaves on a fresh
# Debian 12 host booted by systemd (sourced by tests/system/lane.sh; helpers documented there).

# Installed, its user and folders made by sysusers.d/tmpfiles.d, and nothing enabled.
package_installs() {
  expect_eq "dpkg status" "$(ct dpkg-query -W -f='${Status}' sealkeep)" "install ok installed"
  ct /usr/sbin/sealkeepd --version
  ct /usr/bin/sealkeep --help >/dev/null
  ct getent passwd sealkeep
  ct getent group sealkeep
  expect_eq "/var/lib/sealkeep owner and mode" "$(ct stat -c '%U:%G %a' /var/lib/sealkeep)" "sealkeep:sealkeep 700"
  ct test -d /etc/sealkeep
  expect_eq "/etc/sealkeep owner and mode" "$(ct stat -c '%U:%G %a' /etc/sealkeep)" "root:sealkeep 750"
  # The package ships no config: /etc/sealkeep is empty until `sealkeep setup` writes it.
  expect_eq "files in /etc/sealkeep" "$(ct find /etc/sealkeep -mindepth 1 | wc -l)" 0
  local unit state
  for unit in sealkeepd.service sealkeepd.socket; do
    state=$(ct systemctl is-enabled "$unit" 2>&1 || true)
    echo "$unit: $state"
    [ "$state" != enabled ] || fail "$unit is enabled by the package"
    expect_eq "$unit active state" "$(ct systemctl is-active "$unit" || true)" inactive
  done
  ct systemctl cat sealkeepd.service >/dev/null
  # The maintainer scripts ran cleanly at install time (in the lane's chroot, before the boot).
  if grep -n 'sealkeep:.*failed\|dpkg: error\|dpkg: warning' "$LANE_LOGS/install.log"; then
    fail "apt-get install reported problems (above)"
  fi
}
check package_installs package_installs

# Both man pages are installed (minbase has no man-db; check the files and that they are roff).
manpages_present() {
  local page
  for page in /usr/share/man/man8/sealkeepd.8.gz /usr/share/man/man1/sealkeep.1.gz; do
    ct test -s "$page" || fail "$page is missing"
    ct_sh "gzip -dc $page | grep -q '^\.TH '" || fail "$page is not a gzipped man page"
  done
  ct test -s /usr/share/doc/sealkeep/copyright
}
check manpages_present manpages_present

# systemd's own judgement of the unit's sandbox, on the live unit in the booted container.
security_score() {
  local out score
  out=$(ct systemd-analyze security --no-pager sealkeepd.service)
  echo "$out" | tail -3
  score=$(echo "$out" | sed -n 's/.*Overall exposure level for sealkeepd\.service: *\([0-9][0-9]*\.[0-9]*\).*/\1/p' | tail -1)
  [ -n "$score" ] || fail "no overall exposure level in systemd-analyze's output"
  echo "overall exposure: $score (must be at most 2.0)"
  awk -v s="$score" 'BEGIN { exit !(s <= 2.0) }' || fail "exposure $score is above 2.0"
}
check security_score security_score
