#!/usr/bin/env bash
# bench/http_bench.sh [bin dir] — the HTTP core benchmarks (issue 3), each against a raw Beast
# baseline measured in the same run (docs/benchmarks.md, "HTTP core"):
#
#   rps     requests/s of `GET /hello` (wrk -t1 -c64, keep-alive): the raw Beast server
#           (http_bench_raw), patchbay's http::Server (http_bench_patchbay --mode=server) and the
#           `http` transport's serve() behind a `routes:` entry (--mode=transport); server
#           pinned to one core, wrk to the other; all three servers run side by side, wrk
#           alternates between them RUNS times; medians and ratios patchbay / raw (the verdict),
#           plus the median of the per-round ratios (each patchbay run over the raw run of the
#           same round: less sensitive to load that comes and goes) and requests per second of
#           server CPU time (utime + stime from /proc).
#   fanout  SSE deliveries/s to SUBSCRIBERS connections (http_bench_sse_client, its own process
#           on the other core), 100-byte messages published by the server's paced publisher;
#           hub (--mode=hub) and raw broadcast server alternate RUNS times; medians, ratio.
#   memory  (RSS with IDLE idle SSE connections − RSS before any) / IDLE, hub vs raw, with the
#           malloc heap in use (mallinfo2) and the live operator-new blocks per connection that
#           the servers print on SIGUSR1 (PATCHBAY_BENCH_ALLOC_STATS=1).
#
# Environment (defaults in brackets): HTTP_BENCH_PARTS ["rps fanout memory"],
# HTTP_BENCH_DURATION [10] seconds per wrk run, HTTP_BENCH_RUNS [3],
# HTTP_BENCH_FANOUT_SECONDS [5], HTTP_BENCH_SUBSCRIBERS [1000], HTTP_BENCH_IDLE [10000],
# HTTP_BENCH_SERVER_CPU [0], HTTP_BENCH_CLIENT_CPU [1], HTTP_BENCH_RPS_SIDES ["raw server
# transport"; add raw-strand for the raw server with a strand per connection, for information].
# A missed target prints MISSED and does not change the exit status (as the other benchmarks).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bin="${1:-build/release/bin}"
parts="${HTTP_BENCH_PARTS:-rps fanout memory}"
duration="${HTTP_BENCH_DURATION:-10}"
runs="${HTTP_BENCH_RUNS:-3}"
fanout_seconds="${HTTP_BENCH_FANOUT_SECONDS:-5}"
subscribers="${HTTP_BENCH_SUBSCRIBERS:-1000}"
idle="${HTTP_BENCH_IDLE:-10000}"
rps_sides="${HTTP_BENCH_RPS_SIDES:-raw server transport}"
server_cpu="${HTTP_BENCH_SERVER_CPU:-0}"
client_cpu="${HTTP_BENCH_CLIENT_CPU:-1}"

for exe in http_bench_raw http_bench_patchbay http_bench_sse_client; do
  if [[ ! -x "${bin}/${exe}" ]]; then
    echo "http_bench: ${bin}/${exe} is missing (build the release preset)" >&2
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
hz="$(getconf CLK_TCK)"
cpu_ticks() { sed 's/.*) //' "/proc/$1/stat" | awk '{print $12 + $13}'; }  # utime + stime

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
  echo "http_bench: ${name} did not start:" >&2
  cat "${tmp}/${name}.err" >&2
  exit 1
}

