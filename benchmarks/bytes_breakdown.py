#!/usr/bin/env python3
"""Where the bytes on disk go: the TSBS cpu-only day, stored in-process: by table and
column while the day is open, then by Parquet file and column once it is closed.

The dataset is the shared peer benchmark's (its generator's ``host_tags`` and
``host_values``: 100 hosts x 10 fields, a point every 10 s for one day = 8.64 M samples),
written through ``DuckDBStore.submit`` in 50,000-sample batches, rolled up with the day
still open, checkpointed (copied as ``ingested.duckdb``, which
``closed_chunks_estimate.py`` reads), then closed, in one process as the server does.
Table sizes per column come from DuckDB's ``pragma_storage_info``: a segment's bytes are
the distance to the next segment in its block (the last runs to the block's end), so they
add up to whole blocks; file sizes per column from ``parquet_metadata``.

Usage (from the repository root)::

    .venv/bin/python benchmarks/bytes_breakdown.py [--work /tmp/vigil-bytes]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from pathlib import Path

import duckdb
import numpy as np

from vigil.core.types import SampleBatch, SeriesKey, SeriesMeta
from vigil.storage.closed_days import CLOSE_AFTER_MS
from vigil.storage.duckdb_store import BLOCK_SIZE, DuckDBStore

REPO = Path(__file__).resolve().parent.parent
START_S = 1_704_067_200  # 2024-01-01, as the peer benchmark
POINTS, HOSTS = 8640, 100
TABLES = ("samples", "rollup_5m", "rollup_1h", "rollup_1d", "series")


def dataset(shared: Path) -> tuple[list[SeriesMeta], np.ndarray, np.ndarray]:
    sys.path.insert(0, str(shared))
    import gen_dataset as g  # type: ignore[import-not-found]

    ts_s = START_S + 10 * np.arange(POINTS)
    metas, rows = [], []
    for h in range(HOSTS):
        tags, _ = g.host_tags(h, 1)
        values = g.host_values(h, 1, ts_s.astype(np.float64), START_S)
        for fi, f in enumerate(g.FIELDS):
            metas.append(SeriesMeta(SeriesKey.of(f"cpu_{f}", tags)))
            rows.append(values[fi])
    return metas, ts_s * 1000, np.stack(rows)


def store(path: Path, metas: list[SeriesMeta], ts_ms: np.ndarray, values: np.ndarray
          ) -> DuckDBStore:
    s = DuckDBStore(path)
    n = len(metas)
    for lo in range(0, POINTS, 50):
        hi = min(POINTS, lo + 50)
        idx = np.tile(np.arange(n, dtype=np.int32), hi - lo)
        ts = np.repeat(ts_ms[lo:hi], n).astype(np.int64)
        s.submit("default", SampleBatch(metas, idx, ts, values[:, lo:hi].T.reshape(-1))).result()
    t0 = time.perf_counter()
    s.refresh_rollups(int(ts_ms[-1]) + CLOSE_AFTER_MS - 1)  # the day not closed yet
    print(f"rolled up in {time.perf_counter() - t0:.2f} s")
    s.checkpoint()
    return s


def columns(con: duckdb.DuckDBPyConnection, table: str) -> list[tuple[str, str, float]]:
    """(column, compression, bytes) of ``table``'s persistent segments."""
    [(block,)] = con.execute("SELECT block_size FROM pragma_database_size() "
                             "WHERE database_name = current_database()").fetchall()
    return [(c, k, float(b)) for c, k, b in con.execute(f"""
        WITH s AS (SELECT column_name, compression, block_id, block_offset
                   FROM pragma_storage_info('{table}') WHERE block_id >= 0),
             o AS (SELECT *, coalesce(lead(block_offset) OVER (
                       PARTITION BY block_id ORDER BY block_offset), {block}) - block_offset AS sz
                   FROM s)
        SELECT column_name, string_agg(DISTINCT compression, '+'), sum(sz)
        FROM o GROUP BY column_name ORDER BY column_name""").fetchall()]


def report(con: duckdb.DuckDBPyConnection, path: Path, samples: int,
           tables: tuple[str, ...]) -> None:
    total = 0.0
    for t in tables:
        cols = columns(con, t)
        size = sum(b for _, _, b in cols)
        total += size
        print(f"{t:<10} {size / samples:6.3f} B/sample   " + ", ".join(
            f"{c} {k} {b / samples:.3f}" for c, k, b in cols))
    file = os.path.getsize(path) / samples
    print(f"{'tables':<10} {total / samples:6.3f} B/sample; file {file:.3f}")


def report_files(root: Path, samples: int) -> int:
    con = duckdb.connect()
    total = 0
    for f in sorted(root.glob("*/*.parquet")):
        cols = con.execute(f"""
            SELECT path_in_schema, sum(total_compressed_size)
            FROM parquet_metadata('{f}') GROUP BY 1 ORDER BY 2 DESC""").fetchall()
        size = f.stat().st_size
        total += size
        print(f"{f.name.split('-')[0]:<10} {size / samples:6.3f} B/sample   " + ", ".join(
            f"{c} {b / samples:.3f}" for c, b in cols if b / samples >= 0.001))
    return total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--work", type=Path, default=Path("/tmp/vigil-bytes"))
    ap.add_argument("--shared", type=Path, default=REPO.parent / "shared" / "bench")
    a = ap.parse_args()
    a.work.mkdir(parents=True, exist_ok=True)
    metas, ts_ms, values = dataset(a.shared)
    n = values.size
    path = a.work / "vigil.duckdb"
    as_ingested, sorted_db = a.work / "ingested.duckdb", a.work / "sorted.duckdb"
    for p in (path, as_ingested, sorted_db):
        p.unlink(missing_ok=True)
    shutil.rmtree(a.work / "vigil-closed", ignore_errors=True)
    s = store(path, metas, ts_ms, values)
    print(f"as ingested (time order), {n:,} samples:")
    report(s.connection(), path, n, TABLES)
    shutil.copy(path, as_ingested)  # checkpointed, nothing in flight: for the estimate
    t0 = time.perf_counter()
    s.refresh_rollups(int(time.time() * 1000))
    print(f"closed in {time.perf_counter() - t0:.2f} s, by Parquet file:")
    files = report_files(s.days.closed_root, n)
    db = os.path.getsize(path)
    print(f"{'files':<10} {files / n:6.3f} B/sample; database file {db / n:.3f}; "
          f"together {(files + db) / n:.3f}")
    s.close()
    con = duckdb.connect(str(sorted_db), config={"default_block_size": BLOCK_SIZE})
    con.execute(f"ATTACH '{as_ingested}' AS a (READ_ONLY)")
    con.execute("CREATE TABLE samples AS SELECT * FROM a.samples ORDER BY series_id, ts")
    con.execute("CHECKPOINT")
    print("for comparison, raw samples in a table in (series, time) order:")
    report(con, sorted_db, n, ("samples",))
    con.close()


if __name__ == "__main__":
    main()
