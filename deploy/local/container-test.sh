#!/usr/bin/env bash
# Builds the container image from deploy/container/Dockerfile with podman and runs it
# against the local services (deploy/local/start.sh), on the host's network:
#   - dbq --version in the image; the image runs as its non-root user;
#   - a worker in a container drains jobs pushed from the host;
#   - a backup of a database on the host to the host's S3, then its verification;
#   - the image's HEALTHCHECK passes for a worker with and without --metrics, and fails
#     for a worker whose Redis does not answer;
#   - the image's size.
# No registry is reachable here: the Debian 12 base is made locally (debootstrap, then
# podman import) when it is missing, and the binary is the one deploy/release-build.sh
# makes on this host (DBQ_BINARY=prebuilt; the Dockerfile's build stage is the same file's
# other path, for machines that can pull swift:6.2-bookworm).
# Prints "container-test: passed" and exits 0 when every check holds.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
source "$DBQ_ROOT/deploy/local/containers.sh"
bash "$DBQ_ROOT/deploy/local/install.sh"
bash "$DBQ_ROOT/deploy/local/start.sh"
source "$DBQ_DEV/env"
cd "$DBQ_ROOT"
containers_prepare
IMAGE="${DBQ_IMAGE:-localhost/dbq:test}"

say "building dbq (release, as deploy/release-build.sh)"
DBQ="$(bash "$DBQ_ROOT/deploy/release-build.sh" 2> "$DBQ_DEV/build-release.log")" || die "release build failed (log: $DBQ_DEV/build-release.log)"
mkdir -p deploy/container/prebuilt
# Without its debug information, as the Dockerfile's build stage installs it (symbols stay).
strip --strip-debug -o deploy/container/prebuilt/dbq "$DBQ"
say "building $IMAGE from deploy/container/Dockerfile (DBQ_BINARY=prebuilt on $BASE_IMAGE)"
podman build --network=host --format docker -f deploy/container/Dockerfile \
  --build-arg BASE_IMAGE="$BASE_IMAGE" --build-arg DBQ_BINARY=prebuilt -t "$IMAGE" . > "$DBQ_DEV/container-build.log" 2>&1 \
  || { tail -n 30 "$DBQ_DEV/container-build.log" >&2; die "podman build failed (log: $DBQ_DEV/container-build.log)"; }

CT="$DBQ_DEV/container-test"
rm -rf "$CT" && mkdir -p "$CT"
NAMES=()
cleanup() { for n in "${NAMES[@]}"; do podman rm -f "$n" >/dev/null 2>&1 || true; done; }
trap cleanup EXIT
failures=0
check() { # check DESCRIPTION COMMAND…: runs it, says ok or FAILED
  local what="$1"; shift
  if "$@" > "$CT/last.out" 2>&1; then say "  ok      $what"; else say "  FAILED  $what"; sed 's/^/          /' "$CT/last.out" >&2; failures=$((failures + 1)); fi
}

say ""
say "checks:"
version="$(podman run --rm --network=host "$IMAGE" --version)"
check "dbq --version in the image: $version" test "$version" = "$("$DBQ" --version)"
user="$(podman run --rm --network=host --entrypoint /usr/bin/id "$IMAGE" -un):$(podman run --rm --network=host --entrypoint /usr/bin/id "$IMAGE" -u)"
check "runs as its non-root user ($user)" test "$user" = "dbq:10001"

# The database and storage the containers and the host share.
export PGPASSWORD="$DBQ_PG_PASSWORD"
psql -q -h 127.0.0.1 -p "$DBQ_PG_PORT" -U postgres -d postgres -c "DROP DATABASE IF EXISTS dbq_container WITH (FORCE)" -c "CREATE DATABASE dbq_container" >/dev/null
pgbench -q -i -s 1 -h 127.0.0.1 -p "$DBQ_PG_PORT" -U postgres dbq_container > "$CT/pgbench.log" 2>&1
unset PGPASSWORD
prefix="container-test-$(date +%s)"
cat > "$CT/dbq.yaml" <<YAML
redis: "$DBQ_REDIS_URL"
databases:
  main: "postgresql://postgres:$DBQ_PG_PASSWORD@127.0.0.1:$DBQ_PG_PORT/dbq_container"
