#!/usr/bin/env bash
# bench/webhook_bench.sh [bin dir] — webhook delivery throughput (issue 6; docs/benchmarks.md,
# "Webhooks"), measured against a raw Beast baseline in the same run:
#
#   raw      a raw Beast client: C keep-alive connections POSTing 100-byte bodies with the header
#            fields of a delivery (precomputed) to the receiver, N requests, one io thread
#   memory   the hub's webhook sender, in-memory outbox: N messages published on one topic with
#            one static endpoint (max_concurrency C), from the first publish until the last
#            delivery was answered; one io thread (+ the publishing thread)
#   durable  the same with the SQLite outbox file (WAL, synchronous=NORMAL)
#   client   for information: patchbay's HTTP client core alone POSTing in a loop (C coroutines),
#            which the sender's attempts run on — it separates the sender's own cost from the
#            client core's
#
# The receiver (webhook_bench receiver: a raw Beast server answering 204) runs pinned to one
# core, the clients to the other; the three sides alternate RUNS times and the medians are
# compared: memory / raw is the verdict (target >= 0.8), durable / memory the cost of the outbox.
#
# Environment (defaults in brackets): WEBHOOK_BENCH_N [20000], WEBHOOK_BENCH_C [8],
# WEBHOOK_BENCH_RUNS [3], WEBHOOK_BENCH_SERVER_CPU [0], WEBHOOK_BENCH_CLIENT_CPU [1].
# A missed target prints MISSED and does not change the exit status (as the other benchmarks).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bin="${1:-build/release/bin}"
n="${WEBHOOK_BENCH_N:-20000}"
c="${WEBHOOK_BENCH_C:-8}"
runs="${WEBHOOK_BENCH_RUNS:-3}"
server_cpu="${WEBHOOK_BENCH_SERVER_CPU:-0}"
client_cpu="${WEBHOOK_BENCH_CLIENT_CPU:-1}"
exe="$bin/webhook_bench"
[[ -x "$exe" ]] || { echo "webhook_bench.sh: $exe not built (PATCHBAY_BUILD_BENCH=ON)" >&2; exit 2; }

work="$(mktemp -d)"
receiver_pid=""
cleanup() {
  [[ -n "$receiver_pid" ]] && kill "$receiver_pid" 2>/dev/null && wait "$receiver_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

taskset -c "$server_cpu" "$exe" receiver > "$work/receiver.out" &
receiver_pid=$!
for _ in $(seq 100); do
  grep -q listening "$work/receiver.out" 2>/dev/null && break
  sleep 0.05
done
port="$(awk '/listening/ {print $2}' "$work/receiver.out")"
url="http://127.0.0.1:$port/hook"

median() { sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }

declare -A results
for ((r = 1; r <= runs; r++)); do
  for side in raw client memory durable; do
    case "$side" in
      client) rate="$(taskset -c "$client_cpu" "$exe" client "$url" "$n" "$c" | awk '/^rate/ {print $2}')" ;;
      raw) rate="$(taskset -c "$client_cpu" "$exe" raw "$url" "$n" "$c" | awk '/^rate/ {print $2}')" ;;
      memory) rate="$(taskset -c "$client_cpu" "$exe" sender "$url" "$n" "$c" memory | awk '/^rate/ {print $2}')" ;;
      durable) rate="$(taskset -c "$client_cpu" "$exe" sender "$url" "$n" "$c" "$work/outbox.db" | awk '/^rate/ {print $2}')" ;;
    esac
    echo "run $r $side: $rate deliveries/s"
    results[$side]+="$rate "
  done
done

raw="$(tr ' ' '\n' <<< "${results[raw]}" | grep . | median)"
memory="$(tr ' ' '\n' <<< "${results[memory]}" | grep . | median)"
durable="$(tr ' ' '\n' <<< "${results[durable]}" | grep . | median)"
client="$(tr ' ' '\n' <<< "${results[client]}" | grep . | median)"
client_ratio="$(awk -v a="$client" -v b="$raw" 'BEGIN {printf "%.2f", a / b}')"
ratio="$(awk -v a="$memory" -v b="$raw" 'BEGIN {printf "%.2f", a / b}')"
cost="$(awk -v a="$durable" -v b="$memory" 'BEGIN {printf "%.2f", a / b}')"
durable_ratio="$(awk -v a="$durable" -v b="$raw" 'BEGIN {printf "%.2f", a / b}')"
echo
echo "webhooks: $n deliveries, $c in flight, medians of $runs runs"
echo "  raw Beast POST loop      $raw /s"
echo "  client core POST loop    $client /s   ratio $client_ratio (for information)"
echo "  sender, in-memory outbox $memory /s   ratio $ratio (target >= 0.8)"
echo "  sender, durable outbox   $durable /s   ratio $durable_ratio; durable / in-memory $cost"
if awk -v r="$ratio" 'BEGIN {exit !(r >= 0.8)}'; then echo "  target met"; else echo "  MISSED: in-memory sender / raw = $ratio < 0.8"; fi
