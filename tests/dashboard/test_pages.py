"""Each page in Chromium against the seeded server: the charts and tables show what the API
returns, the explorer's state lives in the URL, exports download the query's formats."""

from __future__ import annotations

import time
import urllib.parse
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import Server
from tests.dashboard.conftest import shoot, ws_route_exists


def api(server: Server, path: str, **params: Any) -> Any:
    r = httpx.get(server.url + path, params=params, timeout=30)
    r.raise_for_status()
    return r.json()


def query_starts(page: Any) -> list[int]:
    """The ``start`` of every ``/api/v1/query`` the page sends from now on."""
    starts: list[int] = []

    def seen(request: Any) -> None:
        url = urllib.parse.urlsplit(request.url)
        if url.path == "/api/v1/query":
            starts.extend(int(float(v)) for v in
                          urllib.parse.parse_qs(url.query).get("start", []))

    page.on("request", seen)
    return starts


def test_overview_shows_health_key_charts_and_firing_alerts(page: Any, seeded: Server) -> None:
    starts = query_starts(page)
    page.goto(seeded.url + "/")
    perf = api(seeded, "/api/v1/analytics/performance")
    page.wait_for_selector("#firing-table tbody tr")
    page.wait_for_selector("#overview-charts .chart canvas")
    assert float(page.text_content("#kpi-health") or "nan") == round(
        perf["system_health_score"], 1)
    firing = (len(api(seeded, "/api/v1/alerts", state="triggered")["alerts"])
              + len(api(seeded, "/api/v1/alerts", state="acknowledged")["alerts"]))
    assert page.text_content("#kpi-firing") == str(firing)
    assert page.locator("#firing-table tbody tr").count() == min(firing, 20)
    charts = page.locator("#overview-charts .chart[data-render-ms]")
    charts.first.wait_for()
    assert charts.count() == 4
    cpu = page.locator('#overview-charts .chart[data-metric="cpu_usage_percent"]')
    points = sum(len(s["points"]) for s in api(
        seeded, "/api/v1/query", name="cpu_usage_percent", step="5m", fn="avg",
        start=str(int(time.time()) - 6 * 3600))["series"])
    shown = int(cpu.get_attribute("data-points") or 0)
    assert shown > 0
    assert abs(shown - points) <= 9  # one 5 min bucket per series may have moved
    # on the 5-minute grid: the server reads the 5m tier and caches all but the fresh tail
    assert starts and all(s % 300 == 0 for s in starts)
    # the ingest rate: from dashboard_update when live, else between two status polls
    page.wait_for_function(
        "() => !isNaN(parseFloat(document.querySelector('#kpi-ingest').textContent))",
        timeout=15_000)
    if not ws_route_exists(seeded):
        assert page.get_attribute("#live", "data-state") == "polling"
        assert "live updates unavailable" in (page.text_content("#live") or "")
    shoot(page, "overview")


def test_explorer_state_in_url_chart_table_and_exports(page: Any, seeded: Server) -> None:
    page.goto(seeded.url + "/#/explorer")
    page.wait_for_selector("#ex-name option[value=cpu_usage_percent]", state="attached")
    page.select_option("#ex-name", "cpu_usage_percent")
    page.fill("#ex-match", "region=us-east-1")
    page.select_option("#ex-range", "6h")
    page.fill("#ex-step", "5m")
    page.select_option("#ex-fn", "max")
    starts = query_starts(page)
    page.click("#ex-form button[type=submit]")
    page.wait_for_selector("#ex-series tbody tr")
    assert starts and all(s % 300 == 0 for s in starts)  # on the grid of the step
    page.wait_for_function("() => location.hash.includes('fn=max')")
    url = page.url
    assert "name=cpu_usage_percent" in url and "match=region%3Dus-east-1" in url
    assert "step=5m" in url and "range=6h" in url
    want = api(seeded, "/api/v1/query", name="cpu_usage_percent", match="region=us-east-1",
               step="5m", fn="max")["series"]
    assert page.locator("#ex-series tbody tr").count() == len(want) == 5
    assert page.get_attribute("#ex-chart", "data-series") == str(len(want))

    # the URL is shareable: a new page opens on the same query
    other = page.context.new_page()
    other.goto(url)
    other.wait_for_selector("#ex-series tbody tr")
    assert other.input_value("#ex-match") == "region=us-east-1"
    assert other.input_value("#ex-fn") == "max"
    assert other.locator("#ex-series tbody tr").count() == len(want)
    other.close()

    csv_head = b'"name","host","region","service","timestamp","value"'
    for fmt, head in (("csv", csv_head), ("json", b"{"), ("parquet", b"PAR1")):
        with page.expect_download() as dl:
            page.click(f"button[data-export={fmt}]")
        body = Path(dl.value.path()).read_bytes()
        assert dl.value.suggested_filename == f"cpu_usage_percent.{fmt}"
        assert body.startswith(head), (fmt, body[:60])
    shoot(page, "explorer")


