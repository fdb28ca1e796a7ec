#!/usr/bin/env bash
# The README's first command: installs what is missing, starts the local services,
# builds dbq (release) and runs the main job end to end.
#
# Today that job round-trips real data through all three services: Redis (AUTH,
# binary-safe values, a Lua script), PostgreSQL (a COPY of 100,000 rows in and out) and
# storage (a table streamed by COPY into the local store and into S3 by multipart
# upload, read back and compared by SHA-256).
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
say "dbq is at $DBQ; the services stay up (deploy/local/stop.sh stops them)."
