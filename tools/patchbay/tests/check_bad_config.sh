#!/usr/bin/env bash
# check_bad_config.sh PATCHBAY_CLI BAD_YAML — `patchbay check` on a broken config exits
# non-zero and names every problem: the typo key, the missing plugin, the unmet require.
set -uo pipefail
cli="$1"
config="$2"

output="$("$cli" check --config "$config" 2>&1)"
rc=$?
printf '%s\n' "$output"

fail=0
if ((rc == 0)); then
  echo "FAIL: patchbay check exited 0 on a bad config" >&2
  fail=1
fi
for expected in "unknown key 'histroy'" "does-not-exist.so" "durable"; do
  if ! grep -qF -- "$expected" <<<"$output"; then
    echo "FAIL: the output does not mention: $expected" >&2
    fail=1
  fi
done
exit "$fail"
