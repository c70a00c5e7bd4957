#!/usr/bin/env bash
# Packaging proof, run by .ci/run after the tests (as root, on Debian 12):
#   1. one `cargo build --profile dist`, reused for the .deb and the container image;
#   2. the .deb: control fields and file list, dpkg -i, the server started the way the unit
#      starts it (hearth user, installed config) answers /health/ready, systemd-analyze verify,
#      remove + reinstall keeps config edits and data, purge removes data and the user;
#   3. the real hearth.service under systemd, in a systemd-nspawn guest booted from an overlay of
#      this machine's root: enable --now, reload (valid: graceful restart; invalid: refused, the
#      server keeps running), stop;
#   4. the image (buildah FROM scratch, podman): /health/ready from the host, data written to a
#      named volume survives a container restart, a container without a volume refuses to
#      start unless HEARTH_ALLOW_EPHEMERAL_DATA=1.
# Prints binary size, .deb size, image size and idle RSS. Cleans up after itself.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
export CARGO_TERM_COLOR=never

T0=$(date +%s)
step() { echo "== [ci-package +$(($(date +%s) - T0))s] $*"; }
fail() {
  echo "ci-package: FAIL: $*" >&2
  exit 1
}
# assert_contains <haystack> <needle> <what>
assert_contains() { grep -qF -- "$2" <<<"$1" || fail "$3: expected to find '$2' in:"$'\n'"$1"; }

[ "$(id -u)" = 0 ] || fail "must run as root (it installs the .deb and runs podman)"
if dpkg-query -W -f='${Status}' hearth 2>/dev/null | grep -q 'install ok'; then
  fail "a hearth package is already installed on this machine; this script would replace and purge it"
fi

DEB_PORT=18181
IMG_PORT=18182
IMAGE=localhost/hearth:ci-package
VOLUME=hearth-ci-package-data
CONTAINER=hearth-ci-package
work="$(mktemp -d /tmp/hearth-ci-package.XXXXXX)"
server_pid=""
deb_installed=0
ns_mounted=""
PODMAN=(podman --runtime runc)
# This machine's rlimits cannot be passed into a container as they are; runc needs them lowered
# (see shared/research/crates.md §3). Without systemd as PID 1 podman logs "unable to get
# systemd connection to add healthchecks": it cannot schedule the periodic HEALTHCHECK; the
# script runs it with `podman healthcheck run` instead.
RUN_LIMITS=(--ulimit nofile=1024:1024 --ulimit nproc=1024:1024)

cleanup() {
  local rc=$?
  set +e
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid"
    wait "$server_pid" 2>/dev/null
  fi
  if command -v podman >/dev/null; then
    "${PODMAN[@]}" rm -f -t 5 "$CONTAINER" "$CONTAINER-eph" >/dev/null 2>&1
    "${PODMAN[@]}" volume rm -f "$VOLUME" >/dev/null 2>&1
    "${PODMAN[@]}" rmi -f "$IMAGE" >/dev/null 2>&1
  fi
  if [ -n "$ns_mounted" ]; then
    umount "$ns_mounted" || umount -l "$ns_mounted"
  fi
  # Never delete through a still-mounted overlay of /.
  if mountpoint -q "$work/ns/root" 2>/dev/null; then
    echo "ci-package: $work/ns/root is still mounted; leaving $work in place" >&2
    work=""
  fi
  if [ "$deb_installed" = 1 ]; then
    dpkg --purge hearth >/dev/null 2>&1
  fi
  [ -z "$work" ] || rm -rf "$work"
  if [ "$rc" != 0 ]; then
    echo "ci-package: FAILED after $(($(date +%s) - T0))s (exit $rc)" >&2
  fi
  exit "$rc"
}
trap cleanup EXIT

