"""PNG plots of how each cost grows with batch size and sequence length (matplotlib, no display)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _lines(ax: Any, rows: Iterable[dict[str, Any]], key: str, x: str, y: str) -> None:
    series: dict[str, list[tuple[float, float]]] = {}
    for row in rows:
        series.setdefault(str(row[key]), []).append((row[x], row[y]))
    for name, points in sorted(series.items()):
        xs, ys = zip(*sorted(points), strict=True)
        ax.plot(xs, ys, marker="o", label=name)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)


def cpu_plots(result: dict[str, Any], out: Path) -> list[Path]:
    plt = _pyplot()
    paths: list[Path] = []
    models = result.get("formats", {}).get("models", {})
    if models:
        fig, axes = plt.subplots(1, len(models), figsize=(6 * len(models), 4.5))
        for ax, (name, data) in zip(list(axes), models.items(), strict=False):
            rows = [r for r in data["rows"] if r["seq"] in (0, 128)]
            _lines(ax, rows, "format", "batch", "latency_ms")
            ax.set(title=f"{name} on CPU: latency vs batch", xlabel="batch", ylabel="ms per call")
        paths.append(_save(fig, out / "cpu-formats-batch.png", plt))
        minilm = models.get("minilm", {}).get("rows", [])
        sweep = [r for r in minilm if r["batch"] == 8]
        if sweep:
            fig, ax = plt.subplots(figsize=(6, 4.5))
            _lines(ax, sweep, "format", "seq", "latency_ms")
            ax.set(title="minilm on CPU, batch 8: latency vs sequence length", xlabel="tokens")
            ax.set_ylabel("ms per call")
            paths.append(_save(fig, out / "cpu-minilm-seq.png", plt))
    sweep_rows = result.get("batching", {}).get("rows", [])
    if sweep_rows:
        fig, ax = plt.subplots(figsize=(7, 4.5))
        labels = [f"b{r['batch_size']}/d{r['max_batch_delay_ms']}" for r in sweep_rows]
        ax.bar(labels, [r["rps"] for r in sweep_rows], color="tab:blue")
        ax.set(ylabel="req/s", title="minilm through TorchServe: batch size / max delay (ms)")
        twin = ax.twinx()
        twin.plot(labels, [r["p99_ms"] for r in sweep_rows], color="tab:red", marker="o")
        twin.set_ylabel("p99 ms", color="tab:red")
        paths.append(_save(fig, out / "cpu-batching.png", plt))
    return paths


def gpu_plots(result: dict[str, Any], out: Path) -> list[Path]:
    plt = _pyplot()
    paths: list[Path] = []
    rows = result.get("raw", {}).get("rows", [])
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for ax, model in zip(axes, ("resnet50", "minilm"), strict=True):
        picked = [r | {"label": f"{r['variant']} {r['dtype']}"} for r in rows]
        picked = [r for r in picked if r["model"] == model and r["seq"] in (0, 128)]
        _lines(ax, picked, "label", "batch", "items_per_s")
        ceiling = max((r["ceiling_per_s"] for r in picked if r["dtype"] == "bfloat16"), default=0)
        if ceiling:
            ax.axhline(ceiling, color="black", linestyle="--", label="bf16 ceiling")
            ax.legend(fontsize=7)
        ax.set(title=f"{model} on H200: throughput vs batch", xlabel="batch", ylabel="items/s")
    paths.append(_save(fig, out / "h200-raw-batch.png", plt))
    seq_rows = [r for r in rows if r["model"] == "minilm" and r["batch"] == 32]
    if seq_rows:
        fig, ax = plt.subplots(figsize=(6, 4.5))
        _lines(ax, [r | {"label": r["dtype"]} for r in seq_rows], "label", "seq", "ms")
        ax.set(title="minilm eager on H200, batch 32: ms vs tokens", xlabel="tokens", ylabel="ms")
        paths.append(_save(fig, out / "h200-minilm-seq.png", plt))
    return paths


def _save(fig: Any, path: Path, plt: Any) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
