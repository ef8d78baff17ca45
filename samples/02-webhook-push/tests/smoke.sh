#!/usr/bin/env bash
# Smoke test of samples/02-webhook-push: the sender publishes 5 orders while the receiver is
# still down (its first attempts are refused and retried from the outbox); the receiver comes up
# a moment later and gets every order exactly once — the first one after a nack, marked
# redelivered. curl shows that an unsigned or wrongly signed request gets 401.
set -euo pipefail
sender=$1 receiver=$2 dir=$3
free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
hub_port=$(free_port) recv_port=$(free_port)
work=$(mktemp -d)
slog=$work/sender.log rlog=$work/receiver.log
export WEBHOOK_SECRET=whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw
LISTEN=127.0.0.1:$hub_port OUTBOX=$work/outbox.db RECEIVER_URL=http://127.0.0.1:$recv_port/webhooks/orders \
  "$sender" --config "$dir/sender.yaml" --interval 100 --count 5 >"$slog" 2>&1 &
spid=$!
rpid=
# On a failure path a process may be stuck: KILL, so that none is left behind.
trap 'kill -KILL $spid 2>/dev/null || true; [[ -n "$rpid" ]] && kill -KILL $rpid 2>/dev/null || true; rm -rf "$work"' EXIT
fail() { echo "FAIL: $*"; echo "--- sender"; cat "$slog"; echo "--- receiver"; cat "$rlog" 2>/dev/null || true; exit 1; }

for _ in $(seq 1 300); do
  kill -0 $spid 2>/dev/null || fail "the sender exited"
  grep -q 'all orders published' "$slog" && break
  sleep 0.1
done
grep -q 'all orders published' "$slog" || fail "the sender did not publish"
echo "ok: 5 orders published while the receiver is down"
sleep 1  # the receiver is down a little longer: the first attempts are refused

LISTEN=127.0.0.1:$recv_port "$receiver" --config "$dir/receiver.yaml" --count 5 --nack-first >"$rlog" 2>&1 &
rpid=$!
for _ in $(seq 1 300); do
  grep -q 'listening for webhooks' "$rlog" && break
  kill -0 $rpid 2>/dev/null || fail "the receiver exited early"
  sleep 0.1
done

# Unsigned and wrongly signed requests are refused before anything is delivered.
url=http://127.0.0.1:$recv_port/webhooks/orders
code=$(curl -s -o /dev/null -w '%{http_code}' -X POST --data '{"order":99}' "$url")
[[ "$code" == 401 ]] || fail "an unsigned request got $code"
now=$(date +%s)
code=$(curl -s -o "$work/401.txt" -w '%{http_code}' -X POST --data '{"order":99}' -H 'webhook-id: msg_forged' \
  -H "webhook-timestamp: $now" -H 'webhook-signature: v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=' "$url")
[[ "$code" == 401 ]] || fail "a forged signature got $code"
echo "ok: unsigned → 401, forged signature → 401 ($(cat "$work/401.txt"))"

for _ in $(seq 1 600); do
  kill -0 $rpid 2>/dev/null || break
  sleep 0.1
done
kill -0 $rpid 2>/dev/null && fail "the receiver did not get 5 orders within 60 s"
wait $rpid || fail "the receiver failed"
rpid=
cat "$rlog"

published=$(grep -o 'webhook-id [^)]*' "$slog" | sort)
received=$(grep '^order ' "$rlog" | grep -o 'webhook-id [^)]*' | sort)
[[ "$published" == "$received" ]] || fail "received ids differ from published ones"
[[ $(grep -c '^order ' "$rlog") -eq 5 ]] || fail "not exactly 5 deliveries"
grep -q '^nack ' "$rlog" || fail "no nack"
grep -q ' redelivered$' "$rlog" || fail "the nacked order did not come back marked redelivered"
grep -q '"order":1,' "$rlog" || fail "order 1 (published while the receiver was down) missing"
echo "ok: every order arrived once, the nacked one again as redelivered"

kill -TERM $spid
wait $spid || fail "the sender did not exit cleanly on SIGTERM"
echo "sample 02 ok"
