# shellcheck shell=bash disable=SC2016
# tests/system/checks/10-deploy.sh: docs/deploy.md, run as written (every block marked
# <!-- lane -->, in order, as root in the container; `systemctl reboot` is a real reboot), then
# what each step must have left: an agent that unseals at boot with no human, credentials
# given and refused, a unit binding no one else can claim, reloads that refuse a broken
# policy, an upgrade that keeps every secret, and the README's install steps.
# (Sourced by tests/system/lane.sh; helpers documented there.)

DEPLOY_DOC=$SK_ROOT/docs/deploy.md

# The marked blocks of FILE, each as one line of shell text with its newlines escaped as \n:
# printf '%b' turns a line back into the block.
doc_blocks() {
  awk '
    /^<!-- lane -->$/ { armed = 1; next }
    armed && /^```sh$/ { inblock = 1; armed = 0; text = ""; next }
    inblock && /^```$/ { inblock = 0; gsub(/\\/, "&&", text); gsub(/\n/, "\\n", text); print text; next }
    inblock { text = text $0 "\n"; next }
    { armed = 0 }
  ' "$1"
}

# The package under the names the doc uses: this build as 0.1.0 (the version it installs),
# and the same build repacked as 0.1.1 (the upgrade it installs over the running agent).
plant_packages() {
  local version tmp
  version=$(dpkg-deb -f "$SK_DEB" Version)
  grep -q "sealkeep_${version}_amd64.deb" "$DEPLOY_DOC" ||
    fail "docs/deploy.md does not install sealkeep_${version}_amd64.deb: update its version"
  cp "$SK_DEB" "$CT_DIR/root/sealkeep_${version}_amd64.deb"
  tmp=$(mktemp -d)
  dpkg-deb -R "$SK_DEB" "$tmp/pkg"
  sed -i 's/^Version: .*/Version: 0.1.1/' "$tmp/pkg/DEBIAN/control"
  dpkg-deb -b "$tmp/pkg" "$CT_DIR/root/sealkeep_0.1.1_amd64.deb" >/dev/null
  rm -rf "$tmp"
}

# Waits (10 s at most) for an audit record holding every fixed string given: a read's
# record reaches the disk within a second.
audit_has() {
  local deadline=$((SECONDS + 10)) records pattern
  while :; do
    records=$(ct sealkeep audit tail /var/lib/sealkeep/audit -n 1000)
    for pattern in "$@"; do
      records=$(printf '%s\n' "$records" | grep -F -- "$pattern" || true)
    done
    [ -z "$records" ] || return 0
    [ $SECONDS -lt $deadline ] || return 1
    sleep 0.2
  done
}

deploy_doc_runs() {
  plant_packages
  local block n=0
  while IFS= read -r block; do
    n=$((n + 1))
    local text
    text=$(printf '%b' "$block")
    echo "=== docs/deploy.md block $n:"
    echo "$text"
    echo "==="
    if [ "$text" = "systemctl reboot" ]; then
      ct_reboot
    else
      ct_sh "cd /root && $text"
    fi
  done < <(doc_blocks "$DEPLOY_DOC")
  [ "$n" -ge 9 ] || fail "only $n lane blocks in docs/deploy.md"
}
check deploy_doc_runs deploy_doc_runs

# Every command of the README's "Install on a host" block is one docs/deploy.md ran above.
readme_install_is_the_doc() {
  local block missing=0 line n=0
  block=$(awk '/^### Install on a host/ { on = 1 } on && /^```sh$/ { inb = 1; next } inb && /^```$/ { exit } inb { print }' \
    "$SK_ROOT/README.md")
  [ -n "$block" ] || fail "README.md has no sh block under '### Install on a host'"
  while IFS= read -r line; do
    case $line in '' | '#'*) continue ;; esac
    n=$((n + 1))
    grep -qxF -- "$line" "$DEPLOY_DOC" || {
      echo "not in docs/deploy.md: $line"
      missing=1
    }
  done <<<"$block"
  echo "README install block: $n lines, each one of docs/deploy.md's"
  [ "$missing" = 0 ] || fail "the README's install steps are not the ones the lane runs"
}
check readme_install_is_the_doc readme_install_is_the_doc

