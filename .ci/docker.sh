# Sourced by .ci/run (and usable by hand: `source .ci/docker.sh && docker_start`).
# Installs Debian's Docker engine and arm64 emulation, then starts a private dockerd whose
# data, exec root and socket live in a temp dir. No registry is reachable here, so every image
# is built locally; the engine is only for building and running those images.
#
# docker_start: exports DOCKER_HOST and DOCKER_STATE_DIR, returns non-zero (with the reason in
#   DOCKER_UNAVAILABLE) when no engine can be started; ARM64_QEMU names the registered arm64
#   emulator (empty: none). docker_stop: stops it and removes the dir.

source "$(dirname "${BASH_SOURCE[0]}")/apt.sh"

DOCKER_APT_PACKAGES=(docker.io mmdebstrap arch-test qemu-user-static)

docker_install() {
  local missing=()
  for tool in dockerd mmdebstrap arch-test qemu-aarch64-static; do
    command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
  done
  ((${#missing[@]} == 0)) && return 0
  if [[ $(id -u) != 0 ]]; then
    DOCKER_UNAVAILABLE="not root, cannot install ${missing[*]}"
    return 1
  fi
  if ! apt_install "${TMPDIR:-/tmp}/agentbot-apt.log" "${DOCKER_APT_PACKAGES[@]}"; then
    DOCKER_UNAVAILABLE="apt-get install ${DOCKER_APT_PACKAGES[*]} failed (see ${TMPDIR:-/tmp}/agentbot-apt.log)"
    return 1
  fi
}

# The runtime makes itself a child subreaper (prctl PR_SET_CHILD_SUBREAPER) so that no process
# of a turn escapes it; qemu before 9 refuses that prctl with EINVAL, so the arm64 smoke turn
# could not run. Debian bookworm ships qemu 7.2: then qemu-aarch64 comes from Debian trixie's
# qemu-user (static binaries), fetched with apt into a private list and cache directory (the
# system's apt sources are left alone) and kept in /usr/local/lib/agentbot-ci.
QEMU_MIN_MAJOR=9
qemu_aarch64() {
  local qemu major
  qemu=$(command -v qemu-aarch64-static || true)
  major=$("${qemu:-false}" --version 2>/dev/null | sed -n 's/^qemu-aarch64 version \([0-9]*\)\..*/\1/p')
  if ((${major:-0} >= QEMU_MIN_MAJOR)); then
    echo "$qemu"
    return 0
  fi
  local dir=/usr/local/lib/agentbot-ci apt
  if [[ -x $dir/qemu-aarch64 ]]; then
    echo "$dir/qemu-aarch64"
    return 0
  fi
  apt=$(mktemp -d "${TMPDIR:-/tmp}/agentbot-qemu.XXXXXX")
  mkdir -p "$apt/lists/partial" "$apt/cache/archives/partial" "$dir"
  echo "deb ${DEBIAN_MIRROR:-http://deb.debian.org/debian} trixie main" >"$apt/sources.list"
  local opts=(-o "Dir::Etc::sourcelist=$apt/sources.list" -o Dir::Etc::sourceparts=-
    -o "Dir::State::lists=$apt/lists" -o Dir::State::status=/dev/null -o "Dir::Cache=$apt/cache"
    -o APT::Sandbox::User=root)
  if apt-get -qq "${opts[@]}" update >&2 && (cd "$apt" && apt-get -qq "${opts[@]}" download qemu-user >&2) &&
    dpkg-deb --fsys-tarfile "$apt"/qemu-user_*.deb | tar -x -C "$apt" ./usr/bin/qemu-aarch64 &&
    install -m 0755 "$apt/usr/bin/qemu-aarch64" "$dir/qemu-aarch64"; then
    rm -rf "$apt"
    echo "$dir/qemu-aarch64"
    return 0
  fi
  rm -rf "$apt"
  return 1
}

# arm64 binaries run through qemu; F opens the interpreter now, so it also works inside
# containers and chroots that do not have it. The kernel tries the newest entry first, so
# ours wins over an older qemu-aarch64 entry already registered.
binfmt_arm64() {
  local dir=/proc/sys/fs/binfmt_misc qemu name
  [[ -e $dir/register ]] || mount -t binfmt_misc binfmt_misc "$dir" 2>/dev/null || return 1
  qemu=$(qemu_aarch64) || return 1
  ARM64_QEMU=$qemu
  name=qemu-aarch64
  [[ $qemu == /usr/local/lib/agentbot-ci/* ]] && name=agentbot-aarch64
  if [[ -e $dir/$name ]]; then
    # O (open-binary): the kernel opens the program for qemu, so one its user may run but not
    # read (the image's CLI) runs as on arm64 hardware.
    grep -qx "interpreter $qemu" "$dir/$name" && grep -q "^flags: .*O" "$dir/$name" && return 0
    echo -1 >"$dir/$name"  # ours, pointing at another interpreter or without O
  fi
  printf '%s' ":$name:M::\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00:\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff:$qemu:FO" \
    >"$dir/register"
}

docker_start() {
  DOCKER_UNAVAILABLE="" ARM64_QEMU=""
  docker_install || return 1
  DOCKER_STATE_DIR=$(mktemp -d "${TMPDIR:-/tmp}/agentbot-dockerd.XXXXXX")
  # No iptables and no masquerading: nothing is published beyond 127.0.0.1 and the host's
  # firewall is left alone; containers reach the host through the bridge.
  dockerd --iptables=false --ip6tables=false --ip-masq=false \
    --data-root "$DOCKER_STATE_DIR/data" --exec-root "$DOCKER_STATE_DIR/exec" \
    --pidfile "$DOCKER_STATE_DIR/dockerd.pid" --host "unix://$DOCKER_STATE_DIR/docker.sock" \
    >"$DOCKER_STATE_DIR/dockerd.log" 2>&1 &
  DOCKERD_PID=$!
  export DOCKER_HOST="unix://$DOCKER_STATE_DIR/docker.sock" DOCKER_STATE_DIR
  for _ in $(seq 1 60); do
    if /usr/bin/docker info --format '{{.ServerVersion}}' >/dev/null 2>&1; then
      binfmt_arm64 || echo "   (arm64 emulation unavailable: binfmt_misc cannot be mounted or no qemu >= $QEMU_MIN_MAJOR)" >&2
      return 0
    fi
    kill -0 "$DOCKERD_PID" 2>/dev/null || break
    sleep 0.5
  done
  DOCKER_UNAVAILABLE="dockerd did not start: $(tail -n 1 "$DOCKER_STATE_DIR/dockerd.log")"
  docker_stop
  return 1
}

docker_stop() {
  if [[ -n ${DOCKERD_PID:-} ]] && kill -0 "$DOCKERD_PID" 2>/dev/null; then
    # containers first (testcontainers' own cleanup may not have run after a failure)
    /usr/bin/docker ps -q | xargs -r /usr/bin/docker rm -f >/dev/null 2>&1 || true
    kill "$DOCKERD_PID" 2>/dev/null || true
    wait "$DOCKERD_PID" 2>/dev/null || true
  fi
  DOCKERD_PID=""
  if [[ -n ${DOCKER_STATE_DIR:-} && -d $DOCKER_STATE_DIR ]]; then
    # dockerd leaves its network namespace mounted under the exec root
    grep -o " $DOCKER_STATE_DIR/[^ ]*" /proc/mounts | sort -r | xargs -r -n 1 umount -l 2>/dev/null || true
    rm -rf "$DOCKER_STATE_DIR"
  fi
}
