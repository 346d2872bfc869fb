"""Build one TorchServe archive per verified format with torch-model-archiver.

Each ``.mar`` holds the servegate handler, the artifact(s), the task's extra files, a
``model-config.yaml``, TorchServe's ``MAR-INF/MANIFEST.json`` and ``servegate.json``: the
manifest with the SHA-256 of every other file. torch-model-archiver lays the files out in a
directory (its ``no-archive`` format); the manifest is sealed over all of them, and the
directory is zipped into OUT/NAME.mar, replacing an earlier archive in one rename. The
archive's own digest is then pinned outside the store (``servegate.pins``).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from model_archiver.model_archiver import ModelArchiver
from model_archiver.model_archiver_config import ModelArchiverConfig

from export.spec import OIP_DATATYPE, ModelSpec, TensorSpec
from handlers import servegate_handler
from handlers.manifest import (
    BYTECODE_DIR,
    DEFAULT_VERSION,
    MANIFEST_NAME,
    Format,
    Manifest,
    Precision,
    Task,
    TensorInfo,
    archive_file_name,
    archive_files,
    sha256_file,
)
from servegate import pins


def archive_name(spec: ModelSpec, fmt: str) -> str:
    """The TorchServe model name of ``spec`` in format ``fmt`` (the same for every version)."""
    return f"{spec.name}_{fmt}"


def archive_path(out: Path, spec: ModelSpec, fmt: str, version: str) -> Path:
    return out / archive_file_name(archive_name(spec, fmt), version)


def build_archive(
    spec: ModelSpec,
    fmt: Format,
    artifacts: list[Path],
    stage: Path,
    out: Path,
    *,
    version: str = DEFAULT_VERSION,
    precision: Precision = "fp32",
    min_cosine: float | None = None,
) -> Path:
    """Package, seal and pin OUT/NAME_<fmt>.mar (``NAME_<fmt>.v<version>.mar`` for a version
    other than 1.0); return its path."""
    stage.mkdir(parents=True, exist_ok=True)
    extras = [*artifacts[1:]]
    for name, source in spec.extra_files(stage).items():
        target = stage / name
        if source.resolve() != target.resolve():
            shutil.copyfile(source, target)
        extras.append(target)
    contents = Contents(
        model=spec.name,
        task=spec.task,
        task_config=spec.task_config,
        inputs=tuple(tensor_info(t) for t in spec.inputs),
        outputs=tuple(tensor_info(t) for t in spec.outputs),
        model_config=_model_config(spec),
        precision=precision,
        min_cosine=min_cosine,
    )
    return assemble(contents, fmt, [artifacts[0], *extras], stage, out, version=version)


@dataclass(frozen=True)
class Contents:
    """What an archive says about its model, whatever exported it."""

    model: str
    task: Task
    task_config: dict[str, Any]
    inputs: tuple[TensorInfo, ...]
    outputs: tuple[TensorInfo, ...]
    model_config: dict[str, Any]  # TorchServe's model-config.yaml
    precision: Precision = "fp32"
    min_cosine: float | None = None  # to fp32 eager, where the format's numbers differ by design


def assemble(
    contents: Contents,
    fmt: Format,
    files: list[Path],
    stage: Path,
    out: Path,
    *,
    version: str = DEFAULT_VERSION,
) -> Path:
    """Lay out ``files`` (the first is the artifact) with the handler and ``model-config.yaml``,
    seal them in the manifest, zip OUT/NAME_<fmt>[.v<version>].mar and pin it."""
    stage.mkdir(parents=True, exist_ok=True)
    config_file = stage / "model-config.yaml"
    config_file.write_text(yaml.safe_dump(contents.model_config, sort_keys=False))
    handler = Path(servegate_handler.__file__)
    laid_out = stage / "laid-out"
    shutil.rmtree(laid_out, ignore_errors=True)
    laid_out.mkdir()
    name = f"{contents.model}_{fmt}"
    with _private_tempdir(stage / "tmp"):
        ModelArchiver.generate_model_archive(
            ModelArchiverConfig(
                model_name=name,
                handler=str(handler),
                version=version,
                serialized_file=str(files[0]),
                extra_files=",".join(str(p) for p in files[1:]),
                export_path=str(laid_out),
                config_file=str(config_file),
                archive_format="no-archive",
                force=True,
            )
        )
    laid = laid_out / name
    manifest = Manifest(
        model=contents.model,
        format=fmt,
        version=version,
        task=contents.task,
        artifact=files[0].name,
        sha256=seal(laid),
        task_config=contents.task_config,
        inputs=contents.inputs,
        outputs=contents.outputs,
        precision=contents.precision,
        min_cosine=contents.min_cosine,
    )
    manifest.write(laid)
    mar = zip_archive(laid, out / archive_file_name(name, version))
    shutil.rmtree(laid_out, ignore_errors=True)
    pins.record(pins.pin_file_for(out), mar, model=contents.model, fmt=fmt, version=version)
    return mar


def seal(files: Path) -> dict[str, str]:
    """The digest of every file of a laid-out archive (the manifest's ``sha256``)."""
    if (files / BYTECODE_DIR).exists() or (files / MANIFEST_NAME).exists():
        raise ValueError(f"{files} already holds {BYTECODE_DIR} or {MANIFEST_NAME}")
    return {name: sha256_file(files / name) for name in archive_files(files)}


def zip_archive(files: Path, mar: Path) -> Path:
    """Zip a laid-out archive into ``mar``, replacing an earlier one in one rename (a reader
    never sees half an archive)."""
    partial = mar.with_name(f".{mar.name}.partial")
    with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as z:
        for name in [*archive_files(files), MANIFEST_NAME]:
            z.write(files / name, name)
    os.replace(partial, mar)
    return mar


@contextmanager
def _private_tempdir(path: Path) -> Iterator[None]:
    """torch-model-archiver stages files in ``$TMPDIR/<model name>``: two exports of one model
    (from any two directories) would mix their files there. Give it a directory of its own."""
    path.mkdir(parents=True, exist_ok=True)
    saved = tempfile.tempdir
    tempfile.tempdir = str(path)
    try:
        yield
    finally:
        tempfile.tempdir = saved
        shutil.rmtree(path, ignore_errors=True)


def _model_config(spec: ModelSpec) -> dict[str, Any]:
    serving = spec.serving
    return {
        "minWorkers": serving.min_workers,
        "maxWorkers": serving.max_workers,
        "batchSize": serving.batch_size,
        "maxBatchDelay": serving.max_batch_delay_ms,
        "responseTimeout": serving.response_timeout_s,
    }


def tensor_info(tensor: TensorSpec) -> TensorInfo:
    return TensorInfo(
        name=tensor.name,
        datatype=OIP_DATATYPE[tensor.dtype],
        shape=tuple(d if isinstance(d, int) else -1 for d in tensor.shape),
    )
