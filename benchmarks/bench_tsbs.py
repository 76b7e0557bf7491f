#!/usr/bin/env python3
"""Vigil on the peer benchmark's TSBS "cpu-only" workload, beside VictoriaMetrics.

Uses the shared peer benchmark (``../shared/bench`` from the repository root): its
dataset generator, and its driver ``run_bench.bench_server``, which measures a system
class (install/version/start/payloads/ingest/count/compact/data_dir/queries/stop) with
the one fixed protocol: 5,000 lines (50,000 samples) per request, 2 concurrent
keep-alive senders, payloads in memory before the clock starts; wait until a count
query sees every sample; compact; disk bytes of the data dir; Q1/Q2/Q3 timed 20 times
after 2 warm-ups; peak RSS = VmHWM of the server. This script adds a ``Vigil`` class
(``vigil serve`` on 127.0.0.1, ``POST /write``, ``GET /api/v1/query``), runs
VictoriaMetrics in the same run for ratios, measures embedded ingest
(``Vigil.record_batch`` of 50,000-sample ``SampleBatch``es, 1 and 2 threads, each in a
child process), optionally profiles the server with py-spy, writes a JSON result and
prints a markdown summary for docs/benchmarks.md.

Usage (from the repository root, with the project's virtualenv)::

    .venv/bin/python benchmarks/bench_tsbs.py                      # full: 100 hosts x 1 day
    .venv/bin/python benchmarks/bench_tsbs.py --hosts 10 --span 3600 --no-peers   # quick
    .venv/bin/python benchmarks/bench_tsbs.py --profile            # + py-spy pass
    .venv/bin/python benchmarks/bench_tsbs.py --peer-cache         # + VictoriaMetrics, caches on
    .venv/bin/python benchmarks/bench_tsbs.py --only-profile --no-embedded
    .venv/bin/python benchmarks/bench_tsbs.py --no-peers --vigil-env VIGIL_ROLLUP_INTERVAL=1h

Options worth knowing: ``--data`` (dataset dir; generated with gen_dataset.py if
missing, default /tmp/tsbench/data-h<hosts>-s<span>), ``--shared`` (the peer benchmark
dir), ``--work`` (scratch dir for data dirs and logs), ``--out`` (result JSON),
``--no-peers``, ``--peer-cache`` (VictoriaMetrics once more with its caches on: the shared
protocol turns them off, so its Q1-Q3 are cold; this gives its figure for repeated
queries), ``--no-embedded``, ``--profile`` (py-spy raw profiles of the server
during HTTP ingest and during a Q2 loop, in a separate, untimed pass),
``--max-minutes`` (hard bound on the whole run; every started process is stopped),
``--vigil-env VIGIL_X=V`` (extra server settings, e.g. ``VIGIL_ROLLUP_INTERVAL=1h`` keeps
background rollups out of the ingest window).

Only 127.0.0.1 is contacted. Only processes this script started are signalled, by PID.
The peer (VictoriaMetrics) is installed from Debian packages with apt-get if missing.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.parse
from typing import Any

from tsbs_common import REPO, import_run_bench, load_json, log, rb
from tsbs_profile import profile_pass
from tsbs_report import check_results, markdown
from tsbs_vigil import VIGIL_PORT, VigilSystem, duckdb_breakdown, embedded_worker, run_embedded

DEFAULT_SHARED = os.path.normpath(os.path.join(REPO, "..", "shared", "bench"))


class Timeout(Exception):
    pass


def cached_victoriametrics() -> Any:
    """VictoriaMetrics as the shared protocol runs it, but with its caches on: the protocol
    starts it with ``-search.disableCache`` and sends ``nocache=1`` with every query."""

    class VictoriaMetricsCached(rb.VictoriaMetrics):
        name = "victoriametrics_cached"

        def start(self, d: str) -> int:
            self.dir = os.path.join(d, "data")
            self.p = rb.start_proc(self.name, [
                "/usr/bin/victoria-metrics", f"-storageDataPath={self.dir}",
                f"-httpListenAddr={rb.HOST}:{self.port}", "-retentionPeriod=100y",
                "-loggerLevel=WARN"], os.path.join(d, "server.log"))
            rb.wait_http(self.port, "/health")
            return int(self.p.pid)

        def prom(self, path: str, **params: Any) -> Any:
            body = urllib.parse.urlencode(params)
            return json.loads(rb.http_req(
                self.port, "POST", path, body=body,
                headers={"Content-Type": "application/x-www-form-urlencoded"}))

    return VictoriaMetricsCached()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hosts", type=int, default=100)
    ap.add_argument("--span", type=int, default=86400, help="seconds of data (default 1 day)")
    ap.add_argument("--data", help="dataset dir (default /tmp/tsbench/data-h<hosts>-s<span>)")
    ap.add_argument("--shared", default=DEFAULT_SHARED, help="peer benchmark dir (run_bench.py)")
    ap.add_argument("--work", default="/tmp/tsbench/work-vigil")
    ap.add_argument("--out", help="result JSON (default /tmp/tsbench/results/"
                    "vigil-h<hosts>-s<span>-<time>.json)")
    ap.add_argument("--md", help="also write the markdown summary here")
    ap.add_argument("--no-peers", action="store_true", help="skip VictoriaMetrics")
    ap.add_argument("--peer-cache", action="store_true",
                    help="also run VictoriaMetrics with its caches on (the shared protocol "
                    "turns them off), for the peer's figure on repeated queries")
    ap.add_argument("--no-embedded", action="store_true", help="skip embedded ingest")
    ap.add_argument("--no-http", action="store_true", help="skip the HTTP server benchmark")
    ap.add_argument("--embedded-threads", default="1,2")
    ap.add_argument("--profile", action="store_true",
                    help="py-spy pass (untimed): server during HTTP ingest and a Q2 loop")
    ap.add_argument("--only-profile", action="store_true", help="just the py-spy pass")
    ap.add_argument("--profile-seconds", type=float, default=20.0)
    ap.add_argument("--profile-rate", type=int, default=100)
    ap.add_argument("--keep-data", action="store_true")
    ap.add_argument("--max-minutes", type=float, default=45.0,
                    help="hard bound on the whole run (default 45)")
    ap.add_argument("--port", type=int, default=VIGIL_PORT)
    ap.add_argument("--vigil-env", action="append", default=[], metavar="VIGIL_X=V",
                    help="extra environment for the Vigil server and embedded runs, e.g. "
                    "VIGIL_ROLLUP_INTERVAL=1h to keep rollups out of the ingest window")
    ap.add_argument("--embedded-worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    a = ap.parse_args()
    a.shared = os.path.abspath(a.shared)
    import_run_bench(a.shared)
    if a.embedded_worker:
        return embedded_worker(a)

    a.data = a.data or f"/tmp/tsbench/data-h{a.hosts}-s{a.span}"
    vigil_env = dict(kv.split("=", 1) for kv in a.vigil_env)
    result_env = {"vigil_env": vigil_env} if vigil_env else {}
    stamp = time.strftime("%Y%m%dT%H%M%S")
    a.out = a.out or f"/tmp/tsbench/results/vigil-h{a.hosts}-s{a.span}-{stamp}.json"
    os.makedirs(a.work, exist_ok=True)
    deadline = time.time() + a.max_minutes * 60

    def on_signal(signum: int, _frame: Any) -> None:
        raise Timeout(f"signal {signum}" if signum != signal.SIGALRM
                      else f"--max-minutes {a.max_minutes} exceeded")

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGALRM, on_signal)
    signal.alarm(int(a.max_minutes * 60))

    if not os.path.isfile(os.path.join(a.data, "manifest.json")):
        log(f"generating dataset in {a.data}")
        subprocess.run(["timeout", "1500", sys.executable,
                        os.path.join(a.shared, "gen_dataset.py"), "--hosts", str(a.hosts),
                        "--span", str(a.span), "--out", a.data], check=True)
    m = load_json(os.path.join(a.data, "manifest.json"))
    if "lp" not in m["files"]:
        sys.exit(f"{a.data} has no line-protocol file (gen_dataset.py --formats lp,csv)")

    result: dict[str, Any] = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "dataset": m,
        "command": " ".join([os.path.relpath(sys.executable, REPO)
                             if sys.executable.startswith(REPO) else sys.executable,
                             os.path.relpath(os.path.abspath(__file__), REPO), *sys.argv[1:]]),
        "protocol": {"lines_per_request": rb.LINES_PER_REQ,
                     "samples_per_request": rb.LINES_PER_REQ * len(m["fields"]),
                     "senders": rb.SENDERS, "warmup": rb.WARMUP, "reps": rb.REPS,
                     "query_windows": rb.query_windows(m), "query_host": rb.QUERY_HOST,
                     "run_bench": os.path.join(a.shared, "run_bench.py")},
        "machine": {"nproc": os.cpu_count(), "python": sys.version.split()[0],
                    "loadavg_start": os.getloadavg()},
        "systems": {},
        **result_env,
    }
    try:
        systems: list[Any] = []
        if not a.no_http and not a.only_profile:
            systems.append(VigilSystem(port=a.port, env=vigil_env))
            if not a.no_peers:
                systems.append(rb.VictoriaMetrics())
                if a.peer_cache:
                    systems.append(cached_victoriametrics())
        for sysobj in systems:
            log(f"===== {sysobj.name}")
            try:
                r = rb.bench_server(sysobj, m, a.work, a.data)
            except Timeout:
                raise
            except Exception as e:
                log(f"[{sysobj.name}] FAILED: {e!r}")
                r = {"system": sysobj.name, "error": repr(e)}
            if "load_wall_s" in r:
                r["ingest_samples_per_s"] = round(m["samples"] / r["load_wall_s"])
                r["ingest_samples_per_s_until_queryable"] = round(
                    m["samples"] / r["queryable_wall_s"])
            if "disk_bytes" in r:
                r["bytes_per_sample"] = round(r["disk_bytes"] / m["samples"], 4)
            if isinstance(sysobj, VigilSystem):
                r["vigil_extra"] = sysobj.extra
                d = getattr(sysobj, "dir", None)
                if d and os.path.isdir(d) and "error" not in r:
                    r["disk_bytes_after_shutdown"] = rb.dir_bytes(d)[0]
                    r["bytes_per_sample_after_shutdown"] = round(
                        r["disk_bytes_after_shutdown"] / m["samples"], 4)
                    try:
                        r["storage"] = duckdb_breakdown(d)
                    except Exception as e:
                        r["storage"] = {"error": repr(e)}
            result["systems"][sysobj.name] = r
            if not a.keep_data:
                shutil.rmtree(os.path.join(a.work, sysobj.name, "data"), ignore_errors=True)
        if "vigil" in result["systems"]:
            result["result_check"] = check_results(
                result["systems"]["vigil"], result["systems"].get("victoriametrics"), m)
        if not a.no_embedded and not a.only_profile:
            result["embedded"] = {}
            for th in (int(x) for x in a.embedded_threads.split(",") if x):
                left = deadline - time.time() - 60
                try:
                    result["embedded"][f"{th}t"] = run_embedded(a, th, max(left, 60))
                except Timeout:
                    raise
                except Exception as e:
                    log(f"[embedded {th}t] FAILED: {e!r}")
                    result["embedded"][f"{th}t"] = {"threads": th, "error": repr(e)}
        if a.profile or a.only_profile:
            try:
                result["profile"] = profile_pass(a, m)
            except Timeout:
                raise
            except Exception as e:
                log(f"[profile] FAILED: {e!r}")
                result["profile"] = {"error": repr(e)}
    except Timeout as e:
        log(f"ABORTED: {e}")
        result["aborted"] = str(e)
    finally:
        signal.alarm(0)
        rb.stop_all()
        result["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        result["machine"]["loadavg_end"] = os.getloadavg()
        with contextlib.suppress(Exception):
            result["markdown"] = markdown(result)
        os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
        with open(a.out, "w") as f:
            json.dump(result, f, indent=1, default=str)
        log("wrote", a.out)
    md = result.get("markdown") or markdown(result)
    print("\n" + md)
    if a.md:
        with open(a.md, "w") as f:
            f.write(md + "\n")
    return 1 if result.get("aborted") else 0


if __name__ == "__main__":
    sys.exit(main())
