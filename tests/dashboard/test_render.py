"""50 series x 2,000 points from the server in the explorer's chart: every point drawn,
and the time of the render printed (never asserted)."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from tests.conftest import Server
from tests.dashboard.conftest import TENANT
from vigil.core.types import SampleBatch, SeriesKey, SeriesMeta

SERIES, POINTS = 50, 2000


def test_fifty_series_of_two_thousand_points_render(page: Any, seeded: Server) -> None:
    end = int(time.time() * 1000) // 1000 * 1000
    t = end - 1000 * np.arange(POINTS, 0, -1, dtype=np.int64)  # 1 s apart, last 33 min
    metas = [SeriesMeta(SeriesKey.of("render_probe", {"pod": f"p{i:02d}"}))
             for i in range(SERIES)]
    idx = np.repeat(np.arange(SERIES, dtype=np.int32), POINTS)
    rng = np.random.default_rng(7)
    values = (np.sin(np.tile(t, SERIES) / 60_000) * 10 + idx + rng.normal(0, 1, idx.size))
    seeded.components.pipeline.write_sync(
        TENANT, SampleBatch(metas, idx, np.tile(t, SERIES), values.astype(np.float64)), "test")

    page.goto(seeded.url + "/#/explorer?name=render_probe&range=1h&step=1s")
    page.wait_for_selector("#ex-chart[data-render-ms]", timeout=30_000)
    assert page.get_attribute("#ex-chart", "data-series") == str(SERIES)
    assert page.get_attribute("#ex-chart", "data-points") == str(SERIES * POINTS)
    first = float(page.get_attribute("#ex-chart", "data-render-ms") or "nan")
    # a second render on a warm page: a new point makes the live update (or the 5 s poll)
    # re-run the query
    seeded.components.pipeline.write_sync(TENANT, SampleBatch(
        metas[:1], np.zeros(1, np.int32), np.array([end + 1000], np.int64),
        np.array([1.0])), "test")
    took = page.evaluate("""() => new Promise((resolve) => {
        const el = document.querySelector('#ex-chart');
        const before = el.dataset.renderMs;
        const seen = () => el.dataset.renderMs !== before ? resolve(el.dataset.renderMs)
                                                          : setTimeout(seen, 50);
        seen();
    })""")
    print(f"\nexplorer chart, {SERIES} series x {POINTS} points: first render {first:.1f} ms, "
          f"re-render {float(took):.1f} ms (uPlot, headless Chromium)")
