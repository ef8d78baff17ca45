#!/usr/bin/env bash
# bench/ws_bench.sh [bin dir] — the WebSocket benchmarks (issue 4), each against a raw Beast
# WebSocket baseline measured in the same run (docs/benchmarks.md; the same method as the SSE
# rows of bench/http_bench.sh):
#
#   fanout  WebSocket deliveries/s to SUBSCRIBERS connections (ws_bench_client, its own process
#           on the other core), 100-byte messages published by the server's paced publisher;
#           the hub (http_bench_patchbay --mode=hub: GET /topics/bench/ws) and the raw Beast
#           broadcast server (ws_bench_raw) alternate RUNS times; medians, ratio hub / raw, the
#           median of the per-round ratios and deliveries per second of server CPU time.
#   memory  (RSS with IDLE idle WebSocket connections − RSS before any) / IDLE, hub vs raw, with
#           the malloc heap in use and the live operator-new blocks per connection
#           (PATCHBAY_BENCH_ALLOC_STATS=1, printed by the servers on SIGUSR1).
#
# Environment (defaults in brackets): WS_BENCH_PARTS ["fanout memory"], WS_BENCH_RUNS [3],
# WS_BENCH_FANOUT_SECONDS [5], WS_BENCH_SUBSCRIBERS [1000], WS_BENCH_IDLE [10000],
# WS_BENCH_SERVER_CPU [0], WS_BENCH_CLIENT_CPU [1]. A missed target prints MISSED and does not
# change the exit status (as the other benchmarks).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bin="${1:-build/release/bin}"
parts="${WS_BENCH_PARTS:-fanout memory}"
runs="${WS_BENCH_RUNS:-3}"
fanout_seconds="${WS_BENCH_FANOUT_SECONDS:-5}"
subscribers="${WS_BENCH_SUBSCRIBERS:-1000}"
idle="${WS_BENCH_IDLE:-10000}"
server_cpu="${WS_BENCH_SERVER_CPU:-0}"
client_cpu="${WS_BENCH_CLIENT_CPU:-1}"

for exe in ws_bench_raw http_bench_patchbay ws_bench_client; do
  if [[ ! -x "${bin}/${exe}" ]]; then
    echo "ws_bench: ${bin}/${exe} is missing (build the release preset)" >&2
    exit 1
  fi
done

tmp="$(mktemp -d)"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT

load() { cut -d' ' -f1-3 /proc/loadavg; }

# start NAME CPU CMD... — starts a server pinned to CPU, waits for "listening <port>";
# sets started_pid and started_port.
start() {
  local name="$1" cpu="$2"
  shift 2
  taskset -c "$cpu" "$@" >"${tmp}/${name}.out" 2>"${tmp}/${name}.err" &
  started_pid=$!
  pids+=("$started_pid")
  for _ in $(seq 200); do
    if grep -q '^listening ' "${tmp}/${name}.out" 2>/dev/null; then
      started_port="$(awk '/^listening /{print $2; exit}' "${tmp}/${name}.out")"
      return 0
    fi
    if ! kill -0 "$started_pid" 2>/dev/null; then break; fi
    sleep 0.05
  done
  echo "ws_bench: ${name} did not start:" >&2
  cat "${tmp}/${name}.err" >&2
  exit 1
}

stop() {
  kill -TERM "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}

median() { sort -g | awk '{v[NR]=$1} END {if (NR%2) print v[(NR+1)/2]; else print (v[NR/2]+v[NR/2+1])/2}'; }
verdict() { awk -v v="$1" -v t="$3" -v op="$2" 'BEGIN {ok = (op == ">=") ? v >= t : v <= t; print ok ? "OK" : "MISSED"}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (b == 0) print "n/a"; else printf "%.3f", a / b}'; }

echo "ws_bench: $(nproc) cores, load $(load), server on cpu ${server_cpu}, clients on cpu ${client_cpu}"

# --- fan-out -----------------------------------------------------------------------------------
if [[ " ${parts} " == *" fanout "* ]]; then
  declare -A dps dcpu
  for run in $(seq "$runs"); do
    for s in raw hub; do
      if [[ $s == raw ]]; then
        start fan-raw "$server_cpu" "${bin}/ws_bench_raw"
      else
        start fan-hub "$server_cpu" "${bin}/http_bench_patchbay" --mode=hub --heartbeat-ms=0
      fi
      spid=$started_pid
      out="$(taskset -c "$client_cpu" "${bin}/ws_bench_client" --port="$started_port" --server-pid="$spid" \
        --connections="$subscribers" --seconds="$fanout_seconds" 2>"${tmp}/fan-client.err")" || {
        echo "ws_bench: fan-out client failed against ${s}:" >&2
        cat "${tmp}/fan-client.err" >&2
        exit 1
      }
      stop "$spid"
      d="$(sed -n 's/.* deliveries_per_s=\([0-9.]*\).*/\1/p' <<<"$out")"
      dc="$(sed -n 's/.* deliveries_per_server_cpu_s=\([0-9.]*\).*/\1/p' <<<"$out")"
      dps[$s]+="${d} "
      dcpu[$s]+="${dc} "
      printf 'fanout run %d %-4s %s  load %s\n' "$run" "$s" "${out#result }" "$(load)"
    done
  done
  raw_med="$(tr ' ' '\n' <<<"${dps[raw]}" | grep . | median)"
  hub_med="$(tr ' ' '\n' <<<"${dps[hub]}" | grep . | median)"
  raw_cpu="$(tr ' ' '\n' <<<"${dcpu[raw]}" | grep . | median)"
  hub_cpu="$(tr ' ' '\n' <<<"${dcpu[hub]}" | grep . | median)"
  rt="$(ratio "$hub_med" "$raw_med")"
  paired="$(paste -d' ' <(tr ' ' '\n' <<<"${dps[hub]}" | grep .) <(tr ' ' '\n' <<<"${dps[raw]}" | grep .) |
    awk '{printf "%.3f\n", $1 / $2}' | median)"
  printf 'WebSocket fan-out to %d subscribers, 100-byte messages: patchbay hub %.0f deliveries/s, raw Beast broadcast %.0f deliveries/s, ratio %s (target >= 0.90) %s [median of the per-round ratios %s; per server CPU-second: %.0f / %.0f, ratio %s]\n' \
    "$subscribers" "$hub_med" "$raw_med" "$rt" "$(verdict "$rt" '>=' 0.90)" "$paired" "$hub_cpu" "$raw_cpu" "$(ratio "$hub_cpu" "$raw_cpu")"
