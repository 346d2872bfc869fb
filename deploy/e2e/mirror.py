"""This machine's pip indexes, served to a ``docker build --network host`` on loopback.

pip on the build machine may be configured with ``file://`` indexes (wheels on local disk, e.g.
torch). A build container cannot read the host's disk, so each such index is served over HTTP
on 127.0.0.1 for the build's lifetime and handed to the Dockerfile as build arguments:
``TORCH_INDEX`` (the first index that has torch), ``PIP_INDEX_URL`` (the first local index) and
``PIP_EXTRA_INDEX_URL`` (the other local ones, then pip's default index for what none has).
"""

from __future__ import annotations

import functools
import logging
import re
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

log = logging.getLogger("servegate.e2e.mirror")


def configured_file_indexes(python: Path) -> list[Path]:
    """The ``simple/`` directories of the ``file://`` indexes in pip's configuration."""
    out = subprocess.run(
        [str(python), "-m", "pip", "config", "list"], capture_output=True, text=True, check=False
    ).stdout
    found: list[Path] = []
    for line in out.splitlines():
        key, _, value = line.partition("=")
        if not key.endswith(("index-url", "extra-index-url")):
            continue
        for url in value.strip("'\"").split():
            path = Path(unquote(urlparse(url).path))
            if url.startswith("file://") and path.is_dir() and path not in found:
                found.append(path)
    return found


def pip_default_index() -> str:
    """pip's own default index (the Python Package Index). Asked in a child process: importing
    pip's internals here would import the stdlib's distutils, which then breaks setuptools'
    (and torch's Inductor, which builds through it) for the rest of the process."""
    code = "from pip._internal.models.index import PyPI; print(PyPI.simple_url)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return out.stdout.strip()


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def served(indexes: list[Path]) -> Iterator[dict[str, str]]:
    """Serve ``indexes`` on 127.0.0.1 and yield the Dockerfile's build arguments for them
    (empty when there is none: the Dockerfile's defaults apply)."""
    if not indexes:
        yield {}
        return
    with tempfile.TemporaryDirectory(prefix="servegate-index-") as tmp:
        # Each index's parent is served: simple pages link to ../../files/ beside simple/.
        for i, simple in enumerate(indexes):
            (Path(tmp) / f"i{i}").symlink_to(simple.parent)
        handler = functools.partial(_Quiet, directory=tmp)
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        base = f"http://127.0.0.1:{server.server_address[1]}"
        urls = [f"{base}/i{i}/{simple.name}/" for i, simple in enumerate(indexes)]
        try:
            yield _build_args(indexes, urls)
        finally:
            server.shutdown()
            server.server_close()


def _build_args(indexes: list[Path], urls: list[str]) -> dict[str, str]:
    args = {
        "PIP_INDEX_URL": urls[0],
        "PIP_EXTRA_INDEX_URL": " ".join([*urls[1:], pip_default_index()]),
    }
    torch = [u for p, u in zip(indexes, urls, strict=True) if _has(p, "torch")]
    if torch:
        args["TORCH_INDEX"] = torch[0]
    log.info("local pip indexes served on loopback: %s, then pip's default index", urls)
    return args


def _has(simple: Path, project: str) -> bool:
    return (simple / re.sub(r"[-_.]+", "-", project).lower()).is_dir()
