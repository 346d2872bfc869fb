"""OIP v2 tensor data as raw bytes, the form both binary encodings use: gRPC's
``raw_input_contents``/``raw_output_contents`` and the REST binary data extension.

One little-endian, row-major buffer per tensor; a BYTES element is a 4-byte little-endian
length, then its bytes (as Triton and KServe write them). BYTES elements must be UTF-8 text,
since the JSON form the workers speak carries strings. BF16 travels as the upper half of each
FP32 word. Every fault of a client's buffer is a ``BadRequest`` naming the tensor.
"""

from __future__ import annotations

import struct
from typing import Any

import numpy as np

from gateway.errors import BadRequest

NUMPY = {
    "BOOL": "?",
    "INT8": "<i1",
    "INT16": "<i2",
    "INT32": "<i4",
    "INT64": "<i8",
    "UINT8": "<u1",
    "UINT16": "<u2",
    "UINT32": "<u4",
    "UINT64": "<u8",
    "FP16": "<f2",
    "FP32": "<f4",
    "FP64": "<f8",
}
RAW_ONLY = {"FP16", "BF16"}  # no typed gRPC field and no exact JSON number form
_LEN = struct.Struct("<I")


def from_raw(name: str, datatype: str, buffer: bytes) -> list[Any]:
    """The flat values of one tensor's raw buffer."""
    if datatype == "BYTES":
        return texts(name, split_bytes(name, buffer))
    if datatype == "BF16":
        halves = _frombuffer(name, buffer, "<u2")
        return (halves.astype("<u4") << 16).view("<f4").tolist()  # type: ignore[no-any-return]
    dtype = NUMPY.get(datatype)
    if dtype is None:
        raise BadRequest(f"input {name!r}: unknown datatype {datatype!r}")
    return _frombuffer(name, buffer, dtype).tolist()  # type: ignore[no-any-return]


def to_raw(datatype: str, data: list[Any]) -> bytes:
    """One tensor's flat values as its raw buffer (``ValueError`` for a value that does not fit
    the datatype: that is the worker's fault, not the client's)."""
    if datatype == "BYTES":
        return join_bytes([utf8(v) for v in data])
    if datatype == "BF16":
        words = np.asarray(data, dtype="<f4").view("<u4") >> 16
        return bytes(words.astype("<u2").tobytes())
    return bytes(np.asarray(data, dtype=NUMPY[datatype]).tobytes())


def _frombuffer(name: str, buffer: bytes, dtype: str) -> Any:
    if len(buffer) % np.dtype(dtype).itemsize:
        raise BadRequest(f"input {name!r}: raw content is not a whole number of elements")
    return np.frombuffer(buffer, dtype=dtype)


def split_bytes(name: str, buffer: bytes) -> list[bytes]:
    """Elements of a raw BYTES tensor (each a 4-byte little-endian length, then the bytes)."""
    out, pos = [], 0
    while pos < len(buffer):
        if pos + 4 > len(buffer):
            raise BadRequest(f"input {name!r}: truncated BYTES element length")
        (size,) = _LEN.unpack_from(buffer, pos)
        pos += 4
        if pos + size > len(buffer):
            raise BadRequest(f"input {name!r}: BYTES element overruns the raw content")
        out.append(buffer[pos : pos + size])
        pos += size
    return out


def join_bytes(items: list[bytes]) -> bytes:
    return b"".join(_LEN.pack(len(item)) + item for item in items)


def texts(name: str, items: Any) -> list[str]:
    try:
        return [bytes(item).decode() for item in items]
    except UnicodeDecodeError:
        raise BadRequest(f"input {name!r}: BYTES elements must be UTF-8 text") from None


def utf8(value: Any) -> bytes:
    return value.encode() if isinstance(value, str) else bytes(value)


def flat(data: Any) -> list[Any]:
    """Row-major values of JSON data given flat or nested."""
    if data and isinstance(data[0], list):
        return [v for row in data for v in flat(row)]
    return list(data)
