"""mlp through a real TorchServe: every format answers like eager, alone and in a batch."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import httpx
import pytest
import torch

from export.models import mlp
from handlers.manifest import sha256_file
from tests.support.tsclient import TorchServeClient

FORMATS = ("torchscript", "aoti", "onnx")


def eager(rows: list[list[float]]) -> torch.Tensor:
    with torch.inference_mode():
        out: torch.Tensor = mlp.build(None)(torch.tensor(rows))
        return out


def rows(n: int, seed: int) -> list[list[float]]:
    return torch.randn(n, 16, generator=torch.Generator().manual_seed(seed)).tolist()


def test_export_report_covers_every_format(model_store: Path) -> None:
    report = json.loads((model_store / "mlp" / "export_report.json").read_text())
    assert report["model"] == "mlp"
    assert set(report["eager"]["latency_ms"]) == {"1", "8", "32"}
    for fmt in FORMATS:
        entry = report["formats"][fmt]
        assert entry["parity_ok"] is True
        assert 0 <= entry["max_abs_err"] < 1e-5
        assert set(entry["latency_ms"]) == {"1", "8", "32"}
        artifact = next((model_store / "mlp" / fmt / "artifact").iterdir())
        assert entry["sha256"] == sha256_file(artifact)
        assert entry["bytes"] >= artifact.stat().st_size > 0
        assert (model_store / f"mlp_{fmt}.mar").is_file()


@pytest.mark.parametrize("fmt", FORMATS)
def test_single_request_matches_eager(torchserve: TorchServeClient, fmt: str) -> None:
    inputs = rows(3, seed=7)
    resp = torchserve.predict(f"mlp_{fmt}", json={"inputs": inputs})
    assert resp.status_code == 200, resp.text
    torch.testing.assert_close(
        torch.tensor(resp.json()["outputs"]), eager(inputs), atol=1e-5, rtol=1e-4
    )


@pytest.mark.parametrize("fmt", FORMATS)
def test_concurrent_batch_with_one_malformed_member(torchserve: TorchServeClient, fmt: str) -> None:
    bodies: list[object] = [{"inputs": rows(1, seed=i)} for i in range(6)]
    bodies[3] = {"inputs": [[1.0, 2.0, 3.0]]}  # wrong row length
    responses: dict[int, httpx.Response] = {}
    barrier = threading.Barrier(len(bodies))

    def send(i: int) -> None:
        barrier.wait()
        responses[i] = torchserve.predict(f"mlp_{fmt}", json=bodies[i])

    threads = [threading.Thread(target=send, args=(i,)) for i in range(len(bodies))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    bad = responses[3]
    assert bad.status_code == 400
    assert bad.json() == {
        "code": 400,
        "type": "BadRequest",
        "message": "each input row must have shape [16], got a batch of shape [1, 3]",
    }
    # The malformed request really shared a forward pass with well-formed ones.
    assert int(bad.headers["x-servegate-batch-size"]) > 1
    for i, resp in responses.items():
        if i == 3:
            continue
        assert resp.status_code == 200, resp.text
        expected = eager(bodies[i]["inputs"])  # type: ignore[index]
        torch.testing.assert_close(
            torch.tensor(resp.json()["outputs"]), expected, atol=1e-5, rtol=1e-4
        )


def test_oip_body_through_torchserve(torchserve: TorchServeClient) -> None:
    inputs = rows(2, seed=3)
    body = {"inputs": [{"name": "features", "shape": [2, 16], "datatype": "FP32", "data": inputs}]}
    resp = torchserve.predict("mlp_onnx/1.0", json=body)
    assert resp.status_code == 200, resp.text
    answer = resp.json()
    assert answer["model_name"] == "mlp_onnx"
    assert answer["model_version"] == "1.0"
    (out,) = answer["outputs"]
    assert out["shape"] == [2, 4]
    torch.testing.assert_close(
        torch.tensor(out["data"]).reshape(2, 4), eager(inputs), atol=1e-5, rtol=1e-4
    )
