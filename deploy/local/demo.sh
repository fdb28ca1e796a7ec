#!/usr/bin/env bash
# The README's first command: installs what is missing, starts the local services,
# builds dbq (release) and runs the main job end to end.
#
# The main job: a sample database with real data (pgbench), a backup pushed through
# Redis to a real worker process (pg_dump streamed through zstd and SHA-256 into the
# embedded local store, manifest last), a verification that restores it into a scratch
# database and compares row counts, and the list of backups.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
bash "$DBQ_ROOT/deploy/local/install.sh"
bash "$DBQ_ROOT/deploy/local/start.sh"
source "$DBQ_DEV/env"
cd "$DBQ_ROOT"
say "building dbq (release, as deploy/release-build.sh)"
DBQ="$(bash "$DBQ_ROOT/deploy/release-build.sh" 2> "$DBQ_DEV/build-release.log")" \
  || { grep -E "error" "$DBQ_DEV/build-release.log" >&2; die "the build failed (log: $DBQ_DEV/build-release.log)"; }
say ""
say "creating the sample database dbq_sample (pgbench scale 5: 500,000 accounts)"
export PGPASSWORD="$DBQ_PG_PASSWORD"
psql -q -h 127.0.0.1 -p "$DBQ_PG_PORT" -U postgres -d postgres -c "DROP DATABASE IF EXISTS dbq_sample WITH (FORCE)" -c "CREATE DATABASE dbq_sample" >/dev/null
pgbench -q -i -s 5 -h 127.0.0.1 -p "$DBQ_PG_PORT" -U postgres dbq_sample > "$DBQ_DEV/pgbench-init.log" 2>&1 \
  || die "pgbench -i failed (log: $DBQ_DEV/pgbench-init.log)"
unset PGPASSWORD

# The demo's own directory: its dbq.yaml names the database; no storage is configured,
# so backups go to the embedded default, ./.dbq-storage.
DEMO="$DBQ_DEV/demo"
mkdir -p "$DEMO" && cd "$DEMO"
cat > dbq.yaml <<YAML
redis: "$DBQ_REDIS_URL"
databases:
  main: "postgresql://postgres:$DBQ_PG_PASSWORD@127.0.0.1:$DBQ_PG_PORT/dbq_sample"
worker: {queues: "default", concurrency: 4}
YAML
say ""
say "\$ cat dbq.yaml   # in $DEMO"
sed -E 's#//([^:]*):[^@]*@#//\1:***@#' dbq.yaml
say ""
say "\$ dbq config validate --check"
"$DBQ" config validate --check
say ""
say "\$ dbq worker &      # a worker process, stopped below with SIGTERM"
DBQ_LOG_LEVEL=warning "$DBQ" worker &
WORKER=$!
trap 'kill -TERM $WORKER 2>/dev/null' EXIT
say "\$ dbq push backup --database main --wait"
"$DBQ" push backup --database main --wait
say ""
say "\$ dbq push verify-backup --database main --wait"
"$DBQ" push verify-backup --database main --wait
say ""
say "\$ dbq backups list"
"$DBQ" backups list
say ""
say "\$ dbq queues"
"$DBQ" queues
kill -TERM "$WORKER" && wait "$WORKER"
trap - EXIT
say ""
say "dbq is at $DBQ; the demo's files are in $DEMO; the services stay up (deploy/local/stop.sh stops them)."
