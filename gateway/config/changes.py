"""The one path every config change takes, whoever asks (an operator through the admin API or
the canary analysis): edit the file's bytes, validate the result like a hand edit, write it
atomically, swap the routing table, append to the audit log.

A change that fails validation or cannot be written applies nothing: the last good config
keeps serving. The file on disk must be the config serving now: when it holds an edit the
watcher rejected, a change is refused with that reason (409) rather than written over the
operator's edit or answered "re-read and retry" forever; ``If-Match`` is compared with the
serving version, which is what ``GET /admin/routes`` hands out.

What a change needs of the running gateway is ``ConfigOwner`` (``gateway.state.Gateway`` is
one), so the change path depends on no caller: the admin API and the canary analysis both
depend on it, never on each other.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from gateway.config import audit
from gateway.config.atomic import atomic_write
from gateway.config.load import LoadedConfig, version_of
from gateway.config.schema import GatewayConfig
from gateway.errors import (
    BadRequest,
    ConfigFileRejected,
    ConfigReadOnly,
    ModelNotFound,
    VersionConflict,
)

Edit = Callable[[bytes, GatewayConfig], tuple[bytes, GatewayConfig]]


class _Table(Protocol):
    @property
    def loaded(self) -> LoadedConfig: ...


class _Readiness(Protocol):
    def check(self, new: GatewayConfig, old: GatewayConfig) -> None: ...


class _Settings(Protocol):
    def audit_path(self) -> Path: ...


class ConfigOwner(Protocol):
    """The running gateway as a change sees it: the config serving now, the file version the
    watcher last rejected (and why), the variants' readiness, where the audit log goes, and how
    an applied change is swapped in."""

    @property
    def table(self) -> _Table: ...

    @property
    def rejected(self) -> tuple[str, str] | None: ...

    @property
    def readiness(self) -> _Readiness: ...

    @property
    def settings(self) -> _Settings: ...

    def apply_change(self, loaded: LoadedConfig) -> None: ...


@dataclass(frozen=True)
class Change:
    route: str
    # set_weights, set_variant, canary_start, canary_advance, canary_promote, canary_rollback
    action: str
    who: str
    client: str = ""
    reason: str = ""
    expected_version: str | None = None  # If-Match: refuse when the file moved on


def apply_change(gw: ConfigOwner, change: Change, edit: Edit) -> LoadedConfig:
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


def _file_not_serving(gw: ConfigOwner, name: str, on_disk: str, serving: str) -> None:
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
