"""The gateway's config package sits below what uses it: ``gateway.config`` imports nothing of the
gateway but ``gateway.errors``, and the canary analysis and the admin API reach each other only
through it (and ``gateway.state``), never by importing one another. Read from the source with
``ast``, so imports under ``TYPE_CHECKING`` and inside functions count too."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

GATEWAY = Path(__file__).resolve().parents[2] / "gateway"


def gateway_imports(package: str) -> dict[str, set[str]]:
    """Each module of ``gateway.<package>`` and the ``gateway.*`` modules it imports."""
    out: dict[str, set[str]] = {}
    for path in sorted((GATEWAY / package).glob("*.py")):
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom):
                assert node.level == 0, f"{path.name}: relative import"
                found.add(node.module or "")
        out[path.name] = {m for m in found if m.startswith("gateway.")}
    return out


def test_config_imports_only_itself_and_errors() -> None:
    for module, imports in gateway_imports("config").items():
        outside = {m for m in imports if not m.startswith("gateway.config")} - {"gateway.errors"}
        assert not outside, f"gateway/config/{module} imports {sorted(outside)}"


@pytest.mark.parametrize(("package", "other"), [("canary", "admin"), ("admin", "canary")])
def test_canary_and_admin_do_not_import_each_other(package: str, other: str) -> None:
    for module, imports in gateway_imports(package).items():
        wrong = {m for m in imports if m.startswith(f"gateway.{other}")}
        assert not wrong, f"gateway/{package}/{module} imports {sorted(wrong)}"
