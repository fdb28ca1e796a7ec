#!/usr/bin/env bash
# Runs `dbq bench snapshot` (release build) against the local services: snapshot and
# rollback of pgbench_accounts at scale 50 beside pg_dump -Fc -t and
# pg_restore --single-transaction --clean of the same table, in one run on one server.
# Extra arguments go to the command (e.g. --runs 5).
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
prepare_bench
"$DBQ" bench snapshot "$@"
