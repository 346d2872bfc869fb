"""``servegate export hf:DIR`` for a causal LM: folder -> placement per format -> greedy
parity against transformers -> timing -> archives -> report.

Nothing is traced: each archive carries the model's folder (config, safetensors shards,
tokenizer) and says how a worker places it. Parity loads the packaged files exactly as a worker
does (``handlers.generation``); ``deepspeed_tp`` runs its check under torchrun, like TorchServe.
"""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch

from export.errors import ExportError, FormatFailed
from export.formats import DEFAULT_FORMATS, DEFAULT_GENERATION_FORMATS, GENERATION, Format
from export.generation.options import GenerationOptions
from export.generation.parity import compare, parity_prompts, reference_tokens
from export.generation.tp_check import run_tp_check
from export.package import Contents, assemble
from export.report import ExportReport, FormatReport, report_dir
from export.sources.hf.folder import HFFolder
from export.sources.options import archive_name
from handlers.generation.engine import Generator
from handlers.generation.placement import Placement, load_model
from handlers.generation.request import Limits, Parameters
from handlers.manifest import TensorInfo
from servegate import pins

log = logging.getLogger("servegate.export")

FOLDER_SUFFIXES = (".json", ".safetensors", ".txt", ".model", ".jinja")
TEXT = (TensorInfo(name="text_input", datatype="BYTES", shape=(-1,)),)
OUT = (TensorInfo(name="text_output", datatype="BYTES", shape=(-1,)),)
TIMING_TOKENS = 32


def is_generation(model: str, task: str | None) -> bool:
    if not model.startswith("hf:"):
        return False
    if task is not None:
        return task == "text_generation"
    return HFFolder.open(model.removeprefix("hf:")).task() == "text_generation"


def generation_formats(asked: tuple[Format, ...]) -> tuple[Format, ...]:
    if asked == DEFAULT_FORMATS:
        return DEFAULT_GENERATION_FORMATS
    traced = [f for f in asked if f not in GENERATION]
    if traced:
        raise ExportError(
            f"a causal LM is served eager and never traced: {', '.join(traced)} cannot export "
            f"it; choose from {', '.join(GENERATION)}"
        )
    return asked


def run_generation_export(
    model: str,
    out: Path,
    formats: tuple[Format, ...],
    options: GenerationOptions,
    *,
    name: str | None = None,
    version: str = "1.0",
) -> ExportReport:
    formats = generation_formats(formats)
    folder = HFFolder.open(model.removeprefix("hf:"))
    name = name or archive_name_for(folder)
    if options.kernel_inject:
        raise ExportError(
            "DeepSpeed kernel injection fails with transformers 5 (its fused kernels replace "
            "modules that no longer exist); deepspeed_tp uses AutoTP without injection"
        )
    work = report_dir(out, name, version)
    work.mkdir(parents=True, exist_ok=True)
    limits = _limits(folder, options)
    files = _folder_files(folder.path)
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder.path, local_files_only=True)
    prompts = parity_prompts(tokenizer, max_tokens=limits.max_prompt_tokens)
    log.info("[%s] greedy reference: transformers generate on %d prompts", name, len(prompts))
    expected = reference_tokens(folder.path, prompts)
    report = ExportReport(model=name, version=version)
    job = _Job(name, files, prompts, expected, limits, options, out, work, version)
    for fmt in formats:
        try:
            report.formats[fmt] = _export_format(job, fmt)
        except FormatFailed as exc:
            log.error("[%s] %s", name, exc)
            report.formats[fmt] = FormatReport(error=f"{exc.stage}: {exc.reason}")
    report.write(work)
    return report


def archive_name_for(folder: HFFolder) -> str:
    from export.sources.options import SourceOptions

    return archive_name(SourceOptions(), folder.path.resolve().name)


def _limits(folder: HFFolder, options: GenerationOptions) -> Limits:
    window = int(folder.config.get("max_position_embeddings", 2048))
    prompt = options.max_prompt_tokens or max(1, window // 2)
    new = options.max_new_tokens or max(1, window - prompt)
    if prompt + new > window:
        raise ExportError(
            f"max_prompt_tokens {prompt} + max_new_tokens {new} exceed the model's context "
            f"window of {window} tokens"
        )
    return Limits(max_prompt_tokens=prompt, max_new_tokens=new, max_prompts=options.max_prompts)


def _folder_files(path: Path) -> list[Path]:
    """config.json first (the archive's artifact), then what transformers loads; pickles
    (``*.bin``, ``*.pt``) are not packaged."""
    files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix in FOLDER_SUFFIXES)
    return sorted(files, key=lambda p: p.name != "config.json")


