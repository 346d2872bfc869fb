"""The one path every config change takes, whoever asks (an operator through the admin API or
the canary analysis): edit the file's bytes, validate the result like a hand edit, write it
atomically, swap the routing table, append to the audit log.

A change that fails validation or cannot be written applies nothing: the last good config
keeps serving. The file on disk must be the config serving now: when it holds an edit the
watcher rejected, a change is refused with that reason (409) rather than written over the
operator's edit or answered "re-read and retry" forever; ``If-Match`` is compared with the
serving version, which is what ``GET /admin/routes`` hands out.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from gateway.admin import audit
from gateway.admin.persist import atomic_write
from gateway.config import GatewayConfig, LoadedConfig, version_of
from gateway.errors import (
    BadRequest,
    ConfigFileRejected,
    ConfigReadOnly,
    ModelNotFound,
    VersionConflict,
)
from gateway.state import Gateway

Edit = Callable[[bytes, GatewayConfig], tuple[bytes, GatewayConfig]]


@dataclass(frozen=True)
class Change:
    route: str
    action: str  # set_weights, canary_start, canary_advance, canary_promote, canary_rollback
    who: str
    client: str = ""
    reason: str = ""
    expected_version: str | None = None  # If-Match: refuse when the file moved on


def apply_change(gw: Gateway, change: Change, edit: Edit) -> LoadedConfig:
    """Apply ``edit`` to the config file; callers hold ``gw.admin_lock``."""
    path = gw.table.loaded.path
    if path is None:
        raise BadRequest("this gateway runs without a config file")
    raw = path.read_bytes()
    current = version_of(raw)
    serving = gw.table.loaded.version
    if current != serving:
        _file_not_serving(gw, path.name, current, serving)
    if change.expected_version is not None and change.expected_version != serving:
        raise VersionConflict(
            f"config version is {serving}, not {change.expected_version}; re-read and retry"
        )
    old_config = gw.table.loaded.config
    old_route = old_config.routes.get(change.route)
    if old_route is None:
        raise ModelNotFound(f"route not found: {change.route}")
    new_raw, edited = edit(raw, old_config)
    config = edited.anchored(path)
    gw.readiness.check(config, old_config)
    try:
        atomic_write(path, new_raw)
    except OSError as exc:
        raise ConfigReadOnly(
            f"cannot write {path.name} ({exc.strerror}); it is managed elsewhere "
            "(ConfigMap, read-only mount): change it at its source"
        ) from None
    loaded = LoadedConfig(config, version_of(new_raw), path)
    gw.apply_change(loaded)
    audit.append(
        gw.settings.audit_path(),
        audit.AuditEntry(
            who=change.who,
            client=change.client,
            action=change.action,
            route=change.route,
            old={v.name: v.weight for v in old_route.variants},
            new={v.name: v.weight for v in config.routes[change.route].variants},
            version_before=current,
            version_after=loaded.version,
            reason=change.reason,
        ),
    )
    return loaded


def _file_not_serving(gw: Gateway, name: str, on_disk: str, serving: str) -> None:
    rejected = gw.rejected
    if rejected is not None and rejected[0] == on_disk:
        raise ConfigFileRejected(
            f"{name} on disk (version {on_disk}) is invalid and is not what serves (version "
            f"{serving}): {rejected[1]}. Fix the file or revert it to the serving version, "
            "then retry; no change is written over it"
        )
    raise VersionConflict(
        f"{name} changed on disk (version {on_disk}) and is not loaded yet; re-read and retry"
    )
