# shellcheck shell=bash disable=SC2016
# tests/system/checks/17-backup.sh: recovery and backups as shipped (docs/recovery.md).
# Through the agent running as User=sealkeep under its sandbox: `recovery init` prints the
# shares (root is admin under the default policy) and the agent wraps every version in the
# background; the packaged timer example, installed as the runbook says, runs its service,
# which writes a backup through the agent (the agent copies the store into its own state
# folder and streams it); the backup then verifies offline with two of the three shares.
# (Sourced by tests/system/lane.sh; helpers documented there.)

backup_timer_writes_a_backup_that_verifies_offline() {
  printf %s bk-1 | ct sealkeep put lane/backup/a
  printf %s bk-2 | ct sealkeep put lane/backup/a
  ct_sh 'sealkeep recovery init --shares 3 --threshold 2 >/root/recovery-init.out
grep -o "SKR1-[0-9A-Z-]*" /root/recovery-init.out | head -n 2 >/root/shares.txt
rm -f /root/recovery-init.out'
  expect_eq "the shares kept for the check" "$(ct_sh 'wc -l </root/shares.txt')" 2
  # The agent wraps what was written before the key, a batch per tick: wait for it to say so.
  local i out
  for i in $(seq 1 300); do
    out=$(ct sealkeep --json recovery status)
    [[ $out == *'"pending":0'* ]] && break
    sleep 0.1
  done
  [[ $out == *'"pending":0'* ]] || fail "the agent did not wrap every version: $out"
  ct_sh 'cp /usr/share/doc/sealkeep/examples/sealkeep-backup.service /usr/share/doc/sealkeep/examples/sealkeep-backup.timer /etc/systemd/system/
systemctl daemon-reload && systemctl enable sealkeep-backup.timer'
  expect_eq "the backup timer" "$(ct systemctl is-enabled sealkeep-backup.timer)" enabled
  ct systemctl start sealkeep-backup.service
  expect_eq "the backup service's result" "$(ct systemctl show -P Result sealkeep-backup.service)" success
  local file
  file=$(ct_sh 'ls /var/backups/sealkeep/sealkeep-*.backup')
  expect_eq "the backup's mode" "$(ct stat -c %a "$file")" 600
  # Nothing of the copy is left in the agent's state folder.
  expect_eq "copies left behind" "$(ct_sh 'ls -a /var/lib/sealkeep | grep -c "^\.backup-" || true')" 0
  out=$(ct sealkeep backup verify "$file" --shares-file /root/shares.txt)
  [[ $out == *"verified: ok"* ]] || fail "the backup does not verify offline: $out"
  ct_sh 'systemctl disable sealkeep-backup.timer && rm -f /etc/systemd/system/sealkeep-backup.* /root/shares.txt
rm -rf /var/backups/sealkeep && systemctl daemon-reload'
}
check backup_timer_writes_a_backup_that_verifies_offline backup_timer_writes_a_backup_that_verifies_offline
