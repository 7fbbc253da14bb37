# shellcheck shell=bash disable=SC2016
# tests/system/checks/16-leases.sh: the lease server as shipped (docs/rotation.md, Leases).
# sealkeep-leases.service started as its DynamicUser with its sandbox; the agent, as
# User=sealkeep with PrivateNetwork=yes, reaches it over /run/sealkeep-leases/leases.sock,
# and the server accepts the agent (the owner of api.sock) and reads the [[lease]] kinds
# from /etc/sealkeep/rotation.toml (root:sealkeep 0640). The container has no PostgreSQL:
# a kind the file does not name is refused by the server (unknown_lease), and a kind whose
# database is absent fails after the server read its admin password from the agent as its
# own unit (target_unavailable, not forbidden). Neither leaves an active lease.
# (Sourced by tests/system/lane.sh; helpers documented there.)

lease_server_serves_the_agent_under_its_sandbox() {
  ct_sh 'cp /etc/sealkeep/policy.toml /root/policy.before-leases
cat >/etc/sealkeep/rotation.toml <<"CONFIG"
[[lease]]
name = "lane/pg"
max_ttl = "1h"
database = { host = "/run/lane-no-postgresql", admin_user = "lane", admin_secret = "lane/lease/admin" }
create = ["CREATE ROLE {{role}} LOGIN PASSWORD {{password}} VALID UNTIL {{valid_until}}"]
CONFIG
chown root:sealkeep /etc/sealkeep/rotation.toml && chmod 0640 /etc/sealkeep/rotation.toml
cat >>/etc/sealkeep/policy.toml <<"POLICY"

[roles.lane-leaser]
grants = [{ capabilities = ["lease"], paths = ["lane/**"] }]

[[bindings]]
name = "root-leases"
roles = ["lane-leaser"]
match = { uid = 0 }

[roles.lane-lease-server]
grants = [{ capabilities = ["read"], paths = ["lane/lease/admin"] }]

[[bindings]]
name = "lease-server"
roles = ["lane-lease-server"]
match = { unit = "sealkeep-leases.service" }
POLICY
systemctl reload sealkeepd'
  printf %s lane-admin-pw | ct sealkeep put lane/lease/admin
  ct systemctl start sealkeep-leases.service
  expect_eq "the lease server" "$(ct systemctl is-active sealkeep-leases.service)" active
  # Reachable by the agent's group only: the socket 0660 and its folder 0750, group sealkeep.
  expect_eq "the lease socket" "$(ct stat -c '%a %G' /run/sealkeep-leases/leases.sock)" "660 sealkeep"
  expect_eq "the lease socket's folder" "$(ct stat -c '%a %G' /run/sealkeep-leases)" "750 sealkeep"
  local out rc
  out=$(ct sealkeep lease create lane/none --ttl 1m 2>&1) && rc=0 || rc=$?
  expect_eq "a kind the server does not know (exit)" "$rc" 3 || { echo "$out" >&2; return 1; }
  [[ $out == *unknown_lease* ]] || fail "expected unknown_lease, got: $out"
  out=$(ct sealkeep lease create lane/pg --ttl 1m 2>&1) && rc=0 || rc=$?
  expect_eq "a kind whose database is absent (exit)" "$rc" 6 || { echo "$out" >&2; return 1; }
  [[ $out == *target_unavailable* ]] || fail "expected target_unavailable (the admin password was read), got: $out"
  journal_has sealkeep-leases.service 'lease create lane/pg' || fail "the lease server did not log the request"
  out=$(ct sealkeep --json lease list --all)
  [[ $out != *'"state":"active"'* ]] || fail "a failed create left an active lease: $out"
  ct systemctl stop sealkeep-leases.service
  ct_sh 'cp /root/policy.before-leases /etc/sealkeep/policy.toml && rm -f /etc/sealkeep/rotation.toml && systemctl reload sealkeepd'
}
check lease_server_serves_the_agent_under_its_sandbox lease_server_serves_the_agent_under_its_sandbox
