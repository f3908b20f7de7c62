#!/usr/bin/env bash
# `make run`: start lakebase on this machine.
#
# Today the project has its foundation library only; no daemon exists yet,
# so there is nothing to start. This script says so plainly instead of
# pretending, and lists what is built. It becomes the local stack
# (safekeepers, pageserver, compute, with a psql connection string) as those
# components land.
set -euo pipefail
cd "$(dirname "$0")/.."
echo "lakebase: built so far:"
for f in build/lib/*.a build/bin/*; do
    [ -e "$f" ] && echo "  $f"
done
daemons=(safekeeper pageserver compute-ctl lakebase-proxy lakebase-controller devcluster)
have=()
for d in "${daemons[@]}"; do [ -x "build/bin/$d" ] && have+=("$d"); done
if [ ${#have[@]} -eq 0 ]; then
    echo "lakebase: no daemon is built yet, so 'make run' cannot start a database."
    echo "lakebase: see README.md, section Status, for what works today."
    exit 0
fi
