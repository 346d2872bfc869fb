"""Markdown summaries of a suite's JSON: every figure a ratio from the same run, with targets."""

from __future__ import annotations

from pathlib import Path
from typing import Any

# Fastest verified format / eager, minilm, batch 8, sequence 128 (issue 20 raised it from 1.5).
MINILM_TARGET = 2.0


def _table(head: list[str], rows: list[list[Any]]) -> list[str]:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    return lines + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]


def _formats(data: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    for model, block in data.get("models", {}).items():
        lines += [f"### {model}", ""]
        parity = [
            [
                f,
                "yes" if p["verified"] else "NO",
                p["max_abs_err"],
                p["min_cosine"],
                p["error"] or "",
            ]
            for f, p in block["parity"].items()
        ]
        lines += [*_table(["format", "verified", "max abs err", "min cosine", "error"], parity), ""]
        rows = [
            [
                r["batch"],
                r["seq"] or "-",
                r["format"],
                r["latency_ms"],
                r["items_per_s"],
                f"{r['speedup_vs_eager']:.2f}x",
            ]
            for r in block["rows"]
        ]
        head = ["batch", "seq", "format", "ms", "items/s", "speedup vs eager (same run)"]
        lines += [*_table(head, rows), ""]
    minilm = data.get("models", {}).get("minilm")
    if minilm:
        verified = {f for f, p in minilm["parity"].items() if p["verified"]}
        at8 = [r for r in minilm["rows"] if r["batch"] == 8 and r["seq"] == 128]
        best = max((r for r in at8 if r["format"] in verified), key=lambda r: r["speedup_vs_eager"])
        met = "MET" if best["speedup_vs_eager"] >= MINILM_TARGET else "MISSED"
        lines.append(
            f"**Target** fastest verified format >= {MINILM_TARGET}x eager for minilm at batch 8, "
            f"seq 128: {best['format']} at {best['speedup_vs_eager']:.2f}x: **{met}**."
        )
    return lines


def cpu_summary(result: dict[str, Any], plots: list[Path]) -> str:
    env = result["environment"]
    lines = [
        f"# CPU benchmark, {result['date']}",
        "",
        f"{env['cpu']}, {env['cores']} cores, Python {env['python']}; "
        + ", ".join(f"{k} {v}" for k, v in env["versions"].items()),
        f"({env['note']})",
        "",
        "## Runtime formats",
        "",
    ]
    lines += _formats(result.get("formats", {}))
    serving = result.get("serving", {})
    if "overhead_p50_ms" in serving:
        o, h = serving["overhead_p50_ms"], serving["handler_p50_ms"]
        lines += ["", "## TorchServe overhead: servegate handler vs stock BaseHandler", ""]
        lines += _table(
            ["handler", "overhead p50 ms (latency - handler)", "handler p50 ms"],
            [["servegate", o["servegate"], h["servegate"]], ["stock", o["stock"], h["stock"]]],
        )
        lines.append(
            f"\nlatency p50 servegate/stock (median of rounds): "
            f"{serving['latency_ratio_servegate_over_stock']}x; {serving['model']}"
        )
    batching = result.get("batching", {})
    if "rows" in batching:
        lines += [
            "",
            f"## Dynamic batching: {batching['model']}, {batching['connections']} connections",
            "",
        ]
        rows = [
            [r["batch_size"], r["max_batch_delay_ms"], r["rps"], r["p50_ms"], r["p99_ms"]]
            for r in batching["rows"]
        ]
        lines += _table(["batch_size", "max_batch_delay ms", "req/s", "p50 ms", "p99 ms"], rows)
        lines.append(f"\nchosen: {batching['chosen']} ({batching['rule']})")
    for name in ("gateway_http", "gateway_grpc"):
        step = result.get(name, {})
        if "throughput_ratio" in step:
            lines += ["", f"## {name}", "", "```", *step["table"], "```"]
    errors = {k: v["error"] for k, v in result.items() if isinstance(v, dict) and "error" in v}
    if errors:
        lines += ["", "## Failed steps", "", *(f"- {k}: {v}" for k, v in errors.items())]
    if plots:
        lines += ["", "## Plots", "", *(f"- {p}" for p in plots)]
    return "\n".join(lines) + "\n"
