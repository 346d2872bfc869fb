"""What ``servegate export`` passes to a model source besides MODEL (``--ckpt`` and friends)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from export.spec import Task

NAME = re.compile(r"[^a-z0-9_]+")


class SourceOptions(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    ckpt: Path | None = Field(default=None, description="a Lightning checkpoint (CKPT=)")
    init_kwargs: dict[str, Any] = Field(
        default_factory=dict, description="LightningModule __init__ arguments the ckpt lacks"
    )
    allow_globals: tuple[str, ...] = Field(
        default=(), description="pkg.mod.Name classes weights-only loading may build"
    )
    hub_kwargs: dict[str, Any] = Field(default_factory=dict, description="entrypoint kwargs")
    trust_pickle: bool = Field(default=False, description="allow unpickling (fast.ai exports)")
    task: Task | None = Field(default=None, description="override the task a source detects")
    name: str | None = Field(
        default=None, pattern=r"^[a-z][a-z0-9_]*$", max_length=48, description="archive name"
    )


def archive_name(options: SourceOptions, default: str) -> str:
    """``--name``, else ``default`` made a valid archive name (``[a-z][a-z0-9_]*``)."""
    if options.name:
        return options.name
    name = NAME.sub("_", re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", default).lower()).strip("_")
    if not name or not name[0].isalpha():
        name = f"model_{name}"
    return name[:48]
