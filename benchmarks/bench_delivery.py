"""Notification delivery: from ``Dispatcher.submit`` to the webhook body arriving at a real
HTTP receiver on loopback (Alertmanager v4 payload, real threads, real clock).

Prints: the cost of ``submit`` (the caller's side), the latency p50/p99 of notifications
submitted one at a time at a steady rate, and the throughput of a burst over several
channels. Run: ``python benchmarks/bench_delivery.py``.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np

from vigil.alerting.channels import Channel, parse_channel
from vigil.alerting.delivery import Dispatcher
from vigil.alerting.model import AlertView, Notification


def start_receiver() -> tuple[ThreadingHTTPServer, dict[str, int]]:
    arrived: dict[str, int] = {}
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as real receivers do
        wbufsize = 1 << 16  # one write per response: no Nagle / delayed-ACK stall

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            t = time.perf_counter_ns()
            with lock:
                arrived[json.loads(body)["groupKey"]] = t
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    return server, arrived


def notification(channel: str, key: str, alerts: int) -> Notification:
    now = int(time.time() * 1000)
    return Notification(
        channel=channel, group_key=key, status="firing", group_labels={"region": "eu"},
        alerts=tuple(AlertView(
            id=f"{key}-{i}", rule="cpu high", fingerprint=f"{i:016x}", status="firing",
            severity="critical", labels={"hostname": f"h{i}", "region": "eu"},
            annotations={"summary": "cpu above 90"}, starts_ms=now, ends_ms=0, value=95.0)
            for i in range(alerts)),
        severity="critical", created_ms=now)


def wait_for(arrived: dict[str, int], count: int, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while len(arrived) < count:
        if time.monotonic() > deadline:
            raise SystemExit(f"only {len(arrived)} of {count} notifications arrived")
        time.sleep(0.001)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--count", type=int, default=200, help="notifications in the latency run")
    ap.add_argument("--interval-ms", type=float, default=5.0, help="gap between submits")
    ap.add_argument("--alerts", type=int, default=3, help="alerts per notification")
    ap.add_argument("--channels", type=int, default=10, help="channels in the burst run")
    ap.add_argument("--burst", type=int, default=2000, help="notifications in the burst")
    ap.add_argument("--workers", type=int, default=4)
    args = ap.parse_args()

    from vigil.alerting.senders import ChannelSenders

    server, arrived = start_receiver()
    url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    channels: dict[str, Channel] = {
        f"c{i}": parse_channel({"name": f"c{i}", "type": "webhook", "url": url})
        for i in range(args.channels)}
    senders = ChannelSenders(lambda topic, m: None)
    d = Dispatcher(lambda tenant, name: channels.get(name), senders.send,
                   lambda tenant, rec: print("dead letter:", rec.error),
                   workers=args.workers, queue_size=1_000_000)

    # The caller's cost: submit() on a dispatcher that is not running.
    probe = Dispatcher(lambda t, n: None, senders.send, lambda t, r: None,
                       queue_size=1_000_000)
    batch = [notification("c0", f"p{i}", args.alerts) for i in range(100_000)]
    t0 = time.perf_counter_ns()
    for n in batch:
        probe.submit("t", n)
    submit_ns = (time.perf_counter_ns() - t0) / len(batch)

    d.start()
    d.submit("t", notification("c0", "warmup", args.alerts))
    wait_for(arrived, 1)
    sent: dict[str, int] = {}
    for i in range(args.count):
        n = notification("c0", f"l{i}", args.alerts)
        sent[n.group_key] = time.perf_counter_ns()
        d.submit("t", n)
        time.sleep(args.interval_ms / 1000)
    wait_for(arrived, args.count + 1)
    lat_ms = np.array([(arrived[k] - t) / 1e6 for k, t in sent.items()])

    burst = [notification(f"c{i % args.channels}", f"b{i}", args.alerts)
             for i in range(args.burst)]
    t0 = time.perf_counter_ns()
    for n in burst:
        d.submit("t", n)
    wait_for(arrived, args.count + 1 + args.burst)
    burst_s = (time.perf_counter_ns() - t0) / 1e9
    d.close()
    senders.close()
    server.shutdown()

    print(f"submit(): {submit_ns / 1000:.1f} µs per call (caller's side, {len(batch):,} calls)")
    print(f"latency submit -> receiver over {args.count} notifications "
          f"({args.alerts} alerts each, one every {args.interval_ms:g} ms): "
          f"p50 {np.percentile(lat_ms, 50):.2f} ms, p99 {np.percentile(lat_ms, 99):.2f} ms, "
          f"max {lat_ms.max():.2f} ms")
    print(f"burst: {args.burst} notifications over {args.channels} channels, "
          f"{args.workers} workers: {burst_s:.2f} s = {args.burst / burst_s:,.0f}/s")
    print(f"stats: {d.stats()}")


if __name__ == "__main__":
    main()
