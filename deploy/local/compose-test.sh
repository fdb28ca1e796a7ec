#!/usr/bin/env bash
# Brings up deploy/container/compose.yaml with podman-compose — PostgreSQL, Redis, the S3
# server, three workers, two beats and the dashboard, on a network of their own — and runs a
# backup and its verification through it, then takes it down with its volumes.
# No registry is reachable here, so deploy/local/compose.local.yaml swaps the service images
# for ones made on this machine (deploy/local/images/, on the debootstrapped Debian 12 base)
# and dbq's image is the one deploy/local/container-test.sh builds from the same Dockerfile.
# Prints "compose-test: passed" and exits 0 when every check holds.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
source "$DBQ_ROOT/deploy/local/containers.sh"
cd "$DBQ_ROOT"
containers_prepare
command -v dnsmasq >/dev/null && [ -e /usr/lib/cni/dnsname ] || {
  # Service names resolve through CNI's dnsname plugin (podman 4.3 on Debian 12 uses CNI).
  say "installing the CNI dnsname plugin (service names between containers)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends golang-github-containernetworking-plugin-dnsname dnsmasq-base >/dev/null \
    || die "apt-get could not install golang-github-containernetworking-plugin-dnsname"
}
podman image exists localhost/dbq:test || bash "$DBQ_ROOT/deploy/local/container-test.sh"
podman tag localhost/dbq:test localhost/dbq:local
# The S3 image's Python packages, fetched by the host's pip (its index and certificates).
mkdir -p deploy/local/images/wheels
python3 -m pip download -q -d deploy/local/images/wheels 'moto[server]>=5,<6' boto3 > "$DBQ_DEV/compose-wheels.log" 2>&1 \
  || die "pip download of moto[server] and boto3 failed (log: $DBQ_DEV/compose-wheels.log)"
for image in postgres:15 redis:7 s3:5; do
  name="${image%%:*}"
  say "building localhost/dbq-compose-$image (deploy/local/images/$name.Dockerfile)"
  podman build --network=host --format docker -f "deploy/local/images/$name.Dockerfile" --build-arg BASE_IMAGE="$BASE_IMAGE" \
    -t "localhost/dbq-compose-$image" . > "$DBQ_DEV/compose-build-$name.log" 2>&1 \
    || { tail -n 20 "$DBQ_DEV/compose-build-$name.log" >&2; die "building the $name image failed (log: $DBQ_DEV/compose-build-$name.log)"; }
done

CT="$DBQ_DEV/compose-test"
rm -rf "$CT" && mkdir -p "$CT"
compose=(podman-compose -p dbqcompose -f deploy/container/compose.yaml -f deploy/local/compose.local.yaml)
"${compose[@]}" down -v > "$CT/down-before.log" 2>&1 || true
trap '"${compose[@]}" down -v > "$CT/down.log" 2>&1 || true' EXIT
say "podman-compose up -d (log: $CT/up.log)"
"${compose[@]}" up -d > "$CT/up.log" 2>&1 || { tail -n 30 "$CT/up.log" >&2; die "podman-compose up failed"; }

failures=0
check() { # check DESCRIPTION COMMAND…: runs it, says ok or FAILED
  local what="$1"; shift
  if "$@" > "$CT/last.out" 2>&1; then say "  ok      $what"; else say "  FAILED  $what"; sed 's/^/          /' "$CT/last.out" >&2; failures=$((failures + 1)); fi
}
# The CLI inside a running worker container (its configuration and environment): podman-compose
# 1.0.3's `run` starts the service's dependencies again and fails on their names.
cli() { podman exec dbqcompose_worker_1 dbq "$@" 2>>"$CT/cli.log"; }
workers() { # the workers registered in Redis, as the compose's own CLI sees them
  for _ in $(seq 1 90); do
    n="$(cli queues --json 2>/dev/null | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["workers"]))' 2>/dev/null || echo 0)"
    [ "$n" -ge 3 ] && return 0
    sleep 2
  done
  cli queues; return 1
}
say ""
say "checks:"
check "services up: $(podman ps --filter label=io.podman.compose.project=dbqcompose --format '{{.Names}}' | sort | tr '\n' ' ')" workers
check "a backup through the compose's workers to its S3" cli push backup --database main --wait
check "its verification" cli push verify-backup --database main --wait
check "listed as verified" bash -c "podman exec dbqcompose_worker_1 dbq backups list --database main | grep -qE '^[0-9]{8}T.* yes '"
check "the dashboard answers on 127.0.0.1:8080" bash -c "curl -fsS http://127.0.0.1:8080/healthz | grep -q ok"
healthy() { for c in $(podman ps --filter label=io.podman.compose.project=dbqcompose --filter label=io.podman.compose.service=worker --format '{{.Names}}'); do podman healthcheck run "$c" || return 1; done; }
check "every worker's HEALTHCHECK passes" healthy
[ "$failures" = 0 ] || die "compose-test: $failures check(s) failed (logs in $CT)"
say "compose-test: passed"
