# shellcheck shell=bash
# tests/system/checks/30-retry.sh: the token is not there when the agent starts (an HSM not
# plugged in yet): the agent stays up sealed, the unit waits, and once the token is back the
# agent unseals by itself within its retry interval (1 s doubling to 60 s), sends READY=1, and
# the units ordered after it start (sourced by tests/system/lane.sh).

agent_unseals_by_itself_when_the_token_returns() {
  ct_sh 'cat >/etc/systemd/system/needs-secrets.service <<EOF
[Unit]
Requires=sealkeepd.service
After=sealkeepd.service
[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/bin/true
EOF
systemctl daemon-reload'
  ct systemctl stop needs-secrets.service sealkeepd.service
  ct_sh 'mkdir -p /root/away && mv /var/lib/sealkeep/softhsm/tokens/* /root/away/'
  ct systemctl start --no-block sealkeepd.service needs-secrets.service
  local deadline=$((SECONDS + 60)) health=""
  until [[ $health == *token_not_found* ]]; do
    [ $SECONDS -lt $deadline ] || fail "the agent never said token_not_found (last: $health)"
    health=$(ct curl -s --max-time 5 --unix-socket /run/sealkeep/api.sock http://sk/v1/health || true)
    sleep 0.2
  done
  echo "sealed as expected: $health"
  expect_eq "sealkeepd while sealed" "$(ct systemctl is-active sealkeepd.service || true)" activating
  expect_eq "its dependent while sealed" "$(ct systemctl is-active needs-secrets.service || true)" inactive
  ct systemctl show -P StatusText sealkeepd.service | grep -q 'sealed: ' || fail "no sealed status line"
  # The token is back: no one asks the agent anything.
  ct_sh 'mv /root/away/* /var/lib/sealkeep/softhsm/tokens/ && chown -R sealkeep:sealkeep /var/lib/sealkeep/softhsm'
  ct_wait_active sealkeepd.service 90
  ct_wait_active needs-secrets.service 30
  ct_journal -u sealkeepd -o cat | grep -q 'retrying by itself' || fail "the agent did not say it would retry"
  if ct sealkeep audit tail /var/lib/sealkeep/audit -n 1000 | grep -q '"route":"POST sys.unseal"'; then
    fail "someone asked it to unseal"
  fi
  expect_eq "the secret after the retry" "$(ct sealkeep get apps/web/db-password)" 'correct horse'
  ct systemctl stop needs-secrets.service
}
check agent_unseals_by_itself_when_the_token_returns agent_unseals_by_itself_when_the_token_returns
