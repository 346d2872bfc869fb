"""Where a served batch's time goes inside the servegate handler, measured offline in the
bench process on the same archive: decode + collate (preprocess), the model on the device
(inference, including the copies to and from it) and encode + JSON (postprocess), each in ms
per batch, with one intra-op thread as a GPU worker runs."""

from __future__ import annotations

import json
import statistics
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any

import torch

from handlers.service import ModelService


def stage_times(mar: Path, body: bytes, batches: tuple[int, ...], device: str) -> dict[str, Any]:
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory(prefix="bench-stages-") as tmp:
        with zipfile.ZipFile(mar) as archive:
            archive.extractall(tmp)
        service = ModelService.load(Path(tmp), torch.device(device))
        result: dict[str, Any] = {}
        for n in batches:
            requests = [{"body": bytearray(body)} for _ in range(n)]
            samples: dict[str, list[float]] = {"preprocess": [], "inference": [], "postprocess": []}
            for i in range(40):
                t0 = time.perf_counter()
                prepared = service.preprocess(requests, None)  # type: ignore[arg-type]
                t1 = time.perf_counter()
                out = service.inference(prepared)
                if out.is_cuda:
                    torch.cuda.synchronize()
                t2 = time.perf_counter()
                answers = service.postprocess(out, prepared)
                [json.dumps(a, separators=(",", ":")).encode() for a in answers]
                t3 = time.perf_counter()
                if i >= 5:  # warm-up
                    for name, ms in zip(samples, (t1 - t0, t2 - t1, t3 - t2), strict=True):
                        samples[name].append(ms * 1000)
            result[f"batch_{n}"] = {k: round(statistics.median(v), 3) for k, v in samples.items()}
    return result
