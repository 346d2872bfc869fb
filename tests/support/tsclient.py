"""A small test client for a TorchServe started by the fixtures (holds its inference key)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from servegate.torchserve.keys import KeyFile
from servegate.torchserve.settings import TorchServeSettings


@dataclass(frozen=True)
class TorchServeClient:
    settings: TorchServeSettings
    keys: KeyFile

    @property
    def inference_url(self) -> str:
        return self.settings.url("inference")

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys.inference.key}"}

    def predict(self, model: str, **kwargs: Any) -> httpx.Response:
        headers = {**self.auth, **kwargs.pop("headers", {})}
        return httpx.post(
            f"{self.inference_url}/predictions/{model}", headers=headers, timeout=60, **kwargs
        )
