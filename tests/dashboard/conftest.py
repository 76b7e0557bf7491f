"""Browser fixtures: one seeded server (demo metrics, task executions, alert rules and firing
alerts) and Debian's Chromium driven by Playwright. Without Chromium the tests skip, unless
``VIGIL_REQUIRE_SERVICES=1`` (CI), where they fail."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Server, make_settings
from vigil import demo, demo_alerts, demo_tasks
from vigil.app import Components, build
from vigil.core.timeutil import now_ms

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
TENANT = "default"
# Fires on every demo host right away: the alerts page has something to act on.
FIRING_RULE = {"name": "cpu busy", "metric": "cpu_usage_percent", "severity": "critical",
               "condition": {"type": "threshold", "op": ">", "threshold": 1},
               "group_by": ["host"]}


def _browser_or_skip() -> None:
    reason = None
    if not os.path.exists(CHROMIUM):
        reason = f"{CHROMIUM} is missing (apt-get install chromium; make install does it)"
    else:
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            reason = "playwright is not installed (the dev extra)"
    if reason is None:
        return
    if os.environ.get("VIGIL_REQUIRE_SERVICES") == "1":
        pytest.fail(reason)
    pytest.skip(reason)


def seed(c: Components) -> None:
    """Six hours of demo metrics, a day of task executions, the demo rules plus one that
    fires, and the live minute that fires them."""
    tenant = c.settings.default_tenant
    now = now_ms() // 10_000 * 10_000
    c.pipeline.write_sync(tenant, demo.generate(tenant, now - 6 * 3_600_000, now - 60_000,
                                                30_000), "demo")
    c.tasks.submit(tenant, demo_tasks.generate(tenant, now - demo.DAY_MS, now, 120.0)).result()
    demo_alerts.install(c.alerting, tenant)
    c.alerting.put_rule(tenant, FIRING_RULE)
    c.pipeline.write_sync(tenant, demo.generate(tenant, now - 60_000 + 1, now + 1, 10_000),
                          "demo")
    deadline = time.monotonic() + 20
    while not c.alerting.alerts(tenant, state="triggered"):
        if time.monotonic() > deadline:
            raise RuntimeError("the seeded rule did not fire")
        time.sleep(0.05)


@pytest.fixture(scope="package")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A real server over seeded demo data, shared by the browser tests."""
    _browser_or_skip()
    c = build(make_settings(tmp_path_factory.mktemp("dash"), retention_raw=0),
              start_maintenance=True)
    try:
        seed(c)
        with Server(c) as s:
            yield s
    finally:
        c.close()


@pytest.fixture(scope="package")
def browser() -> Iterator[Any]:
    _browser_or_skip()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


def ws_route_exists(server: Server) -> bool:
    stack: list[object] = list(server._server.config.app.routes)
    while stack:
        r = stack.pop()
        if getattr(r, "path", None) == "/api/v1/ws":
            return True
        sub = getattr(r, "original_router", None)
        stack.extend(getattr(sub, "routes", ()))
    return False


class Console:
    """Console errors and uncaught exceptions of a page; ``allow`` adds an expected one."""

    def __init__(self) -> None:
        self.errors: list[str] = []
        self.allowed: list[str] = []

    def allow(self, fragment: str) -> None:
        self.allowed.append(fragment)

    def unexpected(self) -> list[str]:
        return [e for e in self.errors if not any(a in e for a in self.allowed)]


@pytest.fixture
def console() -> Console:
    return Console()


@pytest.fixture
def page(browser: Any, seeded: Server, console: Console) -> Iterator[Any]:
    """A fresh page of the seeded server; the test fails on any console error but the
    ones it allowed (the WebSocket handshake while /api/v1/ws does not exist)."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000},
                                  accept_downloads=True)
    pg = context.new_page()
    pg.on("console", lambda m: m.type == "error" and console.errors.append(m.text))
    pg.on("pageerror", lambda e: console.errors.append(f"uncaught: {e}"))
    if not ws_route_exists(seeded):
        console.allow("/api/v1/ws' failed")
    yield pg
    context.close()
    assert console.unexpected() == []


def shoot(pg: Any, name: str) -> None:
    """With VIGIL_SCREENSHOTS=1, save the page as docs/screenshots/<name>.png."""
    if os.environ.get("VIGIL_SCREENSHOTS") == "1":
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        pg.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
