# shellcheck shell=bash
# tests/system/checks/20-socket.sh: socket activation as deployed. The service requires its
# socket unit, so whatever is stopped or started, in any order, a client finds a listening
# socket whenever either unit runs (sourced by tests/system/lane.sh).

# The agent answers on /run/sealkeep/api.sock (starting it through the socket if need be).
socket_answers() {
  local out
  out=$(ct curl -sS --max-time 60 --unix-socket /run/sealkeep/api.sock http://sk/v1/health) ||
    fail "no answer on the socket after: $1"
  echo "$1: $out"
  case $out in *'"status":"unsealed"'*) ;; *) fail "after $1 the agent answered $out" ;; esac
}

socket_survives_every_order() {
  expect_eq "/run/sealkeep owner and mode" "$(ct stat -c '%U:%G %a' /run/sealkeep)" "sealkeep:sealkeep 750"
  ct systemctl stop sealkeepd.service
  expect_eq "socket after stopping the service" "$(ct systemctl is-active sealkeepd.socket)" active
  ct test -S /run/sealkeep/api.sock
  socket_answers "stop service, then connect (activates it)"
  ct systemctl restart sealkeepd.service
  socket_answers "restart service"
  ct systemctl stop sealkeepd.socket
  expect_eq "service after stopping the socket" "$(ct systemctl is-active sealkeepd.service || true)" inactive
  ct systemctl start sealkeepd.service
  expect_eq "socket after starting the service" "$(ct systemctl is-active sealkeepd.socket)" active
  socket_answers "stop socket, start service"
  ct systemctl stop sealkeepd.service sealkeepd.socket
  ct systemctl start sealkeepd.socket
  socket_answers "stop both, start socket, connect"
  ct systemctl enable --now sealkeepd.socket
  socket_answers "enable --now the socket while the service runs"
  ct systemctl restart sealkeepd.socket
  ct_wait_active sealkeepd.service 60
  socket_answers "restart the socket"
  expect_eq "api.sock mode and group" "$(ct stat -c '%a %G' /run/sealkeep/api.sock)" "660 sealkeep"
}
check socket_survives_every_order socket_survives_every_order
