"""The ``analysis`` block is validated with the config: a bad one is refused with a message
that names the field and the fix, and the last good config keeps serving."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.config import validate_config
from gateway.errors import ConfigError

BACKENDS = {"ts": {"inference_url": "http://127.0.0.1:8080"}}


def config(analysis: dict[str, Any], **route: Any) -> dict[str, Any]:
    variants = [
        {"name": "stable", "backend": "ts", "model": "a", "weight": 100},
        {"name": "canary", "backend": "ts", "model": "b", "weight": 0},
    ]
    return {
        "backends": BACKENDS,
        "routes": {"m": {"variants": variants, "analysis": analysis, **route}},
    }


GOOD = {"canary": "canary", "steps": [5, 10, 50], "checks": {"error_rate": {"max": 0.01}}}


def test_a_good_analysis_validates_with_defaults() -> None:
    analysis = validate_config(config(GOOD)).routes["m"].analysis
    assert analysis is not None
    assert analysis.weights() == (5, 10, 50)
    assert analysis.deadline == 5 * analysis.interval_s
    assert analysis.metrics.source == "gateway"


def test_step_weight_ramps_up_to_max_weight() -> None:
    ramp = {**GOOD, "steps": None, "step_weight": 20, "max_weight": 50}
    analysis = validate_config(config(ramp)).routes["m"].analysis
    assert analysis is not None and analysis.weights() == (20, 40, 50)


@pytest.mark.parametrize(
    ("change", "route", "message"),
    [
        ({"canary": "nope"}, {}, "analysis.canary 'nope' is not one of"),
        ({"canary": "stable"}, {}, "list the stable variant first"),
        ({"steps": [10, 5]}, {}, "steps must increase"),
        ({"steps": [0, 50]}, {}, "steps must be weights 1-100"),
        ({"step_weight": 10}, {}, "exactly one of `steps` or `step_weight`"),
        ({"checks": {}}, {}, "at least one of error_rate, latency, divergence"),
        ({"checks": {"latency": {}}}, {}, "set p99_max_ms, p99_max_ratio or both"),
        ({"interval_s": 10, "deadline_s": 5}, {}, "deadline_s must be at least interval_s"),
        ({"metrics": {"source": "prometheus"}}, {}, "needs `prometheus: {url: ...}`"),
        ({"threshold": 0}, {}, "threshold"),
        ({"colour": "red"}, {}, "Extra inputs are not permitted"),
        (
            {"checks": {"divergence": {"min": 0.999}}},
            {},
            "a divergence check needs `shadow:",
        ),
        (
            {"checks": {"divergence": {"min": 0.999}}},
            {"shadow": {"variant": "canary", "percent": 10, "compare": "max_abs"}},
            "divergence check on max_abs needs `max`",
        ),
    ],
)
def test_bad_analysis_is_refused_with_the_field_named(
    change: dict[str, Any], route: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        validate_config(config({**GOOD, **change}, **route))
    assert "routes.m" in caught.value.message
    assert message in caught.value.message


def test_steps_must_leave_room_for_other_variants() -> None:
    data = config({**GOOD, "steps": [50, 100]})
    data["routes"]["m"]["variants"][0]["weight"] = 90
    data["routes"]["m"]["variants"].append(
        {"name": "other", "backend": "ts", "model": "c", "weight": 10}
    )
    with pytest.raises(ConfigError, match="other variants hold 10%"):
        validate_config(data)


def test_outlier_ejection_is_validated() -> None:
    data = config(GOOD, outlier_ejection={"consecutive_failures": 0})
    with pytest.raises(ConfigError, match="consecutive_failures"):
        validate_config(data)


def test_a_generation_canary_is_judged_by_shared_greedy_tokens() -> None:
    checks = {"divergence": {"min": 0.99}}
    shadow = {"variant": "canary", "percent": 100, "compare": "tokens"}
    route = validate_config(config({**GOOD, "checks": checks}, shadow=shadow)).routes["m"]
    assert route.shadow is not None and route.shadow.compare == "tokens"
    with pytest.raises(ConfigError, match="needs `min`"):
        validate_config(config({**GOOD, "checks": {"divergence": {"max": 0.1}}}, shadow=shadow))
