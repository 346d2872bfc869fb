"""The ``servegate`` command. Each subcommand lives in its own module under ``commands/``."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from importlib import metadata

from servegate import logs
from servegate.commands import (
    canary_cmd,
    demo_cmd,
    export_cmd,
    gateway_cmd,
    hub_cmd,
    rollout_cmd,
    serve_cmd,
)

log = logging.getLogger("servegate")


DESCRIPTION = """\
Export PyTorch models to verified archives and serve them with TorchServe behind a
traffic-splitting gateway (weighted canary, sticky users, pinned variants, shadow traffic,
automated canary analysis)."""
EPILOG = """\
first steps:
  make demo                                  export minilm, serve it behind the gateway
  servegate routes                           the gateway's routes and weights
  servegate export MODEL --formats onnx      export a model (servegate export --help)

Run `servegate COMMAND --help` for a command's options. The CLI finds its state
(.servegate/: admin token, logs) from any directory; see docs/cli.md."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="servegate",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("--version", action="version", version=f"servegate {_version()}")
    sub = parser.add_subparsers(dest="command", required=True)
    export_cmd.register(sub)
    serve_cmd.register(sub)
    gateway_cmd.register(sub)
    canary_cmd.register(sub)
    rollout_cmd.register(sub)
    demo_cmd.register(sub)
    hub_cmd.register(sub)
    return parser


def _version() -> str:
    try:
        return metadata.version("servegate")
    except metadata.PackageNotFoundError:  # run from a checkout that is not installed
        return "unknown"


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logs.configure(args.verbose)
    try:
        code: int = args.run(args)
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
