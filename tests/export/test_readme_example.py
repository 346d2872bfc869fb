"""The "export your own model" example of the export docs (docs/export.md, linked from the
README) is the file in examples/, and it works."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_export_docs_show_the_example_spec_verbatim() -> None:
    docs = (ROOT / "docs" / "export.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", docs, flags=re.S)
    example = (ROOT / "examples" / "house_prices.py").read_text()
    assert example in blocks


@pytest.mark.export
def test_docs_example_exports_and_verifies(tmp_path: Path) -> None:
    servegate = str(Path(sys.executable).with_name("servegate"))
    result = subprocess.run(
        [
            servegate,
            "export",
            "examples/house_prices.py",
            "--formats",
            "torchscript,onnx",
            "--out",
            str(tmp_path),
            "--timing-budget",
            "0",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "house_prices" / "export_report.json").read_text())
    assert {f: r["parity_ok"] for f, r in report["formats"].items()} == {
        "torchscript": True,
        "onnx": True,
    }
    assert (tmp_path / "house_prices_torchscript.mar").is_file()
    assert (tmp_path / "house_prices_onnx.mar").is_file()


def test_readme_is_a_front_door_that_links_the_reference() -> None:
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 200
    for doc in re.findall(r"\]\((docs/[\w.]+\.md)\)", readme):
        assert (ROOT / doc).is_file(), doc
    linked = set(re.findall(r"\]\((docs/[\w.]+\.md)\)", readme))
    assert {f"docs/{p.name}" for p in (ROOT / "docs").glob("*.md")} <= linked
    assert "X-User-Id" in readme and "X-Servegate-Variant" in readme  # sticky and pin
