#!/usr/bin/env bash
# tests/system/lane.sh: the real-systemd lane. Installs the Debian package into a fresh
# Debian 12 container booted by systemd-nspawn (a real systemd 252 as PID 1) and runs the
# checks in tests/system/checks/ against it, the way an admin's host would run sealkeep.
#
#   tests/system/lane.sh [DEB]      (tools/dev test-system builds DEB and runs this)
#
# DEB defaults to the newest build/sealkeep_*_amd64.deb. Needs root, systemd-nspawn (package
# systemd-container), debootstrap, and Debian's archive (first run, or new dependencies). When
# it cannot run it says "SYSTEM LANE CANNOT RUN: why" and exits 2: it never skips quietly.
# Exit status: 0 every check passed, 1 a check failed, 2 the lane could not run.
#
# Environment:
#   SK_SYSTEM_CACHE   cache folder (default /var/cache/sealkeep-test-system). Holds
#                     rootfs-KEY: `debootstrap --variant=minbase --include=LIST bookworm`, KEY
#                     a hash of the suite, mirror and include list, so a changed list rebuilds;
#                     base-KEY2: that tree plus the package's dependencies (installed with the
#                     .deb, which is then purged), KEY2 also covering the .deb's Depends,
#                     Pre-Depends and Recommends, so a new dependency re-populates it. Both are
#                     built under a *.partial name and renamed when complete (an interrupted
#                     build is never used); a newer one replaces older ones. Delete the folder
#                     to start cold.
#   SK_SYSTEM_MIRROR  Debian mirror for debootstrap (default http://deb.debian.org/debian)
#   SK_SYSTEM_KEEP=1  keep the run's folder (/var/tmp/sealkeep-lane.*: root/ is the container's
#                     tree, logs/ has the install, console and per-check logs)
#   SK_SYSTEM_CHECKS  a bash regex; only checks whose name matches run (others show "skip")
#   SK_SYSTEM_BOOT_TIMEOUT (120), SK_SYSTEM_POWEROFF_TIMEOUT (60), SK_SYSTEM_CT_TIMEOUT (300):
#                     seconds for a boot to reach running/degraded, for a poweroff, for one `ct`
#
# Writing checks: tests/system/checks/NN-name.sh are sourced in lexical order (LC_ALL=C) after
# the first boot. Each file defines functions and calls `check NAME FUNCTION` for each; a
# check runs in a subshell under `set -Eeuo pipefail`, so its first failing command fails it
# and is printed with its call stack (do not rely on that inside functions you call from an
# `if`, `&&` or `||`). Being a subshell, a check cannot change the lane's variables; the
# container's pids are the exception (ct_boot/ct_poweroff/ct_reboot keep them in a state file
# the lane reads back), so a check may reboot the container. Its output goes to
# LANE_LOGS/checks/NAME.log and is printed if it fails. The helpers:
#
#   ct CMD...             run CMD in the booted container (nsenter into every namespace of its
#                         PID 1; env cleared to PATH, HOME=/root, LANG=C.UTF-8; stdin passed
#                         through, so `printf %s v | ct sealkeep put a/b` works). Note: the
#                         process is in the container's namespaces but in no unit of the
#                         container's systemd; for a unit-shaped caller use
#                         `ct systemd-run --wait --pipe -p User=... CMD`. A `ct` still
#                         running at a poweroff fails (its process is killed).
#   ct_sh 'TEXT'          `bash -eo pipefail -c TEXT` in the container
#   ct_boot               boot $CT_DIR; returns when `systemctl is-system-running` says running
#                         or degraded (else fails after SK_SYSTEM_BOOT_TIMEOUT)
#   ct_poweroff           `systemctl poweroff`, wait for nspawn to exit; kill it (and fail) if it
#                         hangs past SK_SYSTEM_POWEROFF_TIMEOUT
#   ct_reboot             ct_poweroff, then ct_boot on the same tree (a real cold boot)
#   ct_alive              is the container up?
#   ct_wait_active UNIT SECONDS   wait until UNIT is active (polls every 0.2 s); fails at once
#                         if it lands in "failed", or after SECONDS, printing its status
#   fail MSG              fail the check, saying MSG
#   expect_eq WHAT ACTUAL EXPECTED
#   ct_journal [ARGS...]  journalctl --no-pager ARGS in the container (from the files when it
#                         is down)
# Variables: CT_DIR (the container's root on the host, live: files read or planted there are
# the container's, except under its own tmpfs /tmp and /run), CT_NAME (machine name and
# hostname), SK_DEB (the .deb under test), SK_ROOT (the checkout), LANE_LOGS (logs folder;
# install.log is apt-get's output; kept with SK_SYSTEM_KEEP=1).
# A check that leaves the container down is followed by a fresh boot before the next one.
set -euo pipefail
export LC_ALL=C

