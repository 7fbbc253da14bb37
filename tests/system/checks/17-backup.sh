# shellcheck shell=bash disable=SC2016
# tests/system/checks/17-backup.sh: recovery and backups as shipped (docs/recovery.md).
# Through the agent running as User=sealkeep under its sandbox: `recovery init` prints the
# shares (root is admin under the default policy) and the agent wraps every version in the
# background; the packaged timer example, installed as the runbook says, runs its service,
# which writes a backup through the agent (the agent copies the store into its own state
# folder and streams it); the backup then verifies offline with two of the three shares,
# and is restored on the same hardware (after a change: --accept-loss), root's restored files
# left to the agent's user.
# (Sourced by tests/system/lane.sh; helpers documented there.)

# An offline command as docs/recovery.md gives it for a host `sealkeep setup` made: with the
# agent unit's PIN credential and SoftHSM2 config (its drop-in), as a transient unit.
offline_as_the_agent() {
  ct systemd-run --quiet --pipe --wait --collect -p LoadCredentialEncrypted=hsm-pin:/etc/sealkeep/hsm-pin.cred \
    -p Environment=SOFTHSM2_CONF=/var/lib/sealkeep/softhsm/softhsm2.conf /usr/bin/sealkeep "$@"
}

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
  # A restore on the same hardware, offline as the runbook says (root, the agent stopped),
  # after a change: refused without --accept-loss (nothing lost only if not yet anchored, so
  # a rotation anchors the change first), then done with it; the agent (User=sealkeep) opens
  # what root restored and serves the backup's value.
  printf %s bk-3 | ct sealkeep put lane/backup/a
  ct sealkeep rotate >/dev/null
  ct systemctl stop sealkeepd.socket sealkeepd.service
  local rc
  out=$(offline_as_the_agent backup restore "$file" --config /etc/sealkeep/sealkeep.toml 2>&1) && rc=0 || rc=$?
  expect_eq "a restore that would lose anchored changes (exit)" "$rc" 4 || { echo "$out" >&2; return 1; }
  [[ $out == *restore_needs_accept_loss* ]] || fail "expected restore_needs_accept_loss, got: $out"
  out=$(offline_as_the_agent backup restore "$file" --config /etc/sealkeep/sealkeep.toml --accept-loss)
  [[ $out == *"verified: ok"* ]] || fail "the same-hardware restore did not verify: $out"
  expect_eq "the restored store's owner" "$(ct stat -c %U /var/lib/sealkeep/store.db)" sealkeep
  ct systemctl start sealkeepd.socket sealkeepd.service
  expect_eq "the value after the restore" "$(ct sealkeep get lane/backup/a)" bk-2
  ct_sh 'rm -f /var/lib/sealkeep/store.db.before-restore-*'
  ct_sh 'systemctl disable sealkeep-backup.timer && rm -f /etc/systemd/system/sealkeep-backup.* /root/shares.txt
rm -rf /var/backups/sealkeep && systemctl daemon-reload'
}
check backup_timer_writes_a_backup_that_verifies_offline backup_timer_writes_a_backup_that_verifies_offline
