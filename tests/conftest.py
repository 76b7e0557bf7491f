"""Shared fixtures: a store in a temp dir, built components, a real HTTP server."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import uvicorn

from vigil import config
from vigil.app import Components, build
from vigil.core.types import SampleBatch, SeriesKey, SeriesMeta
from vigil.storage.duckdb_store import DuckDBStore


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def make_settings(data_dir: Path, **overrides: Any) -> config.Settings:
    return config.load(env={}, overrides={"data_dir": str(data_dir), **overrides})


def batch_of(rows: list[tuple[str, dict[str, str], int, float]]) -> SampleBatch:
    """A SampleBatch from (name, labels, ts_ms, value) rows."""
    keys: dict[SeriesKey, int] = {}
    idx = []
    for name, labels, _, _ in rows:
        idx.append(keys.setdefault(SeriesKey.of(name, labels), len(keys)))
    return SampleBatch([SeriesMeta(k) for k in keys], np.array(idx, np.int32),
                       np.array([r[2] for r in rows], np.int64),
                       np.array([r[3] for r in rows], np.float64))


@pytest.fixture
def store(tmp_path: Path) -> Iterator[DuckDBStore]:
    """A fresh DuckDB store in a temp dir, closed after the test."""
    s = DuckDBStore(tmp_path / "t.duckdb", max_series_per_tenant=1000)
    yield s
    s.close()


@pytest.fixture
def components(tmp_path: Path) -> Iterator[Components]:
    """Every component built from default settings over a temp data dir (no maintenance
    thread: tests refresh rollups themselves)."""
    c = build(make_settings(tmp_path, retention_raw=0), start_maintenance=False)
    yield c
    c.close()


class Server:
    def __init__(self, c: Components, app: Any = None) -> None:
        """``app``: an app built by the test (default: ``create_app(c)``)."""
        from vigil.api.server import create_app

        self.components = c
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        app = app if app is not None else create_app(c, close_on_shutdown=False)
        cfg = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_config=None,
                             access_log=False,
                             ws_per_message_deflate=c.settings.stream_compression)
        self._server = uvicorn.Server(cfg)
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    def __enter__(self) -> Server:
        self._thread.start()
        deadline = time.monotonic() + 20
        while not self._server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(10)


@pytest.fixture
def server(components: Components) -> Iterator[Server]:
    """The real ASGI app served by uvicorn on a free loopback port."""
    with Server(components) as s:
        yield s


@pytest.fixture
def http(server: Server) -> Iterator[httpx.Client]:
    """An HTTP client bound to ``server``."""
    with httpx.Client(base_url=server.url, timeout=30) as client:
        yield client
