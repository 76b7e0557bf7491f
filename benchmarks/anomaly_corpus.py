"""A labelled corpus of synthetic metric series with injected anomalies and their windows.

Deterministic from a seed. Seven kinds of series, each a base signal plus noise plus one
to three injected anomalies after a probationary first 15 %:

- ``seasonal``: a daily pattern (sine, sine + harmonic, business hours, two peaks), at
  times with quieter weekends; sample intervals of 1 min .. 1 h, so the period is 24 ..
  1,440 samples (some longer than the detectors can hold).
- ``trending``: a linear or accelerating trend, with or without a weak daily pattern.
- ``noisy``: heavy-tailed, autocorrelated or bursty noise (normal bursts, not labelled).
  Any series may also wander slowly (a random walk, not labelled).
- ``level_shift``, ``spike``, ``drift``: mostly that anomaly type on a mixed base.
- ``flat``: a constant (exact, tiny noise, or a mostly-constant count).

Noise shapes vary per series (normal, Student-t 3, Laplace, AR(1), Poisson counts,
quantised) and so do scales and offsets (1e-2 .. 1e4), missing samples (NaN) and gaps.
Anomaly types: spike, dip, level shift, drift (a ramp that stays), variance burst,
dropout to zero, and for seasonal series a broken pattern. Each anomaly has a window,
NAB-style: 10 % of the length over the number of anomalies (40 .. 400 samples), starting
a tenth of its length before the onset.

Run ``python benchmarks/anomaly_corpus.py --seed 1`` for a summary.
"""

from __future__ import annotations

import argparse
from collections import Counter
from dataclasses import dataclass

import numpy as np

KINDS = ("seasonal", "trending", "noisy", "level_shift", "spike", "drift", "flat")
ANOMALY_TYPES = ("spike", "dip", "level_shift", "drift", "variance", "dropout", "pattern")
DAY_S = 86_400
INTERVALS_S = (60, 300, 300, 300, 600, 1800, 3600)  # 5 min is the common case
PROBATION = 0.15


@dataclass(frozen=True)
class LabelledSeries:
    """One series with its anomalies: ``windows[i]`` = [start, end) around ``onsets[i]``."""

    name: str
    kind: str
    ts_ms: np.ndarray
    values: np.ndarray
    onsets: tuple[int, ...]
    windows: tuple[tuple[int, int], ...]
    types: tuple[str, ...]
    probation: int
    noise: str = ""  # the noise shape, for the breakdowns

    def __len__(self) -> int:
        return len(self.values)


def _noise(rng: np.random.Generator, n: int) -> tuple[np.ndarray, str]:
    """Unit-scale noise of a random shape and its name."""
    shape = rng.choice(["normal", "normal", "t3", "laplace", "ar1", "bursty"])
    if shape == "t3":
        e = rng.standard_t(3, n) / np.sqrt(3.0)
    elif shape == "laplace":
        e = rng.laplace(0, 1 / np.sqrt(2), n)
    elif shape == "ar1":
        phi = rng.uniform(0.3, 0.9)
        w = rng.normal(0, np.sqrt(1 - phi * phi), n)
        e = np.empty(n)
        acc = 0.0
        for i in range(n):
            acc = phi * acc + w[i]
            e[i] = acc
    elif shape == "bursty":  # normal behaviour of many server metrics: short bursts
        e = rng.normal(size=n)
        hits = rng.random(n) < rng.uniform(0.005, 0.03)
        e[hits] += rng.exponential(rng.uniform(2, 5), hits.sum())
    else:
        e = rng.normal(size=n)
    return e, str(shape)


def _daily(rng: np.random.Generator, phase: np.ndarray, day: np.ndarray) -> np.ndarray:
    """A unit-amplitude daily pattern; phase in [0, 1) of the day."""
    shape = rng.choice(["sine", "harmonic", "business", "peaks"])
    if shape == "sine":
        s = np.sin(2 * np.pi * phase)
    elif shape == "harmonic":
        s = np.sin(2 * np.pi * phase) + 0.5 * np.sin(4 * np.pi * phase + 1.0)
    elif shape == "business":
        s = 1 / (1 + np.exp(-(phase - 0.35) * 60)) - 1 / (1 + np.exp(-(phase - 0.75) * 60))
    else:
        s = np.exp(-((phase - 0.4) / 0.05) ** 2) + 0.7 * np.exp(-((phase - 0.8) / 0.06) ** 2)
    s = (s - s.mean()) / (np.abs(s - s.mean()).max() + 1e-12)
    if rng.random() < 0.4:  # quieter weekends
        s = s * np.where(day % 7 >= 5, 0.5, 1.0)
    return s


