"""The composition root: builds every component from ``Settings`` and wires them.

Also home of ``Vigil``, the embedded Python API, which is the same components without
the HTTP server.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from vigil import analysis, config
from vigil.config import Settings
from vigil.core.errors import InvalidInput, Problem
from vigil.core.timeutil import now_ms
from vigil.core.types import SampleBatch
from vigil.ingest.json_samples import parse_samples
from vigil.ingest.limits import Limits
from vigil.pipeline import Pipeline
from vigil.query.engine import QueryEngine, QueryResult
from vigil.query.model import Query
from vigil.security.authenticator import Authenticator
from vigil.security.ratelimit import Budget, RateLimiter, TokenBuckets
from vigil.security.tokens import JwtConfig, TokenVerifier
from vigil.storage.duckdb_store import DuckDBStore
from vigil.storage.maintenance import Maintenance, Schedule
from vigil.storage.security_store import SecurityStore
from vigil.storage.store import Tier
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
    security: SecurityStore
    auth: Authenticator
    rate_limiter: RateLimiter

    def close(self) -> None:
        """Stop maintenance, flush every queued write, checkpoint."""
        self.maintenance.stop()
        self.store.close()


def build(settings: Settings, *, start_maintenance: bool = True) -> Components:
    store = DuckDBStore(
        settings.data_path / STORE_FILE,
        max_series_per_tenant=settings.max_series_per_tenant,
        memory_limit=settings.duckdb_memory_limit,
        threads=settings.duckdb_threads or None,
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
    return Components(settings, store, telemetry, pipeline, QueryEngine(store), maintenance,
                      limits, security, build_authenticator(settings, security),
                      build_rate_limiter(settings))


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

            names = [m.name for m in self._c.store.metric_names(self.tenant)]
            return analysis.root_cause(run, name, names, **options)
        result = self._c.engine.run(self.tenant, query)
        if kind == "insights":
            options.setdefault("range_ms", query.end_ms - query.start_ms)
        compute = ANALYSES.get(kind)
        if compute is None:
            raise InvalidInput(Problem(
                f"unknown analysis {kind!r}; one of {', '.join([*ANALYSES, 'root-cause'])}",
                field="kind"))
        return compute(result, query.step_ms, **options)

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
