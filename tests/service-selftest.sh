#!/usr/bin/env bash
# The kernel patch set's self-test, against the umd service, with the CLI only:
# 500 sample requests at offsets (random % 128) * 1024, and `umd ctl unload
# sample` after every 50, so the service must load the driver again on demand.
# Every request must succeed.
#
# Usage: UMD_SOCKET=/run/umd/umd.sock tests/service-selftest.sh [UMD_BINARY]
# Environment: ITERATIONS (500), UNLOAD_EVERY (50), SEED (random).
set -euo pipefail

umd=${1:-umd}
iterations=${ITERATIONS:-500}
unload_every=${UNLOAD_EVERY:-50}
RANDOM=${SEED:-$$}
: "${UMD_SOCKET:?set UMD_SOCKET to the service socket}"
export UMD_SOCKET

passed=0
unloads=0
for ((i = 0; i < iterations; i++)); do
    if ((i > 0 && unload_every > 0 && i % unload_every == 0)); then
        "$umd" ctl unload sample >/dev/null || { echo "FAIL: umd ctl unload sample (request $i)" >&2; exit 1; }
        unloads=$((unloads + 1))
    fi
    offset=$(((RANDOM % 128) * 1024))
    if ! "$umd" sample request --offset "$offset" >/dev/null; then
        echo "FAIL: request $i (offset $offset)" >&2
        exit 1
    fi
    passed=$((passed + 1))
done
echo "service selftest: $iterations requests, $passed passed, $unloads unloads: PASS"
