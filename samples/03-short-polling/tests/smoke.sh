#!/usr/bin/env bash
# Smoke test of samples/03-short-polling with real clients: curl short polls the hub (the JSON
# answer and its ETag, 304 with If-None-Match, 200 again once something is new, 400 for a bad
# cursor); shortpoll_client reads through the shortpoll transport and resumes from its saved
# position after a restart.
set -euo pipefail
hub=$1 client=$2 dir=$3
port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
log=$(mktemp) state=$(mktemp) headers=$(mktemp)
LISTEN=127.0.0.1:$port "$hub" --config "$dir/hub.yaml" --interval 20 --count 9 >"$log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true; rm -f "$log" "$state" "$headers"' EXIT
url=http://127.0.0.1:$port
fail() { echo "FAIL: $*"; cat "$log"; exit 1; }
for _ in $(seq 1 300); do
  kill -0 $pid 2>/dev/null || fail "the hub exited"
  [[ $(curl -s "$url/topics/jobs/messages?from=earliest" | grep -o '"position"' | wc -l) -ge 9 ]] && break
  sleep 0.1
done

# Everything held, with an ETag naming `next`.
all=$(curl -s -D "$headers" "$url/topics/jobs/messages?from=earliest")
[[ $(grep -o '"position"' <<<"$all" | wc -l) -eq 9 ]] || fail "from=earliest: $all"
grep -q '"payload":"{\\"job\\":\\"build-0\\",\\"state\\":\\"queued\\",\\"seq\\":0}"' <<<"$all" || fail "the first update: $all"
next=$(/usr/bin/python3 -c 'import json,sys; print(json.loads(sys.argv[1])["next"])' "$all")
etag=$(grep -i '^etag:' "$headers" | cut -d' ' -f2 | tr -d '\r')
[[ "$etag" == "\"$next\"" ]] || fail "ETag $etag for next $next"
echo "ok: curl reads 9 updates, next=$next, ETag $etag"

# Nothing new: 304 without a body.
code=$(curl -s -o /dev/null -w '%{http_code}' -H "If-None-Match: $etag" "$url/topics/jobs/messages?after=$next")
[[ "$code" == 304 ]] || fail "If-None-Match with nothing new got $code"
echo "ok: If-None-Match $etag → 304"

# Something new: 200 with it.
curl -s -X POST --data '{"job":"deploy","state":"queued"}' "$url/topics/jobs" | grep -q '"position"' || fail "POST"
new=$(curl -s -w '\n%{http_code}' -H "If-None-Match: $etag" "$url/topics/jobs/messages?after=$next")
[[ "$(tail -n1 <<<"$new")" == 200 ]] || fail "after a publish: $new"
grep -q 'deploy' <<<"$new" || fail "the new update: $new"
echo "ok: after a publish → 200 with the new update"

code=$(curl -s -o /dev/null -w '%{http_code}' "$url/topics/jobs/messages?after=garbage")
[[ "$code" == 400 ]] || fail "a garbage cursor got $code"
echo "ok: a bad cursor gets 400"

# The C++ client: three updates, then (a restart) the next two, from the saved position.
out=$(HUB_URL=$url POLL_INTERVAL=50ms "$client" --config "$dir/client.yaml" --from earliest --count 3 --state "$state")
echo "$out"
[[ $(grep -c '^update [0-9] at [0-9]*:[0-9]*: {"job":' <<<"$out") -eq 3 ]] || fail "shortpoll_client: $out"
out=$(HUB_URL=$url POLL_INTERVAL=50ms "$client" --config "$dir/client.yaml" --count 2 --state "$state")
echo "$out"
grep -q '^update 1 at .*"seq":3}' <<<"$out" || fail "resume after a restart: $out"
grep -q '^update 2 at .*"seq":4}' <<<"$out" || fail "resume after a restart: $out"
echo "ok: shortpoll_client resumes from its saved position"

kill -TERM $pid
wait $pid || fail "the hub did not exit cleanly on SIGTERM"
echo "sample 03 ok"
