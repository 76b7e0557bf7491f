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
)

LATEST = MIGRATIONS[-1].version
