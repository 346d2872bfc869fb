"""What telling truncated texts apart costs a text worker's answer, before and after the batch
tokenisation told it (``handlers/tasks/texts.py``): the handler's postprocess (split, encode,
JSON) per batch of one-text requests, with the truncation flags from the batch's own encodings
("cached") and by tokenising every text again ("retokenised", as before), interleaved in one
process on one archive.

    python -m bench.text_truncation [--device cuda] [--format torchscript]
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import torch

from bench.gpu_served import request_body
from bench.targets_stack import ExportJob, _export
from handlers.service import ModelService

log = logging.getLogger("bench")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--format", default="torchscript")
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    torch.set_num_threads(1)  # as a GPU worker runs
    result: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-trunc-") as tmp:
        job = ExportJob("minilm", f"{tmp}/store", args.format, "fp32", args.device, {})
        _export(job, f"{tmp}/export.json")
        mar = next(Path(tmp).rglob(f"minilm_{args.format}.mar"))
        with zipfile.ZipFile(mar) as archive:
            archive.extractall(f"{tmp}/model")
        service = ModelService.load(Path(f"{tmp}/model"), torch.device(args.device))
        body = request_body("minilm")
        for n in (1, 8, 32):
            requests = [{"body": bytearray(body)} for _ in range(n)]
            samples: dict[str, list[float]] = {"cached": [], "retokenised": []}
            for i in range(args.rounds):
                for mode, times in samples.items():
                    prepared = service.preprocess(requests, None)  # type: ignore[arg-type]
                    out = service.inference(prepared)
                    if mode == "retokenised":
                        service.codec._cut = {}  # type: ignore[attr-defined]
                    started = time.perf_counter()
                    answers = service.postprocess(out, prepared)
                    [json.dumps(a, separators=(",", ":")) for a in answers]
                    if i >= 3:
                        times.append((time.perf_counter() - started) * 1000)
            row = {k: round(statistics.median(v), 3) for k, v in samples.items()}
            result[f"batch_{n}"] = row
            log.info("batch %d: postprocess ms %s", n, row)
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
