#!/usr/bin/env bash
# Runs INSIDE a systemd-nspawn guest booted by ci-package.sh (systemd is PID 1 there): installs
# the .deb and drives the real hearth.service. Writes "ok ..." lines and finally PASS or
# "FAIL ..." to /nsout/result, then powers the guest off.
set -u
deb="$1"
port="${2:-18183}"
out=/nsout/result
: >"$out"
trap 'systemctl poweroff --no-block' EXIT

ok() { echo "ok $*" | tee -a "$out"; }
fail() {
  echo "FAIL $*" | tee -a "$out"
  systemctl status hearth --no-pager >>"$out" 2>&1
  journalctl -u hearth --no-pager -o cat >>"$out" 2>&1
  exit 1
}
ready() {
  local deadline=$(($(date +%s) + 60))
  until curl -fs -o /dev/null --max-time 2 "http://127.0.0.1:$port/health/ready"; do
    [ "$(date +%s)" -lt "$deadline" ] || return 1
    sleep 0.3
  done
}
main_pid() { systemctl show -p MainPID --value hearth; }

dpkg -i "$deb" </dev/null >>"$out" 2>&1 || fail "dpkg -i"
[ "$(systemctl is-enabled hearth 2>&1)" = disabled ] || fail "enabled on install: $(systemctl is-enabled hearth 2>&1)"
[ "$(systemctl is-active hearth 2>&1)" = inactive ] || fail "started on install"
ok "installed, not enabled, not started"

sed -i "s|^listen = .*|listen = \"127.0.0.1:$port\"|" /etc/hearth/config.toml
systemctl enable --now hearth >>"$out" 2>&1 || fail "systemctl enable --now hearth"
ready || fail "/health/ready did not answer under systemd"
ok "systemctl enable --now: /health/ready answers with the hardened unit"
[ "$(stat -c '%U %a' /var/lib/hearth/hearth.redb)" = "hearth 600" ] || fail "hearth.redb is $(stat -c '%U %a' /var/lib/hearth/hearth.redb)"
ok "hearth.redb owned by hearth, mode 600 (UMask=077)"
journalctl -u hearth --no-pager -o cat | grep -q 'hearth listening on' || fail "no startup line in the journal"
ok "server log reaches the journal"

pid1="$(main_pid)"
systemctl reload hearth || fail "systemctl reload with a valid config"
deadline=$(($(date +%s) + 60))
while pid="$(main_pid)"; [ "$pid" = "$pid1" ] || [ "$pid" = 0 ]; do
  [ "$(date +%s)" -lt "$deadline" ] || fail "reload did not restart the server"
  sleep 0.3
done
ready || fail "/health/ready after reload"
ok "reload with a valid config: graceful restart (pid $pid1 -> $pid)"

echo 'bogus_key = 1' >>/etc/hearth/config.toml
if systemctl reload hearth 2>>"$out"; then fail "reload accepted an invalid config"; fi
if [ "$(systemctl is-active hearth)" != active ] || [ "$(main_pid)" != "$pid" ]; then
  fail "a failed reload disturbed the running server"
fi
curl -fs -o /dev/null "http://127.0.0.1:$port/health/ready" || fail "/health/ready after a failed reload"
journalctl -u hearth --no-pager -o cat | grep -q 'bogus_key' || fail "the config error is not in the journal"
ok "reload with an invalid config fails, names the problem, the server keeps running"
sed -i '/^bogus_key/d' /etc/hearth/config.toml

systemctl stop hearth || fail "systemctl stop"
# Longer than RestartSec=2s: a stop must not be turned into a restart by RestartForceExitStatus=0.
sleep 3
[ "$(systemctl is-active hearth)" = inactive ] || fail "the service came back after systemctl stop"
[ "$(systemctl show -p Result --value hearth)" = success ] || fail "stop result $(systemctl show -p Result --value hearth)"
ok "systemctl stop: clean exit, stays stopped"

systemd-analyze security hearth --no-pager 2>&1 | grep 'Overall exposure' | tee -a "$out"
echo PASS >>"$out"
