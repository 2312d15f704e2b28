# Sourced by .ci/run (and usable by hand: `source .ci/docker.sh && docker_start`).
# Installs Debian's Docker engine and arm64 emulation, then starts a private dockerd whose
# data, exec root and socket live in a temp dir. No registry is reachable here, so every image
# is built locally; the engine is only for building and running those images.
#
# docker_start: exports DOCKER_HOST and DOCKER_STATE_DIR, returns non-zero (with the reason in
#   DOCKER_UNAVAILABLE) when no engine can be started. docker_stop: stops it and removes the dir.

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
  if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
      --no-install-recommends "${DOCKER_APT_PACKAGES[@]}"; } >"${TMPDIR:-/tmp}/agentbot-apt.log" 2>&1; then
    DOCKER_UNAVAILABLE="apt-get install ${DOCKER_APT_PACKAGES[*]} failed (see ${TMPDIR:-/tmp}/agentbot-apt.log)"
    return 1
  fi
}

# arm64 binaries run through qemu-user-static; F opens the interpreter now, so it also works
# inside containers and chroots that do not have it.
binfmt_arm64() {
  local dir=/proc/sys/fs/binfmt_misc
  [[ -e $dir/register ]] || mount -t binfmt_misc binfmt_misc "$dir" 2>/dev/null || return 1
  [[ -e $dir/qemu-aarch64 ]] && return 0
  printf '%s' ':qemu-aarch64:M::\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00:\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff:/usr/bin/qemu-aarch64-static:F' \
    >"$dir/register"
}

docker_start() {
  DOCKER_UNAVAILABLE=""
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
      binfmt_arm64 || echo "   (arm64 emulation unavailable: binfmt_misc cannot be mounted)" >&2
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
