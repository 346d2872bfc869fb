"""Hostile bodies (issue 14, items 1-2): one malformed request never takes down its batch, and
a client's mistake is the client's 4xx in its protocol's shape, never a 5xx or a misread 200."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from tests.gateway.support import run_gateway
from tests.gateway.test_errors import oip_shape, ts_shape
from tests.support.tsclient import TorchServeClient

pytestmark = pytest.mark.integration

DIGITS = b'{"inputs": [' + b"9" * 5000 + b"]}"
NESTING = b'{"inputs": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
BOM = b'\xef\xbb\xbf{"inputs": ["hello"]}'
JSON = {"Content-Type": "application/json"}
VALID = b'{"inputs": ["a sentence to embed"]}'


def batch_rounds(url: str, rounds: int, headers: dict[str, str]) -> tuple[list[int], list[int]]:
    """``rounds`` times, 1 hostile + 7 valid requests at once (the model batches up to 8):
    the statuses of the valid ones and of the hostile ones."""
    hostile = (DIGITS, NESTING, BOM)

    async def main() -> tuple[list[int], list[int]]:
        valid_codes: list[int] = []
        hostile_codes: list[int] = []
        async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=8)) as c:
            for r in range(rounds):
                sent = [hostile[r % 3]] + [VALID] * 7
                answers = await asyncio.gather(
                    *(c.post(url, content=b, headers={**JSON, **headers}) for b in sent)
                )
                hostile_codes.append(answers[0].status_code)
                valid_codes += [a.status_code for a in answers[1:]]
        return valid_codes, hostile_codes

    return asyncio.run(main())


def test_one_hostile_request_does_not_poison_its_batch(
    config_path: Path, torchserve: TorchServeClient
) -> None:
    # Straight at TorchServe: the worker refuses the hostile member alone.
    direct = f"{torchserve.inference_url}/predictions/minilm_torchscript"
    valid, hostile = batch_rounds(direct, 50, torchserve.auth)
    print(f"\ndirect: valid {valid.count(200)}/350 200, hostile {hostile.count(400)}/50 400")
    assert (valid.count(200), hostile.count(400)) == (350, 50), (valid, hostile)
    # Through the gateway: refused before TorchServe, in TorchServe's error shape.
    with run_gateway(config_path) as gw:
        valid, hostile = batch_rounds(f"{gw.url}/predictions/minilm", 50, {})
        print(f"gateway: valid {valid.count(200)}/350 200, hostile {hostile.count(400)}/50 400")
        assert (valid.count(200), hostile.count(400)) == (350, 50), (valid, hostile)
        assert gw.metric("servegate_requests_total", route="minilm", code="400") == 50
        assert gw.metric("servegate_upstream_errors_total", route="minilm") == 0


@pytest.mark.parametrize(
    ("body", "content_type", "status", "says"),
    [
        (DIGITS, "application/json", 400, "integer over 100 digits"),
        (NESTING, "application/json", 400, "nests deeper than 32 levels"),
        (b'{"inputs": ' + b"[" * 40 + b"]" * 40 + b"}", "application/json", 400, "deeper"),
        (BOM, "application/json", 400, "byte order mark"),
        (b"\xef\xbb\xbfhello", "text/plain", 400, "byte order mark"),
        (b"\xff\xfe{}", "application/json", 400, "not valid UTF-8"),
        (b"{not json", "text/plain", 400, "not valid JSON"),
        (b"text=hello", "application/x-www-form-urlencoded", 415, "curl -d"),
        (b"--x\r\n\r\nhello\r\n--x--\r\n", "multipart/form-data; boundary=x", 415, "multipart"),
        (b"<text>hello</text>", "application/xml", 415, "application/xml"),
        (b"hello", "text/plain; charset=latin-1", 415, "charset latin-1"),
    ],
)
def test_client_mistakes_on_predictions_are_4xx(
    fake_config_path: Path, body: bytes, content_type: str, status: int, says: str
) -> None:
    with run_gateway(fake_config_path) as gw, gw.client() as c:
        resp = c.post("/predictions/minilm", content=body, headers={"Content-Type": content_type})
        assert says in ts_shape(resp, status)["message"]
        assert gw.metric("servegate_requests_total", route="minilm", code=str(status)) == 1
        # The content types the gateway takes still work.
        ok = c.post("/predictions/minilm", content=b"hello", headers={"Content-Type": "text/plain"})
        assert ok.status_code == 200 and len(ok.json()["embeddings"]) == 1


OIP_TEXT = b'{"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": ["hi"]}]}'


@pytest.mark.parametrize(
    ("body", "content_type", "status", "says"),
    [
        (b"\xef\xbb\xbf" + OIP_TEXT, "application/json", 400, "byte order mark"),
        (
            b'{"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": '
            + b"[" * 100_000
            + b"]" * 100_000
            + b"}]}",
            "application/json",
            400,
            "nests deeper",
        ),
        (OIP_TEXT.replace(b'"text"', b'"sentence"'), "application/json", 400, "['text']"),
        (OIP_TEXT, "multipart/form-data; boundary=x", 415, "multipart/form-data"),
        (OIP_TEXT, "application/x-www-form-urlencoded", 415, "send application/json"),
        (OIP_TEXT, "text/plain", 415, "text/plain"),
    ],
)
def test_client_mistakes_on_oip_are_4xx(
    fake_config_path: Path, body: bytes, content_type: str, status: int, says: str
) -> None:
    with run_gateway(fake_config_path) as gw, gw.client() as c:
        url = "/v2/models/minilm/infer"
        assert says in oip_shape(
            c.post(url, content=body, headers={"Content-Type": content_type}), status
        )
        assert gw.metric("servegate_requests_total", route="minilm", code=str(status)) == 1
        assert c.post(url, content=OIP_TEXT, headers=JSON).status_code == 200
        assert c.post(url, content=OIP_TEXT).status_code == 200  # no Content-Type: JSON
