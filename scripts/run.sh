#!/usr/bin/env bash
# `make run`: start lakebase on this machine (see scripts/run.py).
set -euo pipefail
cd "$(dirname "$0")/.."
exec /usr/bin/python3 scripts/run.py
