"""One exporter per format behind one interface (``base.Exporter``)."""

from export.exporters.base import EXPORTERS, Exporter, get_exporter

__all__ = ["EXPORTERS", "Exporter", "get_exporter"]
