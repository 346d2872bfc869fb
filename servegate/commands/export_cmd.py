"""``servegate export``: see ``export.pipeline``."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from export import formats

if TYPE_CHECKING:
    from export.pipeline import ExportRequest

log = logging.getLogger("servegate.export")

# Kept here (export.registry imports torch, and `servegate --help` must not);
# tests/export/test_spec_checks.py checks they agree with export.registry.
BUILTIN_MODELS = ("minilm", "mlp", "resnet18", "resnet50")
# The --formats default as it is typed on the command line.
DEFAULT_FORMATS = ",".join(formats.DEFAULT_FORMATS)
FORMATS = formats.FORMATS
TRACED = tuple(f for f in FORMATS if f not in formats.GENERATION)

DESCRIPTION = """\
Export a PyTorch model to TorchScript, AOTInductor (.pt2) and ONNX, check each artifact
against eager PyTorch, and package every format that matches as OUT/NAME_<format>.mar.
Before any format is exported, the model is built and its inputs and output are checked
against the shapes and dtypes that its spec declares."""

EPILOG = f"""\
models:
  built-in: {", ".join(BUILTIN_MODELS)}
  your own: path/to/spec.py (attribute SPEC), path/to/spec.py:ATTR or package.module:ATTR
            (module paths are relative to the current directory); see docs/export.md
  Lightning: path/module.py:MyModule --ckpt model.ckpt (or a lightning_spec(...) attribute)
  Hugging Face: hf:path/to/dir [--task text_embedding|text_classification|image_classification
                               |text_generation]
  torch.hub: hub:path/to/repo:entrypoint [--hub-kwargs '{{"pretrained": true}}'] (local only)
  fast.ai: fastai:path/to/export.pkl --trust-pickle (unpickling runs the file's code)

formats: {", ".join(TRACED)} ({", ".join(sorted(formats.OPT_IN))} only on request)
  causal LMs (text_generation, docs/generation.md): {", ".join(formats.GENERATION)}

output:
  OUT/NAME_<format>.mar            one archive per verified format (version 1.0)
  OUT/NAME/export_report.json      every archive of NAME in OUT: parity, latency, size
  OUT/NAME_<format>.vV.mar         with --version V (not 1.0): beside the others
  OUT/NAME/vV/export_report.json   that version's report
  OUT/NAME/<format>/error.log      full traceback and console output of a failed format

exit status:
  0  every requested format was exported, verified and packaged
  1  some formats failed (named on stderr); the others were packaged
  2  nothing was exported: unknown model or format, bad option, weights that do not fit,
     another export of this model into OUT is running
  3  the spec is wrong: its code raised (at import, in build() or example_inputs()), or the
     model's tensors differ from the declared inputs/outputs

example:
  servegate export examples/house_prices.py --formats torchscript,onnx --out model_store"""


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "export",
        help="export a model to verified TorchScript/AOTInductor/ONNX archives",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "model", help=f"built-in name ({', '.join(BUILTIN_MODELS)}), spec.py[:ATTR] or pkg.mod:ATTR"
    )
    p.add_argument(
        "--formats",
        default=DEFAULT_FORMATS,
        help="comma-separated, from the formats listed below (default: %(default)s); "
        f"a causal LM's default: {','.join(formats.DEFAULT_GENERATION_FORMATS)}",
    )
    p.add_argument(
        "--out",
        type=Path,
        default=Path("model_store"),
        help="archive directory (default: %(default)s)",
    )
    p.add_argument(
        "--version",
        dest="model_version",
        default="1.0",
        help="the archives' version, e.g. 2.0: written beside the other versions' archives, "
        "served at /predictions/MODEL/VERSION (default: %(default)s)",
    )
    p.add_argument(
        "--weights",
        type=Path,
        default=None,
        help="safetensors file or weights-only state dict (default: the model's own weights)",
    )
    _source_arguments(p)
    p.add_argument(
        "--timing-budget",
        type=float,
        default=2.0,
        help="seconds of timed runs per batch size, per format (default: %(default)s; 0: one run)",
    )
    p.add_argument(
        "--device",
        default="cpu",
        help="where to export and verify: cpu or cuda[:N] (default: %(default)s)",
    )
    p.add_argument(
        "--precision",
        choices=("fp32", "bf16", "fp16"),
        default="fp32",
        help="the numbers the archives compute in; bf16/fp16 only for "
        f"{', '.join(sorted(formats.PRECISION_FORMATS))}, verified by cosine to fp32 eager; "
        "fp16 only on a GPU (default: %(default)s)",
    )
    p.add_argument(
        "--batch-size", type=int, help="TorchServe batchSize of the archives (default: the spec's)"
    )
    p.add_argument(
        "--max-batch-delay",
        type=int,
        help="TorchServe maxBatchDelay in ms (default: the spec's)",
    )
    p.set_defaults(run=run)


def _source_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("model sources (docs/export.md, 'Bring your own model')")
    g.add_argument("--ckpt", type=Path, help="Lightning checkpoint for a LightningModule class")
    g.add_argument(
        "--init-kwargs",
        type=_json_object,
        default={},
        help="JSON object of LightningModule __init__ arguments the checkpoint does not hold",
    )
    g.add_argument(
        "--allow-global",
        action="append",
        default=[],
        metavar="PKG.MOD.NAME",
        help="a class weights-only loading may build from the checkpoint (repeatable)",
    )
    g.add_argument(
        "--hub-kwargs", type=_json_object, default={}, help="JSON object for the hub entrypoint"
    )
    g.add_argument(
        "--trust-pickle",
        action="store_true",
        help="allow unpickling the model file (fast.ai): it runs code from the file",
    )
    g.add_argument(
        "--task",
        choices=(
            "text_embedding",
            "text_classification",
            "image_classification",
            "tensor",
            "text_generation",
        ),
        help="the task to serve (default: what the source says)",
    )
    g.add_argument("--name", help="archive name (default: from the source)")
    _generation_arguments(p)


def _generation_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("causal LMs (task text_generation, docs/generation.md)")
    g.add_argument("--max-prompt-tokens", type=int, help="per request (default: half the window)")
    g.add_argument("--max-new-tokens", type=int, help="per request (default: the rest)")
    g.add_argument(
        "--max-memory",
        type=_max_memory,
        default={},
        metavar="DEV=SIZE,...",
        help="accelerate: caps per device, e.g. 0=20GiB,1=20GiB,cpu=64GiB (beyond: disk)",
    )
    g.add_argument("--device-map", choices=("auto", "balanced"), default="auto")
    g.add_argument("--dtype", choices=("float32", "bfloat16", "float16"), default="float32")
    g.add_argument("--tp-size", type=int, default=2, help="deepspeed_tp: ranks (default: 2)")


def _max_memory(text: str) -> dict[str, str]:
    caps = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        device, sep, size = item.partition("=")
        if not sep or not size or not (device == "cpu" or device.isdigit()):
            raise argparse.ArgumentTypeError(f"{item!r}: expected DEVICE=SIZE (0=20GiB, cpu=2GiB)")
        caps[device] = size
    return caps


def _json_object(text: str) -> dict[str, Any]:
    import json

    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("expected a JSON object, e.g. '{\"pretrained\": true}'")
    return value


def _source_options(args: argparse.Namespace) -> Any:
    from pydantic import ValidationError

    from export.errors import ExportError
    from export.sources.options import SourceOptions

    try:
        return SourceOptions(
            ckpt=args.ckpt,
            init_kwargs=args.init_kwargs,
            allow_globals=tuple(args.allow_global),
            hub_kwargs=args.hub_kwargs,
            trust_pickle=args.trust_pickle,
            task=args.task,
            name=args.name,
        )
    except ValidationError as exc:
        raise ExportError(f"invalid option: {exc.errors()[0]['msg']}") from None


def _generation_options(args: argparse.Namespace) -> Any:
    from pydantic import ValidationError

    from export.errors import ExportError
    from export.generation.options import GenerationOptions

    try:
        return GenerationOptions(
            max_prompt_tokens=args.max_prompt_tokens,
            max_new_tokens=args.max_new_tokens,
            max_memory=args.max_memory,
            device_map=args.device_map,
            dtype=args.dtype,
            tp_size=args.tp_size,
        )
    except ValidationError as exc:
        first = exc.errors()[0]
        raise ExportError(f"invalid option --{first['loc'][0]}: {first['msg']}") from None


def run(args: argparse.Namespace) -> int:
    import re

    from export.errors import EXIT_CANNOT_START
    from handlers.manifest import VERSION_PATTERN

    if not re.match(VERSION_PATTERN, args.model_version):
        log.error("version %r: use numbers and dots, e.g. 2.0 or 1.2.3", args.model_version)
        return EXIT_CANNOT_START
    formats = tuple(f.strip() for f in args.formats.split(",") if f.strip())
    unknown = [f for f in formats if f not in FORMATS]
    if unknown or not formats:
        log.error("unknown format(s) %s; choose from %s", unknown, ", ".join(FORMATS))
        return EXIT_CANNOT_START
    # Heavy imports (torch) only once the arguments are known good: a mistyped format is
    # refused at once, and `servegate --help` stays fast.
    from export.pipeline import ExportRequest
    from export.timing import TimingPlan

    overrides = {
        key: value
        for key, value in (
            ("batch_size", args.batch_size),
            ("max_batch_delay_ms", args.max_batch_delay),
        )
        if value is not None
    }
    from export.errors import ExportError

    try:
        source = _source_options(args)
    except ExportError as exc:
        log.error("%s", exc)
        return exc.exit_code
    try:
        generation = _generation_options(args)
    except ExportError as exc:
        log.error("%s", exc)
        return exc.exit_code
    request = ExportRequest(
        generation=generation,
        model=args.model,
        source=source,
        out=args.out,
        formats=formats,  # type: ignore[arg-type]
        weights=args.weights,
        timing=TimingPlan(budget_s=args.timing_budget),
        serving_overrides=overrides,
        device=args.device,
        version=args.model_version,
        precision=args.precision,
    )
    return export_and_report(request)


def export_and_report(request: ExportRequest) -> int:
    """Run an export and print its table; the exit status is one of those in EPILOG."""
    from export.errors import EXIT_FORMATS_FAILED, EXIT_OK, ExportError
    from export.pipeline import run_export

    try:
        report = run_export(request)
    except ExportError as exc:
        log.error("%s", exc)
        return exc.exit_code
    sys.stdout.write(
        f"\nExport report for {report.model} version {report.version}\n{report.table()}\n"
    )
    failed = {f: r for f, r in report.failed.items() if f in request.formats}
    if failed:
        for fmt, reason in failed.items():
            log.error("%s was not packaged: %s", fmt, reason)
        log.error("failed formats: %s", ", ".join(failed))
        return EXIT_FORMATS_FAILED
    return EXIT_OK
