"""``servegate export``: see ``export.pipeline``."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from export.pipeline import ExportRequest

log = logging.getLogger("servegate.export")


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "export", help="export a model to verified TorchScript/AOTInductor/ONNX archives"
    )
    p.add_argument(
        "model", help="built-in name (mlp, minilm, resnet18), spec.py[:ATTR] or pkg.mod:ATTR"
    )
    p.add_argument("--formats", default="torchscript,aoti,onnx", help="comma-separated formats")
    p.add_argument("--out", type=Path, default=Path("model_store"), help="archive directory")
    p.add_argument("--weights", type=Path, default=None, help="safetensors or state-dict file")
    p.add_argument("--timing-budget", type=float, default=2.0, help="seconds per batch size")
    p.add_argument("--device", default="cpu", help="cpu or cuda[:N]: where to export and verify")
    p.add_argument("--batch-size", type=int, help="TorchServe batchSize (default: the spec's)")
    p.add_argument("--max-batch-delay", type=int, help="TorchServe maxBatchDelay in ms")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    # Heavy imports (torch) only when exporting, so `servegate --help` stays fast.
    from export.pipeline import FORMATS, ExportRequest
    from export.timing import TimingPlan

    formats = tuple(f.strip() for f in args.formats.split(",") if f.strip())
    unknown = [f for f in formats if f not in FORMATS]
    if unknown or not formats:
        log.error("unknown format(s) %s; choose from %s", unknown, ", ".join(FORMATS))
        return 2
    overrides = {
        key: value
        for key, value in (
            ("batch_size", args.batch_size),
            ("max_batch_delay_ms", args.max_batch_delay),
        )
        if value is not None
    }
    request = ExportRequest(
        model=args.model,
        out=args.out,
        formats=formats,  # type: ignore[arg-type]
        weights=args.weights,
        timing=TimingPlan(budget_s=args.timing_budget),
        serving_overrides=overrides,
        device=args.device,
    )
    return export_and_report(request)


def export_and_report(request: ExportRequest) -> int:
    """Run an export, print its table; 0 when every format verified, 1 if some failed,
    2 when the model itself could not be resolved or built."""
    from export.errors import ExportError
    from export.pipeline import run_export

    try:
        report = run_export(request)
    except ExportError as exc:
        log.error("%s", exc)
        return 2
    sys.stdout.write(f"\nExport report for {report.model}\n{report.table()}\n")
    if report.failed:
        for fmt, reason in report.failed.items():
            log.error("%s was not packaged: %s", fmt, reason)
        log.error("failed formats: %s", ", ".join(report.failed))
        return 1
    return 0
