# scripts/brokers.d/nats.sh — nats-server on loopback for the nats transport's tests.
#
# Sourced by scripts/brokers. One nats-server (core NATS, no JetStream), run without systemd,
# with all of its state under $PATCHBAY_BROKER_DIR/nats: a config file, its log, its pid file
# and the ports it was given (free_port, never fixed ones). The server allows payloads up to
# 8 MiB (`max_payload`; the default is 1 MiB), so that the conformance suite also carries a
# multi-megabyte payload through it. Ready means its monitoring endpoint answers /healthz.
# Stopped by pid with SIGINT (nats-server exits 1 on SIGTERM). Exports for the tests:
#   PATCHBAY_NATS_PORT   the client port
#   PATCHBAY_NATS_URL    nats://127.0.0.1:PORT
#
# Fault tests start private servers the same way (transports/nats/tests/nats_server.hpp).

BROKERS+=(nats)

_nats_dir() { echo "${PATCHBAY_BROKER_DIR}/nats"; }

start_nats() {
  local d port monitor
  d=$(_nats_dir)
  if status_nats >/dev/null 2>&1; then
    echo "nats: already running on port $(cat "$d/port")"
  else
    rm -rf "$d"
    mkdir -p "$d"
    port=$(free_port)
    monitor=$(free_port)
    echo "$port" >"$d/port"
    echo "$monitor" >"$d/monitor_port"
    cat >"$d/nats.conf" <<CONF
listen: 127.0.0.1:${port}
http: 127.0.0.1:${monitor}
max_payload: 8MB
CONF
    nats-server -c "$d/nats.conf" -l "$d/nats.log" -P "$d/nats.pid" >"$d/start.out" 2>&1 &
    # Ready once /healthz answers (well under a second); a server that exits early fails at once.
    local pid=$! deadline=$((SECONDS + 20))
    until curl -fsS "http://127.0.0.1:${monitor}/healthz" >/dev/null 2>&1; do
      if ! kill -0 "$pid" 2>/dev/null || ((SECONDS > deadline)); then
        echo "nats: did not become ready; see $d/nats.log and $d/start.out" >&2
        stop_nats
        return 1
      fi
      sleep 0.05
    done
    wait_for_port "$port" 10
    echo "nats: ready on 127.0.0.1:${port} (monitoring ${monitor})"
  fi
  port=$(cat "$d/port")
  {
    echo "export PATCHBAY_NATS_PORT=${port}"
    echo "export PATCHBAY_NATS_URL=nats://127.0.0.1:${port}"
  } >>"${ENV_FILE}"
}

stop_nats() {
  local d pid
  d=$(_nats_dir)
  [[ -d "$d" ]] || return 0
  if [[ -s "$d/nats.pid" ]]; then
    pid=$(cat "$d/nats.pid")
    if kill -INT "$pid" 2>/dev/null; then
      local deadline=$((SECONDS + 10))
      while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.05; done
      kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$d/nats.pid"
  fi
  return 0
}

status_nats() {
  local d
  d=$(_nats_dir)
  if [[ -s "$d/nats.pid" ]] && kill -0 "$(cat "$d/nats.pid")" 2>/dev/null; then
    echo "nats: running (pid $(cat "$d/nats.pid"), port $(cat "$d/port"))"
    return 0
  fi
  echo "nats: not running"
  return 1
}