SK_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
LANE_START=$EPOCHREALTIME

CACHE=${SK_SYSTEM_CACHE:-/var/cache/sealkeep-test-system}
MIRROR=${SK_SYSTEM_MIRROR:-http://deb.debian.org/debian}
SUITE=bookworm
# swtpm and tpm2-tools: the TPM checks run a software TPM as a unit of the container.
INCLUDE=systemd,systemd-sysv,dbus,curl,ca-certificates,procps,python3,swtpm,swtpm-tools,tpm2-tools,libtss2-tcti-swtpm0
BOOT_TIMEOUT=${SK_SYSTEM_BOOT_TIMEOUT:-120}
POWEROFF_TIMEOUT=${SK_SYSTEM_POWEROFF_TIMEOUT:-60}
CT_TIMEOUT=${SK_SYSTEM_CT_TIMEOUT:-300}
CT_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

say() { printf 'lane: %s\n' "$*" >&2; }
cannot_run() {
  printf '\n*** SYSTEM LANE CANNOT RUN: %s ***\n\n' "$*" >&2
  exit 2
}
# seconds since START ($EPOCHREALTIME), one decimal
since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }'; }

# ---------------------------------------------------------------------------------------
# Preconditions

[ "$(id -u)" -eq 0 ] || cannot_run "needs root (debootstrap, chroot, systemd-nspawn); run it as root"
for tool in systemd-nspawn debootstrap chroot nsenter unshare flock dpkg-deb sha256sum pgrep; do
  command -v "$tool" >/dev/null ||
    cannot_run "$tool is missing (tools/dev test-system installs systemd-container, debootstrap, util-linux, procps)"
done

SK_DEB=${1:-}
if [ -z "$SK_DEB" ]; then
  # shellcheck disable=SC2012
  SK_DEB=$(ls -t "$SK_ROOT"/build/sealkeep_*_amd64.deb 2>/dev/null | head -1 || true)
  [ -n "$SK_DEB" ] || cannot_run "no build/sealkeep_*_amd64.deb (run tools/dev package, or pass the .deb)"
fi
[ -f "$SK_DEB" ] || cannot_run "$SK_DEB does not exist"
SK_DEB=$(realpath "$SK_DEB")
dpkg-deb -f "$SK_DEB" Package >/dev/null 2>&1 || cannot_run "$SK_DEB is not a Debian package"

mkdir -p "$CACHE"
CACHE=$(realpath "$CACHE")

WORK=""
LOCK_FD=""
CT_NSPAWN_PID=""
CT_PID1=""
CT_BOOTS=0
CT_NAME=skt-$$
CHECK_PID=""

declare -a CHECK_NAMES=() CHECK_RESULTS=() CHECK_SECONDS=()

# ---------------------------------------------------------------------------------------
# Folders: unmount whatever is left beneath (an interrupted debootstrap leaves /proc, /sys and
# bind-mounted /dev nodes in its target), then delete without crossing into other filesystems.

safe_rm() {
  local d=$1 m
  [ -e "$d" ] || return 0
  d=$(realpath "$d")
  while read -r m; do
    umount -l "$m" 2>/dev/null || true
  done < <(awk -v d="$d" '$2 == d || index($2, d "/") == 1 { print $2 }' /proc/self/mounts | sort -r)
  rm -rf --one-file-system "$d"
}

# in_chroot DIR CMD...: CMD in DIR with a clean environment (apt and dpkg maintainer scripts),
# with its own /proc as on any host (systemd-tmpfiles refuses to work without one) in private
# mount and PID namespaces: nothing stays mounted and no daemon outlives CMD.
in_chroot() {
  local dir=$1
  shift
  unshare --mount --pid --fork --mount-proc="$dir/proc" \
    chroot "$dir" /usr/bin/env -i PATH="$CT_PATH" HOME=/root LANG=C.UTF-8 \
    DEBIAN_FRONTEND=noninteractive "$@"
}

apt_in() {
  local dir=$1
  shift
  in_chroot "$dir" apt-get -q -y -o Dpkg::Use-Pty=0 "$@"
}

# ---------------------------------------------------------------------------------------
# The container

