"""The schema of ``gateway.yaml``: backends and routes as strict, frozen models.

A config is valid only as a whole: weights are integers 0-100 summing to 100 with at least one
above 0, variant names are unique per route, every variant and shadow names a backend/variant that
exists, a route's ``analysis`` fits the route (``check_analysis``), and unknown fields are
rejected. Parsing and loading a file is ``load.py``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, model_validator

from gateway.config.analysis import HIGHER_IS_BETTER, Analysis, CompareMeasure

NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
HEADER = r"^[A-Za-z0-9-]{1,64}$"
Name = Annotated[str, Field(pattern=NAME)]


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class BackendConfig(Frozen):
    """One TorchServe instance. ``model_store`` lets the gateway read archive manifests."""

    kind: Literal["torchserve"] = "torchserve"
    inference_url: Annotated[str, Field(pattern=r"^https?://[^/]+$")]
    metrics_url: Annotated[str | None, Field(pattern=r"^https?://[^/]+$")] = None
    # Only the gateway itself calls it, to renew an expired inference key (never for clients).
    management_url: Annotated[str | None, Field(pattern=r"^https?://[^/]+$")] = None
    # TorchServe's gRPC inference port: TorchServe-gRPC clients' Predictions go there.
    grpc_address: Annotated[str | None, Field(pattern=r"^[A-Za-z0-9._-]+:[0-9]{1,5}$")] = None
    key_file: Path | None = Field(default=None, description="TorchServe's key_file.json")
    model_store: Path | None = None

    def anchored(self, base: Path) -> BackendConfig:
        """Relative paths are relative to the config file's folder (as in docker-compose), so a
        config reads the same whatever directory the gateway was started from."""
        update = {
            key: base / path
            for key in ("key_file", "model_store")
            if (path := getattr(self, key)) is not None and not path.is_absolute()
        }
        return self.model_copy(update=update) if update else self


class StickyKey(Frozen):
    """Where the sticky key comes from: exactly one of a header or a cookie."""

    header: Annotated[str | None, Field(pattern=HEADER)] = None
    cookie: Annotated[str | None, Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")] = None

    @model_validator(mode="after")
    def _one_source(self) -> StickyKey:
        if (self.header is None) == (self.cookie is None):
            raise ValueError("set exactly one of `header` or `cookie`")
        return self


class Variant(Frozen):
    name: Name
    backend: Name
    model: str = Field(pattern=NAME, description="TorchServe model (archive) name")
    version: str = Field(default="1.0", pattern=NAME)
    weight: StrictInt = Field(ge=0, le=100)


class Shadow(Frozen):
    variant: Name
    percent: float = Field(gt=0, le=100)
    # Compare the shadow's answer with the served answer (divergence histogram per route).
    compare: CompareMeasure | None = None


class OutlierEjection(Frozen):
    """Take a variant out of rotation after ``consecutive_failures`` upstream failures in a row
    (connection errors, timeouts, 5xx) for ``backoff_s``; its share goes to the others."""

    consecutive_failures: StrictInt = Field(default=5, ge=1, le=1000)
    backoff_s: float = Field(default=30.0, gt=0, le=3600)


class Coalesce(Frozen):
    """Join concurrent single-item requests to one variant into one upstream request
    (``gateway/coalesce.py``): a group goes when ``max_items`` wait, or ``max_wait_ms`` after
    its first item arrived. Keep ``max_items`` within what the model takes in one request
    (``max_texts_per_request``, ``max_images_per_request``): a larger joined request is
    refused and its items are then sent one by one."""

    max_items: StrictInt = Field(default=32, ge=2, le=1024)
    max_wait_ms: float = Field(default=2.0, ge=0, le=1000)


class Route(Frozen):
    variants: tuple[Variant, ...] = Field(min_length=1)
    sticky: StickyKey | None = None
    pin_header: Annotated[str | None, Field(pattern=HEADER)] = None
    shadow: Shadow | None = None
    timeout_s: float = Field(default=30.0, gt=0, le=600)
    outlier_ejection: OutlierEjection | None = None
    analysis: Analysis | None = None
    coalesce: Coalesce | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Route:
        names = [v.name for v in self.variants]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"variant names must be unique; repeated: {dupes}")
        total = sum(v.weight for v in self.variants)
        if total != 100:
            raise ValueError(f"variant weights must sum to 100, they sum to {total}")
        if self.shadow is not None and self.shadow.variant not in names:
            raise ValueError(f"shadow variant {self.shadow.variant!r} is not one of {names}")
        if self.coalesce is not None and self.coalesce.max_wait_ms >= self.timeout_s * 1000:
            raise ValueError(
                f"coalesce.max_wait_ms ({self.coalesce.max_wait_ms:g}) must be shorter than the "
                f"route's timeout_s ({self.timeout_s:g} s)"
            )
        check_analysis(self)
        return self

    @property
    def stable(self) -> Variant:
        """The baseline: the first variant listed."""
        return self.variants[0]

    def variant(self, name: str) -> Variant | None:
        return next((v for v in self.variants if v.name == name), None)


class GatewayConfig(Frozen):
    backends: dict[Name, BackendConfig] = Field(min_length=1)
    routes: dict[Name, Route]

    def anchored(self, config_file: Path) -> GatewayConfig:
        """This config with its backends' relative paths taken from ``config_file``'s folder."""
        base = config_file.resolve().parent
        backends = {name: b.anchored(base) for name, b in self.backends.items()}
        return self.model_copy(update={"backends": backends})

    @model_validator(mode="after")
    def _backends_exist(self) -> GatewayConfig:
        for route_name, route in self.routes.items():
            for v in route.variants:
                if v.backend not in self.backends:
                    raise ValueError(
                        f"routes.{route_name}: variant {v.name!r} names backend {v.backend!r}, "
                        f"which is not defined under `backends` ({sorted(self.backends)})"
                    )
        return self


def _same_target(a: Variant, b: Variant) -> bool:
    return (a.backend, a.model, a.version) == (b.backend, b.model, b.version)


def check_analysis(route: Route) -> None:
    """Validate ``route.analysis`` against the route; ``ValueError`` says what to fix."""
    analysis = route.analysis
    if analysis is None:
        return
    names = [v.name for v in route.variants]
    stable = names[0]
    if analysis.canary not in names:
        raise ValueError(f"analysis.canary {analysis.canary!r} is not one of {names}")
    if analysis.canary == stable:
        raise ValueError(
            f"analysis.canary {analysis.canary!r} is the route's first variant, which is the "
            "stable baseline; list the stable variant first"
        )
    others = sum(v.weight for v in route.variants if v.name not in (stable, analysis.canary))
    top = analysis.weights()[-1]
    if others + top > 100:
        raise ValueError(
            f"analysis steps reach {top}% but other variants hold {others}%: "
            "lower the last step or those weights"
        )
    divergence = analysis.checks.divergence
    if divergence is None:
        return
    shadow = route.shadow
    canary = route.variant(analysis.canary)
    promoted = canary is not None and _same_target(canary, route.stable)
    if shadow is None and promoted:
        # After a promotion the canary serves stable's own model and the promotion removed the
        # shadow (nothing to compare); starting a run needs one again (the controller says so).
        return
    if shadow is None or shadow.compare is None or shadow.variant != analysis.canary:
        raise ValueError(
            "a divergence check needs `shadow: {variant: <canary>, percent: ..., compare: ...}` "
            "so that the canary answers copies of requests the stable variant serves"
        )
    wants_min = HIGHER_IS_BETTER[shadow.compare]
    if wants_min != (divergence.min is not None):
        bound = "min" if wants_min else "max"
        raise ValueError(f"divergence check on {shadow.compare} needs `{bound}`")
