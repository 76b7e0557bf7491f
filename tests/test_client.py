"""The HTTP SDK against a real server."""

from __future__ import annotations

import io
import time

import pyarrow.parquet as pq
import pytest

from tests.conftest import Server
from vigil.client import Client, ClientError


def test_write_query_export_and_errors(server: Server) -> None:
    now_s = int(time.time())
    with Client(server.url) as c:
        c.write([{"name": "jobs", "value": 2, "labels": {"q": "a"}}])
        c.write_lines(f"cpu,host=a usage=1.5 {(now_s - 5) * 10**9}")
        c.write_lines(f"cpu,host=b usage=2.5 {now_s - 5}", precision="s", gzipped=False)
        doc = c.query("cpu_usage", match=["host=~a|b"], fn="max", group_by="", step="1h")
        assert doc["series"][0]["points"][0][1] == 2.5
        table = pq.read_table(io.BytesIO(c.export("cpu_usage", "parquet", step="1h")))
        assert sorted(table.column("host").to_pylist()) == ["a", "b"]
        assert c.get("/api/v1/labels")["labels"] == ["host", "q"]
        with pytest.raises(ClientError) as err:
            c.write([{"name": "9bad", "value": 1}])
        assert err.value.status == 400 and "invalid metric name" in str(err.value)
        with pytest.raises(ClientError, match="HTTP 404"):
            c.get("/api/v1/metrics/none/latest")