# wait_ready <url> <pid|container:NAME> <log> : polls /health/ready with a deadline; fails early if the
# server process died.
wait_ready() {
  local url="$1" who="$2" log="$3" deadline=$(($(date +%s) + 90))
  until curl -fs -o /dev/null --max-time 2 "$url"; do
    case "$who" in
      container:*)
        if [ "$("${PODMAN[@]}" inspect --format '{{.State.Running}}' "${who#container:}")" != true ]; then
          "${PODMAN[@]}" logs "${who#container:}" >&2 || true
          fail "container ${who#container:} stopped before $url answered"
        fi
        ;;
      *)
        if ! kill -0 "$who" 2>/dev/null; then
          cat "$log" >&2 || true
          fail "server exited before $url answered"
        fi
        ;;
    esac
    [ "$(date +%s)" -lt "$deadline" ] || {
      cat "$log" >&2 || true
      fail "$url did not answer within 90 s"
    }
    sleep 0.3
  done
}

# wait_exit <pid> : waits for a process we signalled, with a deadline; returns its exit status.
wait_exit() {
  local pid="$1" deadline=$(($(date +%s) + 30))
  while kill -0 "$pid" 2>/dev/null; do
    [ "$(date +%s)" -lt "$deadline" ] || fail "process $pid did not exit within 30 s of SIGTERM"
    sleep 0.2
  done
  local rc=0
  wait "$pid" || rc=$?
  return "$rc"
}

rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }

# ---------------------------------------------------------------------------------------------
step "tools"
missing=()
for tool in podman buildah runc curl; do
  command -v "$tool" >/dev/null || missing+=("$tool")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq podman buildah runc curl >/dev/null
fi
if ! command -v cargo-deb >/dev/null; then
  cargo install cargo-deb --locked --version 3.8.0
fi
cargo deb --version

step "packaged config is config.toml.example with data_dir=/var/lib/hearth and nothing else"
diff <(sed 's|^data_dir = .*|data_dir = "/var/lib/hearth"|' config.toml.example) packaging/config.toml ||
  fail "packaging/config.toml drifted from config.toml.example; regenerate it with the sed above"

step "dist build (once; reused by the .deb and the image)"
build_t0=$(date +%s)
cargo build --profile dist --locked
echo "dist build took $(($(date +%s) - build_t0)) s"
binary="$CARGO_TARGET_DIR/dist/hearth"
version_out="$("$binary" --version)"
echo "$version_out"
crate_version="$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)"
assert_contains "$version_out" "$crate_version" "hearth --version"
[[ "$version_out" =~ [0-9a-f]{7,}|unknown ]] || fail "hearth --version shows no commit: $version_out"
git_commit="$(git rev-parse --short=12 HEAD 2>/dev/null || true)"
if [ -n "$git_commit" ]; then
  assert_contains "$version_out" "$git_commit" "hearth --version commit"
fi
binary_size=$(stat -c %s "$binary")

# ---------------------------------------------------------------------------------------------
step "cargo deb"
cargo deb --profile dist --no-build --output "$work/"
deb="$(ls "$work"/hearth_*_amd64.deb)"
deb_size=$(stat -c %s "$deb")
echo "$deb ($deb_size bytes)"

step "dpkg-deb -I"
info="$(dpkg-deb -I "$deb")"
echo "$info"
assert_contains "$info" "Package: hearth" "control"
assert_contains "$info" "Version: $crate_version" "control"
assert_contains "$info" "Architecture: amd64" "control"
depends="$(dpkg-deb -f "$deb" Depends)"
for dep in libc6 ca-certificates passwd; do
  assert_contains "$depends" "$dep" "Depends"
