"""``gateway.yaml``'s one home: its schema, loading, watching, editing and the change path.

schema.py    backends, routes, variants, shadow, outlier ejection, coalescing (strict,
             frozen models)
analysis.py  a route's ``analysis`` block: how a canary is stepped up, judged and promoted
load.py      parse and validate a file once; its version (the digest of its bytes)
watch.py     poll the file and hand each valid change to the gateway (hot reload)
edit.py      surgical edits of the file's bytes (weights, a promotion), comments kept
atomic.py    replace a file atomically (the config, the canary status beside it)
changes.py   the one path every change takes: edit, validate, write, apply, audit
audit.py     the append-only audit log of changes

Importing the package loads the schema and the loader only; the other modules are imported by
name where they are needed.
"""

from gateway.config.analysis import Analysis, CompareMeasure
from gateway.config.load import LoadedConfig, load_config, parse_config, validate_config, version_of
from gateway.config.schema import (
    BackendConfig,
    Coalesce,
    GatewayConfig,
    OutlierEjection,
    Route,
    Shadow,
    StickyKey,
    Variant,
)

__all__ = [
    "Analysis",
    "BackendConfig",
    "Coalesce",
    "CompareMeasure",
    "GatewayConfig",
    "LoadedConfig",
    "OutlierEjection",
    "Route",
    "Shadow",
    "StickyKey",
    "Variant",
    "load_config",
    "parse_config",
    "validate_config",
    "version_of",
]
