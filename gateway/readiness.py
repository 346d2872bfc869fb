"""Whether each variant's backend serves the variant's model and version.

A variant is ``ready`` when its backend says it serves that model/version, ``not_served`` when
the backend answers but does not list it (a misspelled model, an archive not loaded), and
``unreachable`` when the backend could not be asked (down, or a backend kind that cannot tell).
Only ``ready`` counts as ready. The state is kept per target (backend, model, version), refreshed
every scrape interval and whenever a config is vetted or readiness is asked, and read by the
readiness endpoints, ``servegate routes``, the status page and ``servegate_variant_ready``.

Vetting a config change (``vet``): a variant that names a new target, or whose weight rises, is
refused when its backend answers that it does not serve it; when the backend cannot be asked the
change is accepted and the variant shows not ready until its backend answers.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Literal

from prometheus_client import Metric
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from gateway.backends import Backend
from gateway.config import GatewayConfig, Variant
from gateway.errors import ConfigError

State = Literal["ready", "not_served", "unreachable"]
Target = tuple[str, str, str]  # backend, model, version


@dataclass(frozen=True)
class Readiness:
    state: State
    detail: str

    @property
    def ready(self) -> bool:
        return self.state == "ready"

    def as_json(self) -> dict[str, object]:
        return {"ready": self.ready, "state": self.state, "detail": self.detail}


def target(v: Variant) -> Target:
    return (v.backend, v.model, v.version)


def readiness_of(v: Variant, served: bool | None) -> Readiness:
    if served is True:
        return Readiness("ready", "")
    if served is False:
        return Readiness(
            "not_served",
            f"backend {v.backend!r} does not serve model {v.model!r} version {v.version!r}",
        )
    return Readiness("unreachable", f"backend {v.backend!r} could not be asked")


class ReadinessTracker:
    def __init__(self) -> None:
        self._states: dict[Target, Readiness] = {}

    def get(self, v: Variant) -> Readiness | None:
        """The last known readiness; None before the first probe of its target."""
        return self._states.get(target(v))

    async def probe(
        self, backends: Mapping[str, Backend], variants: list[Variant]
    ) -> dict[Target, Readiness]:
        """Ask each target's backend once (concurrently); remember and return the answers."""
        unique = {target(v): v for v in variants if v.backend in backends}
        answers = await asyncio.gather(*(backends[v.backend].serves(v) for v in unique.values()))
        found = {t: readiness_of(v, a) for (t, v), a in zip(unique.items(), answers, strict=True)}
        self._states.update(found)
        return found

    async def refresh(self, backends: Mapping[str, Backend], config: GatewayConfig) -> None:
        variants = [v for route in config.routes.values() for v in route.variants]
        await self.probe(backends, variants)
        live = {target(v) for v in variants}
        for gone in [t for t in self._states if t not in live]:
            del self._states[gone]

    async def vet(
        self, backends: Mapping[str, Backend], new: GatewayConfig, old: GatewayConfig
    ) -> None:
        """Refuse ``new`` when a variant it brings in (new target or higher weight) is not
        served by a backend that answers (``ConfigError`` naming the variant)."""
        changed = list(_brought_in(new, old))
        if not changed:
            return
        found = await self.probe(backends, [v for _, v in changed])
        self.refuse_not_served(changed, found)

    def check(self, new: GatewayConfig, old: GatewayConfig) -> None:
        """``vet`` from what is known now, without asking (for changes made under a lock)."""
        self.refuse_not_served(list(_brought_in(new, old)), self._states)

    @staticmethod
    def refuse_not_served(
        changed: list[tuple[str, Variant]], found: Mapping[Target, Readiness]
    ) -> None:
        bad = [
            f"routes.{route}: variant {v.name!r}: {found[target(v)].detail}"
            for route, v in changed
            if target(v) in found and found[target(v)].state == "not_served"
        ]
        if bad:
            raise ConfigError(
                "; ".join(bad) + " (fix the model/version, or load that archive first)"
            )


def _brought_in(new: GatewayConfig, old: GatewayConfig) -> Iterator[tuple[str, Variant]]:
    """Variants of ``new`` that name a target ``old`` did not give them, or whose weight rose:
    the ones a change would send traffic to. Moving traffic away is never refused."""
    for name, route in new.routes.items():
        before = old.routes.get(name)
        for v in route.variants:
            was = before.variant(v.name) if before is not None else None
            if was is None or target(was) != target(v) or v.weight > was.weight:
                yield name, v


class ReadinessCollector(Collector):
    """``servegate_variant_ready{route,variant}``: 1 when its backend serves it, 0 when not
    (not served, or unreachable); absent until first probed."""

    def __init__(self, tracker: ReadinessTracker, config: Callable[[], GatewayConfig]) -> None:
        self.tracker = tracker
        self.config = config

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            "servegate_variant_ready",
            "1 when the variant's backend serves its model/version, 0 when not",
            labels=["route", "variant"],
        )
        for name, route in self.config().routes.items():
            for v in route.variants:
                state = self.tracker.get(v)
                if state is not None:
                    family.add_metric([name, v.name], 1 if state.ready else 0)
        yield family
