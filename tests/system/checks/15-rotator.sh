# shellcheck shell=bash disable=SC2016
# tests/system/checks/15-rotator.sh: the rotator as shipped (docs/rotation.md). Its units as
# installed: sealkeep-rotator.timer enabled, then sealkeep-rotator.service (what the timer
# starts) run once as its DynamicUser with its sandbox, reaching the agent through group
# sealkeep, named by its unit in the policy, rotating a secret at an exec target (a script
# that keeps a password in a file) and leaving store and target on the same new value.
# (Sourced by tests/system/lane.sh; helpers documented there.)

rotator_timer_rotates_at_its_target() {
  ct_sh 'install -d -m 0755 /usr/local/sbin && cat >/usr/local/sbin/lane-target <<"TARGET"
#!/bin/sh
# An exec target: set|test|revert, the value on stdin; the "system" is a file.
f=/var/lib/lane-target/password
v=$(cat)
case "$1" in
  set|revert) printf %s "$v" >"$f.new" && mv "$f.new" "$f" ;;
  test) [ "$(cat "$f" 2>/dev/null)" = "$v" ] || exit 1 ;;
  *) exit 2 ;;
esac
TARGET
chmod 0755 /usr/local/sbin/lane-target
install -d -m 0755 /etc/systemd/system/sealkeep-rotator.service.d
printf "[Service]\nStateDirectory=lane-target\n" >/etc/systemd/system/sealkeep-rotator.service.d/lane.conf
cat >/etc/sealkeep/rotation.toml <<"CONFIG"
[[rotation]]
path = "lane/rot/token"
every = "30d"
generator = { type = "bytes", length = 16, encoding = "hex" }
target = { type = "exec", program = "/usr/local/sbin/lane-target" }
CONFIG
chown root:sealkeep /etc/sealkeep/rotation.toml && chmod 0640 /etc/sealkeep/rotation.toml
cp /etc/sealkeep/policy.toml /root/policy.before-rotator
cat >>/etc/sealkeep/policy.toml <<"POLICY"

[roles.lane-rotator]
grants = [{ capabilities = ["read", "list", "write", "rotate"], paths = ["lane/rot/**"] }]

[[bindings]]
name = "rotator"
roles = ["lane-rotator"]
match = { unit = "sealkeep-rotator.service" }
POLICY
systemctl daemon-reload && systemctl reload sealkeepd'
  printf %s tok-0 | ct sealkeep put lane/rot/token
  ct systemctl enable --now sealkeep-rotator.timer
  expect_eq "the timer's unit" "$(ct systemctl show -P Unit sealkeep-rotator.timer)" sealkeep-rotator.service
  expect_eq "the timer" "$(ct systemctl is-active sealkeep-rotator.timer)" active
  # The target holds tok-0 too (the DynamicUser's StateDirectory lives under /var/lib/private);
  # the first run rotates: a path never rotated is due.
  ct_sh 'install -d -m 0700 /var/lib/private/lane-target && printf %s tok-0 >/var/lib/private/lane-target/password'
  ct systemctl start sealkeep-rotator.service
  expect_eq "the rotator's result" "$(ct systemctl show -P Result sealkeep-rotator.service)" success
  journal_has sealkeep-rotator.service 'lane/rot/token: finished' || fail "the rotator did not say it finished"
  local head target
  head=$(ct sealkeep get lane/rot/token)
  target=$(ct cat /var/lib/private/lane-target/password)
  [ "$head" != tok-0 ] || fail "lane/rot/token was not rotated"
  expect_eq "the target's password" "$target" "$head"
  expect_eq "the previous version" "$(ct sealkeep get lane/rot/token --stage previous)" tok-0
  # A second run: not due, nothing changes.
  ct systemctl start sealkeep-rotator.service
  journal_has sealkeep-rotator.service 'lane/rot/token: not_due' || fail "the second run did not say not_due"
  expect_eq "the head after a run that was not due" "$(ct sealkeep get lane/rot/token)" "$head"
  ct systemctl disable --now sealkeep-rotator.timer
  ct_sh 'cp /root/policy.before-rotator /etc/sealkeep/policy.toml && systemctl reload sealkeepd'
}
check rotator_timer_rotates_at_its_target rotator_timer_rotates_at_its_target
