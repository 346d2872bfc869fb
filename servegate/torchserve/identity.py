"""Which TorchServe model and version an archive registers as: the ``model`` entry of its
``MAR-INF/MANIFEST.json`` (written by torch-model-archiver), read without extracting it."""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ServedAs:
    model: str
    version: str

    @property
    def path(self) -> str:
        """The model's path in TorchServe's APIs: ``/models/<path>``, ``/predictions/<path>``."""
        return f"{self.model}/{self.version}"


def served_as(mar: Path) -> ServedAs:
    """``ValueError`` when the archive is not a TorchServe archive."""
    try:
        with zipfile.ZipFile(mar) as archive:
            model = json.loads(archive.read("MAR-INF/MANIFEST.json"))["model"]
        return ServedAs(str(model["modelName"]), str(model["modelVersion"]))
    except (OSError, KeyError, TypeError, zipfile.BadZipFile, json.JSONDecodeError) as exc:
        raise ValueError(f"{mar.name} is not a TorchServe archive ({exc})") from None
