"""Runtimes: how one exported artifact executes. One module per format, one interface."""

from handlers.runtimes.base import Runtime, load_runtime

__all__ = ["Runtime", "load_runtime"]
