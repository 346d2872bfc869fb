"""What the monitoring side shows: Prometheus' HTTP API (targets, the gateway's and TorchServe's
series for the route, rule health), every dashboard query evaluated by the live Prometheus, and
Grafana's API listing the provisioned dashboard where a Grafana image exists."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import httpx

from deploy.e2e.steps import StepFailed

log = logging.getLogger("servegate.e2e.observe")

DASHBOARD = Path(__file__).resolve().parents[1] / "grafana" / "dashboards" / "servegate.json"
# Grafana's variables, as a Grafana with the route "minilm" selected would send them.
GRAFANA_VARS = {"$__rate_interval": "1m", "$__range": "1h", "$__interval": "15s", "$route": ".*"}


def query(prom_url: str, expr: str) -> list[dict[str, Any]]:
    resp = httpx.get(f"{prom_url}/api/v1/query", params={"query": expr}, timeout=10)
    body = resp.json()
    if resp.status_code != 200 or body.get("status") != "success":
        raise StepFailed(f"Prometheus refused {expr!r}: {body.get('error', resp.text)}")
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


def wait_for_series(prom_url: str, expr: str, timeout_s: float = 90) -> list[dict[str, Any]]:
    """Scrapes come every 15 s: poll until ``expr`` has data."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = query(prom_url, expr)
        if result:
            return result
        if time.monotonic() > deadline:
            raise StepFailed(f"no series for {expr!r} within {timeout_s:.0f} s")
        time.sleep(3)


def labels(result: list[dict[str, Any]], name: str) -> set[str]:
    return {str(r["metric"].get(name)) for r in result}


def check_prometheus(prom_url: str, route: str) -> list[str]:
    notes = []
    up = wait_for_series(prom_url, "up == 1")
    jobs = labels(up, "job")
    if not {"servegate-gateway", "torchserve"} <= jobs:
        raise StepFailed(f"targets up: {sorted(jobs)}; wanted servegate-gateway and torchserve")
    notes.append(f"targets up: {sorted(jobs)}")
    gateway = wait_for_series(prom_url, f'servegate_requests_total{{route="{route}"}}')
    variants = labels(gateway, "variant")
    if not {"stable", "canary"} <= variants:
        raise StepFailed(f"gateway series for {route} only name variants {variants}")
    served = sum(float(r["value"][1]) for r in gateway)
    notes.append(f"servegate_requests_total{{route={route}}}: {served:.0f} over {sorted(variants)}")
    relayed = wait_for_series(
        prom_url, f'servegate_backend_inference_requests_total{{route="{route}"}}'
    )
    notes.append(f"TorchServe's per-variant series via the gateway: {len(relayed)} series")
    direct = wait_for_series(prom_url, f'ts_inference_requests_total{{model_name=~"{route}_.*"}}')
    models = sorted(labels(direct, "model_name"))
    notes.append(f"ts_inference_requests_total from the torchserve job: models {models}")
    return notes


def check_rules(prom_url: str) -> str:
    groups = httpx.get(f"{prom_url}/api/v1/rules", timeout=10).json()["data"]["groups"]
    rules = [r for g in groups for r in g["rules"]]
    bad = {r["name"]: r.get("lastError") for r in rules if r.get("health") not in ("ok", None)}
    if not rules or bad:
        raise StepFailed(f"alert rules loaded: {len(rules)}; unhealthy: {bad}")
    return f"{len(rules)} alert/recording rules loaded, all healthy"


def dashboard_queries() -> dict[str, str]:
    dash = json.loads(DASHBOARD.read_text())
    out = {}
    for panel in dash["panels"]:
        for target in panel.get("targets", []):
            expr = target["expr"]
            for var, value in GRAFANA_VARS.items():
                expr = expr.replace(var, value)
            out[f"{panel['title']} / {target['refId']}"] = expr
    return out


def check_dashboard_queries(prom_url: str) -> str:
    """Every panel's query, as Grafana would send it, evaluated by the stack's Prometheus."""
    queries = dashboard_queries()
    with_data = [name for name, expr in queries.items() if query(prom_url, expr)]
    if not with_data:
        raise StepFailed("no dashboard panel has data")
    return f"{len(queries)} panel queries evaluated, {len(with_data)} with data now"


def check_grafana(grafana_url: str, password: str) -> str:
    auth = ("admin", password)
    found = httpx.get(
        f"{grafana_url}/api/search", params={"query": "servegate"}, auth=auth, timeout=10
    )
    titles = [d.get("title") for d in found.json()] if found.status_code == 200 else []
    if "servegate" not in titles:
        raise StepFailed(f"Grafana /api/search answered {found.status_code}: {found.text[:300]}")
    health = httpx.get(
        f"{grafana_url}/api/datasources/uid/servegate-prometheus/health", auth=auth, timeout=10
    )
    if health.status_code != 200:
        raise StepFailed(f"Grafana's Prometheus datasource: {health.status_code} {health.text}")
    return f"dashboards {titles}; datasource servegate-prometheus healthy"