def make_series(kind: str, rng: np.random.Generator, name: str) -> LabelledSeries:
    n = int(rng.integers(2500, 6000))
    interval = int(rng.choice(INTERVALS_S))
    t0 = 1_700_000_000 + int(rng.integers(0, 86_400))
    ts_s = t0 + interval * np.arange(n)
    phase = (ts_s % DAY_S) / DAY_S
    day = ts_s // DAY_S
    noise, shape = _noise(rng, n)
    t = np.arange(n) / n

    base = np.zeros(n)
    if kind == "seasonal":
        base = rng.uniform(3, 15) * _daily(rng, phase, day)
    elif kind == "trending":
        rise = rng.uniform(5, 40) * rng.choice([-1, 1])
        base = rise * (t if rng.random() < 0.6 else t**2)
        if rng.random() < 0.5:
            base = base + rng.uniform(1, 4) * _daily(rng, phase, day)
    elif kind in ("level_shift", "spike", "drift", "noisy"):
        r = rng.random()
        if r < 0.35:
            base = rng.uniform(2, 8) * _daily(rng, phase, day)
        elif r < 0.55:
            base = rng.uniform(3, 15) * t
    if kind == "noisy":
        noise = noise * rng.uniform(1.0, 2.0)
    if kind != "flat" and rng.random() < 0.3:  # benign wander: a slow random walk, not an anomaly
        base = base + np.cumsum(rng.normal(0, rng.uniform(0.02, 0.1), n))

    flat_mode = str(rng.choice(["exact", "tiny", "count"])) if kind == "flat" else ""
    probation = int(PROBATION * n)
    k = int(rng.choice([1, 2, 2, 3]))
    w = int(np.clip(0.1 * n / k, 40, 400))
    # onsets spread over the rest, at least a window apart
    slots = np.sort(rng.choice(np.arange(probation + w, n - w // 2, w + 20), k, replace=False))
    onsets = [int(s + rng.integers(0, 20)) for s in slots]
    primary = {"level_shift": "level_shift", "spike": "spike", "drift": "drift"}.get(kind)
    counts = flat_mode == "count"
    offset = rng.uniform(3, 40) if rng.random() < 0.7 else 0.0  # x amplitude
    effect = np.zeros(n)  # added, in noise sigmas
    burst = np.ones(n)  # noise multiplier
    zero = np.zeros(n, bool)  # dropout to zero
    amp = float(np.abs(base).max())
    types = []
    for on in onsets:
        if primary and rng.random() < 0.7:
            typ = primary
        else:
            pool = ["spike", "dip", "level_shift", "drift", "variance"]
            pool += ["dropout"] if offset and not counts else []
            pool += ["pattern"] if kind == "seasonal" else []
            typ = str(rng.choice(pool))
        types.append(typ)
        sign = rng.choice([-1.0, 1.0])
        if typ in ("spike", "dip"):
            width = int(rng.choice([1, 1, 1, 2, 3]))
            effect[on : on + width] += rng.uniform(6, 15) * (-1 if typ == "dip" else 1)
        elif typ == "level_shift":
            effect[on:] += sign * (rng.uniform(4, 10) + rng.uniform(0, 0.5) * amp)
        elif typ == "drift":
            dur = int(rng.integers(30, 150))
            effect[on:] += sign * rng.uniform(6, 15) * np.minimum(np.arange(n - on) / dur, 1.0)
        elif typ == "variance":
            burst[on : on + int(rng.integers(20, 100))] = rng.uniform(4, 8)
        elif typ == "dropout":
            zero[on : on + int(rng.integers(5, 60))] = True
        elif typ == "pattern":
            dur = int(rng.integers(60, 300))
            effect[on : on + dur] -= base[on : on + dur] * rng.uniform(0.8, 1.0)

    if counts:  # a mostly-constant count, e.g. errors per interval
        lam = rng.uniform(0.5, 5)
        x = rng.poisson(np.maximum(lam + np.sqrt(lam) * effect, 0)).astype(np.float64)
        x += np.round(np.abs(noise) * (burst - 1))
    else:
        unit = 0.0 if flat_mode == "exact" else (0.01 if flat_mode == "tiny" else 1.0)
        step = max(unit, 0.2)  # anomalies on an exact constant still have a size
        x = base + unit * noise * burst + effect * step
        scale = 10 ** rng.uniform(-2, 4)
        x = (x + offset * max(amp, 1.0)) * scale
        x[zero] = 0.0
        if rng.random() < 0.2:  # quantised, e.g. integer gauges
            x = np.round(x / (scale * 0.5)) * (scale * 0.5)

    # missing samples
    if rng.random() < 0.3:
        x[rng.random(n) < rng.uniform(0.005, 0.02)] = np.nan
        if rng.random() < 0.5:  # a gap, away from the anomalies
            g = int(rng.integers(probation, n - 60))
            if all(abs(g - on) > w for on in onsets):
                x[g : g + int(rng.integers(10, 50))] = np.nan

    windows = tuple((max(on - w // 10, 0), min(on - w // 10 + w, n)) for on in onsets)
    return LabelledSeries(name, kind, (ts_s * 1000).astype(np.int64), x, tuple(onsets),
                          windows, tuple(types), probation, shape)


def corpus(seed: int, per_kind: int = 6) -> list[LabelledSeries]:
    """``per_kind`` series of every kind, all derived from ``seed``."""
    rng = np.random.default_rng(seed)
    return [make_series(kind, rng, f"s{seed}-{kind}-{i}")
            for kind in KINDS for i in range(per_kind)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--per-kind", type=int, default=6)
    args = ap.parse_args()
    series = corpus(args.seed, args.per_kind)
    types = Counter(t for s in series for t in s.types)
    print(f"{len(series)} series, {sum(len(s) for s in series):,} points, "
          f"{sum(len(s.onsets) for s in series)} anomalies: {dict(types)}")


if __name__ == "__main__":
    main()
