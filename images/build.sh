#!/usr/bin/env bash
# `make images`: builds every image in images/ with podman build.
#
#   images/build.sh [NAME...]        build the named images (default: all whose
#                                    sources are in the tree)
#   images/build.sh --tag NAME       print NAME's image reference for this source
#
# Each images/NAME/ holds a Dockerfile and a `sources` file listing the repo
# paths its build stage needs. The build context is those paths only, and the
# image is tagged localhost/lakebase/NAME:<hash of those paths' contents and
# of the Dockerfile>, so a build is skipped when the image for the current
# source exists (images are cached in LB_PODMAN_DIR, shared by worktrees and
# runs: see images/podman-env.sh). The base image (images/base) comes first.
# build/images/NAME.ref holds the reference just built, for tests and devcluster.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
. images/podman-env.sh
lb_script_traps images
lb_podman_env

image_ref() {
    local name=$1 dir=images/$1 path
    [ -f "$dir/Dockerfile" ] && [ -f "$dir/sources" ] ||
        lb_fail "images/$name has no Dockerfile or sources file"
    local hash
    hash=$({
        cat "$dir/Dockerfile" "$dir/sources"
        while read -r path; do
            [ -n "$path" ] || continue
            [ -e "$path" ] || lb_fail "images/$name/sources names \"$path\", which does not exist"
            find "$path" -type f ! -path '*/tests/*' ! -path '*/fuzz/*' -print0 | LC_ALL=C sort -z |
                xargs -0 sha256sum
        done <"$dir/sources"
    } | sha256sum | cut -c1-16)
    echo "localhost/lakebase/$name:$hash"
}

if [ "${1:-}" = --tag ]; then
    image_ref "$2"
    exit 0
fi

# Whether every path images/NAME/sources lists exists in this tree.
sources_present() {
    local path
    while read -r path; do
        [ -z "$path" ] || [ -e "$path" ] || return 1
    done <"images/$1/sources"
}

names=("$@")
if [ ${#names[@]} -eq 0 ]; then
    for d in images/*/; do
        n=$(basename "$d")
        [ "$n" = base ] && continue
        # all images: one whose component is not in this tree yet (the
        # controller before controller/ lands) is skipped; named, it fails
        if [ -f "images/$n/sources" ] && ! sources_present "$n"; then
            echo "images: skipping $n: a path in images/$n/sources is not in this tree"
            continue
        fi
        names+=("$n")
    done
fi

images/base/build.sh
mkdir -p build/images
for name in "${names[@]}"; do
    ref=$(image_ref "$name")
    if podman image exists "$ref"; then
        echo "images: $ref is up to date"
    else
        lb_step "building image $name"
        LB_HINT="podman build's output above names the failed step (an apt-get step needs Debian's mirror)"
        ctx=$(mktemp -d)
        while read -r path; do
            [ -n "$path" ] || continue
            mkdir -p "$ctx/$(dirname "$path")"
            cp -a "$path" "$ctx/$path"
        done <"images/$name/sources"
        rm -rf "$ctx"/*/tests "$ctx"/*/fuzz
        echo "images: building $ref"
        start=$(date +%s)
        podman build --quiet --layers --network=host -f "images/$name/Dockerfile" -t "$ref" \
            -t "localhost/lakebase/$name:dev" "$ctx" >/dev/null
        rm -rf "$ctx"
        echo "images: built $ref in $(($(date +%s) - start)) s"
        LB_HINT=
    fi
    echo "$ref" >"build/images/$name.ref"
done