storages:
  default: {url: "s3://$DBQ_S3_BUCKET/$prefix", endpoint: "$DBQ_S3_ENDPOINT", region: us-east-1, addressing: path}
YAML
chmod 644 "$CT/dbq.yaml"
queue="ct$(date +%s)"
run_worker() { # run_worker NAME EXTRA-ARGS…: a worker container on $queue
  local name="$1"; shift
  NAMES+=("$name")
  # --health-interval disable: no timer (podman would want systemd for it); the checks below
  # run the image's HEALTHCHECK on demand with podman healthcheck run.
  podman run -d --name "$name" --network=host --health-interval disable \
    -e DBQ_CONFIG=/etc/dbq/dbq.yaml -e AWS_ACCESS_KEY_ID -e AWS_SECRET_ACCESS_KEY -e DBQ_LOG_LEVEL=info \
    -v "$CT/dbq.yaml:/etc/dbq/dbq.yaml:ro" "$@" >/dev/null 2>>"$CT/podman.log"
}
run_worker dbq-ct-worker "$IMAGE" worker --queues "$queue" --concurrency 2
export DBQ_CONFIG="$CT/dbq.yaml"
for i in $(seq 1 20); do "$DBQ" push noop --queue "$queue" > /dev/null; done
drained() { for _ in $(seq 1 60); do [ "$("$DBQ" queues --json | python3 -c "import json,sys; q=[x for x in json.load(sys.stdin)['queues'] if x['queue']=='$queue']; print(q[0]['succeeded'] if q else 0)")" = 20 ] && return 0; sleep 1; done; "$DBQ" queues; return 1; }
check "a worker in the container drains 20 jobs pushed from the host" drained
check "a backup from the container to the host's S3" "$DBQ" push backup --database main --queue "$queue" --wait
check "its verification (restored into a scratch database, rows compared)" "$DBQ" push verify-backup --database main --queue "$queue" --wait
check "listed from the host as verified" bash -c "'$DBQ' backups list --database main | grep -qE '^[0-9]{8}T.* yes '"

healthy() { # healthy CONTAINER: the image's HEALTHCHECK, run now
  for _ in $(seq 1 10); do podman healthcheck run "$1" && return 0; sleep 1; done; return 1
}
check "HEALTHCHECK passes for a worker without --metrics" healthy dbq-ct-worker
run_worker dbq-ct-metrics -e DBQ_METRICS=127.0.0.1:19464 "$IMAGE" worker --queues "$queue" --metrics 127.0.0.1:19464
check "HEALTHCHECK passes for a worker with --metrics (its /healthz asked)" healthy dbq-ct-metrics
run_worker dbq-ct-noredis -e DBQ_REDIS_URL=redis://127.0.0.1:1/0 "$IMAGE" worker --queues "$queue"
sleep 2
check "HEALTHCHECK fails for a worker whose Redis does not answer" bash -c "! podman healthcheck run dbq-ct-noredis"
check "a container's dbq names what is wrong with a bad Redis URL" bash -c "podman run --rm --network=host -e DBQ_REDIS_URL=redis://127.0.0.1:1/0 '$IMAGE' healthcheck 2>&1 | grep -q 'Redis does not answer'"

size="$(podman image inspect --format '{{.Size}}' "$IMAGE")"
base="$(podman image inspect --format '{{.Size}}' "$BASE_IMAGE")"
say ""
say "image $IMAGE: $((size / 1000000)) MB ($((base / 1000000)) MB of it the Debian base, the dbq binary $(( $(stat -c %s deploy/container/prebuilt/dbq) / 1000000 )) MB)"
[ "$failures" = 0 ] || die "container-test: $failures check(s) failed"
say "container-test: passed"
