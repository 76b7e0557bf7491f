#!/usr/bin/env python3
"""WebSocket fan-out benchmark: N live clients while ingestion runs.

Phase 1 (fan-out), for each N of ``--clients``: a real ``vigil serve`` (own data dir in
``--work``, free loopback port) takes a paced line-protocol load of ``--rate`` samples/s
over ``--series`` series (metric ``bench_value``, labels ``host=h0000..``,
``shard=s0000..``, 10 hosts a shard; the server stamps the samples). N clients, spread
over ``--procs`` processes (benchmarks/ws_clients.py, one connection each), subscribe to
``bench_value{shard=s<i mod selectors>}`` with ``updateFrequency`` ``--every`` (1 s).
After a warm-up, ``--window`` seconds are measured: messages delivered per second, the
delay from the newest point's timestamp (the server's clock when it parsed the sample, just before
the commit) to the client's receipt — p50/p99/max, server CPU (cores) and RSS, the
clients' CPU, and the paced load achieved.

Phase 2 (ingest throughput), ``--reps`` times each, alternating: a fresh server takes
``--throughput-samples`` timestamped samples as fast as 2 keep-alive senders push them
(5,000 lines a body, as the TSBS ingest figure), first without clients, then with N
clients subscribed and receiving. The ratio of the medians is the figure.

Usage (from the repository root)::

    .venv/bin/python benchmarks/bench_ws.py                     # N = 1,000 and 10,000
    .venv/bin/python benchmarks/bench_ws.py --quick             # N = 200, short runs
    .venv/bin/python benchmarks/bench_ws.py --every 60          # clients updated once a minute

Only 127.0.0.1 is contacted; only processes this script started are signalled, by PID.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from typing import Any

import numpy as np

from alert_load import PacedLoad, line_payloads, timed_payloads
from alert_report import metrics
from bench_alerting import Server, pct, run_benchmark
from tsbs_common import REPO, import_run_bench, log, rb

DEFAULT_SHARED = os.path.normpath(os.path.join(REPO, "..", "shared", "bench"))
LINES = 5000
CLIENTS_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "ws_clients.py")


class Clients:
    """``n`` subscribed clients in ``procs`` child processes."""

    def __init__(self, port: int, n: int, procs: int, selectors: int, every: float,
                 extra: tuple[str, ...] = ()) -> None:
        self.procs: list[subprocess.Popen[str]] = []
        per = [n // procs + (1 if k < n % procs else 0) for k in range(procs)]
        offset = 0
        for k in per:
            if k:
                self.procs.append(subprocess.Popen(
                    [sys.executable, CLIENTS_SCRIPT, "--port", str(port), "--clients", str(k),
                     "--offset", str(offset), "--selectors", str(selectors),
                     "--every", str(every), *extra],
                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True))
            offset += k
        self.connected = 0

    def wait_ready(self, timeout_s: float) -> float:
        t0 = time.perf_counter()
        for p in self.procs:
            assert p.stdout is not None
            line = p.stdout.readline().strip()  # READY <n>
            if not line.startswith("READY"):
                raise RuntimeError(f"clients failed: {line!r} (exit {p.poll()})")
            self.connected += int(line.split()[1])
            if time.perf_counter() - t0 > timeout_s:
                raise RuntimeError("clients took too long to connect")
        return time.perf_counter() - t0

    def tell(self, word: str) -> None:
        for p in self.procs:
            assert p.stdin is not None
            p.stdin.write(word + "\n")
            p.stdin.flush()

    def results(self) -> list[dict[str, Any]]:
        self.tell("STOP")
        out = []
        for p in self.procs:
            assert p.stdout is not None
            out.append(json.loads(p.stdout.readline()))
            p.wait(30)
        return out

    def kill(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait(10)


def fanout_pids(srv: Server) -> list[int]:
    """The server's child processes: its fan-out process, once a client connected."""
    try:
        with open(f"/proc/{srv.pid}/task/{srv.pid}/children") as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


def fanout_cpu_s(srv: Server) -> float:
    return sum(float(rb.proc_cpu_s(p) or 0.0) for p in fanout_pids(srv))


def fanout_mem(srv: Server) -> dict[str, float]:
    out: dict[str, float] = {}
    for p in fanout_pids(srv):
        for k, v in (rb.proc_status(p) or {}).items():
            out[k] = round(out.get(k, 0.0) + v / 2**20, 1)
    return out


