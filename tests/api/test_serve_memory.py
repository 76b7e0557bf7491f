"""``vigil serve`` keeps pandas out of the process: pyarrow would import it (≈ 44 MB
resident) on its first conversion, though no server path hands it a pandas object."""

from __future__ import annotations

import importlib.util
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.api.test_durability import start
from tests.conftest import free_port


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/<pid>/maps")
@pytest.mark.skipif(importlib.util.find_spec("pandas") is None, reason="pandas not installed")
def test_serve_ingests_and_queries_without_loading_pandas(tmp_path: Path) -> None:
    port = free_port()
    proc = start(tmp_path, port)
    try:
        base_s = int(time.time()) - 3000
        body = "\n".join(f"cpu,host=h{j % 3} user={j},system=1 {(base_s + j) * 1000}"
                         for j in range(600))
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
            assert http.post("/write", params={"precision": "ms"},
                             content=body.encode()).status_code == 204
            for params in ({"fn": "avg", "step": "1m"}, {"fn": "quantile", "q": "0.9",
                                                           "step": "5m", "group_by": ""},
                           {"fn": "max", "step": "1m", "format": "csv"},
                           {"fn": "min", "step": "1m", "format": "parquet"}):
                r = http.get("/api/v1/query", params={
                    "name": "cpu_user", "start": base_s, "end": base_s + 600, **params})
                assert r.status_code == 200, r.text
                assert r.content
        maps = Path(f"/proc/{proc.pid}/maps").read_text()
        assert "/pandas/" not in maps
    finally:
        proc.terminate()
        proc.wait(30)
