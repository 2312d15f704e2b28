#!/usr/bin/env bash
# Build the runtime image (packages/agent-runtime/Dockerfile, linux/arm64) here, where no
# registry is reachable: the bases are Debian trixie images made by base.sh (the layout of the
# Dockerfile's default python:3.13-slim-trixie); PyPI is reached from the build with the host's
# network and CA bundle. Prints the image id; the tag is agentbot-runtime:ci.
#   infra/images/runtime.sh [tag]
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
docker=${DOCKER:-docker}
tag=${1:-agentbot-runtime:ci}
base_arm64=$("$repo/infra/images/base.sh" arm64)
base_native=$("$repo/infra/images/base.sh" amd64)
ca=${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}
secret=()
[[ -s $ca ]] && secret=(--secret "id=ca-bundle,src=$ca")
DOCKER_BUILDKIT=1 "$docker" build --quiet --platform linux/arm64 --network host "${secret[@]}" \
  --build-arg "BASE_IMAGE=$base_arm64" --build-arg "BUILD_IMAGE=$base_native" \
  -f "$repo/packages/agent-runtime/Dockerfile" -t "$tag" "$repo" >&2
"$docker" image inspect --format '{{.Id}}' "$tag"
