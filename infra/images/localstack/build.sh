#!/usr/bin/env bash
# Build the LocalStack image the tests start through testcontainers (local_stack._aws):
#   infra/images/localstack/build.sh   -> prints the tag (agentbot-localstack:<version>)
# Needs Docker and the base image (infra/images/base.sh amd64); pip packages come from PyPI
# on the host, since nothing inside `docker build` can reach a registry here.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
docker=${DOCKER:-docker}
version=$(sed -n 's/^localstack-core\[runtime\]==//p' "$here/requirements.in")
tag="agentbot-localstack:$version"
if "$docker" image inspect "$tag" >/dev/null 2>&1; then
  echo "$tag"
  exit 0
fi
base=$("$here/../base.sh" amd64)
context=$(mktemp -d "${TMPDIR:-/tmp}/agentbot-localstack.XXXXXX")
trap 'rm -rf "$context"' EXIT
# requirements.txt: `uv pip compile requirements.in --python-version 3.13
#   --python-platform x86_64-manylinux_2_28 --exclude-newer <release date> --generate-hashes`
# (a newer cbor2 than the release's breaks LocalStack silently: "No component plugins found").
uv pip install --quiet --target "$context/site" --no-deps --require-hashes \
  --python-version 3.13 --python-platform x86_64-manylinux_2_28 -r "$here/requirements.txt" >&2
cp "$here/Dockerfile" "$context/"
"$docker" build --quiet --build-arg "BASE_IMAGE=$base" -t "$tag" "$context" >/dev/null
echo "$tag"
