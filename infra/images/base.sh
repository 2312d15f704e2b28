#!/usr/bin/env bash
# Make a Debian trixie base image without a registry: mmdebstrap builds the root file system
# from Debian's packages and `docker import` loads it. It has the layout of the public
# python:3.13-slim-trixie image the runtime's Dockerfile defaults to: Debian trixie, `python3`
# 3.13 on PATH, CA certificates, tzdata, no pip. Used for the LocalStack test image (amd64) and
# for CI builds of the runtime image (amd64 build stage, arm64 final stage).
#
#   infra/images/base.sh amd64|arm64    -> prints the tag, e.g. agentbot-base:trixie-arm64
# A foreign architecture needs qemu-user-static registered in binfmt_misc (.ci/docker.sh).
set -euo pipefail
arch=${1:?usage: base.sh amd64|arm64}
tag="agentbot-base:trixie-$arch"
docker=${DOCKER:-docker}
if "$docker" image inspect "$tag" >/dev/null 2>&1; then
  echo "$tag"
  exit 0
fi
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
rootfs=$(mktemp "${TMPDIR:-/tmp}/agentbot-rootfs.XXXXXX.tar")
trap 'rm -f "$rootfs"' EXIT
# minbase + the packages python:3.13-slim carries; apt lists, docs and caches are left out.
mmdebstrap --quiet --variant=minbase --arch="$arch" \
  --include=python3,python-is-python3,ca-certificates,netbase,tzdata \
  --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
  --dpkgopt='path-exclude=/usr/share/locale/*' \
  --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*' \
  trixie "$rootfs" "$mirror"
# imported only once the root file system is complete: a failed run leaves no image behind
"$docker" import --platform "linux/$arch" \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' --change 'CMD ["python3"]' "$rootfs" "$tag" >/dev/null
echo "$tag"
