#!/usr/bin/env bash
# Runs `dbq bench export` (release build) against the local services: a generated table of
# personal data (about 1 GiB as COPY text) and pgbench at scale 50, each exported by dbq
# (raw, zstd, and with three of seven columns masked) and imported, beside psql \copy on
# the same server in the same run. Extra arguments go to the command (e.g. --runs 5).
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
prepare_bench
"$DBQ" bench export "$@"
