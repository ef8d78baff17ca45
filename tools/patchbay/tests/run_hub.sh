#!/usr/bin/env bash
# `patchbay run --config hub.yaml` starts a hub: curl publishes with POST /topics/news and reads
# the event stream; an unknown topic gets 404; SIGTERM stops it with exit 0.
# usage: run_hub.sh PATCHBAY_BINARY CONFIG
set -u
cli=$1 config=$2
export HUB_PORT
HUB_PORT=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
log=$(mktemp) events=$(mktemp)
trap 'rm -f "$log" "$events"; kill -9 "$pid" "$curl_pid" 2>/dev/null' EXIT
curl_pid=
"$cli" run --config "$config" 2>"$log" &
pid=$!
url=http://127.0.0.1:$HUB_PORT
for _ in $(seq 1 600); do
  curl -s -o /dev/null "$url/topics/news/events?from=earliest" --max-time 0.2; rc=$?
  [[ $rc -eq 28 || $rc -eq 0 ]] && break  # 28: the stream stayed open until --max-time
  kill -0 "$pid" 2>/dev/null || { echo "patchbay run exited early:"; cat "$log"; exit 1; }
  sleep 0.1
done
fail() { echo "FAIL: $*"; cat "$log"; exit 1; }

curl -s -N "$url/topics/news/events" >"$events" &
curl_pid=$!
sleep 0.2  # not a correctness wait: the first publish is checked through the history below
answer=$(curl -s -d 'first story' "$url/topics/news")
[[ "$answer" == '{"id":"'*'","position":"'*'"}' ]] || fail "POST /topics/news answered: $answer"
curl -s -d 'second story' "$url/topics/news" >/dev/null
# The history has both, whenever the live stream above connected.
replay=$(curl -s -N --max-time 5 "$url/topics/news/events?from=earliest" | head -n 8)
grep -q '^data: first story' <<<"$replay" || fail "history: $replay"
grep -q '^data: second story' <<<"$replay" || fail "history: $replay"
echo "ok: POST /topics/news and the event stream"
code=$(curl -s -o /dev/null -w '%{http_code}' -d x "$url/topics/unknown")
[[ "$code" == 404 ]] || fail "unknown topic answered $code"
echo "ok: an unknown topic is a 404"

kill -TERM "$pid"
for _ in $(seq 1 600); do
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.1
done
kill -0 "$pid" 2>/dev/null && fail "patchbay run did not stop within 60 s of SIGTERM"
wait "$pid"; rc=$?
[ "$rc" -eq 0 ] || fail "patchbay run exited with $rc after SIGTERM"
wait "$curl_pid" 2>/dev/null  # the live stream ended with the hub
echo "ok: the hub stopped on SIGTERM with exit 0"
