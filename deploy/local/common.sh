# Shared settings of the local scripts: sourced, not run.
# Every port and secret can be overridden from the environment.
set -euo pipefail

DBQ_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
DBQ_DEV="${DBQ_DEV:-$DBQ_ROOT/.dev}"
DBQ_PG_PORT="${DBQ_PG_PORT:-55432}"
DBQ_PG_PASSWORD="${DBQ_PG_PASSWORD:-dbq-local}"
DBQ_REDIS_PORT="${DBQ_REDIS_PORT:-56379}"
DBQ_REDIS_PASSWORD="${DBQ_REDIS_PASSWORD:-dbq-local}"
DBQ_S3_PORT="${DBQ_S3_PORT:-59000}"
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
