#!/usr/bin/env bash
# Runs the end-to-end suite (pytest + psycopg from Debian's Python) against
# the binaries in build/bin. Each test starts its own processes on loopback
# in its own temporary directory.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
lb_script_traps e2e
lb_step "running the e2e suite"
export LB_PROJECT_ROOT=$PWD
export PATH=$PWD/build/bin:$PWD/build/tools:$PATH
if ! compgen -G "e2e/test_*.py" >/dev/null; then
    echo "e2e: no end-to-end tests yet (they arrive with the first daemon)"
    exit 0
fi
# A test that hangs (a commit waiting for a quorum that never comes) fails
# after LB_E2E_TIMEOUT seconds instead of stalling the run; the slowest test
# (the fault suite, or the devcluster tests building images on a fresh
# machine) takes a few minutes.
exec /usr/bin/python3 -m pytest -q -p no:cacheprovider -p timeout --durations=20 \
    --timeout="${LB_E2E_TIMEOUT:-1200}" --timeout-method=signal e2e "$@"
