"""Parity against the model's own library: request bodies go through the worker's task codec
(the code a TorchServe worker runs: image decoding and resizing, tokenisation) and a runtime,
and the answer is compared with what the library itself predicts for the same bodies.

The ordinary parity check compares an artifact with the eager module on tensors; this one also
covers what happens before the tensors, e.g. fast.ai's crop-then-resize, which a short-side
resize and centre crop would silently get wrong.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import torch

from export.library_reference import LibraryReference
from export.package import tensor_info
from export.parity import Parity
from export.spec import ModelSpec
from handlers.manifest import Manifest
from handlers.runtimes import Runtime
from handlers.tasks import TaskCodec, make_codec


class LibraryCheck:
    def __init__(self, spec: ModelSpec, reference: LibraryReference, scratch: Path) -> None:
        self.reference = reference
        self.codec = _worker_codec(spec, scratch)

    @property
    def library(self) -> str:
        return self.reference.library

    def check(self, runtime: Runtime) -> Parity:
        worst = 0.0
        for case in self.reference.cases:
            rows = [row for body in case.bodies for row in self.codec.decode_native(body)[0]]
            out = runtime.run(self.codec.collate(rows)).double()
            if self.reference.activation == "softmax":
                out = torch.softmax(out, dim=-1)
            expected = case.expected.double()
            if out.shape != expected.shape:
                reason = (
                    f"{self.library} gives shape {list(expected.shape)} on {case.label}, "
                    f"servegate {list(out.shape)}"
                )
                return Parity(False, float("inf"), reason)
            worst = max(worst, float((out - expected).abs().max()))
            if worst > self.reference.atol:
                reason = (
                    f"max abs error {worst:.3g} against {self.library} on {case.label} exceeds "
                    f"{self.reference.atol}"
                )
                return Parity(False, worst, reason)
        return Parity(True, worst)


def _worker_codec(spec: ModelSpec, scratch: Path) -> TaskCodec:
    """The task codec a worker builds, over the spec's task files staged in ``scratch``."""
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    for name, source in spec.extra_files(scratch).items():
        if source.resolve() != (scratch / name).resolve():
            shutil.copyfile(source, scratch / name)
    manifest = Manifest(
        model=spec.name,
        format="eager",
        task=spec.task,
        artifact="",
        sha256={},
        task_config=spec.task_config,
        inputs=tuple(tensor_info(t) for t in spec.inputs),
        outputs=tuple(tensor_info(t) for t in spec.outputs),
    )
    return make_codec(manifest, scratch)
