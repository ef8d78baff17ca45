# scripts/brokers.d/redis.sh — redis-server on loopback for the redis transport's tests.
#
# Sourced by scripts/brokers. One redis-server, run without systemd (daemonized by itself),
# with all of its state under $PATCHBAY_BROKER_DIR/redis: its working dir, log, pid file and
# the port it was given (free_port, never a fixed one). No persistence (`--save ''`,
# `--appendonly no`): the shared server is for the conformance and interop tests; fault tests
# that kill a server start their own private ones with AOF (transports/redis/tests/server.cpp).
# Ready means it answers PING. Stopped by pid with SIGTERM. Exports for the tests:
#   PATCHBAY_REDIS_PORT   the port
#   PATCHBAY_REDIS_URL    redis://127.0.0.1:PORT

BROKERS+=(redis)

_redis_dir() { echo "${PATCHBAY_BROKER_DIR}/redis"; }

start_redis() {
  local d port
  d=$(_redis_dir)
  if status_redis >/dev/null 2>&1; then
    echo "redis: already running on port $(cat "$d/port")"
  else
    rm -rf "$d"
    mkdir -p "$d"
    port=$(free_port)
    echo "$port" >"$d/port"
    if ! redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --daemonize yes \
        --pidfile "$d/redis.pid" --logfile "$d/redis.log" --dir "$d" >"$d/start.out" 2>&1; then
      echo "redis: redis-server failed to start; see $d/start.out" >&2
      return 1
    fi
    # Ready once it answers PING (well under a second).
    local deadline=$((SECONDS + 20))
    until [[ "$(redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null)" == "PONG" ]]; do
      if ((SECONDS > deadline)); then
        echo "redis: did not become ready; see $d/redis.log" >&2
        stop_redis
        return 1
      fi
      sleep 0.05
    done
    echo "redis: ready on 127.0.0.1:${port}"
  fi
  port=$(cat "$d/port")
  {
    echo "export PATCHBAY_REDIS_PORT=${port}"
    echo "export PATCHBAY_REDIS_URL=redis://127.0.0.1:${port}"
  } >>"${ENV_FILE}"
}

stop_redis() {
  local d pid
  d=$(_redis_dir)
  [[ -d "$d" ]] || return 0
  if [[ -s "$d/redis.pid" ]]; then
    pid=$(cat "$d/redis.pid")
    if kill -TERM "$pid" 2>/dev/null; then
      local deadline=$((SECONDS + 10))
      while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.05; done
      kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$d/redis.pid"
  fi
  return 0
}

status_redis() {
  local d
  d=$(_redis_dir)
  if [[ -s "$d/redis.pid" ]] && kill -0 "$(cat "$d/redis.pid")" 2>/dev/null; then
    echo "redis: running (pid $(cat "$d/redis.pid"), port $(cat "$d/port"))"
    return 0
  fi
  echo "redis: not running"
  return 1
}
