#!/usr/bin/env bash
# `patchbay run` starts what the config declares, then stops gracefully on SIGTERM with exit 0.
# usage: run_stops_on_sigterm.sh PATCHBAY_BINARY CONFIG
set -u
cli=$1 config=$2
log=$(mktemp)
trap 'rm -f "$log"; kill -9 "$pid" 2>/dev/null' EXIT
"$cli" run --config "$config" 2>"$log" &
pid=$!
# Wait (generously) until it says it is running; never depend on how long start-up takes.
for _ in $(seq 1 600); do
  grep -q "running" "$log" && break
  kill -0 "$pid" 2>/dev/null || { echo "patchbay run exited early:"; cat "$log"; exit 1; }
  sleep 0.1
done
grep -q "running" "$log" || { echo "patchbay run never said it was running"; cat "$log"; exit 1; }
kill -TERM "$pid"
for _ in $(seq 1 600); do
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.1
done
if kill -0 "$pid" 2>/dev/null; then echo "patchbay run did not stop within 60 s of SIGTERM"; exit 1; fi
wait "$pid"; rc=$?
[ "$rc" -eq 0 ] || { echo "patchbay run exited with $rc after SIGTERM"; cat "$log"; exit 1; }
echo "ok: patchbay run stopped on SIGTERM with exit 0"
