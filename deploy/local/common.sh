# Shared settings of the local scripts: sourced, not run.
# Every port and secret can be overridden from the environment. The default ports lie
# below Linux's ephemeral range (32768–60999): a client connection elsewhere on the
# machine can never hold one, so a service (re)started mid-run always gets its port.
set -euo pipefail

DBQ_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
DBQ_DEV="${DBQ_DEV:-$DBQ_ROOT/.dev}"
DBQ_PG_PORT="${DBQ_PG_PORT:-15432}"
DBQ_PG_PASSWORD="${DBQ_PG_PASSWORD:-dbq-local}"
DBQ_REDIS_PORT="${DBQ_REDIS_PORT:-16379}"
DBQ_REDIS_PASSWORD="${DBQ_REDIS_PASSWORD:-dbq-local}"
DBQ_S3_PORT="${DBQ_S3_PORT:-19000}"
DBQ_S3_BUCKET="${DBQ_S3_BUCKET:-dbq-local}"

say() { printf '%s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# The PostgreSQL binaries of the installed major version (initdb and pg_ctl are not on PATH on Debian).
pg_bin() {
  local dir
  dir="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)"
  [ -n "$dir" ] || die "PostgreSQL server binaries not found under /usr/lib/postgresql: run deploy/local/install.sh"
  printf '%s' "$dir"
}

pid_alive() { [ -f "$1" ] && kill -0 "$(head -n 1 "$1")" 2>/dev/null; }

# The pid of the process listening on 127.0.0.1:PORT (TCP), or nothing.
port_holder() { { ss -ltnpH "sport = :$1" 2>/dev/null | grep -o 'pid=[0-9]*' | head -n 1 | cut -d= -f2; } || true; }

# Dies unless PORT is free or held by the process in PIDFILE: a server of another checkout
# (or anything else) on the port must not be taken for ours.
port_is_ours_or_free() { # PORT PIDFILE WHAT
  local holder
  holder="$(port_holder "$1")"
  [ -z "$holder" ] && return 0
  if pid_alive "$2" && [ "$holder" = "$(head -n 1 "$2")" ]; then return 0; fi
  die "$3: port $1 is held by another process (pid $holder, $(readlink "/proc/$holder/cwd" 2>/dev/null || echo '?')): stop it, or choose other ports (DBQ_CLUSTER_PORT, DBQ_REDIS_PORT, DBQ_PG_PORT)"
}

# For the bench scripts: installs and starts everything, the aws CLI too, builds dbq
# (release) and sets DBQ to it; the services' settings are in the environment after.
prepare_bench() {
  bash "$DBQ_ROOT/deploy/local/install.sh"
  bash "$DBQ_ROOT/deploy/local/start.sh"
  source "$DBQ_DEV/env"
  cd "$DBQ_ROOT"
  command -v aws >/dev/null || python3 -m pip install -q awscli 2>/dev/null || python3 -m pip install -q --break-system-packages awscli
  hash -r
  command -v aws >/dev/null || die "the aws CLI is not on PATH after installing awscli; add pip's bin directory to PATH"
  DBQ="$(bash "$DBQ_ROOT/deploy/release-build.sh" 2> "$DBQ_DEV/build-release.log")" || die "release build failed (log: $DBQ_DEV/build-release.log)"
}
