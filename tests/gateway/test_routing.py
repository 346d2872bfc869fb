"""The routing function on its own: weighted split, stickiness, consistent moves, pins."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from gateway.config import Route, Variant
from gateway.errors import ModelNotFound
from gateway.routing import RequestFacts, choose, facts_from


def route(stable: int, canary: int, **over: object) -> Route:
    return Route.model_validate(
        {
            "variants": [
                {"name": "stable", "backend": "ts", "model": "a", "weight": stable},
                {
                    "name": "canary",
                    "backend": "ts",
                    "model": "b",
                    "weight": canary,
                    "version": "2.0",
                },
            ],
            **over,
        }
    )


def test_weighted_split_without_key_follows_weights() -> None:
    rng = random.Random(7)
    counts = Counter(
        choose("m", route(90, 10), RequestFacts(), rng.random).name for _ in range(10_000)
    )
    assert abs(counts["canary"] / 10_000 - 0.10) <= 0.02


def test_sticky_key_always_gets_the_same_variant() -> None:
    r = route(50, 50)
    for key in (f"user-{i}" for i in range(200)):
        seen = {choose("m", r, RequestFacts(sticky_key=key)).name for _ in range(100)}
        assert len(seen) == 1


def test_raising_the_canary_moves_about_ten_percent_all_to_the_canary() -> None:
    keys = [f"user-{i}" for i in range(10_000)]
    before = {k: choose("m", route(90, 10), RequestFacts(sticky_key=k)).name for k in keys}
    after = {k: choose("m", route(80, 20), RequestFacts(sticky_key=k)).name for k in keys}
    moved = [k for k in keys if before[k] != after[k]]
    assert 0.08 <= len(moved) / len(keys) <= 0.12
    assert all(before[k] == "stable" and after[k] == "canary" for k in moved)


def test_sticky_split_follows_weights_and_differs_per_route() -> None:
    keys = [f"user-{i}" for i in range(10_000)]
    on_a = [choose("a", route(90, 10), RequestFacts(sticky_key=k)).name for k in keys]
    on_b = [choose("b", route(90, 10), RequestFacts(sticky_key=k)).name for k in keys]
    assert abs(on_a.count("canary") / len(keys) - 0.10) <= 0.02
    assert on_a != on_b  # each route hashes independently


def test_pin_and_version() -> None:
    r = route(100, 0, pin_header="X-Servegate-Variant")
    assert choose("m", r, RequestFacts(pinned_variant="canary")).name == "canary"
    assert (
        choose("m", r, RequestFacts(version="2.0")).name == "canary"
    )  # weight 0, pinned by version
    assert choose("m", r, RequestFacts(version="1.0")).name == "stable"
    with pytest.raises(
        ModelNotFound,
        match=r"^Variant not found: m/ghost; X-Servegate-Variant takes one of: stable, canary$",
    ):
        choose("m", r, RequestFacts(pinned_variant="ghost"))
    with pytest.raises(ModelNotFound):
        choose("m", r, RequestFacts(version="9"))
    with pytest.raises(ModelNotFound):  # a pin must agree with a version pin
        choose("m", r, RequestFacts(version="1.0", pinned_variant="canary"))


def test_facts_only_honour_what_the_route_allows() -> None:
    headers = {"X-Servegate-Variant": "canary", "X-User": "u1"}
    closed = route(90, 10)
    assert facts_from(closed, headers, {}) == RequestFacts()
    opened = route(90, 10, pin_header="X-Servegate-Variant", sticky={"cookie": "sid"})
    assert facts_from(opened, headers, {"sid": "abc"}, "1.0") == RequestFacts(
        "abc", "canary", "1.0"
    )


def test_zero_weight_variant_is_never_drawn() -> None:
    r = route(100, 0)
    rng = random.Random(1)
    assert {choose("m", r, RequestFacts(), rng.random).name for _ in range(2000)} == {"stable"}
    assert isinstance(r.variants[0], Variant)
