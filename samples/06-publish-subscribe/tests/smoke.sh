#!/usr/bin/env bash
# Smoke test of samples/06-publish-subscribe: runs the one binary with every config/*.yaml and
# checks that each prints exactly what the in-process config prints. A config whose first line
# is `# requires: VAR` needs a broker: it is skipped, visibly, when VAR is unset (scripts/test
# starts the brokers and exports their variables; by hand: scripts/brokers start NAME and source
# its env file).
set -euo pipefail
binary=$1 dir=$2
free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export SAMPLE_ZMQ_PORT=$(free_port) SAMPLE_ZMQ_DIR=$work

run() {  # run CONFIG OUTPUT
  timeout 120 "$binary" --config "$1" >"$2" 2>&1
}

run "$dir/config/inproc.yaml" "$work/inproc.out" || { echo "FAIL: inproc"; cat "$work/inproc.out"; exit 1; }
echo "reference output (inproc):"
cat "$work/inproc.out"
# Without a config (the embedded default) the output is the same.
if "$binary" >"$work/none.out" 2>&1 && cmp -s "$work/inproc.out" "$work/none.out"; then
  echo "ok: no config"
else
  echo "FAIL: without --config the output differs"; diff "$work/inproc.out" "$work/none.out" || true; exit 1
fi

failed=0 ran=0 skipped=0
for config in "$dir"/config/*.yaml; do
  name=$(basename "$config" .yaml)
  [[ $name == inproc ]] && continue
  first=$(head -n 1 "$config")
  if [[ $first =~ ^#\ requires:\ *([A-Za-z_][A-Za-z0-9_]*) ]]; then
    var=${BASH_REMATCH[1]}
    if [[ -z ${!var:-} ]]; then
      echo "SKIP: $name (needs \$$var: run scripts/brokers start and source its env file)"
      skipped=$((skipped + 1))
      continue
    fi
  fi
  ran=$((ran + 1))
  if run "$config" "$work/$name.out" && cmp -s "$work/inproc.out" "$work/$name.out"; then
    echo "ok: $name"
  else
    echo "FAIL: $name differs from inproc:"
    diff "$work/inproc.out" "$work/$name.out" || true
    failed=$((failed + 1))
  fi
done
echo "sample 06: $ran configs compared, $skipped skipped, $failed failed"
exit $((failed > 0))
