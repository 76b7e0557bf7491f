"""Notifications to send in channel and delivery tests."""

from __future__ import annotations

from vigil.alerting.model import AlertView, Notification, Severity

T0 = 1_768_500_000_000  # 2026-01-15T18:00:00Z, a Thursday


def alert(i: int = 0, *, status: str = "firing", severity: Severity = "high",
          rule: str = "cpu high", value: float = 95.5) -> AlertView:
    return AlertView(
        id=f"a{i}", rule=rule, fingerprint=f"fp{i:04d}",
        status="firing" if status == "firing" else "resolved", severity=severity,
        labels={"hostname": f"h{i}", "region": "eu"},
        annotations={"summary": f"cpu on h{i} is {value}", "runbook": "https://wiki/cpu"},
        starts_ms=T0 - 60_000, ends_ms=0 if status == "firing" else T0, value=value)


def notification(channel: str = "ops", *, group: str = "g1", count: int = 1,
                 severity: Severity = "high", status: str = "firing",
                 created_ms: int = T0) -> Notification:
    return Notification(
        channel=channel, group_key=group,
        status="firing" if status == "firing" else "resolved",
        group_labels={"region": "eu"},
        alerts=tuple(alert(i, status=status, severity=severity) for i in range(count)),
        severity=severity, created_ms=created_ms)