done
mkdir "$work/control"
dpkg-deb -e "$deb" "$work/control"
assert_contains "$(cat "$work/control/conffiles")" "/etc/hearth/config.toml" "conffiles"
# Not enabled or started on install: the postinst may only re-enable a unit the operator had
# enabled before (was-enabled) and try-restart a running one after an upgrade.
assert_contains "$(cat "$work/control/postinst")" "was-enabled hearth.service" "postinst (no-enable snippet)"
if grep -v '^[[:space:]]*#' "$work/control/postinst" |
  grep -Eq 'deb-systemd-invoke (start|restart) |systemctl (--system )?(start|enable) '; then
  grep -n 'enable\|start' "$work/control/postinst" >&2
  fail "postinst enables or starts the service; it must wait for the operator"
fi
assert_contains "$(cat "$work/control/postinst")" "useradd --system" "postinst"
# shellcheck disable=SC2016 # a literal line of the script
assert_contains "$(cat "$work/control/postrm")" 'if [ "$1" = "purge" ]' "postrm"

step "dpkg-deb -c"
contents="$(dpkg-deb -c "$deb")"
echo "$contents"
for f in ./usr/bin/hearth ./etc/hearth/config.toml ./usr/lib/systemd/system/hearth.service \
  ./usr/share/doc/hearth/copyright ./usr/share/doc/hearth/README.md \
  ./usr/share/doc/hearth/CHANGELOG.md ./usr/share/doc/hearth/config.toml.example; do
  assert_contains "$contents" " $f" "package contents"
done

# ---------------------------------------------------------------------------------------------
step "dpkg -i"
deb_installed=1
dpkg -i "$deb" </dev/null
id hearth
[ "$(stat -c '%U:%G %a' /var/lib/hearth)" = "hearth:hearth 700" ] ||
  fail "/var/lib/hearth is $(stat -c '%U:%G %a' /var/lib/hearth), expected hearth:hearth 700"
[ "$(stat -c '%U:%G %a' /etc/hearth/config.toml)" = "root:hearth 640" ] ||
  fail "/etc/hearth/config.toml is $(stat -c '%U:%G %a' /etc/hearth/config.toml), expected root:hearth 640"
# /lib is /usr/lib on Debian 12 (merged /usr): both names reach the unit.
[ -f /lib/systemd/system/hearth.service ] || fail "/lib/systemd/system/hearth.service missing"
[ ! -e /etc/systemd/system/multi-user.target.wants/hearth.service ] || fail "the unit was enabled on install"
assert_contains "$(/usr/bin/hearth --version)" "$crate_version" "installed hearth --version"

if command -v systemd-analyze >/dev/null; then
  step "systemd-analyze verify"
  # Without systemd as PID 1 it still parses the unit and checks the commands exist.
  systemd-analyze verify /lib/systemd/system/hearth.service 2>&1 | tee "$work/verify.log"
  # verify exits 0 on "Unknown key ..., ignoring" warnings: any line naming the unit fails.
  if grep -i 'hearth.service' "$work/verify.log"; then
    fail "systemd-analyze verify reported problems with hearth.service"
  fi
  # Exposure score of the hardening (0 = locked down, 10 = none); fails above 2.0.
  security="$(systemd-analyze security --offline=yes --no-pager --threshold=20 /lib/systemd/system/hearth.service 2>&1)" ||
    fail "hearth.service exposure above 2.0:"$'\n'"$security"
  grep 'Overall exposure' <<<"$security"
else
  step "systemd-analyze not installed: unit verification skipped"
fi

step "operator edits the conffile"
sed -i "s|^listen = .*|listen = \"127.0.0.1:$DEB_PORT\"|" /etc/hearth/config.toml
echo "# ci-package: operator edit marker" >>/etc/hearth/config.toml

# Start it the way hearth.service does: user hearth, HEARTH_CONFIG, working dir, umask 077,
# ExecStartPre then ExecStart. systemd is not PID 1 here, so the hardening itself is not applied.
start_like_unit() {
  (
    cd /var/lib/hearth
    umask 077
    export HEARTH_CONFIG=/etc/hearth/config.toml NO_COLOR=1
    setpriv --reuid=hearth --regid=hearth --init-groups /usr/bin/hearth config check
    exec setpriv --reuid=hearth --regid=hearth --init-groups /usr/bin/hearth serve
  ) >"$1" 2>&1 &
  server_pid=$!
}

