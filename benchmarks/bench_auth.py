"""What authentication adds to a request, and requests/s of small ingest batches over HTTP
in open mode, with a JWT and with an API key.

Run: PYTHONPATH=src .venv/bin/python benchmarks/bench_auth.py [--n 3000] [--requests 2000]

Part 1 times ``Authenticator.authenticate`` alone (no HTTP): an HS256 token, an API key
from the 10 s cache, and the uncached check (DuckDB lookup, sha256, constant-time
compare). Part 2 starts the real server on a loopback port three times and sends
``--requests`` sequential ``POST /api/v1/metrics`` of one sample each over one keep-alive
connection; prints requests/s (median of 3 rounds).
"""

from __future__ import annotations

import argparse
import socket
import statistics
import tempfile
import threading
import time
from pathlib import Path

import httpx
import uvicorn

from vigil import config
from vigil.api.server import create_app
from vigil.app import build
from vigil.security import apikeys, tokens

SECRET = "bench-secret-0123456789abcdef0123456789"


def _per_call_us(fn: object, n: int) -> float:
    assert callable(fn)
    fn()
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t0) / n * 1e6


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _http_rps(mode: str, n_requests: int) -> float:
    data = Path(tempfile.mkdtemp())
    extra = {"jwt_secret": SECRET} if mode != "open" else {}
    settings = config.load(env={}, overrides={"data_dir": str(data), **extra,
                                              "rate_ingest_per_s": 0})
    c = build(settings, start_maintenance=False)
    headers: dict[str, str] = {}
    if mode == "jwt":
        headers["Authorization"] = "Bearer " + tokens.issue(
            SECRET, subject="bench", tenant="t", role="editor", ttl_s=3600)
    elif mode == "key":
        key = apikeys.create(c.security, tenant="t", name="bench", role="editor",
                             now_ms=int(time.time() * 1000))
        headers["X-API-Key"] = key.secret
    port = _port()
    server = uvicorn.Server(uvicorn.Config(create_app(c, close_on_shutdown=False),
                                           host="127.0.0.1", port=port, log_config=None,
                                           access_log=False))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    body = b'{"samples": [{"name": "bench", "value": 1}]}'
    rounds = []
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}",
                          headers={**headers, "Content-Type": "application/json"}) as h:
            for _ in range(3):
                t0 = time.perf_counter()
                for _ in range(n_requests):
                    r = h.post("/api/v1/metrics", content=body)
                    assert r.status_code == 204, r.text
                rounds.append(n_requests / (time.perf_counter() - t0))
    finally:
        server.should_exit = True
        thread.join(10)
        c.close()
    return statistics.median(rounds)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=3000)
    ap.add_argument("--requests", type=int, default=2000)
    args = ap.parse_args()
    data = Path(tempfile.mkdtemp())
    c = build(config.load(env={}, overrides={"data_dir": str(data), "jwt_secret": SECRET}),
              start_maintenance=False)
    try:
        token = tokens.issue(SECRET, subject="bench", tenant="t", role="editor", ttl_s=3600)
        key = apikeys.create(c.security, tenant="t", name="bench", role="editor",
                             now_ms=int(time.time() * 1000)).secret
        jwt_us = _per_call_us(lambda: c.auth.authenticate(f"Bearer {token}"), args.n)
        key_us = _per_call_us(lambda: c.auth.authenticate(None, key), args.n)
        now = int(time.time() * 1000)
        lookup_us = _per_call_us(lambda: apikeys.verify(c.security, key, now), args.n // 10)
    finally:
        c.close()
    print(f"authenticate: HS256 token {jwt_us:.0f} us/call, API key {key_us:.0f} us/call "
          f"(cached), {lookup_us:.0f} us/call (store lookup, once per key per 10 s)")
    for mode in ("open", "jwt", "key"):
        print(f"POST /api/v1/metrics, 1 sample, sequential, {mode:>4}: "
              f"{_http_rps(mode, args.requests):,.0f} requests/s")


if __name__ == "__main__":
    main()