fi

# --- memory per idle WebSocket connection ------------------------------------------------------
if [[ " ${parts} " == *" memory "* ]]; then
  rss() { awk '/^VmRSS:/{print $2}' "/proc/$1/status"; }
  alloc_field() { awk -v n="$2" -v k="$3" '/^alloc /{c++; if (c == n) for (i = 2; i <= NF; i++) {split($i, kv, "="); if (kv[1] == k) print kv[2]}}' "$1"; }
  stats_field() { awk -v n="$2" -v k="$3" '/^stats /{c++; if (c == n) for (i = 3; i <= NF; i++) {split($i, kv, "="); if (kv[1] == k) print kv[2]}}' "$1"; }
  declare -A per_conn
  for s in raw hub; do
    if [[ $s == raw ]]; then
      start mem-raw "$server_cpu" env PATCHBAY_BENCH_ALLOC_STATS=1 "${bin}/ws_bench_raw"
    else
      start mem-hub "$server_cpu" env PATCHBAY_BENCH_ALLOC_STATS=1 "${bin}/http_bench_patchbay" --mode=hub
    fi
    spid=$started_pid
    sleep 0.3
    rss0="$(rss "$spid")"
    kill -USR1 "$spid"
    taskset -c "$client_cpu" "${bin}/ws_bench_client" --mode=idle --port="$started_port" \
      --connections="$idle" >"${tmp}/mem-client.out" 2>"${tmp}/mem-client.err" &
    cpid=$!
    pids+=("$cpid")
    for _ in $(seq 1200); do
      grep -q '^connected ' "${tmp}/mem-client.out" 2>/dev/null && break
      kill -0 "$cpid" 2>/dev/null || break
      sleep 0.05
    done
    if ! grep -q '^connected ' "${tmp}/mem-client.out"; then
      echo "ws_bench: ${idle} idle connections to ${s} failed:" >&2
      cat "${tmp}/mem-client.err" >&2
      exit 1
    fi
    sleep 1
    rss1="$(rss "$spid")"
    kill -USR1 "$spid"
    sleep 0.3
    stop "$cpid"
    stop "$spid"
    out="${tmp}/mem-${s}.out"
    a0="$(alloc_field "$out" 1 live_allocs)" a1="$(alloc_field "$out" 2 live_allocs)"
    b0="$(alloc_field "$out" 1 live_bytes)" b1="$(alloc_field "$out" 2 live_bytes)"
    h0="$(stats_field "$out" 1 heap_in_use)" h1="$(stats_field "$out" 2 heap_in_use)"
    per_conn[$s]="$(awk -v a="$rss0" -v b="$rss1" -v n="$idle" 'BEGIN {printf "%.2f", (b - a) / n}')"
    printf 'memory %-3s RSS %d -> %d KiB with %d idle WebSocket connections: %s KiB/connection; malloc heap in use %s KiB/connection, of which operator new %s blocks, %s bytes  load %s\n' \
      "$s" "$rss0" "$rss1" "$idle" "${per_conn[$s]}" \
      "$(awk -v a="$h0" -v b="$h1" -v n="$idle" 'BEGIN {printf "%.2f", (b - a) / n / 1024}')" \
      "$(awk -v a="$a0" -v b="$a1" -v n="$idle" 'BEGIN {printf "%.1f", (b - a) / n}')" \
      "$(awk -v a="$b0" -v b="$b1" -v n="$idle" 'BEGIN {printf "%.0f", (b - a) / n}')" "$(load)"
  done
  printf 'WebSocket memory per idle connection (N=%d, RSS delta / N): patchbay hub %s KiB, raw Beast %s KiB, ratio %s (target <= 4 KiB) %s\n' \
    "$idle" "${per_conn[hub]}" "${per_conn[raw]}" "$(ratio "${per_conn[hub]}" "${per_conn[raw]}")" \
    "$(verdict "${per_conn[hub]}" '<=' 4)"
fi
echo "ws_bench: done, load $(load)"
