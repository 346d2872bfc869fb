"""Retries (issue 14, item 9): a request whose worker died under it, or whose connection never
opened, is retried once on another variant (or the same one after a backoff) under a budget;
never a 4xx or an answer the upstream began; 507 is answered 503; retries counted per variant."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest

from gateway.backends import BackendResponse
from gateway.dataplane import _unavailable_if_killed
from gateway.grpc.stubs import inference_pb2 as ts_pb
from gateway.retries import RetryBudget, retry_reason
from tests.conftest import free_ports, serving
from tests.gateway.canary.support import faulty_archive
from tests.gateway.grpc.support import torchserve_stub
from tests.gateway.support import MLP_ROW, fire, run_gateway, ts_backend, variant, write_config
from tests.support.archives import copy_archives
from tests.support.stub_backend import stub_backend

DIED = b'{"code": 500, "type": "InternalServerException", "message": "Worker died."}'


def answer(status: int, body: bytes = b"{}") -> BackendResponse:
    return BackendResponse(status, body, "application/json")


def test_only_a_dead_worker_is_a_reason_to_retry() -> None:
    assert retry_reason(answer(500, DIED)) == "worker_died"
    assert retry_reason(answer(507, b'{"message": "Out of resources"}')) == "worker_died"
    for status, body in ((500, b'{"message": "Prediction failed"}'), (503, b"{}"), (400, DIED)):
        assert retry_reason(answer(status, body)) is None, (status, body)
    assert retry_reason(answer(200, DIED)) is None


def test_a_killed_worker_is_503_not_507() -> None:
    mapped = _unavailable_if_killed(answer(507, b'{"message": "Out of resources"}'))
    assert mapped.status == 503 and json.loads(mapped.body)["code"] == 503
    assert _unavailable_if_killed(answer(500, DIED)).status == 500


def test_the_budget_holds_retries_to_a_fifth_of_requests_in_flight() -> None:
    budget = RetryBudget()
    budget.requests = 50
    granted = sum(budget.acquire() for _ in range(50))
    assert granted == 10  # 20% of 50 in flight
    budget.release()
    assert budget.acquire() and not budget.acquire()
    small = RetryBudget()
    small.requests = 2
    assert sum(small.acquire() for _ in range(10)) == 3  # never below 3 in flight


@pytest.mark.integration
@pytest.mark.torchserve  # starts its own, with a worker that dies on cue
def test_a_request_whose_worker_died_is_retried_on_another_variant(
    tmp_path: Path, model_store: Path
) -> None:
    store = tmp_path / "store"
    copy_archives(model_store, store, "mlp_torchscript.mar")
    faulty_archive(model_store / "mlp_torchscript.mar", store, "mlp_fragile", {"die_on": "die"})
    with serving(store, tmp_path / "ts") as ts:
        route = {
            "variants": [
                variant("fragile", "mlp_fragile", 99),
                variant("steady", "mlp_torchscript", 1),
            ]
        }
        config = write_config(tmp_path / "gateway.yaml", {"ts": ts_backend(ts)}, {"mlp": route})
        with run_gateway(config) as gw:
            url = f"{gw.url}/predictions/mlp"
            # Three at once, within the budget's minimum of three retries in flight.
            results = fire(url, 3, body={"inputs": [MLP_ROW], "note": "die"}, concurrency=3)
            assert [s for s, _ in results] == [200, 200, 200], results
            assert {v for _, v in results} == {"steady"}
            labels = {"route": "mlp", "variant": "fragile", "reason": "worker_died"}
            assert gw.metric("servegate_upstream_retries_total", **labels) >= 1
            # A client's mistake is never retried.
            assert fire(url, 1, body={"inputs": [[1.0]]})[0][0] == 400
            assert gw.metric("servegate_upstream_retries_total", route="mlp", variant="steady") == 0


@pytest.mark.integration
@pytest.mark.torchserve  # starts its own, with a worker that runs out of memory on cue
def test_torchserves_507_is_retried_elsewhere_and_is_503_with_nowhere_else_to_go(
    tmp_path: Path, model_store: Path
) -> None:
    store = tmp_path / "store"
    copy_archives(model_store, store, "mlp_torchscript.mar")
    faulty_archive(model_store / "mlp_torchscript.mar", store, "mlp_oom", {"oom_on": "oom"})
    body = {"inputs": [MLP_ROW], "note": "oom"}
    with serving(store, tmp_path / "ts") as ts:
        assert ts.predict("mlp_oom", json=body).status_code == 507  # TorchServe's own answer
        split = {
            "variants": [variant("oom", "mlp_oom", 99), variant("steady", "mlp_torchscript", 1)]
        }
        alone = {"variants": [variant("oom", "mlp_oom", 100)]}
        routes = {"mlp": split, "alone": alone}
        config = write_config(tmp_path / "gateway.yaml", {"ts": ts_backend(ts)}, routes)
        with run_gateway(config) as gw:
            results = fire(f"{gw.url}/predictions/mlp", 3, body=body, concurrency=3)
            assert results == [(200, "steady")] * 3
            resp = httpx.post(f"{gw.url}/predictions/alone", json=body, timeout=60)
    assert resp.status_code == 503, resp.text
    assert resp.json()["type"] == "ServiceUnavailableException"


@pytest.mark.integration
def test_a_connection_that_never_opened_is_retried(
    tmp_path: Path, backends: dict[str, Any]
) -> None:
    (dead_port,) = free_ports(1)
    backends = {**backends, "dead": {"inference_url": f"http://127.0.0.1:{dead_port}"}}
    route = {
        "variants": [
            variant("gone", "mlp_torchscript", 50, backend="dead"),
            variant("live", "mlp_torchscript", 50),
        ]
    }
    config = write_config(tmp_path / "gateway.yaml", backends, {"mlp": route})
    with run_gateway(config) as gw:
        results = fire(f"{gw.url}/predictions/mlp", 30, concurrency=1)
        assert {s for s, _ in results} == {200} and {v for _, v in results} == {"live"}
        labels = {"route": "mlp", "variant": "gone", "reason": "connect_failure"}
        assert gw.metric("servegate_upstream_retries_total", **labels) >= 1


# TorchServe answers 507 "Out of resources" for a request whose worker ran out of memory or
# was lost under it (issue 14, item 8): a backend written for the test answers exactly that.


@pytest.mark.integration
def test_a_507_is_retried_on_another_variant_and_never_reaches_the_client(
    tmp_path: Path,
) -> None:
    with stub_backend(status=507) as failing, stub_backend() as steady:
        backends = {"failing": failing.config(), "steady": steady.config()}
        route = {
            "variants": [
                variant("lost", "m", 99, backend="failing"),
                variant("steady", "m", 1, backend="steady"),
            ]
        }
        config = write_config(tmp_path / "gateway.yaml", backends, {"m": route})
        with run_gateway(config) as gw:
            results = fire(f"{gw.url}/predictions/m", 3, body={"n": 1}, concurrency=3)
            assert results == [(200, "steady")] * 3
            labels = {"route": "m", "variant": "lost", "reason": "worker_died"}
            assert gw.metric("servegate_upstream_retries_total", **labels) >= 1


@pytest.mark.integration
def test_a_507_with_nowhere_else_to_go_is_503_in_each_protocol(tmp_path: Path) -> None:
    with stub_backend(status=507) as failing:
        route = {"variants": [variant("only", "m", 100, backend="failing")]}
        config = write_config(
            tmp_path / "gateway.yaml", {"failing": failing.config()}, {"m": route}
        )
        with run_gateway(config) as gw, httpx.Client(base_url=gw.url, timeout=60) as client:
            rest = client.post("/predictions/m", json={"n": 1})
            tensor = {"name": "x", "datatype": "FP32", "shape": [1], "data": [1.0]}
            oip = client.post("/v2/models/m/infer", json={"inputs": [tensor]})
            with grpc.insecure_channel(gw.grpc_address) as channel:
                request = ts_pb.PredictionsRequest(model_name="m", input={"data": b"{}"})
                with pytest.raises(grpc.RpcError) as call:
                    torchserve_stub(channel).Predictions(request, timeout=60)
            retried = gw.metric(
                "servegate_upstream_retries_total", route="m", variant="only", reason="worker_died"
            )
    assert rest.status_code == 503
    assert rest.json()["code"] == 503 and rest.json()["type"] == "ServiceUnavailableException"
    assert oip.status_code == 503 and "error" in oip.json()
    assert call.value.code() == grpc.StatusCode.UNAVAILABLE
    assert retried == 3  # each request was tried twice: once, and once after a backoff
    assert failing.answered == 6
