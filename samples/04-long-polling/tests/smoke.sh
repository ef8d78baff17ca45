#!/usr/bin/env bash
# Smoke test of samples/04-long-polling with real clients: curl long polls the hub (an answer at
# once, a held poll woken by a POST, an empty answer when the wait ends, 400 for a bad cursor);
# longpoll_client reads through the longpoll transport and resumes from its saved position.
set -euo pipefail
hub=$1 client=$2 dir=$3
port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
log=$(mktemp) state=$(mktemp)
LISTEN=127.0.0.1:$port "$hub" --config "$dir/hub.yaml" --interval 20 --count 10 >"$log" 2>&1 &
pid=$!
held_pid=
trap 'kill $pid 2>/dev/null || true; [[ -n "$held_pid" ]] && kill $held_pid 2>/dev/null; rm -f "$log" "$state" "$log.held"' EXIT
url=http://127.0.0.1:$port
fail() { echo "FAIL: $*"; cat "$log"; exit 1; }
for _ in $(seq 1 300); do
  kill -0 $pid 2>/dev/null || fail "the hub exited"
  [[ $(curl -s "$url/topics/alerts/messages?from=earliest" | grep -o '"position"' | wc -l) -ge 10 ]] && break
  sleep 0.1
done

# Everything held, at once; `next` is where the next poll starts.
all=$(curl -s "$url/topics/alerts/poll?from=earliest&wait=0")
[[ $(grep -o '"position"' <<<"$all" | wc -l) -eq 10 ]] || fail "from=earliest: $all"
grep -q '"payload":"{\\"alert\\":0,\\"level\\":\\"info\\"}"' <<<"$all" || fail "the first alert: $all"
next=$(/usr/bin/python3 -c 'import json,sys; print(json.loads(sys.argv[1])["next"])' "$all")
echo "ok: curl reads 10 alerts at once, next=$next"

# A poll after the newest alert is held; a POST wakes it.
curl -s "$url/topics/alerts/poll?after=$next&wait=30" >"$log.held" &
held_pid=$!
sleep 0.3
kill -0 $held_pid 2>/dev/null || fail "the poll was not held: $(cat "$log.held")"
curl -s -X POST --data '{"alert":"manual"}' "$url/topics/alerts" | grep -q '"position"' || fail "POST"
wait $held_pid
held_pid=
grep -q 'manual' "$log.held" || fail "the held poll did not get the POSTed alert: $(cat "$log.held")"
echo "ok: a held poll is answered by the next publish"

# The wait ends: an empty answer with the same position.
last=$(/usr/bin/python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["next"])' "$log.held")
empty=$(curl -s "$url/topics/alerts/poll?after=$last&wait=0.2")
[[ "$empty" == "{\"messages\":[],\"next\":\"$last\"}" ]] || fail "empty answer: $empty"
echo "ok: an ended wait answers {\"messages\":[],\"next\":\"$last\"}"

code=$(curl -s -o /dev/null -w '%{http_code}' "$url/topics/alerts/poll?after=-1:5")
[[ "$code" == 400 ]] || fail "a negative cursor got $code"
echo "ok: a bad cursor gets 400"

# The C++ client: three alerts, then (a restart) the next two, from the saved position.
out=$(HUB_URL=$url "$client" --config "$dir/client.yaml" --from earliest --count 3 --state "$state")
echo "$out"
[[ $(grep -c '^alert [0-9] at [0-9]*:[0-9]*: {"alert":' <<<"$out") -eq 3 ]] || fail "longpoll_client: $out"
grep -q '"alert":2,' <<<"$out" || fail "the third alert: $out"
out=$(HUB_URL=$url "$client" --config "$dir/client.yaml" --count 2 --state "$state")
echo "$out"
grep -q '^alert 1 at .*"alert":3,' <<<"$out" || fail "resume after a restart: $out"
grep -q '^alert 2 at .*"alert":4,' <<<"$out" || fail "resume after a restart: $out"
echo "ok: longpoll_client resumes from its saved position"

kill -TERM $pid
wait $pid || fail "the hub did not exit cleanly on SIGTERM"
echo "sample 04 ok"
