"""Alerts and silences: records, the lifecycle state machine, and the store they need.

An alert is triggered -> acknowledged (who, when, comment) -> resolved (when its
condition cleared, by hand, or because its rule went away). Every transition appends a
history entry; both are written through ``StateStore`` before anyone is told, so alert
state survives a restart.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Protocol

from vigil.alerting.fields import Fields
from vigil.alerting.model import SEVERITIES, AlertView, Severity, State
from vigil.core.errors import InvalidInput, Problem
from vigil.core.matchers import Matcher

Doc = dict[str, Any]


class StateStore(Protocol):
    """Where alerting keeps what must survive a restart. ``tenant`` confines every call.

    Objects (``kind`` rule, channel, silence) are documents by id; alerts are documents
    with a few columns to filter on; events (``kind`` history, dead_letter) are
    append-only."""

    def tenants(self) -> list[str]: ...

    def put(self, tenant: str, kind: str, id: str, doc: Doc) -> None: ...

    def delete(self, tenant: str, kind: str, id: str) -> bool: ...

    def docs(self, tenant: str, kind: str) -> list[Doc]: ...

    def put_alert(self, tenant: str, doc: Doc) -> None: ...

    def alert(self, tenant: str, alert_id: str) -> Doc | None: ...

    def alerts(self, tenant: str, *, state: str | None = None, severity: str | None = None,
               rule: str | None = None, since_ms: int | None = None, active: bool = False,
               limit: int = 1000) -> list[Doc]: ...

    def append_event(self, tenant: str, kind: str, ref: str, ts_ms: int, doc: Doc) -> None: ...

    def events(self, tenant: str, kind: str, ref: str | None = None, limit: int = 1000
               ) -> list[Doc]: ...


@dataclass(frozen=True, slots=True)
class Alert:
    id: str
    rule_id: str
    rule: str
    fingerprint: str
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    severity: Severity
    state: State
    starts_ms: int
    value: float
    updated_ms: int
    ends_ms: int = 0
    acknowledged_by: str | None = None
    acknowledged_ms: int | None = None
    ack_comment: str | None = None
    resolved_by: str | None = None
    resolve_reason: str | None = None
    escalation_step: int = 0

    @property
    def active(self) -> bool:
        return self.state != "resolved"

    def view(self) -> AlertView:
        return AlertView(self.id, self.rule, self.fingerprint,
                         "firing" if self.active else "resolved", self.severity,
                         self.labels, self.annotations, self.starts_ms, self.ends_ms,
                         self.value, self.state)

    def as_dict(self) -> Doc:
        return {**asdict(self), "labels": dict(self.labels),
                "annotations": dict(self.annotations)}

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> Alert:
        return cls(**{k: doc[k] for k in cls.__dataclass_fields__ if k in doc})

    @classmethod
    def new(cls, rule_id: str, rule: str, fingerprint: str, labels: Mapping[str, str],
            annotations: Mapping[str, str], severity: Severity, value: float, now_ms: int
            ) -> Alert:
        return cls(uuid.uuid4().hex[:16], rule_id, rule, fingerprint, dict(labels),
                   dict(annotations), severity, "triggered", now_ms, value, now_ms)


def acknowledge(alert: Alert, by: str, comment: str | None, now_ms: int) -> Alert:
    if alert.state != "triggered":
        raise InvalidInput(Problem(
            f"alert {alert.id} is {alert.state}; only a triggered alert can be acknowledged",
            field="state"))
    return replace(alert, state="acknowledged", acknowledged_by=by, acknowledged_ms=now_ms,
                   ack_comment=comment, updated_ms=now_ms)


def resolve(alert: Alert, by: str | None, reason: str, now_ms: int) -> Alert:
    if alert.state == "resolved":
        raise InvalidInput(Problem(f"alert {alert.id} is already resolved", field="state"))
    return replace(alert, state="resolved", resolved_by=by, resolve_reason=reason,
                   ends_ms=now_ms, updated_ms=now_ms)


def raise_severity(alert: Alert, to: Severity | None, now_ms: int, step: int) -> Alert:
    sev = alert.severity
    if to is not None and SEVERITIES.index(to) > SEVERITIES.index(sev):
        sev = to
    return replace(alert, severity=sev, escalation_step=step, updated_ms=now_ms,
                   labels={**alert.labels, "severity": sev})


def history_entry(alert: Alert, event: str, now_ms: int, by: str | None = None,
                  comment: str | None = None, **extra: object) -> Doc:
    return {"alert_id": alert.id, "event": event, "at_ms": now_ms, "state": alert.state,
            "severity": alert.severity, "by": by, "comment": comment, "value": alert.value,
            **extra}


@dataclass(frozen=True, slots=True)
class Silence:
    """Mutes notifications of alerts whose labels match every matcher, in [start, end)."""

    id: str
    matchers: tuple[Matcher, ...]
    starts_ms: int
    ends_ms: int
    author: str
    comment: str
    created_ms: int
    doc: Mapping[str, Any] = field(default_factory=dict)

    def mutes(self, labels: Mapping[str, str], now_ms: int) -> bool:
        return self.starts_ms <= now_ms < self.ends_ms and all(
            m.matches(labels.get(m.label)) for m in self.matchers)

    def as_dict(self) -> Doc:
        return {**self.doc, "id": self.id, "starts_ms": self.starts_ms,
                "ends_ms": self.ends_ms, "created_ms": self.created_ms}


def parse_silence(doc: object, now_ms: int, silence_id: str | None = None) -> Silence:
    """``{"matchers": ["host=web-1"], "starts_at": RFC 3339|epoch s (default now),
    "ends_at": … or "duration_s", "author", "comment"}``."""
    d = Fields(doc, "", ("id", "matchers", "starts_at", "ends_at", "duration_s", "author",
                       "comment", "starts_ms", "ends_ms", "created_ms"))
    raw = d.strs("matchers")
    if not raw:
        raise InvalidInput(Problem("at least one matcher, e.g. host=web-1", field="matchers"))
    matchers = tuple(Matcher.parse(m, field=f"matchers[{i}]") for i, m in enumerate(raw))
    starts = d.time_ms("starts_at", now_ms)
    if d.has("ends_at") == d.has("duration_s"):
        raise InvalidInput(Problem("give ends_at or duration_s (not both)", field="ends_at"))
    ends = (d.time_ms("ends_at", now_ms) if d.has("ends_at")
            else starts + d.ms("duration_s", 0.0, hi=366 * 86400.0, positive=True))
    if ends <= starts:
        raise InvalidInput(Problem("ends_at must be after starts_at", field="ends_at"))
    author = d.str_("author")
    comment = d.str_("comment", "")
    keep = {"matchers": list(raw), "author": author, "comment": comment}
    return Silence(silence_id or uuid.uuid4().hex[:12], matchers, starts, ends, author, comment,
                   now_ms, keep)


def silence_from_doc(doc: Mapping[str, Any]) -> Silence:
    matchers = tuple(Matcher.parse(m) for m in doc["matchers"])
    keep = {k: doc[k] for k in ("matchers", "author", "comment")}
    return Silence(doc["id"], matchers, int(doc["starts_ms"]), int(doc["ends_ms"]),
                   doc["author"], doc["comment"], int(doc["created_ms"]), keep)