proc_alive() {  # PID exists and is not a zombie
  local st
  [ -n "${1:-}" ] && [ -r "/proc/$1/stat" ] || return 1
  st=$(sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1) || return 1
  [ -n "$st" ] && [ "$st" != Z ]
}

ct_save_state() {
  printf 'CT_NSPAWN_PID=%s\nCT_PID1=%s\nCT_BOOTS=%s\n' "$CT_NSPAWN_PID" "$CT_PID1" "$CT_BOOTS" >"$WORK/ct.state"
}

ct_alive() { proc_alive "$CT_NSPAWN_PID" && proc_alive "$CT_PID1"; }

ct() {
  [ -n "$CT_PID1" ] || { echo "ct: the container is not booted" >&2; return 1; }
  timeout -k 5 "$CT_TIMEOUT" nsenter -t "$CT_PID1" -a /usr/bin/env -i PATH="$CT_PATH" HOME=/root \
    LANG=C.UTF-8 TERM=dumb SYSTEMD_PAGER= SYSTEMD_COLORS=0 "$@"
}

ct_sh() { ct /bin/bash -eo pipefail -c "$1"; }

ct_boot() {
  if ct_alive; then
    echo "ct_boot: the container is already running" >&2
    return 1
  fi
  CT_BOOTS=$((CT_BOOTS + 1))
  local console=$LANE_LOGS/console-$CT_BOOTS.log t=$EPOCHREALTIME
  # Its own session: a Ctrl-C on the lane's terminal must not reach nspawn (it would halt the
  # container behind the lane's back); the lane's trap powers it off.
  setsid systemd-nspawn -b -D "$CT_DIR" --register=no --keep-unit --machine="$CT_NAME" --console=passive \
    --capability=CAP_IPC_LOCK >"$console" 2>&1 </dev/null &
  CT_NSPAWN_PID=$!
  CT_PID1=""
  ct_save_state
  local deadline=$((SECONDS + BOOT_TIMEOUT)) state=""
  # PID 1 is the child of nspawn whose comm is systemd (the host has no systemd to register with).
  while [ -z "$CT_PID1" ]; do
    CT_PID1=$(pgrep -P "$CT_NSPAWN_PID" -x systemd || true)
    if [ -z "$CT_PID1" ]; then
      proc_alive "$CT_NSPAWN_PID" || { tail -30 "$console" >&2; echo "ct_boot: systemd-nspawn exited" >&2; return 1; }
      [ $SECONDS -lt $deadline ] || { tail -30 "$console" >&2; echo "ct_boot: no systemd after ${BOOT_TIMEOUT}s" >&2; return 1; }
      sleep 0.1
    fi
  done
  ct_save_state
  while :; do
    state=$(ct systemctl is-system-running 2>/dev/null || true)
    case $state in
      running | degraded) break ;;
      maintenance | stopping | offline)
        tail -30 "$console" >&2
        echo "ct_boot: the container's systemd is $state" >&2
        return 1
        ;;
    esac
    if ! proc_alive "$CT_NSPAWN_PID" || [ $SECONDS -ge $deadline ]; then
      tail -30 "$console" >&2
      echo "ct_boot: not running after $(since "$t") s (state: ${state:-no answer})" >&2
      return 1
    fi
    sleep 0.2
  done
  echo "booted ($state) in $(since "$t") s" >&2
  if [ "$state" = degraded ]; then
    ct systemctl --failed --no-legend >&2 || true
  fi
}

ct_poweroff() {
  if ! proc_alive "$CT_NSPAWN_PID"; then
    wait "$CT_NSPAWN_PID" 2>/dev/null || true
    CT_PID1=""
    ct_save_state
    return 0
  fi
  local t=$EPOCHREALTIME rc=0 pid1=$CT_PID1
  ct systemctl poweroff --no-block >/dev/null 2>&1 || true
  local deadline=$((SECONDS + POWEROFF_TIMEOUT))
  while proc_alive "$CT_NSPAWN_PID" && [ $SECONDS -lt $deadline ]; do
    ct_release_nsenters "$pid1"
    sleep 0.2
  done
  if proc_alive "$CT_NSPAWN_PID"; then
    echo "ct_poweroff: nspawn still running after ${POWEROFF_TIMEOUT}s; killing it" >&2
    rc=1
    kill -TERM "$CT_NSPAWN_PID" 2>/dev/null || true
    deadline=$((SECONDS + 10))
    while proc_alive "$CT_NSPAWN_PID" && [ $SECONDS -lt $deadline ]; do sleep 0.2; done
    # Killing a PID namespace's init kills everything in it.
    if proc_alive "$CT_PID1"; then kill -KILL "$CT_PID1" 2>/dev/null || true; fi
    if proc_alive "$CT_NSPAWN_PID"; then kill -KILL "$CT_NSPAWN_PID" 2>/dev/null || true; fi
    deadline=$((SECONDS + 10))
    while proc_alive "$CT_NSPAWN_PID" && [ $SECONDS -lt $deadline ]; do sleep 0.2; done
  else
    echo "powered off in $(since "$t") s" >&2
  fi
  wait "$CT_NSPAWN_PID" 2>/dev/null || true
  CT_PID1=""
  ct_save_state
  return $rc
}

