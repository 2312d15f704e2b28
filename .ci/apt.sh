# Sourced by .ci/docker.sh: Debian packages for CI steps that may run side by side.
# A second apt-get fails instead of waiting while another one holds the package lists' lock
# (DPkg::Lock::Timeout covers only dpkg's lock), so the steps take turns on one lock file.

APT_LOCK=${APT_LOCK:-/var/tmp/agentbot-ci-apt.lock}

# apt_install LOG PACKAGE...: refresh the lists and install the packages without
# recommends; apt's output goes to LOG. Needs root.
apt_install() {
  local log=$1
  shift
  (
    flock 9 &&
      apt-get update -qq &&
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@"
  ) 9>"$APT_LOCK" >"$log" 2>&1
}
