"""Moving and building archives in tests the way servegate does: an archive goes with its pin.

``copy_archives`` is what a user does when moving archives to another store: copy the files and
their pins (the pin file beside the source store vouches for them). ``repackage`` builds a test
archive (another handler, injected files) through the export's own seal, zip and pin steps, as
a trusted exporter would."""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

from model_archiver.model_archiver import ModelArchiver
from model_archiver.model_archiver_config import ModelArchiverConfig

from export.package import _private_tempdir, seal, zip_archive
from handlers.manifest import MANIFEST_NAME, Manifest, archive_file_name, sha256_file
from servegate import pins


def copy_archives(source_store: Path, store: Path, *names: str) -> None:
    """Copy the named archives (all, when none is named) and their pins into ``store``."""
    store.mkdir(parents=True, exist_ok=True)
    source_pins = pins.read(pins.pin_file_for(source_store)).archives
    for archive in names or tuple(source_pins):
        pin = source_pins[archive]
        shutil.copy2(source_store / archive, store / archive)
        assert sha256_file(store / archive) == pin.sha256, f"{archive} differs from its pin"
        pins.record(pins.pin_file_for(store), store / archive, model=pin.model, fmt=pin.format)


def repackage(
    source: Path,
    store: Path,
    name: str,
    *,
    handler: Path,
    extra: dict[str, str],
    model_config: str,
    version: str = "1.0",
) -> Path:
    """``source``'s artifact and task files as archive ``name`` (at ``version``) in ``store``
    with another ``handler``, the ``extra`` files (name -> text) and ``model_config``; sealed
    and pinned."""
    stage = store / f"stage-{name}"
    shutil.rmtree(stage, ignore_errors=True)
    with zipfile.ZipFile(source) as mar:
        mar.extractall(stage / "source")
    manifest = Manifest.read(stage / "source")
    files = stage / "source"
    # The source's task files; what the archiver writes anew (its MAR-INF/, the handler, the
    # model config) and the artifact (passed on its own) are left out.
    packaged_anew = {manifest.artifact, "servegate_handler.py", "model-config.yaml"}
    extras = [files / f for f in manifest.sha256 if "/" not in f and f not in packaged_anew]
    for filename, text in extra.items():
        (files / filename).write_text(text)
        extras.append(files / filename)
    config = stage / "model-config.yaml"
    config.write_text(model_config)
    with _private_tempdir(stage / "tmp"):
        ModelArchiver.generate_model_archive(
            ModelArchiverConfig(
                model_name=name,
                handler=str(handler),
                version=version,
                serialized_file=str(files / manifest.artifact),
                extra_files=",".join(str(p) for p in extras),
                export_path=str(stage),
                config_file=str(config),
                archive_format="no-archive",
                force=True,
            )
        )
    laid_out = stage / name
    manifest.model_copy(update={"sha256": seal(laid_out), "version": version}).write(laid_out)
    assert (laid_out / MANIFEST_NAME).is_file()
    mar = zip_archive(laid_out, store / archive_file_name(name, version))
    shutil.rmtree(stage)
    pins.record(
        pins.pin_file_for(store), mar, model=manifest.model, fmt=manifest.format, version=version
    )
    return mar
