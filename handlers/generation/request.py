"""A text-generation request, parsed and checked against the archive's limits.

Native body (the shape of Hugging Face's text-generation APIs)::

    {"inputs": "prompt" | ["prompt", ...],
     "parameters": {"max_new_tokens": 32, "temperature": 0.7, "top_p": 0.9,
                    "do_sample": true, "seed": 1, "stop": ["\\n"]},
     "stream": false}

OIP v2: one ``BYTES`` input (any name: the model has one) holding the prompts, the same
``parameters`` as the request's ``parameters`` (``stream`` among them). Unknown fields are
refused by name; so is any value outside the archive's limits (``max_prompt_tokens``,
``max_new_tokens``, ``max_prompts``): a 400, never a silent cut.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, ValidationError

from handlers.errors import BadRequest
from handlers.oip import OipTensor, is_oip, parse
from handlers.tasks.body import json_object

MAX_STOP_STRINGS = 4
MAX_STOP_CHARS = 64
DEFAULT_NEW_TOKENS = 32
M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class Limits:
    """What one request may ask of this archive (its ``task_config``)."""

    max_prompt_tokens: int
    max_new_tokens: int
    max_prompts: int = 8

    @classmethod
    def of(cls, task_config: dict[str, Any]) -> Limits:
        return cls(
            max_prompt_tokens=int(task_config["max_prompt_tokens"]),
            max_new_tokens=int(task_config["max_new_tokens"]),
            max_prompts=int(task_config.get("max_prompts", 8)),
        )


class Parameters(BaseModel):
    """Sampling settings; greedy decoding unless ``do_sample`` is true."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # None: DEFAULT_NEW_TOKENS, or the archive's limit when that is lower (``parse_request``).
    max_new_tokens: StrictInt | None = Field(default=None, ge=1)
    temperature: float = Field(default=1.0, gt=0.0, le=100.0)
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    do_sample: StrictBool = False
    seed: StrictInt | None = Field(default=None, ge=0, lt=2**63)
    stop: list[str] = Field(default_factory=list, max_length=MAX_STOP_STRINGS)
    stream: StrictBool = False  # OIP carries it among the parameters


class NativeBody(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    inputs: str | list[str]
    parameters: Parameters = Field(default_factory=Parameters)
    stream: StrictBool = False


@dataclass(frozen=True)
class GenerationRequest:
    prompts: list[str]
    params: Parameters
    stream: bool
    single: bool  # one bare prompt in: one answer object out, not a list
    oip_id: str | None  # set for an OIP request: the answer is an OIP response
    is_oip: bool


def parse_request(body: object, limits: Limits) -> GenerationRequest:
    obj = json_object(body)
    if obj is None:
        raise BadRequest(
            'expected a JSON object {"inputs": "prompt" | ["prompt", ...], "parameters": {...}}'
        )
    if is_oip(obj):
        request = _from_oip(obj)
    else:
        native = _validated(NativeBody, obj)
        if native.parameters.stream:
            raise BadRequest('"stream" belongs beside "inputs", not in "parameters"')
        single = isinstance(native.inputs, str)
        prompts = [native.inputs] if isinstance(native.inputs, str) else list(native.inputs)
        request = GenerationRequest(prompts, native.parameters, native.stream, single, None, False)
    _check_limits(request, limits)
    if request.params.max_new_tokens is None:
        default = min(DEFAULT_NEW_TOKENS, limits.max_new_tokens)
        params = request.params.model_copy(update={"max_new_tokens": default})
        request = dataclasses.replace(request, params=params)
    return request


def _from_oip(obj: dict[str, Any]) -> GenerationRequest:
    oip_request = parse(obj)
    tensor = _one_text_input(oip_request.inputs)
    params = _validated(Parameters, oip_request.parameters or {}, where="parameters")
    prompts = [_text(value) for value in tensor.data]
    return GenerationRequest(prompts, params, params.stream, False, oip_request.id, True)


def _one_text_input(inputs: Sequence[OipTensor]) -> OipTensor:
    if len(inputs) != 1:
        raise BadRequest(f"expected one BYTES input holding the prompts, got {len(inputs)}")
    tensor = inputs[0]
    if tensor.datatype != "BYTES":
        raise BadRequest(
            f"input {tensor.name!r} must be BYTES (the prompts), not {tensor.datatype}"
        )
    return tensor


def _text(value: object) -> str:
    if not isinstance(value, str):
        raise BadRequest(f"every prompt must be a string, got {type(value).__name__}")
    return value


def _check_limits(request: GenerationRequest, limits: Limits) -> None:
    if not request.prompts:
        raise BadRequest("no prompt: inputs is empty")
    if len(request.prompts) > limits.max_prompts:
        raise BadRequest(
            f"{len(request.prompts)} prompts in one request; this model takes at most "
            f"{limits.max_prompts}"
        )
    if request.stream and len(request.prompts) > 1:
        raise BadRequest("a streamed request takes one prompt; send one request per prompt")
    for index, prompt in enumerate(request.prompts):
        if not prompt.strip():
            raise BadRequest(f"prompt {index} is empty")
    wanted = request.params.max_new_tokens
    if wanted is not None and wanted > limits.max_new_tokens:
        raise BadRequest(
            f"max_new_tokens {wanted} is over this model's limit of {limits.max_new_tokens}"
        )
    for stop in request.params.stop:
        if not stop or len(stop) > MAX_STOP_CHARS:
            raise BadRequest(f"each stop string must have 1 to {MAX_STOP_CHARS} characters")


def _validated(model: type[M], obj: object, where: str = "") -> M:
    try:
        return model.model_validate(obj)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"])
        place = ".".join(p for p in (where, loc) if p) or "body"
        raise BadRequest(f"invalid generation request at {place}: {first['msg']}") from None
