"""The routing decision: which variant of a route serves one request. Every protocol (REST
``/predictions``, OIP v2 REST, gRPC) calls ``choose``; nothing else picks variants.

Weighted split by bands on [0, 100): the first variant listed is the baseline and takes the top
of the range; every other variant takes a band stacked from 0 upwards in the order listed. A
request lands on the point given by its sticky key (a 64-bit hash of route and key, so every
replica decides the same with no shared state) or, without a key, on a uniform random point.

Why bands and not ``hash % n``: with a baseline and one canary at weight ``w`` the canary owns
[0, w). Raising it to ``w'`` hands it exactly [w, w'), keys that move from the baseline *to* the
canary, and nobody else moves (10% -> 20% moves ~10% of keys, all to the canary). With three or
more variants, raising a non-last canary shifts the bands after it, so some keys move between
canaries too; keep the variant that ramps first in the list after the baseline.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from gateway.config import Route, Variant
from gateway.errors import ModelNotFound

POINTS = 100.0


@dataclass(frozen=True)
class RequestFacts:
    """What a protocol layer extracted from one request; all optional."""

    sticky_key: str | None = None
    pinned_variant: str | None = None
    version: str | None = None


def facts_from(
    route: Route,
    headers: Mapping[str, str],
    cookies: Mapping[str, str],
    version: str | None = None,
) -> RequestFacts:
    """Read the route's sticky key and pin header from request metadata (header lookups are
    case-insensitive where ``headers`` is; gRPC passes its metadata here the same way)."""
    key = None
    if route.sticky is not None:
        if route.sticky.header is not None:
            key = headers.get(route.sticky.header)
        elif route.sticky.cookie is not None:
            key = cookies.get(route.sticky.cookie)
    pinned = headers.get(route.pin_header) if route.pin_header else None
    return RequestFacts(sticky_key=key or None, pinned_variant=pinned or None, version=version)


def choose(
    route_name: str,
    route: Route,
    facts: RequestFacts,
    draw: Callable[[], float] = random.random,
    ejected: frozenset[str] = frozenset(),
) -> Variant:
    """The variant that serves this request; ``ModelNotFound`` for an unknown version or pin.

    ``ejected`` variants (outlier ejection) get no weighted or sticky traffic while another
    variant can take it; a pin still reaches them: the client asked for exactly that one."""
    candidates = route.variants
    if facts.version is not None:
        candidates = tuple(v for v in candidates if v.version == facts.version)
        if not candidates:
            raise ModelNotFound(f"Model version not found: {route_name}/{facts.version}")
    if facts.pinned_variant is not None:
        pinned = next((v for v in candidates if v.name == facts.pinned_variant), None)
        if pinned is None:
            names = ", ".join(v.name for v in candidates)
            raise ModelNotFound(
                f"Variant not found: {route_name}/{facts.pinned_variant}; "
                f"{route.pin_header} takes one of: {names}"
            )
        return pinned
    if facts.sticky_key is not None:
        point = key_point(route_name, facts.sticky_key)
    else:
        point = draw() * POINTS
    if ejected:
        candidates = _without(candidates, ejected)
    return pick(candidates, point)


def _without(variants: tuple[Variant, ...], ejected: frozenset[str]) -> tuple[Variant, ...]:
    """The variants with the ejected ones at weight 0, unless that leaves no weight at all."""
    kept = tuple(
        v if v.name not in ejected else v.model_copy(update={"weight": 0}) for v in variants
    )
    return kept if any(v.weight for v in kept) else variants


def key_point(route_name: str, key: str) -> float:
    """A stable point in [0, 100) for a sticky key (blake2b, independent of PYTHONHASHSEED)."""
    digest = hashlib.blake2b(f"{route_name}\0{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64 * POINTS


def pick(variants: tuple[Variant, ...], point: float) -> Variant:
    """The variant whose band holds ``point``; see the module docstring for the layout."""
    weights = [v.weight for v in variants]
    total = sum(weights)
    if total == 0:  # a version pin can leave only weight-0 variants: split them evenly
        weights, total = [1] * len(variants), len(variants)
    scaled = point * total / POINTS
    upper = 0.0
    for variant, weight in zip(variants[1:], weights[1:], strict=True):
        upper += weight
        if scaled < upper:
            return variant
    return variants[0]