step "hearth serve as the hearth user with /etc/hearth/config.toml"
start_like_unit "$work/serve1.log"
wait_ready "http://127.0.0.1:$DEB_PORT/health/ready" "$server_pid" "$work/serve1.log"
curl -fsS "http://127.0.0.1:$DEB_PORT/health/ready"
echo
HEARTH_CONFIG=/etc/hearth/config.toml setpriv --reuid=hearth --regid=hearth --init-groups \
  /usr/bin/hearth healthcheck || fail "hearth healthcheck failed against the running server"
[ "$(stat -c '%U %a' /var/lib/hearth/hearth.redb)" = "hearth 600" ] ||
  fail "hearth.redb is $(stat -c '%U %a' /var/lib/hearth/hearth.redb), expected hearth 600"
# Write real data through the admin socket (owner rights; root may open the 0600 socket).
curl -fsS --unix-socket /var/lib/hearth/hearth.sock -X POST -H 'content-type: application/json' \
  -d '{"name":"ci-package-deb"}' http://localhost/api/projects >/dev/null
# Idle RSS: let the startup work settle, then read it (a measurement, not a synchronization).
sleep 5
idle_rss_deb=$(rss_kib "$server_pid")
echo "first lines of the server log:"
head -n 20 "$work/serve1.log"

step "graceful stop (SIGTERM, as systemctl stop does)"
pid="$server_pid"
kill -TERM "$pid"
wait_exit "$pid" || fail "hearth serve exited non-zero on SIGTERM"
server_pid=""

step "dpkg -r keeps the conffile, the data and the user"
dpkg -r hearth </dev/null
[ ! -e /usr/bin/hearth ] || fail "/usr/bin/hearth still there after dpkg -r"
grep -q 'ci-package: operator edit marker' /etc/hearth/config.toml || fail "dpkg -r lost the config edit"
[ -f /var/lib/hearth/hearth.redb ] || fail "dpkg -r removed the data"
id hearth >/dev/null || fail "dpkg -r removed the hearth user"

step "reinstall (after remove, then in place) keeps the config edit and the data"
dpkg -i "$deb" </dev/null
grep -q 'ci-package: operator edit marker' /etc/hearth/config.toml || fail "reinstall replaced the edited config"
grep -q "^listen = \"127.0.0.1:$DEB_PORT\"" /etc/hearth/config.toml || fail "reinstall replaced the edited config"
# In place, as an upgrade does (prerm upgrade, postinst configure <old-version>).
dpkg -i "$deb" </dev/null
grep -q 'ci-package: operator edit marker' /etc/hearth/config.toml || fail "an in-place reinstall replaced the edited config"
start_like_unit "$work/serve2.log"
wait_ready "http://127.0.0.1:$DEB_PORT/health/ready" "$server_pid" "$work/serve2.log"
projects="$(curl -fsS --unix-socket /var/lib/hearth/hearth.sock http://localhost/api/projects)"
assert_contains "$projects" "ci-package-deb" "project created before dpkg -r"
pid="$server_pid"
kill -TERM "$pid"
wait_exit "$pid" || fail "hearth serve exited non-zero on SIGTERM"
server_pid=""

step "dpkg --purge removes config, data and user"
dpkg --purge hearth </dev/null
deb_installed=0
[ ! -e /var/lib/hearth ] || fail "/var/lib/hearth still there after purge"
[ ! -e /etc/hearth ] || fail "/etc/hearth still there after purge"
! id hearth >/dev/null 2>&1 || fail "user hearth still there after purge"

