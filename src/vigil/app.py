"""The composition root: builds every component from ``Settings`` and wires them.

Also home of ``Vigil``, the embedded Python API, which is the same components without
the HTTP server.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from vigil import analysis, config
from vigil.alerting import rules_file
from vigil.alerting.channels import Channel
from vigil.alerting.delivery import DeadLetter, Dispatcher
from vigil.alerting.rules import Rule
from vigil.alerting.senders import ChannelSenders
from vigil.alerting.service import AlertingService
from vigil.alerting.tenant import LIFECYCLE_TOPIC
from vigil.cluster.bus import LocalBus
from vigil.config import Settings
from vigil.core.errors import InvalidInput, Problem
from vigil.core.matchers import Matcher
from vigil.core.timeutil import now_ms
from vigil.core.types import Float64Array, Int64Array, SampleBatch, SeriesKey
from vigil.ingest.json_samples import parse_samples
from vigil.ingest.limits import Limits
from vigil.pipeline import Pipeline
from vigil.query.cache import QueryCache
from vigil.query.engine import QueryEngine, QueryResult
from vigil.query.model import Query
from vigil.security.authenticator import Authenticator
from vigil.security.ratelimit import Budget, RateLimiter, TokenBuckets
from vigil.security.tokens import JwtConfig, TokenVerifier
from vigil.storage.alert_store import DuckDBAlertStore
from vigil.storage.duckdb_store import DuckDBStore
from vigil.storage.maintenance import Maintenance, Schedule
from vigil.storage.security_store import SecurityStore
from vigil.storage.store import Tier
from vigil.storage.task_store import TaskStore
from vigil.streaming.relay import Relay
from vigil.streaming.worker import Options as StreamOptions
from vigil.tasks import instrument
from vigil.tasks.cache import ReportCache
from vigil.tasks.service import Limits as TaskLimits
from vigil.tasks.service import TaskService, scope_of
from vigil.telemetry import Telemetry

STORE_FILE = "vigil.duckdb"
ANALYSES: dict[str, Callable[..., dict[str, object]]] = {
    "stats": analysis.stats, "trends": analysis.trends, "anomalies": analysis.anomalies,
    "forecast": analysis.forecast, "capacity": analysis.capacity,
    "correlations": analysis.correlations, "health": analysis.health,
    "insights": analysis.insights,
}


def retention_ms(settings: Settings) -> dict[Tier, int]:
    return {
        "raw": int(settings.retention_raw * 1000),
        "5m": int(settings.retention_5m * 1000),
        "1h": int(settings.retention_1h * 1000),
        "1d": int(settings.retention_1d * 1000),
    }


@dataclass
class Components:
    settings: Settings
    store: DuckDBStore
    telemetry: Telemetry
    pipeline: Pipeline
    engine: QueryEngine
    maintenance: Maintenance
    limits: Limits
    bus: LocalBus
    stream: Relay
    alerting: AlertingService
    dispatcher: Dispatcher
    senders: ChannelSenders
    tasks: TaskService
    security: SecurityStore
    auth: Authenticator
    rate_limiter: RateLimiter

    def close(self) -> None:
        """Stop maintenance, flush every queued write, stop alerting, checkpoint."""
        self.maintenance.stop()
        self.alerting.close()
        self.dispatcher.close()
        self.senders.close()
        self.tasks.store.close()
        self.store.close()


def build(settings: Settings, *, start_maintenance: bool = True) -> Components:
    store = DuckDBStore(
        settings.data_path / STORE_FILE,
        max_series_per_tenant=settings.max_series_per_tenant,
        memory_limit=settings.duckdb_memory_limit,
        threads=settings.duckdb_threads or None,
        block_size=settings.duckdb_block_size,
        close_after_ms=int(settings.close_days_after * 1000),
        hot_bytes=settings.closed_days_memory,
    )
    telemetry = Telemetry()
    telemetry.watch_store(store.stats)
    pipeline = Pipeline(store, telemetry, raw_retention_ms=retention_ms(settings)["raw"])
    maintenance = Maintenance(store, Schedule(
        settings.rollup_interval, settings.rollup_quiet, settings.rollup_max_defer,
        settings.retention_interval, retention_ms(settings)))
    if start_maintenance:
        maintenance.start()
    limits = Limits(settings.max_labels, settings.max_name_length,
                    settings.max_label_value_length)
    security = SecurityStore(store.connection())
    auth = build_authenticator(settings, security)
    engine = QueryEngine(store, cache=build_query_cache(settings, store, telemetry))
    bus = LocalBus()
    alerting, dispatcher, senders = _alerting(settings, store, engine, bus)
    store.listeners.append(alerting.offer)
    stream = Relay(_dashboard(store, alerting), StreamOptions(
        client_buffer_bytes=settings.stream_client_buffer_bytes,
        slow_after_s=settings.stream_slow_after, ping_interval_s=settings.stream_ping_interval,
        log_level=settings.log_level,
        log_format=settings.log_format))
    store.listeners.append(stream.offer)
    bus.subscribe(LIFECYCLE_TOPIC, stream.alert_event)
    telemetry.watch_stream(lambda: stream.stats)
    if settings.rules_file:
        try:
            rf = rules_file.load(settings.rules_file)
            alerting.apply(rf.tenant or settings.default_tenant, rf)
        except InvalidInput as err:
            store.close()
            raise config.ConfigError(f"rules_file {settings.rules_file}: {err}") from err
    telemetry.watch_alerting(lambda: {**vars(alerting.stats),
                                      "queue_batches": alerting.queue_depth},
                             lambda: dict(dispatcher.stats()))
    if start_maintenance:
        alerting.start()
        dispatcher.start()
    return Components(settings, store, telemetry, pipeline, engine, maintenance, limits, bus,
                      stream, alerting, dispatcher, senders,
                      build_tasks(settings, store, telemetry), security, auth,
                      build_rate_limiter(settings))


def build_query_cache(settings: Settings, store: DuckDBStore, telemetry: Telemetry
                      ) -> QueryCache[QueryResult] | None:
    """The query cache, told of every change of stored data: committed batches (the
    first commit listener, so an answer is dropped before anyone hears of the batch or
    its writer is acknowledged) and rewrites of the store (rollups, retention)."""
    if not (settings.query_cache_max_entries and settings.query_cache_max_bytes):
        return None
    cache: QueryCache[QueryResult] = QueryCache(settings.query_cache_max_entries,
                                                settings.query_cache_max_bytes)
    store.listeners.insert(0, cache.committed)
    store.rewrite_listeners.append(cache.rewritten)
    telemetry.watch_query_cache(cache.stats)
    return cache


def _dashboard(store: DuckDBStore, alerting: AlertingService
               ) -> Callable[[str], dict[str, object]]:
    """What a ``dashboard_update`` says; the ingest rate is the server's, since the last
    update of any client."""
    last = [time.monotonic(), store.stats()["committed_samples"]]

    def update(tenant: str) -> dict[str, object]:
        now, committed = time.monotonic(), store.stats()["committed_samples"]
        rate = (committed - last[1]) / max(now - last[0], 1e-3)
        last[:] = [now, committed]
        by_severity = alerting.firing(tenant)
        return {"ts_ms": now_ms(), "ingest_rate": round(rate, 1),
                "series": store.index.count(tenant),
                "firing_alerts": sum(by_severity.values()), "alerts_by_severity": by_severity}

    return update


def _alerting(settings: Settings, store: DuckDBStore, engine: QueryEngine, bus: LocalBus
              ) -> tuple[AlertingService, Dispatcher, ChannelSenders]:
    """The alerting service over the store's alert tables, the query engine (forecast
    rules) and the series catalogue (absence after a restart); channels through the
    dispatcher, the WebSocket channel through the bus."""

    def known(tenant: str, rule: Rule) -> list[SeriesKey]:
        return [i.key for i in store.find_series(tenant, rule.metric, rule.matchers)]

    def history(tenant: str, rule: Rule, start_ms: int, end_ms: int
                ) -> list[tuple[SeriesKey, Int64Array, Float64Array]]:
        c = rule.condition
        q = Query(rule.metric, start_ms, end_ms, c.step_ms, "avg", rule.matchers)
        return [(SeriesKey.of(rule.metric, s.labels), s.t_ms, s.values)
                for s in engine.run(tenant, q).series]

    svc: AlertingService | None = None

    def lookup(tenant: str, name: str) -> Channel | None:
        return svc.channel(tenant, name) if svc is not None else None

    def dead_letter(tenant: str, record: DeadLetter) -> None:
        if svc is not None:
            svc.dead_letter(tenant, record.as_dict())

    senders = ChannelSenders(bus.publish)
    dispatcher = Dispatcher(lookup, senders.send, dead_letter)

    def samples(tenant: str, rule: Rule, start_ms: int, end_ms: int
                ) -> tuple[list[SeriesKey], Int64Array, Int64Array, Float64Array]:
        infos = sorted(store.find_series(tenant, rule.metric, rule.matchers),
                       key=lambda i: i.id)
        ids = np.asarray([i.id for i in infos], np.int32)
        p = store.raw(tenant, ids, start_ms, end_ms)
        return ([i.key for i in infos], np.searchsorted(ids, p.key).astype(np.int64),
                p.t_ms, p.value)

    svc = AlertingService(DuckDBAlertStore(store.connection()), dispatcher,
                          known_series=known, history=history, samples=samples,
                          publish=bus.publish,
                          tick_ms=int(settings.alert_tick * 1000),
                          queue_batches=settings.alert_queue_batches)
    return svc, dispatcher, senders


def build_tasks(settings: Settings, store: DuckDBStore, telemetry: Telemetry) -> TaskService:
    cache = ReportCache({"performance": settings.tasks_performance_cache_ttl,
                         "bottlenecks": settings.tasks_bottlenecks_cache_ttl})
    limits = TaskLimits(settings.tasks_max_period_hours, settings.tasks_max_results,
                        retention_ms=retention_ms(settings)["raw"])
    return TaskService(TaskStore(store), cache, limits, on_cache=telemetry.task_cache)


def build_authenticator(settings: Settings, security: SecurityStore) -> Authenticator:
    jwt_cfg = JwtConfig(settings.jwt_secret, settings.jwt_public_key_file,
                        settings.jwt_jwks_file, settings.jwt_issuer, settings.jwt_audience,
                        settings.jwt_leeway)
    try:
        verifier = TokenVerifier(jwt_cfg) if jwt_cfg.configured else None
    except (OSError, ValueError) as err:  # unreadable or unusable key file
        raise config.ConfigError(f"cannot load the JWT verification key: {err}") from err
    return Authenticator(security, verifier, settings.default_tenant, now_ms)


def build_rate_limiter(settings: Settings) -> RateLimiter:
    return TokenBuckets({
        "ingest": Budget(settings.rate_ingest_per_s, settings.rate_ingest_burst),
        "query": Budget(settings.rate_query_per_s, settings.rate_query_burst),
    })


class Vigil:
    """Vigil embedded in your process: the same store, rollups and queries, no server.

    >>> import tempfile
    >>> with Vigil(tempfile.mkdtemp()) as v:
    ...     v.record("queue_depth", 3, {"queue": "emails"})
    ...     v.query("queue_depth", fn="max", group_by=[]).series[0].values
    array([3.])
    """

    def __init__(
        self, data_dir: str | Path = "./vigil-data", *, tenant: str | None = None,
        **settings: Any,
    ) -> None:
        self.settings = config.load(overrides={"data_dir": str(data_dir), **settings})
        self.tenant = tenant or self.settings.default_tenant
        self._c = build(self.settings)

    def record(
        self,
        name: str,
        value: float,
        labels: Mapping[str, str] | None = None,
        *,
        timestamp: int | str | datetime | None = None,
        type: str = "gauge",
        category: str = "custom",
    ) -> None:
        """Store one sample durably (``timestamp``: epoch ms, RFC 3339 or datetime)."""
        self.record_batch([{"name": name, "value": value, "labels": labels or {},
                            "timestamp": timestamp, "type": type, "category": category}])

    def record_batch(self, samples: SampleBatch | Iterable[Mapping[str, Any]]) -> int:
        """Store samples atomically; returns how many. A ``SampleBatch`` (columns) is the
        fast path; dicts take the JSON shape of ``POST /api/v1/metrics``."""
        if not isinstance(samples, SampleBatch):
            samples = parse_samples(samples, limits=self._c.limits, now_ms=now_ms())
        return self._c.pipeline.write_sync(self.tenant, samples, "embedded")

    def query(
        self,
        name: str,
        *,
        match: Sequence[str] = (),
        start: str | float | None = None,
        end: str | float | None = None,
        step: str | None = None,
        fn: str = "avg",
        q: float | None = None,
        group_by: Sequence[str] | None = None,
        window: str | None = None,
    ) -> QueryResult:
        """Same parameters as ``GET /api/v1/query`` (start/end: RFC 3339 or epoch seconds)."""
        params = _query_params(name, match, start, end, step, fn, group_by, q=q, window=window)
        return self._c.engine.run(self.tenant, Query.from_params(params, now_ms()))

    def analyze(
        self,
        kind: str,
        name: str,
        *,
        match: Sequence[str] = (),
        start: str | float | None = None,
        end: str | float | None = None,
        step: str | None = None,
        fn: str = "avg",
        group_by: Sequence[str] | None = None,
        **options: Any,
    ) -> dict[str, object]:
        """What ``/api/v1/analytics/<kind>`` answers, for the series the query selects.

        ``kind``: stats, trends, anomalies, forecast, capacity, correlations, health,
        insights or root-cause; ``options`` are that endpoint's parameters as Python
        values (``horizon=24``, ``threshold=90.0``, ``baseline_start=...`` …).
        """
        params = _query_params(name, match, start, end, step, fn, group_by)
        query = Query.from_params(params, now_ms())
        if kind == "root-cause":
            length = query.end_ms - query.start_ms
            b_end = options.pop("baseline_end", query.start_ms / 1000)
            b_start = options.pop("baseline_start", b_end - length / 1000)

            def run(metric: str, more: list[str], window: str) -> QueryResult:
                p = {**params, "name": metric, "match": [*params["match"], *more]}
                if window == "baseline":
                    p.update(start=str(b_start), end=str(b_end))
                return self._c.engine.run(self.tenant, Query.from_params(p, now_ms()))

            def carriers(label: str, value: str) -> list[tuple[str, dict[str, str]]]:
                return [(s.key.name, s.key.label_dict()) for s in self._c.store.find_series(
                    self.tenant, None, [Matcher(label, "=", value)])]

            return analysis.root_cause(run, name, carriers, **options)
        result = self._c.engine.run(self.tenant, query)
        if kind == "insights":
            options.setdefault("range_ms", query.end_ms - query.start_ms)
        compute = ANALYSES.get(kind)
        if compute is None:
            raise InvalidInput(Problem(
                f"unknown analysis {kind!r}; one of {', '.join([*ANALYSES, 'root-cause'])}",
                field="kind"))
        return compute(result, query.step_ms, **options)

    # ------------------------------------------------------------------ alerting
    def add_channel(self, **doc: Any) -> dict[str, object]:
        """A notification channel, as ``POST /api/v1/channels`` takes it."""
        return self._c.alerting.put_channel(self.tenant, doc).public_dict()

    def add_rule(self, **doc: Any) -> str:
        """An alert rule, as ``POST /api/v1/rules`` takes it; returns its id."""
        return self._c.alerting.put_rule(self.tenant, doc).id

    def alerts(self, *, state: str | None = None, severity: str | None = None,
               rule: str | None = None) -> list[dict[str, object]]:
        """Alerts, newest change first, as ``GET /api/v1/alerts``."""
        return self._c.alerting.alerts(self.tenant, state=state, severity=severity, rule=rule)

    @property
    def alerting(self) -> AlertingService:
        """Everything else of alerting (silences, acknowledge, explain …), by tenant."""
        return self._c.alerting
    def record_task(
        self, namespace: str, task_name: str, task_id: str, status: str,
        started_at: int | str | datetime, *, version: str = "0",
        finished_at: int | str | datetime | None = None, duration_ms: float | None = None,
        steps: Sequence[Mapping[str, Any]] = (),
    ) -> None:
        """Store one task execution durably (fields as in ``POST /api/v1/tasks/events``;
        times: epoch ms, RFC 3339 or datetime)."""
        event: dict[str, Any] = {
            "namespace": namespace, "task_name": task_name, "version": version,
            "task_id": task_id, "status": status, "started_at": started_at,
            "finished_at": finished_at, "duration_ms": duration_ms, "steps": list(steps)}
        self.record_tasks([event])

    def record_tasks(self, events: Iterable[Mapping[str, Any]]) -> int:
        """Store task executions atomically; returns how many."""
        return self._c.tasks.record(self.tenant, events)

    def track_task(self, namespace: str, task_name: str, version: str = "0") -> instrument.track:
        """A context manager / decorator timing a task (and its ``instrument.step`` calls)
        that records it here on exit."""
        return instrument.track(self.record_tasks, namespace=namespace, task_name=task_name,
                                version=version)

    def performance(self, namespace: str | None = None, task_name: str | None = None,
                    version: str | None = None) -> dict[str, Any]:
        """What ``GET /api/v1/analytics/performance`` answers (cached the same way)."""
        entry, _ = self._c.tasks.performance(self.tenant, scope_of(namespace, task_name,
                                                                   version))
        return dict(orjson.loads(entry.body))

    def bottlenecks(self, namespace: str | None = None, task_name: str | None = None,
                    version: str | None = None, period: int | None = None,
                    limit: int | None = None) -> dict[str, Any]:
        """What ``GET /api/v1/analytics/bottlenecks`` answers (``period`` in hours)."""
        entry, _ = self._c.tasks.bottlenecks(
            self.tenant, scope_of(namespace, task_name, version), period, limit)
        return dict(orjson.loads(entry.body))

    @property
    def store(self) -> DuckDBStore:
        return self._c.store

    def close(self) -> None:
        self._c.close()

    def __enter__(self) -> Vigil:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _query_params(
    name: str, match: Sequence[str], start: str | float | None, end: str | float | None,
    step: str | None, fn: str, group_by: Sequence[str] | None, *, q: float | None = None,
    window: str | None = None,
) -> dict[str, Any]:
    """Python arguments as the query API's parameters (``Query.from_params`` validates)."""
    return {
        "name": name, "match": list(match), "fn": fn, "step": step, "window": window,
        "start": None if start is None else str(start),
        "end": None if end is None else str(end),
        "q": None if q is None else str(q),
        "group_by": None if group_by is None else ",".join(group_by),
    }
