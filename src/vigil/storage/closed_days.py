"""Closed days: raw samples and rollups of days no longer written, as Parquet files.

A day closes once it ended ``CLOSE_AFTER_MS`` ago (setting ``close_days_after``; 0 = never)
and none of its buckets is stale. Its rows leave the DuckDB tables for Parquet files per
tier, written by DuckDB itself and read back with ``read_parquet``. Why files: DuckDB keeps
every block a table frees in its file (only the file's free tail is given back), so closed
data stored once, outside the tables, lets the database file shrink back to the days still
open. Why these encodings: rows sorted by metric and series delta-code timestamps and ids
to almost nothing, and values that are decimals (most metrics) are stored as integers
scaled by a power of ten, delta-coded and zstd-compressed: the TSBS day's raw samples
take 1.3 B/sample, against 3.2 in the table (docs/storage.md).

Which files hold which day is the ``closed_files`` table (written in the transaction that
deletes the day's rows from the tables) mirrored by ``Manifest`` in memory. Readers hold
``FileGuard.reading()`` while they build and run a statement; the transaction that moves
a day in or out of files commits, and its files are deleted, under ``writing()``, so no
statement ever sees a day twice, misses it, or reads a deleted file.

Scaled values are exact: a value is stored as ``round(v * p)`` only where dividing that
integer by ``p`` gives ``v`` back bit for bit; other values (-0.0, values with more
decimals or too large) keep their float column.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vigil.core.types import Int64Array
from vigil.storage.store import TIER_MS, TIERS, Tier

DAY_MS = TIER_MS["1d"]
# A day closes this long after its end (late samples until then are cheap: they only
# mark buckets; after, they bring the day back into the tables once: see
# ``DayCloser.reopen_dirty_days``).
CLOSE_AFTER_MS = 2 * TIER_MS["1h"]
# Powers of ten tried for a day's values; the smallest with nearly every value exact wins.
SCALES = (1, 10, 100, 1000, 10_000, 100_000, 1_000_000)
_EXACT_ENOUGH = 0.99
# The columns each tier keeps as doubles (scaled where exact), and the others.
_VALUES: dict[Tier, tuple[str, ...]] = {
    "raw": ("value",),
    **{t: ("total", "min", "max", "last") for t in ("5m", "1h", "1d")},
}
_COLUMNS: dict[Tier, tuple[str, ...]] = {
    "raw": ("series_id", "ts", "value"),
    **{t: ("series_id", "bucket", "cnt", "total", "min", "max", "last_ts", "last",
           "sk_keys", "sk_counts") for t in ("5m", "1h", "1d")},
}
# Row order in a file, and rows per row group. Raw and 5m by metric, then series: a read
# of one metric (every query names one) or of a few series prunes row groups by the
# metric's ``name_key`` and the series id (TSBS Q1, Q3: the series of a metric are not
# adjacent ids when a host's fields arrive together, as Telegraf sends them). 1h and 1d
# by bucket in small row groups: a quantile of one hour over many series decodes that
# hour's sketches only (sketch lists are the slowest part of a Parquet file to decode:
# ≈ 17 ms for a whole 1h day).
KEYED: tuple[Tier, ...] = ("raw", "5m")
_ORDER: dict[Tier, tuple[str, int]] = {
    "raw": ("name_key, series_id, ts", 122_880),
    "5m": ("name_key, series_id, bucket", 122_880),
    "1h": ("bucket, series_id", 2_048),
    "1d": ("bucket, series_id", 2_048),
}
_PARQUET = ("FORMAT parquet, COMPRESSION zstd, COMPRESSION_LEVEL 9, PARQUET_VERSION V2, "
            "DICTIONARY_SIZE_LIMIT 1")


def table(tier: Tier) -> str:
    return "samples" if tier == "raw" else f"rollup_{tier}"


def time_column(tier: Tier) -> str:
    return "ts" if tier == "raw" else "bucket"


@dataclass(frozen=True, slots=True)
class ClosedFile:
    tier: Tier
    day: int  # start of the day, epoch ms
    path: str
    rows: int
    sketches: bool = True  # False: a 5m file whose day's quantiles come from raw
    keys: tuple[int, int] | None = None  # the range of name_key it holds (raw and 5m)


class Manifest:
    """Which Parquet files hold which closed days (the in-memory mirror of
    ``closed_files``). Read under ``FileGuard.reading()``; changed under ``writing()``."""

    def __init__(self, files: list[ClosedFile] | None = None) -> None:
        self._files: dict[Tier, dict[int, list[ClosedFile]]] = {t: {} for t in TIERS}
        for f in files or []:
            self.add(f)

    def add(self, f: ClosedFile) -> None:
        self._files[f.tier].setdefault(f.day, []).append(f)

    def drop_day(self, day: int) -> list[ClosedFile]:
        """Forget every file of ``day``; returns them."""
        out: list[ClosedFile] = []
        for by_day in self._files.values():
            out += by_day.pop(day, [])
        return out

    def drop_before(self, tier: Tier, cutoff: int) -> list[ClosedFile]:
        by_day = self._files[tier]
        out: list[ClosedFile] = []
        for day in [d for d in by_day if d < cutoff]:
            out += by_day.pop(day)
        return out

    def files(self, tier: Tier, start_ms: int, end_ms: int, sketches: bool = False,
              keys: list[int] | None = None) -> list[ClosedFile]:
        """Files of ``tier`` whose day overlaps ``[start_ms, end_ms)`` (only those
        holding sketches if ``sketches``, and rows of a metric in ``keys`` if given)."""
        return [f for day, fs in sorted(self._files[tier].items())
                if day < end_ms and day + DAY_MS > start_ms
                for f in fs if (f.sketches or not sketches) and _holds(f, keys)]

    def paths(self, tier: Tier, start_ms: int, end_ms: int, sketches: bool = False,
              keys: list[int] | None = None) -> list[str]:
        return [f.path for f in self.files(tier, start_ms, end_ms, sketches, keys)]

    def without_sketches(self) -> list[int]:
        """Days whose 5m files hold no sketches (their raw samples are kept)."""
        return sorted(d for d, fs in self._files["5m"].items() if not fs[0].sketches)

    def replace(self, tier: Tier, day: int, files: list[ClosedFile]) -> list[ClosedFile]:
        """Put ``files`` in place of ``tier``'s files of ``day``; returns the old ones."""
        old = self._files[tier].pop(day, [])
        if files:
            self._files[tier][day] = list(files)
        return old

    def days(self) -> set[int]:
        return {d for by_day in self._files.values() for d in by_day}

    def rows(self, tier: Tier) -> int:
        """Rows in the files of ``tier``."""
        return sum(f.rows for fs in self._files[tier].values() for f in fs)

    def all(self) -> list[ClosedFile]:
        return [f for by_day in self._files.values() for fs in by_day.values() for f in fs]


