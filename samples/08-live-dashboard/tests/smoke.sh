#!/usr/bin/env bash
# Smoke test of samples/08-live-dashboard: the page is served, and the topic `prices` reaches
# clients nobody here wrote through all four endpoints — curl reads server-sent events, long
# polls (following `next`), short polls (ETag, then If-None-Match until a 304), and Python's
# websocket-client reads the WebSocket. Runs with the embedded default (no --config) and with
# every config/*.yaml whose `# requires:` variable is set (scripts/brokers exports them); the
# others are skipped with a visible SKIP line.
set -euo pipefail
bin=$1 dir=$2
py=/usr/bin/python3  # Debian's python3-websocket imports only under the system interpreter
work=$(mktemp -d)
pid=
cleanup() {
  local rc=$?
  [[ -n "$pid" ]] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  rm -rf "$work"
  exit "$rc"
}
trap cleanup EXIT

free_port() { "$py" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
json() { "$py" -c "import json,sys; d=json.load(sys.stdin); print($1)"; }
fail() { echo "FAIL [$label]: $*"; tail -n 20 "$work/dashboard.log"; exit 1; }

run_one() {  # run_one LABEL [--config FILE]
  label=$1
  shift
  local port url
  port=$(free_port)
  url=http://127.0.0.1:$port
  DASHBOARD_ZMQ_PORT=$(free_port) "$bin" --listen "127.0.0.1:$port" --interval 200 "$@" >"$work/dashboard.log" 2>&1 &
  pid=$!
  for _ in $(seq 1 300); do
    curl -sf -o "$work/page.html" "$url/" && break
    kill -0 "$pid" 2>/dev/null || fail "live_dashboard exited"
    sleep 0.1
  done
  grep -q "patchbay live dashboard" "$work/page.html" || fail "GET / did not return the page"

  # Server-sent events: three quotes.
  timeout 60 curl -sN "$url/topics/prices/events" | grep -m3 '^data: {"symbol"' >"$work/sse" || true
  [[ $(wc -l <"$work/sse") -eq 3 ]] || fail "SSE: fewer than 3 events"

  # Long polling: the first poll starts from now and holds until a quote arrives; the second
  # continues from `next`.
  local answer next n=0
  answer=$(curl -sf "$url/topics/prices/poll?wait=20") || fail "long poll failed"
  for _ in 1 2 3; do
    n=$((n + $(json 'len(d["messages"])' <<<"$answer")))
    next=$(json 'd["next"]' <<<"$answer")
    answer=$(curl -sf "$url/topics/prices/poll?wait=20&after=$next") || fail "long poll after=$next failed"
  done
  ((n >= 3)) || fail "long polls returned $n messages"

  # Short polling: an answer at once with an ETag; the same request with If-None-Match is 304
  # as soon as nothing new was published in between. Quotes come every 200 ms, so both requests
  # go back to back on one keep-alive connection from one process (no process start-up between
  # them), retried until a pair falls between two quotes.
  "$py" - "127.0.0.1:$port" <<'PY' || fail "short poll"
import http.client, json, sys
c = http.client.HTTPConnection(sys.argv[1], timeout=30)
for _ in range(200):
    c.request("GET", "/topics/prices/messages")
    r = c.getresponse(); body = r.read()
    assert r.status == 200, f"short poll answered {r.status}"
    etag = r.getheader("ETag"); assert etag, "short poll: no ETag"
    json.loads(body)["next"]
    c.request("GET", "/topics/prices/messages", headers={"If-None-Match": etag})
    r = c.getresponse(); r.read()
    if r.status == 304:
        sys.exit(0)
    assert r.status == 200, f"short poll with If-None-Match answered {r.status}"
sys.exit("short poll: never a 304")
PY

  # WebSocket: three message frames.
  "$py" - "127.0.0.1:$port" <<'PY' || fail "WebSocket"
import json, sys, websocket
ws = websocket.create_connection(f"ws://{sys.argv[1]}/topics/prices/ws", timeout=30)
got = 0
while got < 3:
    frame = json.loads(ws.recv())
    if frame.get("type") == "message":
        json.loads(frame["payload"])  # a quote
        got += 1
ws.close()
PY

  kill "$pid"
  wait "$pid" 2>/dev/null || true
  pid=
  echo "ok [$label]: page, SSE, long poll ($n messages), short poll (304 seen), WebSocket"
}

run_one "embedded inproc"
for config in "$dir"/config/*.yaml; do
  name=$(basename "$config" .yaml)
  need=$(sed -n 's/^# requires: //p' "$config" | head -1)
  if [[ -n "$need" && -z "${!need:-}" ]]; then
    echo "SKIP [$name]: $need is not set (scripts/brokers start exports it)"
    continue
  fi
  run_one "$name" --config "$config"
done
