"""The export formats: the one list that the pipeline, the exporters' registry, the CLI and
``make export`` take their format names from.

``Format`` names them (in the order an export runs them); ``EXPORTERS`` says which class
exports each (imported lazily by ``exporters.get_exporter``); ``QUANTIZED`` formats change the
numbers by design, so their parity is cosine similarity, not allclose, and they are exported
only when asked for, as is ``compile`` (``OPT_IN``): ``DEFAULT_FORMATS`` is every other
traced format; ``PRECISION_FORMATS`` take ``--precision``. ``GENERATION`` formats
serve causal LMs (``export.generation``), ``DEFAULT_GENERATION_FORMATS`` unless asked.
Torch-free, so that the CLI can check ``--formats`` and print its help without importing torch.

What a worker can *run* is ``handlers.manifest.Format``: these formats and ``eager``.
"""

from __future__ import annotations

from typing import Literal, get_args

Format = Literal[
    "torchscript", "aoti", "onnx", "onnx_int8", "compile", "eager", "accelerate", "deepspeed_tp"
]
FORMATS: tuple[Format, ...] = get_args(Format)
QUANTIZED: frozenset[Format] = frozenset({"onnx_int8"})
# Exported only when asked for besides the quantised: ``compile`` runs Inductor at export
# (minutes for a transformer on a CPU) and pays off on the serving machine it was compiled on.
OPT_IN: frozenset[Format] = QUANTIZED | {"compile"}
# Formats that can compute in reduced precision (``--precision``); the others are fp32 only.
PRECISION_FORMATS: frozenset[Format] = frozenset({"compile"})
# Causal LMs (task text_generation) are served eager, never traced: the archive carries the
# model's folder, and these formats say how a worker places it (handlers.generation.placement).
GENERATION: tuple[Format, ...] = ("eager", "accelerate", "deepspeed_tp")
DEFAULT_GENERATION_FORMATS: tuple[Format, ...] = ("accelerate",)
DEFAULT_FORMATS: tuple[Format, ...] = tuple(
    f for f in FORMATS if f not in OPT_IN and f not in GENERATION
)
EXPORTERS: dict[Format, str] = {
    "torchscript": "export.exporters.torchscript:TorchScriptExporter",
    "aoti": "export.exporters.aoti:AOTInductorExporter",
    "onnx": "export.exporters.onnx:OnnxExporter",
    "onnx_int8": "export.exporters.onnx_int8:OnnxInt8Exporter",
    "compile": "export.exporters.compile:CompileExporter",
}
