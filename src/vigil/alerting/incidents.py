"""Incidents: many correlated alerts summarised as one ("12 hosts in region=eu").

Active alerts of one rule that started within ``window_ms`` of each other form an
incident. Its summary names the labels all of them share and, for the labels that
differ, how many distinct values there are, so a page reads "cpu high: 12 hosts in
region=eu" instead of twelve lines.
"""

from __future__ import annotations

from collections.abc import Sequence

from vigil.alerting.lifecycle import Alert
from vigil.alerting.model import SEVERITIES

_OWN = frozenset({"alertname", "severity"})


def incidents(active: Sequence[Alert], window_ms: int = 15 * 60_000, min_alerts: int = 2
              ) -> list[dict[str, object]]:
    """Incidents of at least ``min_alerts`` alerts, largest first.

    >>> from vigil.alerting.lifecycle import Alert
    >>> mk = lambda h, t: Alert.new("r", "cpu high", h, {"host": h, "region": "eu"}, {},
    ...                             "high", 95.0, t)
    >>> [i["summary"] for i in incidents([mk("a", 0), mk("b", 60_000), mk("c", 90_000)])]
    ['cpu high: 3 hosts in region=eu']
    """
    by_rule: dict[str, list[Alert]] = {}
    for a in sorted(active, key=lambda a: a.starts_ms):
        by_rule.setdefault(a.rule_id, []).append(a)
    out: list[dict[str, object]] = []
    for alerts in by_rule.values():
        run: list[Alert] = []
        for a in alerts:
            if run and a.starts_ms - run[-1].starts_ms > window_ms:
                out += _incident(run, min_alerts)
                run = []
            run.append(a)
        out += _incident(run, min_alerts)
    return sorted(out, key=lambda i: -int(str(i["count"])))


def _incident(alerts: list[Alert], min_alerts: int) -> list[dict[str, object]]:
    if len(alerts) < min_alerts:
        return []
    names = sorted({k for a in alerts for k in a.labels} - _OWN)
    common = {k: alerts[0].labels.get(k, "") for k in names
              if all(a.labels.get(k, "") == alerts[0].labels.get(k, "") for a in alerts)}
    varying = {k: len({a.labels.get(k, "") for a in alerts}) for k in names if k not in common}
    what = (", ".join(f"{n} {k}s" for k, n in sorted(varying.items(), key=lambda kv: -kv[1]))
            if varying else f"{len(alerts)} alerts")
    where = ", ".join(f"{k}={v}" for k, v in common.items() if v)
    summary = f"{alerts[0].rule}: {what}" + (f" in {where}" if where else "")
    return [{
        "rule_id": alerts[0].rule_id, "rule": alerts[0].rule, "summary": summary,
        "count": len(alerts), "severity": max((a.severity for a in alerts),
                                              key=SEVERITIES.index),
        "starts_ms": alerts[0].starts_ms, "common_labels": common, "varying_labels": varying,
        "alert_ids": [a.id for a in alerts],
    }]
