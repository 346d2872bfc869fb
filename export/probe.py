"""Load and run an artifact once in a child process before trusting it in this one.

Some runtime failures are not exceptions: ``aoti_load_package`` was seen to segfault on a GPU
machine's torch build. A crash in the child becomes a reported format failure instead of
killing the whole export (and, later, every TorchServe worker that tries to load it).
"""

from __future__ import annotations

import multiprocessing
import signal
from pathlib import Path

import torch

from export.errors import FormatFailed

PROBE_TIMEOUT_S = 600.0


def _run_once(fmt: str, artifact: str, device: str, inputs_file: str) -> None:
    from handlers.runtimes import load_runtime

    runtime = load_runtime(fmt, Path(artifact), torch.device(device))
    runtime.run(torch.load(inputs_file, weights_only=True))


def probe(fmt: str, artifact: Path, device: str, inputs: tuple[torch.Tensor, ...]) -> None:
    inputs_file = artifact.parent.parent / "probe_inputs.pt"
    torch.save(tuple(t.cpu() for t in inputs), inputs_file)
    ctx = multiprocessing.get_context("spawn")
    child = ctx.Process(target=_run_once, args=(fmt, str(artifact), device, str(inputs_file)))
    child.start()
    child.join(PROBE_TIMEOUT_S)
    if child.is_alive():
        child.kill()
        child.join()
        raise FormatFailed(
            fmt, "reload", f"loading and running it took over {PROBE_TIMEOUT_S:.0f} s"
        )
    inputs_file.unlink(missing_ok=True)
    code = child.exitcode or 0
    if code < 0:
        name = signal.Signals(-code).name
        raise FormatFailed(
            fmt, "reload", f"the {fmt} runtime crashed ({name}) loading the artifact"
        )
    if code > 0:
        raise FormatFailed(fmt, "reload", f"loading and running it failed in a child (exit {code})")
