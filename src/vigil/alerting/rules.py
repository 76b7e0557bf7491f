"""Alert rules: what to watch, when it breaches, who hears about it.

``parse_rule`` validates a JSON/TOML document at the edge into a frozen ``Rule``; every
problem names its field (``condition.op``, ``escalation[1].after_s`` …). Durations are
seconds (``*_s``) in documents and milliseconds (``*_ms``) inside.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal, get_args

from vigil.alerting.fields import Fields, bad
from vigil.alerting.model import SEVERITIES, Severity
from vigil.core.matchers import Matcher

Kind = Literal["threshold", "change", "absence", "anomaly", "forecast"]
KINDS: tuple[str, ...] = get_args(Kind)
Op = Literal[">", "<", ">=", "<=", "==", "!="]
OPS: tuple[str, ...] = get_args(Op)
Aggregation = Literal["avg", "min", "max", "sum", "count", "last"]
AGGREGATIONS: tuple[str, ...] = get_args(Aggregation)

_NAME = re.compile(r"^[A-Za-z0-9_.: -]{1,128}$")
_METRIC = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
_LABEL = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_TEMPLATE = re.compile(r"\{\{\s*(.*?)\s*\}\}")
_PLACEHOLDER = re.compile(r"^\$value$|^\$labels\.([a-zA-Z_][a-zA-Z0-9_]*)$")
_ANOMALY_METHODS = ("ensemble", "zscore", "robust", "seasonal", "ewma")


@dataclass(frozen=True, slots=True)
class Condition:
    """When a series breaches. ``value`` compared is, by kind: the window aggregate
    (threshold), its % change against the previous window (change), seconds since the
    last sample (absence), the anomaly score (anomaly), the probability of crossing
    ``threshold`` within ``horizon_ms`` (forecast)."""

    kind: Kind
    op: Op = ">"
    threshold: float = 0.0
    for_ms: int = 0
    clear_threshold: float | None = None  # hysteresis: a firing alert clears past this
    absent_ms: int = 0
    method: str = "ensemble"
    horizon_ms: int = 0
    lookback_ms: int = 0
    step_ms: int = 0
    every_ms: int = 0
    probability: float = 0.5


@dataclass(frozen=True, slots=True)
class EscalationStep:
    after_ms: int  # since the alert started, while nobody acknowledged it
    channels: tuple[str, ...] = ()
    severity: Severity | None = None


@dataclass(frozen=True, slots=True)
class Rule:
    id: str
    name: str
    metric: str
    matchers: tuple[Matcher, ...]
    condition: Condition
    severity: Severity
    channels: tuple[str, ...] = ()
    window_ms: int = 0  # 0: each series' latest sample
    aggregation: Aggregation = "avg"
    labels: Mapping[str, str] | None = None
    annotations: Mapping[str, str] | None = None
    group_by: tuple[str, ...] = ("alertname",)
    group_wait_ms: int = 0
    group_interval_ms: int = 60_000
    repeat_interval_ms: int = 4 * 3_600_000
    keep_firing_for_ms: int = 0  # the resolve duration: clear this long before resolving
    escalation: tuple[EscalationStep, ...] = ()
    enabled: bool = True
    doc: Mapping[str, Any] | None = None  # the validated document, as the API returns it

    def breaches(self, value: float) -> bool:
        return compare(self.condition.op, value, self.condition.threshold)


def compare(op: str, a: float, b: float) -> bool:
    return {">": a > b, "<": a < b, ">=": a >= b, "<=": a <= b, "==": a == b,
            "!=": a != b}[op]


def render(template: str, value: float, labels: Mapping[str, str]) -> str:
    """Fill ``{{ $value }}`` and ``{{ $labels.name }}`` (a missing label renders empty).

    >>> render("{{ $labels.host }} at {{ $value }}%", 93.5, {"host": "web-1"})
    'web-1 at 93.5%'
    """
    def fill(m: re.Match[str]) -> str:
        p = _PLACEHOLDER.match(m.group(1))
        if p is None:
            return m.group(0)
        return labels.get(p.group(1), "") if p.group(1) else f"{value:.6g}"

    return _TEMPLATE.sub(fill, template)


_RULE_FIELDS = ("id", "name", "metric", "match", "condition", "severity", "channels",
                "window_s", "aggregation", "labels", "annotations", "group_by",
                "group_wait_s", "group_interval_s", "repeat_interval_s", "keep_firing_for_s",
                "escalation", "enabled", "description")
_CONDITION_FIELDS: dict[str, tuple[str, ...]] = {
    "threshold": ("type", "op", "threshold", "for_s", "clear_threshold"),
    "change": ("type", "op", "threshold", "for_s", "clear_threshold"),
    "absence": ("type", "for_s"),
    "anomaly": ("type", "threshold", "method", "for_s", "clear_threshold"),
    "forecast": ("type", "op", "threshold", "horizon_s", "lookback_s", "step_s", "every_s",
                 "probability", "for_s"),
}


def parse_condition(doc: object, window_ms: int) -> Condition:
    if not isinstance(doc, Mapping):
        raise bad("condition", "required: an object with a type (" + ", ".join(KINDS) + ")")
    every = tuple({f for fs in _CONDITION_FIELDS.values() for f in fs})
    kind: Kind = Fields(doc, "condition", every).str_(  # type: ignore[assignment]
        "type", choices=KINDS)
    d = Fields(doc, "condition", _CONDITION_FIELDS[kind])
    for_ms = d.ms("for_s", 0.0)
    clear = d.num("clear_threshold") if d.has("clear_threshold") else None
    if kind == "absence":
        absent_ms = d.ms("for_s", 0.0, positive=True)  # the for_s of no data
        return Condition("absence", ">=", absent_ms / 1000, absent_ms=absent_ms)
    if kind == "anomaly":
        return Condition("anomaly", ">=", d.num("threshold", lo=0.0, hi=1.0), for_ms,
                         clear, method=d.str_("method", "ensemble", choices=_ANOMALY_METHODS))
    op: Op = d.str_("op", choices=OPS)  # type: ignore[assignment]
    threshold = d.num("threshold")
    if kind == "change" and window_ms <= 0:
        raise bad("window_s", "a change rule compares two windows: window_s must be > 0")
    if kind == "forecast":
        if op not in (">", ">=", "<", "<="):
            raise bad("condition.op", "a forecast breach is one of >, >=, <, <=")
        step = d.ms("step_s", 300.0, positive=True)
        horizon = d.ms("horizon_s", 86400.0, hi=365 * 86400.0, positive=True)
        lookback = d.ms("lookback_s", 7 * 86400.0, hi=90 * 86400.0, positive=True)
        if horizon // step > 2000 or lookback // step > 20_000:
            raise bad("condition.step_s", "too fine for the horizon or lookback; use a "
                       "larger step_s (at most 2,000 steps ahead, 20,000 back)")
        if lookback < 4 * step:
            raise bad("condition.lookback_s", "must cover at least 4 steps")
        return Condition("forecast", op, threshold, for_ms, horizon_ms=horizon,
                         lookback_ms=lookback, step_ms=step,
                         every_ms=d.ms("every_s", 300.0, positive=True),
                         probability=d.num("probability", 0.5, lo=0.0, hi=1.0))
    return Condition(kind, op, threshold, for_ms, clear)


def _escalation(raw: object) -> tuple[EscalationStep, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise bad("escalation", "must be a list of steps")
    steps: list[EscalationStep] = []
    for i, item in enumerate(raw):
        d = Fields(item, f"escalation[{i}]", ("after_s", "channels", "severity"))
        sev = d.str_("severity", choices=SEVERITIES) if d.has("severity") else None
        step = EscalationStep(d.ms("after_s", None, hi=30 * 86400.0, positive=True),  # type: ignore[arg-type]
                              d.strs("channels"), sev)  # type: ignore[arg-type]
        if not step.channels and step.severity is None:
            raise bad(f"escalation[{i}]", "a step needs channels, a severity, or both")
        if steps and step.after_ms <= steps[-1].after_ms:
            raise bad(f"escalation[{i}].after_s", "steps must come in increasing after_s")
        steps.append(step)
    return tuple(steps)


def parse_rule(doc: object, *, rule_id: str | None = None) -> Rule:
    """Validate a rule document; ``rule_id`` (or the document's ``id``, or a new one)."""
    d = Fields(doc, "", _RULE_FIELDS)
    rid = rule_id or (d.str_("id", pattern=re.compile(r"^[A-Za-z0-9_-]{1,64}$"))
                      if d.has("id") else uuid.uuid4().hex[:12])
    name = d.str_("name", pattern=_NAME)
    metric = d.str_("metric", pattern=_METRIC)
    matchers = tuple(Matcher.parse(m, field=f"match[{i}]")
                     for i, m in enumerate(d.strs("match")))
    window_ms = d.ms("window_s", 0.0)
    condition = parse_condition(d.doc.get("condition"), window_ms)
    labels = d.str_map("labels")
    for k in labels:
        if not _LABEL.match(k):
            raise bad(f"labels.{k}", "not a valid label name")
    annotations = d.str_map("annotations")
    for k, text in annotations.items():
        for m in _TEMPLATE.finditer(text):
            if not _PLACEHOLDER.match(m.group(1)):
                raise bad(f"annotations.{k}", f"unknown placeholder {m.group(0)!r}; use "
                           "{{ $value }} or {{ $labels.<name> }}")
    enabled = d.doc.get("enabled", True)
    if not isinstance(enabled, bool):
        raise bad("enabled", "must be true or false")
    rule = Rule(
        id=rid, name=name, metric=metric, matchers=matchers, condition=condition,
        severity=d.str_("severity", "medium", choices=SEVERITIES),  # type: ignore[arg-type]
        channels=d.strs("channels", pattern=re.compile(r"^[A-Za-z0-9_.-]{1,64}$")),
        window_ms=window_ms,
        aggregation=d.str_("aggregation", "avg", choices=AGGREGATIONS),  # type: ignore[arg-type]
        labels=labels, annotations=annotations,
        group_by=d.strs("group_by", pattern=_LABEL) if d.has("group_by") else ("alertname",),
        group_wait_ms=d.ms("group_wait_s", 0.0, hi=3600.0),
        group_interval_ms=d.ms("group_interval_s", 60.0, hi=86400.0),
        repeat_interval_ms=d.ms("repeat_interval_s", 4 * 3600.0, hi=30 * 86400.0),
        keep_firing_for_ms=d.ms("keep_firing_for_s", 0.0),
        escalation=_escalation(d.doc.get("escalation")),
        enabled=enabled,
    )
    if d.has("description"):
        d.str_("description")
    return replace(rule, doc={**dict(d.doc), "id": rid})
