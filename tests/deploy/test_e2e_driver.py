"""The pieces of `make test-deploy` (deploy/e2e) that run without a Docker engine: the local
index served to builds, the redaction of registry hosts from the kept log, the step summary,
Docker's timestamps, the compose variables it sets."""

from __future__ import annotations

import datetime
from pathlib import Path

import httpx
import pytest

from deploy.e2e import mirror
from deploy.e2e.engine import add_host_certificates, shown
from deploy.e2e.stack import Ports, _when
from deploy.e2e.steps import StepFailed, Steps
from tests.deploy.support import COMPOSE_FILE


def _index(root: Path, project: str) -> Path:
    simple = root / "simple"
    (simple / project).mkdir(parents=True)
    (root / "files").mkdir()
    (root / "files" / f"{project}-1.0-py3-none-any.whl").write_bytes(b"wheel")
    link = f'<a href="../../files/{project}-1.0-py3-none-any.whl">{project}</a>'
    (simple / project / "index.html").write_text(link)
    return simple


def test_local_indexes_are_served_on_loopback_with_build_args(tmp_path: Path) -> None:
    plain = _index(tmp_path / "a", "sympy")
    torch = _index(tmp_path / "b", "torch")
    with mirror.served([plain, torch]) as args:
        assert args["PIP_INDEX_URL"].startswith("http://127.0.0.1:")
        assert args["TORCH_INDEX"].endswith("/i1/simple/")
        extra = args["PIP_EXTRA_INDEX_URL"].split()
        assert extra[0] == args["TORCH_INDEX"] and extra[-1] == mirror.pip_default_index()
        page = httpx.get(args["TORCH_INDEX"] + "torch/").text
        wheel = httpx.get(args["TORCH_INDEX"] + "torch/../../files/torch-1.0-py3-none-any.whl")
        assert "torch-1.0" in page and wheel.content == b"wheel"
    with mirror.served([]) as none:
        assert none == {}  # the Dockerfile's defaults


def test_registry_hosts_stay_out_of_the_kept_log() -> None:
    line = shown("x --build-arg A=http://127.0.0.1:4000/i0/simple/ https://mirror.example/simple")
    assert "127.0.0.1:4000" in line and "mirror.example" not in line


def test_host_certificates_missing_from_the_image_are_added(tmp_path: Path) -> None:
    (tmp_path / "etc/ssl/certs").mkdir(parents=True)
    (tmp_path / "etc/ssl/certs/ca-certificates.crt").write_text("")
    added = add_host_certificates(tmp_path)
    assert added == len(list((tmp_path / "usr/local/share/ca-certificates").glob("*.crt")))


def test_summary_lists_each_step_with_its_time() -> None:
    steps = Steps()
    with steps.step("build") as s:
        s.notes.append("7 GB")
    with pytest.raises(StepFailed), steps.step("split"):
        raise StepFailed("canary 20%")
    steps.skip("grafana", "no image")
    text = steps.summary()
    assert [line.split()[1] for line in text.splitlines()[1:] if not line.startswith(" ")][:3] == [
        "ok",
        "FAILED",
        "skipped",
    ]
    assert "- 7 GB" in text and text.splitlines()[-1].startswith("total")


def test_docker_timestamps_parse() -> None:
    when = _when("2026-12-01T03:55:16.946855296Z")
    assert when == datetime.datetime(2026, 12, 1, 3, 55, 16, 946855, tzinfo=datetime.UTC)


def test_every_port_variable_it_sets_is_in_the_compose_file() -> None:
    text = COMPOSE_FILE.read_text()
    for var in Ports(1, 2, 3, 4, 5).env():
        assert f"${{{var}:-" in text, var
    for var in (
        "PROMETHEUS_IMAGE",
        "GRAFANA_IMAGE",
        "SERVEGATE_CONFIG_DIR",
        "SERVEGATE_CONFIG_MODE",
    ):
        assert f"${{{var}:-" in text, var
