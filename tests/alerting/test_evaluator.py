"""The streaming evaluator, kind by kind, with time given explicitly (no clock)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from tests.conftest import batch_of
from vigil.alerting.evaluator import Evaluator, Transition, fingerprint
from vigil.alerting.rules import parse_rule
from vigil.core.types import SeriesKey

S = 1000  # ms


def rule(condition: dict[str, Any], **more: Any) -> Any:
    return parse_rule({"name": "r", "metric": "cpu", "condition": condition, **more})


def feed(ev: Evaluator, rows: list[tuple[int, str, float]]) -> list[tuple[int, str, bool]]:
    """Observe one sample per row (time s, host, value) and tick at each time; returns
    (time s, host, fired?) of every transition."""
    out: list[tuple[int, str, bool]] = []
    for t, host, value in rows:
        got: list[Transition] = ev.observe(batch_of([("cpu", {"host": host}, t * S, value)]),
                                           t * S)
        got += ev.tick(t * S)
        out += [(t, tr.series.label_dict()["host"], tr.firing) for tr in got]
    return out


def test_threshold_fires_on_the_breaching_sample_and_resolves_when_it_clears() -> None:
    ev = Evaluator()
    ev.set_rule(rule({"type": "threshold", "op": ">", "threshold": 90}))
    got = feed(ev, [(0, "a", 50), (10, "a", 95), (20, "a", 96), (30, "a", 10)])
    assert got == [(10, "a", True), (30, "a", False)]


@pytest.mark.parametrize(("op", "fires"), [
    (">", [95]), ("<", [10]), (">=", [90, 95]), ("<=", [10, 90]), ("==", [90]),
    ("!=", [10, 95]),
])
def test_every_comparison(op: str, fires: list[float]) -> None:
    for value in (10.0, 90.0, 95.0):
        ev = Evaluator()
        ev.set_rule(rule({"type": "threshold", "op": op, "threshold": 90}))
        assert bool(feed(ev, [(0, "a", value)])) == (value in fires), value


def test_for_duration_waits_and_a_dip_restarts_it() -> None:
    ev = Evaluator()
    ev.set_rule(rule({"type": "threshold", "op": ">", "threshold": 90, "for_s": 30}))
    got = feed(ev, [(0, "a", 95), (20, "a", 95), (25, "a", 50), (30, "a", 95),
                    (50, "a", 95)])
    assert got == []
    assert ev.tick(59 * S) == []
    assert [(t.firing, t.at_ms) for t in ev.tick(60 * S)] == [(True, 60 * S)]


def test_keep_firing_for_and_hysteresis_stop_flapping() -> None:
    ev = Evaluator()
    ev.set_rule(rule({"type": "threshold", "op": ">", "threshold": 90, "clear_threshold": 80},
                     keep_firing_for_s=20))
    got = feed(ev, [(0, "a", 95), (10, "a", 85), (20, "a", 79), (30, "a", 95),
                    (40, "a", 70)])
    assert got == [(0, "a", True)]  # 85 is not clear (hysteresis); 79 cleared for 10 s only
    assert feed(ev, [(50, "a", 70), (60, "a", 70)]) == [(60, "a", False)]


def test_window_aggregates_equal_numpy_over_the_window() -> None:
    ev = Evaluator()
    rules = {agg: rule({"type": "threshold", "op": ">", "threshold": 1e9}, window_s=100,
                       aggregation=agg) for agg in ("avg", "min", "max", "sum", "count", "last")}
    for r in rules.values():
        ev.set_rule(r)
    rng = np.random.default_rng(1)
    ts = np.arange(0, 400, 10)  # a sample every 10 s; windows of 100 s = 10 sub-buckets
    vals = rng.normal(50, 10, len(ts))
    for t, v in zip(ts, vals, strict=True):
        ev.observe(batch_of([("cpu", {"host": "a"}, int(t) * S, float(v))]), int(t) * S)
    inside = vals[ts > ts[-1] - 100]
    want = {"avg": inside.mean(), "min": inside.min(), "max": inside.max(),
            "sum": inside.sum(), "count": len(inside), "last": inside[-1]}
    for agg, r in rules.items():
        [row] = ev.explain(r.id, int(ts[-1]) * S)
        assert row["value"] == pytest.approx(want[agg]), agg


def test_change_compares_the_window_with_the_one_before() -> None:
    ev = Evaluator()
    ev.set_rule(rule({"type": "change", "op": ">", "threshold": 50}, window_s=100))
    rows = [(t, "a", 10.0) for t in range(0, 200, 10)] + [(t, "a", 20.0)
                                                         for t in range(200, 300, 10)]
    got = feed(ev, rows)
    assert got and got[0][2] is True and 200 <= got[0][0] <= 260  # +100 % as the window fills


def test_absence_fires_after_for_s_without_data_and_resolves_when_data_returns() -> None:
    ev = Evaluator()
    ev.set_rule(rule({"type": "absence", "for_s": 60}))
    assert feed(ev, [(0, "a", 1), (30, "a", 1)]) == []
    assert ev.tick(89 * S) == []
    assert [(t.firing, t.value) for t in ev.tick(90 * S)] == [(True, 60.0)]
    assert feed(ev, [(100, "a", 1)]) == [(100, "a", False)]


def test_absence_after_a_restart_counts_from_the_start_for_known_series() -> None:
    ev = Evaluator()
    r = rule({"type": "absence", "for_s": 60}, match=["host=a"])
    ev.set_rule(r)
    ev.seed(r.id, [SeriesKey.of("cpu", {"host": "a"}), SeriesKey.of("cpu", {"host": "b"}),
                   SeriesKey.of("mem", {"host": "a"})], 1000 * S)
    assert ev.tick(1059 * S) == []  # settles for the full for_s: no false "no data"
    assert [t.series.label_dict() for t in ev.tick(1060 * S)] == [{"host": "a"}]


def test_anomaly_rule_fires_on_a_spike_after_learning() -> None:
    ev = Evaluator()
    ev.set_rule(rule({"type": "anomaly", "threshold": 0.9}))
    rng = np.random.default_rng(0)
    rows = [(t, "a", float(50 + rng.normal(0, 1))) for t in range(0, 2000, 10)]
    assert feed(ev, rows) == []
    assert feed(ev, [(2000, "a", 80.0)]) == [(2000, "a", True)]


def test_forecast_values_come_from_outside_the_stream() -> None:
    ev = Evaluator()
    r = rule({"type": "forecast", "op": ">", "threshold": 100, "probability": 0.8,
              "step_s": 60, "lookback_s": 3600, "horizon_s": 3600})
    ev.set_rule(r)
    key = SeriesKey.of("cpu", {"host": "a"})
    assert ev.observe(batch_of([("cpu", {"host": "a"}, 0, 99.0)]), 0) == []  # not streamed
    assert ev.set_values(r.id, {key: 0.5}, 10 * S) == []
    [t] = ev.set_values(r.id, {key: 0.85}, 20 * S)
    assert t.firing and t.value == 0.85


def test_matchers_select_series_and_one_series_feeds_many_rules() -> None:
    ev = Evaluator()
    a = rule({"type": "threshold", "op": ">", "threshold": 90}, match=["host=~a|b"])
    b = parse_rule({"name": "all", "metric": "cpu",
                    "condition": {"type": "threshold", "op": ">", "threshold": 50}})
    ev.set_rule(a)
    ev.set_rule(b)
    batch = batch_of([("cpu", {"host": "a"}, 0, 95.0), ("cpu", {"host": "c"}, 0, 95.0),
                      ("mem", {"host": "a"}, 0, 95.0)])
    got = sorted((t.rule.name, t.series.label_dict()["host"]) for t in ev.observe(batch, 0))
    assert got == [("all", "a"), ("all", "c"), ("r", "a")]


def test_a_breaching_sample_anywhere_in_a_batch_fires() -> None:
    ev = Evaluator()
    ev.set_rule(rule({"type": "threshold", "op": ">", "threshold": 90}))
    batch = batch_of([("cpu", {"host": "a"}, 2 * S, 10.0), ("cpu", {"host": "a"}, 1 * S, 95.0),
                      ("cpu", {"host": "b"}, 1 * S, 97.0), ("cpu", {"host": "b"}, 2 * S, 96.0),
                      ("cpu", {"host": "c"}, 1 * S, 50.0)])
    got = {(t.series.label_dict()["host"], t.value) for t in ev.observe(batch, 3 * S)}
    assert got == {("a", 95.0), ("b", 96.0)}  # the last breaching sample's value
    later = batch_of([("cpu", {"host": "a"}, 4 * S, 10.0), ("cpu", {"host": "b"}, 4 * S, 99.0)])
    assert [(t.series.label_dict()["host"], t.firing) for t in ev.observe(later, 5 * S)] == [
        ("a", False)]


def test_a_series_with_an_active_alert_starts_firing_and_hold_waits_for_a_clear() -> None:
    r = rule({"type": "threshold", "op": ">", "threshold": 90})
    fp = fingerprint(r.id, SeriesKey.of("cpu", {"host": "a"}))
    ev = Evaluator(is_active=lambda f: f == fp)
    ev.set_rule(r)
    assert feed(ev, [(0, "a", 95)]) == []  # already firing: not again
    ev.hold(fp)  # resolved by hand
    assert feed(ev, [(10, "a", 96)]) == []  # still breaching: held
    assert feed(ev, [(20, "a", 10), (30, "a", 97)]) == [(30, "a", True)]


def test_removing_a_rule_forgets_its_series_and_explain_says_why() -> None:
    ev = Evaluator()
    r = rule({"type": "threshold", "op": ">", "threshold": 90, "for_s": 60})
    ev.set_rule(r)
    feed(ev, [(0, "a", 95)])
    [row] = ev.explain(r.id, 30 * S)
    assert row["state"] == "pending" and "for 30 s of for_s 60" in str(row["reason"])
    ev.remove_rule(r.id)
    assert ev.explain(r.id, 30 * S) == [] and ev.tick(100 * S) == []
    assert feed(ev, [(110, "a", 99)]) == []


def test_a_disabled_rule_does_not_evaluate() -> None:
    ev = Evaluator()
    ev.set_rule(rule({"type": "threshold", "op": ">", "threshold": 90}, enabled=False))
    assert feed(ev, [(0, "a", 95)]) == []


def test_a_rule_added_later_finds_series_seen_before() -> None:
    ev = Evaluator()
    ev.set_rule(parse_rule({"name": "other", "metric": "mem", "condition": {
        "type": "threshold", "op": ">", "threshold": 1e9}}))
    feed(ev, [(0, "a", 50)])  # cpu seen while only a mem rule exists
    ev.set_rule(rule({"type": "threshold", "op": ">", "threshold": 90, "for_s": 5}))
    assert feed(ev, [(10, "a", 95), (20, "a", 95)]) == [(20, "a", True)]


@pytest.mark.parametrize("matchers", [
    ["host=a", "dc=x"], ["dc=x", "host=~a|b"], ["host!=b"], ["host=~a"], ["zone="],
    ["host!~b|c", "dc=x"],
])
def test_indexed_matching_agrees_with_the_matchers(matchers: list[str]) -> None:
    from vigil.core.matchers import Matcher

    ev = Evaluator()
    r = rule({"type": "threshold", "op": ">", "threshold": 0}, match=matchers)
    ev.set_rule(r)
    hosts = [{"host": h, "dc": dc} for h in "abc" for dc in "xy"]
    batch = batch_of([("cpu", labels, 0, 1.0) for labels in hosts])
    got = sorted(tuple(sorted(t.series.label_dict().items())) for t in ev.observe(batch, 0))
    parsed = [Matcher.parse(m) for m in matchers]
    want = sorted(tuple(sorted(h.items())) for h in hosts
                  if all(m.matches(h.get(m.label)) for m in parsed))
    assert got == want


def test_the_store_s_series_ids_give_the_same_transitions_as_the_keys() -> None:
    """Random batches (repeated series, new ones, a rule added midway) evaluated by key
    and by the store's ids (one id per key, as the store assigns them) agree."""
    rng = np.random.default_rng(7)
    by_key, by_id = Evaluator(), Evaluator()
    ids: dict[SeriesKey, int] = {}
    first = rule({"type": "threshold", "op": ">", "threshold": 90}, match=["dc=a"])
    later = parse_rule({"name": "low", "metric": "cpu",
                        "condition": {"type": "threshold", "op": "<", "threshold": 5}})
    for ev in (by_key, by_id):
        ev.set_rule(first)
    for step in range(30):
        if step == 10:
            for ev in (by_key, by_id):
                ev.set_rule(later)
        rows = [("cpu", {"host": f"h{h}", "dc": "ab"[h % 2]}, step * S, float(v))
                for h, v in zip(rng.integers(0, 40, 25), rng.uniform(0, 100, 25), strict=True)]
        batch = batch_of(rows)
        sids = np.array([ids.setdefault(m.key, 1000 + len(ids)) for m in batch.series], np.int32)
        want = [(t.fingerprint, t.firing) for t in by_key.observe(batch, step * S)]
        assert [(t.fingerprint, t.firing) for t in by_id.observe(batch, step * S, sids)] == want