def fanout(a: argparse.Namespace, env: dict[str, str], n: int) -> dict[str, Any]:
    srv = Server(a.work, f"vigil-ws-{n}", env)
    clients: Clients | None = None
    load: PacedLoad | None = None
    out: dict[str, Any] = {"clients": n}
    try:
        payloads = line_payloads(a.series, LINES, variants=4)
        rb.send_all(srv.port, "/write", payloads)  # untimed: every series created first
        load = PacedLoad(srv.port, payloads, LINES, a.rate)
        load.start()
        clients = Clients(srv.port, n, a.procs, a.selectors, a.every)
        out["connect_s"] = round(clients.wait_ready(600), 1)
        out["connected"] = clients.connected
        log(f"[fanout {n}] {clients.connected} clients subscribed in {out['connect_s']} s; "
            f"warm-up {a.warmup} s")
        time.sleep(a.warmup)
        m0 = metrics(srv.port)
        sent0, cpu0, t0 = sum(load.sent), srv.cpu_s(), time.perf_counter()
        fcpu0 = fanout_cpu_s(srv)
        clients.tell("START")
        time.sleep(a.window)
        got = clients.results()
        wall = time.perf_counter() - t0
        cpu1, sent1, fcpu1 = srv.cpu_s(), sum(load.sent), fanout_cpu_s(srv)
        m1 = metrics(srv.port)
        delays = np.concatenate([np.asarray(g["delays_ms"]) for g in got])
        msgs = sum(g["messages"] for g in got)
        out.update(
            window_s=round(wall, 2),
            messages_per_s=round(msgs / wall),
            updates=sum(g["updates"] for g in got),
            coalesced=sum(g["coalesced"] for g in got),
            points_per_s=round(sum(g["points"] for g in got) / wall),
            mbytes_per_s=round(sum(g["bytes"] for g in got) / wall / 2**20, 1),
            delay_ms={"p50": pct(list(delays), 50), "p99": pct(list(delays), 99),
                      "max": round(float(delays.max()), 1) if len(delays) else None},
            closed={k: v for g in got for k, v in g["closed"].items()},
            server_cpu_cores=round((cpu1 - cpu0) / wall, 2),
            fanout_cpu_cores=round((fcpu1 - fcpu0) / wall, 2),
            client_cpu_cores=round(sum(g["cpu_s"] for g in got) / wall, 2),
            server_mem_mib=srv.mem(),
            fanout_mem_mib=fanout_mem(srv),
            ingest_samples_per_s=round((sent1 - sent0) * LINES / wall),
            stream={k.removeprefix("vigil_stream_"): m1.get(k, 0) - (m0.get(k, 0)
                    if k.endswith("_total") else 0)
                    for k in m1 if k.startswith("vigil_stream_")})
        load.stop()
        out["load"] = load.result()
        log(f"[fanout {n}] {out['messages_per_s']:,} msg/s, delay ms {out['delay_ms']}, "
            f"server {out['server_cpu_cores']} cores {out['server_mem_mib']} MiB, fan-out "
            f"{out['fanout_cpu_cores']} cores {out['fanout_mem_mib']} MiB, clients "
            f"{out['client_cpu_cores']} cores, ingest {out['ingest_samples_per_s']:,}/s")
    finally:
        if load is not None:
            load.stop()
        if clients is not None:
            clients.kill()
        srv.stop()
    return out


