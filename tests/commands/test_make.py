"""The Makefile as a newcomer meets it: `make help` lines up, and `make export`/`make demo`
install the runtime only (the test and lint tools come with `make test`/`make lint`)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def make(*args: str) -> str:
    result = subprocess.run(
        ["make", "--no-print-directory", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return result.stdout


def test_help_aligns_every_target_description() -> None:
    found = [re.match(r"  make \S+ +", ln) for ln in make("help").splitlines()]
    columns = {m.end() for m in found if m}
    assert sum(1 for m in found if m) >= 10
    assert len(columns) == 1, make("help")  # "make bench-overhead" no longer pushes its text


def dry_run(target: str, tmp_path: Path) -> str:
    # -B: every recipe as on a fresh clone; -n: printed, not run; a venv that does not exist.
    return make("-n", "-B", target, f"VENV={tmp_path / 'venv'}")


def test_export_and_demo_install_the_runtime_only(tmp_path: Path) -> None:
    for target in ("export", "demo"):
        commands = dry_run(target, tmp_path)
        assert "pip install --quiet -e '.[codegen]'" in commands
        assert "[dev]" not in commands


def test_test_and_lint_install_the_dev_tools(tmp_path: Path) -> None:
    for target in ("test", "lint"):
        assert "pip install --quiet -e '.[dev]'" in dry_run(target, tmp_path)


def test_cpu_torch_index_is_used_when_given(tmp_path: Path) -> None:
    index = "https://download.pytorch.org/whl/cpu"
    commands = make("-n", "-B", "install", f"VENV={tmp_path / 'venv'}", f"TORCH_INDEX={index}")
    assert f"--index-url {index} torch==2.14.1 torchvision==0.29.1" in commands
