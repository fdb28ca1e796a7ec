#!/usr/bin/env bash
# Stops exactly the servers the local scripts started (by their pid files): start.sh's,
# pg18.sh's and cluster.sh's, as the test command leaves them; data stays in .dev/.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
if [ -f "$DBQ_DEV/pg.dir" ]; then
  PGDATA="$(cat "$DBQ_DEV/pg.dir")/data"
  runuser -u postgres -- "$(pg_bin)/pg_ctl" -D "$PGDATA" -m fast -w stop >/dev/null 2>&1 && say "postgres: stopped" || true
fi
bash "$DBQ_ROOT/deploy/local/pg18.sh" stop
bash "$DBQ_ROOT/deploy/local/cluster.sh" stop || true
if pid_alive "$DBQ_DEV/redis/redis.pid"; then kill "$(cat "$DBQ_DEV/redis/redis.pid")" && say "redis: stopped"; fi
if pid_alive "$DBQ_DEV/s3/moto.pid"; then kill "$(cat "$DBQ_DEV/s3/moto.pid")" && say "s3: stopped"; fi
rm -f "$DBQ_DEV/s3/credentials"
