#!/usr/bin/env bash
# Builds the Debian bookworm base image from Debian's own packages with
# mmdebstrap and imports it as docker.io/library/debian:bookworm-slim, the
# name the Dockerfiles use, so they build unchanged anywhere (no registry is
# reachable here). Skipped when the image exists; LB_REBUILD_BASE=1 forces it.
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/lib.sh
. images/podman-env.sh
lb_script_traps images-base
lb_podman_env

tag=docker.io/library/debian:bookworm-slim
if [ -z "${LB_REBUILD_BASE:-}" ] && podman image exists "$tag"; then
    exit 0
fi
lb_step "building the base image with mmdebstrap"
LB_HINT="check that Debian's mirror (deb.debian.org) is reachable"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "images: building $tag with mmdebstrap (about a minute)"
mmdebstrap --quiet --variant=minbase --format=tar \
    --aptopt='Acquire::Retries "3"' \
    --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*.bin' \
    bookworm "$tmp/base.tar" http://deb.debian.org/debian
lb_step "importing the base image"
podman import --quiet --change 'CMD ["bash"]' "$tmp/base.tar" "$tag" >/dev/null
echo "images: $tag ready"
