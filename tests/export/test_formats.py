"""``export.formats`` is the one list of export formats: every other list derives from it."""

from __future__ import annotations

import subprocess
import sys
from typing import get_args

from export.formats import DEFAULT_FORMATS, EXPORTERS, FORMATS, GENERATION, OPT_IN, QUANTIZED
from handlers import manifest


def test_every_format_has_one_exporter_and_the_defaults_leave_out_the_opt_in() -> None:
    traced = tuple(f for f in FORMATS if f not in GENERATION)
    assert tuple(EXPORTERS) == traced  # causal LMs are never traced: export.generation
    assert tuple(f for f in traced if f not in OPT_IN) == DEFAULT_FORMATS
    assert set(FORMATS) >= OPT_IN >= QUANTIZED


def test_a_worker_can_run_every_format() -> None:
    assert set(FORMATS) <= set(get_args(manifest.Format))


def test_the_cli_takes_the_formats_without_importing_torch() -> None:
    code = (
        "import sys; from servegate.commands import export_cmd; "
        "print(export_cmd.FORMATS, 'torch' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.split()[-1] == "False"