def throughput(a: argparse.Namespace, env: dict[str, str], n: int,
               payloads: list[bytes]) -> dict[str, Any]:
    srv = Server(a.work, f"vigil-tp-{n}", env)
    clients: Clients | None = None
    out: dict[str, Any] = {"clients": n}
    try:
        warm = payloads[: max(2, len(payloads) // 20)]
        rb.send_all(srv.port, "/write?precision=ms", warm)  # untimed: series known
        if n:
            clients = Clients(srv.port, n, a.procs, a.selectors, a.every, ("--count-only",))
            clients.wait_ready(600)
            clients.tell("START")
        cpu0, fcpu0 = srv.cpu_s(), fanout_cpu_s(srv)
        timed = payloads[len(warm):]
        wall = float(rb.send_all(srv.port, "/write?precision=ms", timed))
        cpu1, fcpu1 = srv.cpu_s(), fanout_cpu_s(srv)
        samples = sum(b.count(b"\n") for b in timed)
        out.update(samples=samples, wall_s=round(wall, 3), samples_per_s=round(samples / wall),
                   server_cpu_cores=round((cpu1 - cpu0) / wall, 2), server_mem_mib=srv.mem(),
                   fanout_cpu_cores=round((fcpu1 - fcpu0) / wall, 2))
        if clients is not None:
            got = clients.results()
            out["messages"] = sum(g["messages"] for g in got)
            out["client_cpu_cores"] = round(sum(g["cpu_s"] for g in got) / wall, 2)
        log(f"[ingest, {n} clients] {out['samples_per_s']:,} samples/s "
            f"(server {out['server_cpu_cores']} cores)")
    finally:
        if clients is not None:
            clients.kill()
        srv.stop()
    return out


def markdown(res: dict[str, Any]) -> str:
    lines = ["| clients | msg/s delivered | delay p50 / p99 / max ms | CPU cores: server + "
             "fan-out | RSS MiB: server + fan-out | client CPU cores | paced ingest samples/s |",
             "| ---: | ---: | --- | ---: | ---: | ---: | ---: |"]
    for f in res.get("fanout", []):
        d, mem, fmem = f["delay_ms"], f["server_mem_mib"], f["fanout_mem_mib"]
        lines.append(f"| {f['connected']:,} | {f['messages_per_s']:,} | {d['p50']} / {d['p99']} "
                     f"/ {d['max']} | {f['server_cpu_cores']} + {f['fanout_cpu_cores']} | "
                     f"{mem.get('VmRSS')} + {fmem.get('VmRSS')} | {f['client_cpu_cores']} | "
                     f"{f['ingest_samples_per_s']:,} |")
    for n, r in res.get("ratios", {}).items():
        lines.append(f"\ningest with {n} clients / without: {r['ratio']} "
                     f"({r['with']:,} / {r['without']:,} samples/s, medians of "
                     f"{res['params']['reps']})")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smoke run: 200 clients, short")
    ap.add_argument("--clients", default="1000,10000", help="comma-separated N")
    ap.add_argument("--procs", type=int, default=2, help="client processes")
    ap.add_argument("--selectors", type=int, default=100,
                    help="distinct selectors (one shard = 10 series each)")
    ap.add_argument("--every", type=float, default=1.0, help="clients' updateFrequency, s")
    ap.add_argument("--series", type=int, default=10_000)
    ap.add_argument("--rate", type=float, default=100_000, help="paced samples/s in phase 1")
    ap.add_argument("--warmup", type=float, default=5.0)
    ap.add_argument("--window", type=float, default=20.0)
    ap.add_argument("--throughput-samples", type=int, default=3_000_000)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--skip-fanout", action="store_true")
    ap.add_argument("--skip-throughput", action="store_true")
    ap.add_argument("--shared", default=DEFAULT_SHARED, help="peer benchmark dir (run_bench.py)")
    ap.add_argument("--work", default="/tmp/wsbench")
    ap.add_argument("--out", help="result JSON (default <work>/result-<time>.json)")
    ap.add_argument("--vigil-env", action="append", default=[], metavar="VIGIL_X=V")
    ap.add_argument("--max-minutes", type=float, default=40.0)
    a = ap.parse_args()
    if a.quick:
        a.clients, a.warmup, a.window, a.throughput_samples, a.reps = "200", 2.0, 5.0, 500_000, 1
    counts = [int(x) for x in a.clients.split(",")]
    import_run_bench(os.path.abspath(a.shared))
    os.makedirs(a.work, exist_ok=True)
    env = dict(kv.split("=", 1) for kv in a.vigil_env)
    env.setdefault("VIGIL_RETENTION_RAW", "0")  # timed payloads lie in the recent past

    def body(res: dict[str, Any]) -> None:
        if not a.skip_fanout:
            res["fanout"] = [fanout(a, env, n) for n in counts]
        if not a.skip_throughput:
            end_ms = int(time.time() * 1000) - 60_000
            payloads = timed_payloads(a.series, LINES, a.throughput_samples, end_ms)
            runs: dict[int, list[dict[str, Any]]] = {n: [] for n in [0, *counts]}
            res["throughput_runs"] = runs
            for _ in range(a.reps):  # alternating, so drifting machine load hits all
                for n in runs:
                    runs[n].append(throughput(a, env, n, payloads))
            med = {n: float(np.median([r["samples_per_s"] for r in rs])) for n, rs in runs.items()}
            res["ratios"] = {n: {"with": round(med[n]), "without": round(med[0]),
                                 "ratio": round(med[n] / med[0], 3)} for n in counts}

    return run_benchmark(a, "bench_ws.py", body, markdown)


if __name__ == "__main__":
    sys.exit(main())
