"""Logging set-up for the command line (never at import time)."""

from __future__ import annotations

import logging
import sys

FORMAT = "%(asctime)s %(levelname)-7s %(message)s"
TIME_FORMAT = "%H:%M:%S"


def configure(verbose: bool = False) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format=FORMAT,
        datefmt=TIME_FORMAT,
        stream=sys.stderr,
    )
    for noisy in ("onnxscript", "onnx_ir", "onnxruntime", "torch", "httpx", "transformers"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
