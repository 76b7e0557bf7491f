"""The analytics through the embedded API answer what the HTTP faces answer."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from vigil import Vigil
from vigil.core.errors import InvalidInput
from vigil.core.types import SampleBatch, SeriesKey, SeriesMeta

NOW = int(time.time()) // 60 * 60


@pytest.fixture
def v(tmp_path: Path) -> Vigil:
    """An embedded Vigil with two hours of two hosts' latency; host b slows in hour 2."""
    vigil = Vigil(tmp_path)
    rng = np.random.default_rng(2)
    t = (NOW - 7200 + np.arange(720) * 10) * 1000
    series = [SeriesMeta(SeriesKey.of("lat", {"host": h})) for h in ("a", "b")]
    a = 100 + rng.normal(0, 2, 720)
    b = 100 + rng.normal(0, 2, 720) + np.where(np.arange(720) >= 360, 200, 0)
    vigil.record_batch(SampleBatch(series, np.repeat(np.arange(2, dtype=np.int32), 720),
                                   np.tile(t, 2).astype(np.int64), np.r_[a, b]))
    return vigil


def test_analyze_kinds(v: Vigil) -> None:
    window = {"start": NOW - 7200, "end": NOW, "step": "1m"}
    with v:
        stats = v.analyze("stats", "lat", match=["host=a"], **window)
        assert stats["series"][0]["summary"]["count"] == 120  # type: ignore[index]
        an = v.analyze("anomalies", "lat", match=["host=b"], threshold=0.5, **window)
        assert an["series"][0]["anomalies"]  # type: ignore[index]
        rc = v.analyze("root-cause", "lat", start=NOW - 3600, end=NOW, step="1m")
        assert rc["contributions"][0]["value"] == "b"  # type: ignore[index]
        assert rc["related"] == []  # no other metric here
        h = v.analyze("health", "lat", **window)
        assert 0 <= h["score"] <= 100  # type: ignore[operator]
        assert v.analyze("insights", "lat", **window)["insights"]
        with pytest.raises(InvalidInput, match="unknown analysis"):
            v.analyze("magic", "lat")


def test_root_cause_ranks_related_metrics_beyond_the_first_twenty(tmp_path: Path) -> None:
    """30 unrelated metrics sort before the one that moved (``zz_cpu``); it shares the
    anomalous series' labels (host and region), they only the host, so it is searched."""
    rng = np.random.default_rng(5)
    t = (NOW - 7200 + np.arange(720) * 10) * 1000
    late = np.where(np.arange(720) >= 360, 1.0, 0.0)
    keys = [SeriesKey.of("lat", {"host": h, "region": "eu"}) for h in ("a", "b")]
    values = [100 + rng.normal(0, 2, 720), 100 + rng.normal(0, 2, 720) + 200 * late]
    for i in range(30):  # carry host=b, never move
        keys.append(SeriesKey.of(f"aa_{i:02d}", {"host": "b", "job": "batch"}))
        values.append(10 + rng.normal(0, 1, 720))
    keys.append(SeriesKey.of("zz_cpu", {"host": "b", "region": "eu"}))
    values.append(30 + rng.normal(0, 1, 720) + 40 * late)
    with Vigil(tmp_path) as vigil:
        vigil.record_batch(SampleBatch(
            [SeriesMeta(k) for k in keys], np.repeat(np.arange(len(keys), dtype=np.int32), 720),
            np.tile(t, len(keys)).astype(np.int64), np.concatenate(values)))
        rc = vigil.analyze("root-cause", "lat", start=NOW - 3600, end=NOW, step="1m")
    assert rc["related_match"] == "host=b"
    related = rc["related"]
    assert isinstance(related, list)
    assert [m["name"] for m in related] == ["zz_cpu"]
