#!/usr/bin/env bash
# Hosts that partition, made of network namespaces (root only): two hosts, dbq<ID>-h1
# (10.77.<ID>.11) and dbq<ID>-h2 (10.77.<ID>.12), on a bridge dbqbr<ID> (10.77.<ID>.1)
# through which they reach the local Redis and PostgreSQL (relayed from the bridge's
# address to loopback). <ID> (20–219) comes from this checkout's .dev directory, or
# DBQ_PART_ID: two checkouts on one machine (two CI runs) never share a device name.
#   partition.sh setup            make the bridge, the hosts and the relays (idempotent);
#                                 writes .dev/partition.env (the URLs hosts use)
#   partition.sh cut h1|h2        cut a host off (its link down: packets go nowhere)
#   partition.sh heal h1|h2       bring it back
#   partition.sh run h1|h2 CMD…   run a command on a host
#   partition.sh teardown         remove everything setup made
#   partition.sh demo             by hand: a backup and three jobs on h1, h1 cut off mid-job,
#                                 h2 takes over, h1 comes back; prints who did what
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
[ "$(id -u)" = 0 ] || die "network namespaces need root"
ID="${DBQ_PART_ID:-$(( $(printf '%s' "$DBQ_DEV" | cksum | cut -d' ' -f1) % 200 + 20 ))}"
BR="dbqbr$ID"
NET="10.77.$ID"
ns() { echo "dbq$ID-$1"; }
veth() { echo "v$1-$ID"; }
REDIS_RELAY_PORT="$DBQ_REDIS_PORT"
PG_RELAY_PORT="$DBQ_PG_PORT"
DIR="$DBQ_DEV/partition"

host_ip() { case "$1" in h1) echo "$NET.11";; h2) echo "$NET.12";; *) die "hosts are h1 and h2";; esac; }

setup() {
  mkdir -p "$DIR"
  ip link show "$BR" >/dev/null 2>&1 || { ip link add "$BR" type bridge; ip addr add "$NET.1/24" dev "$BR"; }
  ip link set "$BR" up
  for h in h1 h2; do
    ns="$(ns "$h")" outside="$(veth "$h")" inside="$(veth "$h")i"
    if ! ip netns list | grep -qw "$ns"; then
      ip netns add "$ns"
      ip link add "$outside" type veth peer name "$inside"
      ip link set "$inside" netns "$ns"
      ip netns exec "$ns" ip link set "$inside" name eth0
      ip netns exec "$ns" ip addr add "$(host_ip "$h")/24" dev eth0
      ip netns exec "$ns" ip link set eth0 up
      ip netns exec "$ns" ip link set lo up
      ip link set "$outside" master "$BR" up
    fi
  done
  for spec in "redis:$REDIS_RELAY_PORT" "postgres:$PG_RELAY_PORT"; do
    name="${spec%%:*}" port="${spec##*:}"
    pid_alive "$DIR/$name-relay.pid" && continue
    python3 "$DBQ_ROOT/deploy/local/tcp-relay.py" --listen "$NET.1:$port" --to "127.0.0.1:$port" --pidfile "$DIR/$name-relay.pid" \
      >"$DIR/$name-relay.log" 2>&1 </dev/null &
    for _ in $(seq 50); do pid_alive "$DIR/$name-relay.pid" && break; sleep 0.1; done
  done
  ip netns exec "$(ns h1)" bash -c "exec 3<>/dev/tcp/$NET.1/$REDIS_RELAY_PORT" 2>/dev/null || die "host h1 cannot reach Redis through the bridge"
  printf "export DBQ_PART_REDIS_URL='redis://:%s@%s.1:%s/0'\nexport DBQ_PART_DB_HOST='%s.1'\n" \
    "$DBQ_REDIS_PASSWORD" "$NET" "$REDIS_RELAY_PORT" "$NET" > "$DBQ_DEV/partition.env"
  say "partition: hosts $(ns h1) ($NET.11) and $(ns h2) ($NET.12) on $BR ($NET.1); Redis and PostgreSQL relayed on $NET.1"
}

teardown() {
  for h in h1 h2; do ip netns del "$(ns "$h")" 2>/dev/null || true; ip link del "$(veth "$h")" 2>/dev/null || true; done
  ip link del "$BR" 2>/dev/null || true
  for name in redis postgres; do
    pid_alive "$DIR/$name-relay.pid" || continue
    pid="$(head -n 1 "$DIR/$name-relay.pid")"
    kill "$pid"
    for _ in $(seq 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
    rm -f "$DIR/$name-relay.pid"
  done
  rm -f "$DBQ_DEV/partition.env"
  say "partition: removed"
}

demo() {
  setup
  source "$DBQ_DEV/partition.env"
  DBQ="${DBQ:-$DBQ_ROOT/.build/debug/dbq}"
  [ -x "$DBQ" ] || die "build dbq first (swift build), or set DBQ"
  work="$(mktemp -d)"; queue="partition-demo-$RANDOM"
  printf 'databases:\n  main: "postgresql://postgres:%s@%s:%s/postgres"\nstorages:\n  archive: {url: "file://%s/store"}\n' \
    "$DBQ_PG_PASSWORD" "$DBQ_PART_DB_HOST" "$DBQ_PG_PORT" "$work" > "$work/dbq.yaml"
  export DBQ_CONFIG="$work/dbq.yaml" DBQ_REDIS_URL="$DBQ_PART_REDIS_URL" DBQ_LOG_LEVEL=info
  touch "$work/hold"
  for i in 1 2 3; do "$DBQ" push sleep --queue "$queue" --payload "{\"seconds\": 0.1, \"holdWhileExists\": \"$work/hold\"}" >/dev/null; done
  ip netns exec "$(ns h1)" env DBQ_CONFIG="$DBQ_CONFIG" DBQ_REDIS_URL="$DBQ_REDIS_URL" DBQ_LOG_LEVEL=info \
    "$DBQ" worker --queues "$queue" --id h1 --lease 3s --rescue-interval 1s >"$work/h1.log" 2>&1 &
  h1=$!
  sleep 3
  say "h1 holds the jobs; cutting h1 off"
  "$0" cut h1
  ip netns exec "$(ns h2)" env DBQ_CONFIG="$DBQ_CONFIG" DBQ_REDIS_URL="$DBQ_REDIS_URL" DBQ_LOG_LEVEL=info \
    "$DBQ" worker --queues "$queue" --id h2 --lease 3s --rescue-interval 1s >"$work/h2.log" 2>&1 &
  h2=$!
  sleep 6; rm -f "$work/hold"; sleep 3
  say "h2 ran them; healing h1"
  "$0" heal h1
  sleep 5
  kill -TERM "$h1" "$h2"; wait "$h1" "$h2" 2>/dev/null || true
  "$DBQ" jobs list --state succeeded --queue "$queue"
  say "h1's log (its late completions refused by the fencing token):"
  grep -E "refused|lease lost|stopped" "$work/h1.log" || true
  say "h2's log:"; grep -E "stopped" "$work/h2.log" || true
}

case "${1:-}" in
  setup) setup ;;
  teardown) teardown ;;
  cut) ip link set "$(veth "${2:?host}")" down; say "partition: ${2} cut off" ;;
  heal) ip link set "$(veth "${2:?host}")" up; say "partition: ${2} back" ;;
  run) h="${2:?host}"; shift 2; exec ip netns exec "$(ns "$h")" "$@" ;;
  demo) demo ;;
  *) die "usage: partition.sh setup|cut HOST|heal HOST|run HOST CMD…|teardown|demo" ;;
esac
