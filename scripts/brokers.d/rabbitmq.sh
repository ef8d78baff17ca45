# scripts/brokers.d/rabbitmq.sh — RabbitMQ on loopback for the rabbitmq transport's tests.
#
# Sourced by scripts/brokers. One node, run as the current user without systemd, with all of its
# state under $PATCHBAY_BROKER_DIR/rabbitmq: its own AMQP port (free_port), its own node name
# (rmq<port>@localhost), its own distribution port and — so that stopping it never touches
# another node's — its own epmd on a private port (ERL_EPMD_PORT). Exports for the tests:
#   PATCHBAY_RABBITMQ_PORT   the AMQP port
#   PATCHBAY_RABBITMQ_URL    amqp://guest:guest@127.0.0.1:PORT/
# The node allows messages up to 16 MiB (max_message_size), so that tests can check the
# broker's refusal of a larger one without allocating the 128 MiB default.
#
# The fault tests (transports/rabbitmq/tests/fault_test.cpp) start private nodes with this script
# under their own PATCHBAY_BROKER_DIR, kill them with -9, and start them again with
# PATCHBAY_RABBITMQ_RESTART=1, which keeps the node's port, name and data.

BROKERS+=(rabbitmq)

_rabbitmq_dir() { echo "${PATCHBAY_BROKER_DIR}/rabbitmq"; }

# Runs a RabbitMQ tool (rabbitmq-server, rabbitmqctl) with the node's environment.
_rabbitmq_env() {
  local d port epmd
  d=$(_rabbitmq_dir)
  port=$(cat "$d/port")
  epmd=$(cat "$d/epmd_port")
  env HOME="$d/home" \
    RABBITMQ_NODENAME="rmq${port}@localhost" \
    RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 \
    RABBITMQ_NODE_PORT="$port" \
    RABBITMQ_DIST_PORT="$(cat "$d/dist_port")" \
    RABBITMQ_MNESIA_BASE="$d/mnesia" \
    RABBITMQ_LOG_BASE="$d/log" \
    RABBITMQ_PID_FILE="$d/rabbit.pid" \
    RABBITMQ_ENABLED_PLUGINS_FILE="$d/enabled_plugins" \
    RABBITMQ_CONFIG_FILE="$d/rabbitmq" \
    ERL_EPMD_ADDRESS=127.0.0.1 \
    ERL_EPMD_PORT="$epmd" \
    RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}" \
    "$@"
}

start_rabbitmq() {
  local d port
  d=$(_rabbitmq_dir)
  if status_rabbitmq >/dev/null 2>&1; then
    echo "rabbitmq: already running on port $(cat "$d/port")"
  else
    if [[ "${PATCHBAY_RABBITMQ_RESTART:-0}" == 1 && -s "$d/port" ]]; then
      # Restart after a crash (fault tests): same node, port and data; only the pid file goes.
      rm -f "$d/rabbit.pid"
      port=$(cat "$d/port")
    else
      rm -rf "$d"
      mkdir -p "$d/home" "$d/log" "$d/mnesia"
      port=$(free_port)
      echo "$port" >"$d/port"
      free_port >"$d/dist_port"
      free_port >"$d/epmd_port"
    fi
    echo "[]." >"$d/enabled_plugins"
    cat >"$d/rabbitmq.conf" <<CONF
listeners.tcp.default = 127.0.0.1:${port}
loopback_users = none
max_message_size = 16777216
CONF
    _rabbitmq_env /usr/lib/rabbitmq/bin/rabbitmq-server -detached >"$d/log/start.out" 2>&1
    # The node needs 5-7 s to boot; `rabbitmqctl wait` follows the pid file until it is up.
    local deadline=$((SECONDS + 60))
    until [[ -s "$d/rabbit.pid" ]]; do
      if ((SECONDS > deadline)); then
        echo "rabbitmq: no pid file after 60 s; see $d/log" >&2
        stop_rabbitmq
        return 1
      fi
      sleep 0.1
    done
    if ! _rabbitmq_env /usr/lib/rabbitmq/bin/rabbitmqctl wait --timeout 60 "$d/rabbit.pid" >"$d/log/wait.out" 2>&1 ||
      ! wait_for_port "$port" 30; then
      echo "rabbitmq: did not become ready; see $d/log" >&2
      stop_rabbitmq
      return 1
    fi
    echo "rabbitmq: ready on 127.0.0.1:${port} (node rmq${port}@localhost)"
  fi
  port=$(cat "$d/port")
  {
    echo "export PATCHBAY_RABBITMQ_PORT=${port}"
    echo "export PATCHBAY_RABBITMQ_URL=amqp://guest:guest@127.0.0.1:${port}/"
  } >>"${ENV_FILE}"
}

stop_rabbitmq() {
  local d pid epmd
  d=$(_rabbitmq_dir)
  [[ -d "$d" ]] || return 0
  if [[ -s "$d/rabbit.pid" ]]; then
    pid=$(cat "$d/rabbit.pid")
    if kill -TERM "$pid" 2>/dev/null; then
      local deadline=$((SECONDS + 30))
      while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.1; done
      kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$d/rabbit.pid"
  fi
  # The node's own epmd (private port): nobody else uses it.
  if [[ -s "$d/epmd_port" ]]; then
    epmd=$(cat "$d/epmd_port")
    ERL_EPMD_PORT="$epmd" epmd -port "$epmd" -kill >/dev/null 2>&1 || true
  fi
  return 0
}

status_rabbitmq() {
  local d
  d=$(_rabbitmq_dir)
  if [[ -s "$d/rabbit.pid" ]] && kill -0 "$(cat "$d/rabbit.pid")" 2>/dev/null; then
    echo "rabbitmq: running (pid $(cat "$d/rabbit.pid"), port $(cat "$d/port"))"
    return 0
  fi
  echo "rabbitmq: not running"
  return 1
}
