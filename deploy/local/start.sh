#!/usr/bin/env bash
# Starts PostgreSQL, Redis and an S3-compatible server (moto, with signature checks on)
# on loopback, with their data under .dev/ of the project. Reuses what is already up.
# Writes .dev/env (source it) and prints the URLs to use.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
mkdir -p "$DBQ_DEV"
PGBIN="$(pg_bin)"

# --- PostgreSQL --------------------------------------------------------------------
# initdb refuses root: the cluster belongs to the postgres user. If postgres cannot
# reach the project folder (a private home directory), the cluster lives in /var/tmp.
PG_DIR="$DBQ_DEV/pg"
mkdir -p "$PG_DIR"
chown postgres: "$PG_DIR" 2>/dev/null || true
if ! runuser -u postgres -- test -w "$PG_DIR" 2>/dev/null; then
  PG_DIR="/var/tmp/dbq-pg-$(printf '%s' "$DBQ_ROOT" | md5sum | cut -c1-8)"
  mkdir -p "$PG_DIR" && chown postgres: "$PG_DIR"
fi
PGDATA="$PG_DIR/data"
if [ ! -f "$PGDATA/PG_VERSION" ]; then
  say "postgres: creating a cluster in $PGDATA"
  pwfile="$(mktemp)"; printf '%s\n' "$DBQ_PG_PASSWORD" > "$pwfile"; chown postgres: "$pwfile"
  runuser -u postgres -- "$PGBIN/initdb" -D "$PGDATA" -U postgres --auth-local=trust --auth-host=scram-sha-256 \
    --pwfile="$pwfile" -E UTF8 --no-locale >"$PG_DIR/initdb.log" 2>&1 || { cat "$PG_DIR/initdb.log" >&2; die "initdb failed"; }
  rm -f "$pwfile"
fi
mkdir -p "$PG_DIR/sock" && chown postgres: "$PG_DIR/sock"
# pg_stat_statements is loaded at start (index advice reads the workload from it); a
# cluster started without it (by an older start.sh) is restarted with it.
PG_OPTIONS="-p $DBQ_PG_PORT -k $PG_DIR/sock -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200 -c shared_preload_libraries=pg_stat_statements -c pg_stat_statements.track=all"
if runuser -u postgres -- "$PGBIN/pg_ctl" -D "$PGDATA" status >/dev/null 2>&1; then
  if runuser -u postgres -- psql -X -q -A -t -h "$PG_DIR/sock" -p "$DBQ_PG_PORT" -U postgres -d postgres -c "SHOW shared_preload_libraries" 2>/dev/null | grep -q pg_stat_statements; then
    say "postgres: already running on 127.0.0.1:$DBQ_PG_PORT"
  else
    runuser -u postgres -- "$PGBIN/pg_ctl" -D "$PGDATA" -l "$PG_DIR/server.log" -w -t 60 -m fast -o "$PG_OPTIONS" restart >/dev/null \
      || { tail -n 20 "$PG_DIR/server.log" >&2; die "PostgreSQL did not restart (log: $PG_DIR/server.log)"; }
    say "postgres: restarted on 127.0.0.1:$DBQ_PG_PORT with pg_stat_statements loaded"
  fi
else
  port_is_ours_or_free "$DBQ_PG_PORT" "$PGDATA/postmaster.pid" "postgres"
  runuser -u postgres -- "$PGBIN/pg_ctl" -D "$PGDATA" -l "$PG_DIR/server.log" -w -t 60 -o "$PG_OPTIONS" \
    start >/dev/null || { tail -n 20 "$PG_DIR/server.log" >&2; die "PostgreSQL did not start (log: $PG_DIR/server.log)"; }
  say "postgres: started on 127.0.0.1:$DBQ_PG_PORT"
fi
echo "$PG_DIR" > "$DBQ_DEV/pg.dir"

# --- Redis -------------------------------------------------------------------------
REDIS_DIR="$DBQ_DEV/redis"
mkdir -p "$REDIS_DIR"
command -v redis-server >/dev/null || die "redis-server is missing: run deploy/local/install.sh"
port_is_ours_or_free "$DBQ_REDIS_PORT" "$REDIS_DIR/redis.pid" "redis"
if pid_alive "$REDIS_DIR/redis.pid"; then
  say "redis: already running on 127.0.0.1:$DBQ_REDIS_PORT"
