"""Automated canary analysis: step a canary's weight up while its checks pass, promote it after
the last step, roll it back when checks fail ``threshold`` times.

divergence.py  compare a canary's answer with stable's answer to the same request
sources.py     where check values come from: in-process metrics or Prometheus
checks.py      one interval's verdict from a source
status.py      the persisted analysis status (phase, step, failures, last checks)
controller.py  the loop that judges intervals and applies decisions like an admin change

The ``analysis`` block itself is config (``gateway.config.analysis``); decisions are written
through the config's change path (``gateway.config.changes``), as an admin change is.
"""
