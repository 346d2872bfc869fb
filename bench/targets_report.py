"""Issue 20's verdicts and the markdown table of a ``bench.gpu_targets`` run.

Targets, each against figures of the same run: a one-item row >= 80% of the ``ceiling`` row's
req/s; its coalesced row >= 1.5x the ceiling in items/s with p99 within 2x of the uncoalesced
row's p99 (same concurrency); ResNet-50 with 32 images per request >= 14,000 img/s, MiniLM
with 32 texts >= 44,000 seq/s.
"""

from __future__ import annotations

from typing import Any

SINGLE_SHARE = 0.8
COALESCED_GAIN = 1.5
COALESCED_P99 = 2.0
MULTI_ITEMS_PER_S = {"resnet50": 14_000.0, "minilm": 44_000.0}


def verdict(row: dict[str, Any], rows: dict[str, dict[str, Any]]) -> str:
    """The row's target and whether it was met, or '' when the row has none."""
    name = str(row["row"])
    ceiling = rows.get("ceiling", {}).get("rps")
    if "rps" not in row or name.startswith("ceiling"):
        return ""
    if row["items_per_request"] > 1:
        model = name.split("_x", maxsplit=1)[0]
        goal = MULTI_ITEMS_PER_S.get(model)
        if goal is None:
            return ""
        met = row["items_per_s"] >= goal
        return f"{'met' if met else 'missed'}: >= {goal:,.0f} items/s"
    if not ceiling:
        return "no ceiling row"
    if not name.endswith("_coalesced"):
        share = row["rps"] / ceiling
        return f"{'met' if share >= SINGLE_SHARE else 'missed'}: {share:.0%} of ceiling (>= 80%)"
    gain = row["items_per_s"] / ceiling
    plain = rows.get(name.removesuffix("_coalesced"), {}).get("p99_ms")
    p99 = (
        f", p99 {row['p99_ms'] / plain:.2f}x uncoalesced (<= 2x)"
        if plain
        else ", no p99 to compare"
    )
    met = gain >= COALESCED_GAIN and bool(plain) and row["p99_ms"] <= COALESCED_P99 * plain
    return f"{'met' if met else 'missed'}: {gain:.2f}x ceiling (>= 1.5x){p99}"


def table(results: dict[str, Any]) -> str:
    rows = {str(r["row"]): r for r in results.get("rows", [])}
    head = (
        "| row | path | format | in flight | req/s | items/s | p50 / p99 ms | errors "
        "| cores: client / gateway / TS frontend / TS workers / machine | GPU % "
        "| upstream per request | target |"
    )
    lines = [head, "|" + " --- |" * 12]
    for name, row in rows.items():
        if "rps" not in row:
            reason = str(row.get("error", "?")).splitlines()[0][:160]
            lines.append(
                f"| {name} | {row['path']} | {row.get('format', '-')} | "
                f"{row['concurrency']} | - | - | - | - | - | - | - | {reason} |"
            )
            continue
        cores = " / ".join(
            f"{row.get(k, 0):.1f}"
            for k in (
                "client_cores",
                "gateway_cores",
                "torchserve_frontend_cores",
                "torchserve_workers_cores",
                "machine_cores",
            )
        )
        lines.append(
            f"| {name} | {row['path']} | {row.get('format', '-')} | {row['concurrency']} "
            f"| {row['rps']:,.0f} | {row['items_per_s']:,.0f} "
            f"| {row['p50_ms']:.1f} / {row['p99_ms']:.1f} | {row.get('errors', 0)} | {cores} "
            f"| {row.get('gpu_util_pct', '-')} | {row.get('upstream_per_client_request', '-')} "
            f"| {verdict(row, rows)} |"
        )
    return "\n".join(lines)