else
  redis-server --port "$DBQ_REDIS_PORT" --bind 127.0.0.1 --requirepass "$DBQ_REDIS_PASSWORD" \
    --save '' --appendonly no --maxmemory-policy noeviction \
    --daemonize yes --pidfile "$REDIS_DIR/redis.pid" --logfile "$REDIS_DIR/redis.log" --dir "$REDIS_DIR"
  for _ in $(seq 50); do
    redis-cli -p "$DBQ_REDIS_PORT" -a "$DBQ_REDIS_PASSWORD" --no-auth-warning ping 2>/dev/null | grep -q PONG && break
    sleep 0.1
  done
  redis-cli -p "$DBQ_REDIS_PORT" -a "$DBQ_REDIS_PASSWORD" --no-auth-warning ping 2>/dev/null | grep -q PONG \
    || die "Redis did not start (log: $REDIS_DIR/redis.log)"
  say "redis: started on 127.0.0.1:$DBQ_REDIS_PORT"
fi

# --- S3 (moto) ---------------------------------------------------------------------
# moto checks signatures once its first N calls (here: the three that create the IAM
# user, its policy and its key) are spent, so a wrong secret gets 403 as on real S3.
S3_DIR="$DBQ_DEV/s3"
mkdir -p "$S3_DIR"
S3_ENDPOINT="http://127.0.0.1:$DBQ_S3_PORT"
if pid_alive "$S3_DIR/moto.pid" && [ -s "$S3_DIR/credentials" ]; then
  say "s3: already running at $S3_ENDPOINT"
else
  [ -f "$S3_DIR/moto.pid" ] && kill "$(cat "$S3_DIR/moto.pid")" 2>/dev/null || true
  rm -f "$S3_DIR/credentials"
  INITIAL_NO_AUTH_ACTION_COUNT=3 setsid sh -c 'echo $$ > "$1"; exec python3 "$3" 127.0.0.1 "$2"' _ \
    "$S3_DIR/moto.pid" "$DBQ_S3_PORT" "$DBQ_ROOT/deploy/local/moto-s3.py" >"$S3_DIR/moto.log" 2>&1 < /dev/null &
  for _ in $(seq 100); do
    curl -s -o /dev/null "$S3_ENDPOINT/moto-api/" 2>/dev/null && break
    sleep 0.1
  done
  python3 "$DBQ_ROOT/deploy/local/s3-setup.py" "$S3_ENDPOINT" "$DBQ_S3_BUCKET" > "$S3_DIR/credentials" \
    || die "could not set up the S3 user and bucket (log: $S3_DIR/moto.log)"
  say "s3: started at $S3_ENDPOINT (bucket $DBQ_S3_BUCKET)"
fi
read -r S3_KEY S3_SECRET < "$S3_DIR/credentials"

REDIS_URL="redis://:$DBQ_REDIS_PASSWORD@127.0.0.1:$DBQ_REDIS_PORT/0"
DATABASE_URL="postgresql://postgres:$DBQ_PG_PASSWORD@127.0.0.1:$DBQ_PG_PORT/postgres"
cat > "$DBQ_DEV/env" <<ENV
# Written by deploy/local/start.sh: source this file.
export DBQ_REDIS_URL='$REDIS_URL'
export DBQ_DATABASE_URL='$DATABASE_URL'
export DBQ_S3_ENDPOINT='$S3_ENDPOINT'
export DBQ_S3_BUCKET='$DBQ_S3_BUCKET'
export DBQ_TEST_REDIS_URL='$REDIS_URL'
export DBQ_TEST_DATABASE_URL='$DATABASE_URL'
export DBQ_TEST_S3_ENDPOINT='$S3_ENDPOINT'
export DBQ_TEST_S3_BUCKET='$DBQ_S3_BUCKET'
export AWS_ACCESS_KEY_ID='$S3_KEY'
export AWS_SECRET_ACCESS_KEY='$S3_SECRET'
export AWS_DEFAULT_REGION='us-east-1'
ENV
say ""
say "services are up; to use them: source $DBQ_DEV/env"
say "  redis     $REDIS_URL"
say "  postgres  $DATABASE_URL"
say "  s3        $S3_ENDPOINT  bucket s3://$DBQ_S3_BUCKET  (keys in $DBQ_DEV/env)"
