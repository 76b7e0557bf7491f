"""Rules over given series instead of the live stream: replay of stored history
(``vigil rules backfill``) and rule unit tests (``vigil rules test``, as promtool's).

Both feed an ``Evaluator`` samples in time order, a step at a time, with the data's own
time as the clock, so for-durations, windows and absence behave exactly as live.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from vigil.alerting.evaluator import Evaluator
from vigil.alerting.fields import Fields, bad
from vigil.alerting.rules import Rule
from vigil.core.errors import InvalidInput, Problem
from vigil.core.types import Float64Array, Int64Array, SampleBatch, SeriesKey, SeriesMeta


@dataclass(frozen=True, slots=True)
class Firing:
    """One alert a replay produced: when it fired and, if it did, when it resolved."""

    rule: str
    labels: Mapping[str, str]
    fired_ms: int
    resolved_ms: int | None
    value: float

    def as_dict(self) -> dict[str, object]:
        return {"rule": self.rule, "labels": dict(self.labels), "fired_ms": self.fired_ms,
                "resolved_ms": self.resolved_ms, "value": self.value}


class Replay:
    """Rules evaluated over samples given in time order, ``step_ms`` at a time."""

    def __init__(self, rules: Sequence[Rule]) -> None:
        self.ev = Evaluator()
        for r in rules:
            self.ev.set_rule(r)
        self.open: dict[str, Firing] = {}  # fingerprint -> still firing
        self.done: list[Firing] = []

    def run(self, keys: Sequence[SeriesKey], key_idx: Int64Array, ts: Int64Array,
            values: Float64Array, step_ms: int, end_ms: int) -> None:
        """Feed samples (any order; sorted here) a step at a time, ticking every step up
        to ``end_ms`` so absences and for-durations after the last sample count too."""
        order = np.argsort(ts, kind="stable")
        key_idx, ts, values = key_idx[order], ts[order], values[order]
        metas = [SeriesMeta(k) for k in keys]
        start = int(ts[0]) if len(ts) else end_ms
        times = np.arange(start, end_ms + 1, step_ms, dtype=np.int64)
        bounds = np.searchsorted(ts, times, side="right")  # samples at or before each step
        lo = 0
        for now, hi in zip(times.tolist(), bounds.tolist(), strict=True):
            if hi > lo:
                batch = SampleBatch(metas, key_idx[lo:hi].astype(np.int32), ts[lo:hi],
                                    values[lo:hi])
                self._note(self.ev.observe(batch, now))
            self._note(self.ev.tick(now))
            lo = hi

    def at(self, now_ms: int) -> None:
        self._note(self.ev.tick(now_ms))

    def _note(self, transitions: Sequence[Any]) -> None:
        for t in transitions:
            if t.firing:
                self.open[t.fingerprint] = Firing(t.rule.name, t.series.label_dict(), t.at_ms,
                                                  None, t.value)
            elif t.fingerprint in self.open:
                f = self.open.pop(t.fingerprint)
                self.done.append(Firing(f.rule, f.labels, f.fired_ms, t.at_ms, f.value))

    def firings(self) -> list[Firing]:
        return sorted([*self.done, *self.open.values()], key=lambda f: (f.fired_ms, f.rule))


# ---------------------------------------------------------------------- rule tests
_SERIES = re.compile(r"^\s*([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(?:\{(.*)\})?\s*$")
_LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*(?:,|$)')
_EXPAND = re.compile(r"^(-?[\d.]+(?:e-?\d+)?)([+-])([\d.]+(?:e-?\d+)?)x(\d+)$")


def parse_series(text: str, field: str = "series") -> SeriesKey:
    """``cpu{host="a",region="eu"}`` → SeriesKey.

    >>> str(parse_series('cpu{host="a", region="eu"}'))
    'cpu{host="a",region="eu"}'
    """
    m = _SERIES.match(text)
    if m is None:
        raise bad(field, f"{text!r} is not name{{label=\"value\",...}}")
    labels: dict[str, str] = {}
    inner = m.group(2) or ""
    pos = 0
    while pos < len(inner.strip()):
        lm = _LABEL.match(inner, pos)
        if lm is None:
            raise bad(field, f"bad labels in {text!r}")
        labels[lm.group(1)] = lm.group(2).replace('\\"', '"')
        pos = lm.end()
    return SeriesKey.of(m.group(1), labels)


def parse_values(text: str, field: str = "values") -> list[float | None]:
    """Space-separated values, promtool's way: ``1 2 _ 4``, ``_`` = no sample, ``a+bxn``
    = a, a+b, … (n+1 values), ``a-bxn`` likewise downwards.

    >>> parse_values("1 _ 5+5x2 3-1x1")
    [1.0, None, 5.0, 10.0, 15.0, 3.0, 2.0]
    """
    out: list[float | None] = []
    for token in text.split():
        if token == "_":
            out.append(None)
            continue
        m = _EXPAND.match(token)
        try:
            if m is None:
                out.append(float(token))
                continue
            a, b, n = float(m.group(1)), float(m.group(3)), int(m.group(4))
        except ValueError:
            raise bad(field, f"bad value {token!r}: a number, _ or a+bxn") from None
        step = b if m.group(2) == "+" else -b
        out += [a + step * i for i in range(n + 1)]
    return out


@dataclass(frozen=True, slots=True)
class TestResult:
    name: str
    failures: list[str]

    @property
    def ok(self) -> bool:
        return not self.failures


def run_rule_tests(rules: Sequence[Rule], tests: Sequence[Mapping[str, Any]]
                   ) -> list[TestResult]:
    """Each test: ``interval_s``, ``series`` [{series, values}], ``expect`` [{at_s,
    firing: [{rule, labels}]}]: at each ``at_s`` the alerts firing must be exactly those
    listed (labels: the series' labels, compared as given)."""
    results = []
    for i, test in enumerate(tests):
        where = f"tests[{i}]"
        d = Fields(test, where, ("name", "interval_s", "series", "expect"))
        name = d.str_("name", f"test {i + 1}")
        interval = d.ms("interval_s", 60.0, hi=86400.0, positive=True)
        keys: list[SeriesKey] = []
        idx, ts, vals = [], [], []
        for j, s in enumerate(_list(test.get("series"), f"{where}.series")):
            sd = Fields(s, f"{where}.series[{j}]", ("series", "values"))
            keys.append(parse_series(sd.str_("series"), sd.field("series")))
            for k, v in enumerate(parse_values(sd.str_("values"), sd.field("values"))):
                if v is not None:
                    idx.append(j)
                    ts.append(k * interval)
                    vals.append(v)
        checks = []
        for j, e in enumerate(_list(test.get("expect"), f"{where}.expect")):
            ed = Fields(e, f"{where}.expect[{j}]", ("at_s", "firing"))
            at = ed.ms("at_s", None, hi=1e9)  # type: ignore[arg-type]
            want = {(str(f.get("rule")), tuple(sorted(dict(f.get("labels") or {}).items())))
                    for f in _list(e.get("firing", []), ed.field("firing"))}
            checks.append((at, want))
        replay = Replay(rules)
        fails = []
        prev = -1
        order = np.argsort(np.asarray(ts, np.int64), kind="stable")
        t_arr = np.asarray(ts, np.int64)[order]
        i_arr, v_arr = np.asarray(idx, np.int64)[order], np.asarray(vals, np.float64)[order]
        for at, want in sorted(checks):
            lo, hi = np.searchsorted(t_arr, prev, side="right"), np.searchsorted(
                t_arr, at, side="right")
            if hi > lo:
                replay.run(keys, i_arr[lo:hi], t_arr[lo:hi], v_arr[lo:hi], interval, at)
            replay.at(at)
            prev = at
            got = {(f.rule, tuple(sorted(f.labels.items()))) for f in replay.open.values()}
            if got != want:
                fails.append(f"at {at / 1000:g}s: firing {_show(got)}, expected {_show(want)}")
        results.append(TestResult(name, fails))
    return results


def _list(v: object, field: str) -> list[Any]:
    if not isinstance(v, list):
        raise InvalidInput(Problem("must be a list", field=field))
    return v


def _show(alerts: set[tuple[str, tuple[tuple[str, str], ...]]]) -> str:
    if not alerts:
        return "nothing"
    return ", ".join(sorted(f"{r}{{{','.join(f'{k}={v}' for k, v in ls)}}}"
                            for r, ls in alerts))
