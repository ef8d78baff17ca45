#!/usr/bin/env bash
# Smoke test of samples/01-request-response with real clients: curl and rr_client.
set -euo pipefail
server=$1 client=$2 dir=$3
port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
log=$(mktemp)
LISTEN=127.0.0.1:$port "$server" --config "$dir/server.yaml" >"$log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true; rm -f "$log"' EXIT
url=http://127.0.0.1:$port
for _ in $(seq 1 300); do
  kill -0 $pid 2>/dev/null || { echo "FAIL: the server exited"; cat "$log"; exit 1; }
  curl -s -o /dev/null "$url/hello" && break
  sleep 0.1
done

fail() { echo "FAIL: $*"; cat "$log"; exit 1; }
check() {  # check NAME EXPECTED ACTUAL
  [[ "$3" == "$2" ]] || fail "$1: expected '$2', got '$3'"
  echo "ok: $1"
}

check "GET /hello" "Hello from server!" "$(curl -s "$url/hello")"
check "GET /users/42" '{"id":"42","name":"user 42"}' "$(curl -s "$url/users/42")"
check "content type" "application/json" "$(curl -s -o /dev/null -w '%{content_type}' "$url/users/42")"
quote=$(curl -s -H 'content-type: application/json' -d '{"symbol":"ACME"}' "$url/services/quote")
[[ "$quote" == '{"symbol":"ACME","price":'* ]] || fail "POST /services/quote: $quote"
echo "ok: POST /services/quote -> $quote"
check "bad JSON is a 400" "400" "$(curl -s -o /dev/null -w '%{http_code}' -d 'nope' "$url/services/quote")"
check "unknown service is a 404" "404" "$(curl -s -o /dev/null -w '%{http_code}' -d 'x' "$url/services/nobody")"
check "unknown route is a 404" "404" "$(curl -s -o /dev/null -w '%{http_code}' "$url/nothing")"

out=$(SERVER_URL=$url "$client" --config "$dir/client.yaml" ACME INIT)
echo "$out"
grep -q '^quote ACME: {"symbol":"ACME","price":' <<<"$out" || fail "rr_client: $out"
grep -q '^quote INIT: {"symbol":"INIT","price":' <<<"$out" || fail "rr_client: $out"

kill -TERM $pid
wait $pid || fail "the server did not exit cleanly on SIGTERM"
echo "sample 01 ok"
