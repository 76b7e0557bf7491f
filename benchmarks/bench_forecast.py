"""Forecast accuracy against the seasonal-naive baseline, interval coverage and fit cost.

Run: .venv/bin/python benchmarks/bench_forecast.py [--seeds 4] [--methods auto,ets,...]

A corpus of synthetic series (seasonal, trending, noisy, level-shift, flat, random-walk) with
a daily period at hourly steps (14 days, period 24) and at 5-minute steps (7 days, period
288). The last day is held back; each method forecasts it from the rest (period detected, not
given). Per method: MASE (tail MAE over the in-sample seasonal-naive MAE; mean and median),
the tail MAE relative to the seasonal-naive forecast's (geometric mean; < 1 beats it), the
share of held-back points inside the 95 % interval, and fit time per million input points.
Prints markdown tables: per method, then auto's MASE per kind.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from vigil.analytics.forecast import forecast, mase, seasonal_naive
from vigil.core.types import Float64Array

KINDS = ("seasonal", "trending", "noisy", "level_shift", "flat", "random_walk")
RESOLUTIONS = (("1h", 3_600_000, 24, 14), ("5m", 300_000, 288, 7))  # name, step, period, days
T0_MS = 1_700_006_400_000  # a midnight UTC


@dataclass(frozen=True, slots=True)
class Case:
    kind: str
    resolution: str
    seed: int
    t_ms: np.ndarray
    y: Float64Array
    period: int


def series(kind: str, n: int, m: int, rng: np.random.Generator) -> Float64Array:
    """One synthetic series of ``n`` points with a daily period of ``m`` points."""
    t = np.arange(n, dtype=np.float64)
    phase = 2 * np.pi * t / m
    daily = 10 * np.sin(phase - 1.2) + 4 * np.sin(2 * phase) + 3 * (np.sin(phase) > 0.7)
    noise = rng.normal(0, 1.5, n)
    if kind == "seasonal":
        y = 50 + daily + noise
    elif kind == "trending":
        y = 50 + 30 * t / n + daily + noise
    elif kind == "noisy":
        y = 50 + 0.4 * daily + rng.normal(0, 4, n)
    elif kind == "level_shift":
        y = 50 + daily + noise + 15 * (t >= int(n * rng.uniform(0.4, 0.6)))
    elif kind == "flat":
        y = 20 + rng.normal(0, 1, n)
    elif kind == "random_walk":
        y = 100 + 0.5 * daily + np.cumsum(rng.normal(0, 0.8, n))
    else:
        raise ValueError(kind)
    return np.asarray(y, np.float64)


def corpus(seeds: int) -> Iterator[Case]:
    for res, step_ms, m, days in RESOLUTIONS:
        n = m * days
        t_ms = T0_MS + step_ms * np.arange(n, dtype=np.int64)
        for kind in KINDS:
            for seed in range(seeds):
                rng = np.random.default_rng([seed, KINDS.index(kind), m])
                yield Case(kind, res, seed, t_ms, series(kind, n, m, rng), m)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=4, help="series per kind and resolution")
    parser.add_argument("--methods", default="auto,ets,arima,naive,seasonal_naive")
    args = parser.parse_args()
    methods = args.methods.split(",")
    mases: dict[str, list[float]] = defaultdict(list)
    rel: dict[str, list[float]] = defaultdict(list)
    inside: dict[str, list[float]] = defaultdict(list)
    seconds: dict[str, float] = defaultdict(float)
    points: dict[str, int] = defaultdict(int)
    by_kind: dict[tuple[str, str], list[float]] = defaultdict(list)
    chosen: dict[str, int] = defaultdict(int)
    cases = list(corpus(args.seeds))
    for case in cases:
        h = case.period
        hist, tail, t_hist = case.y[:-h], case.y[-h:], case.t_ms[:-h]
        sn_mae = float(np.mean(np.abs(tail - seasonal_naive(hist, h, case.period))))
        for method in methods:
            start = time.perf_counter()
            f = forecast(hist, t_hist, horizon=h, method=method, interval=0.95)
            seconds[method] += time.perf_counter() - start
            points[method] += len(hist)
            score = mase(tail, f.values, hist, case.period)
            mases[method].append(score)
            rel[method].append(float(np.mean(np.abs(tail - f.values))) / sn_mae)
            inside[method].append(float(np.mean((tail >= f.lower) & (tail <= f.upper))))
            if method == "auto":
                by_kind[(case.kind, case.resolution)].append(score)
                chosen[f.method] += 1
    print(f"{len(cases)} series ({args.seeds} seeds x {len(KINDS)} kinds x "
          f"{len(RESOLUTIONS)} resolutions), horizon = held-back tail = 1 day\n")
    print("| method | MASE mean | MASE median | MAE / seasonal-naive MAE (geo mean) "
          "| 95 % interval coverage | fit s per 1M points |")
    print("|---|---|---|---|---|---|")
    for method in methods:
        geo = math.exp(statistics.fmean(math.log(max(r, 1e-12)) for r in rel[method]))
        print(f"| {method} | {statistics.fmean(mases[method]):.3f} "
              f"| {statistics.median(mases[method]):.3f} | {geo:.3f} "
              f"| {100 * statistics.fmean(inside[method]):.1f} % "
              f"| {seconds[method] / points[method] * 1e6:.1f} |")
    if by_kind:
        print("\n| auto: kind | resolution | MASE mean | MASE max |")
        print("|---|---|---|---|")
        for (kind, res), scores in sorted(by_kind.items()):
            print(f"| {kind} | {res} | {statistics.fmean(scores):.3f} | {max(scores):.3f} |")
        print("\nauto chose: " + ", ".join(f"{k} {v}" for k, v in sorted(chosen.items())))


if __name__ == "__main__":
    main()
