"""Live registration refuses anything but a pinned, intact archive of the store, named by its
file name, before TorchServe hears of it (``servegate.torchserve.registry``); and TorchServe,
with its register API on, still refuses URLs and paths outside its private store by itself.

The refusals run without TorchServe: the instance's management URL is a closed port, so any
call that reached it would fail with "cannot reach", never with the refusal asserted."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import httpx
import pytest

from export.report import ExportReport, FormatReport, report_dir
from servegate import pins
from servegate.ports import free_ports
from servegate.rollout.candidate import RolloutRefused, find
from servegate.torchserve.registry import Instance, RegistrationRefused, Registry
from tests.support.tsclient import TorchServeClient


@pytest.fixture
def instance(tmp_path: Path) -> Instance:
    store, workdir = tmp_path / "store", tmp_path / "ts"
    store.mkdir()
    (workdir / "store").mkdir(parents=True)
    (port,) = free_ports(1)
    return Instance(
        workdir=workdir,
        store=store,
        pin_file=pins.pin_file_for(store),
        inference_url=f"http://127.0.0.1:{port}",
        management_url=f"http://127.0.0.1:{port}",
        model_api=True,
    )


def archive(store: Path, name: str, manifest: dict[str, object] | None = None) -> Path:
    """A small zip laid out like a .mar (its manifest may be anything), pinned like an export."""
    mar = store / name
    with zipfile.ZipFile(mar, "w") as z:
        z.writestr(
            "MAR-INF/MANIFEST.json",
            json.dumps({"model": {"modelName": "m_torchscript", "modelVersion": "2.0"}}),
        )
        z.writestr("servegate.json", json.dumps(manifest or {"model": "m"}))
    pins.record(pins.pin_file_for(store), mar, model="m", fmt="torchscript", version="2.0")
    return mar


@pytest.mark.parametrize(
    ("name", "says"),
    [
        ("http://127.0.0.1:9/m.mar", "is a URL"),
        ("https://example.com/m.mar", "is a URL"),
        ("file:///etc/m.mar", "is a URL"),
        ("s3://bucket/m.mar", "is a URL"),
        ("/etc/m.mar", "is a path"),
        ("../store/m.mar", "is a path"),
        ("..m.mar", "is a path"),
        ("sub/m.mar", "is a path"),
        ("m.mar\\..", "is a path"),
        ("m.zip", "is not the name of a .mar archive"),
        (".m.mar", "is not the name of a .mar archive"),
    ],
)
def test_urls_and_paths_are_refused(instance: Instance, name: str, says: str) -> None:
    with pytest.raises(RegistrationRefused, match=says):
        Registry(instance).register(name)
    assert list(instance.staged_store.iterdir()) == []


def test_an_archive_outside_the_store_is_refused_even_when_pinned_elsewhere(
    instance: Instance, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    archive(elsewhere, "m_torchscript.v2.0.mar")  # pinned beside *its* store, not this one
    with pytest.raises(RegistrationRefused, match="has no pin"):
        Registry(instance).register("m_torchscript.v2.0.mar")


def test_an_unpinned_archive_is_refused(instance: Instance) -> None:
    (instance.store / "m_torchscript.v2.0.mar").write_bytes(b"PK not pinned")
    with pytest.raises(RegistrationRefused, match=r"has no pin .*export it again"):
        Registry(instance).register("m_torchscript.v2.0.mar")
    assert list(instance.staged_store.iterdir()) == []


def test_an_archive_unlike_its_pin_is_refused_and_not_staged(instance: Instance) -> None:
    mar = archive(instance.store, "m_torchscript.v2.0.mar")
    with zipfile.ZipFile(mar, "a") as z:
        z.writestr("extra.py", "print('injected')")
    with pytest.raises(RegistrationRefused, match="differs from the archive that was exported"):
        Registry(instance).register(mar.name)
    assert list(instance.staged_store.iterdir()) == []


def test_an_archive_failing_its_manifest_is_refused_and_not_staged(instance: Instance) -> None:
    # Pinned (as a buggy exporter would have pinned it), but its manifest does not hold.
    mar = archive(instance.store, "m_torchscript.v2.0.mar", {"model": "m"})
    with pytest.raises(RegistrationRefused, match="fails its manifest check"):
        Registry(instance).register(mar.name)
    assert list(instance.staged_store.iterdir()) == []


def test_a_symlink_in_the_store_is_refused(instance: Instance, tmp_path: Path) -> None:
    target = archive(tmp_path, "m_torchscript.v2.0.mar")
    (instance.store / target.name).symlink_to(target)
    pins.record(instance.pin_file, target, model="m", fmt="torchscript", version="2.0")
    with pytest.raises(RegistrationRefused, match="is not a file of the model store"):
        Registry(instance).register(target.name)


def report(store: Path, **entry: object) -> None:
    where = report_dir(store, "m", "2.0")
    where.mkdir(parents=True, exist_ok=True)
    formats = {"torchscript": FormatReport.model_validate(entry)}
    ExportReport(model="m", version="2.0", formats=formats).write(where)


def test_a_rollout_needs_a_report_that_passed_parity_for_the_pinned_bytes(
    instance: Instance,
) -> None:
    store, pin_file = instance.store, instance.pin_file
    mar = archive(store, "m_torchscript.v2.0.mar")
    digest = pins.read(pin_file).archives[mar.name].sha256
    with pytest.raises(RolloutRefused, match="has no torchscript entry"):
        find(store, pin_file, "m", "2.0", None)
    report(store, parity_ok=False, error="parity: max abs err 0.3", archive_sha256=digest)
    with pytest.raises(RolloutRefused, match=r"failed its parity check .*max abs err 0\.3"):
        find(store, pin_file, "m", "2.0", None)
    report(store, parity_ok=True, archive_sha256="0" * 64)
    with pytest.raises(RolloutRefused, match="describes another archive"):
        find(store, pin_file, "m", "2.0", None)
    with pytest.raises(RolloutRefused, match=r"no archive of m version 3\.0 is pinned"):
        find(store, pin_file, "m", "3.0", None)
    report(store, parity_ok=True, archive_sha256=digest)
    found = find(store, pin_file, "m", "2.0", "torchscript")
    assert (found.archive, found.version, found.sha256) == (mar.name, "2.0", digest)


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("http://127.0.0.1:9/mlp_onnx.mar", "does not match any allowed URL"),
        ("file:///etc/passwd", "does not match any allowed URL"),
        ("../store/mlp_onnx.mar", "Relative path is not allowed"),
    ],
)
def test_torchserve_itself_refuses_urls_and_paths_with_the_management_key(
    torchserve: TorchServeClient, url: str, says: str
) -> None:
    # Defense in depth: even a caller holding the management key (the API is on, on loopback)
    # cannot make TorchServe fetch a URL or leave its private store: allowed_urls holds.
    s = torchserve.settings
    resp = httpx.post(
        f"{s.url('management')}/models",
        params={"url": url},
        headers={"Authorization": f"Bearer {torchserve.keys.management.key}"},
        timeout=30,
    )
    assert resp.status_code >= 400, resp.text
    assert says in resp.json()["message"]
