"""The live stream's client messages (protocol in docs/streaming.md): each is checked and
applied to the hub; a bad one raises ``InvalidInput`` naming the field, and the connection
stays up.
"""

from __future__ import annotations

from typing import Any

from vigil.core.errors import InvalidInput, Problem
from vigil.core.matchers import Matcher
from vigil.streaming.hub import Client, Hub, Selector


def _bad(field: str, reason: str) -> InvalidInput:
    return InvalidInput(Problem(reason, field=field))


def _selectors(data: Any) -> list[Selector]:
    metrics = data.get("metrics") if isinstance(data, dict) else None
    if not isinstance(metrics, list) or not metrics:
        raise _bad("data.metrics", "a non-empty list of {name, match}")
    out: list[Selector] = []
    for i, m in enumerate(metrics):
        where = f"data.metrics[{i}]"
        if not isinstance(m, dict) or not isinstance(m.get("name"), str) or not m["name"]:
            raise _bad(f"{where}.name", "required: a metric name")
        match = m.get("match", [])
        if not isinstance(match, list):
            raise _bad(f"{where}.match", "a list of label matchers")
        out.append((m["name"], tuple(Matcher.parse(str(x), f"{where}.match[{j}]")
                                     for j, x in enumerate(match))))
    return out


def _every(data: Any, default: float) -> float:
    v = data.get("updateFrequency", default) if isinstance(data, dict) else default
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0.1 <= v <= 60:
        raise _bad("data.updateFrequency", "seconds from 0.1 to 60")
    return float(v)


def handle(hub: Hub, c: Client, msg: Any) -> dict[str, Any] | None:
    """One client message; the reply, if any."""
    if not isinstance(msg, dict) or not isinstance(msg.get("type"), str):
        raise _bad("type", 'every message is {"type": ..., "data": {...}}')
    kind, data = msg["type"], msg.get("data") or {}
    if kind == "subscribe":
        selectors, every = _selectors(data), _every(data, 1.0)
        sid = hub.subscribe(c, selectors, every)
        return {"type": "subscribed", "data": {"id": sid, "metrics": data["metrics"],
                                               "updateFrequency": every}}
    if kind == "unsubscribe":
        which = data.get("id") if isinstance(data, dict) else None
        ids = list(c.subs) if which is None else [which]
        if which is not None and which not in c.subs:
            raise _bad("data.id", f"no subscription {which!r}")
        for x in ids:
            hub.unsubscribe(c, str(x))
        return {"type": "unsubscribed", "data": {"ids": ids}}
    if kind in ("subscribe_alerts", "unsubscribe_alerts"):
        c.alerts = kind == "subscribe_alerts"
        return {"type": "subscribed_alerts" if c.alerts else "unsubscribed_alerts", "data": {}}
    if kind == "getDashboardStream":
        hub.watch_dashboard(c, _every(data, 5.0))
        return None
    if kind == "stopDashboardStream":
        hub.watch_dashboard(c, 0.0)
        return None
    if kind == "ping":
        return {"type": "pong", "data": data}
    raise _bad("type", f"unknown message type {kind!r}; one of subscribe, unsubscribe, "
               "subscribe_alerts, unsubscribe_alerts, getDashboardStream, "
               "stopDashboardStream, ping")
