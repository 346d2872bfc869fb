"""ONNX through the dynamo exporter, with dynamic batch (and sequence) axes.

For transformer encoders the saved graph also goes through onnxruntime's transformer
optimiser (attention/LayerNorm/GELU fusions). Large models are written as ``.onnx`` plus
an external ``.onnx.data`` file; both are artifacts and both are packaged.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import ClassVar

import onnx
import torch

from export.exporters.base import dynamic_shapes
from export.spec import ModelSpec, TransformerInfo

log = logging.getLogger(__name__)


class OnnxExporter:
    format: ClassVar[str] = "onnx"

    def export(
        self,
        module: torch.nn.Module,
        spec: ModelSpec,
        example: tuple[torch.Tensor, ...],
        out_dir: Path,
    ) -> list[Path]:
        raw = out_dir / "exported.onnx"
        with torch.no_grad(), warnings.catch_warnings():
            # Axes that share one Dim are named once; torch warns for every other use.
            warnings.filterwarnings("ignore", message=r"# The axis name: .* will not be used")
            torch.onnx.export(
                module,
                example,
                str(raw),
                dynamo=True,
                input_names=[t.name for t in spec.inputs],
                output_names=[t.name for t in spec.outputs],
                dynamic_shapes=dynamic_shapes(spec),
                external_data=True,
                verbose=False,
            )
        final = out_dir / "model.onnx"
        if spec.transformer is not None:
            _optimize_transformer(raw, final, spec.transformer)
        else:
            _resave(raw, final)
        for leftover in out_dir.glob("exported.onnx*"):
            leftover.unlink()
        return [final, *sorted(out_dir.glob("model.onnx.data"))]


def _resave(src: Path, dst: Path) -> None:
    """One self-contained file when the weights are small, else one external data file."""
    model = onnx.load(str(src))
    external = model.ByteSize() > 1_900_000_000 or _has_large_weights(model)
    onnx.save_model(
        model,
        str(dst),
        save_as_external_data=external,
        all_tensors_to_one_file=True,
        location=f"{dst.name}.data",
    )


def _has_large_weights(model: onnx.ModelProto) -> bool:
    size: int = sum(t.ByteSize() for t in model.graph.initializer)
    return size > 64 * 1024 * 1024


def _optimize_transformer(src: Path, dst: Path, info: TransformerInfo) -> None:
    from onnxruntime.transformers.optimizer import optimize_model

    # The optimiser logs every fusion at INFO through top-level loggers of its own; keep the
    # export's output to our one summary line.
    logging.disable(logging.INFO)
    try:
        optimized = optimize_model(
            str(src),
            model_type=info.model_type,
            num_heads=info.num_heads,
            hidden_size=info.hidden_size,
        )
    finally:
        logging.disable(logging.NOTSET)
    fused = {k: v for k, v in optimized.get_fused_operator_statistics().items() if v}
    log.info("onnxruntime transformer optimiser fused: %s", fused or "nothing")
    optimized.save_model_to_file(str(dst), use_external_data_format=True)
