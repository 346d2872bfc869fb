"""What a causal-LM export asks of its archives: limits per request and placement."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class GenerationOptions(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    # Per request, enforced by the worker with a 400 (handlers.generation.request.Limits);
    # None: from the model's context window (half for the prompt, the rest for new tokens).
    max_prompt_tokens: int | None = Field(default=None, ge=1)
    max_new_tokens: int | None = Field(default=None, ge=1)
    max_prompts: int = Field(default=8, ge=1, le=64)
    # Placement (handlers.generation.placement.Placement).
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    device_map: Literal["auto", "balanced"] = "auto"
    max_memory: dict[str, str] = Field(default_factory=dict)
    # deepspeed_tp: ranks torchrun starts; DeepSpeed's kernel injection is refused.
    tp_size: int = Field(default=2, ge=2, le=16)
    kernel_inject: bool = False
    response_timeout_s: int = Field(default=300, ge=1)
