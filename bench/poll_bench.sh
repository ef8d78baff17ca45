#!/usr/bin/env bash
# bench/poll_bench.sh [bin dir] — the polling benchmarks (issue 4), against the raw Beast server
# of bench/http_bench.sh measured in the same run (docs/benchmarks.md):
#
#   rps     requests/s (wrk -t1 -c64, keep-alive) of a short poll that finds nothing new:
#           GET /topics/bench/messages?after=<newest> on the hub (http_bench_poll_server), once
#           unconditional (200 {"messages":[],"next":..}) and once with If-None-Match (304),
#           against GET /hello on the raw Beast server (http_bench_raw); server pinned to one
#           core, wrk to the other; the three alternate RUNS times; medians, ratios hub / raw
#           (target >= 0.9) and the median of the per-round ratios.
#   memory  (RSS with IDLE held long polls − RSS before any) / IDLE on the hub
#           (http_bench_poll_client holds GET /topics/bench/poll?after=<newest>&wait=600), with
#           the server's own count of held polls checked; for comparison the raw Beast server
#           holding IDLE idle SSE connections (http_bench_sse_client --mode=idle).
#
# Environment (defaults in brackets): POLL_BENCH_PARTS ["rps memory"], POLL_BENCH_DURATION [10]
# seconds per wrk run, POLL_BENCH_RUNS [3], POLL_BENCH_IDLE [10000], POLL_BENCH_SERVER_CPU [0],
# POLL_BENCH_CLIENT_CPU [1]. A missed target prints MISSED and does not change the exit status.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bin="${1:-build/release/bin}"
parts="${POLL_BENCH_PARTS:-rps memory}"
duration="${POLL_BENCH_DURATION:-10}"
runs="${POLL_BENCH_RUNS:-3}"
idle="${POLL_BENCH_IDLE:-10000}"
server_cpu="${POLL_BENCH_SERVER_CPU:-0}"
client_cpu="${POLL_BENCH_CLIENT_CPU:-1}"

for exe in http_bench_raw http_bench_poll_server http_bench_poll_client http_bench_sse_client; do
  if [[ ! -x "${bin}/${exe}" ]]; then
    echo "poll_bench: ${bin}/${exe} is missing (build the release preset)" >&2
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
  echo "poll_bench: ${name} did not start:" >&2
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

echo "poll_bench: $(nproc) cores, load $(load), server on cpu ${server_cpu}, clients on cpu ${client_cpu}"

# --- short-poll requests/s ---------------------------------------------------------------------
if [[ " ${parts} " == *" rps "* ]]; then
  if ! command -v wrk >/dev/null; then
    echo "poll_bench: wrk is not installed (scripts/install-deps): requests/s skipped" >&2
  else
    start raw "$server_cpu" "${bin}/http_bench_raw"
    raw_port=$started_port raw_pid=$started_pid
    start hub "$server_cpu" "${bin}/http_bench_poll_server"
    hub_port=$started_port hub_pid=$started_pid
    next="$(awk '/^next /{print $2; exit}' "${tmp}/hub.out")"
    poll_url="http://127.0.0.1:${hub_port}/topics/bench/messages?after=${next}"
    etag="\"${next}\""
    # Checks: the short poll finds nothing new (200 empty, 304 with the validator).
    body="$(curl -s "$poll_url")"
    [[ "$body" == "{\"messages\":[],\"next\":\"${next}\"}" ]] || { echo "poll_bench: short poll answered '${body}'" >&2; exit 1; }
    code="$(curl -s -o /dev/null -w '%{http_code}' -H "If-None-Match: ${etag}" "$poll_url")"
    [[ "$code" == 304 ]] || { echo "poll_bench: conditional short poll answered ${code}" >&2; exit 1; }
    declare -A url hdr spid
    url[raw]="http://127.0.0.1:${raw_port}/hello" hdr[raw]="X-Bench: 1"
    url[poll]="$poll_url" hdr[poll]="X-Bench: 1"
    url[poll304]="$poll_url" hdr[poll304]="If-None-Match: ${etag}"
    spid[raw]=$raw_pid spid[poll]=$hub_pid spid[poll304]=$hub_pid
    sides=(raw poll poll304)
    for s in "${sides[@]}"; do taskset -c "$client_cpu" wrk -t1 -c64 -d1s -H "${hdr[$s]}" "${url[$s]}" >/dev/null; done
    declare -A rps per_cpu
    for run in $(seq "$runs"); do
      for s in "${sides[@]}"; do
        c0="$(cpu_ticks "${spid[$s]}")"
        out="$(taskset -c "$client_cpu" wrk -t1 -c64 -d"${duration}s" -H "${hdr[$s]}" "${url[$s]}")"
        c1="$(cpu_ticks "${spid[$s]}")"
        r="$(awk '/^Requests\/sec:/{print $2}' <<<"$out")"
        n="$(awk '/requests in/{print $1; exit}' <<<"$out")"
        pc="$(awk -v n="$n" -v t="$((c1 - c0))" -v hz="$hz" 'BEGIN {printf "%.0f", (t > 0 ? n / (t / hz) : 0)}')"
        errors="$(grep -E 'Non-2xx|Socket errors' <<<"$out" | tr -s ' ' | tr '\n' ' ' || true)"
        rps[$s]+="${r} "
        per_cpu[$s]+="${pc} "
        printf 'rps run %d %-8s %8.0f req/s, %8.0f req per server CPU-second (server busy %3.0f%%)  load %s %s\n' \
          "$run" "$s" "$r" "$pc" "$(awk -v t="$((c1 - c0))" -v hz="$hz" -v d="$duration" 'BEGIN {print 100 * t / hz / d}')" \
          "$(load)" "$errors"
      done
    done
    stop "$raw_pid"
    stop "$hub_pid"
    raw_med="$(tr ' ' '\n' <<<"${rps[raw]}" | grep . | median)"
    raw_cpu="$(tr ' ' '\n' <<<"${per_cpu[raw]}" | grep . | median)"
    for s in poll poll304; do
      med="$(tr ' ' '\n' <<<"${rps[$s]}" | grep . | median)"
      med_cpu="$(tr ' ' '\n' <<<"${per_cpu[$s]}" | grep . | median)"
      rt="$(ratio "$med" "$raw_med")"
      paired="$(paste -d' ' <(tr ' ' '\n' <<<"${rps[$s]}" | grep .) <(tr ' ' '\n' <<<"${rps[raw]}" | grep .) |
        awk '{printf "%.3f\n", $1 / $2}' | median)"
      case "$s" in
        poll) label="short poll, nothing new (200 {\"messages\":[],..})" ;;
        poll304) label="short poll with If-None-Match, nothing new (304)" ;;
      esac
      printf 'poll requests/s, %s: %.0f req/s, raw Beast GET /hello %.0f req/s, ratio %s (target >= 0.90) %s [median of the per-round ratios %s; per server CPU-second: %.0f / %.0f, ratio %s]\n' \
        "$label" "$med" "$raw_med" "$rt" "$(verdict "$rt" '>=' 0.90)" "$paired" "$med_cpu" "$raw_cpu" "$(ratio "$med_cpu" "$raw_cpu")"
    done
  fi
