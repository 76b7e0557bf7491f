"""Vigil's own metrics, exposed as Prometheus text at /metrics.

Each app gets its own registry (several apps may live in one test process). Store
figures are read at scrape time through a collector, so storage never imports
prometheus_client.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric


class Telemetry:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.samples_ingested = Counter(
            "vigil_samples_ingested", "Samples committed", ["protocol"], registry=r)
        self.batches_ingested = Counter(
            "vigil_batches_ingested", "Batches committed", ["protocol"], registry=r)
        self.batches_rejected = Counter(
            "vigil_batches_rejected", "Batches rejected whole", ["protocol", "reason"],
            registry=r)
        self.fields_skipped = Counter(
            "vigil_fields_skipped", "Fields skipped (e.g. line-protocol strings)", ["protocol"],
            registry=r)
        self.query_seconds = Histogram(
            "vigil_query_seconds", "Query latency", ["endpoint"], registry=r,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
        self.task_cache_hits = Counter(
            "vigil_task_cache_hits", "Task reports answered from the cache", ["report"],
            registry=r)
        self.task_cache_misses = Counter(
            "vigil_task_cache_misses", "Task reports computed (not in the cache)", ["report"],
            registry=r)
        self.auth_failures = Counter(
            "vigil_auth_failures", "Requests refused for a missing or invalid credential",
            registry=r)
        self.rate_limited = Counter(
            "vigil_rate_limited", "Requests refused by a rate limit", ["budget"], registry=r)

    def task_cache(self, report: str, hit: bool) -> None:
        (self.task_cache_hits if hit else self.task_cache_misses).labels(report).inc()

    def watch_store(self, stats: Callable[[], Mapping[str, float]]) -> None:
        self.registry.register(_StatsCollector("vigil_store", _STORE_COUNTERS, _STORE_GAUGES,
                                               stats))

    def watch_query_cache(self, stats: Callable[[], Mapping[str, float]]) -> None:
        self.registry.register(_StatsCollector(
            "vigil_query_cache", _QUERY_CACHE_COUNTERS, _QUERY_CACHE_GAUGES, stats))

    def watch_stream(self, stats: Callable[[], Mapping[str, float]]) -> None:
        self.registry.register(_StatsCollector("vigil_stream", _STREAM_COUNTERS,
                                               _STREAM_GAUGES, stats))

    def watch_alerting(self, stats: Callable[[], Mapping[str, float]],
                       delivery: Callable[[], Mapping[str, Any]]) -> None:
        self.registry.register(_AlertingCollector(stats, delivery))


class _StatsCollector:
    """Counters and gauges read from a component's ``stats()`` at scrape time."""

    def __init__(self, prefix: str, counters: Mapping[str, str], gauges: Mapping[str, str],
                 stats: Callable[[], Mapping[str, float]]) -> None:
        self._prefix, self._counters, self._gauges = prefix, counters, gauges
        self._stats = stats

    def collect(self) -> Iterator[Metric]:
        st = self._stats()
        for key, doc in self._counters.items():
            yield CounterMetricFamily(f"{self._prefix}_{key}", doc, value=st.get(key, 0.0))
        for key, doc in self._gauges.items():
            yield GaugeMetricFamily(f"{self._prefix}_{key}", doc, value=st.get(key, 0.0))


_STORE_COUNTERS = {
    "commits": "Group commits of the writer",
    "committed_samples": "Samples made durable",
    "commit_seconds": "Time spent committing",
}
_STORE_GAUGES = {
    "buffer_samples": "Samples queued for the next commit",
    "last_commit_seconds": "Duration of the last commit",
    "stale_buckets": "Rollup buckets waiting to be rebuilt",
}
_QUERY_CACHE_COUNTERS = {  # vigil.query.cache.QueryCache.stats
    "hits": "Queries answered from the query cache",
    "misses": "Queries computed with the query cache on (answer offered to it)",
    "invalidated": "Cached answers dropped because data they read changed",
    "evicted": "Cached answers dropped for room (least recently used)",
    "refused": "Answers not cached: data they read changed while they were computed",
}
_QUERY_CACHE_GAUGES = {
    "entries": "Answers in the query cache",
    "bytes": "Approximate memory of the answers in the query cache",
}
_STREAM_COUNTERS = {  # vigil.streaming.hub.HubStats
    "messages": "Messages sent to live-stream clients",
    "bytes": "Bytes of messages sent to live-stream clients",
    "refused": "Messages a full client's buffer refused",
    "coalesced": "Updates sent as the latest points after a client fell behind",
    "batches_dropped": "Committed batches skipped for streaming (hand-over full)",
    "samples_forwarded": "Committed samples handed to the fan-out process (of series "
                         "some live feed wants, or not yet known not to)",
    "slow_disconnects": "Live-stream clients disconnected for being too slow",
}
_STREAM_GAUGES = {
    "clients": "Connected live-stream clients",
    "feeds": "Distinct live-stream feeds (tenant, selectors, update frequency)",
}


class _AlertingCollector:
    """Alert evaluation (overload included) and delivery per channel type."""

    _GAUGES = frozenset({"queue_batches"})

    def __init__(self, stats: Callable[[], Mapping[str, float]],
                 delivery: Callable[[], Mapping[str, Any]]) -> None:
        self._stats, self._delivery = stats, delivery

    def collect(self) -> Iterator[Metric]:
        for key, value in self._stats().items():
            family = GaugeMetricFamily if key in self._GAUGES else CounterMetricFamily
            yield family(f"vigil_alerting_{key}", f"Alerting: {key.replace('_', ' ')}",
                         value=value)
        delivery = self._delivery()
        for key in ("queue_full", "pending", "holding"):
            family = CounterMetricFamily if key == "queue_full" else GaugeMetricFamily
            yield family(f"vigil_notifications_{key}", f"Notifications: {key.replace('_', ' ')}",
                         value=delivery.get(key, 0))
        per_type: Mapping[str, Mapping[str, float]] = delivery.get("by_type", {})
        keys = sorted({k for counts in per_type.values() for k in counts})
        for key in keys:
            fam = CounterMetricFamily(f"vigil_notifications_{key}",
                                      f"Notifications: {key.replace('_', ' ')}",
                                      labels=["channel_type"])
            for ctype, counts in sorted(per_type.items()):
                fam.add_metric([ctype], counts.get(key, 0.0))
            yield fam
