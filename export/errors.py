"""Errors of the export pipeline.

ExportError                 base: the command exits non-zero with the message
├── UnknownModel            MODEL is neither a built-in nor a spec path/module
├── SpecError               a spec failed to import or is invalid
└── FormatFailed            one format failed to export, reload or match eager
"""

from __future__ import annotations


class ExportError(Exception):
    pass


class UnknownModel(ExportError):
    pass


class SpecError(ExportError):
    pass


class FormatFailed(ExportError):
    def __init__(self, fmt: str, stage: str, reason: str) -> None:
        super().__init__(f"{fmt}: {stage} failed: {reason}")
        self.format = fmt
        self.stage = stage
        self.reason = reason
