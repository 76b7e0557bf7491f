"""What alerting hands to its channels: alerts as they are notified, grouped.

Times are int64 epoch ms (UTC); formatting for a payload happens in the channel.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal, get_args

Severity = Literal["low", "medium", "high", "critical"]
SEVERITIES: tuple[Severity, ...] = get_args(Severity)
# triggered -> acknowledged -> resolved; resolved is final.
State = Literal["triggered", "acknowledged", "resolved"]
STATES: tuple[State, ...] = get_args(State)


def severity_rank(s: Severity) -> int:
    """low 0 … critical 3: a higher rank inhibits and escalates past a lower one."""
    return SEVERITIES.index(s)


@dataclass(frozen=True, slots=True)
class AlertView:
    """One alert as a notification carries it (Alertmanager's alert object, plus ours)."""

    id: str
    rule: str
    fingerprint: str  # stable id of (rule, series labels): dedup key
    status: Literal["firing", "resolved"]
    severity: Severity
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    starts_ms: int
    ends_ms: int  # 0 while firing
    value: float
    state: State = "triggered"


@dataclass(frozen=True, slots=True)
class Notification:
    """One message for one channel: the alerts of one group, firing or resolved."""

    channel: str
    group_key: str
    status: Literal["firing", "resolved"]
    group_labels: Mapping[str, str]
    alerts: tuple[AlertView, ...]
    severity: Severity  # the highest severity among ``alerts``
    created_ms: int
    # Escalation step that sent it (0 = the rule's own channels).
    escalation: int = 0
    extra: Mapping[str, object] = field(default_factory=dict)

    @property
    def critical(self) -> bool:
        return self.severity == "critical"

    def common_labels(self) -> dict[str, str]:
        return _common([a.labels for a in self.alerts])

    def common_annotations(self) -> dict[str, str]:
        return _common([a.annotations for a in self.alerts])


def _common(maps: list[Mapping[str, str]]) -> dict[str, str]:
    if not maps:
        return {}
    first = dict(maps[0])
    return {k: v for k, v in first.items() if all(m.get(k) == v for m in maps[1:])}