# ---------------------------------------------------------------------------------------------
step "the real hearth.service under systemd: boot this machine's root (overlaid) with systemd-nspawn"
# systemd is not PID 1 on the CI machine, so the unit's hardening, reload and restart logic are
# exercised in a guest: an overlay of / (writes go to a temporary upper layer) booted with
# systemd-nspawn, where packaging/systemd-test.sh installs the .deb and drives the unit.
if ! command -v systemd-nspawn >/dev/null; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq systemd-container >/dev/null
fi
ns="$work/ns"
mkdir -p "$ns/upper" "$ns/wk" "$ns/root" "$ns/out"
mount -t overlay overlay -o "lowerdir=/,upperdir=$ns/upper,workdir=$ns/wk" "$ns/root"
ns_mounted="$ns/root"
systemd-id128 new >"$ns/root/etc/machine-id"
mkdir -p "$ns/root/nstest"
cp "$deb" "$ns/root/nstest/hearth.deb"
cp packaging/systemd-test.sh "$ns/root/nstest/systemd-test.sh"
cat >"$ns/root/etc/systemd/system/hearth-systemd-test.service" <<'UNIT'
[Unit]
Description=hearth packaging test (ci-package.sh)
After=multi-user.target
[Service]
Type=oneshot
ExecStart=/bin/bash /nstest/systemd-test.sh /nstest/hearth.deb 18183
StandardOutput=journal+console
UNIT
ln -sf /etc/systemd/system/hearth-systemd-test.service \
  "$ns/root/etc/systemd/system/multi-user.target.wants/hearth-systemd-test.service"
# --register=no --keep-unit: no systemd on the host to register with.
timeout 300 systemd-nspawn -q -D "$ns/root" -b --register=no --keep-unit --link-journal=no \
  --bind="$ns/out:/nsout" --machine hearth-ci-package >"$ns/console" 2>&1 ||
  { tail -50 "$ns/console" >&2; fail "the systemd-nspawn guest did not boot and power off cleanly"; }
cat "$ns/out/result" 2>/dev/null || { tail -50 "$ns/console" >&2; fail "no result from the guest"; }
[ "$(tail -n 1 "$ns/out/result")" = PASS ] || fail "hearth.service under systemd (see above)"
umount "$ns/root"
ns_mounted=""

# ---------------------------------------------------------------------------------------------
step "image: buildah FROM scratch with the same dist binary"
bash packaging/build-image.sh --binary "$binary" --tag "$IMAGE"
image_size="$("${PODMAN[@]}" image inspect --format '{{.Size}}' "$IMAGE")"
healthcheck="$("${PODMAN[@]}" image inspect --format '{{json .Config.Healthcheck}}' "$IMAGE")"
echo "healthcheck: $healthcheck"
assert_contains "$healthcheck" "healthcheck" "image HEALTHCHECK"

step "a container without a volume refuses to start"
for mode in anonymous ignore tmpfs; do
  args=()
  [ "$mode" = anonymous ] || args=(--image-volume "$mode")
  set +e
  out="$("${PODMAN[@]}" run --rm "${RUN_LIMITS[@]}" "${args[@]}" "$IMAGE" 2>&1)"
  rc=$?
  set -e
  echo "image volume $mode: exit $rc: $out"
  [ "$rc" != 0 ] || fail "the container started without a volume ($mode)"
  assert_contains "$out" "-v hearth-data:/var/lib/hearth" "refusal message ($mode)"
done

step "with HEARTH_ALLOW_EPHEMERAL_DATA=1 it starts"
"${PODMAN[@]}" run -d --name "$CONTAINER-eph" "${RUN_LIMITS[@]}" --image-volume ignore \
  -e HEARTH_ALLOW_EPHEMERAL_DATA=1 -p "127.0.0.1:$IMG_PORT:8080" "$IMAGE" >/dev/null
