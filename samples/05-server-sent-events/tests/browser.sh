#!/usr/bin/env bash
# A real browser: headless Chromium loads the sample's page from the hub; its EventSource must
# receive at least 5 events. The page logs each event to the console, which Chromium prints on
# stderr with --enable-logging=stderr.
set -euo pipefail
feed=$1 dir=$2
browser=$(command -v chromium || command -v chromium-browser || true)
[[ -n "$browser" ]] || { echo "FAIL: chromium is not installed (scripts/install-deps installs it)"; exit 1; }
port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
work=$(mktemp -d)
LISTEN=127.0.0.1:$port "$feed" --config "$dir/feed.yaml" --interval 50 >"$work/feed.log" 2>&1 &
feed_pid=$!
browser_pid=
cleanup() {
  local rc=$?
  # Chromium runs in its own process group (setsid): end all of its processes, not just one.
  [[ -n "$browser_pid" ]] && kill -- "-$browser_pid" 2>/dev/null
  kill "$feed_pid" 2>/dev/null
  wait 2>/dev/null
  for _ in $(seq 1 50); do
    [[ -n "$browser_pid" ]] && pgrep -g "$browser_pid" >/dev/null 2>&1 || break
    sleep 0.1
  done
  rm -rf "$work" 2>/dev/null
  exit "$rc"
}
trap cleanup EXIT
for _ in $(seq 1 300); do
  curl -s -o /dev/null "http://127.0.0.1:$port/" && break
  sleep 0.1
done
setsid "$browser" --headless --no-sandbox --disable-gpu --no-first-run --disable-background-networking \
  --disable-component-update --disable-sync --disable-dev-shm-usage --user-data-dir="$work/profile" \
  --enable-logging=stderr --v=0 --remote-debugging-port=0 "http://127.0.0.1:$port/" 2>"$work/chromium.log" &
browser_pid=$!
for _ in $(seq 1 1200); do  # up to 120 s: Chromium's first start on a busy machine is slow
  if grep -q 'patchbay event 5 id=' "$work/chromium.log"; then
    grep -o 'patchbay event [0-9]* id=[^ ]*' "$work/chromium.log" | head -5
    echo "browser ok: EventSource received 5 events"
    exit 0
  fi
  kill -0 "$browser_pid" 2>/dev/null || break
  sleep 0.1
done
echo "FAIL: the page did not receive 5 events"
tail -n 30 "$work/chromium.log"
exit 1
