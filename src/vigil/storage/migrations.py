"""Versioned schema migrations with down steps. Append new versions; never edit old ones."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    description: str
    up: tuple[str, ...]
    down: tuple[str, ...]


def _rollup_table(tier: str) -> str:
    # One row per (series, bucket). The sketch is two parallel lists: keys ascending,
    # counts (see storage/sketch.py).
    return f"""CREATE TABLE rollup_{tier} (
        series_id INTEGER NOT NULL, bucket BIGINT NOT NULL, cnt BIGINT NOT NULL,
        total DOUBLE NOT NULL, min DOUBLE NOT NULL, max DOUBLE NOT NULL,
        last_ts BIGINT NOT NULL, last DOUBLE NOT NULL,
        sk_keys INTEGER[] NOT NULL, sk_counts INTEGER[] NOT NULL)"""


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "series catalogue, raw samples, 5m/1h/1d rollups, dirty-bucket log",
        (
            """CREATE TABLE series (
                id INTEGER PRIMARY KEY, tenant VARCHAR NOT NULL, name VARCHAR NOT NULL,
                labels VARCHAR NOT NULL, type VARCHAR NOT NULL, category VARCHAR NOT NULL,
                created_ms BIGINT NOT NULL)""",
            """CREATE TABLE samples (
                series_id INTEGER NOT NULL, ts BIGINT NOT NULL, value DOUBLE NOT NULL)""",
            _rollup_table("5m"),
            _rollup_table("1h"),
            _rollup_table("1d"),
            # Buckets whose rollup is stale; written in the same transaction as the samples.
            "CREATE TABLE rollup_dirty (tier VARCHAR NOT NULL, bucket BIGINT NOT NULL)",
        ),
        (
            "DROP TABLE rollup_dirty",
            "DROP TABLE rollup_1d",
            "DROP TABLE rollup_1h",
            "DROP TABLE rollup_5m",
            "DROP TABLE samples",
            "DROP TABLE series",
        ),
    ),
    Migration(
        2,
        "alerting: rules, channels and silences; alerts; alert history and dead letters",
        (
            # Rules, channels, silences: one JSON document per (tenant, kind, id).
            """CREATE TABLE alert_objects (
                tenant VARCHAR NOT NULL, kind VARCHAR NOT NULL, id VARCHAR NOT NULL,
                doc VARCHAR NOT NULL, updated_ms BIGINT NOT NULL,
                PRIMARY KEY (tenant, kind, id))""",
            """CREATE TABLE alerts (
                tenant VARCHAR NOT NULL, id VARCHAR NOT NULL, rule_id VARCHAR NOT NULL,
                fingerprint VARCHAR NOT NULL, state VARCHAR NOT NULL,
                severity VARCHAR NOT NULL, starts_ms BIGINT NOT NULL,
                updated_ms BIGINT NOT NULL, doc VARCHAR NOT NULL, PRIMARY KEY (tenant, id))""",
            # Append-only: alert history, dead letters.
            """CREATE TABLE alert_events (
                tenant VARCHAR NOT NULL, kind VARCHAR NOT NULL, ref VARCHAR NOT NULL,
                ts_ms BIGINT NOT NULL, doc VARCHAR NOT NULL)""",
        ),
        (
            "DROP TABLE alert_events",
            "DROP TABLE alerts",
            "DROP TABLE alert_objects",
        ),
    ),
    Migration(
        3,
        "task executions and their steps (workflow analytics)",
        (
            # One row per task execution. ts: when it ended (finished_ms), else when it
            # started; every report window filters on it. retried: the execution has status
            # "retried" or a step needed more than one attempt.
            """CREATE TABLE task_runs (
                tenant VARCHAR NOT NULL, namespace VARCHAR NOT NULL, task_name VARCHAR NOT NULL,
                version VARCHAR NOT NULL, task_id VARCHAR NOT NULL, status VARCHAR NOT NULL,
                started_ms BIGINT NOT NULL, finished_ms BIGINT, ts BIGINT NOT NULL,
                duration_ms DOUBLE, retried BOOLEAN NOT NULL, step_count INTEGER NOT NULL)""",
            # One row per step, carrying its task's scope and ts so reports need no join;
            # step_key: the id of (tenant, namespace, task_name, step_name) in
            # task_step_keys; grouping on one small integer is cheaper than on three strings.
            """CREATE TABLE task_steps (
                tenant VARCHAR NOT NULL, namespace VARCHAR NOT NULL, task_name VARCHAR NOT NULL,
                version VARCHAR NOT NULL, task_id VARCHAR NOT NULL, ts BIGINT NOT NULL,
                step_name VARCHAR NOT NULL, status VARCHAR NOT NULL, attempts INTEGER NOT NULL,
                duration_ms DOUBLE, timeout_s DOUBLE, error_type VARCHAR, error_message VARCHAR,
                step_key INTEGER NOT NULL)""",
            """CREATE TABLE task_step_keys (
                id INTEGER NOT NULL, tenant VARCHAR NOT NULL, namespace VARCHAR NOT NULL,
                task_name VARCHAR NOT NULL, step_name VARCHAR NOT NULL)""",
        ),
        (
            "DROP TABLE task_step_keys",
            "DROP TABLE task_steps",
            "DROP TABLE task_runs",
        ),
    ),
    Migration(
        4,
        "API keys (hashed) and the append-only audit log",
        (
            # ``id`` is the public prefix of the key, used for lookup; only the sha256 of
            # the whole key is kept. ``scopes``: space-separated, "" = all of the role's.
            """CREATE TABLE api_keys (
                id VARCHAR PRIMARY KEY, tenant VARCHAR NOT NULL, name VARCHAR NOT NULL,
                role VARCHAR NOT NULL, scopes VARCHAR NOT NULL, key_hash VARCHAR NOT NULL,
                created_ms BIGINT NOT NULL, expires_ms BIGINT, revoked_ms BIGINT)""",
            "CREATE SEQUENCE audit_seq",
            """CREATE TABLE audit_log (
                id BIGINT PRIMARY KEY DEFAULT nextval('audit_seq'), ts_ms BIGINT NOT NULL,
                tenant VARCHAR NOT NULL, actor VARCHAR NOT NULL, role VARCHAR NOT NULL,
                action VARCHAR NOT NULL, route VARCHAR NOT NULL, target VARCHAR NOT NULL,
                status INTEGER NOT NULL, client VARCHAR NOT NULL, detail VARCHAR NOT NULL)""",
        ),
        (
            "DROP TABLE audit_log",
            "DROP SEQUENCE audit_seq",
            "DROP TABLE api_keys",
        ),
    ),
    Migration(
        5,
        "closed days: the Parquet files that hold them (storage/closed_days.py)",
        (
            # One row per file; a day of a tier may have none (nothing of that tier), or
            # several (a range of series each). sketches: false for 5m files written
            # while the day's raw samples are kept (quantiles then read those). key_lo,
            # key_hi: the metrics (name_key) a raw or 5m file holds.
            """CREATE TABLE closed_files (
                tier VARCHAR NOT NULL, day BIGINT NOT NULL, path VARCHAR NOT NULL,
                rows BIGINT NOT NULL, sketches BOOLEAN NOT NULL, key_lo INTEGER,
                key_hi INTEGER)""",
        ),
        # Going down forgets the files; ``vigil migrate`` refuses while any exist.
        ("DROP TABLE closed_files",),
    ),
)

LATEST = MIGRATIONS[-1].version
