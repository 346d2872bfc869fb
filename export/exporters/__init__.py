"""One exporter per format behind one interface (``base.Exporter``); which class exports which
format is ``export.formats.EXPORTERS``."""

from export.exporters.base import Exporter, get_exporter

__all__ = ["Exporter", "get_exporter"]
