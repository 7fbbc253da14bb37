# shellcheck shell=bash
# tests/system/checks/40-tpm.sh: the TPM backend as deployed. A software TPM (swtpm) runs as a
# unit of the container, its socket in group tss like /dev/tpmrm0 on Debian; the host is reset
# to a freshly installed package, then `sealkeep setup tpm`, a boot that unseals, a PCR change
# that keeps the agent sealed with the boot-state message, and a re-seal through the running
# agent after which it unseals again (sourced by tests/system/lane.sh).

TPM_TCTI=swtpm:path=/run/swtpm/sock

# Back to a host that has the package and nothing else of sealkeep.
reset_to_fresh_install() {
  ct systemctl disable --now sealkeepd.service sealkeepd.socket web.service >/dev/null 2>&1 || true
  ct_sh 'rm -rf /etc/sealkeep/* /var/lib/sealkeep/* /etc/systemd/system/sealkeepd.service.d \
    /etc/systemd/system/web.service /etc/systemd/system/report.service && systemctl daemon-reload'
}

start_swtpm() {
  ct_sh 'cat >/etc/systemd/system/swtpm.service <<EOF
[Unit]
Description=Software TPM for the lane (stands in for /dev/tpmrm0)
Before=sealkeepd.service
[Service]
User=tss
Group=tss
StateDirectory=swtpm
RuntimeDirectory=swtpm
RuntimeDirectoryMode=0750
ExecStart=/usr/bin/swtpm socket --tpm2 --tpmstate dir=/var/lib/swtpm --flags not-need-init,startup-clear \
  --server type=unixio,path=/run/swtpm/sock,mode=0660 --ctrl type=unixio,path=/run/swtpm/sock.ctrl,mode=0660
[Install]
WantedBy=sealkeepd.service
EOF
systemctl daemon-reload && systemctl enable --now swtpm.service'
  local deadline=$((SECONDS + 30))
  until ct test -S /run/swtpm/sock; do
    [ $SECONDS -lt $deadline ] || fail "swtpm made no socket"
    sleep 0.2
  done
}

health() { ct curl -s --max-time 5 --unix-socket /run/sealkeep/api.sock http://sk/v1/health || true; }

# Waits until /v1/health holds TEXT.
wait_health() {
  local deadline=$((SECONDS + $2)) h=""
  until [[ $h == *"$1"* ]]; do
    [ $SECONDS -lt $deadline ] || fail "health never said '$1' (last: $h)"
    h=$(health)
    sleep 0.2
  done
  echo "health: $h"
}

tpm_setup_boot_pcr_change_and_reseal() {
  reset_to_fresh_install
  start_swtpm
  ct sealkeep setup tpm --tcti "$TPM_TCTI" --pcrs 7
  ct grep -qx 'SupplementaryGroups=tss' /etc/systemd/system/sealkeepd.service.d/50-setup.conf ||
    fail "setup did not give the agent the TPM's group"
  expect_eq "/var/lib/sealkeep/tpm owner" "$(ct stat -c %U /var/lib/sealkeep/tpm)" sealkeep
  printf %s 'tpm-sealed' | ct sealkeep put apps/tpm/key
  # A reboot: swtpm starts before the agent (as the kernel's /dev/tpmrm0 would be there), and
  # the agent unseals by itself.
  ct_reboot
  ct_wait_active sealkeepd.service 60
  expect_eq "after the reboot" "$(ct sealkeep get apps/tpm/key)" tpm-sealed
  ct sealkeep status | grep -qi tpm || fail "status does not say tpm"
  # The boot state changes (PCR 7 extended, as a new boot loader would): sealed, and says why.
  ct env TPM2TOOLS_TCTI="$TPM_TCTI" tpm2_pcrextend "7:sha256=$(printf '%064d' 1)"
  ct systemctl restart --no-block sealkeepd.service
  wait_health boot_state_changed 60
  health | grep -q 'boot state changed' || fail "the message does not say the boot state changed"
  expect_eq "sealkeepd while the PCR differs" "$(ct systemctl is-active sealkeepd.service || true)" activating
  # The old boot state back (the TPM reset: PCRs start from zero): it unseals by itself.
  ct systemctl restart swtpm.service
  ct_wait_active sealkeepd.service 120
  # A planned change: extend, re-seal to the new value through the running agent, restart.
  ct env TPM2TOOLS_TCTI="$TPM_TCTI" tpm2_pcrextend "7:sha256=$(printf '%064d' 2)"
  ct curl -sf --unix-socket /run/sealkeep/api.sock -X POST http://sk/v1/sys/reseal -d '{"pcrs":[7]}'
  echo
  ct systemctl restart sealkeepd.service
  ct_wait_active sealkeepd.service 60
  expect_eq "after the re-seal and a restart" "$(ct sealkeep get apps/tpm/key)" tpm-sealed
  ct sealkeep verify
}
check tpm_setup_boot_pcr_change_and_reseal tpm_setup_boot_pcr_change_and_reseal