stop() {
  kill -TERM "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}

median() { sort -g | awk '{v[NR]=$1} END {if (NR%2) print v[(NR+1)/2]; else print (v[NR/2]+v[NR/2+1])/2}'; }

# verdict VALUE OP TARGET — "OK" or "MISSED"
verdict() { awk -v v="$1" -v t="$3" -v op="$2" 'BEGIN {ok = (op == ">=") ? v >= t : v <= t; print ok ? "OK" : "MISSED"}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (b == 0) print "n/a"; else printf "%.3f", a / b}'; }

echo "http_bench: $(nproc) cores, load $(load), server on cpu ${server_cpu}, clients on cpu ${client_cpu}"

# --- requests/s --------------------------------------------------------------------------------
if [[ " ${parts} " == *" rps "* ]]; then
  if ! command -v wrk >/dev/null; then
    echo "http_bench: wrk is not installed (scripts/install-deps): requests/s skipped" >&2
  else
    declare -A port pid
    read -r -a sides <<<"$rps_sides"
    for s in "${sides[@]}"; do
      case "$s" in
        raw) start "$s" "$server_cpu" "${bin}/http_bench_raw" ;;
        raw-strand) start "$s" "$server_cpu" "${bin}/http_bench_raw" --strand=1 ;;
        server | transport) start "$s" "$server_cpu" "${bin}/http_bench_patchbay" --mode="$s" ;;
        *) echo "http_bench: unknown side '${s}' in HTTP_BENCH_RPS_SIDES" >&2; exit 1 ;;
      esac
      port[$s]=$started_port pid[$s]=$started_pid
    done
    for s in "${sides[@]}"; do  # warm-up, and a check that the route answers
      if command -v curl >/dev/null; then
        body="$(curl -s "http://127.0.0.1:${port[$s]}/hello" || true)"
        [[ "$body" == "Hello from server!" ]] || { echo "http_bench: ${s}: GET /hello answered '${body}'" >&2; exit 1; }
      fi
      taskset -c "$client_cpu" wrk -t1 -c64 -d1s "http://127.0.0.1:${port[$s]}/hello" >/dev/null
    done
    declare -A rps per_cpu
    for run in $(seq "$runs"); do
      for s in "${sides[@]}"; do
        c0="$(cpu_ticks "${pid[$s]}")"
        out="$(taskset -c "$client_cpu" wrk -t1 -c64 -d"${duration}s" "http://127.0.0.1:${port[$s]}/hello")"
        c1="$(cpu_ticks "${pid[$s]}")"
        r="$(awk '/^Requests\/sec:/{print $2}' <<<"$out")"
        n="$(awk '/requests in/{print $1; exit}' <<<"$out")"
        pc="$(awk -v n="$n" -v t="$((c1 - c0))" -v hz="$hz" 'BEGIN {printf "%.0f", (t > 0 ? n / (t / hz) : 0)}')"
        errors="$(grep -E 'Non-2xx|Socket errors' <<<"$out" | tr -s ' ' | tr '\n' ' ' || true)"
        rps[$s]+="${r} "
        per_cpu[$s]+="${pc} "
        printf 'rps run %d %-9s %8.0f req/s, %8.0f req per server CPU-second (server busy %3.0f%%)  load %s %s\n' \
          "$run" "$s" "$r" "$pc" "$(awk -v t="$((c1 - c0))" -v hz="$hz" -v d="$duration" 'BEGIN {print 100 * t / hz / d}')" \
          "$(load)" "$errors"
      done
    done
    for s in "${sides[@]}"; do stop "${pid[$s]}"; done
    raw_med="$(tr ' ' '\n' <<<"${rps[raw]}" | grep . | median)"
    raw_cpu="$(tr ' ' '\n' <<<"${per_cpu[raw]}" | grep . | median)"
    for s in "${sides[@]}"; do
      [[ $s == raw ]] && continue
      med="$(tr ' ' '\n' <<<"${rps[$s]}" | grep . | median)"
      med_cpu="$(tr ' ' '\n' <<<"${per_cpu[$s]}" | grep . | median)"
      rt="$(ratio "$med" "$raw_med")"
      paired="$(paste -d' ' <(tr ' ' '\n' <<<"${rps[$s]}" | grep .) <(tr ' ' '\n' <<<"${rps[raw]}" | grep .) |
        awk '{printf "%.3f\n", $1 / $2}' | median)"
      case "$s" in
        server) label="http::Server GET /hello" verdict_text="(target >= 0.92) $(verdict "$rt" '>=' 0.92)" ;;
        transport) label="http transport serve() via routes:" verdict_text="(target >= 0.92) $(verdict "$rt" '>=' 0.92)" ;;
        raw-strand) label="raw Beast with a strand per connection" verdict_text="(for information, no target)" ;;
      esac
      printf 'http requests/s, %s: %.0f req/s, raw Beast %.0f req/s, ratio %s %s [median of the per-round ratios %s; per server CPU-second: %.0f / %.0f, ratio %s]\n' \
        "$label" "$med" "$raw_med" "$rt" "$verdict_text" "$paired" "$med_cpu" "$raw_cpu" "$(ratio "$med_cpu" "$raw_cpu")"
    done
  fi
fi

