"""`servegate serve` / `servegate stop` as a user runs them, on a real TorchServe."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from export.package import seal, zip_archive
from handlers.manifest import MANIFEST_NAME, Manifest
from servegate.torchserve.keys import KeyFile
from servegate.torchserve.settings import Ports
from tests.conftest import fresh_ports
from tests.support.archives import copy_archives
from tests.support.tsclient import TorchServeClient

pytestmark = pytest.mark.torchserve  # runs `servegate serve` in a subprocess

SERVEGATE = str(Path(sys.executable).with_name("servegate"))


def port_args(ports: Ports) -> list[str]:
    return [
        a
        for name, v in ports.model_dump().items()
        for a in (f"--{name.replace('_', '-')}-port", str(v))
    ]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SERVEGATE, *args], capture_output=True, text=True, timeout=400, check=False
    )


def test_serve_then_stop_only_this_instance(
    model_store: Path, tmp_path: Path, torchserve: TorchServeClient
) -> None:
    store = tmp_path / "store"
    copy_archives(model_store, store, "mlp_onnx.mar")
    workdir, ports = tmp_path / "ts", fresh_ports()
    started = run("serve", "--store", str(store), "--workdir", str(workdir), *port_args(ports))
    try:
        assert started.returncode == 0, started.stderr
        assert "TorchServe is ready: mlp_onnx" in started.stdout
        assert f"key file    {workdir / 'key_file.json'}" in started.stdout

        config = (workdir / "config.properties").read_text()
        assert f"inference_address=http://127.0.0.1:{ports.inference}" in config
        assert "disable_token_authorization=false" in config
        # On for live registration (servegate rollout), from the private store only.
        assert "enable_model_api=true" in config
        assert f"allowed_urls=file://{re.escape(str(workdir.resolve() / 'store'))}/.*" in config
        assert "metrics_mode=prometheus" in config
        # TorchServe reads the checked copies in its own directory, never the user's store.
        staged = (workdir / "store").resolve()
        assert f"model_store={staged}\n" in config
        assert [(p.name, p.stat().st_mode & 0o777) for p in staged.iterdir()] == [
            ("mlp_onnx.mar", 0o444)
        ]

        keys = KeyFile.read(workdir / "key_file.json")
        base = f"http://127.0.0.1:{ports.inference}"
        auth = {"Authorization": f"Bearer {keys.inference.key}"}
        ok = httpx.post(f"{base}/predictions/mlp_onnx", json={"inputs": [[0.0] * 16]}, headers=auth)
        assert ok.status_code == 200
        assert (
            httpx.post(f"{base}/predictions/mlp_onnx", json={"inputs": [[0.0] * 16]}).status_code
            == 400
        )
        mgmt = f"http://127.0.0.1:{ports.management}"
        register = httpx.post(
            f"{mgmt}/models?url=mlp_onnx.mar",
            headers={"Authorization": f"Bearer {keys.management.key}"},
        )
        assert register.status_code == 409  # loaded already; refusals: test_registration.py
        metrics = httpx.get(f"http://127.0.0.1:{ports.metrics}/metrics")
        assert metrics.status_code == 200
        assert "ts_inference_requests_total" in metrics.text
    finally:
        stopped = run("stop", "--workdir", str(workdir))
    assert stopped.returncode == 0
    assert "stopped" in stopped.stderr
    with_error = httpx.Client(timeout=2)
    try:
        with_error.get(f"http://127.0.0.1:{ports.inference}/ping")
        raise AssertionError("TorchServe still answers after stop")
    except httpx.ConnectError:
        pass
    # The session's own TorchServe was left alone.
    assert torchserve.predict("mlp_onnx", json={"inputs": [[0.0] * 16]}).status_code == 200


def rewrite(mar: Path, edit: Callable[[Path], None]) -> None:
    """Change an archive's files and reseal its manifest over them, as an attacker who can
    write the store would: the archive is self-consistent, only its pin tells."""
    laid_out = mar.with_suffix(".d")
    with zipfile.ZipFile(mar) as src:
        src.extractall(laid_out)
    edit(laid_out)
    manifest = Manifest.read(laid_out)
    (laid_out / MANIFEST_NAME).unlink()
    manifest.model_copy(update={"sha256": seal(laid_out)}).write(laid_out)
    zip_archive(laid_out, mar)
    shutil.rmtree(laid_out)


def flip_a_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def serve(store: Path, workdir: Path) -> subprocess.CompletedProcess[str]:
    args = ("--store", str(store), "--workdir", str(workdir), "--ready-timeout", "120")
    return run("serve", *args, *port_args(fresh_ports()))


@pytest.mark.parametrize("member", ["model.torchscript.pt", "servegate_handler.py"])
def test_an_archive_rewritten_after_export_is_refused_before_torchserve_sees_it(
    member: str, model_store: Path, tmp_path: Path
) -> None:
    store, workdir, marker = tmp_path / "store", tmp_path / "ts", tmp_path / "pwned"
    copy_archives(model_store, store, "mlp_torchscript.mar")
    if member == "servegate_handler.py":
        payload = f"\nimport os\nos.system('touch {marker}')\n"
        rewrite(store / "mlp_torchscript.mar", lambda d: (d / member).write_text(payload))
    else:
        rewrite(store / "mlp_torchscript.mar", lambda d: flip_a_byte(d / member))
    result = serve(store, workdir)
    assert result.returncode == 1
    assert (
        f"refusing to serve: mlp_torchscript.mar (in {store.resolve()}) differs from the "
        "archive that was exported (pinned sha256 "
    ) in result.stderr
    assert "it was modified after export; export it again" in result.stderr
    # Refused before TorchServe started: no process, no copy of the archive, no command run.
    assert not (workdir / "tmp" / ".model_server.pid").exists()
    assert list((workdir / "store").iterdir()) == []
    assert not marker.exists()


def test_an_archive_without_a_pin_is_refused(model_store: Path, tmp_path: Path) -> None:
    store, workdir = tmp_path / "store", tmp_path / "ts"
    copy_archives(model_store, store, "mlp_onnx.mar")
    shutil.copy2(model_store / "mlp_torchscript.mar", store)  # copied without its pin
    result = serve(store, workdir)
    assert result.returncode == 1
    assert (
        f"mlp_torchscript.mar (in {store}) has no pin in {store.resolve()}.pins.json: only "
        "archives that `servegate export` wrote into this store are served"
    ) in result.stderr
    assert not (workdir / "tmp" / ".model_server.pid").exists()


def test_a_pin_file_that_does_not_parse_is_an_error(model_store: Path, tmp_path: Path) -> None:
    store, workdir = tmp_path / "store", tmp_path / "ts"
    copy_archives(model_store, store, "mlp_onnx.mar")
    pin_file = tmp_path / "store.pins.json"
    pin_file.write_text(pin_file.read_text().replace('"sha256"', '"sha"'))
    result = serve(store, workdir)
    assert result.returncode == 1
    assert f"refusing to serve: the pin file {pin_file} is not valid" in result.stderr
