"""The live path of the dashboard over the server's ``/api/v1/ws``: the live indicator,
values taken from ``dashboard_update``, and a list that refreshes on an alert event
without polling."""

from __future__ import annotations

import contextlib
from typing import Any

import httpx

from tests.conftest import Server
from tests.dashboard.conftest import Console, ws_route_exists


def test_live_indicator_dashboard_update_and_alert_events(browser: Any,
                                                          seeded: Server) -> None:
    live_server = seeded
    assert ws_route_exists(seeded)
    console = Console()
    context = browser.new_context()
    page = context.new_page()
    page.on("console", lambda m: m.type == "error" and console.errors.append(m.text))
    page.on("pageerror", lambda e: console.errors.append(f"uncaught: {e}"))
    try:
        page.goto(live_server.url + "/")
        page.wait_for_selector("#live[data-state=live]")
        page.wait_for_function(  # the rate of a dashboard_update: a number
            "() => !isNaN(parseFloat(document.querySelector('#kpi-ingest').textContent))")

        page.goto(live_server.url + "/#/alerts?state=triggered")
        page.wait_for_selector("#alerts-table button[data-action=ack]")
        button = page.locator("#alerts-table button[data-action=ack]").first
        target = button.get_attribute("data-id") or ""
        # acknowledged by another client: the event, not a poll, refreshes the list
        with contextlib.closing(httpx.Client(base_url=live_server.url)) as http:
            http.post(f"/api/v1/alerts/{target}/acknowledge", json={"by": "someone"})
        page.wait_for_selector(f'#alerts-table button[data-id="{target}"][data-action=ack]',
                               state="detached", timeout=4000)  # polling would take 5 s
    finally:
        context.close()
    assert console.unexpected() == []