fi

# --- memory per idle long poll -----------------------------------------------------------------
if [[ " ${parts} " == *" memory "* ]]; then
  rss() { awk '/^VmRSS:/{print $2}' "/proc/$1/status"; }
  declare -A per_conn
  for s in raw hub; do
    if [[ $s == raw ]]; then
      start mem-raw "$server_cpu" "${bin}/http_bench_raw"
    else
      start mem-hub "$server_cpu" "${bin}/http_bench_poll_server"
    fi
    spid=$started_pid
    sleep 0.3
    rss0="$(rss "$spid")"
    if [[ $s == raw ]]; then
      taskset -c "$client_cpu" "${bin}/http_bench_sse_client" --mode=idle --port="$started_port" \
        --connections="$idle" >"${tmp}/mem-client.out" 2>"${tmp}/mem-client.err" &
    else
      next="$(awk '/^next /{print $2; exit}' "${tmp}/mem-hub.out")"
      taskset -c "$client_cpu" "${bin}/http_bench_poll_client" --port="$started_port" --connections="$idle" \
        --path="/topics/bench/poll?after=${next}&wait=600" >"${tmp}/mem-client.out" 2>"${tmp}/mem-client.err" &
    fi
    cpid=$!
    pids+=("$cpid")
    for _ in $(seq 1200); do
      grep -q '^connected ' "${tmp}/mem-client.out" 2>/dev/null && break
      kill -0 "$cpid" 2>/dev/null || break
      sleep 0.05
    done
    if ! grep -q '^connected ' "${tmp}/mem-client.out"; then
      echo "poll_bench: ${idle} idle connections to ${s} failed:" >&2
      cat "${tmp}/mem-client.err" >&2
      exit 1
    fi
    held=n/a
    if [[ $s == hub ]]; then
      # Until the hub holds every poll (its own count, printed on SIGUSR1).
      for _ in $(seq 600); do
        kill -USR1 "$spid"
        sleep 0.1
        held="$(awk '/^held /{h=$2} END {print h}' "${tmp}/mem-hub.out")"
        [[ "$held" == "$idle" ]] && break
      done
      [[ "$held" == "$idle" ]] || { echo "poll_bench: the hub holds ${held} of ${idle} polls" >&2; exit 1; }
    fi
    sleep 1
    rss1="$(rss "$spid")"
    stop "$cpid"
    stop "$spid"
    per_conn[$s]="$(awk -v a="$rss0" -v b="$rss1" -v n="$idle" 'BEGIN {printf "%.2f", (b - a) / n}')"
    printf 'memory %-3s RSS %d -> %d KiB with %d idle %s: %s KiB/connection (held by the hub: %s)  load %s\n' \
      "$s" "$rss0" "$rss1" "$idle" "$([[ $s == raw ]] && echo 'SSE connections' || echo 'long polls')" \
      "${per_conn[$s]}" "$held" "$(load)"
  done
  printf 'poll memory per idle long-poll connection (N=%d, RSS delta / N): patchbay hub %s KiB (target <= 4 KiB) %s; raw Beast idle SSE connection %s KiB, ratio %s\n' \
    "$idle" "${per_conn[hub]}" "$(verdict "${per_conn[hub]}" '<=' 4)" "${per_conn[raw]}" "$(ratio "${per_conn[hub]}" "${per_conn[raw]}")"
fi
echo "poll_bench: done, load $(load)"
