#!/usr/bin/env bash
# gRPC gateway overhead on the H200 machine with 4 gateway processes and 8 client channels
# (a gRPC channel is one HTTP/2 connection, and the kernel spreads connections, not calls,
# over the processes). Needs /tmp/site (.wg) from a previous call; carries .wj.
set -euo pipefail
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site2 .wj/*.whl
export PATH=/tmp/site/bin:$PATH PYTHONPATH=/tmp/site:/tmp/site2:$PWD PYTHONUNBUFFERED=1
run() { local name=$1; shift; echo "== $name: $*"; python3 "$@" 2>&1 | grep -v "HTTP Request" | tail -6 | tee "$OUT/gateway-$name.txt"; }
run grpc-c64-w4-ch8 -m bench.grpc --workers 4 --channels 8 --concurrency 64 --rounds 2 --duration 6
run grpc-c64-w1-ch8 -m bench.grpc --workers 1 --channels 8 --concurrency 64 --rounds 2 --duration 6
# End to end through TorchServe on the GPU (resnet50, 4 workers), after the handler's thread fix.
echo "== served"; timeout 300 python3 -m bench.gpu_served --out "$OUT/served.json" --batch-size 32 --workers 4 --concurrency 128 --clients 4 --seconds 20 2>&1 | grep -v "HTTP Request" | tail -15
