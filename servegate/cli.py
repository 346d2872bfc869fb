"""The ``servegate`` command. Each subcommand lives in its own module under ``commands/``."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from servegate import logs
from servegate.commands import canary_cmd, demo_cmd, export_cmd, gateway_cmd, serve_cmd

log = logging.getLogger("servegate")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="servegate", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)
    export_cmd.register(sub)
    serve_cmd.register(sub)
    gateway_cmd.register(sub)
    canary_cmd.register(sub)
    demo_cmd.register(sub)
    return parser


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