wait_ready "http://127.0.0.1:$IMG_PORT/health/ready" "container:$CONTAINER-eph" /dev/null
# Logs are captured first: `podman logs | grep -q` would die of SIGPIPE under pipefail.
eph_log="$("${PODMAN[@]}" logs "$CONTAINER-eph" 2>&1)"
assert_contains "$eph_log" "HEARTH_ALLOW_EPHEMERAL_DATA is set" "warning about ephemeral data"
"${PODMAN[@]}" rm -f -t 10 "$CONTAINER-eph" >/dev/null

step "container with a named volume; /health/ready from the host"
"${PODMAN[@]}" volume create "$VOLUME" >/dev/null
run_named() {
  "${PODMAN[@]}" run -d --name "$CONTAINER" "${RUN_LIMITS[@]}" -v "$VOLUME:/var/lib/hearth" \
    -p "127.0.0.1:$IMG_PORT:8080" -e HEARTH_SERVER__PUBLIC_URL="http://127.0.0.1:$IMG_PORT" \
    "$IMAGE" >/dev/null
}
run_named
wait_ready "http://127.0.0.1:$IMG_PORT/health/ready" "container:$CONTAINER" /dev/null
curl -fsS "http://127.0.0.1:$IMG_PORT/health/ready"
echo
"${PODMAN[@]}" healthcheck run "$CONTAINER" || fail "the image's HEALTHCHECK failed against the running server"
"${PODMAN[@]}" exec "$CONTAINER" hearth --version
[ "$("${PODMAN[@]}" exec "$CONTAINER" hearth --version)" = "$version_out" ] || fail "image binary differs from the dist build"
volume_dir="$("${PODMAN[@]}" volume inspect --format '{{.Mountpoint}}' "$VOLUME")"
[ "$(stat -c %u "$volume_dir/hearth.redb")" = 65532 ] || fail "hearth.redb in the volume is not owned by uid 65532"
curl -fsS --unix-socket "$volume_dir/hearth.sock" -X POST -H 'content-type: application/json' \
  -d '{"name":"ci-package-image"}' http://localhost/api/projects >/dev/null
container_pid="$("${PODMAN[@]}" inspect --format '{{.State.Pid}}' "$CONTAINER")"
sleep 5
idle_rss_image=$(rss_kib "$container_pid")
container_log="$("${PODMAN[@]}" logs "$CONTAINER" 2>&1)"
sed -n 1,20p <<<"$container_log"

step "data survives a container restart"
"${PODMAN[@]}" restart -t 15 "$CONTAINER" >/dev/null
wait_ready "http://127.0.0.1:$IMG_PORT/health/ready" "container:$CONTAINER" /dev/null
projects="$(curl -fsS --unix-socket "$volume_dir/hearth.sock" http://localhost/api/projects)"
assert_contains "$projects" "ci-package-image" "project after container restart"

step "data survives replacing the container (new container, same volume)"
"${PODMAN[@]}" rm -f -t 15 "$CONTAINER" >/dev/null
run_named
wait_ready "http://127.0.0.1:$IMG_PORT/health/ready" "container:$CONTAINER" /dev/null
projects="$(curl -fsS --unix-socket "$volume_dir/hearth.sock" http://localhost/api/projects)"
assert_contains "$projects" "ci-package-image" "project after replacing the container"
"${PODMAN[@]}" stop -t 15 "$CONTAINER" >/dev/null
exit_code="$("${PODMAN[@]}" inspect --format '{{.State.ExitCode}}' "$CONTAINER")"
[ "$exit_code" = 0 ] || fail "container exited $exit_code on stop, expected a graceful 0"

# ---------------------------------------------------------------------------------------------
step "summary"
echo "hearth --version:        $version_out"
echo "dist binary:             $binary_size bytes ($((binary_size / 1024 / 1024)) MiB)"
echo ".deb:                    $deb_size bytes"
echo "image:                   $image_size bytes"
echo "idle RSS (.deb server):  ${idle_rss_deb} KiB"
echo "idle RSS (container):    ${idle_rss_image} KiB"
echo "ci-package: OK in $(($(date +%s) - T0)) s"
