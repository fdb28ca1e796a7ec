#!/usr/bin/env bash
# Runs `dbq bench backup` (release build) against the local services: pgbench databases at
# scales 10 and 50 with incompressible bytea beside, backed up by dbq workers to a local
# directory and to S3, beside `pg_dump -Fc > file` and `pg_dump -Fc | aws s3 cp -` on the
# same servers in the same run. Extra arguments go to the command (e.g. --runs 5 --scale 100).
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
prepare_bench
"$DBQ" bench backup --s3-server-pid "$(cat "$DBQ_DEV/s3/moto.pid")" "$@"
