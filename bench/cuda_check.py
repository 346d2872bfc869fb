"""CUDA check for the export pipeline and a GPU TorchServe worker (run on the GPU machine).

Exports ``mlp`` and ``resnet18`` on CUDA (AOTInductor compiles for the GPU), serves the
archives from a real TorchServe whose workers get a GPU, and checks that each worker loaded
its model on ``cuda`` and answers like eager.

    python -m bench.cuda_check --out /tmp/cuda_check [--device cuda]
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import logging
import re
import sys
from pathlib import Path

import httpx
import torch

from bench.common import torchserve
from export.formats import DEFAULT_FORMATS
from export.models import mlp
from export.pipeline import ExportRequest, run_export
from export.timing import TimingPlan

log = logging.getLogger("bench")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("/tmp/cuda_check"))
    parser.add_argument("--device", default="cuda")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    store = args.out / "store"
    summary: dict[str, object] = {"device": args.device, "torch": torch.__version__}
    if torch.cuda.is_available():
        summary["gpu"] = torch.cuda.get_device_name(0)
    for model in ("mlp", "resnet18"):
        report = run_export(
            ExportRequest(
                model=model,
                out=store,
                formats=DEFAULT_FORMATS,
                device=args.device,
                timing=TimingPlan(warmup=3, min_runs=10, budget_s=1.0),
            )
        )
        sys.stdout.write(f"\n{model} exported on {args.device}\n{report.table()}\n\n")
        summary[f"{model}_export"] = report.model_dump(mode="json")
    served = [p.stem for p in sorted(store.glob("*.mar"))]
    with torchserve(store, args.out / "ts", tuple(served)) as server:
        url = server.settings.url("inference")
        headers = {"Authorization": f"Bearer {server.keys().inference.key}"}
        rows = torch.randn(4, 16, generator=torch.Generator().manual_seed(0))
        with torch.inference_mode():
            expected = mlp.build(None)(rows)
        answers = {}
        for name in served:
            if name.startswith("mlp"):
                resp = httpx.post(
                    f"{url}/predictions/{name}",
                    json={"inputs": rows.tolist()},
                    headers=headers,
                    timeout=120,
                )
                got = torch.tensor(resp.json()["outputs"])
                answers[name] = {
                    "status": resp.status_code,
                    "max_abs_err": float((got - expected).abs().max()),
                }
            else:
                image = _image()
                body = {"inputs": [base64.b64encode(image).decode()]}
                resp = httpx.post(
                    f"{url}/predictions/{name}", json=body, headers=headers, timeout=120
                )
                answers[name] = {"status": resp.status_code, "top1": resp.json()[0][0]}
        log_text = (server.settings.logdir / "model_log.log").read_text()
        loaded = dict(re.findall(r"loaded \w+ \((\w+), \w+\) on (\S+)", log_text))
        summary["served"] = answers
        summary["worker_devices"] = loaded
    sys.stdout.write(json.dumps(summary["served"], indent=2) + "\n")
    sys.stdout.write(f"worker devices: {summary['worker_devices']}\n")
    (args.out / "cuda_check.json").write_text(json.dumps(summary, indent=2))
    return 0


def _image() -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.radial_gradient("L").convert("RGB").resize((320, 240)).save(buf, format="PNG")
    return buf.getvalue()


if __name__ == "__main__":
    sys.exit(main())
