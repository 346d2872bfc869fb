"""`servegate demo` reuses minilm's archives only when `servegate serve` would accept them."""

from __future__ import annotations

from pathlib import Path

import pytest

from servegate import pins
from servegate.commands import demo_cmd, export_cmd

NAMES = ("minilm_torchscript.mar", "minilm_onnx.mar")


@pytest.fixture
def exports(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """The export requests the demo makes (the export itself is tested in tests/export)."""
    made: list[object] = []
    monkeypatch.setattr(export_cmd, "export_and_report", lambda request: made.append(request) or 0)
    return made


def store_with(tmp_path: Path, pinned: tuple[str, ...]) -> Path:
    store = tmp_path / "model_store"
    store.mkdir()
    for name in NAMES:
        (store / name).write_bytes(name.encode())
    for name in pinned:
        pins.record(pins.pin_file_for(store), store / name, model="minilm", fmt=name[7:-4])
    return store


def test_pinned_archives_are_reused(tmp_path: Path, exports: list[object]) -> None:
    assert demo_cmd._ensure_archives(store_with(tmp_path, NAMES)) == 0
    assert exports == []


@pytest.mark.parametrize("pinned", [(), NAMES[:1]], ids=["none pinned", "one pinned"])
def test_archives_without_pins_are_exported_again(
    tmp_path: Path, exports: list[object], pinned: tuple[str, ...]
) -> None:
    # Archives from before pins (or copied in) would be refused by `servegate serve`.
    assert demo_cmd._ensure_archives(store_with(tmp_path, pinned)) == 0
    assert len(exports) == 1


def test_a_pin_file_that_does_not_parse_means_export_again(
    tmp_path: Path, exports: list[object]
) -> None:
    store = store_with(tmp_path, NAMES)
    pins.pin_file_for(store).write_text("{")
    assert demo_cmd._ensure_archives(store) == 0
    assert len(exports) == 1
