"""The data plane on its own, against an in-process fake backend (no TorchServe, no listener):
route lookup, facts, variant choice, shadow, forwarding and retries, refusal counting,
readiness (asked concurrently) and metadata, as every protocol layer gets them."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import pytest

from gateway import retries
from gateway.backends import Backend, BackendResponse, ModelSignature, Payload, TensorSpec
from gateway.config import LoadedConfig, Variant, validate_config
from gateway.dataplane import DataPlane
from gateway.errors import BackendUnavailable, BadRequest, GatewayError, ModelNotFound
from gateway.routing import RequestFacts
from gateway.settings import load_settings
from gateway.state import Gateway, Table

T = TypeVar("T")
PAYLOAD = Payload(b'{"inputs": [1]}', "application/json")
SIGNATURE = ModelSignature(
    "raw", (TensorSpec("features", "FP32", (-1, 16)),), (TensorSpec("out", "FP32", (-1, 2)),)
)


class FakeBackend(Backend):
    """Answers 200 with the variant's name, or what ``answers`` holds next (an answer or an
    error to raise); ``ready`` and ``serves`` as set; records every call."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.answers: list[BackendResponse | Exception] = []
        self.calls: list[tuple[str, Payload, float]] = []
        self.healthy = True
        self.served: bool | None = True
        self.ready_gate: Callable[[], Awaitable[None]] | None = None

    async def predict(
        self, variant: Variant, payload: Payload, timeout_s: float
    ) -> BackendResponse:
        self.calls.append((variant.name, payload, timeout_s))
        if self.answers:
            answer = self.answers.pop(0)
            if isinstance(answer, Exception):
                raise answer
            return answer
        return BackendResponse(200, json.dumps({"variant": variant.name}).encode(), "text/json")

    async def ready(self) -> bool:
        if self.ready_gate is not None:
            await self.ready_gate()
        return self.healthy

    def signature(self, variant: Variant) -> ModelSignature:
        return SIGNATURE

    async def serves(self, variant: Variant) -> bool | None:
        return self.served

    async def scrape(self) -> str | None:
        return None


ROUTES: dict[str, Any] = {
    "mlp": {
        "variants": [
            {"name": "stable", "backend": "a", "model": "m_ts", "weight": 100},
            {"name": "canary", "backend": "b", "model": "m_onnx", "version": "2.0", "weight": 0},
        ],
        "pin_header": "X-Pin",
        "timeout_s": 5.0,
    },
}


@pytest.fixture
def plane() -> Iterator[tuple[DataPlane, dict[str, FakeBackend]]]:
    yield make_plane(ROUTES)


def make_plane(routes: dict[str, Any]) -> tuple[DataPlane, dict[str, FakeBackend]]:
    url = {"inference_url": "http://127.0.0.1:9"}
    config = validate_config({"backends": {"a": url, "b": url}, "routes": routes})
    gw = Gateway(load_settings(), LoadedConfig(config, "v1"), primary=False)
    fakes = {"a": FakeBackend("a"), "b": FakeBackend("b")}
    gw.table = Table(gw.table.loaded, fakes)
    return DataPlane(gw), fakes


def run(dp: DataPlane, work: Awaitable[T]) -> T:
    async def main() -> T:
        try:
            return await work
        finally:
            await dp.gw.shadow.drain()
            await dp.gw.aclose()

    return asyncio.run(main())


def requests(dp: DataPlane, route: str, variant: str, code: str, protocol: str = "rest") -> float:
    labels = {"route": route, "variant": variant, "protocol": protocol, "code": code}
    return dp.gw.metrics.registry.get_sample_value("servegate_requests_total", labels) or 0.0


async def infer(dp: DataPlane, headers: dict[str, str], version: str | None = None) -> Any:
    with dp.inference("mlp", "grpc") as call:
        return await call.infer(PAYLOAD, call.facts(headers, dict, version))


def test_a_request_goes_to_the_chosen_variant_and_is_measured(plane: Any) -> None:
    dp, fakes = plane
    out = run(dp, infer(dp, {}))
    assert (out.route, out.variant.name, out.response.status) == ("mlp", "stable", 200)
    assert fakes["a"].calls == [("stable", PAYLOAD, pytest.approx(5.0, abs=0.5))]
    assert requests(dp, "mlp", "stable", "200", "grpc") == 1
    assert (dp.gw.requests.started, dp.gw.requests.answered, dp.gw.requests.in_flight) == (1, 1, 0)


def test_pin_and_version_choose_the_variant(plane: Any) -> None:
    dp, _ = plane
    assert run(dp, infer(dp, {"X-Pin": "canary"})).variant.name == "canary"
    dp, _ = make_plane(ROUTES)
    assert run(dp, infer(dp, {}, version="2.0")).variant.name == "canary"


def test_the_clients_deadline_bounds_the_upstream_timeout(plane: Any) -> None:
    dp, fakes = plane

    async def work() -> None:
        with dp.inference("mlp", "rest") as call:
            await call.infer(PAYLOAD, RequestFacts(), deadline_s=0.5)

    run(dp, work())
    assert fakes["a"].calls[0][2] <= 0.5


