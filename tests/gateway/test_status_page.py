"""The status page in a real headless Chromium (Debian's package; never a downloaded one)."""

from __future__ import annotations

import re
import shutil
import threading
from pathlib import Path

import pytest
from playwright.sync_api import ConsoleMessage, sync_playwright

from tests.gateway.support import fire, run_gateway

pytestmark = pytest.mark.integration
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
]


def test_status_page_shows_routes_and_live_numbers(config_path: Path) -> None:
    errors: list[str] = []
    with run_gateway(config_path) as gw, sync_playwright() as pw:
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
        browser.close()
    assert errors == []
