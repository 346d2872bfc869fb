"""Build one TorchServe archive per verified format with torch-model-archiver.

Each ``.mar`` holds the servegate handler, the artifact(s), the task's extra files, a
``model-config.yaml`` and ``servegate.json`` (the manifest with every file's SHA-256).
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import yaml
from model_archiver.model_archiver import ModelArchiver
from model_archiver.model_archiver_config import ModelArchiverConfig

from export.spec import OIP_DATATYPE, ModelSpec, TensorSpec
from handlers import servegate_handler
from handlers.manifest import Format, Manifest, TensorInfo, sha256_file

ARCHIVE_VERSION = "1.0"


def archive_name(spec: ModelSpec, fmt: str) -> str:
    return f"{spec.name}_{fmt}"


def build_archive(
    spec: ModelSpec, fmt: Format, artifacts: list[Path], stage: Path, out: Path
) -> Path:
    stage.mkdir(parents=True, exist_ok=True)
    extras = [*artifacts[1:]]
    for name, source in spec.extra_files(stage).items():
        target = stage / name
        if source.resolve() != target.resolve():
            shutil.copyfile(source, target)
        extras.append(target)
    manifest = Manifest(
        model=spec.name,
        format=fmt,
        task=spec.task,
        artifact=artifacts[0].name,
        sha256={p.name: sha256_file(p) for p in (artifacts[0], *extras)},
        task_config=spec.task_config,
        inputs=tuple(tensor_info(t) for t in spec.inputs),
        outputs=tuple(tensor_info(t) for t in spec.outputs),
    )
    extras.append(manifest.write(stage))
    config_file = stage / "model-config.yaml"
    config_file.write_text(yaml.safe_dump(_model_config(spec), sort_keys=False))
    handler = Path(servegate_handler.__file__)
    with _private_tempdir(stage / "tmp"):
        ModelArchiver.generate_model_archive(
            ModelArchiverConfig(
                model_name=archive_name(spec, fmt),
                handler=str(handler),
                version=ARCHIVE_VERSION,
                serialized_file=str(artifacts[0]),
                extra_files=",".join(str(p) for p in extras),
                export_path=str(out),
                config_file=str(config_file),
                force=True,
            )
        )
    return out / f"{archive_name(spec, fmt)}.mar"


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


def _model_config(spec: ModelSpec) -> dict[str, int]:
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
