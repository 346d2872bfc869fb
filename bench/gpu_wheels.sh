#!/usr/bin/env bash
# Rebuilds .wgen/: what the lent GPU machine lacks for bench.gpu_generation (its python3 is 3.12
# with torch, transformers and accelerate; no pydantic, no DeepSpeed). Carried by the device
# tool (carry: [".wgen"], under its 64 MiB per call), installed there by bench/gpu_generation.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
rm -rf .wgen && mkdir .wgen
$PY -m pip download -q --no-deps -d .wgen --python-version 3.12 --only-binary=:all: \
  --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 \
  hjson pydantic pydantic-core annotated-types typing-inspection
$PY -m pip download -q --no-deps -d .wgen --no-binary=:all: 'deepspeed==0.19.8'
du -sh .wgen && ls .wgen
