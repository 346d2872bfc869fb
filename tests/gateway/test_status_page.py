"""The status page in a real headless Chromium (Debian's package; never a downloaded one)."""

from __future__ import annotations

import re
import shutil
import threading
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import ConsoleMessage, sync_playwright

from tests.gateway.support import fire, run_gateway, split_route, write_config

pytestmark = [pytest.mark.integration, pytest.mark.browser]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
]


def test_status_page_shows_routes_and_live_numbers(fake_config_path: Path) -> None:
    errors: list[str] = []
    with run_gateway(fake_config_path) as gw, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page()

        def on_console(msg: ConsoleMessage) -> None:
            if msg.type == "error":
                errors.append(msg.text)

        page.on("console", on_console)
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(gw.admin_url + "/")
        for route in ("mlp", "minilm"):
            page.wait_for_selector(f"section[data-route='{route}']")
        stable = page.locator("section[data-route='mlp'] tr[data-variant='stable']")
        assert stable.locator("td").nth(1).inner_text() == "90"
        before = int(stable.locator("td").nth(6).inner_text())
        traffic = threading.Thread(target=fire, args=(f"{gw.url}/predictions/mlp", 200))
        traffic.start()
        traffic.join()
        page.wait_for_function(
            "() => Number(document.querySelector(\"section[data-route='mlp'] "
            "tr[data-variant='stable'] td:nth-child(7)\").textContent) > " + str(before + 100)
        )
        cells = [c.inner_text() for c in stable.locator("td").all()]
        assert float(cells[2]) > 0  # req/s over the window
        assert re.fullmatch(r"\d+\.\d", cells[4]) and re.fullmatch(r"\d+\.\d", cells[5])  # p50/p99
        assert cells[3] == "0.0"  # error rate
        assert cells[8] == "mlp_torchscript 1.0"  # which model (and so format) it runs
        window = page.locator("#window").inner_text()
        assert window == "req/s, errors and latencies are taken over the last 10 s"
        browser.close()
    assert errors == []


def test_status_page_shows_the_canary_analysis_and_its_last_checks(
    fake_backends: dict[str, Any], tmp_path: Path
) -> None:
    route = split_route(100, 0)
    # No traffic: the analysis holds, then fails at its deadline and rolls back (threshold 1).
    route["analysis"] = {
        "canary": "canary",
        "interval_s": 0.5,
        "deadline_s": 1.0,
        "threshold": 1,
        "steps": [25, 100],
        "checks": {"error_rate": {"max": 0.01}},
    }
    config = write_config(tmp_path / "gateway.yaml", fake_backends, {"mlp": route})
    with run_gateway(config) as gw, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page()
        page.goto(gw.admin_url + "/")
        box = page.locator("section[data-route='mlp'] .analysis")
        box.wait_for()
        assert "canary analysis: idle" in box.inner_text()
        with gw.admin() as admin:
            admin.post("/admin/canary/mlp/start", headers=gw.auth).raise_for_status()
        page.wait_for_selector("section[data-route='mlp'] .analysis[data-phase='analysing']")
        assert "step 1/2 (canary at 25%)" in box.inner_text()
        # The run ends rolled back: the route is idle again, the rollback shown as its last run.
        page.wait_for_selector(
            "section[data-route='mlp'] "
            ".analysis[data-phase='idle'][data-last-outcome='rolled_back']",
            timeout=30_000,
        )
        text = box.inner_text()
        assert "canary analysis: idle" in text
        reason = box.locator(".reason").inner_text()
        assert "last run: rolled back" in reason and "failed checks 1/1" in reason
        assert "no verdict for 1s" in reason
        requests = box.locator("tr[data-check='requests'] td")
        assert requests.nth(0).inner_text() == "requests"
        assert requests.nth(2).inner_text() == ">= 20"
        browser.close()
