"""Rule documents: what is accepted, and one row per way to get one wrong."""

from __future__ import annotations

from typing import Any

import pytest

from vigil.alerting.rules import parse_rule, render
from vigil.core.errors import InvalidInput

BASE: dict[str, Any] = {
    "name": "cpu high", "metric": "cpu_usage_user", "match": ["hostname=h1"],
    "condition": {"type": "threshold", "op": ">", "threshold": 90, "for_s": 0},
    "severity": "critical", "channels": ["ops"],
}


def test_the_documented_shape_is_accepted() -> None:
    rule = parse_rule(BASE)
    assert rule.name == "cpu high" and rule.severity == "critical"
    assert rule.condition.kind == "threshold" and rule.condition.threshold == 90
    assert [str(m) for m in rule.matchers] == ['hostname="h1"']
    assert rule.doc is not None and rule.doc["id"] == rule.id


@pytest.mark.parametrize(("condition", "window_s"), [
    ({"type": "change", "op": ">", "threshold": 50}, 300),
    ({"type": "absence", "for_s": 120}, 0),
    ({"type": "anomaly", "threshold": 0.9, "method": "robust"}, 0),
    ({"type": "forecast", "op": ">", "threshold": 1e9, "horizon_s": 86400,
      "step_s": 3600, "lookback_s": 7 * 86400}, 0),
    ({"type": "threshold", "op": "!=", "threshold": 0, "clear_threshold": 1}, 60),
])
def test_every_kind_parses(condition: dict[str, Any], window_s: int) -> None:
    rule = parse_rule({**BASE, "condition": condition, "window_s": window_s})
    assert rule.condition.kind == condition["type"]


BAD: list[tuple[dict[str, Any], str]] = [
    ({"name": ""}, "name"),
    ({"metric": "9cpu"}, "metric"),
    ({"match": ["host"]}, "match[0]"),
    ({"match": ["host=~("]}, "match[0]"),
    ({"match": "host=a"}, "match"),
    ({"severity": "urgent"}, "severity"),
    ({"channels": ["no spaces allowed"]}, "channels[0]"),
    ({"condition": None}, "condition"),
    ({"condition": {"type": "percentile"}}, "condition.type"),
    ({"condition": {"type": "threshold", "op": "=>", "threshold": 1}}, "condition.op"),
    ({"condition": {"type": "threshold", "op": ">"}}, "condition.threshold"),
    ({"condition": {"type": "threshold", "op": ">", "threshold": "90"}}, "condition.threshold"),
    ({"condition": {"type": "threshold", "op": ">", "threshold": 9, "for_s": -1}},
     "condition.for_s"),
    ({"condition": {"type": "threshold", "op": ">", "threshold": 9, "bogus": 1}},
     "condition.bogus"),
    ({"condition": {"type": "change", "op": ">", "threshold": 50}}, "window_s"),
    ({"condition": {"type": "absence"}}, "condition.for_s"),
    ({"condition": {"type": "anomaly", "threshold": 2}}, "condition.threshold"),
    ({"condition": {"type": "anomaly", "threshold": 0.5, "method": "magic"}},
     "condition.method"),
    ({"condition": {"type": "forecast", "op": "==", "threshold": 1}}, "condition.op"),
    ({"condition": {"type": "forecast", "op": ">", "threshold": 1, "step_s": 1,
                    "horizon_s": 86400}}, "condition.step_s"),
    ({"window_s": 30 * 86400}, "window_s"),
    ({"aggregation": "median"}, "aggregation"),
    ({"labels": {"team": 1}}, "labels"),
    ({"labels": {"bad-name": "x"}}, "labels.bad-name"),
    ({"annotations": {"summary": "{{ $foo }}"}}, "annotations.summary"),
    ({"group_by": ["a-b"]}, "group_by[0]"),
    ({"escalation": {"after_s": 60}}, "escalation"),
    ({"escalation": [{"after_s": 60}]}, "escalation[0]"),
    ({"escalation": [{"after_s": 600, "severity": "high"},
                     {"after_s": 60, "severity": "critical"}]}, "escalation[1].after_s"),
    ({"enabled": "yes"}, "enabled"),
    ({"colour": "red"}, "colour"),
]


@pytest.mark.parametrize(("change", "field"), BAD, ids=[f for _, f in BAD])
def test_bad_rules_name_the_field(change: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidInput) as err:
        parse_rule({**BASE, **change})
    assert err.value.problems[0].field == field


def test_a_rule_must_be_an_object() -> None:
    with pytest.raises(InvalidInput, match="JSON object"):
        parse_rule(["cpu"])


def test_templates_fill_value_and_labels() -> None:
    text = "{{ $labels.host }} {{$value}} {{ $labels.missing }}!"
    assert render(text, 0.5, {"host": "a"}) == "a 0.5 !"
