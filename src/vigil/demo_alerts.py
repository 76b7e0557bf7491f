"""Alert rules for the demo data, so ``vigil demo`` and ``vigil seed`` show alerting:
the demo's incidents (CPU, latency, queue spikes) fire them now and then."""

from __future__ import annotations

from typing import Any

from vigil.alerting.service import AlertingService

CHANNEL: dict[str, Any] = {"name": "dashboard", "type": "websocket"}
RULES: tuple[dict[str, Any], ...] = (
    {"name": "cpu high", "metric": "cpu_usage_percent", "severity": "high",
     "condition": {"type": "threshold", "op": ">", "threshold": 75, "for_s": 60,
                   "clear_threshold": 65},
     "group_by": ["host"], "annotations": {"summary": "{{ $labels.host }} CPU at {{ $value }}%"}},
    {"name": "latency p95 high", "metric": "http_request_duration_p95_ms",
     "severity": "critical", "window_s": 60, "aggregation": "avg",
     "condition": {"type": "threshold", "op": ">", "threshold": 400},
     "group_by": ["service"],
     "annotations": {"summary": "{{ $labels.service }} p95 latency {{ $value }} ms"}},
    {"name": "queue backlog", "metric": "queue_depth", "severity": "medium",
     "condition": {"type": "threshold", "op": ">", "threshold": 100, "for_s": 30}},
    {"name": "memory anomaly", "metric": "memory_used_bytes", "severity": "low",
     "condition": {"type": "anomaly", "threshold": 0.97}},
    {"name": "host silent", "metric": "cpu_usage_percent", "severity": "high",
     "condition": {"type": "absence", "for_s": 300}},
)


def install(alerting: AlertingService, tenant: str) -> int:
    """The demo channel and rules, unless the tenant has rules already; how many added."""
    if alerting.rules(tenant):
        return 0
    if alerting.channel(tenant, CHANNEL["name"]) is None:
        alerting.put_channel(tenant, CHANNEL)
    for doc in RULES:
        alerting.put_rule(tenant, {**doc, "channels": [CHANNEL["name"]]})
    return len(RULES)
