"""``servegate hub list DIR``: the entrypoints of a local torch.hub repository and their
docstrings (torch.hub's own ``list`` and ``help`` read GitHub repositories only).

Entrypoints are what torch.hub calls them: the public callables of ``hubconf.py``. Listing
imports ``hubconf.py``, as ``torch.hub.load`` would.
"""

from __future__ import annotations

import argparse
import importlib.util
import inspect
import logging
import sys
from pathlib import Path
from typing import Any

log = logging.getLogger("servegate.hub")


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "hub", help="inspect a local torch.hub repository (servegate hub list DIR)"
    )
    verbs = p.add_subparsers(dest="verb", required=True)
    listing = verbs.add_parser("list", help="entrypoints of DIR/hubconf.py and their docstrings")
    listing.add_argument("repo", type=Path, help="a local folder holding hubconf.py")
    listing.set_defaults(run=run_list)


def entrypoints(repo: Path) -> dict[str, str]:
    """Entrypoint name -> the first paragraph of its docstring ('' when it has none)."""
    hubconf = repo / "hubconf.py"
    if not hubconf.is_file():
        raise FileNotFoundError(f"{repo} has no hubconf.py")
    spec = importlib.util.spec_from_file_location("servegate_hubconf", hubconf)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(repo))  # hubconf imports its siblings, as under torch.hub.load
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(repo))
    return {
        name: inspect.cleandoc(value.__doc__ or "").split("\n\n")[0].replace("\n", " ")
        for name, value in vars(module).items()
        if callable(value) and not name.startswith("_")  # torch.hub's own rule
    }


def run_list(args: argparse.Namespace) -> int:
    try:
        found = entrypoints(args.repo)
    except FileNotFoundError as exc:
        log.error("%s", exc)
        return 2
    if not found:
        log.error("%s/hubconf.py defines no entrypoints", args.repo)
        return 1
    width = max(map(len, found))
    for name, doc in found.items():
        sys.stdout.write(f"{name.ljust(width)}  {doc or '(no docstring)'}\n")
    return 0
