"""`servegate demo` (the README's first command, after install) end to end, in a scratch
directory: TorchServe, the gateway at 90/10, traffic through it, the stack left running; then
`servegate demo --rollout 2.0` (`make demo-rollout`) rolls minilm 2.0 out into it under load."""

from __future__ import annotations

import socket
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import httpx
import pytest

from export.report import ExportReport, FormatReport, report_dir
from handlers import servegate_handler
from servegate import pins
from tests.support.archives import copy_archives, repackage

pytestmark = pytest.mark.torchserve  # runs `servegate demo` in a subprocess

SERVEGATE = str(Path(sys.executable).with_name("servegate"))
DEMO_PORTS = (8000, 8001, 8080, 8081, 8082, 7070, 7071, 9000)


def servegate(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SERVEGATE, *args], cwd=cwd, capture_output=True, text=True, timeout=600, check=False
    )


def busy(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_demo_serves_minilm_behind_the_gateway(model_store: Path, tmp_path: Path) -> None:
    # The demo uses the documented default ports; a demo already running would answer there.
    taken = [p for p in DEMO_PORTS if busy(p)]
    assert not taken, f"ports {taken} are in use (stop a running demo with `make stop`)"
    store = tmp_path / "model_store"
    copy_archives(model_store, store, "minilm_torchscript.mar", "minilm_onnx.mar")
    try:
        result = servegate(tmp_path, "demo", "--store", str(store), "--requests", "40")
        assert result.returncode == 0, result.stderr[-3000:]
        assert "40 requests to /predictions/minilm through the gateway" in result.stdout
        rows = [
            ln.split()
            for ln in result.stdout.splitlines()
            if ln.startswith("  stable") or ln.startswith("  canary")
        ]
        assert sum(int(r[1]) for r in rows) == 40  # every request answered 200 by a variant
        assert "status page  http://127.0.0.1:8001/" in result.stdout

        token = tmp_path / ".servegate" / "admin_token"
        assert stat.S_IMODE(token.stat().st_mode) == 0o600
        config = (tmp_path / "gateway.yaml").read_text()
        assert "weight: 90" in config
        # Relative paths (anchored at the config's folder): the file survives a moved checkout.
        assert str(tmp_path) not in config
        assert "key_file: .servegate/torchserve/key_file.json" in config
        # The stack keeps running after the command returns.
        resp = httpx.post("http://127.0.0.1:8000/predictions/minilm", json={"inputs": ["hi"]})
        assert resp.status_code == 200
        assert len(resp.json()["embeddings"][0]) == 384
        assert httpx.get("http://127.0.0.1:8001/").status_code == 200
        assert "make demo-rollout" in result.stdout

        version_2(store)
        rollout = servegate(
            tmp_path, "demo", "--rollout", "2.0", "--store", str(store), "--grace", "2"
        )
        assert rollout.returncode == 0, rollout.stdout[-3000:] + rollout.stderr[-3000:]
        out = rollout.stdout
        assert "exported and pinned already" in rollout.stderr
        assert "through the gateway during the rollout, 0 failed" in out, out
        assert "retired minilm_torchscript/1.0, minilm_onnx/1.0 (unloaded)" in out
        # The audit log's story, as the demo prints it.
        story = [ln.split()[2] for ln in out.splitlines() if ln.startswith("  ") and ":" in ln[:5]]
        assert story[:3] == ["set_weights", "set_variant", "canary_start"], out
        assert story[-1] == "canary_promote", out
        variants = httpx.get("http://127.0.0.1:8001/status.json").json()["routes"][0]["variants"]
        assert [(v["model"], v["version"]) for v in variants] == [("minilm_onnx", "2.0")] * 2
    finally:
        servegate(tmp_path, "gateway", "stop")
        servegate(tmp_path, "stop")
    assert not any(busy(p) for p in (8000, 8080))


def version_2(store: Path) -> None:
    """minilm 2.0 in ONNX, as `make export MODEL=minilm VERSION=2.0 FORMATS=onnx` leaves it
    (the same weights, repackaged at 2.0 and pinned; its report says parity passed)."""
    source = store / "minilm_onnx.mar"
    with zipfile.ZipFile(source) as mar:
        model_config = mar.read("model-config.yaml").decode()
    handler = Path(servegate_handler.__file__)
    archive = repackage(
        source,
        store,
        "minilm_onnx",
        handler=handler,
        extra={},
        model_config=model_config,
        version="2.0",
    )
    digest = pins.read(pins.pin_file_for(store)).archives[archive.name].sha256
    where = report_dir(store, "minilm", "2.0")
    where.mkdir(parents=True)
    entry = FormatReport(parity_ok=True, archive=str(archive), archive_sha256=digest)
    ExportReport(model="minilm", version="2.0", formats={"onnx": entry}).write(where)