# After the doc's reboot: the agent came up unsealed by itself, READY, with no request.
boot_unseals_with_no_human() {
  expect_eq "sealkeepd" "$(ct systemctl is-active sealkeepd.service)" active
  expect_eq "sealkeepd.socket" "$(ct systemctl is-active sealkeepd.socket)" active
  expect_eq "its user" "$(ct ps -o user= -p "$(ct systemctl show -P MainPID sealkeepd.service)")" sealkeep
  ct_journal -b -u sealkeepd -o cat | grep -q 'unsealed; journal head' || fail "no unseal in this boot's log"
  if ct sealkeep audit tail /var/lib/sealkeep/audit -n 1000 | grep -q '"route":"POST sys.unseal"'; then
    fail "someone asked it to unseal"
  fi
  ct sealkeep status
  printf %s 'v-after-boot' | ct sealkeep put lane/after-boot
  expect_eq "value read back" "$(ct sealkeep get lane/after-boot)" v-after-boot
  # Secret memory is locked as the unit asks (LimitMEMLOCK=64M, CAP_IPC_LOCK).
  if ct_journal -b -u sealkeepd -o cat | grep -q 'NOT locked'; then fail "secret memory is not locked"; fi
}
check boot_unseals_with_no_human boot_unseals_with_no_human

setup_changes_nothing_the_second_time() {
  local before after out
  before=$(ct_sh 'sha256sum /etc/sealkeep/* /etc/systemd/system/sealkeepd.service.d/*')
  out=$(ct sealkeep setup pkcs11)
  echo "$out"
  echo "$out" | grep -q 'nothing changed' || fail "a second setup did not say it changed nothing"
  after=$(ct_sh 'sha256sum /etc/sealkeep/* /etc/systemd/system/sealkeepd.service.d/*')
  expect_eq "files after a second setup" "$after" "$before"
  # A store it did not describe is never replaced.
  ct_sh 'mv /etc/sealkeep/sealkeep.toml /root/sealkeep.toml.kept'
  if ct sealkeep setup pkcs11 --no-start; then fail "setup went ahead over an existing store"; fi
  ct_sh 'mv /root/sealkeep.toml.kept /etc/sealkeep/sealkeep.toml'
}
check setup_changes_nothing_the_second_time setup_changes_nothing_the_second_time

credentials_given_and_refused() {
  ct_journal -b -u web.service -o cat | grep -qx 'db-password: 13 bytes' || fail "web.service had no credential at boot"
  # A unit no [[credentials]] entry names gets an empty one, and both answers are on record.
  ct_sh 'cat >/etc/systemd/system/stranger.service <<EOF
[Service]
Type=oneshot
DynamicUser=yes
LoadCredential=db-password:/run/sealkeep/creds.sock
ExecStart=/bin/sh -c "echo \"db-password: \$\$(wc -c <\"\$\$CREDENTIALS_DIRECTORY/db-password\") bytes\""
EOF
systemctl daemon-reload && systemctl start stranger.service'
  ct_journal -u stranger.service -o cat | grep -qx 'db-password: 0 bytes' || fail "stranger.service got something"
  # Both answers are on record, and no value is.
  audit_has '"route":"CREDENTIAL stranger.service/db-password"' '"outcome":"denied"' ||
    fail "no denied record for stranger.service"
  audit_has '"route":"CREDENTIAL web.service/db-password"' '"outcome":"allowed"' ||
    fail "no allowed record for web.service"
  local records
  records=$(ct sealkeep audit tail /var/lib/sealkeep/audit -n 1000)
  if echo "$records" | grep -q 'correct horse'; then fail "a value reached the audit log"; fi
}
check credentials_given_and_refused credentials_given_and_refused

# report.service (DynamicUser=yes) reads through the API by its unit; the same program under
# any other identity is refused: by hand as a uid in the socket's group, in another unit, and
# from a user manager's cgroup named report.service (what `systemd-run --user
# --unit=report.service` would give any user).
unit_binding_cannot_be_claimed() {
  ct systemctl start report.service
  ct_journal -u report.service -o cat | grep -q 'token: 12 bytes' || fail "report.service could not read its token"
  local rc=0 gid
  gid=$(ct getent group sealkeep | cut -d: -f3)
  ct setpriv --reuid=65534 --regid=65534 --groups="$gid" sealkeep get apps/report/token || rc=$?
  expect_eq "by hand as nobody (exit)" "$rc" 5
  rc=0
  ct systemd-run --wait --pipe --quiet -p DynamicUser=yes -p SupplementaryGroups=sealkeep \
    sealkeep get apps/report/token || rc=$?
  [ "$rc" -ne 0 ] || fail "another unit read report.service's secret"
  local cg=/sys/fs/cgroup/systemd/user.slice/user-65534.slice/user@65534.service/app.slice/report.service
  ct mkdir -p "$cg"
  rc=0
  ct_sh "echo \$\$ >$cg/cgroup.procs && exec setpriv --reuid=65534 --regid=65534 --groups=$gid sealkeep get apps/report/token" ||
    rc=$?
  ct_sh "rmdir $cg" || true
  expect_eq "from a user unit named report.service (exit)" "$rc" 5
  audit_has '"path":"apps/report/token"' '"outcome":"denied"' '"unit":"user@65534.service"' ||
    fail "no denied record naming the caller's real unit, user@65534.service"
}
check unit_binding_cannot_be_claimed unit_binding_cannot_be_claimed

