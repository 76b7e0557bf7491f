"""Anomaly detection: every method on one contract — finds, stays quiet, causal, exact.

Series are generated here, deterministic per seed: N(0, 1) noise unless said otherwise,
an anomaly injected at ``AT``.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vigil.analytics.anomaly import (
    DEFAULT_METHOD,
    METHODS,
    Detector,
    Params,
    StreamingScorer,
    score,
)
from vigil.core.errors import InvalidInput

N = 1000
AT = 700
WARMUP = Params().warmup


def noise(seed: int, n: int = N) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=n)


def seasonal(seed: int, n: int = N, period: int = 48) -> np.ndarray:
    return 5 * np.sin(2 * np.pi * np.arange(n) / period) + 0.5 * noise(seed, n)


def trend(seed: int, n: int = N) -> np.ndarray:
    return 0.01 * np.arange(n) + noise(seed, n)


def spike(x: np.ndarray, size: float = 12.0) -> np.ndarray:
    y = x.copy()
    y[AT] += size
    return y


def shift(x: np.ndarray, size: float = 8.0) -> np.ndarray:
    y = x.copy()
    y[AT:] += size
    return y


def flat_then_jump(seed: int) -> np.ndarray:
    y = np.full(N, 42.0)
    y[AT:] = 45.0
    return y


Gen = Callable[[int], np.ndarray]

# (name, series with an anomaly at AT, methods that must find it within 10 samples)
FIND: list[tuple[str, Gen, tuple[str, ...]]] = [
    ("spike in noise", lambda s: spike(noise(s)), METHODS),
    ("dip in noise", lambda s: spike(noise(s), -12.0), METHODS),
    ("level shift in noise", lambda s: shift(noise(s)), METHODS),
    ("spike on a trend", lambda s: spike(trend(s)), METHODS),
    ("spike in a seasonal series", lambda s: spike(seasonal(s), 6.0), ("seasonal", "ensemble")),
    ("level shift in a seasonal series", lambda s: shift(seasonal(s), 4.0),
     ("seasonal", "ensemble")),
    ("jump in a constant", flat_then_jump, METHODS),
]

# (name, clean series, methods that must stay quiet: < 0.5 % of samples above 0.5)
QUIET: list[tuple[str, Gen, tuple[str, ...]]] = [
    ("noise", noise, METHODS),
    ("heavy-tailed noise", lambda s: np.random.default_rng(s).standard_t(4, N), METHODS),
    ("trend", trend, METHODS),
    ("seasonal", seasonal, ("zscore", "seasonal", "ensemble")),
    ("random walk", lambda s: np.cumsum(noise(s)) * 0.1 + noise(s + 1), METHODS),
    ("counts", lambda s: np.random.default_rng(s).poisson(20, N).astype(float), METHODS),
    ("constant", lambda s: np.full(N, 3.5), METHODS),
]


def cases(table: list[tuple[str, Gen, tuple[str, ...]]]) -> list[object]:
    return [pytest.param(method, gen, id=f"{name}-{method}")
            for name, gen, methods in table for method in methods]


@pytest.mark.parametrize(("method", "gen"), cases(FIND))
def test_finds_injected_anomalies(method: str, gen: Gen) -> None:
    for seed in (1, 2, 3):
        s = score(gen(seed), method)
        assert s[AT : AT + 10].max() >= 0.5, (seed, s[AT : AT + 10].round(2))


@pytest.mark.parametrize(("method", "gen"), cases(QUIET))
def test_quiet_on_clean_series(method: str, gen: Gen) -> None:
    for seed in (1, 2, 3):
        s = score(gen(seed), method)
        assert (s > 0.5).mean() < 0.005, (seed, np.flatnonzero(s > 0.5))


@pytest.mark.parametrize("method", METHODS)
def test_adapts_after_a_lasting_level_shift(method: str) -> None:
    """The alarm of a lasting shift ends within 200 samples, and a later spike is found."""
    x = noise(7, 2000)
    x[AT:] += 10.0
    x[AT + 800] += 20.0
    s = score(x, method)
    assert s[AT : AT + 10].max() >= 0.5
    assert (s[AT + 200 : AT + 800] < 0.5).all()
    assert s[AT + 800] >= 0.5
    assert (s[AT + 801 :] < 0.5).all()


def test_seasonal_adapts_after_a_pattern_change() -> None:
    t = np.arange(2000)
    x = 5 * np.sin(2 * np.pi * t / 50) + 0.3 * noise(3, 2000)
    x[1200:] = 5 * np.sin(2 * np.pi * t[1200:] / 50 + np.pi) + 0.3 * noise(4, 800)
    for method in ("seasonal", "ensemble"):
        s = score(x, method)
        assert s[1200:1210].max() >= 0.5  # the flipped pattern is an anomaly ...
        assert (s[1500:] < 0.5).all()  # ... until it has been learnt


@pytest.mark.parametrize("method", METHODS)
def test_warm_up_scores_zero(method: str) -> None:
    x = noise(1, 200)
    x[5] = 1e6
    s = score(x, method)
    assert (s[:WARMUP] == 0).all()


@pytest.mark.parametrize("method", METHODS)
def test_nan_scores_zero_and_is_skipped(method: str) -> None:
    x = spike(noise(5))
    holes = np.random.default_rng(0).random(N) < 0.05
    y = x.copy()
    y[holes] = np.nan
    y[3] = np.inf
    holes[3] = True
    s = score(y, method)
    assert (s[holes] == 0).all()
    assert np.array_equal(s[~holes], score(x[~holes], method))


@pytest.mark.parametrize("method", METHODS)
def test_deterministic(method: str) -> None:
    x = spike(seasonal(9))
    assert np.array_equal(score(x, method), score(x.copy(), method))


def test_default_method_is_ensemble() -> None:
    x = spike(seasonal(2))
    assert DEFAULT_METHOD == "ensemble"
    assert np.array_equal(score(x), score(x, "ensemble"))


def test_fixed_period() -> None:
    x = spike(seasonal(4, period=30), 6.0)
    s = score(x, "seasonal", period=30)
    assert s[AT] >= 0.5
    assert (np.delete(s, range(AT, AT + 10)) < 0.5).all()


def test_timestamps_are_checked() -> None:
    x = noise(1, 10)
    ts = np.arange(10) * 60_000
    assert np.array_equal(score(x, timestamps_ms=ts), score(x))
    with pytest.raises(InvalidInput, match="decrease"):
        score(x, timestamps_ms=ts[::-1])
    with pytest.raises(InvalidInput, match="length"):
        score(x, timestamps_ms=ts[:5])


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"method": "magic"}, "unknown method"),
    ({"method": "seasonal", "period": 1}, "period"),
    ({"method": "seasonal", "period": 100_000}, "period"),
])
def test_bad_arguments(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        score([1.0, 2.0], **kwargs)  # type: ignore[arg-type]


def test_scorer_rejects_bad_columns() -> None:
    s = StreamingScorer()
    with pytest.raises(InvalidInput, match="length"):
        s.update_batch([0, 1], [1.0])
    with pytest.raises(InvalidInput, match=">= 0"):
        s.update_batch([-1], [1.0])
    assert len(s.update_batch([], [])) == 0


def test_state_is_constant_per_series_and_resets() -> None:
    small = StreamingScorer("zscore").state_bytes_per_series
    big = StreamingScorer("ensemble").state_bytes_per_series
    assert small < 400 < big < 20_000
    s = StreamingScorer()
    s.update_batch(np.arange(3), np.ones(3))
    for _ in range(3):  # memory does not grow with the samples seen
        s.update_batch(np.tile(np.arange(3), 500), noise(1, 1500))
    assert s.n_series == 3
    s.reset([1])
    x = spike(noise(4))
    again = s.update_batch(np.ones(N, int), x)
    assert np.array_equal(again, StreamingScorer().update_batch(np.zeros(N, int), x))


# --- the streaming contract, property-based -------------------------------------------

values = st.lists(
    st.one_of(st.floats(-1e6, 1e6, allow_nan=False), st.just(float("nan")),
              st.sampled_from([0.0, 1.0, 1e5])),
    min_size=0, max_size=300)
fast = settings(max_examples=25, deadline=None,
                suppress_health_check=[HealthCheck.too_slow])


@fast
@given(x=values, cut=st.integers(0, 300), method=st.sampled_from(METHODS))
def test_causal_prefix_scores_do_not_change(x: list[float], cut: int, method: str) -> None:
    full = score(x, method)
    assert np.array_equal(score(x[:cut], method), full[:cut])
    assert ((full >= 0) & (full <= 1)).all()


@fast
@given(x=values, method=st.sampled_from(METHODS), splits=st.lists(st.integers(0, 300),
                                                                    max_size=4))
def test_batch_equals_streaming(x: list[float], method: str, splits: list[int]) -> None:
    ref = score(x, method)
    d = Detector(method)
    assert np.array_equal(np.array([d.update(v) for v in x]), ref)
    d = Detector(method)
    cuts = [0, *sorted(min(s, len(x)) for s in splits), len(x)]
    parts = [d.update_many(x[a:b]) for a, b in itertools.pairwise(cuts)]
    assert np.array_equal(np.concatenate(parts), ref)


@fast
@given(data=st.data(), method=st.sampled_from(METHODS), n_series=st.integers(1, 20))
def test_vectorised_equals_one_series_at_a_time(data: st.DataObject, method: str,
                                                n_series: int) -> None:
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    length = data.draw(st.integers(0, 250))
    base = rng.choice([0.0, 1e3, -5.0], n_series)[:, None]
    xs = base + rng.standard_t(3, (n_series, length)) * rng.choice([1e-3, 1.0, 50.0])
    xs[rng.random(xs.shape) < 0.05] = np.nan
    if length > 150:
        xs[:, 150:] += 20.0  # a shift everywhere
    # samples in time order per series, the series offset and interleaved at random
    idx = np.repeat(np.arange(n_series), length)
    pos = np.tile(np.arange(length), n_series)
    key = pos + rng.uniform(0, 30, n_series)[idx] + rng.uniform(0, 0.5, len(idx))
    order = np.argsort(key, kind="stable")
    idx, pos = idx[order], pos[order]
    vals = xs[idx, pos]
    scorer = StreamingScorer(method)
    out = np.zeros(len(vals))
    cuts = sorted(set(rng.integers(0, len(vals) + 1, 5).tolist()) | {0, len(vals)})
    for a, b in itertools.pairwise(cuts):
        out[a:b] = scorer.update_batch(idx[a:b] * 3, vals[a:b])  # sparse series ids
    for k in range(n_series):
        assert np.array_equal(out[idx == k], score(xs[k], method)), k


@pytest.mark.parametrize("method", METHODS)
def test_vectorised_many_series_one_step_per_batch(method: str) -> None:
    """The ingest path's shape: every series once per batch, in order."""
    xs = np.stack([spike(seasonal(s), 6.0) for s in range(40)])
    xs[::7, 200:] += 30.0
    scorer = StreamingScorer(method, n_series=40)
    out = np.stack([scorer.update_batch(np.arange(40), xs[:, t]) for t in range(N)], 1)
    for k in (0, 7, 39):
        assert np.array_equal(out[k], score(xs[k], method))


@pytest.mark.parametrize("method", METHODS)
def test_extreme_magnitudes_stay_in_range(method: str) -> None:
    """Overflowing values neither warn (warnings are errors here) nor leave [0, 1]."""
    x = np.r_[noise(1, 300), 1e200, -1e300, noise(2, 300), np.full(50, 1e-300)]
    s = score(x, method)
    assert ((s >= 0) & (s <= 1)).all()
    assert np.array_equal(StreamingScorer(method).update_batch(np.zeros(len(x), int), x), s)
