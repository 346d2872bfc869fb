"""Which request bodies coalescing may join, how they join, and how the answer splits back.

A body joins others only when joining and splitting are exact: the joined request is what the
worker would take as one multi-item request (``handlers/service.py`` decodes it to the same
rows, in order) and each part of its answer is, as JSON, the answer that item alone would have
got. Three forms qualify:

- native ``/predictions`` JSON ``{"inputs": [x]}`` (one item, no other field), joined as
  ``{"inputs": [x1, x2, ...]}``. The answer is a list with one entry per item (classification)
  or an object whose every field is such a list (``embeddings``, ``outputs``), plus
  ``truncated`` (indices of the texts the model saw only in part), which is renumbered;
- a bare ``/predictions`` item, for a model whose task reads one (``task``): a ``text/plain``
  text for a text model, raw image bytes for an image model. Joined as the JSON form above
  (images base64-encoded, as the worker takes them there) and split the same way, except that
  a list answer's entry is the item's answer itself (the worker answers a bare item unwrapped);
- OIP v2 infer bodies with one row per input, joined along dim 0 and split back the same way
  (``gateway.oip_rows``).

Anything else (several items already, other fields, bodies the worker would sniff as JSON or
refuse as empty, TorchServe gRPC ``input`` maps) is not joinable: ``single`` returns None and
the request goes alone, unchanged. An answer that does not split as described makes ``split``
return None.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from gateway import oip_rows, raw_json
from gateway.backends import BackendResponse, Payload

Form = Literal["native", "bare", "oip"]
JSON = "application/json"
BOM = b"\xef\xbb\xbf"
TEXT_TASKS: tuple[str, ...] = ("text_embedding", "text_classification")
IMAGE_TASKS: tuple[str, ...] = ("image_classification",)
TRUNCATED = "truncated"  # native: indices of the texts cut to the model's window


@dataclass(frozen=True)
class Single:
    """One request body that may join others of the same ``key``."""

    form: Form
    content_type: str  # of the joined request
    key: Hashable  # the form, the content type and all else the items must share
    obj: dict[str, Any]  # the body as JSON (a bare item: as the JSON form of it)
    size: int  # about what it adds to the joined body, in bytes


def single(payload: Payload, task: Callable[[], str | None]) -> Single | None:
    """The payload as one joinable item, or None when it must go alone. ``task`` (called only
    for a bare body) is the served model's task, None when unknown."""
    if payload.inputs is not None:
        return None
    media = (payload.content_type or "").split(";")[0].strip().lower()
    if media != JSON:
        return _bare(payload.body, media, task)
    obj = _json_object(payload.body)
    inputs = obj.get("inputs") if obj is not None else None
    if obj is None or not isinstance(inputs, list) or not inputs:
        return None
    ctype, size = payload.content_type or JSON, len(payload.body)
    if all(isinstance(t, dict) for t in inputs):
        key = oip_rows.key(obj)
        return None if key is None else Single("oip", ctype, ("oip", ctype, key), obj, size)
    if set(obj) == {"inputs"} and len(inputs) == 1 and not isinstance(inputs[0], dict):
        return Single("native", ctype, ("native", ctype), obj, size)
    return None


def _json_object(body: bytes) -> dict[str, Any] | None:
    if not body.lstrip().startswith(b"{"):
        return None
    try:
        obj = json.loads(body)
    except ValueError:
        return None
    return obj if isinstance(obj, dict) else None


def _bare(body: bytes, media: str, task: Callable[[], str | None]) -> Single | None:
    """A text for a text model or an image for an image model, as the worker reads each: a
    body it would take for JSON (``{`` first) or refuse (empty, a byte order mark) never joins."""
    if body.startswith(BOM):
        return None
    if media == "text/plain":
        try:
            text = body.decode("utf-8")  # as TorchServe decodes text/* for the worker
        except UnicodeDecodeError:
            return None
        value, blank = text, not text.strip() or text.lstrip().startswith("{")
        wanted = TEXT_TASKS
    elif media.startswith("image/") or media in ("application/octet-stream", ""):
        value = base64.b64encode(body).decode("ascii")
        blank = not body.strip() or body.lstrip().startswith(b"{")
        wanted = IMAGE_TASKS
    else:
        return None
    if blank:
        return None
    served = task()
    if served not in wanted:
        return None
    return Single("bare", JSON, ("bare", served), {"inputs": [value]}, len(value))


def join(items: Sequence[Single]) -> Payload:
    """One request carrying every item, in order (items of one key)."""
    if items[0].form == "oip":
        joined = oip_rows.join([item.obj for item in items])
    else:  # native and bare items alike
        joined = {"inputs": [item.obj["inputs"][0] for item in items]}
    return Payload(_dumps(joined), items[0].content_type)


def split(items: Sequence[Single], response: BackendResponse) -> list[BackendResponse] | None:
    """Each item's own answer from the joined request's 200, or None when it does not split."""
    try:
        answer = raw_json.loads(response.body)  # numbers kept as the worker wrote them
    except ValueError:
        return None
    if items[0].form == "oip":
        parts = oip_rows.split(answer, [item.obj.get("id") for item in items])
    else:
        parts = _split_native(answer, len(items), bare=items[0].form == "bare")
    if parts is None:
        return None
    return [
        BackendResponse(response.status, raw_json.dumps(part), response.content_type)
        for part in parts
    ]


def _dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def _split_native(answer: Any, n: int, *, bare: bool) -> list[Any] | None:
    if isinstance(answer, list):
        if len(answer) != n:
            return None
        return list(answer) if bare else [[entry] for entry in answer]
    if not isinstance(answer, dict) or not answer:
        return None
    cut = answer.get(TRUNCATED, [])
    if not oip_rows.indices(cut, n):
        return None
    fields = {k: v for k, v in answer.items() if k != TRUNCATED}
    if not fields or not all(isinstance(v, list) and len(v) == n for v in fields.values()):
        return None
    parts: list[Any] = []
    for i in range(n):
        part = {k: [v[i]] for k, v in fields.items()}
        if i in cut:
            part[TRUNCATED] = [0]
        parts.append(part)
    return parts
