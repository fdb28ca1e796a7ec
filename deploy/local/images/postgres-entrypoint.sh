#!/bin/sh
# Makes the cluster on first start (password from POSTGRES_PASSWORD, scram-sha-256 from any
# address), then runs postgres in the foreground as the postgres user.
set -eu
bin=/usr/lib/postgresql/15/bin
if [ "$(id -u)" = 0 ]; then
  mkdir -p "$PGDATA" /run/postgresql
  chown -R postgres:postgres "$PGDATA" /run/postgresql
  chmod 700 "$PGDATA"
  exec setpriv --reuid=postgres --regid=postgres --init-groups "$0" "$@"
fi
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  [ -n "${POSTGRES_PASSWORD:-}" ] || { echo "postgres-entrypoint: set POSTGRES_PASSWORD" >&2; exit 1; }
  umask 077
  printf '%s\n' "$POSTGRES_PASSWORD" > /tmp/pwfile
  "$bin/initdb" -D "$PGDATA" -U postgres --pwfile=/tmp/pwfile -A scram-sha-256 -E UTF8 --no-locale >/dev/null
  rm -f /tmp/pwfile
  printf 'host all all 0.0.0.0/0 scram-sha-256\nhost all all ::/0 scram-sha-256\n' >> "$PGDATA/pg_hba.conf"
  printf "listen_addresses = '*'\nunix_socket_directories = '/run/postgresql'\n" >> "$PGDATA/postgresql.conf"
fi
exec "$bin/postgres" -D "$PGDATA" "$@"
