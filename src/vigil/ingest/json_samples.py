"""JSON samples (``POST /api/v1/metrics`` and ``Vigil.record_batch``) → ``SampleBatch``.

Shape: ``{"samples": [{"name", "value", "timestamp", "labels", "type", "category"}]}``;
``timestamp`` is epoch milliseconds or RFC 3339 (default: now), ``labels`` an object of
strings, ``type`` and ``category`` optional (gauge, custom). Names are checked strictly
against the Prometheus rules (no silent renaming of a JSON client's names).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

import numpy as np

from vigil.core.errors import InvalidInput, Problem
from vigil.core.timeutil import parse_time_ms
from vigil.core.types import CATEGORIES, METRIC_TYPES, SampleBatch, SeriesKey, SeriesMeta
from vigil.ingest.limits import Limits, labels_problem, metric_name_problem

MAX_PROBLEMS = 10
_FIELDS = frozenset({"name", "value", "timestamp", "labels", "type", "category"})


def parse_document(doc: Any, *, limits: Limits, now_ms: int) -> SampleBatch:
    """The decoded request body → batch; the body must be ``{"samples": [...]}``."""
    if not isinstance(doc, dict) or not isinstance(doc.get("samples"), list):
        raise InvalidInput(Problem('expected an object {"samples": [...]}', field="samples"))
    return parse_samples(doc["samples"], limits=limits, now_ms=now_ms)


def parse_samples(
    items: Iterable[Mapping[str, Any]], *, limits: Limits, now_ms: int
) -> SampleBatch:
    problems: list[Problem] = []
    index: dict[SeriesKey, int] = {}
    series: list[SeriesMeta] = []
    idx: list[int] = []
    ts: list[int] = []
    values: list[float] = []
    for i, item in enumerate(items):
        where = f"samples[{i}]"
        try:
            key, meta, t, v = _one(item, where, limits, now_ms)
        except InvalidInput as err:
            problems.extend(err.problems)
            if len(problems) >= MAX_PROBLEMS:
                break
            continue
        pos = index.get(key)
        if pos is None:
            pos = index[key] = len(series)
            series.append(meta)
        idx.append(pos)
        ts.append(t)
        values.append(v)
    if problems:
        raise InvalidInput(problems[:MAX_PROBLEMS])
    return SampleBatch(series, np.array(idx, np.int32), np.array(ts, np.int64),
                       np.array(values, np.float64))


def _one(
    item: Any, where: str, limits: Limits, now_ms: int
) -> tuple[SeriesKey, SeriesMeta, int, float]:
    def bad(field: str, reason: str) -> InvalidInput:
        return InvalidInput(Problem(reason, field=f"{where}.{field}" if field else where))

    if not isinstance(item, Mapping):
        raise bad("", "each sample must be an object")
    unknown = set(item) - _FIELDS
    if unknown:
        raise bad(sorted(unknown)[0], f"unknown field; allowed: {', '.join(sorted(_FIELDS))}")
    name = item.get("name")
    if not isinstance(name, str):
        raise bad("name", "required: a string")
    if reason := metric_name_problem(name, limits):
        raise bad("name", reason)
    value = item.get("value")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise bad("value", "required: a number")
    labels = item.get("labels") or {}
    if not isinstance(labels, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in labels.items()
    ):
        raise bad("labels", "must be an object of string values")
    if reason := labels_problem(dict(labels), limits):
        raise bad("labels", reason)
    mtype = item.get("type", "gauge")
    if mtype not in METRIC_TYPES:
        raise bad("type", f"must be one of {', '.join(METRIC_TYPES)}")
    category = item.get("category", "custom")
    if category not in CATEGORIES:
        raise bad("category", f"must be one of {', '.join(CATEGORIES)}")
    raw_ts = item.get("timestamp")
    if raw_ts is None:
        t = now_ms
    elif isinstance(raw_ts, bool):
        raise bad("timestamp", "must be epoch milliseconds or an RFC 3339 string")
    elif isinstance(raw_ts, (int, float)):
        t = int(raw_ts)
    elif isinstance(raw_ts, datetime):
        t = int(raw_ts.timestamp() * 1000)
    elif isinstance(raw_ts, str):
        t = parse_time_ms(raw_ts, f"{where}.timestamp")
    else:
        raise bad("timestamp", "must be epoch milliseconds or an RFC 3339 string")
    if t < 0:
        raise bad("timestamp", "must not be before 1970")
    key = SeriesKey.of(name, labels)
    return key, SeriesMeta(key, mtype, category), t, float(value)
