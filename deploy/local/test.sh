#!/usr/bin/env bash
# The README's test command: installs what is missing, starts the local services,
# builds everything and runs every test (unit and integration) against them.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
bash "$DBQ_ROOT/deploy/local/install.sh"
bash "$DBQ_ROOT/deploy/local/start.sh"
source "$DBQ_DEV/env"
cd "$DBQ_ROOT"
say "building (debug) and running the tests"
swift build --build-tests > "$DBQ_DEV/build.log" 2>&1 || { grep -E "error|warning: .*Sources" "$DBQ_DEV/build.log" >&2; die "the build failed (log: $DBQ_DEV/build.log)"; }
swift test --skip-build "$@"
