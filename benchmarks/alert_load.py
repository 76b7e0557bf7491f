"""Load and receiving side of the alerting benchmark (benchmarks/bench_alerting.py).

* ``Receiver``: a threaded stdlib HTTP server on a loopback port that takes Alertmanager
  v4 webhook payloads and records, per ``host`` label of each firing alert, when it first
  arrived (``time.perf_counter``, the clock the sender uses too).
* ``line_payloads`` / ``timed_payloads``: line-protocol bodies over the benchmark's series
  (metric ``bench_value``, labels ``host=h0000..`` and ``shard=s0000..``, 10 hosts a shard).
* ``PacedLoad``: senders that post prepared bodies on a clock-driven schedule (a target
  rate in samples/s) and count what they achieved.

Only 127.0.0.1 is contacted.
"""

from __future__ import annotations

import http.client
import json
import random
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

HOST = "127.0.0.1"
HOSTS_PER_SHARD = 10


def host(i: int) -> str:
    return f"h{i:04d}"


def shard(i: int) -> str:
    return f"s{i // HOSTS_PER_SHARD:04d}"


def line(i: int, value: float, ts_ms: int | None = None) -> str:
    tail = f" {ts_ms}" if ts_ms is not None else ""
    return f"bench,host={host(i)},shard={shard(i)} value={value:.2f}{tail}\n"


# ---------------------------------------------------------------- webhook receiver
class Receiver:
    """Records the first arrival of each firing alert's ``host`` label."""

    def __init__(self) -> None:
        self.arrivals: dict[str, float] = {}  # host -> perf_counter at first arrival
        self.payloads = 0
        self.firing_alerts = 0
        self.resolved_alerts = 0
        self.bad: list[str] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                at = time.perf_counter()
                receiver.record(body, at)
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer((HOST, 0), Handler)
        self.server.daemon_threads = True
        self.port = int(self.server.server_address[1])
        self.thread = threading.Thread(target=self.server.serve_forever, name="receiver",
                                       daemon=True)

    def record(self, body: bytes, at: float) -> None:
        try:
            doc = json.loads(body)
            alerts = doc["alerts"]
            if doc.get("version") != "4":
                raise ValueError(f"version {doc.get('version')!r}")
        except (ValueError, KeyError, TypeError) as e:
            with self.lock:
                self.bad.append(f"{e!r}: {body[:200]!r}")
            return
        with self.lock:
            self.payloads += 1
            for a in alerts:
                if a.get("status") != "firing":
                    self.resolved_alerts += 1
                    continue
                self.firing_alerts += 1
                h = a.get("labels", {}).get("host")
                if h is not None and h not in self.arrivals:
                    self.arrivals[h] = at

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# ---------------------------------------------------------------- payloads
def line_payloads(series: int, lines_per_req: int, variants: int, seed: int = 1
                  ) -> list[bytes]:
    """Bodies without timestamps (the server stamps them) covering all series once per
    ``series / lines_per_req`` bodies, in ``variants`` sets of random values in [0, 80)."""
    rnd = random.Random(seed)
    out: list[bytes] = []
    for _ in range(variants):
        for start in range(0, series, lines_per_req):
            end = min(series, start + lines_per_req)
            out.append("".join(line(i, rnd.uniform(0, 80)) for i in range(start, end)).encode())
    return out


def timed_payloads(series: int, lines_per_req: int, samples: int, end_ms: int,
                   seed: int = 2) -> list[bytes]:
    """Bodies with ms timestamps: round r stamps every series at a distinct second, the
    last round ending at ``end_ms``; ``samples`` in all (whole bodies)."""
    rnd = random.Random(seed)
    rounds = max(1, -(-samples // series))
    out: list[bytes] = []
    for r in range(rounds):
        ts = end_ms - (rounds - r) * 1000
        for start in range(0, series, lines_per_req):
            end = min(series, start + lines_per_req)
            out.append("".join(line(i, rnd.uniform(0, 80), ts)
                               for i in range(start, end)).encode())
            if len(out) * lines_per_req >= samples:
                return out
    return out


# ---------------------------------------------------------------- paced load
class PacedLoad:
    """``senders`` threads post ``payloads`` round-robin so that together they send
    ``rate`` samples/s: body k of the run is due at ``t0 + k * lines / rate``. A sender
    that falls behind sends at once (no sleeping) until it is back on schedule."""

    def __init__(self, port: int, payloads: list[bytes], lines_per_req: int, rate: float,
                 senders: int = 2, path: str = "/write") -> None:
        self.port, self.payloads, self.path = port, payloads, path
        self.interval = lines_per_req / rate  # seconds between bodies, all senders
        self.lines = lines_per_req
        self.senders = senders
        self.stop_evt = threading.Event()
        self.sent = [0] * senders
        self.late = [0] * senders  # bodies sent more than one interval after due
        self.errors: list[str] = []
        self.threads = [threading.Thread(target=self._run, args=(s,), name=f"load-{s}",
                                         daemon=True) for s in range(senders)]
        self.t0 = self.t1 = 0.0

    def start(self) -> None:
        self.t0 = time.perf_counter() + 0.05
        for t in self.threads:
            t.start()

    def stop(self) -> None:
        self.stop_evt.set()
        for t in self.threads:
            t.join(60)
        self.t1 = time.perf_counter()

    def _run(self, s: int) -> None:
        conn = http.client.HTTPConnection(HOST, self.port, timeout=60)
        k = s
        try:
            while not self.stop_evt.is_set():
                due = self.t0 + k * self.interval
                wait = due - time.perf_counter()
                if wait > 0:
                    if self.stop_evt.wait(wait):
                        break
                elif -wait > self.interval:
                    self.late[s] += 1
                body = self.payloads[k % len(self.payloads)]
                conn.request("POST", self.path, body=body)
                r = conn.getresponse()
                data = r.read()
                if r.status not in (200, 204):
                    self.errors.append(f"HTTP {r.status}: {data[:200]!r}")
                    break
                self.sent[s] += 1
                k += self.senders
        except Exception as e:
            self.errors.append(repr(e))
        finally:
            conn.close()

    def result(self) -> dict[str, Any]:
        wall = (self.t1 or time.perf_counter()) - self.t0
        samples = sum(self.sent) * self.lines
        return {"target_samples_per_s": round(self.lines / self.interval),
                "achieved_samples_per_s": round(samples / wall) if wall > 0 else 0,
                "samples": samples, "bodies": sum(self.sent), "wall_s": round(wall, 2),
                "late_bodies": sum(self.late), "errors": self.errors[:3]}
