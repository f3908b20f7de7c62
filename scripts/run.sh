#!/usr/bin/env bash
# `make run`: start lakebase on this machine (see scripts/run.py).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
lb_script_traps run
lb_step "starting the launcher"
exec /usr/bin/python3 scripts/run.py
