"""JSON samples: shapes accepted, and each rejection names the field."""

from __future__ import annotations

from typing import Any

import pytest

from vigil.core.errors import InvalidInput
from vigil.ingest.json_samples import parse_document, parse_samples
from vigil.ingest.limits import Limits

L = Limits(max_labels=2, max_label_value_length=8)


def test_good_samples_become_columns() -> None:
    b = parse_samples([
        {"name": "cpu", "value": 1, "timestamp": 1000, "labels": {"host": "a"}},
        {"name": "cpu", "value": 2.5, "timestamp": "1970-01-01T00:00:02Z",
         "labels": {"host": "a"}},
        {"name": "orders_total", "value": 3, "type": "counter", "category": "business"},
    ], limits=L, now_ms=99)
    assert [str(s.key) for s in b.series] == ['cpu{host="a"}', "orders_total{}"]
    assert b.series[1].type == "counter" and b.series[1].category == "business"
    assert b.series_idx.tolist() == [0, 0, 1]
    assert b.ts_ms.tolist() == [1000, 2000, 99]
    assert b.value.tolist() == [1.0, 2.5, 3.0]


@pytest.mark.parametrize(("sample", "field", "reason"), [
    ("x", "samples[0]", "must be an object"),
    ({"value": 1}, "samples[0].name", "required"),
    ({"name": "9lives", "value": 1}, "samples[0].name", "invalid metric name"),
    ({"name": "m"}, "samples[0].value", "a number"),
    ({"name": "m", "value": "1"}, "samples[0].value", "a number"),
    ({"name": "m", "value": True}, "samples[0].value", "a number"),
    ({"name": "m", "value": 1, "labels": {"a": 1}}, "samples[0].labels", "string values"),
    ({"name": "m", "value": 1, "labels": {"a-b": "x"}}, "samples[0].labels", "invalid label"),
    ({"name": "m", "value": 1, "labels": {"__name__": "x"}}, "samples[0].labels", "__"),
    ({"name": "m", "value": 1, "labels": {"a": "x", "b": "y", "c": "z"}}, "samples[0].labels",
     "limit of 2"),
    ({"name": "m", "value": 1, "labels": {"a": "123456789"}}, "samples[0].labels",
     "limit of 8"),
    ({"name": "m", "value": 1, "type": "meter"}, "samples[0].type", "one of"),
    ({"name": "m", "value": 1, "category": "misc"}, "samples[0].category", "one of"),
    ({"name": "m", "value": 1, "timestamp": "soon"}, "samples[0].timestamp", "bad time"),
    ({"name": "m", "value": 1, "timestamp": -5}, "samples[0].timestamp", "1970"),
    ({"name": "m", "value": 1, "timestamp": [1]}, "samples[0].timestamp", "epoch"),
    ({"name": "m", "value": 1, "unit": "s"}, "samples[0].unit", "unknown field"),
])
def test_each_bad_field_is_named(sample: Any, field: str, reason: str) -> None:
    with pytest.raises(InvalidInput) as err:
        parse_samples([{"name": "ok", "value": 1}, sample][1:], limits=L, now_ms=0)
    p = err.value.problems[0]
    assert p.field == field and reason in p.reason


def test_problems_are_listed_up_to_ten() -> None:
    with pytest.raises(InvalidInput) as err:
        parse_samples([{"name": "m"}] * 30, limits=L, now_ms=0)
    assert len(err.value.problems) == 10
    assert err.value.problems[3].field == "samples[3].value"


@pytest.mark.parametrize("doc", [[], {"samples": {}}, {"points": []}, "x"])
def test_document_shape(doc: Any) -> None:
    with pytest.raises(InvalidInput, match="samples"):
        parse_document(doc, limits=L, now_ms=0)