def _holds(f: ClosedFile, keys: list[int] | None) -> bool:
    """Whether ``f`` may hold rows of the metrics ``keys`` (None: any)."""
    if keys is None or f.keys is None:
        return True
    lo, hi = f.keys
    return any(lo <= k <= hi for k in keys)


class FileGuard:
    """Many readers or one writer of the set of closed files (see the module doc).

    Readers never wait for the ingest writer or for a Parquet file being written, only
    for the commit that swaps files in or out (and the deletes after it)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._readers = 0
        self._writing = False

    @contextmanager
    def reading(self) -> Iterator[None]:
        with self._cond:
            while self._writing:
                self._cond.wait()
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                if not self._readers:
                    self._cond.notify_all()

    @contextmanager
    def writing(self) -> Iterator[None]:
        with self._cond:
            while self._writing:
                self._cond.wait()
            self._writing = True  # new readers wait from here
            while self._readers:
                self._cond.wait()
        try:
            yield
        finally:
            with self._cond:
                self._writing = False
                self._cond.notify_all()


def scale_sql(where: str) -> str:
    """Per power of ten in SCALES, how many raw values matching ``where`` it keeps exact."""
    exact = ", ".join(f"count_if({_exact('value', p)})" for p in SCALES)
    return f"SELECT count(*), {exact} FROM samples WHERE {where}"


def key_range_sql(path: str) -> str:
    """The range of ``name_key`` in the (raw or 5m) file at ``path``."""
    return f"SELECT min(name_key), max(name_key) FROM read_parquet('{_quote(path)}')"


def scale_of_sql(paths: list[str]) -> str:
    """The power of ten the files at ``paths`` (one day's) were written with."""
    return f"SELECT first(p) FROM read_parquet([{_list(paths)}])"


# The first series id of each (tenant, metric name): ``SeriesIndex.name_key``'s rule.
ORDER_SQL = ("SELECT id AS series_id, min(id) OVER (PARTITION BY tenant, name) AS name_key "
             "FROM series")


def assign_parts(series_id: Int64Array, name_key: Int64Array, rows: Int64Array,
                 part_rows: int) -> tuple[Int64Array, Int64Array]:
    """Every series' place in a closed file: the order (metric, series) and, cutting that
    order into consecutive runs of about ``part_rows`` rows (``rows`` per series; a series
    is never split), its part. Returns (order of the inputs, part of each, in that order).
    """
    order = np.lexsort((series_id, name_key))
    filled = np.cumsum(rows[order]) - rows[order]  # rows before each series
    return order, (filled // max(part_rows, 1)).astype(np.int64)


def pick_scale(counts: tuple[int, ...]) -> int:
    """The smallest power of ten that keeps nearly every value exact (else the one that
    keeps most), from ``scale_sql``'s row."""
    total, *exact = counts
    for p, n in zip(SCALES, exact, strict=True):
        if total and n >= _EXACT_ENOUGH * total:
            return p
    return SCALES[max(range(len(SCALES)), key=lambda i: (exact[i], -i))]


def _limit(p: int) -> float:
    return float(2**53) / p  # |v * p| below this: the scaled integer is exact as a double


def _exact(col: str, p: int) -> str:
    return (f"(abs({col}) < {_limit(p)!r} AND round({col} * {p}.0) / {p}.0 = {col} "
            f"AND NOT ({col} = 0 AND signbit({col})))")


def copy_sql(tier: Tier, where: str, p: int, path: str, *, source: str | None = None,
             sketches: bool = True) -> str:
    """``COPY`` of ``tier``'s rows matching ``where`` (from its table, or ``source``, which
    for raw and 5m also gives ``name_key``) to the Parquet file ``path``, values scaled by
    ``p`` where exact; sketches as empty lists unless ``sketches``."""
    cols = ["name_key"] if tier in KEYED else []
    for c in _COLUMNS[tier]:
        if c in _VALUES[tier]:
            cols += [f"CASE WHEN {_exact(c, p)} THEN round({c} * {p}.0)::BIGINT END AS {c}_i",
                     f"CASE WHEN NOT {_exact(c, p)} THEN {c} END AS {c}_f"]
        elif c.startswith("sk_") and not sketches:
            cols.append(f"[]::INTEGER[] AS {c}")
        else:
            cols.append(c)
    order, group = _ORDER[tier]
    return (f"COPY (SELECT {', '.join(cols)}, {p}.0::DOUBLE AS p FROM {source or table(tier)} "
            f"WHERE {where} ORDER BY {order}) TO '{_quote(path)}' "
            f"({_PARQUET}, ROW_GROUP_SIZE {group})")


def read_sql(tier: Tier, paths: list[str], keys: list[int] | None = None) -> str:
    """A relation with ``tier``'s table columns, read from ``paths``; with ``keys``, only
    the rows of those metrics (``SeriesIndex.name_key``), which prunes row groups."""
    where = (f" WHERE name_key IN ({', '.join(map(str, keys))})"
             if keys is not None and tier in KEYED else "")
    return f"(SELECT {_decoded(tier)} FROM read_parquet([{_list(paths)}]){where})"


def load_sql(f: ClosedFile, table: str) -> str:
    """``CREATE TABLE`` of the in-memory copy of ``f``: its tier's table columns decoded,
    and ``name_key`` for the tiers sorted by metric (see ``hot_files``)."""
    key = ", name_key" if f.tier in KEYED else ""
    return (f"CREATE TABLE {table} AS SELECT {_decoded(f.tier)}{key} "
            f"FROM read_parquet([{_list([f.path])}])")


def read_hot_sql(tier: Tier, table: str, keys: list[int] | None = None) -> str:
    """A relation with ``tier``'s table columns, from the in-memory copy ``table``."""
    where = (f" WHERE name_key IN ({', '.join(map(str, keys))})"
             if keys is not None and tier in KEYED else "")
    return f"(SELECT {', '.join(_COLUMNS[tier])} FROM {table}{where})"


def _decoded(tier: Tier) -> str:
    return ", ".join(f"coalesce({c}_i / p, {c}_f) AS {c}" if c in _VALUES[tier] else c
                     for c in _COLUMNS[tier])


def _list(paths: list[str]) -> str:
    return ", ".join(f"'{_quote(p)}'" for p in paths)


def _quote(path: str) -> str:
    return path.replace("'", "''")


def file_path(root: Path, tier: Tier, day: int, generation: int, part: int) -> Path:
    """Where a part of ``tier``'s files of ``day`` goes; a new generation each time the
    day's files are written, so a file is never overwritten while the manifest may still
    name it."""
    return root / f"{day}" / f"{tier}-{generation}-{part}.parquet"


def sync(path: Path) -> None:
    """Make a written file and its directory entry durable before a commit names it."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    dfd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def remove(paths: list[str]) -> None:
    """Delete files and, when empty, their day's directory."""
    for p in paths:
        Path(p).unlink(missing_ok=True)
        with contextlib.suppress(OSError):  # other files of the day remain
            Path(p).parent.rmdir()
