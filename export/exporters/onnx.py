"""ONNX with dynamic batch (and sequence) axes.

Most models go through the dynamo exporter. Transformer encoders (``spec.transformer``) go
through the TorchScript-based exporter with Hugging Face's plain ("eager") attention instead,
then through onnxruntime's transformer optimiser: only that graph has the MatMul/Softmax
pattern its Attention fusion recognises (the dynamo graph of SDPA attention fused none, and
MiniLM ran 1.5x slower on CPU for it; see docs/benchmarks.md). Large models are written as
``.onnx`` plus an external ``.onnx.data`` file; both are artifacts and both are packaged.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import onnx
import torch

from export.exporters.base import dynamic_shapes
from export.spec import ModelSpec, TransformerInfo

log = logging.getLogger(__name__)


class OnnxExporter:
    def export(
        self,
        module: torch.nn.Module,
        spec: ModelSpec,
        example: tuple[torch.Tensor, ...],
        out_dir: Path,
    ) -> list[Path]:
        raw = out_dir / "exported.onnx"
        if spec.transformer is not None:
            _export_legacy(module, spec, example, raw)
            _optimize_transformer(raw, out_dir / "model.onnx", spec.transformer)
            for leftover in out_dir.glob("exported.onnx*"):
                leftover.unlink()
            return [out_dir / "model.onnx", *sorted(out_dir.glob("model.onnx.data"))]
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
        _resave(raw, final)
        for leftover in out_dir.glob("exported.onnx*"):
            leftover.unlink()
        return [final, *sorted(out_dir.glob("model.onnx.data"))]


def _export_legacy(
    module: torch.nn.Module, spec: ModelSpec, example: tuple[torch.Tensor, ...], path: Path
) -> None:
    names = [t.name for t in (*spec.inputs, *spec.outputs)]
    axes = {t.name: t.dynamic_axes() for t in (*spec.inputs, *spec.outputs)}
    with torch.no_grad(), eager_attention(module), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            module,
            example,
            str(path),
            dynamo=False,
            input_names=names[: len(spec.inputs)],
            output_names=names[len(spec.inputs) :],
            dynamic_axes={name: dict(a) for name, a in axes.items() if a},
            opset_version=17,
        )


@contextmanager
def eager_attention(module: torch.nn.Module) -> Iterator[None]:
    """Hugging Face submodules switched to their plain attention while exporting, then back
    (the same module object is the eager reference of every other format)."""
    switched = []
    for sub in module.modules():
        config = getattr(sub, "config", None)
        setter = getattr(sub, "set_attn_implementation", None)
        current = getattr(config, "_attn_implementation", None)
        if callable(setter) and current not in (None, "eager"):
            setter("eager")
            switched.append((setter, current))
    try:
        yield
    finally:
        for setter, previous in switched:
            setter(previous)


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
    if not fused.get("Attention"):
        log.warning("no Attention node fused: this graph will run slower than it could")
    optimized.save_model_to_file(str(dst), use_external_data_format=True)
