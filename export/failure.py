"""What a user needs from an exception: the actionable summary and their own line of code.

Library tracebacks (torch.export's, the ONNX exporter's) run to hundreds of lines with colour
codes in them; the full text goes to a log file and the console gets ``summary()`` and
``user_trace()``: only the frames of the user's code, not servegate's or a library's.
"""

from __future__ import annotations

import re
import sysconfig
import traceback
from pathlib import Path

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
# torch.onnx's errors hold a "## Exception summary" section naming the underlying error.
SUMMARY_HEADING = "## Exception summary"
CLASS_REPR = re.compile(r"<class '(?:[\w.]+\.)?(\w+)'>")
MAX_LINE = 300

_ROOT = Path(__file__).resolve().parent.parent
# servegate's own packages; export/models/ holds model code like a user's and stays visible.
_OWN = tuple(str(_ROOT / p) + "/" for p in ("export", "handlers", "servegate", "gateway"))
_OWN_MODELS = str(_ROOT / "export" / "models") + "/"
_LIBRARY = tuple(
    {sysconfig.get_paths()[k] + "/" for k in ("stdlib", "platstdlib", "purelib", "platlib")}
)


def strip_ansi(text: str) -> str:
    return ANSI.sub("", text)


def is_user_file(filename: str) -> bool:
    """A frame of the user's code: not servegate's machinery, the standard library or a
    package installed in the environment."""
    if filename.startswith("<") or "site-packages" in filename or "dist-packages" in filename:
        return False
    if filename.startswith(_OWN_MODELS):
        return True
    return not filename.startswith(_OWN) and not filename.startswith(_LIBRARY)


def chain(exc: BaseException) -> list[BaseException]:
    """The exception and its causes, outermost first."""
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def user_frames(exc: BaseException) -> list[traceback.FrameSummary]:
    """The user's frames of the innermost exception that has any (where it really failed)."""
    for link in reversed(chain(exc)):
        frames = [f for f in traceback.extract_tb(link.__traceback__) if is_user_file(f.filename)]
        if frames:
            return frames
    return []


def user_trace(exc: BaseException) -> str:
    """The user's frames as a traceback, then the exception line."""
    lines = [
        f'  File "{f.filename}", line {f.lineno}, in {f.name}\n    {(f.line or "").strip()}'
        for f in user_frames(exc)
    ]
    return "\n".join([*lines, f"{type(exc).__name__}: {headline(exc)}"])


def user_line(exc: BaseException) -> str | None:
    """``file:line in function: code`` of the user's deepest frame, if any."""
    frames = user_frames(exc)
    if not frames:
        return None
    f = frames[-1]
    return f"{f.filename}:{f.lineno} in {f.name}: {(f.line or '').strip()}"


def headline(exc: BaseException) -> str:
    """The first sentence that says what happened, without colour codes or "Next steps"."""
    text = strip_ansi(str(exc)).strip()
    first = text.splitlines()[0].strip() if text else ""
    first = first.split(" Next steps:")[0].strip()
    return first[:MAX_LINE]


def underlying(exc: BaseException) -> str | None:
    """The error underneath a wrapper: torch.onnx's summary section, else the innermost cause."""
    text = strip_ansi(str(exc))
    if SUMMARY_HEADING in text:
        after = text.split(SUMMARY_HEADING, 1)[1].strip().splitlines()
        if after:
            return CLASS_REPR.sub(r"\1", after[0].strip())[:MAX_LINE]
    causes = chain(exc)
    if len(causes) > 1:
        inner = causes[-1]
        return f"{type(inner).__name__}: {headline(inner)}"
    return None


def summary(exc: BaseException) -> str:
    """One paragraph: what failed, why underneath, and where in the user's code."""
    parts = [f"{type(exc).__name__}: {headline(exc)}"]
    cause = underlying(exc)
    if cause and cause not in parts[0]:
        parts.append(f"caused by {cause}")
    where = user_line(exc)
    if where:
        parts.append(f"at {where}")
    return "; ".join(parts)
