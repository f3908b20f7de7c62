# Sourced by images/*.sh: gives lakebase its own podman configuration and
# storage, so the machine's /etc/containers and /var/lib/containers stay
# untouched, and every worktree and every devcluster shares one image cache.
#
#   LB_PODMAN_DIR   persistent root: containers.conf, storage.conf, image and
#                   container storage, CNI network definitions
#                   (default /var/lib/lakebase/podman)
#   LB_PODMAN_RUN   volatile runtime state (default /run/lakebase/podman)
#
# devcluster (devcluster/podman.c) writes the same two files with the same
# contents from the same defaults; keep them in step.
#
# crun fails on this machine's hybrid cgroups, hence runc; podman's default
# ulimits exceed the hard limit of the machine, hence default_ulimits.

LB_PODMAN_DIR=${LB_PODMAN_DIR:-/var/lib/lakebase/podman}
LB_PODMAN_RUN=${LB_PODMAN_RUN:-/run/lakebase/podman}

lb_podman_env() {
    mkdir -p "$LB_PODMAN_DIR/storage" "$LB_PODMAN_DIR/networks" "$LB_PODMAN_RUN"
    local conf=$LB_PODMAN_DIR/containers.conf storage=$LB_PODMAN_DIR/storage.conf
    local want_conf want_storage
    want_conf=$(printf '%s\n' \
        '[containers]' \
        'default_ulimits = ["nofile=4096:4096", "nproc=4096:4096"]' \
        '[engine]' \
        'runtime = "runc"' \
        'cgroup_manager = "cgroupfs"' \
        'events_logger = "file"' \
        "tmp_dir = \"$LB_PODMAN_RUN/libpod\"" \
        '[network]' \
        'network_backend = "cni"' \
        "network_config_dir = \"$LB_PODMAN_DIR/networks\"")
    want_storage=$(printf '%s\n' \
        '[storage]' \
        'driver = "overlay"' \
        "graphroot = \"$LB_PODMAN_DIR/storage\"" \
        "runroot = \"$LB_PODMAN_RUN/storage\"")
    [ "$(cat "$conf" 2>/dev/null)" = "$want_conf" ] || printf '%s\n' "$want_conf" >"$conf"
    [ "$(cat "$storage" 2>/dev/null)" = "$want_storage" ] || printf '%s\n' "$want_storage" >"$storage"
    export CONTAINERS_CONF=$conf CONTAINERS_STORAGE_CONF=$storage
}
