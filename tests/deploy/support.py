"""Paths of the deployment files, and the metric names their PromQL queries."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import promql_parser
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
COMPOSE_FILE = ROOT / "docker-compose.yml"
PROMETHEUS = DEPLOY / "prometheus"
ALERTS = PROMETHEUS / "alerts.yml"
DASHBOARDS = DEPLOY / "grafana" / "dashboards"
OVERLAYS = ("cpu", "gpu")
# Grafana's variables, replaced by values PromQL accepts before parsing.
GRAFANA_VARS = {"$__rate_interval": "5m", "$__range": "1h", "$__interval": "15s", "$route": ".*"}


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def metric_names(expr: str) -> set[str]:
    """Every metric name a PromQL expression selects (parsed, not pattern-matched)."""
    for var, value in GRAFANA_VARS.items():
        expr = expr.replace(var, value)
    names: set[str] = set()

    def visit(node: Any) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            assert node.name, f"selector without a metric name in {expr!r}"
            names.add(node.name)

    promql_parser.walk(promql_parser.parse(expr), visit)
    return names


def rule_exprs() -> dict[str, str]:
    """alert or record name -> expression, over every rule group in alerts.yml."""
    out = {}
    for group in load_yaml(ALERTS)["groups"]:
        for rule in group["rules"]:
            out[rule.get("alert") or rule["record"]] = rule["expr"]
    return out


def recorded_names() -> set[str]:
    return {
        rule["record"]
        for g in load_yaml(ALERTS)["groups"]
        for rule in g["rules"]
        if "record" in rule
    }


def dashboard_exprs() -> dict[str, str]:
    """'<dashboard> / <panel or variable>' -> query, for every dashboard JSON."""
    out = {}
    for path in sorted(DASHBOARDS.glob("*.json")):
        dash = json.loads(path.read_text())
        for panel in dash["panels"]:
            for target in panel.get("targets", []):
                out[f"{path.stem} / {panel['title']} / {target['refId']}"] = target["expr"]
        for var in dash.get("templating", {}).get("list", []):
            if var["type"] == "query":
                query = var["query"]["query"] if isinstance(var["query"], dict) else var["query"]
                match = re.fullmatch(r"label_values\((.+),\s*\w+\)", query)
                assert match, f"unexpected variable query {query!r}"
                out[f"{path.stem} / ${var['name']}"] = match.group(1)
    return out