def test_refusals_are_counted_once_with_config_only_labels(plane: Any) -> None:
    dp, _ = plane

    async def refused(model: str, exc: GatewayError | None = None, **facts: str) -> None:
        with pytest.raises(GatewayError), dp.inference(model, "rest") as call:
            if exc is not None:
                raise exc
            await call.infer(PAYLOAD, RequestFacts(**facts))

    async def work() -> None:
        await refused("nope")
        await refused("mlp", BadRequest("bad body"))
        await refused("mlp", pinned_variant="ghost")
        await refused("mlp", version="9")

    run(dp, work())
    assert requests(dp, "_unknown", "_none", "404") == 1
    assert requests(dp, "mlp", "_none", "400") == 1
    assert requests(dp, "mlp", "_none", "404") == 2
    assert dp.gw.requests.started == 0


def test_an_upstream_failure_is_the_variants_not_a_refusal(plane: Any) -> None:
    dp, fakes = plane
    fakes["a"].answers = [BackendUnavailable("refused")]
    with pytest.raises(BackendUnavailable) as caught:
        run(dp, infer(dp, {}))
    assert caught.value.variant == "stable"
    assert requests(dp, "mlp", "stable", "503", "grpc") == 1
    assert requests(dp, "mlp", "_none", "503", "grpc") == 0
    assert dp.gw.requests.answered == 1


def test_a_connection_never_opened_is_retried_and_a_killed_worker_is_503(
    plane: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    dp, fakes = plane
    monkeypatch.setattr(retries, "backoff_s", lambda: 0.0)
    unopened = BackendUnavailable("connect failed")
    unopened.before_sent = True
    fakes["a"].answers = [unopened, BackendResponse(507, b"{}", "application/json")]
    out = run(dp, infer(dp, {}))
    assert out.response.status == 503 and json.loads(out.response.body)["code"] == 503
    assert len(fakes["a"].calls) == 2  # the only variant in rotation: the same one again


def test_a_cancelled_request_is_abandoned_and_counted_499(plane: Any) -> None:
    dp, fakes = plane

    async def never(variant: Variant, payload: Payload, timeout_s: float) -> BackendResponse:
        await asyncio.sleep(60)
        raise AssertionError

    fakes["a"].predict = never  # type: ignore[method-assign]

    async def work() -> None:
        task = asyncio.create_task(infer(dp, {}))
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    run(dp, work())
    assert requests(dp, "mlp", "stable", "499", "grpc") == 1
    assert (dp.gw.requests.abandoned, dp.gw.requests.in_flight) == (1, 0)


def test_the_shadow_sender_mirrors_what_the_route_samples() -> None:
    routes = {"mlp": {**ROUTES["mlp"], "shadow": {"variant": "canary", "percent": 100}}}
    dp, fakes = make_plane(routes)
    out = run(dp, infer(dp, {}))
    assert out.variant.name == "stable" and [c[0] for c in fakes["b"].calls] == ["canary"]
    shadowed = {"route": "mlp", "variant": "canary"}
    registry = dp.gw.metrics.registry
    assert registry.get_sample_value("servegate_shadow_requests_total", shadowed) == 1
    dp, fakes = make_plane(routes)
    assert run(dp, infer(dp, {"X-Pin": "canary"})).variant.name == "canary"
    assert len(fakes["b"].calls) == 1  # served by the shadow variant: no copy to itself


def test_readiness_asks_every_backend_concurrently(plane: Any) -> None:
    dp, fakes = plane
    arrived = 0

    async def both_asked() -> None:  # returns only once every backend has been asked
        nonlocal arrived
        arrived += 1
        while arrived < len(fakes):
            await asyncio.sleep(0)

    for fake in fakes.values():
        fake.ready_gate = both_asked
    assert run(dp, asyncio.wait_for(dp.ready(), 1.0)) is True
    dp, fakes = make_plane(ROUTES)
    fakes["b"].healthy = False
    assert run(dp, dp.ready()) is False


def test_model_readiness_follows_the_variants_that_take_traffic(plane: Any) -> None:
    dp, fakes = plane
    fakes["b"].served = False  # the canary (weight 0) is not served
    assert run(dp, dp.model_ready("mlp", None)) is True
    dp, fakes = make_plane(ROUTES)
    fakes["b"].served = False
    assert run(dp, dp.model_ready("mlp", "2.0")) is False
    for model, version in (("nope", None), ("mlp", "9")):
        dp, _ = make_plane(ROUTES)
        with pytest.raises(ModelNotFound):
            run(dp, dp.model_ready(model, version))


def test_metadata(plane: Any) -> None:
    dp, _ = plane
    server = dp.server_metadata()
    assert (server.name, server.version, server.extensions) == (
        "servegate",
        "0.1.0",
        ("binary_tensor_data",),
    )
    meta = dp.model_metadata("mlp", None)
    assert (meta.name, meta.versions, meta.platform) == (
        "mlp",
        ["1.0", "2.0"],
        "servegate_torchserve",
    )
    assert (meta.inputs, meta.outputs) == (SIGNATURE.inputs, SIGNATURE.outputs)
    with pytest.raises(ModelNotFound):
        dp.model_metadata("mlp", "9")
    run(dp, asyncio.sleep(0))


def test_input_names_are_checked_against_the_metadata(plane: Any) -> None:
    dp, _ = plane
    with dp.inference("mlp", "rest") as call:
        call.check_input_names(None, ["features"])
        with pytest.raises(BadRequest, match=r"takes the input\(s\) \['features'\]"):
            call.check_input_names("2.0", ["text"])
    run(dp, asyncio.sleep(0))
