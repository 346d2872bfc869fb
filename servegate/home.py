"""Where the CLI keeps its state (``.servegate/``: admin token, gateway pid and log,
TorchServe's working directory), so that every command finds it from any directory.

``project_dir()`` is where state is written: ``$SERVEGATE_HOME``, else the nearest directory at
or above the current one that holds ``.servegate/``, else the current directory (``make demo``
runs in the checkout, so that is the checkout). ``state_dir()`` is where it is read: the
project's, or, run from a directory outside any project, the state of the checkout this
``servegate`` is installed from (where ``make demo`` ran).
"""

from __future__ import annotations

import os
from pathlib import Path

STATE = ".servegate"
HOME_ENV = "SERVEGATE_HOME"
# The checkout an editable install (`make install`) runs from; meaningless in a wheel install,
# where only an existing .servegate/ there would be used.
CHECKOUT = Path(__file__).resolve().parents[1]


def project_dir() -> Path:
    home = os.environ.get(HOME_ENV)
    if home:
        return Path(home).resolve()
    cwd = Path.cwd().resolve()
    return next((d for d in (cwd, *cwd.parents) if (d / STATE).is_dir()), cwd)


def state_dir() -> Path:
    own = project_dir() / STATE
    if own.is_dir() or os.environ.get(HOME_ENV):
        return own
    checkout = CHECKOUT / STATE
    return checkout if checkout.is_dir() else own


def cancel_dir() -> Path:
    """Where the gateway leaves a streaming client's cancel marker and TorchServe's generation
    workers look for it (``SERVEGATE_CANCEL_DIR``): one directory, the default of both
    ``servegate serve`` and ``servegate gateway``."""
    return state_dir() / "cancel"
