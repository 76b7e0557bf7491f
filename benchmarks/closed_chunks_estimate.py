#!/usr/bin/env python3
"""What a chunk format of our own for closed data would weigh, before building it.

Reads the database ``bytes_breakdown.py`` leaves behind (the TSBS cpu-only day, stored
in-process and rolled up: run that first) and encodes its closed data the way
VictoriaMetrics and Gorilla do, per series: timestamps as delta-of-delta, values as
deltas of scaled integers when the values are decimals (checked to round-trip exactly),
zigzag, the narrowest integer type, byte-shuffled, zlib. Raw samples are encoded per
(series, day) and per (series, hour); each rollup tier per (series, day): its
aggregates as above (``total`` as deltas of its float bits) and its sketch
as key gaps, first keys relative to the previous bucket's, and counts.

Prints B/sample per part and the cost of reading one hour of 100 series out of chunks
(the shape of TSBS Q3): fetching the blobs from DuckDB, decoding, the quantile.

Usage (from the repository root)::

    .venv/bin/python benchmarks/bytes_breakdown.py         # writes the database
    .venv/bin/python benchmarks/closed_chunks_estimate.py [--work /tmp/vigil-bytes]
"""

from __future__ import annotations

import argparse
import time
import zlib
from pathlib import Path

import duckdb
import numpy as np

HOUR_MS = 3_600_000


def zigzag(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.int64)
    return ((x << 1) ^ (x >> 63)).astype(np.uint64)


def unzigzag(u: np.ndarray) -> np.ndarray:
    u = u.astype(np.uint64)
    return (u >> np.uint64(1)).astype(np.int64) ^ -(u & np.uint64(1)).astype(np.int64)


def narrow(u: np.ndarray) -> np.ndarray:
    top = int(u.max()) if len(u) else 0
    for dt in (np.uint8, np.uint16, np.uint32):
        if top <= np.iinfo(dt).max:
            return u.astype(dt)
    return u.astype(np.uint64)


def shuffled(a: np.ndarray) -> bytes:
    """The bytes of ``a`` by significance (all low bytes, then the next, …): runs of
    zero high bytes compress to nothing."""
    return a.view(np.uint8).reshape(-1, a.itemsize).T.tobytes()


def unshuffled(raw: bytes, itemsize: int, n: int) -> np.ndarray:
    dt = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}[itemsize]
    return np.frombuffer(raw, np.uint8).reshape(itemsize, n).T.copy().view(dt).reshape(-1)


def decimals(v: np.ndarray) -> int | None:
    """The fewest decimals (≤ 6) that represent every value exactly, else None."""
    for s in range(7):
        scaled = np.round(v * 10.0**s)
        if np.all(np.abs(scaled) < 2**53) and np.array_equal(scaled / 10.0**s, v):
            return s
    return None


def deltas(v: np.ndarray) -> np.ndarray:
    """Zigzagged deltas of ``v`` as scaled integers, or of its float bits if none fit."""
    s = decimals(v)
    ints = np.round(v * 10.0**s).astype(np.int64) if s is not None else v.view(np.int64)
    return narrow(zigzag(np.diff(ints, prepend=0)))


def pack(*cols: np.ndarray) -> bytes:
    return zlib.compress(b"".join(shuffled(c) for c in cols), 6)


def raw_bytes(con: duckdb.DuckDBPyConnection, per_ms: int) -> tuple[int, int]:
    cols = con.execute("SELECT series_id, ts, value FROM samples "
                       "ORDER BY series_id, ts").fetchnumpy()
    sid, ts, val = cols["series_id"], cols["ts"], cols["value"]
    key = sid.astype(np.int64) * (1 << 32) + ts // per_ms
    cuts = np.flatnonzero(np.diff(key)) + 1
    total = 0
    for lo, hi in zip([0, *cuts.tolist()], [*cuts.tolist(), len(key)], strict=True):
        t = ts[lo:hi]
        dod = np.diff(np.diff(t, prepend=t[0]), prepend=0)  # the first ts is in the row
        total += len(pack(narrow(zigzag(dod)), deltas(val[lo:hi]))) + 16  # + row keys
    return total, len(key)


