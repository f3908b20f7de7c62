#!/usr/bin/env bash
# Runs the end-to-end suite (pytest + psycopg, Debian's Python) against the
# binaries in build/bin.
set -euo pipefail
cd "$(dirname "$0")/.."
export LB_PROJECT_ROOT=$PWD
export PATH=$PWD/build/bin:$PWD/build/tools:$PATH
/usr/bin/python3 -m pytest -q -p no:cacheprovider e2e "$@"
