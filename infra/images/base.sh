#!/usr/bin/env bash
# Make a Debian trixie base image without a registry: mmdebstrap builds the root file system
# from Debian's packages and `docker import` loads it. It has the layout of the public
# python:3.13-slim-trixie image the runtime's Dockerfile defaults to: Debian trixie, `python3`
# 3.13 and pip on PATH, CA certificates, tzdata. Used for the LocalStack test image (amd64) and
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
  --include=python3,python3-pip,python-is-python3,ca-certificates,netbase,tzdata \
  --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
  --dpkgopt='path-exclude=/usr/share/locale/*' \
  --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*' \
  trixie "$rootfs" "$mirror"
# Loaded only once the root file system is complete, so a failed run leaves no image behind.
# `docker load` of a one-layer archive rather than `docker import`: import cannot record a
# foreign architecture (Docker 20.10), and BuildKit looks for an arm64 base by its config.
python3 - "$rootfs" "$arch" "$tag" <<'PY' | "$docker" load >/dev/null
import hashlib, io, json, sys, tarfile, time
rootfs, arch, tag = sys.argv[1:]
digest = hashlib.sha256()
with open(rootfs, "rb") as f:
    for block in iter(lambda: f.read(1 << 20), b""):
        digest.update(block)
diff_id = "sha256:" + digest.hexdigest()
config = json.dumps({
    "architecture": arch, "os": "linux", "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    "config": {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8"],
               "Cmd": ["python3"]},
    "rootfs": {"type": "layers", "diff_ids": [diff_id]},
    "history": [{"created_by": "mmdebstrap trixie (infra/images/base.sh)"}],
}).encode()
config_name = hashlib.sha256(config).hexdigest() + ".json"
manifest = json.dumps([{"Config": config_name, "RepoTags": [tag], "Layers": ["layer.tar"]}]).encode()
with tarfile.open(fileobj=sys.stdout.buffer, mode="w|") as out:
    for name, data in ((config_name, config), ("manifest.json", manifest)):
        info = tarfile.TarInfo(name)
        info.size = len(data)
        out.addfile(info, io.BytesIO(data))
    out.add(rootfs, arcname="layer.tar")
PY
echo "$tag"
