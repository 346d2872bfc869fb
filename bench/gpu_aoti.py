"""AOTInductor on the GPU: compile here, load in a child process first.

``aoti_load_package`` was seen to segfault on the H200's torch build; a crash in the child is
reported as that format failing there instead of ending the suite.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch
from torch import nn

from bench.gpu_timing import Runner
from export.probe import probe


def aoti_variant(module: nn.Module, inputs: tuple[torch.Tensor, ...], image: bool) -> Runner:
    from torch._inductor import aoti_compile_and_package, aoti_load_package

    work = Path(tempfile.mkdtemp(prefix="bench-aoti-"))
    (work / "artifact").mkdir()
    package = work / "artifact" / "model.pt2"
    with torch.no_grad():
        program = torch.export.export(module, inputs, strict=False)
        aoti_compile_and_package(program, package_path=str(package))
    probe("aoti", package, "cuda", inputs)  # raises FormatFailed if the child crashes
    fn = aoti_load_package(str(package))

    def run() -> object:
        with torch.inference_mode():
            return fn(*inputs)

    return run
