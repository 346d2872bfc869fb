"""Image preprocessing per image: PIL on one CPU core (what a worker does with ``decode_on:
cpu``) against a whole batch decoded, resized and normalised on the device (``decode_on:
device``, nvJPEG on CUDA), for the served benchmarks' JPEG (320x256, ImageNet's centre-crop
transform), at several batch sizes; and the largest difference between the two tensors.

    python -m bench.gpu_preprocess [--device cuda] [--batches 1,8,32] [--seconds 3] [--out F]
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from pathlib import Path

import torch

from bench.common import emit
from handlers.manifest import Manifest
from handlers.tasks.image_classification import ImageClassificationCodec

log = logging.getLogger("bench")


def codec(folder: Path, decode_on: str, device: torch.device) -> ImageClassificationCodec:
    (folder / "labels.json").write_text(json.dumps([f"c{i}" for i in range(1000)]))
    manifest = Manifest(
        model="resnet50",
        format="eager",
        task="image_classification",
        artifact="",
        sha256={},
        task_config={"labels": "labels.json", "decode_on": decode_on},
        inputs=(),
        outputs=(),
    )
    return ImageClassificationCodec(manifest, folder, device)


def per_image_ms(run: object, batch: int, seconds: float, sync: bool) -> float:
    assert callable(run)
    run()  # warm-up
    n, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        run()
        if sync:
            torch.cuda.synchronize()
        n += batch
    return (time.perf_counter() - started) * 1000 / n


def main() -> int:
    from bench.gpu_served import jpeg

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--batches", default="1,8,32")
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    torch.set_num_threads(1)
    device = torch.device(args.device)
    raw = jpeg()
    rows: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory() as tmp:
        cpu = codec(Path(tmp), "cpu", device)
        dev = codec(Path(tmp), "device", device)
        reference = cpu.preprocess(raw).to(device)
        [on_device], _ = dev.finish([dev.device_images.check(raw)])
        diff = (on_device - reference).abs()
        for batch in (int(b) for b in args.batches.split(",")):

            def pil(batch: int = batch) -> object:
                return torch.stack([cpu.preprocess(raw) for _ in range(batch)]).to(device)

            def batched(batch: int = batch) -> object:
                finished, _ = dev.finish([dev.device_images.check(raw) for _ in range(batch)])
                return torch.stack(finished)

            sync = device.type == "cuda"
            row: dict[str, object] = {
                "batch": batch,
                "pil_cpu_ms_per_image": round(per_image_ms(pil, batch, args.seconds, sync), 3),
                "device_ms_per_image": round(per_image_ms(batched, batch, args.seconds, sync), 3),
            }
            log.info("%s", row)
            rows.append(row)
    result = {
        "benchmark": "gpu_preprocess",
        "device": torch.cuda.get_device_name(0) if device.type == "cuda" else "cpu",
        "torch": torch.__version__,
        "image_bytes": len(raw),
        "max_abs_diff": round(diff.max().item(), 4),
        "mean_abs_diff": round(diff.mean().item(), 5),
        "rows": rows,
    }
    emit(result, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
