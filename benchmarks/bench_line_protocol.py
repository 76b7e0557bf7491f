"""Throughput of the line-protocol parser on TSBS-style cpu data, and on wide bodies.

Run: PYTHONPATH=src .venv/bin/python benchmarks/bench_line_protocol.py [--reps 50] [--slow]

5,000 lines of the TSBS ``cpu`` measurement (100 hosts x 50 timestamps, 8 tags, 10 float fields
with 2 decimals, ns timestamps), parsed ``--reps`` times; prints lines/s and samples/s for the
best and the median repetition. ``--slow`` also times the per-line reference parser.
"wide": 5,000 lines of 5,000 distinct series with one field each (the alerting benchmark's
shape, where per-series work dominates), "cold" with the parser's series caches emptied before
each parse (every series new), "warm" as an agent's next interval finds them.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from collections.abc import Callable

from vigil.core.types import SampleBatch
from vigil.ingest import line_protocol
from vigil.ingest.limits import Limits
from vigil.ingest.line_protocol import parse_line_protocol
from vigil.ingest.line_protocol_slow import parse_line_protocol_slow

FIELDS = [
    "usage_user",
    "usage_system",
    "usage_idle",
    "usage_nice",
    "usage_iowait",
    "usage_irq",
    "usage_softirq",
    "usage_steal",
    "usage_guest",
    "usage_guest_nice",
]
REGIONS = {
    "us-east-1": ["us-east-1a", "us-east-1b", "us-east-1c"],
    "us-west-2": ["us-west-2a", "us-west-2b"],
    "eu-central-1": ["eu-central-1a", "eu-central-1b"],
    "ap-southeast-2": ["ap-southeast-2a", "ap-southeast-2b"],
}


def tsbs_cpu(n_lines: int = 5000, n_hosts: int = 100, seed: int = 1) -> bytes:
    rnd = random.Random(seed)
    hosts = []
    for h in range(n_hosts):
        region = rnd.choice(list(REGIONS))
        hosts.append(
            f"cpu,hostname=host_{h},region={region},datacenter={rnd.choice(REGIONS[region])},"
            f"rack={rnd.randrange(100)},os=Ubuntu{rnd.choice(['15.10', '16.04LTS', '16.10'])},"
            f"arch={rnd.choice(['x64', 'x86'])},team={rnd.choice(['SF', 'NYC', 'LON', 'CHI'])},"
            f"service={rnd.randrange(20)}"
        )
    t0 = 1_700_000_000_000_000_000
    lines = []
    for i in range(n_lines):
        fields = ",".join(f"{f}={rnd.uniform(0, 100):.2f}" for f in FIELDS)
        lines.append(f"{hosts[i % n_hosts]} {fields} {t0 + (i // n_hosts) * 10_000_000_000}")
    return ("\n".join(lines) + "\n").encode()


def wide(n_lines: int = 5000) -> bytes:
    lines = [f"bench,host=h{i:05d},shard=s{i // 10},dc=dc{i % 4} value={i % 80}.5 "
             f"{1_700_000_000_000_000_000}" for i in range(n_lines)]
    return ("\n".join(lines) + "\n").encode()


def bench(name: str, parse: Callable[[], SampleBatch], reps: int, n_lines: int,
          before: Callable[[], None] = lambda: None) -> None:
    n_samples = len(parse())  # also warms up
    times = []
    for _ in range(reps):
        before()
        t = time.perf_counter()
        parse()
        times.append(time.perf_counter() - t)
    for label, dt in (("best", min(times)), ("median", statistics.median(times))):
        print(
            f"{name:5s} {label:6s} {dt * 1e3:8.2f} ms  {n_lines / dt:12,.0f} lines/s  "
            f"{n_samples / dt:12,.0f} samples/s"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=50)
    ap.add_argument("--lines", type=int, default=5000)
    ap.add_argument("--slow", action="store_true", help="also time the per-line parser")
    args = ap.parse_args()
    body = tsbs_cpu(args.lines)
    limits = Limits()
    print(f"{args.lines} lines, {len(body) / 1e6:.2f} MB, {args.lines * len(FIELDS)} samples")
    bench(
        "fast",
        lambda: parse_line_protocol(body, "ns", limits=limits, now_ms=0),
        args.reps,
        args.lines,
    )
    body_w = wide(args.lines)

    def cold() -> None:  # private caches: emptied so that every series is new
        line_protocol._key_cache.clear()
        line_protocol._meta_cache.clear()

    print(f"wide: {args.lines} lines, {args.lines} distinct series, one field each")
    for name, before in (("cold", cold), ("warm", lambda: None)):
        bench(name, lambda: parse_line_protocol(body_w, "ns", limits=limits, now_ms=0),
              args.reps, args.lines, before)
    if args.slow:
        bench(
            "slow",
            lambda: parse_line_protocol_slow(body, "ns", limits=limits, now_ms=0),
            max(3, args.reps // 10),
            args.lines,
        )


if __name__ == "__main__":
    main()
