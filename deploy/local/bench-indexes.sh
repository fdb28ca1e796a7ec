#!/usr/bin/env bash
# Runs `dbq bench indexes` (release build) against the local services: index advice on a
# database of 200 tables with 1,000 distinct statements, and a create-index job through
# Redis beside psql's CREATE INDEX CONCURRENTLY on pgbench scale 50.
# Extra arguments go to the command (e.g. --runs 5).
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
prepare_bench
"$DBQ" bench indexes "$@"
