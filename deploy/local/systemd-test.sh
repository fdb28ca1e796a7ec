#!/usr/bin/env bash
# Starts the shipped systemd units (deploy/systemd/) under a real systemd: Debian 12's
# systemd as PID 1 of a podman container built on the project's image
# (deploy/local/container-test.sh builds it), on the host's network, with
# /etc/dbq/dbq.env and /etc/dbq/dbq.yaml pointing at the local services. Checks:
#   - dbq-worker@QUEUE, dbq-beat and dbq-dashboard enabled and running, each as its own
#     dynamic user with a state directory of its own;
#   - a job pushed from the host runs;
#   - systemctl stop ends a busy worker within its stop timeout and hands its job back;
#   - a worker killed with SIGKILL is restarted by systemd;
#   - the dashboard answers; the beat leads;
#   - systemd-analyze security of each unit, as systemd sees it there.
# Prints "systemd-test: passed" and exits 0 when every check holds.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
source "$DBQ_ROOT/deploy/local/containers.sh"
IMAGE="${DBQ_IMAGE:-localhost/dbq:test}"
SYSTEMD_IMAGE="localhost/dbq-systemd:test"
bash "$DBQ_ROOT/deploy/local/start.sh"
source "$DBQ_DEV/env"
cd "$DBQ_ROOT"
containers_prepare
podman image exists "$IMAGE" || bash "$DBQ_ROOT/deploy/local/container-test.sh"
DBQ="$(bash "$DBQ_ROOT/deploy/release-build.sh" 2> "$DBQ_DEV/build-release.log")" || die "release build failed (log: $DBQ_DEV/build-release.log)"