def test_explorer_shows_the_api_message_for_a_bad_step(page: Any, seeded: Server,
                                                       console: Any) -> None:
    console.allow("status of 400")
    page.goto(seeded.url + "/#/explorer?name=cpu_usage_percent&range=1h&step=fortnight")
    page.wait_for_function("() => document.querySelector('#ex-error').textContent.length > 0")
    detail = httpx.get(seeded.url + "/api/v1/query", params={
        "name": "cpu_usage_percent", "step": "fortnight"}).json()["errors"][0]
    assert page.text_content("#ex-error") == f"{detail['field']}: {detail['reason']}"


def test_tasks_page_shows_performance_and_bottlenecks(page: Any, seeded: Server) -> None:
    page.goto(seeded.url + "/#/tasks")
    page.wait_for_selector("#slowest-tasks tbody tr")
    b = api(seeded, "/api/v1/analytics/bottlenecks")
    rows = page.locator("#slowest-tasks tbody tr")
    assert rows.count() == len(b["slowest_tasks"]) > 0
    assert b["slowest_tasks"][0]["task_name"] in (rows.first.text_content() or "")
    assert page.locator("#slowest-steps tbody tr").count() == len(b["slowest_steps"])
    perf = api(seeded, "/api/v1/analytics/performance")
    assert float(page.text_content("#tasks-health") or "nan") == round(
        perf["system_health_score"], 1)
    assert page.locator("#tasks-trends tbody tr").count() == len(perf["performance_trends"])
    shoot(page, "tasks")


def test_analytics_marks_anomalies_forecast_band_heatmap_insights(page: Any,
                                                                  seeded: Server) -> None:
    page.goto(seeded.url + "/#/analytics?name=cpu_usage_percent&range=6h")
    page.wait_for_selector("#an-anomalies[data-render-ms]")
    page.wait_for_selector("#an-forecast [data-render-ms]")
    page.wait_for_selector("#corr-heatmap")
    page.wait_for_selector("#an-insights ul, #an-insights p")
    start = str(int(time.time()) - 6 * 3600)
    n = len(api(seeded, "/api/v1/analytics/correlations", name="cpu_usage_percent",
                start=start)["matrix"]["labels"])
    assert page.locator("#corr-heatmap tbody tr").count() == n
    assert page.locator("#corr-heatmap tbody td").count() == n * n
    assert page.get_attribute("#an-forecast [data-horizon]", "data-horizon") == "60"
    assert int(page.get_attribute("#an-anomalies", "data-series") or 0) == 6
    doc = api(seeded, "/api/v1/analytics/anomalies", name="cpu_usage_percent", start=start)
    marked = sum(len(s["anomalies"]) for s in doc["series"][:6])
    assert abs(int(page.get_attribute("#an-anomalies", "data-anomalies") or -99) - marked) <= 2
    assert page.locator("#an-anomalies canvas").count() == 1
    assert "health" in (page.text_content("#an-health-score") or "")
    shoot(page, "analytics")