# shop.service (docs/deploy.md) runs under `sealkeep run --on-change exit`: it starts with its
# key in a file, and a new key (new bytes) restarts it, through Restart=on-failure, with the
# new one; a put of the same bytes does not.
journal_has() {  # UNIT TEXT [SECONDS]: waits for a line of UNIT in this boot holding TEXT
  local deadline=$((SECONDS + ${3:-30}))
  until ct_journal -b -u "$1" -o cat | grep -qF -- "$2"; do
    [ $SECONDS -lt $deadline ] || return 1
    sleep 0.2
  done
}
run_restarts_a_service_on_a_new_value() {
  ct systemctl start shop.service
  journal_has shop.service 'shop: key of 10 bytes' || fail "shop.service did not start with its key"
  local restarts
  restarts=$(ct systemctl show -P NRestarts shop.service)
  ct_sh "printf %s shop-key-1 | sealkeep put apps/shop/api-key"  # the same bytes
  journal_has shop.service 'apps/shop/api-key: a new version with the same bytes; nothing to do' ||
    fail "run did not look at the new version"
  expect_eq "restarts after a put of the same bytes" "$(ct systemctl show -P NRestarts shop.service)" "$restarts"
  ct_sh "printf %s shop-key-two | sealkeep put apps/shop/api-key"
  journal_has shop.service 'shop: key of 12 bytes' || fail "shop.service was not restarted with the new key"
  expect_eq "restarts after a new key" "$(ct systemctl show -P NRestarts shop.service)" "$((restarts + 1))"
  ct systemctl stop shop.service
  # run ends by the TERM that ended its command: a clean stop, not a failed unit.
  expect_eq "shop.service's result after a stop" "$(ct systemctl show -P Result shop.service)" success
  [ -z "$(ct_sh 'ls -A /run/shop 2>/dev/null')" ] || fail "files left in /run/shop"
}
check run_restarts_a_service_on_a_new_value run_restarts_a_service_on_a_new_value

reload_refuses_a_broken_policy() {
  ct cp /etc/sealkeep/policy.toml /root/policy.good
  ct_sh 'printf "\n[[bindings]]\nname = \"broken\"\nroles = [\"no-such-role\"]\nmatch = { uid = 1 }\n" >>/etc/sealkeep/policy.toml'
  local rc=0
  ct systemctl reload sealkeepd || rc=$?
  # The good policy goes back before anything is judged, so a failure here cannot break the
  # checks after it (a restart would meet the broken file).
  ct cp /root/policy.good /etc/sealkeep/policy.toml
  [ "$rc" -ne 0 ] || fail "systemctl reload accepted a broken policy"
  journal_has sealkeepd.service "unknown role 'no-such-role'" || fail "the agent did not say why"
  expect_eq "sealkeepd after the refused reload" "$(ct systemctl is-active sealkeepd)" active
  ct systemctl start report.service  # the running policy still serves
  ct systemctl reload sealkeepd
}
check reload_refuses_a_broken_policy reload_refuses_a_broken_policy

upgrade_restarts_the_agent_and_keeps_every_secret() {
  local before after
  before=$(ct systemctl show -P MainPID sealkeepd.service)
  ct_sh 'cd /root && apt-get install -y -q --reinstall ./sealkeep_0.1.1_amd64.deb'
  ct_wait_active sealkeepd.service 60
  after=$(ct systemctl show -P MainPID sealkeepd.service)
  [ "$after" != "$before" ] || fail "the agent was not restarted (pid $before)"
  ct sealkeep verify
  expect_eq "apps/web/db-password" "$(ct sealkeep get apps/web/db-password)" 'correct horse'
  expect_eq "lane/after-boot" "$(ct sealkeep get lane/after-boot)" v-after-boot
}
check upgrade_restarts_the_agent_and_keeps_every_secret upgrade_restarts_the_agent_and_keeps_every_secret