def tier_bytes(con: duckdb.DuckDBPyConnection, tier: str) -> dict[str, int]:
    df = con.execute(f"SELECT * FROM rollup_{tier} ORDER BY series_id, bucket").fetchnumpy()
    sid = df["series_id"]
    day = df["bucket"] // 86_400_000
    key = sid.astype(np.int64) * (1 << 32) + day
    cuts = np.flatnonzero(np.diff(key)) + 1
    out = {"aggregates": 0, "sketch keys": 0, "sketch counts": 0}
    for lo, hi in zip([0, *cuts.tolist()], [*cuts.tolist(), len(key)], strict=True):
        b = df["bucket"][lo:hi]
        out["aggregates"] += len(pack(
            narrow(zigzag(np.diff(b, prepend=b[0]))), narrow(zigzag(df["cnt"][lo:hi])),
            narrow(zigzag(df["last_ts"][lo:hi] - b)),
            *(deltas(df[c][lo:hi]) for c in ("min", "max", "last")),
            narrow(zigzag(np.diff(df["total"][lo:hi].view(np.int64), prepend=0))))) + 16
        keys = [np.asarray(k, np.int64) for k in df["sk_keys"][lo:hi]]
        lens = np.array([len(k) for k in keys])
        flat = np.concatenate(keys)
        starts = np.cumsum(lens) - lens
        gaps = np.diff(flat, prepend=0)
        gaps[starts] = np.diff(flat[starts], prepend=0)
        out["sketch keys"] += len(pack(narrow(zigzag(gaps)), narrow(lens.astype(np.uint64))))
        counts = np.concatenate([np.asarray(c, np.int64) for c in df["sk_counts"][lo:hi]])
        out["sketch counts"] += len(pack(narrow(counts.astype(np.uint64))))
    return out


def q3_shape(con: duckdb.DuckDBPyConnection) -> dict[str, float]:
    """One hour of 100 series read from (series, hour) chunks: the work TSBS Q3 would do."""
    end = int(con.execute("SELECT max(ts) FROM samples").fetchone()[0])  # type: ignore[index]
    hour = end // HOUR_MS * HOUR_MS
    first = int(con.execute("SELECT min(id) FROM series "  # type: ignore[index]
                            "WHERE name = 'cpu_usage_user'").fetchone()[0])
    cols = con.execute(f"SELECT series_id, value FROM samples WHERE ts >= {hour} "
                       f"AND series_id BETWEEN {first} AND {first + 99} "
                       "ORDER BY series_id, ts").fetchnumpy()
    mem = duckdb.connect()
    mem.execute("CREATE TABLE chunks (series_id INTEGER, hour BIGINT, n INTEGER, "
                "size INTEGER, val BLOB)")
    sid, val = cols["series_id"], cols["value"]
    for s in np.unique(sid).tolist():
        d = deltas(val[sid == s])
        mem.execute("INSERT INTO chunks VALUES (?, ?, ?, ?, ?)",
                    [s, hour, len(d), d.itemsize, pack(d)])
    runs: dict[str, list[float]] = {"fetch": [], "decode": [], "quantile": []}
    for _ in range(20):
        t0 = time.perf_counter()
        got = mem.execute(f"SELECT n, size, val FROM chunks WHERE hour = {hour} AND "
                          f"series_id BETWEEN {first} AND {first + 99}").fetchnumpy()
        t1 = time.perf_counter()
        values = np.concatenate([
            np.cumsum(unzigzag(unshuffled(zlib.decompress(b), int(sz), int(n)))) / 100.0
            for n, sz, b in zip(got["n"], got["size"], got["val"], strict=True)])
        t2 = time.perf_counter()
        np.quantile(values, 0.95)
        t3 = time.perf_counter()
        for k, v in zip(runs, (t1 - t0, t2 - t1, t3 - t2), strict=True):
            runs[k].append(v * 1000)
    assert np.allclose(np.sort(values), np.sort(val))  # the round trip is exact
    return {k: round(float(np.median(v)), 2) for k, v in runs.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--work", type=Path, default=Path("/tmp/vigil-bytes"))
    a = ap.parse_args()
    con = duckdb.connect(str(a.work / "ingested.duckdb"), read_only=True)
    by_day, n = raw_bytes(con, 86_400_000)
    by_hour, _ = raw_bytes(con, HOUR_MS)
    print(f"{n:,} samples")
    print(f"raw, a chunk per (series, day):  {by_day / n:.3f} B/sample")
    print(f"raw, a chunk per (series, hour): {by_hour / n:.3f} B/sample")
    total = by_hour
    for tier in ("5m", "1h", "1d"):
        parts = tier_bytes(con, tier)
        total += sum(parts.values())
        print(f"rollup_{tier}, a chunk per (series, day): {sum(parts.values()) / n:.3f} "
              "B/sample (" + ", ".join(f"{k} {v / n:.3f}" for k, v in parts.items()) + ")")
    print(f"all tiers (raw by hour): {total / n:.3f} B/sample, plus the series catalogue")
    print(f"one hour of 100 series out of chunks, median of 20 (ms): {q3_shape(con)}")


if __name__ == "__main__":
    main()
