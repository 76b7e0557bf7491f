"""Response helpers: orjson bodies and the export formats (CSV, JSON, Parquet)."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from starlette.responses import Response

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
    counts = [len(s.t_ms) for s in result.series]
    cols: dict[str, pa.Array] = {
        k: pa.array(np.repeat(np.array([s.labels.get(k, "") for s in result.series],
                                       dtype=object), counts), pa.string())
        for k in names
    }
    ts = np.concatenate([s.t_ms for s in result.series]) if counts else np.empty(0, np.int64)
    vals = np.concatenate([s.values for s in result.series]) if counts else np.empty(0)
    return pa.table({**cols, "timestamp_ms": pa.array(ts, pa.int64()),
                     "value": pa.array(vals, pa.float64())})


def export(result: QueryResult, fmt: str) -> bytes:
    """The result as bytes in ``fmt`` (json, csv or parquet), built column by column."""
    if fmt == "json":
        return orjson.dumps(result_json(result))
    table = _long_table(result)
    sink = io.BytesIO()
    if fmt == "parquet":
        pq.write_table(table, sink)
        return sink.getvalue()
    stamps = pc.strftime(table.column("timestamp_ms").cast(pa.timestamp("ms", tz="UTC")),
                         format="%Y-%m-%dT%H:%M:%SZ")
    labels = [c for c in table.column_names if c not in ("timestamp_ms", "value")]
    csv_table = pa.table({
        "name": pa.array([result.name] * table.num_rows, pa.string()),
        **{c: table.column(c) for c in labels},
        "timestamp": stamps,
        "value": table.column("value"),
    })
    pacsv.write_csv(csv_table, sink, pacsv.WriteOptions(quoting_style="needed"))
    return sink.getvalue()
