"""Errors of the export pipeline. ``exit_code`` is what ``servegate export`` exits with.

ExportError                 base (exit 2): the export could not start
├── UnknownModel            MODEL is neither a built-in nor a spec path/module
├── SpecError               a spec cannot be found or used, weights that do not fit the model
├── SpecCodeError (exit 3)  the spec's own code raised: at import, in build() or example_inputs()
│   └── SpecMismatch        the model's tensors (or the worker's decoding of requests) differ
│                           from the declared inputs/outputs
└── FormatFailed            one format failed to export, reload or match eager (exit 1)
"""

from __future__ import annotations

# Exit codes of `servegate export` (also in its --help).
EXIT_OK = 0
EXIT_FORMATS_FAILED = 1
EXIT_CANNOT_START = 2
EXIT_SPEC = 3


class ExportError(Exception):
    exit_code: int = EXIT_CANNOT_START


class UnknownModel(ExportError):
    pass


class SpecError(ExportError):
    pass


class SpecCodeError(ExportError):
    exit_code = EXIT_SPEC


class SpecMismatch(SpecCodeError):
    pass


class FormatFailed(ExportError):
    exit_code = EXIT_FORMATS_FAILED

    def __init__(self, fmt: str, stage: str, reason: str) -> None:
        super().__init__(f"{fmt}: {stage} failed: {reason}")
        self.format = fmt
        self.stage = stage
        self.reason = reason
