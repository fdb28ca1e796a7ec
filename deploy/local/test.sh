#!/usr/bin/env bash
# The README's test command: installs what is missing, starts the local services (one
# Redis, a Redis Cluster, PostgreSQL, S3), builds everything and runs every test (unit
# and integration) against them; then the queue and beat suites again, against the cluster.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
bash "$DBQ_ROOT/deploy/local/install.sh"
bash "$DBQ_ROOT/deploy/local/start.sh"
bash "$DBQ_ROOT/deploy/local/cluster.sh" start
source "$DBQ_DEV/env"
source "$DBQ_DEV/cluster.env"
cd "$DBQ_ROOT"
# No GSSAPI encryption probe on connect: the local servers have no Kerberos, and libpq's
# probe takes Kerberos' mutexes, which the test process's exit destroys under a connection
# a test's detached cleanup is still opening (an abort in k5_mutex_lock after every test
# passed: 2 of 5 runs of the export and storage suites, 0 of 4 with this).
export PGGSSENCMODE=disable
say "building (debug) and running the tests"
swift build --build-tests > "$DBQ_DEV/build.log" 2>&1 || { grep -E "error|warning: .*Sources" "$DBQ_DEV/build.log" >&2; die "the build failed (log: $DBQ_DEV/build.log)"; }
swift test --skip-build "$@"
say "the queue and beat suites against the Redis Cluster ($DBQ_CLUSTER_URL)"
DBQ_TEST_REDIS_URL="$DBQ_CLUSTER_URL" swift test --skip-build --filter RedisQueueTests --skip ClusterFailoverTests "$@"
