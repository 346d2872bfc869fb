"""``servegate`` run in the test's own process: the CLI's code, exit status, stdout and stderr
(with its log lines), without a second interpreter importing torch again (~2 s a call here).

For checks of what the CLI says and returns. Each command also keeps tests that run the real
script in a subprocess, as a user does (tests/export/test_cli.py, tests/commands/)."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import subprocess
from pathlib import Path

from servegate.cli import main
from servegate.logs import FORMAT, TIME_FORMAT


def run_servegate(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    out, err = io.StringIO(), io.StringIO()
    handler = logging.StreamHandler(err)
    handler.setFormatter(logging.Formatter(FORMAT, TIME_FORMAT))
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        with (
            contextlib.chdir(cwd or os.getcwd()),
            contextlib.redirect_stdout(out),
            contextlib.redirect_stderr(err),
        ):
            try:
                code = main(list(args))
            except SystemExit as exc:  # argparse's refusals
                code = exc.code if isinstance(exc.code, int) else 2
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
    return subprocess.CompletedProcess(["servegate", *args], code, out.getvalue(), err.getvalue())
