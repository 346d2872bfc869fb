"""Logging set-up for the command line (never at import time)."""

from __future__ import annotations

import logging
import sys


def configure(verbose: bool = False) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)-7s %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
    )
    for noisy in ("onnxscript", "onnx_ir", "onnxruntime", "torch", "httpx", "transformers"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