# systemd-shutdown stops every process in the container before killing them; an nsenter (of
# `ct`, outside the container) whose child is stopped stops itself too, and then never reaps
# that child, which holds up the shutdown. Let them go on.
ct_release_nsenters() {
  local pid
  for pid in $(pgrep -x nsenter || true); do
    if [ "$(ps -o stat= -p "$pid" 2>/dev/null | cut -c1)" = T ] &&
        tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q "^nsenter -t $1 "; then
      kill -CONT "$pid" 2>/dev/null || true
    fi
  done
}

ct_reboot() {
  ct_poweroff
  ct_boot
}

ct_wait_active() {
  local unit=$1 timeout=$2 state=""
  local deadline=$((SECONDS + timeout))
  while :; do
    state=$(ct systemctl is-active "$unit" 2>/dev/null || true)
    [ "$state" = active ] && return 0
    if [ "$state" = failed ] || [ $SECONDS -ge $deadline ]; then
      echo "ct_wait_active: $unit is ${state:-unknown}" >&2
      ct systemctl status --no-pager --lines=20 "$unit" >&2 || true
      return 1
    fi
    sleep 0.2
  done
}

ct_journal() {
  if ct_alive; then
    ct journalctl --no-pager "$@"
  elif [ -d "$CT_DIR/var/log/journal" ]; then
    journalctl --directory="$CT_DIR/var/log/journal" --no-pager "$@"
  else
    echo "(the container is down and keeps no journal on disk)"
  fi
}

fail() {
  echo "check failed: $*" >&2
  return 1
}

expect_eq() {
  [ "$2" = "$3" ] || fail "$1: got '$2', expected '$3'"
}

