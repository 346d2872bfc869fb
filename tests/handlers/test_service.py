"""The worker-side service on a real exported archive, driven through a fake TorchServe context."""

from __future__ import annotations

import json
import shutil
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from export.models import mlp
from handlers.errors import IntegrityError
from handlers.service import BATCH_SIZE_HEADER, ModelService
from tests.support.fake_context import FakeContext


@pytest.fixture(scope="module")
def mlp_dir(model_store: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("mlp_torchscript")
    with zipfile.ZipFile(model_store / "mlp_torchscript.mar") as mar:
        mar.extractall(target)
    return target


def eager(rows: list[list[float]]) -> torch.Tensor:
    with torch.inference_mode():
        out: torch.Tensor = mlp.build(None)(torch.tensor(rows))
        return out


def test_malformed_member_of_a_batch_gets_its_own_400(mlp_dir: Path) -> None:
    service = ModelService.load(mlp_dir, torch.device("cpu"), name="mlp_torchscript")
    good = [[float(i + j) for j in range(16)] for i in range(3)]
    batch = [
        {"body": {"inputs": good[:2]}},
        {"body": {"inputs": [[1.0, 2.0]]}},  # wrong row shape
        {"body": b"{not json"},
        {"body": {"inputs": good[2:]}},
    ]
    ctx = FakeContext(str(mlp_dir))
    answers = [json.loads(a) for a in service.handle(batch, ctx)]

    assert [ctx.status(i) for i in range(4)] == [200, 400, 400, 200]
    assert answers[1] == {
        "code": 400,
        "type": "BadRequest",
        "message": "each input row must have shape [16], got a batch of shape [1, 2]",
    }
    assert answers[2]["message"].startswith("request body is not valid JSON")
    expected = eager(good)
    torch.testing.assert_close(
        torch.tensor(answers[0]["outputs"]), expected[:2], atol=1e-5, rtol=1e-4
    )
    torch.testing.assert_close(
        torch.tensor(answers[3]["outputs"]), expected[2:], atol=1e-5, rtol=1e-4
    )
    assert ctx.headers[0][BATCH_SIZE_HEADER] == "4"


def test_oip_request_gets_an_oip_answer(mlp_dir: Path) -> None:
    service = ModelService.load(mlp_dir, torch.device("cpu"), name="mlp_torchscript", version="1.0")
    row = [0.5] * 16
    body = {
        "id": "r1",
        "inputs": [{"name": "features", "shape": [1, 16], "datatype": "FP32", "data": row}],
    }
    ctx = FakeContext(str(mlp_dir))
    (answer,) = [json.loads(a) for a in service.handle([{"body": body}], ctx)]
    assert answer["model_name"] == "mlp_torchscript"
    assert answer["model_version"] == "1.0"
    assert answer["id"] == "r1"
    (out,) = answer["outputs"]
    assert (out["name"], out["datatype"], out["shape"]) == ("scores", "FP32", [1, 4])
    torch.testing.assert_close(
        torch.tensor(out["data"]), eager([row]).flatten(), atol=1e-5, rtol=1e-4
    )


def test_oip_error_uses_the_oip_error_shape(mlp_dir: Path) -> None:
    service = ModelService.load(mlp_dir, torch.device("cpu"))
    body = {
        "inputs": [{"name": "features", "shape": [1, 16], "datatype": "BYTES", "data": ["a"] * 16}]
    }
    ctx = FakeContext(str(mlp_dir))
    (answer,) = [json.loads(a) for a in service.handle([{"body": body}], ctx)]
    assert ctx.status(0) == 400
    assert answer == {"error": "this model takes exactly one numeric input tensor"}


def flip_a_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def edit_manifest(model_dir: Path, edit: Callable[[dict[str, Any]], None]) -> None:
    manifest = json.loads((model_dir / "servegate.json").read_text())
    edit(manifest)
    (model_dir / "servegate.json").write_text(json.dumps(manifest))


def add_to_handler(model_dir: Path) -> None:
    handler = model_dir / "servegate_handler.py"
    handler.write_text(handler.read_text() + "\nimport os\nos.system('touch /tmp/pwned')\n")


# What the worker refuses in an extracted archive, and the reason it gives. The worker's check
# covers corruption and a careless edit; an attacker who rewrites the manifest too is stopped
# before TorchServe by the archive's pin (tests/integration/test_serve_cli.py).
TAMPERING: dict[str, tuple[Callable[[Path], None], str]] = {
    "artifact changed": (
        lambda d: flip_a_byte(d / "model.torchscript.pt"),
        r"model\.torchscript\.pt failed its SHA-256 check",
    ),
    "handler changed": (add_to_handler, r"servegate_handler\.py failed its SHA-256 check"),
    "model config changed": (
        lambda d: (d / "model-config.yaml").write_text("batchSize: 64\n"),
        r"model-config\.yaml failed its SHA-256 check",
    ),
    "TorchServe manifest changed": (
        lambda d: flip_a_byte(d / "MAR-INF" / "MANIFEST.json"),
        r"MAR-INF/MANIFEST\.json failed its SHA-256 check",
    ),
    "file added": (
        lambda d: (d / "sitecustomize.py").write_text("import os\n"),
        r"files not covered by the manifest: sitecustomize\.py",
    ),
    "entry deleted": (
        lambda d: edit_manifest(d, lambda m: m["sha256"].pop("servegate_handler.py")),
        r"files not covered by the manifest: servegate_handler\.py",
    ),
    "file removed": (
        lambda d: (d / "model-config.yaml").unlink(),
        r"files listed in the manifest are missing: model-config\.yaml",
    ),
    "absolute path": (
        lambda d: edit_manifest(d, lambda m: m["sha256"].update({"/etc/passwd": "0" * 64})),
        r"servegate\.json is not a valid manifest: .*'/etc/passwd' is an absolute path",
    ),
    "path outside": (
        lambda d: edit_manifest(d, lambda m: m["sha256"].update({"../x.py": "0" * 64})),
        r"'\.\./x\.py' leaves the archive",
    ),
    "artifact not covered": (
        lambda d: edit_manifest(d, lambda m: m.update({"artifact": "other.pt"})),
        r"the manifest does not cover its artifact other\.pt",
    ),
    "manifest missing": (
        lambda d: (d / "servegate.json").unlink(),
        r"the archive has no servegate\.json",
    ),
}


@pytest.mark.parametrize("case", list(TAMPERING))
def test_an_archive_that_differs_from_its_manifest_is_refused(
    case: str, mlp_dir: Path, tmp_path: Path
) -> None:
    tamper, reason = TAMPERING[case]
    model_dir = tmp_path / "model"
    shutil.copytree(mlp_dir, model_dir)
    tamper(model_dir)
    with pytest.raises(IntegrityError, match=reason):
        ModelService.load(model_dir, torch.device("cpu"))


def test_the_manifest_covers_every_file_of_the_archive(mlp_dir: Path) -> None:
    manifest = json.loads((mlp_dir / "servegate.json").read_text())
    every_file = {
        p.relative_to(mlp_dir).as_posix()
        for p in mlp_dir.rglob("*")
        if p.is_file() and p.name != "servegate.json"
    }
    assert set(manifest["sha256"]) == every_file
    assert {"servegate_handler.py", "model-config.yaml", "MAR-INF/MANIFEST.json"} <= every_file


def test_empty_and_form_bodies_are_refused_naming_what_is_accepted(mlp_dir: Path) -> None:
    service = ModelService.load(mlp_dir, torch.device("cpu"), name="mlp_torchscript")
    batch = [
        {"body": b""},
        {"body": "  \n"},
        {"hello world": ""},  # TorchServe's view of a form body (curl -d without a type)
        {"body": {"inputs": [[0.0] * 16]}},
    ]
    ctx = FakeContext(str(mlp_dir))
    ctx.request_headers[2] = {"content-type": "application/x-www-form-urlencoded"}
    answers = [json.loads(a) for a in service.handle(batch, ctx)]

    assert [ctx.status(i) for i in range(4)] == [400, 400, 400, 200]
    accepts = 'this model accepts application/json {"inputs": [[...], ...]} or an OIP v2 body'
    assert answers[0]["message"] == f"the request body is empty (Content-Type none); {accepts}"
    assert answers[1]["message"].startswith("the request body is empty")
    assert "sent as Content-Type application/x-www-form-urlencoded" in answers[2]["message"]
    assert answers[2]["message"].endswith(accepts)
    assert "truncated" not in answers[3]


HOSTILE_BODIES = [
    b'{"inputs": [[' + b"9" * 5000 + b"]]}",  # over Python's 4300-digit int limit: ValueError
    b'{"inputs": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",  # RecursionError
    {"inputs": [[10**400] * 16]},  # parsed by TorchServe; OverflowError in torch.tensor
    b"\xef\xbb\xbf{" + b'"inputs": [[1.0]]}',  # a UTF-8 BOM: not JSON
]


@pytest.mark.parametrize("hostile", HOSTILE_BODIES, ids=["digits", "nesting", "overflow", "bom"])
def test_whatever_decoding_raises_is_that_requests_400(mlp_dir: Path, hostile: object) -> None:
    """1 hostile + 7 valid requests in one batch: the hostile one gets 400, the 7 their answers."""
    service = ModelService.load(mlp_dir, torch.device("cpu"), name="mlp_torchscript")
    good = [[float(i + j) for j in range(16)] for i in range(7)]
    batch: list[dict[str, object]] = [{"body": {"inputs": [row]}} for row in good]
    batch.insert(3, {"body": hostile})
    ctx = FakeContext(str(mlp_dir))
    answers = [json.loads(a) for a in service.handle(batch, ctx)]

    assert [ctx.status(i) for i in range(8)] == [200, 200, 200, 400, 200, 200, 200, 200]
    assert set(answers[3]) == {"code", "type", "message"} and answers[3]["code"] == 400
    outputs = [a["outputs"][0] for i, a in enumerate(answers) if i != 3]
    torch.testing.assert_close(torch.tensor(outputs), eager(good), atol=1e-5, rtol=1e-4)
