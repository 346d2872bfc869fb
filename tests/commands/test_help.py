"""``--help`` of every ``servegate`` command and subcommand, run as a user runs it: in a
subprocess, so that argparse really formats every help string (a stray ``%`` crashes it)."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

from servegate.cli import build_parser


def _commands(
    parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()
) -> list[tuple[str, ...]]:
    found = [prefix]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found += _commands(sub, (*prefix, name))
    return found


COMMANDS = _commands(build_parser())


def test_every_subcommand_is_covered() -> None:
    # A guard on the walk itself: it reaches nested subcommands such as `canary abort`.
    assert ("canary", "abort") in COMMANDS and ("gateway", "start") in COMMANDS
    assert len(COMMANDS) > 15


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "servegate")
def test_help_prints_and_exits_0(command: tuple[str, ...]) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "servegate.cli", *command, "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: servegate"), result.stdout
    assert "Traceback" not in result.stderr