@dataclass(frozen=True)
class _Job:
    name: str
    files: list[Path]
    prompts: list[str]
    expected: list[list[int]]  # transformers' greedy tokens, per prompt
    limits: Limits
    options: GenerationOptions
    out: Path
    work: Path
    version: str


def _export_format(job: _Job, fmt: Format) -> FormatReport:
    name, files, limits, options, out = job.name, job.files, job.limits, job.options, job.out
    prompts, expected, version = job.prompts, job.expected, job.version
    fmt_dir = job.work / fmt
    shutil.rmtree(fmt_dir, ignore_errors=True)
    staged = fmt_dir / "model"
    staged.mkdir(parents=True)
    for file in files:
        shutil.copyfile(file, staged / file.name)
    placement = Placement(
        dtype=options.dtype, device_map=options.device_map, max_memory=dict(options.max_memory)
    )
    started = time.perf_counter()
    try:
        if fmt == "deepspeed_tp":
            actual, timing = run_tp_check(staged, prompts, options.tp_size, fmt_dir)
        else:
            actual, timing = _in_process(staged, fmt, placement, prompts, limits)
    except Exception as exc:
        raise FormatFailed(fmt, "parity", f"{type(exc).__name__}: {exc}") from exc
    parity = compare(prompts, expected, actual)
    if not parity.ok:
        raise FormatFailed(fmt, "parity", parity.reason or "tokens differ")
    check_s = time.perf_counter() - started
    contents = Contents(
        model=name,
        task="text_generation",
        task_config={
            "max_prompt_tokens": limits.max_prompt_tokens,
            "max_new_tokens": limits.max_new_tokens,
            "max_prompts": limits.max_prompts,
            "placement": {
                "dtype": placement.dtype,
                "device_map": placement.device_map,
                "max_memory": placement.max_memory,
            },
        },
        inputs=TEXT,
        outputs=OUT,
        model_config=_model_config(fmt, options),
    )
    staged_files = [staged / f.name for f in files]
    archive = assemble(contents, fmt, staged_files, fmt_dir / "archive", out, version=version)
    return FormatReport(
        parity_ok=True,
        bytes=sum(f.stat().st_size for f in staged_files),
        export_s=round(check_s, 2),
        archive=str(archive),
        archive_sha256=pins.read(pins.pin_file_for(out)).archives[archive.name].sha256,
        exported_at=datetime.now(UTC).isoformat(timespec="seconds"),
        first_token_ms=timing["first_token_ms"],
        tokens_per_s=timing["tokens_per_s"],
    )


def _in_process(
    folder: Path, fmt: Format, placement: Placement, prompts: list[str], limits: Limits
) -> tuple[list[list[int]], dict[str, float]]:
    from transformers import AutoTokenizer

    loaded = load_model(folder, fmt, placement, torch.device("cpu"))  # type: ignore[arg-type]
    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    generator = Generator(loaded.model, tokenizer, loaded.input_device, limits.max_prompt_tokens)
    greedy = Parameters(max_new_tokens=16)
    actual = [generator.generate(p, greedy).token_ids for p in prompts]
    return actual, time_generation(generator)


def time_generation(generator: Generator) -> dict[str, float]:
    """Time to the first piece of text and tokens per second, over one greedy generation."""
    marks: list[float] = []
    started = time.perf_counter()
    done = generator.generate(
        "The quick brown fox jumps over the lazy dog.",
        Parameters(max_new_tokens=TIMING_TOKENS),
        on_text=lambda _: marks.append(time.perf_counter()),
    )
    total = time.perf_counter() - started
    first = (marks[0] - started) if marks else total
    return {
        "first_token_ms": round(first * 1000, 2),
        "tokens_per_s": round(len(done.token_ids) / total, 2) if total > 0 else 0.0,
    }


def _model_config(fmt: Format, options: GenerationOptions) -> dict[str, Any]:
    config: dict[str, Any] = {
        "minWorkers": 1,
        "maxWorkers": 1,
        "batchSize": 1,  # no continuous batching in TorchServe's handler model
        "maxBatchDelay": 0,
        "responseTimeout": options.response_timeout_s,
    }
    if fmt == "deepspeed_tp":
        config["parallelType"] = "tp"
        config["torchrun"] = {"nproc-per-node": options.tp_size}
    return config
