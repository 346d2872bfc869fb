"""Parity against the model's own library: request bodies go through the worker's task codec
(the code a TorchServe worker runs: image decoding and resizing, tokenisation) and a runtime,
and the answer is compared with what the library itself predicts for the same bodies.

The ordinary parity check compares an artifact with the eager module on tensors; this one also
covers what happens before the tensors, e.g. fast.ai's crop-then-resize, which a short-side
resize and centre crop would silently get wrong.
"""

from __future__ import annotations

from pathlib import Path

import torch

from export.library_reference import LibraryReference
from export.parity import Parity
from export.spec import ModelSpec
from export.worker_inputs import worker_codec
from handlers.runtimes import Runtime


class LibraryCheck:
    def __init__(self, spec: ModelSpec, reference: LibraryReference, scratch: Path) -> None:
        self.reference = reference
        self.codec = worker_codec(spec, scratch)

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
