"""ONNX with dynamic int8 quantisation of MatMul weights (onnxruntime ``quantize_dynamic``).

Starts from the fp32 ONNX graph of ``export.exporters.onnx`` (for transformers, the one with
fused Attention). Weights are int8 per output channel; activations are quantised per tensor
at run time. Two choices keep the embedding close to fp32 (MiniLM, cosine to eager):

- only MatMul weights: the fused Attention's QKV projection stays fp32 (quantising it too
  dropped the cosine from 0.995 to 0.990);
- no MatMul fed by a GELU: the FFN down projection's input has a long tail that one uint8
  scale per tensor cannot hold (quantising those too: cosine 0.988; every op: 0.983;
  per-tensor weights: 0.89).

Weights are 7-bit (``reduce_range``), so that the integer products are exact on every CPU.
With full 8-bit weights, ONNX Runtime's u8 x s8 kernel on x86 CPUs without VNNI (AVX2 only)
multiplies with ``vpmaddubsw``, which adds each pair of products into a saturating int16:
255 * 127 * 2 overflows it. The same ``.onnx`` then gives other numbers on an AVX2-only AMD EPYC
(MiniLM cosine 0.9888) than on a Xeon with AVX-512 VNNI (exact, cosine ~0.995), whatever the
thread count. With weights in [-64, 64] a pair is at most 255 * 64 * 2 = 32,640, which fits:
the integer GEMM is exact on both (``bench/int8_parity.py`` measures the distribution; see
docs/benchmarks.md).

Parity for this format is cosine similarity to fp32 eager (``Tolerance.min_cosine``), not an
absolute error bound: int8 moves every output a little by design.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import onnx
import torch

from export.exporters.onnx import OnnxExporter
from export.spec import ModelSpec

log = logging.getLogger(__name__)
GELU_OPS = {"Gelu", "BiasGelu", "FastGelu"}


class OnnxInt8Exporter:
    def export(
        self,
        module: torch.nn.Module,
        spec: ModelSpec,
        example: tuple[torch.Tensor, ...],
        out_dir: Path,
    ) -> list[Path]:
        from onnxruntime.quantization import QuantType, quantize_dynamic

        fp32_dir = out_dir / "fp32"
        fp32_dir.mkdir(exist_ok=True)
        fp32 = OnnxExporter().export(module, spec, example, fp32_dir)[0]
        graph = onnx.load(str(fp32), load_external_data=False).graph
        excluded = gelu_fed_matmuls(graph)
        if sum(n.op_type == "MatMul" for n in graph.node) == len(excluded):
            raise ValueError("no MatMul weights to quantise: int8 suits transformer-style models")
        path = out_dir / "model.onnx"
        quantize_dynamic(
            fp32,
            path,
            weight_type=QuantType.QInt8,
            per_channel=True,
            reduce_range=True,  # exact integer products on AVX2-only CPUs too (docstring)
            op_types_to_quantize=["MatMul"],
            nodes_to_exclude=excluded,
            # The optimiser's fused ops (Attention, SkipLayerNormalization) have no shape
            # inference in onnx; their outputs are fp32.
            extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
        )
        shutil.rmtree(fp32_dir)
        quantized = sum(n.op_type == "MatMulInteger" for n in onnx.load(str(path)).graph.node)
        log.info("int8: %d MatMul quantised, %d kept fp32 (fed by GELU)", quantized, len(excluded))
        return [path]


def gelu_fed_matmuls(graph: onnx.GraphProto) -> list[str]:
    """Names of the MatMul nodes whose activation input is a GELU's output."""
    nodes = graph.node
    gelu_outputs = {o for n in nodes if n.op_type in GELU_OPS for o in n.output}
    return [n.name for n in nodes if n.op_type == "MatMul" and n.input[0] in gelu_outputs]
