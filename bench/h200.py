"""The GPU suite's results: what the device tool brought back, gathered into
``bench/results/<date>-h200.json`` with its plots and Markdown summary.

On the H200 (through the device tool, commands in docs/benchmarks.md) ``bench.gpu_raw`` and
``bench.gpu_served`` write JSON files under ``$OUT``; the tool copies them here. Then:

    .venv/bin/python -m bench.h200 RAW.json [RAW2.json ...] [--served SERVED.json ...]
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
from pathlib import Path
from typing import Any

from bench.plots import gpu_plots

RESNET50_TARGET = 25_000  # img/s, bf16, one H200
SERVED_TARGET = 0.5  # served / raw at the same batch size


def merge(raw_files: list[Path]) -> dict[str, Any]:
    merged: dict[str, Any] = {"environment": {}, "rows": [], "failures": []}
    for path in raw_files:
        data = json.loads(path.read_text())
        merged["environment"] = merged["environment"] or data["environment"]
        merged["rows"] += data["rows"]
        merged["failures"] += data["failures"]
    # A later run's outcome replaces an earlier one's ("skipped: time budget", then measured).
    measured = {(r["model"], r["variant"]) for r in merged["rows"]}
    last = {(f["model"], f["variant"]): f for f in merged["failures"]}
    merged["failures"] = [f for key, f in last.items() if key not in measured]
    return merged


def summary(result: dict[str, Any], plots: list[Path]) -> str:
    env = result["raw"]["environment"]
    lines = [
        f"# H200 benchmark, {result['date']}",
        "",
        f"{env['gpu']} ({env['sms']} SMs), torch {env['torch']}, CUDA {env['cuda']}, "
        f"Python {env['python']}; bf16 matmul measured at "
        f"{env['measured_bf16_matmul_flops'] / 1e12:.0f} TFLOP/s (datasheet 989). "
        f"MiniLM weights: {env['minilm_weights']}.",
        "",
        "| model | variant | dtype | batch | seq | ms | items/s | ceiling items/s | % of ceiling |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in result["raw"]["rows"]:
        lines.append(
            f"| {r['model']} | {r['variant']} | {r['dtype']} | {r['batch']} | {r['seq'] or '-'} "
            f"| {r['ms']} | {r['items_per_s']:.0f} | {r['ceiling_per_s']:.0f} "
            f"| {r['pct_of_ceiling']:.1f} |"
        )
    lines += [
        "",
        *(
            f"- failed: {f['model']} {f['variant']}: {f['error']}"
            for f in result["raw"]["failures"]
        ),
    ]
    best = max(
        (r for r in result["raw"]["rows"] if r["model"] == "resnet50" and r["dtype"] == "bfloat16"),
        key=lambda r: r["items_per_s"],
    )
    met = "MET" if best["items_per_s"] >= RESNET50_TARGET else "MISSED"
    lines.append(
        f"\n**Target** resnet50 bf16 >= {RESNET50_TARGET} img/s: {best['variant']} at batch "
        f"{best['batch']}: {best['items_per_s']:.0f} img/s: **{met}**"
    )
    for served in result.get("served", []):
        ratio = served["served_over_raw"]
        lines.append(
            f"\n**Target** served >= {SERVED_TARGET:.0%} of raw at the same batch size, "
            f"{served.get('model', 'resnet50')}: {served['served']['rps']:.0f}/s served vs "
            f"{served['raw_fp32']['items_per_s']:.0f}/s raw (fp32 TorchScript, batch "
            f"{served['settings']['batch_size']}, {served['settings']['clients']} client "
            f"processes): {ratio:.1%}: **{'MET' if ratio >= SERVED_TARGET else 'MISSED'}**"
        )
        if "handler_stages_ms" in served:
            lines.append(
                f"handler stages (ms per batch): {json.dumps(served['handler_stages_ms'])}"
            )
    lines += ["", *(f"- plot: {p}" for p in plots)]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("raw", type=Path, nargs="+")
    parser.add_argument("--served", type=Path, action="append", default=[])
    parser.add_argument("--results", type=Path, default=Path("bench/results"))
    parser.add_argument("--plots", type=Path, default=Path("docs/img"))
    args = parser.parse_args()
    date = datetime.date.today().isoformat()
    result: dict[str, Any] = {"date": date, "raw": merge(args.raw)}
    result["served"] = [json.loads(path.read_text()) for path in args.served]
    args.results.mkdir(parents=True, exist_ok=True)
    (args.results / f"{date}-h200.json").write_text(json.dumps(result, indent=2) + "\n")
    args.plots.mkdir(parents=True, exist_ok=True)
    text = summary(result, gpu_plots(result, args.plots))
    (args.results / f"{date}-h200.md").write_text(text)
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
