"""The rows of ``bench.gpu_targets``: what each sends, where, and how its answer is read.

Every model row goes through the gateway, as issue 20's targets are stated; only ``ceiling``
goes straight to TorchServe. A client reads each answer as a real client would (``decode``):
native answers are parsed as JSON; ``minilm_xN_binary`` asks for OIP v2 binary outputs
(``parameters.binary_data_output``), so the client views the 384 floats of each embedding in
place instead of parsing them from text. The workers answer JSON either way: the gateway turns
an OIP answer into binary tensors (``gateway/rest/binary.py``), while a native answer passes
through it unparsed.
"""

from __future__ import annotations

import argparse
import base64
import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any, Literal

from bench.loadgen import Decode, read_answer

Protocol = Literal["native", "oip_binary"]
TEXT_NAME = "text"  # the OIP input of a text model (gateway/backends/archive.py TEXT_INPUT)
HIDDEN = 384  # MiniLM's embedding width


@dataclass(frozen=True)
class Row:
    name: str
    model: str  # the route: noop, resnet50, minilm
    items: int  # per request
    concurrency: int
    direct: bool = False  # straight to TorchServe, not through the gateway
    coalesced: bool = False
    protocol: Protocol = "native"

    @property
    def warmup_factor(self) -> float:
        """Joined and multi-item requests reach the workers in many more batch sizes (up to
        TorchServe's batch x the items per request), each recording its own CUDA graph on
        first sight: they warm up twice as long."""
        return 2.0 if self.coalesced or self.items > 1 else 1.0

    @property
    def decode(self) -> Decode:
        return "oip_binary" if self.protocol == "oip_binary" else "json"

    @property
    def path(self) -> str:
        if self.direct:
            return "TorchServe direct"
        how = "OIP v2, binary outputs" if self.protocol == "oip_binary" else "native JSON"
        return f"gateway{', coalescing' if self.coalesced else ''}, {how}"


def all_rows(args: argparse.Namespace) -> list[Row]:
    """Every row in the order they run: the most wanted first, extras last (a run cut short by
    its time budget loses the extras)."""
    rows = [Row("ceiling", "noop", 1, args.ceiling_concurrency, direct=True)]
    for model in args.models:
        rows.append(Row(f"{model}_x1", model, 1, args.concurrency))
        rows.append(Row(f"{model}_x1_coalesced", model, 1, args.concurrency, coalesced=True))
    n, multi = args.items, args.concurrency_multi
    for model in args.models:
        protocol: Protocol = "oip_binary" if model == "minilm" else "native"
        suffix = "_binary" if model == "minilm" else ""
        rows.append(Row(f"{model}_x{n}{suffix}", model, n, multi, protocol=protocol))
    rows.append(Row("ceiling_gateway", "noop", 1, args.concurrency))
    if "minilm" in args.models:
        rows.append(Row(f"minilm_x{n}_json", "minilm", n, multi))
    return [r for r in rows if not args.rows or r.name in args.rows]


class Bodies:
    """Request bodies, built once: the served benchmarks' JPEG and 128-token text."""

    def __init__(self) -> None:
        self._item: dict[str, Any] = {}

    def item(self, model: str) -> Any:
        if model not in self._item:
            from bench.gpu_served import jpeg, text  # torch and the tokenizer: main process only

            if model == "noop":
                self._item[model] = [0.0]
            elif model == "minilm":
                self._item[model] = text()
            else:
                self._item[model] = base64.b64encode(jpeg()).decode()
        return self._item[model]

    def body(self, row: Row) -> bytes:
        items = [self.item(row.model)] * row.items
        if row.protocol == "native":
            return json.dumps({"inputs": items}).encode()
        tensor = {"name": TEXT_NAME, "shape": [row.items], "datatype": "BYTES", "data": items}
        return json.dumps({"inputs": [tensor], "parameters": {"binary_data_output": True}}).encode()


def route_path(row: Row) -> str:
    route = row.model + ("_coalesced" if row.coalesced else "")
    if row.protocol == "oip_binary":
        return f"/v2/models/{route}/infer"
    return f"/predictions/{route}"


def check_answer(url: str, body: bytes, headers: dict[str, str], row: Row) -> str:
    """Send one request and check its answer carries ``row.items`` items; what it held."""
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=120) as resp:
            answer = resp.read()
            length = resp.headers.get("Inference-Header-Content-Length")
    except urllib.error.HTTPError as exc:
        raise RuntimeError(f"{exc.code} from {url}: {exc.read()[:500]!r}") from None
    read_answer(row.decode, answer, length)
    if row.model == "noop":
        return f"{len(answer)} bytes"
    if row.protocol == "oip_binary":
        assert length is not None
        [out] = json.loads(answer[: int(length)])["outputs"]
        size = out["parameters"]["binary_data_size"]
        if out["shape"] != [row.items, HIDDEN] or size != row.items * HIDDEN * 4:
            raise RuntimeError(f"expected {row.items}x{HIDDEN} FP32, got {out}")
        return f"{out['name']} {out['datatype']} {out['shape']} as {size} binary bytes"
    obj = json.loads(answer)
    found = obj["embeddings"] if isinstance(obj, dict) else obj
    if len(found) != row.items:
        raise RuntimeError(f"expected {row.items} items, got {len(found)}: {answer[:300]!r}")
    return f"{len(found)} item(s), {len(answer)} bytes of JSON"
