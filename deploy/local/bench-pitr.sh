#!/usr/bin/env bash
# dbq bench pitr beside pgBackRest: installs pgBackRest (Debian's 2.45) if missing, builds
# dbq in release mode, and runs the bench (it makes its own servers under /var/tmp).
# Usage: deploy/local/bench-pitr.sh [--scale N] [--seconds S]
set -euo pipefail
. "$(dirname "$0")/common.sh"
command -v pgbackrest >/dev/null || { say "installing pgbackrest"; apt-get install -y -q pgbackrest >/dev/null; }
bash "$DBQ_ROOT/deploy/release-build.sh"
"$DBQ_ROOT/.build-release/x86_64-unknown-linux-gnu/release/dbq" bench pitr "$@"
