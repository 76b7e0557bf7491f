"""Response helpers: orjson bodies and the export formats (CSV, JSON, Parquet)."""

from __future__ import annotations

import csv
import io
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
from starlette.responses import Response

from vigil.core.timeutil import format_ms
from vigil.query.engine import QueryResult

MEDIA = {"json": "application/json", "csv": "text/csv; charset=utf-8",
         "parquet": "application/vnd.apache.parquet"}


def json_response(body: Any, status: int = 200, media_type: str = "application/json",
                  headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY), status_code=status,
                    media_type=media_type, headers=headers)


def result_json(result: QueryResult) -> dict[str, Any]:
    return {
        "name": result.name,
        "tier": result.tier,
        "series": [{"labels": s.labels,
                    "points": list(zip(s.t_ms.tolist(), s.values.tolist(), strict=True))}
                   for s in result.series],
    }


def _long_table(result: QueryResult) -> pa.Table:
    """One row per point: the labels as columns, then timestamp (ms) and value."""
    names = sorted({k for s in result.series for k in s.labels})
    cols: dict[str, list[Any]] = {k: [] for k in names}
    ts: list[int] = []
    vals: list[float] = []
    for s in result.series:
        n = len(s.t_ms)
        for k in names:
            cols[k].extend([s.labels.get(k, "")] * n)
        ts.extend(s.t_ms.tolist())
        vals.extend(s.values.tolist())
    return pa.table({**cols, "timestamp_ms": pa.array(ts, pa.int64()),
                     "value": pa.array(vals, pa.float64())})


def export(result: QueryResult, fmt: str) -> bytes:
    """The result as bytes in ``fmt`` (json, csv or parquet)."""
    if fmt == "json":
        return orjson.dumps(result_json(result))
    table = _long_table(result)
    if fmt == "parquet":
        sink = io.BytesIO()
        pq.write_table(table, sink)
        return sink.getvalue()
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    labels = [c for c in table.column_names if c not in ("timestamp_ms", "value")]
    writer.writerow(["name", *labels, "timestamp", "value"])
    rows = zip(*(table.column(c).to_pylist() for c in table.column_names), strict=True)
    for row in rows:
        *lab, t, v = row
        writer.writerow([result.name, *lab, format_ms(t), repr(v)])
    return out.getvalue().encode()