# --- SSE fan-out -------------------------------------------------------------------------------
if [[ " ${parts} " == *" fanout "* ]]; then
  declare -A dps dcpu
  for run in $(seq "$runs"); do
    for s in raw hub; do
      if [[ $s == raw ]]; then
        start fan-raw "$server_cpu" "${bin}/http_bench_raw"
      else
        start fan-hub "$server_cpu" "${bin}/http_bench_patchbay" --mode=hub --heartbeat-ms=0
      fi
      spid=$started_pid
      out="$(taskset -c "$client_cpu" "${bin}/http_bench_sse_client" --port="$started_port" --server-pid="$spid" \
        --connections="$subscribers" --seconds="$fanout_seconds" 2>"${tmp}/fan-client.err")" || {
        echo "http_bench: fan-out client failed against ${s}:" >&2
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
  printf 'http SSE fan-out to %d subscribers, 100-byte messages: patchbay hub %.0f deliveries/s, raw Beast broadcast %.0f deliveries/s, ratio %s (target >= 0.90) %s [median of the per-round ratios %s; per server CPU-second: %.0f / %.0f, ratio %s]\n' \
    "$subscribers" "$hub_med" "$raw_med" "$rt" "$(verdict "$rt" '>=' 0.90)" "$paired" "$hub_cpu" "$raw_cpu" "$(ratio "$hub_cpu" "$raw_cpu")"
fi

# --- memory per idle SSE connection ------------------------------------------------------------
if [[ " ${parts} " == *" memory "* ]]; then
  rss() { awk '/^VmRSS:/{print $2}' "/proc/$1/status"; }
  # alloc_field / stats_field FILE NTH KEY — KEY=value from the NTH "alloc" / "stats" line of a
  # server's output (printed on SIGUSR1, bench/http_common.hpp)
  alloc_field() { awk -v n="$2" -v k="$3" '/^alloc /{c++; if (c == n) for (i = 2; i <= NF; i++) {split($i, kv, "="); if (kv[1] == k) print kv[2]}}' "$1"; }
  stats_field() { awk -v n="$2" -v k="$3" '/^stats /{c++; if (c == n) for (i = 3; i <= NF; i++) {split($i, kv, "="); if (kv[1] == k) print kv[2]}}' "$1"; }
  declare -A per_conn
  for s in raw hub; do
    if [[ $s == raw ]]; then
      start mem-raw "$server_cpu" env PATCHBAY_BENCH_ALLOC_STATS=1 "${bin}/http_bench_raw"
    else
      start mem-hub "$server_cpu" env PATCHBAY_BENCH_ALLOC_STATS=1 "${bin}/http_bench_patchbay" --mode=hub
    fi
    spid=$started_pid
    sleep 0.3
    rss0="$(rss "$spid")"
    kill -USR1 "$spid"
    taskset -c "$client_cpu" "${bin}/http_bench_sse_client" --mode=idle --port="$started_port" \
      --connections="$idle" >"${tmp}/mem-client.out" 2>"${tmp}/mem-client.err" &
    cpid=$!
    pids+=("$cpid")
    for _ in $(seq 1200); do
      grep -q '^connected ' "${tmp}/mem-client.out" 2>/dev/null && break
      kill -0 "$cpid" 2>/dev/null || break
      sleep 0.05
    done
    if ! grep -q '^connected ' "${tmp}/mem-client.out"; then
      echo "http_bench: ${idle} idle connections to ${s} failed:" >&2
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
    printf 'memory %-3s RSS %d -> %d KiB with %d idle SSE connections: %s KiB/connection; malloc heap in use %s KiB/connection, of which operator new %s blocks, %s bytes (the rest: Asio'"'"'s allocator, coroutine frames and operations)  load %s\n' \
      "$s" "$rss0" "$rss1" "$idle" "${per_conn[$s]}" \
      "$(awk -v a="$h0" -v b="$h1" -v n="$idle" 'BEGIN {printf "%.2f", (b - a) / n / 1024}')" \
      "$(awk -v a="$a0" -v b="$a1" -v n="$idle" 'BEGIN {printf "%.1f", (b - a) / n}')" \
      "$(awk -v a="$b0" -v b="$b1" -v n="$idle" 'BEGIN {printf "%.0f", (b - a) / n}')" "$(load)"
  done
  printf 'http memory per idle SSE connection (N=%d, RSS delta / N): patchbay hub %s KiB, raw Beast %s KiB, ratio %s (target <= 4 KiB) %s\n' \
    "$idle" "${per_conn[hub]}" "${per_conn[raw]}" "$(ratio "${per_conn[hub]}" "${per_conn[raw]}")" \
    "$(verdict "${per_conn[hub]}" '<=' 4)"
fi
echo "http_bench: done, load $(load)"
