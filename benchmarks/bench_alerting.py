#!/usr/bin/env python3
"""Alerting benchmark: notification latency under ingest load, and ingest with rules.

Phase 1 (latency): a real ``vigil serve`` (own data dir in ``--work``, free loopback
port) gets one webhook channel pointing at a real HTTP receiver in this process and
``--rules`` threshold rules over ``--rules * 10`` series: metric ``bench_value``, labels
``host=h0000..`` and ``shard=s0000..``; rule i matches ``shard=s<i>`` (an equality: 10
series a rule), ``value > 90``, ``for_s: 0``, ``group_by: ["host"]`` (every alert is a
group of its own, and ``group_wait_s`` is 0, so its notification goes out at once).
Two senders then post 5,000-line bodies of values below 90 at ``--rate`` samples/s, paced
by the clock; after a warm-up, ``--alerts`` breaching samples (``value=99``, each for
another series, one POST each, ``--spacing-ms`` apart) are timed from just before the POST
to the webhook's arrival at the receiver.

Phase 2 (ingest throughput): a fresh server without rules, then a fresh one with the same
rules, each takes ``--throughput-samples`` samples (5,000-line bodies with timestamps,
values below 90) as fast as 2 keep-alive senders can push them (as the TSBS ingest figure);
samples/s of both and the ratio.

Server CPU (utime+stime from /proc) and RSS are recorded per phase; a markdown block
for docs/benchmarks.md is printed and a JSON result written.

Usage (from the repository root)::

    .venv/bin/python benchmarks/bench_alerting.py            # full
    .venv/bin/python benchmarks/bench_alerting.py --quick    # smoke run
    .venv/bin/python benchmarks/bench_alerting.py --profile  # + py-spy during phase 1

Only 127.0.0.1 is contacted; only processes this script started are signalled, by PID.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import signal
import socket
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from alert_load import PacedLoad, Receiver, host, line, line_payloads, shard, timed_payloads
from alert_report import markdown, metrics, profile_start, profile_stop
from tsbs_common import REPO, import_run_bench, log, rb
from tsbs_vigil import VigilSystem

DEFAULT_SHARED = os.path.normpath(os.path.join(REPO, "..", "shared", "bench"))
LINES = 5000  # lines (= samples: one field a line) per ingest body


class Timeout(Exception):
    pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def api(port: int, method: str, path: str, doc: Any = None) -> Any:
    body = json.dumps(doc).encode() if doc is not None else None
    raw = rb.http_req(port, method, path, body=body,
                      headers={"Content-Type": "application/json"} if body else None,
                      timeout=60)
    return json.loads(raw) if raw else None


def rule_doc(i: int) -> dict[str, Any]:
    return {"name": f"bench {i:04d}", "metric": "bench_value",
            "match": [f"shard={shard(i * 10)}"],
            "condition": {"type": "threshold", "op": ">", "threshold": 90, "for_s": 0},
            "severity": "high", "channels": ["bench"], "group_by": ["host"],
            "group_wait_s": 0}


def load_rules(port: int, rules: int, receiver_port: int) -> float:
    t0 = time.perf_counter()
    api(port, "POST", "/api/v1/channels", {"name": "bench", "type": "webhook",
                                            "url": f"http://127.0.0.1:{receiver_port}/hook"})
    for i in range(rules):
        api(port, "POST", "/api/v1/rules", rule_doc(i))
    return time.perf_counter() - t0


class Server:
    """One ``vigil serve`` (tsbs_vigil.VigilSystem) in ``work/name``, with /proc readings."""

    def __init__(self, work: str, name: str, env: dict[str, str]) -> None:
        self.dir = os.path.join(work, name)
        shutil.rmtree(self.dir, ignore_errors=True)
        os.makedirs(self.dir)
        self.sys = VigilSystem(port=free_port(), name=name, env=env)
        self.sys.install()
        self.pid = self.sys.start(self.dir)
        self.port = self.sys.port

    def cpu_s(self) -> float:
        return float(rb.proc_cpu_s(self.pid) or 0.0)

    def mem(self) -> dict[str, float]:
        st = rb.proc_status(self.pid)
        return {k: round(v / 2**20, 1) for k, v in st.items()}

    def stop(self) -> None:
        self.sys.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def wait_drained(port: int, max_s: float, below: int = 0, evaluated: int = 0
                 ) -> tuple[float, dict[str, float]]:
    """Wait until at least ``evaluated`` batches were evaluated and at most ``below``
    wait for evaluation; (seconds waited, metrics)."""
    t0 = time.perf_counter()
    m = metrics(port)
    while (m.get("vigil_alerting_queue_batches", 0) > below
           or m.get("vigil_alerting_batches_evaluated_total", 0) < evaluated) \
            and time.perf_counter() - t0 < max_s:
        time.sleep(0.2)
        m = metrics(port)
    return round(time.perf_counter() - t0, 2), m


def pct(xs: list[float], q: float) -> float:
    return round(float(np.percentile(np.asarray(xs), q)), 1) if xs else float("nan")


# ---------------------------------------------------------------- phase 1
def latency_phase(a: argparse.Namespace, env: dict[str, str]) -> dict[str, Any]:
    recv = Receiver()
    recv.start()
    srv = Server(a.work, "vigil-latency", env)
    out: dict[str, Any] = {"server_pid": srv.pid}
    prof = None
    try:
        out["rules_load_s"] = round(load_rules(srv.port, a.rules, recv.port), 1)
        log(f"[latency] {a.rules} rules + channel created in {out['rules_load_s']} s")
        load = PacedLoad(srv.port, line_payloads(a.series, LINES, variants=4), LINES, a.rate)
        load.start()
        log(f"[latency] background load {a.rate:,.0f} samples/s; warm-up {a.warmup} s")
        time.sleep(a.warmup)
        # Every series seen once and the evaluator caught up (first sight of a series
        # matches it against every rule of its metric: see the report).
        waited, m = wait_drained(srv.port, a.warmup_max, below=2,
                                 evaluated=2 * a.series // LINES + 2)
        out["warmup"] = {"s": round(a.warmup + waited, 1), "metrics": m}
        log(f"[latency] warm-up {out['warmup']['s']} s; evaluation "
            f"{m.get('vigil_alerting_evaluation_seconds_total', 0):.1f} s over "
            f"{m.get('vigil_alerting_batches_evaluated_total', 0):.0f} batches, queue "
            f"{m.get('vigil_alerting_queue_batches', 0):.0f}")
        cpu0, t0 = srv.cpu_s(), time.perf_counter()
        if a.profile:
            prof = profile_start(srv.pid, a.work, a.profile_seconds, idle=True)
        step = max(1, a.series // a.alerts)
        targets = [(k * step + 7) % a.series for k in range(a.alerts)]
        posted: dict[str, float] = {}
        ack_ms: list[float] = []
        conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=60)
        for i in targets:
            body = line(i, 99.0).encode()
            h = host(i)
            ts = time.perf_counter()
            posted[h] = ts
            conn.request("POST", "/write", body=body)
            r = conn.getresponse()
            r.read()
            ack_ms.append((time.perf_counter() - ts) * 1e3)
            if r.status not in (200, 204):
                raise RuntimeError(f"breach POST: HTTP {r.status}")
            time.sleep(max(0.0, a.spacing_ms / 1e3 - (time.perf_counter() - ts)))
        conn.close()
        deadline = time.perf_counter() + a.grace
        while time.perf_counter() < deadline:
            with recv.lock:
                if all(h in recv.arrivals for h in posted):
                    break
            time.sleep(0.05)
        window = time.perf_counter() - t0
        cpu1 = srv.cpu_s()
        load.stop()
        if prof is not None:
            out["profile"] = profile_stop(prof)
        with recv.lock:
            lat = [(recv.arrivals[h] - t) * 1e3 for h, t in posted.items() if h in recv.arrivals]
            out["receiver"] = {"payloads": recv.payloads, "firing_alerts": recv.firing_alerts,
                               "resolved_alerts": recv.resolved_alerts, "bad": recv.bad[:3]}
        out["load"] = load.result()
        out["alerts_posted"] = len(posted)
        out["alerts_arrived"] = len(lat)
        out["latency_ms"] = {"p50": pct(lat, 50), "p95": pct(lat, 95), "p99": pct(lat, 99),
                             "max": round(max(lat), 1) if lat else None,
                             "min": round(min(lat), 1) if lat else None}
        out["latency_in_order_ms"] = [round((recv.arrivals[h] - t) * 1e3, 1)
                                      if h in recv.arrivals else None
                                      for h, t in posted.items()]
        out["write_ack_ms"] = {"p50": pct(ack_ms, 50), "p99": pct(ack_ms, 99)}
        out["server_cpu_cores"] = round((cpu1 - cpu0) / window, 2)
        out["server_mem_mib"] = srv.mem()
        out["metrics"] = metrics(srv.port)
        log(f"[latency] {len(lat)}/{len(posted)} arrived; ms {out['latency_ms']}; "
            f"load {out['load']}")
    finally:
        srv.stop()
        recv.stop()
    return out


# ---------------------------------------------------------------- phase 2
def throughput(a: argparse.Namespace, env: dict[str, str], with_rules: bool,
               payloads: list[bytes]) -> dict[str, Any]:
    name = "vigil-rules" if with_rules else "vigil-norules"
    recv = Receiver()
    recv.start()
    srv = Server(a.work, name, env)
    out: dict[str, Any] = {"rules": a.rules if with_rules else 0}
    try:
        if with_rules:
            load_rules(srv.port, a.rules, recv.port)
        warm = payloads[: max(2, len(payloads) // 20)]
        rb.send_all(srv.port, "/write?precision=ms", warm)  # untimed: warm-up, series known
        out["warmup_drain_s"], _ = wait_drained(srv.port, a.warmup_max)
        prof = profile_start(srv.pid, a.work, 600) if a.profile else None
        cpu0 = srv.cpu_s()
        timed = payloads[len(warm):]
        wall = float(rb.send_all(srv.port, "/write?precision=ms", timed))
        cpu1 = srv.cpu_s()
        if prof is not None:
            out["profile"] = profile_stop(prof)
        n = sum(b.count(b"\n") for b in timed)
        out.update(samples=n, wall_s=round(wall, 3), samples_per_s=round(n / wall),
                   server_cpu_cores=round((cpu1 - cpu0) / wall, 2))
        # Evaluation catches up after the acknowledgements: its queue drains.
        out["evaluation_drain_s"], m = wait_drained(srv.port, 60)
        out["server_mem_mib"] = srv.mem()
        out["metrics"] = m
        log(f"[{name}] {out['samples_per_s']:,} samples/s ({n:,} in {wall:.2f} s, "
            f"server {out['server_cpu_cores']} cores)")
    finally:
        srv.stop()
        recv.stop()
    return out


def run_benchmark(a: argparse.Namespace, script: str,
                  body: Callable[[dict[str, Any]], None],
                  markdown: Callable[[dict[str, Any]], str]) -> int:
    """Run ``body(result)`` under the ``--max-minutes`` alarm (SIGTERM aborts too), stop
    every process started, write the result JSON to ``--out`` (or ``--work``) and print
    its markdown; exit status 1 if aborted."""

    def on_signal(signum: int, _frame: Any) -> None:
        raise Timeout(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGALRM, on_signal)
    signal.alarm(int(a.max_minutes * 60))
    res: dict[str, Any] = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "command": " ".join([".venv/bin/python", f"benchmarks/{script}", *sys.argv[1:]]),
        "params": {k: v for k, v in vars(a).items() if k not in ("shared", "work", "out")},
        "loadavg_start": os.getloadavg(), "nproc": os.cpu_count(),
    }
    try:
        body(res)
    except Timeout as e:
        log(f"ABORTED: {e}")
        res["aborted"] = str(e)
    finally:
        signal.alarm(0)
        rb.stop_all()
    res["loadavg_end"] = os.getloadavg()
    out = a.out or os.path.join(a.work, f"result-{time.strftime('%Y%m%dT%H%M%S')}.json")
    with open(out, "w") as f:
        json.dump(res, f, indent=1)
    log(f"result: {out}")
    print(markdown(res))
    return 1 if "aborted" in res else 0


# ---------------------------------------------------------------- main
def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true",
                    help="smoke run: 40 alerts, 5 s warm-up, 300,000 samples a throughput run")
    ap.add_argument("--rules", type=int, default=1000)
    ap.add_argument("--rate", type=float, default=100_000, help="background samples/s")
    ap.add_argument("--alerts", type=int, default=200)
    ap.add_argument("--spacing-ms", type=float, default=75.0)
    ap.add_argument("--warmup", type=float, default=10.0, help="seconds of load before timing")
    ap.add_argument("--warmup-max", type=float, default=180.0,
                    help="at most this long waiting for evaluation to catch up after warm-up")
    ap.add_argument("--grace", type=float, default=10.0, help="seconds to wait for stragglers")
    ap.add_argument("--throughput-samples", type=int, default=2_000_000)
    ap.add_argument("--reps", type=int, default=3,
                    help="throughput runs of each side (fresh server each), median shown")
    ap.add_argument("--skip-latency", action="store_true")
    ap.add_argument("--skip-throughput", action="store_true")
    ap.add_argument("--profile", action="store_true",
                    help="py-spy during the timed alerts and the unpaced ingest runs")
    ap.add_argument("--profile-seconds", type=float, default=15.0)
    ap.add_argument("--shared", default=DEFAULT_SHARED, help="peer benchmark dir (run_bench.py)")
    ap.add_argument("--work", default="/tmp/alertbench")
    ap.add_argument("--out", help="result JSON (default <work>/result-<time>.json)")
    ap.add_argument("--vigil-env", action="append", default=[], metavar="VIGIL_X=V")
    ap.add_argument("--max-minutes", type=float, default=20.0)
    a = ap.parse_args()
    if a.quick:
        a.alerts, a.warmup, a.throughput_samples, a.grace, a.reps = 40, 5.0, 300_000, 5.0, 1
    a.series = a.rules * 10
    import_run_bench(os.path.abspath(a.shared))
    sys.setswitchinterval(0.0005)  # the receiver thread must not wait for the GIL long
    os.makedirs(a.work, exist_ok=True)
    env = dict(kv.split("=", 1) for kv in a.vigil_env)
    # The timed payloads' timestamps lie in the recent past; keep them inside retention.
    env.setdefault("VIGIL_RETENTION_RAW", "0")

    def body(res: dict[str, Any]) -> None:
        if not a.skip_latency:
            res["latency"] = latency_phase(a, env)
        if not a.skip_throughput:
            end_ms = int(time.time() * 1000) - 60_000
            payloads = timed_payloads(a.series, LINES, a.throughput_samples, end_ms)
            runs: dict[str, list[dict[str, Any]]] = {"without_rules": [], "with_rules": []}
            res["throughput_runs"] = runs
            for _ in range(a.reps):  # alternating, so drifting machine load hits both
                runs["without_rules"].append(throughput(a, env, False, payloads))
                runs["with_rules"].append(throughput(a, env, True, payloads))
            for k, rs in runs.items():  # the run of median samples/s stands for its side
                res[k] = sorted(rs, key=lambda r: r["samples_per_s"])[len(rs) // 2]
            res["ratio"] = round(res["with_rules"]["samples_per_s"]
                                 / res["without_rules"]["samples_per_s"], 3)

    return run_benchmark(a, "bench_alerting.py", body, markdown)


if __name__ == "__main__":
    sys.exit(main())
