#!/usr/bin/env bash
# On the lent GPU machine (nvidia-h200-x2), from the repository root, carrying .wgen
# (bench/gpu_wheels.sh): install what is missing, build the 1.1B model once, then one format.
#   bench/gpu_generation.sh eager | accelerate | deepspeed_tp     -> $OUT/gen-FORMAT.json
set -euo pipefail
fmt=$1; shift
export PYTHONPATH=/tmp/gsite:$PWD PYTHONUNBUFFERED=1 NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1
if [ ! -d /tmp/gsite/pydantic ]; then
  python3 -m pip install -q --no-index --no-deps --target /tmp/gsite .wgen/*.whl
  python3 -m pip install -q --no-index --no-deps --no-build-isolation --target /tmp/gsite .wgen/deepspeed-*.tar.gz
fi
[ -f /tmp/llama1b/config.json ] || python3 -m bench.gpu_generation build --out /tmp/llama1b
case $fmt in
  eager) python3 -m bench.gpu_generation run --model /tmp/llama1b --format eager --out "$OUT/gen-eager.json" "$@" ;;
  accelerate) python3 -m bench.gpu_generation run --model /tmp/llama1b --format accelerate \
      --max-memory 0=1300MiB,1=1300MiB --out "$OUT/gen-accelerate.json" "$@" ;;
  accelerate_offload) python3 -m bench.gpu_generation run --model /tmp/llama1b --format accelerate \
      --max-memory 0=1300MiB,cpu=64GiB --out "$OUT/gen-accelerate-offload.json" "$@" ;;
  deepspeed_tp) python3 -m torch.distributed.run --standalone --nproc-per-node 2 -m bench.gpu_generation run \
      --model /tmp/llama1b --format deepspeed_tp --out "$OUT/gen-deepspeed_tp.json" "$@" ;;
esac
nvidia-smi --query-gpu=index,memory.used,memory.total --format=csv
