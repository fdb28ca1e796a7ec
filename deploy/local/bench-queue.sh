#!/usr/bin/env bash
# Runs `dbq bench queue` (release build) against the local Redis, beside Celery's drain on
# the same Redis in the same run (Celery from PyPI in a venv under .dev/). With
# DBQ_BENCH_CLUSTER=1 it runs against the local Redis Cluster (deploy/local/cluster.sh).
# Extra arguments go to the command (e.g. --runs 5 --scaling 1,2).
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
prepare_bench
venv="$DBQ_DEV/celery-venv"
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import celery' 2>/dev/null; then
  say "installing celery[redis] into $venv"
  python3 -m venv "$venv" && "$venv/bin/pip" install -q 'celery[redis]' || die "cannot install celery[redis] into $venv"
fi
url="$DBQ_REDIS_URL"
if [ "${DBQ_BENCH_CLUSTER:-0}" = 1 ]; then
  bash "$DBQ_ROOT/deploy/local/cluster.sh" start
  source "$DBQ_DEV/cluster.env"
  url="$DBQ_CLUSTER_URL"
  # Celery takes one node of the cluster as a plain Redis (it has no cluster support).
  "$DBQ" bench queue --redis-url "$url" "$@"
else
  "$DBQ" bench queue --redis-url "$url" --celery "$venv/bin/python" "$@"
fi
