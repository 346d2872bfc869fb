"""TorchServe's ``key_file.json``: the tokens its token authorization hands out at start."""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field


class ApiKey(BaseModel):
    model_config = ConfigDict(frozen=True, populate_by_name=True)

    key: str
    expiration_time: str | None = Field(default=None, alias="expiration time")


class KeyFile(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    management: ApiKey
    inference: ApiKey

    @classmethod
    def read(cls, path: Path) -> KeyFile:
        return cls.model_validate(json.loads(path.read_text()))
