"""Settings: defaults <- preset <- TOML file <- ``VIGIL_*`` environment variables.

``SETTINGS`` is the one table of every setting with its default and help; docs/config.md
is checked against it by the test suite. Nothing outside this module reads os.environ.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from vigil.core.errors import VigilError
from vigil.core.timeutil import parse_duration_ms
from vigil.storage.closed_days import CLOSE_AFTER_MS
from vigil.storage.day_closer import HOT_BYTES
from vigil.storage.duckdb_store import BLOCK_SIZE


class ConfigError(VigilError):
    """A setting is unknown or its value is invalid; the message names key and value."""


def _duration_s(v: Any) -> float:
    """``90s``, ``5m``, ``30d``, a number of seconds, or ``0`` (= forever/off)."""
    if isinstance(v, (int, float)) or str(v).strip() in ("0", "0s"):
        return float(v) if not isinstance(v, str) else 0.0
    return parse_duration_ms(str(v)) / 1000.0


def _int(v: Any) -> int:
    try:
        return int(str(v).replace("_", ""))
    except ValueError:
        raise ValueError("must be a whole number, e.g. 1024 or 67_108_864") from None


def _size(v: Any) -> int:
    n = _int(v)
    if n < 0:
        raise ValueError("must be 0 or more")
    return n


def _block_size(v: Any) -> int:
    n = _int(v)
    if n < 16_384 or n > 262_144 or n & (n - 1):
        raise ValueError("must be a power of two from 16384 to 262144")
    return n


def _choice(*options: str) -> Callable[[Any], str]:
    def parse(v: Any) -> str:
        if str(v) not in options:
            raise ValueError(f"must be one of {', '.join(options)}")
        return str(v)

    return parse


def _bool(v: Any) -> bool:
    if isinstance(v, bool):
        return v
    text = str(v).strip().lower()
    if text not in ("true", "false", "1", "0", "yes", "no", "on", "off"):
        raise ValueError("must be true or false")
    return text in ("true", "1", "yes", "on")


def _secret(v: Any) -> str:
    # The message names the rule, never the value (it is a secret).
    if v and len(str(v)) < 32:
        raise ValueError("must be at least 32 characters (e.g. openssl rand -hex 32)")
    return str(v)


@dataclass(frozen=True, slots=True)
class Setting:
    name: str
    default: Any
    parse: Callable[[Any], Any]
    help: str


SETTINGS: tuple[Setting, ...] = (
    Setting("preset", "development", _choice("development", "staging", "production"),
            "Preset that sets defaults for the rest: development, staging or production."),
    Setting("host", "127.0.0.1", str, "Address to listen on."),
    Setting("port", 9470, _int, "TCP port to listen on."),
    Setting("data_dir", "./vigil-data", str, "Directory holding the embedded store."),
    Setting("default_tenant", "default", str,
            "Tenant of unauthenticated requests and of the embedded API."),
    Setting("log_level", "info", _choice("debug", "info", "warning", "error"), "Log level."),
    Setting("log_format", "text", _choice("text", "json"),
            "Log format: text for people, json for log shippers."),
    Setting("max_body_bytes", 64 * 1024 * 1024, _int,
            "Largest request body accepted (after gzip decompression); larger gets 413."),
    Setting("max_labels", 32, _int, "Most labels one series may have."),
    Setting("max_name_length", 256, _int, "Longest metric or label name."),
    Setting("max_label_value_length", 2048, _int, "Longest label value."),
    Setting("max_series_per_tenant", 1_000_000, _int,
            "Series a tenant may have; batches that would add more are refused."),
    Setting("retention_raw", 30 * 86400.0, _duration_s, "How long raw samples are kept."),
    Setting("retention_5m", 90 * 86400.0, _duration_s, "How long 5-minute rollups are kept."),
    Setting("retention_1h", 400 * 86400.0, _duration_s, "How long 1-hour rollups are kept."),
    Setting("retention_1d", 0.0, _duration_s, "How long 1-day rollups are kept (0 = forever)."),
    Setting("rollup_interval", 2.0, _duration_s,
            "How often closed buckets are rolled up (a bucket is read from raw until then)."),
    Setting("rollup_quiet", 3.0, _duration_s,
            "A closed bucket is rolled up once no sample arrived for it for this long, so a "
            "backfill does not rebuild a bucket per batch."),
    Setting("rollup_max_defer", 60.0, _duration_s,
            "Longest rollups wait while ingestion keeps the writer more than half busy."),
    Setting("retention_interval", 3600.0, _duration_s, "How often retention is enforced."),
    Setting("close_days_after", CLOSE_AFTER_MS / 1000, _duration_s,
            "How long after its end a rolled-up day moves out of the tables into compressed "
            "Parquet files (about a third of the disk; a cold query over it takes 1-3 ms "
            "more); 0 = never, every day stays in the tables (docs/storage.md)."),
    Setting("closed_days_memory", HOT_BYTES, _size,
            "Memory for closed days kept decoded (compressed) beside their files, the days "
            "just closed and those read lately first, so cold queries over them run at the "
            "open days' speed; counts toward duckdb_memory_limit; 0 = read files only."),
    Setting("duckdb_memory_limit", "256MB", str,
            "Memory limit of the embedded DuckDB store (its buffer pool; spills beyond)."),
    Setting("duckdb_threads", 0, _int, "DuckDB worker threads (0 = one per core)."),
    Setting("duckdb_block_size", BLOCK_SIZE, _block_size,
            "Block size in bytes of a new store file (an existing file keeps its own): "
            "smaller blocks leave less of each block empty; below 65536 columns stop "
            "fitting compressed (docs/benchmarks.md)."),
    Setting("rules_file", "", str,
            "A TOML (or `.yaml`) file of alert channels and rules, created or replaced at start-up "
            "(see docs/alerting.md); empty = none."),
    Setting("alert_tick", 1.0, _duration_s,
            "How often alerting checks what time alone changes: for-durations, absence, "
            "keep-firing-for, escalation, group intervals and repeats."),
    Setting("alert_queue_batches", 1024, _int,
            "Committed batches waiting for alert evaluation; beyond this they are skipped "
            "and counted (vigil_alerting_batches_dropped), so ingestion never waits."),
    Setting("tasks_performance_cache_ttl", 90.0, _duration_s,
            "How long a task performance report is cached (0 = off)."),
    Setting("tasks_bottlenecks_cache_ttl", 120.0, _duration_s,
            "How long a task bottleneck report is cached (0 = off)."),
    Setting("query_cache_max_entries", 10_000, _size,
            "Query answers kept in memory for repeated queries, dropped exactly when data "
            "they read changes (see docs/query.md); 0 = no query cache."),
    Setting("query_cache_max_bytes", 64 * 1024 * 1024, _size,
            "Approximate memory the kept query answers may take; 0 = no query cache."),
    Setting("stream_client_buffer_bytes", 256 * 1024, _size,
            "Unsent bytes a live-stream (WebSocket) client may have; beyond it its updates "
            "are coalesced to the latest points (see docs/streaming.md)."),
    Setting("stream_slow_after", 10.0, _duration_s,
            "A live-stream client whose buffer stays full this long is disconnected."),
    Setting("stream_ping_interval", 20.0, _duration_s,
            "The live stream pings each client this often and closes (1011) one that has "
            "not answered the previous ping."),
    Setting("stream_compression", False, _bool,
            "permessage-deflate for WebSocket clients that offer it: fewer bytes on slow "
            "links, but zlib state per connection and a compression per client and message."),
    Setting("tasks_max_period_hours", 168, _int,
            "Longest bottleneck analysis period, in hours; longer gets 400."),
    Setting("tasks_max_results", 50, _int,
            "Most rows per list of a bottleneck report (the limit parameter's maximum)."),
    Setting("jwt_secret", "", _secret,
            "HS256 secret that bearer tokens are signed with (at least 32 characters); "
            "never logged."),
    Setting("jwt_public_key_file", "", str,
            "PEM public key (RSA: RS256, EC P-256: ES256) that verifies bearer tokens."),
    Setting("jwt_jwks_file", "", str,
            "JSON Web Key Set file that verifies RS256/ES256 tokens (key chosen by kid)."),
    Setting("jwt_issuer", "", str, "Required iss claim of bearer tokens (empty = not checked)."),
    Setting("jwt_audience", "", str,
            "Required aud claim of bearer tokens (empty = not checked)."),
    Setting("jwt_leeway", 0.0, _duration_s, "Clock skew allowed on exp and nbf."),
    Setting("cors_origins", "", str,
            "Comma-separated origins browsers may call the API from (empty = none)."),
    Setting("rate_ingest_per_s", 1000.0, float,
            "Ingest requests per second per credential and per client address (0 = off)."),
    Setting("rate_ingest_burst", 2000.0, float, "Ingest requests allowed in a burst."),
    Setting("rate_query_per_s", 200.0, float,
            "Query and other requests per second per credential and per client address "
            "(0 = off)."),
    Setting("rate_query_burst", 400.0, float, "Query requests allowed in a burst."),
    Setting("client_token", "", str,
            "Token or API key the CLI sends with --url (VIGIL_CLIENT_TOKEN); never logged."),
)

PRESETS: dict[str, dict[str, Any]] = {
    "development": {},
    "staging": {"log_format": "json"},
    "production": {"log_format": "json", "log_level": "warning"},
}


@dataclass(frozen=True, slots=True)
class Settings:
    preset: str
    host: str
    port: int
    data_dir: str
    default_tenant: str
    log_level: str
    log_format: str
    max_body_bytes: int
    max_labels: int
    max_name_length: int
    max_label_value_length: int
    max_series_per_tenant: int
    retention_raw: float
    retention_5m: float
    retention_1h: float
    retention_1d: float
    rollup_interval: float
    rollup_quiet: float
    rollup_max_defer: float
    retention_interval: float
    close_days_after: float
    closed_days_memory: int
    duckdb_memory_limit: str
    duckdb_threads: int
    duckdb_block_size: int
    rules_file: str
    alert_tick: float
    alert_queue_batches: int
    tasks_performance_cache_ttl: float
    tasks_bottlenecks_cache_ttl: float
    query_cache_max_entries: int
    query_cache_max_bytes: int
    stream_client_buffer_bytes: int
    stream_slow_after: float
    stream_ping_interval: float
    stream_compression: bool
    tasks_max_period_hours: int
    tasks_max_results: int
    jwt_secret: str = field(repr=False)
    jwt_public_key_file: str
    jwt_jwks_file: str
    jwt_issuer: str
    jwt_audience: str
    jwt_leeway: float
    cors_origins: str
    rate_ingest_per_s: float
    rate_ingest_burst: float
    rate_query_per_s: float
    rate_query_burst: float
    client_token: str = field(repr=False)

    @property
    def data_path(self) -> Path:
        return Path(self.data_dir)


_BY_NAME = {s.name: s for s in SETTINGS}
SECRET_SETTINGS = frozenset({"jwt_secret", "client_token"})
assert set(_BY_NAME) == {f.name for f in fields(Settings)}, "BUG: SETTINGS and Settings differ"


def _parse(name: str, value: Any) -> Any:
    setting = _BY_NAME.get(name)
    if setting is None:
        raise ConfigError(f"unknown setting {name!r}; see docs/config.md for the list")
    try:
        return setting.parse(value)
    except (ValueError, TypeError, VigilError) as err:
        shown = "(hidden)" if name in SECRET_SETTINGS else repr(value)
        raise ConfigError(f"bad value {shown} for setting {name!r}: {err}") from err


def load(
    path: str | Path | None = None,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Build Settings. Precedence, lowest first: defaults, preset, TOML file, environment
    (``VIGIL_<NAME>``), then ``overrides`` (command-line flags)."""
    env = os.environ if env is None else env
    file_values: dict[str, Any] = {}
    if path is not None:
        try:
            with open(path, "rb") as f:
                file_values = tomllib.load(f)
        except OSError as err:
            raise ConfigError(f"cannot read config file {path}: {err.strerror}") from err
        except tomllib.TOMLDecodeError as err:
            raise ConfigError(f"config file {path} is not valid TOML: {err}") from err
        file_values = file_values.get("vigil", file_values)
    env_values = {
        k[6:].lower(): v for k, v in env.items() if k.startswith("VIGIL_") and
        k[6:].lower() in _BY_NAME
    }
    layered: dict[str, Any] = {}
    for source in (file_values, env_values, overrides or {}):
        layered.update({k: v for k, v in source.items() if v is not None})
    preset = _parse("preset", layered.get("preset", "development"))
    values = {s.name: s.default for s in SETTINGS}
    values.update(PRESETS[preset])
    for k, v in layered.items():
        values[k] = _parse(k, v)
    return Settings(**values)
