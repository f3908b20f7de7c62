#!/usr/bin/env bash
# `make run-local`: start lakebase on this machine as processes (see scripts/run.py).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
lb_script_traps run
lb_step "starting the launcher"
exec /usr/bin/python3 scripts/run.py