# The ERR trap of a check: the failing command and where it was called from.
check_err_trace() {
  local rc=$? i
  echo "check failed (exit $rc): $BASH_COMMAND" >&2
  for ((i = 1; i < ${#FUNCNAME[@]}; i++)); do
    [ "${FUNCNAME[$i]}" != check ] || break
    echo "  in ${FUNCNAME[$i]} at ${BASH_SOURCE[$i]##*/}:${BASH_LINENO[$((i - 1))]}" >&2
  done
}

# kill_check PID: end a check still running (the lane was interrupted) and everything it started,
# except the container's nspawn (ct_poweroff stops that cleanly).
kill_check() {
  local pid=$1 child
  [ "$pid" != "$CT_NSPAWN_PID" ] || return 0
  kill -STOP "$pid" 2>/dev/null || true
  for child in $(pgrep -P "$pid" || true); do
    kill_check "$child"
  done
  kill -KILL "$pid" 2>/dev/null || true
}

# check NAME FUNCTION: run FUNCTION in a subshell under set -e; PASS or FAIL (with its output and
# the container's journals).
check() {
  local name=$1 fn=$2 t=$EPOCHREALTIME rc log
  log=$LANE_LOGS/checks/$name.log
  if [ -n "${SK_SYSTEM_CHECKS:-}" ] && ! [[ $name =~ $SK_SYSTEM_CHECKS ]]; then
    CHECK_NAMES+=("$name") CHECK_RESULTS+=(skip) CHECK_SECONDS+=(0.0)
    return 0
  fi
  if ! ct_alive; then
    say "the container is down before $name; booting it"
    ct_boot >>"$LANE_LOGS/boots.log" 2>&1 || true
  fi
  # In the background, so that the lane's INT/TERM trap runs at once (a foreground child would
  # delay it until the check ends); cleanup ends the check's processes.
  (
    set -Eeuo pipefail
    trap check_err_trace ERR
    "$fn"
  ) >"$log" 2>&1 </dev/null &
  CHECK_PID=$!
  set +e
  wait "$CHECK_PID"
  rc=$?
  set -e
  CHECK_PID=""
  # shellcheck source=/dev/null
  . "$WORK/ct.state"
  local secs
  secs=$(since "$t")
  CHECK_NAMES+=("$name") CHECK_SECONDS+=("$secs")
  if [ $rc -eq 0 ]; then
    CHECK_RESULTS+=(PASS)
    printf 'PASS %s (%s s)\n' "$name" "$secs"
  else
    CHECK_RESULTS+=(FAIL)
    printf 'FAIL %s (%s s, exit %s)\n' "$name" "$secs" "$rc"
    echo "--- $name: output (last 60 lines)"
    tail -60 "$log"
    echo "--- $name: journalctl -b (last 60 lines)"
    ct_journal -b -n 60 2>&1 || true
    echo "--- $name: journalctl -u sealkeepd (last 60 lines)"
    ct_journal -u sealkeepd -n 60 2>&1 || true
    echo "--- end of $name"
  fi
}

# ---------------------------------------------------------------------------------------
# Whatever happens (a failed check, an error, Ctrl-C): power off, delete the run's folder.

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [ -n "$WORK" ]; then
    # shellcheck source=/dev/null
    [ -f "$WORK/ct.state" ] && . "$WORK/ct.state"
    if [ -n "$CHECK_PID" ]; then
      kill_check "$CHECK_PID"
      wait "$CHECK_PID" 2>/dev/null || true
    fi
    if ct_alive; then
      say "powering the container off"
      ct_poweroff >/dev/null 2>&1 || true
    fi
    if [ "${SK_SYSTEM_KEEP:-0}" = 1 ]; then
      say "kept $WORK (root/: the container's tree, logs/: install, console and check logs)"
    else
      safe_rm "$WORK"
    fi
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'say "interrupted"; exit 130' INT
trap 'say "terminated"; exit 143' TERM

# ---------------------------------------------------------------------------------------
# The cached trees (built once, under an exclusive lock so two lanes never race on them)

exec {LOCK_FD}>"$CACHE/.lock"
if ! flock -n "$LOCK_FD"; then
  say "waiting for another lane's use of $CACHE"
  flock "$LOCK_FD"
fi
# Under the lock, a *.partial is what an interrupted lane left: never used, removed.
for stale in "$CACHE"/*.partial; do
  [ -e "$stale" ] || continue
  say "removing the interrupted build $stale"
  safe_rm "$stale"
done

rootfs_key=$(printf 'debootstrap --variant=minbase --include=%s %s %s\n' "$INCLUDE" "$SUITE" "$MIRROR" |
  sha256sum | cut -c1-16)
ROOTFS=$CACHE/rootfs-$rootfs_key
t=$EPOCHREALTIME
if [ -d "$ROOTFS" ]; then
  say "rootfs: reusing $ROOTFS (warm, $(since "$t") s)"
else
  say "rootfs: building $ROOTFS with debootstrap (cold; a few minutes)"
  if ! debootstrap --variant=minbase --include="$INCLUDE" "$SUITE" "$ROOTFS.partial" "$MIRROR" \
      >"$CACHE/debootstrap.log" 2>&1; then
    tail -20 "$CACHE/debootstrap.log" >&2
    safe_rm "$ROOTFS.partial"
    cannot_run "debootstrap failed (log: $CACHE/debootstrap.log)"
  fi
  mv "$ROOTFS.partial" "$ROOTFS"
  for old in "$CACHE"/rootfs-*; do
    [ "$old" = "$ROOTFS" ] || { say "removing the outdated $old"; safe_rm "$old"; }
  done
  say "rootfs: built in $(since "$t") s (cold)"
fi

deps=$(dpkg-deb -f "$SK_DEB" Pre-Depends Depends Recommends)
base_key=$(printf '%s\n%s\n' "$rootfs_key" "$deps" | sha256sum | cut -c1-16)
BASE=$CACHE/base-$base_key
t=$EPOCHREALTIME
if [ -d "$BASE" ]; then
  say "base: reusing $BASE (the package's dependencies already installed)"
else
  say "base: installing the package's dependencies into a copy of the rootfs"
  cp -a --reflink=auto "$ROOTFS" "$BASE.partial"
  cp --remove-destination /etc/resolv.conf "$BASE.partial/etc/resolv.conf"
  cp "$SK_DEB" "$BASE.partial/tmp/sealkeep.deb"
  log=$CACHE/base.log
  {
    apt_in "$BASE.partial" update &&
      apt_in "$BASE.partial" install /tmp/sealkeep.deb &&
      apt_in "$BASE.partial" purge sealkeep
  } >"$log" 2>&1 || { tail -30 "$log" >&2; cannot_run "installing the package's dependencies failed (log: $log)"; }
  # The purge keeps the user, /etc/sealkeep and /var/lib/sealkeep (by design: secrets are data).
  # A base must look like a host that never had sealkeep.
  in_chroot "$BASE.partial" userdel sealkeep >>"$log" 2>&1 || true
  in_chroot "$BASE.partial" groupdel sealkeep >>"$log" 2>&1 || true
  if in_chroot "$BASE.partial" getent passwd sealkeep >/dev/null ||
      in_chroot "$BASE.partial" getent group sealkeep >/dev/null; then
    cannot_run "could not remove the sealkeep user from the base (log: $log)"
  fi
  rm -rf "$BASE.partial/var/lib/sealkeep" "$BASE.partial/etc/sealkeep" "$BASE.partial/run/sealkeep" \
    "$BASE.partial/tmp/sealkeep.deb"
  apt_in "$BASE.partial" clean >>"$log" 2>&1
  mv "$BASE.partial" "$BASE"
  for old in "$CACHE"/base-*; do
    [ "$old" = "$BASE" ] || { say "removing the outdated $old"; safe_rm "$old"; }
  done
  say "base: dependencies installed in $(since "$t") s"
fi

# ---------------------------------------------------------------------------------------
# This run's container: a copy of the base, the package installed as an admin would

mkdir -p /var/tmp
WORK=$(mktemp -d /var/tmp/sealkeep-lane.XXXXXX)
CT_DIR=$WORK/root
LANE_LOGS=$WORK/logs
mkdir -p "$LANE_LOGS/checks"
t=$EPOCHREALTIME
cp -a --reflink=auto "$BASE" "$CT_DIR"
flock -u "$LOCK_FD"
exec {LOCK_FD}>&-
say "container tree: copied in $(since "$t") s ($CT_DIR)"

t=$EPOCHREALTIME
cp --remove-destination /etc/resolv.conf "$CT_DIR/etc/resolv.conf"
cp "$SK_DEB" "$CT_DIR/tmp/$(basename "$SK_DEB")"
if ! apt_in "$CT_DIR" install "/tmp/$(basename "$SK_DEB")" >"$LANE_LOGS/install.log" 2>&1; then
  tail -30 "$LANE_LOGS/install.log" >&2
  say "apt-get install ./$(basename "$SK_DEB") failed in a fresh Debian 12 (log: $LANE_LOGS/install.log)"
  exit 1
fi
rm -f "$CT_DIR/tmp/$(basename "$SK_DEB")"
say "package: $(basename "$SK_DEB") installed in $(since "$t") s"

# ---------------------------------------------------------------------------------------
# Boot, run every check, power off, report

t=$EPOCHREALTIME
ct_boot 2>"$LANE_LOGS/boots.log" || {
  cat "$LANE_LOGS/boots.log" >&2
  cannot_run "the container did not boot (console: $LANE_LOGS/console-1.log; SK_SYSTEM_KEEP=1 keeps it)"
}
say "container $CT_NAME: booted in $(since "$t") s (systemd as PID 1: host pid $CT_PID1)"

shopt -s nullglob
for f in "$SK_ROOT"/tests/system/checks/[0-9][0-9]-*.sh; do
  # shellcheck source=/dev/null
  . "$f"
done
shopt -u nullglob
[ ${#CHECK_NAMES[@]} -gt 0 ] || cannot_run "no checks in tests/system/checks/"

ct_poweroff 2>>"$LANE_LOGS/boots.log" || say "the final poweroff hung (the container was killed)"

failed=0
echo
printf '%-28s %-6s %8s\n' check result seconds
printf '%-28s %-6s %8s\n' ---------------------------- ------ --------
for i in "${!CHECK_NAMES[@]}"; do
  printf '%-28s %-6s %8s\n' "${CHECK_NAMES[$i]}" "${CHECK_RESULTS[$i]}" "${CHECK_SECONDS[$i]}"
  [ "${CHECK_RESULTS[$i]}" != FAIL ] || failed=$((failed + 1))
done
echo
say "lane total: $(since "$LANE_START") s; ${#CHECK_NAMES[@]} checks, $failed failed"
[ $failed -eq 0 ] || exit 1
