#!/usr/bin/env bash
# A Redis Cluster on loopback: three masters and three replicas (ports DBQ_CLUSTER_PORT,
# default 17001, up to +5; each node's cluster bus 1,000 above; all below the ephemeral range), passwords as the single Redis's, data in .dev/cluster/.
#   cluster.sh start      start (or keep) the six nodes and form the cluster; writes .dev/cluster.env
#   cluster.sh stop       stop exactly the nodes this script started (by their pid files)
#   cluster.sh restart-node PORT   start one node again (after a test killed it): it rejoins
# The URL for dbq: redis+cluster://:PASSWORD@127.0.0.1:17001,127.0.0.1:17002,127.0.0.1:17003
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
command -v redis-server >/dev/null || die "redis-server is missing: run deploy/local/install.sh"
BASE="${DBQ_CLUSTER_PORT:-17001}"
DIR="$DBQ_DEV/cluster"
PORTS=()
for i in 0 1 2 3 4 5; do PORTS+=($((BASE + i))); done
cli() { redis-cli -p "$1" -a "$DBQ_REDIS_PASSWORD" --no-auth-warning "${@:2}"; }

start_node() {
  local port="$1" dir="$DIR/$1"
  mkdir -p "$dir"
  port_is_ours_or_free "$port" "$dir/redis.pid" "cluster node $port"
  port_is_ours_or_free "$((port + 1000))" "$dir/redis.pid" "cluster node $port (its cluster bus)"
  if pid_alive "$dir/redis.pid"; then return 0; fi
  redis-server --port "$port" --cluster-port "$((port + 1000))" --bind 127.0.0.1 --requirepass "$DBQ_REDIS_PASSWORD" --masterauth "$DBQ_REDIS_PASSWORD" \
    --cluster-enabled yes --cluster-config-file "$dir/nodes.conf" --cluster-node-timeout 2000 \
    --appendonly yes --appendfsync everysec --save '' --maxmemory-policy noeviction \
    --daemonize yes --pidfile "$dir/redis.pid" --logfile "$dir/redis.log" --dir "$dir"
  # Answered by the node this script started: its pid file's process holds the port.
  for _ in $(seq 50); do
    if pid_alive "$dir/redis.pid" && [ "$(port_holder "$port")" = "$(head -n 1 "$dir/redis.pid")" ] && cli "$port" ping 2>/dev/null | grep -q PONG; then return 0; fi
    sleep 0.1
  done
  die "cluster node $port did not start (log: $dir/redis.log)"
}

case "${1:-start}" in
  start)
    for port in "${PORTS[@]}"; do start_node "$port"; done
    if ! cli "${PORTS[0]}" cluster info 2>/dev/null | grep -q "cluster_state:ok"; then
      if [ "$(cli "${PORTS[0]}" cluster info | grep cluster_known_nodes | tr -dc 0-9)" = 1 ]; then
        cli "${PORTS[0]}" --cluster create $(printf '127.0.0.1:%s ' "${PORTS[@]}") --cluster-replicas 1 --cluster-yes >"$DIR/create.log" 2>&1 \
          || die "cannot form the cluster (log: $DIR/create.log)"
      fi
      for _ in $(seq 100); do
        ok=1
        for port in "${PORTS[@]}"; do cli "$port" cluster info 2>/dev/null | grep -q "cluster_state:ok" || ok=0; done
        [ "$ok" = 1 ] && break
        sleep 0.2
      done
      [ "$ok" = 1 ] || die "the cluster did not become ok (logs under $DIR)"
    fi
    url="redis+cluster://:$DBQ_REDIS_PASSWORD@127.0.0.1:${PORTS[0]},127.0.0.1:${PORTS[1]},127.0.0.1:${PORTS[2]}"
    printf "export DBQ_CLUSTER_URL='%s'\nexport DBQ_CLUSTER_DIR='%s'\n" "$url" "$DIR" > "$DBQ_DEV/cluster.env"
    say "cluster: 3 masters + 3 replicas on 127.0.0.1:${PORTS[0]}-${PORTS[5]} ($url)"
    ;;
  stop)
    for port in "${PORTS[@]}"; do
      if pid_alive "$DIR/$port/redis.pid"; then kill "$(head -n 1 "$DIR/$port/redis.pid")"; fi
    done
    say "cluster: stopped"
    ;;
  restart-node)
    [ -n "${2:-}" ] || die "restart-node needs a port"
    start_node "$2"
    ;;
  *) die "usage: cluster.sh start|stop|restart-node PORT" ;;
esac
