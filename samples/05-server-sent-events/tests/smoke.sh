#!/usr/bin/env bash
# Smoke test of samples/05-server-sent-events with real clients: curl reads the raw event
# stream, sse_subscriber reads it through the sse transport.
set -euo pipefail
feed=$1 subscriber=$2 dir=$3
port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
log=$(mktemp)
LISTEN=127.0.0.1:$port "$feed" --config "$dir/feed.yaml" --interval 50 >"$log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true; rm -f "$log"' EXIT
url=http://127.0.0.1:$port
for _ in $(seq 1 300); do
  kill -0 $pid 2>/dev/null || { echo "FAIL: the server exited"; cat "$log"; exit 1; }
  curl -s -o /dev/null "$url/" && break
  sleep 0.1
done
fail() { echo "FAIL: $*"; cat "$log"; exit 1; }

page=$(curl -s "$url/")
grep -q 'new EventSource("/topics/prices/events")' <<<"$page" || fail "GET / is not the page"
echo "ok: GET / serves the page"

# curl: the headers and three events (curl -N does not buffer; head ends it).
stream=$(curl -s -N -i --max-time 30 "$url/topics/prices/events" | head -n 40 || true)
grep -qi '^content-type: text/event-stream' <<<"$stream" || fail "no text/event-stream: $stream"
grep -q '^retry: 2000' <<<"$stream" || fail "no retry field: $stream"
[[ $(grep -c '^data: {"symbol":' <<<"$stream") -ge 3 ]] || fail "fewer than 3 events: $stream"
grep -q '^id: [0-9]*:[0-9]*' <<<"$stream" || fail "events without ids: $stream"
echo "ok: curl reads the event stream"

# Resume: Last-Event-ID of an early event gives the events after it from the history.
first_id=$(grep -m1 '^id: ' <<<"$stream" | cut -d' ' -f2 | tr -d '\r')
resumed=$(curl -s -N --max-time 30 -H "Last-Event-ID: $first_id" "$url/topics/prices/events" | head -n 8 || true)
seq_first=$(grep -m1 '^id: ' <<<"$resumed" | cut -d' ' -f2 | cut -d: -f2 | tr -d '\r')
[[ "$seq_first" == "$(( ${first_id#*:} + 1 ))" ]] || fail "resume after $first_id started at $seq_first"
echo "ok: Last-Event-ID resumes right after $first_id"

out=$(HUB_URL=$url "$subscriber" --config "$dir/subscriber.yaml" --count 3)
echo "$out"
[[ $(grep -c '^event [0-9] at [0-9]*:[0-9]*: {"symbol":' <<<"$out") -eq 3 ]] || fail "sse_subscriber: $out"

kill -TERM $pid
wait $pid || fail "the feed did not exit cleanly on SIGTERM"
echo "sample 05 ok"
