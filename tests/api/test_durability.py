"""kill -9 during sustained ingestion loses no acknowledged sample, and no batch is
stored in part."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

from tests.conftest import free_port

BATCH = 1000  # samples per request, one per millisecond of a distinct second


def start(data_dir: Path, port: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "VIGIL_LOG_LEVEL": "warning"}
    with open(data_dir / "server.log", "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "vigil", "serve", "--port", str(port), "--data-dir",
             str(data_dir)], env=env, stdout=log, stderr=log)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return proc
        except httpx.TransportError:
            time.sleep(0.1)
    proc.kill()
    proc.wait()
    raise RuntimeError(f"server did not start: {(data_dir / 'server.log').read_text()}")


def test_kill_9_loses_no_acknowledged_sample(tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    base_s = int(time.time()) - 3000  # inside raw retention, away from "now"
    acked: dict[int, set[int]] = {0: set(), 1: set()}
    stop = threading.Event()

    def sender(k: int) -> None:
        with httpx.Client(base_url=url, timeout=10) as http:
            for i in range(1000):
                if stop.is_set():
                    return
                t0 = (base_s + i) * 1000
                body = "\n".join(f"dur,sender={k} v={j} {t0 + j}" for j in range(BATCH))
                try:
                    r = http.post("/write", params={"precision": "ms"}, content=body.encode())
                except httpx.TransportError:
                    return  # the server died under us: this batch was never acknowledged
                if r.status_code == 204:
                    acked[k].add(i)

    proc = start(tmp_path, port)
    threads = [threading.Thread(target=sender, args=(k,)) for k in (0, 1)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 60
    while sum(map(len, acked.values())) < 40 and time.monotonic() < deadline:
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)  # mid-load: senders are still posting
    proc.wait(10)
    stop.set()
    for t in threads:
        t.join(30)
    assert sum(map(len, acked.values())) >= 40

    proc = start(tmp_path, port)
    try:
        for k in (0, 1):
            doc = httpx.get(f"{url}/api/v1/query", params={
                "name": "dur_v", "match": f"sender={k}", "fn": "count", "step": "1s",
                "start": base_s, "end": base_s + 1000, "tier": "raw"}).json()
            counts = {(t // 1000) - base_s: n for s in doc["series"] for t, n in s["points"]}
            missing = [i for i in acked[k] if counts.get(i) != BATCH]
            assert not missing, f"acknowledged batches lost or partial: {missing[:5]}"
            assert all(n == BATCH for n in counts.values()), "a batch was stored in part"
    finally:
        proc.terminate()
        proc.wait(30)


def test_sigterm_flushes_and_exits_cleanly(tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    base_s = int(time.time()) - 3000
    proc = start(tmp_path, port)
    body = "\n".join(f"g v={j} {base_s * 1000 + j}" for j in range(BATCH))
    with httpx.Client(base_url=url, timeout=10) as http:
        for _ in range(5):
            assert http.post("/write", params={"precision": "ms"},
                             content=body.encode()).status_code == 204
    proc.send_signal(signal.SIGTERM)
    # uvicorn shuts down gracefully, then re-raises the signal so the status tells why.
    assert proc.wait(30) in (0, -signal.SIGTERM)
    wal = tmp_path / "vigil.duckdb.wal"
    assert not wal.exists() or wal.stat().st_size == 0  # checkpointed on the way out
    assert "Traceback" not in (tmp_path / "server.log").read_text()
    proc = start(tmp_path, port)
    try:
        doc = httpx.get(f"{url}/api/v1/query", params={
            "name": "g_v", "fn": "count", "group_by": "", "step": "1h",
            "start": base_s - 3600, "end": base_s + 3600}).json()
        assert sum(p[1] for s in doc["series"] for p in s["points"]) == 5 * BATCH
    finally:
        proc.terminate()
        proc.wait(30)
