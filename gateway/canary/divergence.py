"""How far a canary's answer is from the stable answer to the same request.

Both answers are the JSON bodies the backends returned (TorchServe-native or OIP v2), read
without any model knowledge:

- ``cosine``:  the lowest cosine similarity over the answer's rows (embeddings, tensors);
- ``max_abs``: the largest absolute difference of any element (tensors);
- ``top1``:    the share of rows whose top-1 label agrees (classification);
- ``tokens``:  generated text (``generated_text``, a list of them, or OIP ``text_output``):
  per prompt, the share of the longer answer's words (whitespace-separated, no tokenizer in
  the gateway) that both answers share, in order, before their first difference; the lowest
  over the prompts. Greedy decoding makes it 1.0 for equal models: once two answers differ at
  a token, what follows is conditioned on different text, so only the common prefix counts.
  A streamed answer (JSON lines) is read from its last line, the whole answer.

``Mismatch`` means the answers cannot be compared as the same thing (other shapes, other kinds):
a canary that answers differently shaped outputs is divergent, not incomparable. ``None`` from
``divergence`` means there is nothing to compare (an answer was an error or not JSON); those
are counted by the error metrics already.
"""

from __future__ import annotations

import json
import math
from typing import Any

from gateway.config import CompareMeasure

Rows = list[list[float]]
Labels = list[str]


class Mismatch(Exception):
    """The two answers have different shapes or kinds."""


def divergence(stable: bytes, canary: bytes, measure: CompareMeasure) -> float | None:
    try:
        a, b = json.loads(_last_line(stable)), json.loads(_last_line(canary))
    except ValueError:
        return None
    if measure == "tokens":
        return _common_prefix(_texts(a), _texts(b))
    if measure == "top1":
        return _agreement(_labels(a), _labels(b))
    rows_a, rows_b = _rows(a), _rows(b)
    if len(rows_a) != len(rows_b) or any(
        len(x) != len(y) for x, y in zip(rows_a, rows_b, strict=True)
    ):
        raise Mismatch(f"shapes differ: {_shape(rows_a)} vs {_shape(rows_b)}")
    if not rows_a:
        raise Mismatch("empty answer")
    if measure == "cosine":
        return min(_cosine(x, y) for x, y in zip(rows_a, rows_b, strict=True))
    return max(
        abs(p - q) for x, y in zip(rows_a, rows_b, strict=True) for p, q in zip(x, y, strict=True)
    )


def _last_line(body: bytes) -> bytes:
    """The whole answer of a streamed (JSON lines) body; any other body unchanged."""
    stripped = body.strip()
    if b"\n" not in stripped:
        return body
    return stripped.rsplit(b"\n", 1)[1]


def _texts(answer: Any) -> list[str]:
    """The generated text per prompt: native ``{"generated_text"}`` (or a list of them) or an
    OIP answer's BYTES ``text_output``."""
    if isinstance(answer, dict) and isinstance(answer.get("outputs"), list):
        by_name = {o.get("name"): o for o in answer["outputs"] if isinstance(o, dict)}
        data = (by_name.get("text_output") or {}).get("data")
        if isinstance(data, list) and all(isinstance(t, str) for t in data):
            return list(data)
        raise Mismatch("no text_output tensor")
    answers = answer if isinstance(answer, list) else [answer]
    texts = [a.get("generated_text") if isinstance(a, dict) else None for a in answers]
    if not texts or not all(isinstance(t, str) for t in texts):
        raise Mismatch("not a text-generation answer")
    return [str(t) for t in texts]


def _common_prefix(a: list[str], b: list[str]) -> float:
    if len(a) != len(b):
        raise Mismatch(f"{len(a)} answers vs {len(b)}")
    shares = []
    for x, y in zip(a, b, strict=True):
        wx, wy = x.split(), y.split()
        longest = max(len(wx), len(wy))
        shares.append(1.0 if longest == 0 else _shared(wx, wy) / longest)
    return min(shares)


def _shared(a: list[str], b: list[str]) -> int:
    """How many words ``a`` and ``b`` share from the start."""
    n = min(len(a), len(b))
    return next((i for i in range(n) if a[i] != b[i]), n)


def _rows(answer: Any) -> Rows:
    """Numeric rows of a native ``{"outputs"|"embeddings": [...]}`` or an OIP answer."""
    if isinstance(answer, dict):
        outputs = answer.get("outputs", answer.get("embeddings"))
        if isinstance(outputs, list) and outputs and isinstance(outputs[0], dict):
            return _oip_rows(outputs)
        if isinstance(outputs, list):
            return _numeric_rows(outputs)
    raise Mismatch("not a tensor answer")


def _oip_rows(outputs: list[Any]) -> Rows:
    tensor = next((o for o in outputs if o.get("datatype") != "BYTES"), None)
    if tensor is None:
        raise Mismatch("no numeric output tensor")
    data, shape = tensor.get("data"), tensor.get("shape")
    if not isinstance(data, list) or not isinstance(shape, list) or not shape:
        raise Mismatch("malformed OIP output")
    rows = int(shape[0]) or 1
    width = len(data) // rows
    if width * rows != len(data):
        raise Mismatch("OIP data does not fill its shape")
    flat = _floats(data)
    return [flat[i * width : (i + 1) * width] for i in range(rows)]


def _numeric_rows(values: list[Any]) -> Rows:
    if values and not isinstance(values[0], list):
        return [_floats(values)]
    return [_floats(_flatten(row)) for row in values]


def _flatten(value: Any) -> list[Any]:
    if isinstance(value, list):
        return [x for item in value for x in _flatten(item)]
    return [value]


def _floats(values: list[Any]) -> list[float]:
    try:
        return [float(v) for v in values]
    except (TypeError, ValueError):
        raise Mismatch("non-numeric values") from None


def _labels(answer: Any) -> Labels:
    """Top-1 label per row: native ``[{"label", "probability"}, ...]`` (one list per row for a
    batch) or OIP ``label``/``probability`` tensors of shape ``[rows, k]``."""
    if isinstance(answer, dict) and isinstance(answer.get("outputs"), list):
        by_name = {o.get("name"): o for o in answer["outputs"] if isinstance(o, dict)}
        label = by_name.get("label")
        if label is None or not isinstance(label.get("data"), list) or not label.get("shape"):
            raise Mismatch("no label output")
        rows = int(label["shape"][0]) or 1
        width = len(label["data"]) // rows
        return [str(label["data"][i * width]) for i in range(rows)]
    if isinstance(answer, list) and answer and isinstance(answer[0], dict):
        answer = [answer]
    if not isinstance(answer, list) or not answer:
        raise Mismatch("not a classification answer")
    try:
        return [str(max(row, key=lambda c: float(c["probability"]))["label"]) for row in answer]
    except (TypeError, KeyError, ValueError):
        raise Mismatch("not a classification answer") from None


def _agreement(a: Labels, b: Labels) -> float:
    if len(a) != len(b):
        raise Mismatch(f"{len(a)} rows vs {len(b)}")
    return sum(x == y for x, y in zip(a, b, strict=True)) / len(a)


def _cosine(x: list[float], y: list[float]) -> float:
    dot = sum(p * q for p, q in zip(x, y, strict=True))
    norm = math.sqrt(sum(p * p for p in x)) * math.sqrt(sum(q * q for q in y))
    if norm == 0.0:
        return 1.0 if x == y else 0.0
    return max(-1.0, min(1.0, dot / norm))


def _shape(rows: Rows) -> str:
    return f"{len(rows)}x{len(rows[0]) if rows else 0}"
