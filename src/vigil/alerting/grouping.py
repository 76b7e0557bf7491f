"""Flood control between the lifecycle and the channels, as Alertmanager does it.

Alerts are grouped per channel by the values of their rule's ``group_by`` labels. A new
group waits ``group_wait`` to gather company, later changes wait until ``group_interval``
after the last message, and an unchanged group with firing alerts is repeated every
``repeat_interval``. A group is only sent when what it would say changed (dedup), and
alerts that are silenced or inhibited are left out of it (they stay visible in the API).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from vigil.alerting.lifecycle import Alert
from vigil.alerting.model import SEVERITIES, Notification
from vigil.alerting.rules import Rule

GroupId = tuple[tuple[str, str], ...]


def group_labels(rule: Rule, labels: Mapping[str, str]) -> GroupId:
    """The identity an alert shares with its group (and with the alerts it inhibits)."""
    return tuple((k, labels.get(k, "")) for k in rule.group_by)


@dataclass
class _Group:
    channel: str
    labels: GroupId
    wait_ms: int
    interval_ms: int
    repeat_ms: int
    members: dict[str, Alert] = field(default_factory=dict)  # by fingerprint
    due_ms: int = -1
    sent_ms: int = -1
    sent: frozenset[str] = frozenset()  # fingerprints firing in the last message

    @property
    def key(self) -> str:
        inner = ",".join(f'{k}="{v}"' for k, v in self.labels)
        return f"{self.channel}:{{{inner}}}"


class Grouper:
    """One tenant's notification groups. Not thread-safe: the service holds its lock."""

    def __init__(self) -> None:
        self._groups: dict[tuple[str, GroupId], _Group] = {}

    def __len__(self) -> int:
        return len(self._groups)

    def _group(self, channel: str, rule: Rule, labels: GroupId) -> _Group:
        g = self._groups.get((channel, labels))
        if g is None:
            g = self._groups[(channel, labels)] = _Group(
                channel, labels, rule.group_wait_ms, rule.group_interval_ms,
                rule.repeat_interval_ms)
        return g

    def update(self, alert: Alert, rule: Rule, now_ms: int) -> None:
        """An alert fired, resolved or changed: schedule its groups' next message."""
        for channel in rule.channels:
            g = self._group(channel, rule, group_labels(rule, alert.labels))
            g.members[alert.fingerprint] = alert
            self._schedule(g, now_ms)

    def restore(self, alert: Alert, rule: Rule) -> None:
        """An alert that was active before a restart: its groups count it as sent."""
        for channel in rule.channels:
            g = self._group(channel, rule, group_labels(rule, alert.labels))
            g.members[alert.fingerprint] = alert
            g.sent = g.sent | {alert.fingerprint}
            g.sent_ms = max(g.sent_ms, alert.updated_ms)

    @staticmethod
    def _schedule(g: _Group, now_ms: int) -> None:
        if g.due_ms >= 0:
            return
        g.due_ms = now_ms + g.wait_ms if g.sent_ms < 0 else max(now_ms,
                                                                 g.sent_ms + g.interval_ms)

    def flush(self, now_ms: int, muted: Callable[[Alert], bool]) -> list[Notification]:
        """Messages of every group that is due; also schedules repeats and groups whose
        visible alerts changed (a silence ended, an inhibiting alert resolved)."""
        out: list[Notification] = []
        for key, g in list(self._groups.items()):
            visible = [a for a in g.members.values() if not muted(a)]
            firing = frozenset(a.fingerprint for a in visible if a.active)
            if g.due_ms < 0 and (firing != g.sent or (
                    firing and now_ms - g.sent_ms >= g.repeat_ms)):
                self._schedule(g, now_ms)
            if g.due_ms < 0 or g.due_ms > now_ms:
                continue
            g.due_ms = -1
            resolved = [a for a in visible if not a.active and a.fingerprint in g.sent]
            if firing != g.sent or resolved or (firing and now_ms - g.sent_ms >= g.repeat_ms):
                alerts = sorted((a for a in visible if a.active), key=lambda a: a.starts_ms)
                shown = alerts + resolved
                if shown:
                    out.append(Notification(
                        g.channel, g.key, "firing" if alerts else "resolved", dict(g.labels),
                        tuple(a.view() for a in shown),
                        max((a.severity for a in shown), key=SEVERITIES.index), now_ms))
                g.sent, g.sent_ms = firing, now_ms
            for fp in [fp for fp, a in g.members.items() if not a.active]:
                del g.members[fp]
            if not g.members:
                del self._groups[key]
        return out
