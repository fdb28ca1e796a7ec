#!/usr/bin/env bash
# The README's first command: installs what is missing, starts the local services,
# builds dbq (release) and runs the main job end to end.
#
# Today that job round-trips real data through all three services (dbq check: Redis,
# PostgreSQL, the local store and S3), then pushes a job through the queue to a real
# worker process and waits for it, showing its progress, and lists the queues.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
bash "$DBQ_ROOT/deploy/local/install.sh"
bash "$DBQ_ROOT/deploy/local/start.sh"
source "$DBQ_DEV/env"
cd "$DBQ_ROOT"
say "building dbq (release)"
swift build -c release --product dbq > "$DBQ_DEV/build-release.log" 2>&1 \
  || { grep -E "error" "$DBQ_DEV/build-release.log" >&2; die "the build failed (log: $DBQ_DEV/build-release.log)"; }
DBQ="$(swift build -c release --show-bin-path)/dbq"
say ""
say "\$ dbq check --storage file://$DBQ_DEV/storage"
"$DBQ" check --storage "file://$DBQ_DEV/storage"
say ""
say "\$ dbq check --storage s3://$DBQ_S3_BUCKET/demo"
"$DBQ" check --storage "s3://$DBQ_S3_BUCKET/demo"
say ""
say "\$ dbq worker --queues demo &      # a worker process, stopped below with SIGTERM"
DBQ_LOG_LEVEL=warning "$DBQ" worker --queues demo --concurrency 4 &
WORKER=$!
say "\$ dbq push sleep --queue demo --payload '{\"seconds\": 2}' --wait"
"$DBQ" push sleep --queue demo --payload '{"seconds": 2}' --wait
say ""
say "\$ dbq queues"
"$DBQ" queues
kill -TERM "$WORKER" && wait "$WORKER"
say ""
say "dbq is at $DBQ; the services stay up (deploy/local/stop.sh stops them)."
