"""One tenant's alerting state and how it reacts: transitions become alerts (stored
with their history), alerts go to their notification groups, groups are flushed through
silences and inhibition, and unacknowledged alerts escalate. The service holds its lock
around every call."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol

from vigil.alerting import lifecycle
from vigil.alerting.channels import Channel
from vigil.alerting.evaluator import Evaluator, Transition
from vigil.alerting.grouping import Grouper, group_labels
from vigil.alerting.lifecycle import Alert, Silence, StateStore
from vigil.alerting.model import Notification
from vigil.alerting.rules import Rule, render

# Every transition of every alert, whatever its channels (the WebSocket channel type
# publishes notifications on "alerts"; this is the lifecycle stream the dashboard reads).
LIFECYCLE_TOPIC = "alert_lifecycle"
Publish = Callable[[str, Mapping[str, object]], None]


class Deliver(Protocol):
    def submit(self, tenant: str, n: Notification) -> bool: ...


@dataclass
class Stats:
    batches_evaluated: int = 0
    batches_dropped: int = 0
    evaluation_seconds: float = 0.0
    alerts_fired: int = 0
    alerts_resolved: int = 0
    notifications: int = 0
    notifications_dropped: int = 0


@dataclass
class TenantAlerting:
    tenant: str
    _state: StateStore
    _deliver: Deliver
    _publish: Publish
    stats: Stats
    rules: dict[str, Rule] = field(default_factory=dict)
    channels: dict[str, Channel] = field(default_factory=dict)
    silences: dict[str, Silence] = field(default_factory=dict)
    active: dict[str, Alert] = field(default_factory=dict)  # by fingerprint
    grouper: Grouper = field(default_factory=Grouper)
    forecast_due: dict[str, int] = field(default_factory=dict)
    evaluator: Evaluator = field(init=False)

    def __post_init__(self) -> None:
        self.evaluator = Evaluator(lambda fp: fp in self.active)

    def apply(self, transitions: Sequence[Transition], now: int) -> None:
        """Alerts from what fired or resolved."""
        for tr in transitions:
            if tr.firing:
                labels = {**tr.series.label_dict(), **(tr.rule.labels or {}),
                          "alertname": tr.rule.name, "severity": tr.rule.severity}
                notes = {k: render(v, tr.value, labels)
                         for k, v in (tr.rule.annotations or {}).items()}
                if tr.fingerprint in self.active:
                    continue  # restored after a restart or a rule change: still the same
                a = Alert.new(tr.rule.id, tr.rule.name, tr.fingerprint, labels, notes,
                              tr.rule.severity, tr.value, now)
                self.record(a, "triggered", now)
                self.stats.alerts_fired += 1
            else:
                a = self.active.get(tr.fingerprint)  # type: ignore[assignment]
                if a is None:
                    continue
                a = lifecycle.resolve(replace(a, value=tr.value), None, "condition cleared", now)
                self.record(a, "resolved", now)
                self.stats.alerts_resolved += 1

    def record(self, a: Alert, event: str, now: int,
               by: str | None = None, comment: str | None = None, **extra: object) -> None:
        """Store the alert and its history entry, then tell groups and subscribers."""
        self._state.put_alert(self.tenant, a.as_dict())
        self._state.append_event(self.tenant, "history", a.id, now,
                                 lifecycle.history_entry(a, event, now, by, comment, **extra))
        if a.active:
            self.active[a.fingerprint] = a
        else:
            self.active.pop(a.fingerprint, None)
        rule = self.rules.get(a.rule_id)
        if rule is not None and event in ("triggered", "resolved", "escalated"):
            self.grouper.update(a, rule, now)
        self._publish(LIFECYCLE_TOPIC, {"type": f"alert_{event}", "tenant": self.tenant,
                                        "data": a.as_dict()})

    def muted(self, now: int) -> Callable[[Alert], bool]:
        critical = {group_labels(self.rules[a.rule_id], a.labels) for a in self.active.values()
                    if a.severity == "critical" and a.rule_id in self.rules}

        def muted(a: Alert) -> bool:
            if any(s.mutes(a.labels, now) for s in self.silences.values()):
                return True
            rule = self.rules.get(a.rule_id)
            return (a.severity != "critical" and rule is not None
                    and group_labels(rule, a.labels) in critical)

        return muted

    def flush(self, now: int) -> None:
        for n in self.grouper.flush(now, self.muted(now)):
            self.send(n)

    def send(self, n: Notification) -> None:
        if self._deliver.submit(self.tenant, n):
            self.stats.notifications += 1
        else:
            self.stats.notifications_dropped += 1

    def escalate(self, now: int) -> None:
        """Unacknowledged alerts past an escalation step: raise, notify the step's channels."""
        muted = self.muted(now)
        for a in list(self.active.values()):
            rule = self.rules.get(a.rule_id)
            if rule is None or a.state != "triggered":
                continue
            while a.escalation_step < len(rule.escalation):
                step = rule.escalation[a.escalation_step]
                if now - a.starts_ms < step.after_ms:
                    break
                a = lifecycle.raise_severity(a, step.severity, now, a.escalation_step + 1)
                self.record(a, "escalated", now, step=a.escalation_step,
                             channels=list(step.channels))
                if not muted(a):
                    for channel in step.channels:
                        self.send(Notification(
                            channel, f"escalation:{a.fingerprint}", "firing",
                            dict(group_labels(rule, a.labels)), (a.view(),), a.severity, now,
                            escalation=a.escalation_step))
