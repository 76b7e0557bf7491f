"""The dashboard is served by the service itself: the page and its assets are public, the
API behind it is not; a pasted token is kept and sent as ``Authorization: Bearer``."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import Server, make_settings
from tests.dashboard.conftest import Console, ws_route_exists
from tests.security.conftest import AUDIENCE, ISSUER, SECRET, bearer
from vigil import demo
from vigil.api import dashboard
from vigil.app import Components, build
from vigil.core.timeutil import now_ms


@pytest.fixture
def secure(tmp_path: Path) -> Iterator[Server]:
    c: Components = build(make_settings(tmp_path, retention_raw=0, jwt_secret=SECRET,
                                        jwt_audience=AUDIENCE, jwt_issuer=ISSUER),
                          start_maintenance=False)
    end = now_ms()
    c.pipeline.write_sync("acme", demo.generate("acme", end - 3_600_000, end, 60_000), "demo")
    try:
        with Server(c) as s:
            yield s
    finally:
        c.close()


def test_page_and_assets_are_public_the_api_is_not(secure: Server) -> None:
    with httpx.Client(base_url=secure.url) as http:
        page = http.get("/")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert "default-src 'self'" in page.headers["content-security-policy"]
        assert '<script type="module" src="/ui/app.js">' in page.text
        for asset, kind in (("/ui/app.js", "javascript"), ("/ui/style.css", "css"),
                            ("/ui/vendor/uPlot.iife.min.js", "javascript"),
                            ("/ui/pages/alerts.js", "javascript")):
            r = http.get(asset)
            assert r.status_code == 200, asset
            assert kind in r.headers["content-type"], asset
        assert http.get("/ui/nothing-here.js").status_code == 404
        assert http.get("/ui/../package.json").status_code == 404
        assert http.get("/api/v1/metrics").status_code == 401
        assert http.get("/api/v1/metrics", headers=bearer("acme", "viewer")).status_code == 200


def test_a_pasted_token_is_stored_and_sent(browser: Any, secure: Server) -> None:
    console = Console()
    console.allow("status of 401")  # the first load, before the token is pasted
    if not ws_route_exists(secure):
        console.allow("/api/v1/ws' failed")
    context = browser.new_context()
    page = context.new_page()
    page.on("console", lambda m: m.type == "error" and console.errors.append(m.text))
    page.on("pageerror", lambda e: console.errors.append(f"uncaught: {e}"))
    try:
        page.goto(secure.url + "/#/explorer")
        page.wait_for_function("() => document.querySelector('#ex-error').textContent")
        assert "401" in (page.text_content("#ex-error") or "") or "credential" in (
            page.text_content("#ex-error") or "").lower()
        token = bearer("acme", "viewer")["Authorization"].removeprefix("Bearer ")
        page.fill("#token", token)
        page.click("#token-form button")
        page.wait_for_selector("#ex-series tbody tr")
        assert page.evaluate("() => localStorage.getItem('vigil.token')") == token
        assert page.locator("#ex-series tbody tr").count() == 9
        page.reload()  # kept across loads
        page.wait_for_selector("#ex-series tbody tr")
    finally:
        context.close()
    assert console.unexpected() == []


def test_without_the_charting_library_the_page_says_how_to_fetch_it(
        secure: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bare = tmp_path / "static"
    shutil.copytree(dashboard.STATIC, bare, ignore=shutil.ignore_patterns("vendor"))
    monkeypatch.setattr(dashboard, "STATIC", bare)
    with httpx.Client(base_url=secure.url) as http:
        page = http.get("/")
    assert page.status_code == 503
    assert "npm ci" in page.text and "make install" in page.text


def test_a_wheel_carries_the_dashboard(tmp_path: Path) -> None:
    """A non-editable install serves the same files: they are package data."""
    root = Path(__file__).resolve().parents[2]
    src = tmp_path / "src"
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(root / name, src.parent / name)
    shutil.copytree(root / "src", src, ignore=shutil.ignore_patterns(
        "node_modules", "__pycache__", "*.egg-info"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", str(tmp_path),
                    "-w", str(tmp_path / "dist")], check=True, cwd=tmp_path, timeout=300)
    [wheel] = (tmp_path / "dist").glob("vigil-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    static = dashboard.STATIC
    want = {f"vigil/dashboard/static/{p.relative_to(static).as_posix()}"
            for p in static.rglob("*") if p.is_file() and not p.name.startswith(".")}
    assert "vigil/dashboard/static/vendor/uPlot.iife.min.js" in want
    assert want <= names, sorted(want - names)