say "building $SYSTEMD_IMAGE: $IMAGE with Debian's systemd and the units of deploy/systemd"
podman build --network=host --format docker -t "$SYSTEMD_IMAGE" -f - . > "$DBQ_DEV/systemd-build.log" 2>&1 <<DOCKERFILE || { tail -n 30 "$DBQ_DEV/systemd-build.log" >&2; die "podman build failed (log: $DBQ_DEV/systemd-build.log)"; }
FROM $IMAGE
USER root
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends systemd libnss-systemd \
 && rm -rf /var/lib/apt/lists/*
COPY deploy/systemd/dbq-worker@.service deploy/systemd/dbq-beat.service deploy/systemd/dbq-dashboard.service /etc/systemd/system/
ENTRYPOINT ["/lib/systemd/systemd"]
CMD []
DOCKERFILE

CT="$DBQ_DEV/systemd-test"
rm -rf "$CT" && mkdir -p "$CT/etc"
queue="sd$(date +%s)"
dashboard_port=18080
cat > "$CT/etc/dbq.env" <<ENV
DBQ_REDIS_URL=$DBQ_REDIS_URL
AWS_ACCESS_KEY_ID=$AWS_ACCESS_KEY_ID
AWS_SECRET_ACCESS_KEY=$AWS_SECRET_ACCESS_KEY
ENV
cat > "$CT/etc/dashboard.env" <<ENV
DBQ_DASHBOARD_LISTEN=127.0.0.1:$dashboard_port
ENV
cat > "$CT/etc/dbq.yaml" <<YAML
databases:
  main: "postgresql://postgres:$DBQ_PG_PASSWORD@127.0.0.1:$DBQ_PG_PORT/postgres"
storages:
  default: {url: "s3://$DBQ_S3_BUCKET/systemd-test", endpoint: "$DBQ_S3_ENDPOINT", region: us-east-1, addressing: path}
YAML
cat > "$CT/etc/schedule.yaml" <<YAML
entries:
  - name: systemd-test-heartbeat
    cron: "* * * * *"
    kind: noop
    queue: $queue
    catch_up: skip
    alert_after: 10m
YAML
chmod 644 "$CT"/etc/*
NAME=dbq-systemd-test
podman rm -f "$NAME" >/dev/null 2>&1 || true
trap 'podman rm -f "$NAME" >/dev/null 2>&1 || true' EXIT
podman run -d --name "$NAME" --systemd=always --network=host --cap-add SYS_ADMIN --health-interval disable \
  -v "$CT/etc:/etc/dbq:ro" "$SYSTEMD_IMAGE" >/dev/null 2>>"$CT/podman.log"
inside() { podman exec "$NAME" "$@"; }
for _ in $(seq 1 60); do
  state="$(inside systemctl is-system-running 2>/dev/null || true)"
  case "$state" in running|degraded) break ;; esac
  sleep 0.5
done
say "systemd in the container: $state"

failures=0
check() { # check DESCRIPTION COMMAND…: runs it, says ok or FAILED
  local what="$1"; shift
  if "$@" > "$CT/last.out" 2>&1; then say "  ok      $what"; else say "  FAILED  $what"; sed 's/^/          /' "$CT/last.out" >&2; failures=$((failures + 1)); fi
}
units=("dbq-worker@$queue.service" dbq-beat.service dbq-dashboard.service)
say ""
say "checks:"
check "systemctl enable --now ${units[*]}" inside systemctl enable --now "${units[@]}"
sleep 2
for unit in "${units[@]}"; do check "$unit is active" inside systemctl is-active --quiet "$unit"; done
main_pid() { inside systemctl show -p MainPID --value "$1"; }
uid_of() { inside awk '/^Uid:/ {print $2}' "/proc/$1/status"; }
uids=()
for unit in "${units[@]}"; do uids+=("$(uid_of "$(main_pid "$unit")")"); done
distinct="$(printf '%s\n' "${uids[@]}" | sort -u | wc -l)"
check "each runs as its own dynamic user (uids ${uids[*]})" bash -c "[ $distinct = 3 ] && ! printf '%s\n' ${uids[*]} | grep -qx 0"
dirs_ok() {
  local i=0
  for dir in "dbq-worker-$queue" dbq-beat dbq-dashboard; do
    owner="$(inside stat -c %u "/var/lib/private/$dir")" || return 1
    [ "$owner" = "${uids[$i]}" ] || { echo "/var/lib/private/$dir is owned by $owner, not ${uids[$i]}"; return 1; }
    i=$((i + 1))
  done
}
check "state directories apart, each owned by its unit's user" dirs_ok
export DBQ_CONFIG="$CT/etc/dbq.yaml"
check "a job pushed from the host runs in the unit's worker" timeout 60 "$DBQ" push noop --queue "$queue" --wait
check "the dashboard answers on /healthz" bash -c "curl -fsS http://127.0.0.1:$dashboard_port/healthz | grep -q ok"
check "the beat leads" bash -c "'$DBQ' beat status --schedule '$CT/etc/schedule.yaml' 2>&1 | grep '^leader:' | grep -qv 'none'"

# A job longer than the worker's --shutdown-grace (25 s): stop must hand it back.
job="$("$DBQ" push sleep --queue "$queue" --payload '{"seconds": 300}' --max-attempts 3)"
job="$(printf '%s' "$job" | grep -oE '[0-9a-f-]{36}' | head -n 1)"
running() { for _ in $(seq 1 40); do "$DBQ" jobs show "$job" --json | grep -q '"state" *: *"running"' && return 0; sleep 0.5; done; return 1; }
check "a 300 s job is running on the worker" running
started=$(date +%s)
inside systemctl stop "dbq-worker@$queue.service"
took=$(( $(date +%s) - started ))
stop_timeout="$(inside systemctl show -p TimeoutStopUSec --value "dbq-worker@$queue.service")"
check "systemctl stop ended the worker in ${took} s (TimeoutStopSec $stop_timeout)" bash -c "[ $took -lt 45 ] && ! podman exec $NAME systemctl is-active --quiet dbq-worker@$queue.service"
check "and handed its job back (pending again, not lost or dead)" bash -c "'$DBQ' jobs show $job --json | grep -qE '\"state\" *: *\"(pending|scheduled)\"'"
"$DBQ" jobs cancel "$job" >/dev/null 2>&1 || true

inside systemctl start "dbq-worker@$queue.service"
sleep 1
before="$(main_pid "dbq-worker@$queue.service")"
inside systemctl kill -s KILL "dbq-worker@$queue.service"
restarted() {
  for _ in $(seq 1 40); do
    now="$(main_pid "dbq-worker@$queue.service")"
    [ "$now" != 0 ] && [ "$now" != "$before" ] && podman exec "$NAME" systemctl is-active --quiet "dbq-worker@$queue.service" && return 0
    sleep 0.5
  done
  return 1
}
check "a worker killed with SIGKILL is restarted by systemd" restarted
check "and takes jobs again" timeout 60 "$DBQ" push noop --queue "$queue" --wait

say ""
say "systemd-analyze security (in the container, systemd $(inside systemctl --version | head -n 1 | awk '{print $2}')):"
for unit in "${units[@]}"; do
  exposure="$(inside systemd-analyze security "$unit" 2>/dev/null | grep -o 'Overall exposure level.*' || true)"
  say "  $unit: ${exposure:-unavailable}"
done
[ "$failures" = 0 ] || { inside journalctl --no-pager -n 60 -u "dbq-*" > "$CT/journal.log" 2>&1 || true; die "systemd-test: $failures check(s) failed (journal: $CT/journal.log)"; }
say "systemd-test: passed"
