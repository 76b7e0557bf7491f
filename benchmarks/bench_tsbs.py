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
    .venv/bin/python benchmarks/bench_tsbs.py --only-profile --no-embedded
    .venv/bin/python benchmarks/bench_tsbs.py --no-peers --vigil-env VIGIL_ROLLUP_INTERVAL=1h

Options worth knowing: ``--data`` (dataset dir; generated with gen_dataset.py if
missing, default /tmp/tsbench/data-h<hosts>-s<span>), ``--shared`` (the peer benchmark
dir), ``--work`` (scratch dir for data dirs and logs), ``--out`` (result JSON),
``--no-peers``, ``--no-embedded``, ``--profile`` (py-spy raw profiles of the server
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
import platform
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
from collections import Counter
from typing import Any

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_SHARED = os.path.normpath(os.path.join(REPO, "..", "shared", "bench"))
VIGIL_PORT = 18470
PROFILE_PORT = 18471
# The peers' answers on the default dataset (h100, s86400, seed 42), from
# reference/peers-h100-s86400.md: rows and sum of the result values.
PEER_RESULTS = {"Q1": (144, 4643.7983), "Q2": (2400, 142409.85), "Q3": (1, 65.02)}
SKETCH_RELATIVE_ERROR = 0.01  # Vigil's rollup-tier quantiles (storage/sketch.py)

rb: Any = None  # the shared run_bench module, imported in main()


def load_json(path: str) -> Any:
    with open(path) as f:
        return json.load(f)


def log(*a: object) -> None:
    print(time.strftime("%H:%M:%S"), *a, flush=True)


def import_run_bench(shared: str) -> Any:
    if not os.path.isfile(os.path.join(shared, "run_bench.py")):
        sys.exit(f"run_bench.py not found in {shared} (pass --shared)")
    sys.path.insert(0, shared)
    import run_bench  # type: ignore[import-not-found]

    return run_bench


# ---------------------------------------------------------------- the Vigil system class
class VigilSystem:
    """Vigil as a peer of run_bench's system classes (same interface)."""

    name = "vigil"

    def __init__(self, port: int = VIGIL_PORT, name: str = "vigil",
                 env: dict[str, str] | None = None) -> None:
        self.port = port
        self.extra_env = dict(env or {})
        self.name = name
        self.bin = os.path.join(REPO, ".venv", "bin", "vigil")
        self.extra: dict[str, Any] = {}  # diagnostics merged into the result

    # -- lifecycle
    def install(self) -> None:
        if not os.access(self.bin, os.X_OK):
            raise RuntimeError(f"{self.bin} missing: run `make install` first")

    def version(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        try:
            st = json.loads(rb.http_req(self.port, "GET", "/api/v1/status"))
            out["vigil"] = st.get("version")
        except Exception as e:
            out["vigil"] = f"? ({e!r})"
        out["git"] = _git_rev()
        out["python"] = platform.python_version()
        try:
            import duckdb

            out["duckdb"] = duckdb.__version__
        except ImportError:
            pass
        return out

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("VIGIL_")}
        # 0 = keep forever: the dataset's 2024 timestamps are older than any default.
        env.update(VIGIL_RETENTION_RAW="0", VIGIL_RETENTION_5M="0", VIGIL_RETENTION_1H="0",
                   VIGIL_LOG_LEVEL="warning")
        env.update(getattr(self, "extra_env", {}))
        return env

    def start(self, d: str) -> int:
        self.dir = os.path.join(d, "data")
        self.p = rb.start_proc(self.name, [
            self.bin, "serve", "--host", rb.HOST, "--port", str(self.port),
            "--data-dir", self.dir], os.path.join(d, "server.log"), env=self.env())
        rb.wait_http(self.port, "/health")
        return int(self.p.pid)

    def stop(self) -> None:
        rb.stop_proc(self.name)

    def data_dir(self) -> str:
        return self.dir

    # -- ingest
    def payloads(self, m: dict[str, Any]) -> tuple[list[bytes], int]:
        return rb.split_payloads(m["files"]["lp"]["path"], rb.LINES_PER_REQ)

    def ingest(self, payloads: list[bytes]) -> float:
        return float(rb.send_all(self.port, "/write?precision=ns", payloads))

    # -- queries
    def query(self, timeout: float = 300, **params: Any) -> dict[str, Any]:
        items: list[tuple[str, str]] = []
        for k, v in params.items():
            for x in v if isinstance(v, list) else [v]:
                items.append((k, str(x)))
        path = "/api/v1/query?" + urllib.parse.urlencode(items)
        return dict(json.loads(rb.http_req(self.port, "GET", path, timeout=timeout)))

    def count(self, m: dict[str, Any]) -> int:
        total = 0.0
        for f in m["fields"]:
            r = self.query(name=f"cpu_{f}", fn="count", group_by="", step="1d",
                           start=m["start_s"], end=m["end_s"])
            total += sum(v for s in r["series"] for _, v in s["points"])
        return int(total)

    def stale(self) -> dict[str, int]:
        st = json.loads(rb.http_req(self.port, "GET", "/api/v1/rollups/status"))
        return {t: int(v["stale_buckets"]) for t, v in st["tiers"].items()}

    def compact(self, m: dict[str, Any]) -> tuple[float, bool]:
        # what ingest left behind, before rolling up
        self.extra["status_after_ingest"] = json.loads(
            rb.http_req(self.port, "GET", "/api/v1/status")).get("store")
        self.extra["stale_before_trigger"] = self.stale()
        t0 = time.perf_counter()
        trig = json.loads(rb.http_req(self.port, "POST", "/api/v1/rollups/trigger", timeout=600))
        self.extra["trigger"] = dict(trig, seconds=round(time.perf_counter() - t0, 2))
        self.extra["trigger_seconds"] = round(time.perf_counter() - t0, 2)
        log(f"[{self.name}] rollups/trigger {self.extra['trigger']}")

        def no_stale() -> bool:
            return not any(self.stale().values())

        res = rb.wait_stable_size(self.dir, min_wait=0, extra_ok=no_stale)
        self.extra["stale_after_compact"] = self.stale()
        self.extra["rollup_status"] = json.loads(
            rb.http_req(self.port, "GET", "/api/v1/rollups/status"))
        return res  # type: ignore[no-any-return]

    def queries(self, m: dict[str, Any]) -> dict[str, Any]:
        w = rb.query_windows(m)  # also sets rb.QUERY_HOST
        host = rb.QUERY_HOST
        name = "cpu_usage_user"

        def hostnum(s: dict[str, Any]) -> int:
            return int(s["labels"]["hostname"].split("_")[1])

        def vals(r: dict[str, Any], sort: bool = False) -> list[float]:
            series = sorted(r["series"], key=hostnum) if sort else r["series"]
            return [v for s in series for _, v in s["points"]]

        def q1(**kw: Any) -> dict[str, Any]:
            r = self.query(name=name, match=[f"hostname={host}"], fn="avg", step="5m",
                           start=w["q1_start"], end=w["q1_end"], **kw)
            self.tiers["Q1" + ("_" + kw["tier"] if kw else "")] = r["tier"]
            return dict(rb.summarize_rows(vals(r)))

        def q2(**kw: Any) -> dict[str, Any]:
            r = self.query(name=name, fn="max", step="1h", start=w["q2_start"],
                           end=w["q2_end"], **kw)
            self.tiers["Q2" + ("_" + kw["tier"] if kw else "")] = r["tier"]
            return dict(rb.summarize_rows(vals(r, sort=True)))

        def q3(**kw: Any) -> dict[str, Any]:
            r = self.query(name=name, fn="quantile", q="0.95", group_by="", step="1h",
                           start=w["q3_start"], end=w["q3_end"], **kw)
            self.tiers["Q3" + ("_" + kw["tier"] if kw else "")] = r["tier"]
            return dict(rb.summarize_rows(vals(r)))

        self.tiers: dict[str, str] = {}
        # Untimed cross-check: the same queries forced onto raw samples must give the same
        # answers as the rollup tiers the planner picks (Q3: exact interpolated p95).
        check = {}
        for qn, fn in (("Q1", q1), ("Q2", q2), ("Q3", q3)):
            t0 = time.perf_counter()
            check[qn] = {"planner": fn(), "planner_ms": round((time.perf_counter() - t0) * 1e3, 1)}
            t0 = time.perf_counter()
            check[qn]["raw"] = fn(tier="raw")
            check[qn]["raw_ms"] = round((time.perf_counter() - t0) * 1e3, 1)
        self.extra["raw_tier_check"] = check
        self.extra["tiers"] = self.tiers  # filled in further by the timed runs
        return {"Q1": q1, "Q2": q2, "Q3": q3, "Q3_raw_exact": lambda: q3(tier="raw")}


def _git_rev() -> str | None:
    try:
        rev = subprocess.run(["git", "-C", REPO, "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", REPO, "status", "--porcelain", "src"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return rev + ("+dirty-src" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


# ---------------------------------------------------------------- storage breakdown
def duckdb_breakdown(data_dir: str) -> dict[str, Any]:
    """Per table rows, blocks and compression of a stopped Vigil store (read-only)."""
    import duckdb

    path = os.path.join(data_dir, "vigil.duckdb")
    out: dict[str, Any] = {"files": {}}
    for fn in sorted(os.listdir(data_dir)):
        out["files"][fn] = os.path.getsize(os.path.join(data_dir, fn))
    con = duckdb.connect(path, read_only=True)
    try:
        row = con.execute("SELECT block_size, total_blocks, used_blocks, free_blocks "
                          "FROM pragma_database_size()").fetchone()
        assert row is not None
        block, total, used, free = (int(x) for x in row)
        out["database"] = {"block_size": block, "total_blocks": total, "used_blocks": used,
                           "free_blocks": free}
        tables = [r[0] for r in con.execute(
            "SELECT table_name FROM duckdb_tables() ORDER BY 1").fetchall()]
        out["tables"] = {}
        for t in tables:
            (n,) = con.execute(f'SELECT count(*) FROM "{t}"').fetchone() or (0,)
            blocks = con.execute(
                f"SELECT count(DISTINCT block_id) FROM pragma_storage_info('{t}') "
                "WHERE persistent AND block_id >= 0").fetchone()
            comp = con.execute(
                f"SELECT column_name, compression, count(*) FROM pragma_storage_info('{t}') "
                "WHERE segment_type <> 'VALIDITY' GROUP BY ALL ORDER BY 1, 3 DESC").fetchall()
            nb = int(blocks[0]) if blocks else 0
            out["tables"][t] = {"rows": int(n), "blocks": nb, "bytes_upper_bound": nb * block,
                                "compression": [f"{c}:{k}x{cnt}" for c, k, cnt in comp]}
    finally:
        con.close()
    return out


# ---------------------------------------------------------------- embedded ingest (child)
def embedded_worker(a: argparse.Namespace) -> int:
    """Child process: parse the lp into 50,000-sample batches, then time record_batch."""
    import vigil
    from vigil.core.timeutil import now_ms
    from vigil.ingest.limits import Limits
    from vigil.ingest.line_protocol import parse_line_protocol

    m = load_json(os.path.join(a.data, "manifest.json"))
    payloads, _ = rb.split_payloads(m["files"]["lp"]["path"], rb.LINES_PER_REQ)
    limits, now = Limits(), now_ms()
    t0 = time.perf_counter()
    batches = [parse_line_protocol(p, "ns", limits=limits, now_ms=now) for p in payloads]
    parse_s = time.perf_counter() - t0
    del payloads
    n = sum(len(b) for b in batches)
    d = os.path.join(a.work, "data")
    shutil.rmtree(d, ignore_errors=True)
    rss0 = rb.proc_status(os.getpid()).get("VmRSS")
    v = vigil.Vigil(d, retention_raw=0, retention_5m=0, retention_1h=0)
    idx, lock, errors = [0], threading.Lock(), []

    def worker() -> None:
        while True:
            with lock:
                i = idx[0]
                idx[0] += 1
            if i >= len(batches) or errors:
                return
            try:
                v.record_batch(batches[i])
            except Exception as e:
                errors.append(repr(e))

    c0 = os.times()
    t0 = time.perf_counter()
    if a.threads == 1:
        worker()
    else:
        ths = [threading.Thread(target=worker) for _ in range(a.threads)]
        for t in ths:
            t.start()
        for t in ths:
            t.join()
    wall = time.perf_counter() - t0
    c1 = os.times()
    if errors:
        raise RuntimeError("record_batch failed: " + "; ".join(errors[:3]))
    writer = v.store.stats()
    t1 = time.perf_counter()
    rebuilt = v.store.refresh_rollups(2**53)
    rollup_s = time.perf_counter() - t1
    stale = v.store.dirty.counts()
    t2 = time.perf_counter()
    v.close()
    close_s = time.perf_counter() - t2
    out = {
        "threads": a.threads, "samples": n, "batches": len(batches),
        "batch_samples": rb.LINES_PER_REQ * len(m["fields"]),
        "parse_lp_s": round(parse_s, 3), "parse_lp_samples_per_s": round(n / parse_s),
        "record_wall_s": round(wall, 3), "samples_per_s": round(n / wall),
        "process_cpu_s": round((c1.user + c1.system) - (c0.user + c0.system), 2),
        "writer": writer, "rollup_refresh_s": round(rollup_s, 2),
        "rollup_buckets_rebuilt_after": rebuilt, "stale_after_refresh": stale,
        "close_s": round(close_s, 2), "disk_bytes": rb.dir_bytes(d)[0],
        "rss_before_open_bytes": rss0, "peak_rss_bytes": rb.proc_status(os.getpid()).get("VmHWM"),
    }
    out["bytes_per_sample"] = round(out["disk_bytes"] / n, 3)
    shutil.rmtree(d, ignore_errors=True)
    with open(a.out, "w") as f:
        json.dump(out, f, indent=1)
    return 0


def run_embedded(a: argparse.Namespace, threads: int, timeout: float) -> dict[str, Any]:
    d = os.path.join(a.work, f"embedded-{threads}t")
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    out = os.path.join(d, "result.json")
    argv = [sys.executable, os.path.abspath(__file__), "--embedded-worker",
            "--threads", str(threads), "--data", a.data, "--work", d, "--out", out,
            "--shared", a.shared]
    log(f"[embedded {threads}t] {' '.join(argv)}")
    with open(os.path.join(d, "worker.log"), "wb") as lf:
        env = VigilSystem(env=dict(kv.split("=", 1) for kv in a.vigil_env)).env()
        p = subprocess.Popen(argv, stdout=lf, stderr=subprocess.STDOUT, env=env,
                             start_new_session=True)
        try:
            rc = p.wait(timeout)
        except subprocess.TimeoutExpired:
            os.kill(p.pid, signal.SIGKILL)
            p.wait(30)
            raise RuntimeError(f"embedded worker exceeded {timeout:.0f}s") from None
        except BaseException:
            os.kill(p.pid, signal.SIGKILL)
            p.wait(30)
            raise
    if rc != 0:
        with open(os.path.join(d, "worker.log"), errors="replace") as f:
            tail = f.read()[-2000:]
        raise RuntimeError(f"embedded worker rc={rc}: {tail}")
    res: dict[str, Any] = load_json(out)
    log(f"[embedded {threads}t] {res['samples_per_s']:,} samples/s "
        f"(record {res['record_wall_s']} s; lp parse {res['parse_lp_samples_per_s']:,}/s; "
        f"rollups after {res['rollup_refresh_s']} s; close {res['close_s']} s)")
    return res


# ---------------------------------------------------------------- py-spy profile pass
class PySpy:
    def __init__(self, pid: int, out: str, rate: int = 100) -> None:
        exe = os.path.join(REPO, ".venv", "bin", "py-spy")
        self.out = out
        self.argv = [exe, "record", "--pid", str(pid), "--format", "raw", "--rate", str(rate),
                     "--function", "-o", out]
        self.logf = open(out + ".log", "wb")  # noqa: SIM115 (closed in stop())
        self.p = subprocess.Popen(self.argv, stdout=self.logf, stderr=subprocess.STDOUT,
                                  start_new_session=True)
        time.sleep(1.5)  # let it attach
        if self.p.poll() is not None:
            raise RuntimeError(f"py-spy exited rc={self.p.returncode}; see {out}.log")

    def stop(self) -> None:
        if self.p.poll() is None:
            os.kill(self.p.pid, signal.SIGINT)
            try:
                self.p.wait(60)
            except subprocess.TimeoutExpired:
                os.kill(self.p.pid, signal.SIGKILL)
                self.p.wait(10)
        self.logf.close()


_LINENO = re.compile(r":\d+\)$")


def _frame(f: str) -> str:
    """'fn (path/file.py:12)' -> 'fn (file.py)'."""
    f = _LINENO.sub(")", f.strip())
    m = re.match(r"^(.*) \((.*)\)$", f)
    if not m:
        return f
    fn, path = m.groups()
    return f"{fn} ({'/'.join(path.split('/')[-2:])})"


# Leaf frames of threads that wait (py-spy counts them unless it sees the thread asleep):
# thread-pool workers and the group-commit writer in Condition.wait, maintenance in
# Event.wait. "Runner.run" is uvloop's C event loop: its own time is epoll (idle) plus
# socket I/O done in C, so it is reported apart from the busy functions.
IDLE_LEAVES = ("Condition.wait", "Event.wait", "Thread.join", "Semaphore.acquire",
               "Lock.acquire", "sleep", "select", "poll")
EVENT_LOOP_LEAVES = ("Runner.run",)
# Inclusive counts only for Vigil's and DuckDB's frames (not thread/CLI/server plumbing).
_OURS = re.compile(r"\((storage|query|api|ingest|core|vigil|duckdb|pyarrow)/[^/]*\)$")


def summarize_profile(path: str, top: int = 10) -> dict[str, Any]:
    """Top functions by own (leaf) and inclusive samples, from py-spy raw output.

    Samples whose leaf is a wait (IDLE_LEAVES) or uvloop's C loop (EVENT_LOOP_LEAVES) are
    counted apart; percentages of the top lists are of the remaining, busy samples.
    """
    own: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    total = idle = loop = 0
    with open(path, errors="replace") as f:
        for line in f:
            stack, _, cnt = line.rstrip("\n").rpartition(" ")
            if not stack or not cnt.isdigit():
                continue
            n = int(cnt)
            frames = [_frame(x) for x in stack.split(";") if x]
            if not frames:
                continue
            total += n
            leaf_fn = frames[-1].split(" (")[0]
            if leaf_fn in IDLE_LEAVES:
                idle += n
                continue
            if leaf_fn in EVENT_LOOP_LEAVES:
                loop += n
                continue
            own[frames[-1]] += n
            for fr in set(frames):
                if _OURS.search(fr):
                    incl[fr] += n
    busy = total - idle - loop

    def pct(c: Counter[str], k: int) -> list[list[Any]]:
        return [[name, n, round(100.0 * n / max(busy, 1), 1)] for name, n in c.most_common(k)]

    return {"samples": total, "busy_samples": busy, "idle_wait_samples": idle,
            "event_loop_c_samples": loop, "own_top": pct(own, top),
            "inclusive_top": pct(incl, 25)}


def profile_pass(a: argparse.Namespace, m: dict[str, Any]) -> dict[str, Any]:
    """Untimed: a fresh server; py-spy during HTTP ingest, then during a Q2 loop."""
    pdir = os.path.join(a.work, "profile")
    shutil.rmtree(pdir, ignore_errors=True)
    os.makedirs(pdir)
    v = VigilSystem(port=PROFILE_PORT, name="vigil-profile",
                    env=dict(kv.split("=", 1) for kv in a.vigil_env))
    payloads, _ = v.payloads(m)
    out: dict[str, Any] = {"dir": pdir}
    spy = None
    try:
        pid = v.start(pdir)
        out["pid"] = pid
        spy = PySpy(pid, os.path.join(pdir, "ingest.raw"), a.profile_rate)
        wall = v.ingest(payloads)
        spy.stop()
        spy = None
        del payloads
        out["ingest_wall_s"] = round(wall, 2)
        out["ingest_samples_per_s_under_pyspy"] = round(m["samples"] / wall)
        out["ingest"] = summarize_profile(os.path.join(pdir, "ingest.raw"))
        t0 = time.perf_counter()
        rb.http_req(v.port, "POST", "/api/v1/rollups/trigger", timeout=600)
        deadline = time.time() + 300
        while any(v.stale().values()) and time.time() < deadline:
            time.sleep(1)
        out["rollup_wait_s"] = round(time.perf_counter() - t0, 1)
        q2 = v.queries(m)["Q2"]
        q2()
        spy = PySpy(pid, os.path.join(pdir, "q2.raw"), a.profile_rate)
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < a.profile_seconds:
            q2()
            n += 1
        spy.stop()
        spy = None
        out["q2_loop"] = {"queries": n, "seconds": round(time.perf_counter() - t0, 1),
                          "ms_per_query_under_pyspy": round(
                              (time.perf_counter() - t0) * 1e3 / max(n, 1), 1)}
        out["q2"] = summarize_profile(os.path.join(pdir, "q2.raw"))
    finally:
        if spy is not None:
            spy.stop()
        v.stop()
        if not a.keep_data:
            shutil.rmtree(os.path.join(pdir, "data"), ignore_errors=True)
    for phase in ("ingest", "q2"):
        if phase in out:
            pr = out[phase]
            log(f"[profile] {phase}: {pr['samples']} samples, busy {pr['busy_samples']}, "
                f"waiting {pr['idle_wait_samples']}, uvloop C {pr['event_loop_c_samples']}; "
                "top own (% of busy):")
            for fn, cnt, p in out[phase]["own_top"]:
                log(f"    {p:5.1f}% {cnt:6d}  {fn}")
    return out


# ---------------------------------------------------------------- report
def _f(x: Any, nd: int = 2) -> str:
    if x is None:
        return "n/a"
    if isinstance(x, int) or (isinstance(x, float) and abs(x) >= 1000):
        return f"{x:,.0f}"
    return f"{x:,.{nd}f}"


def _ratio(a: Any, b: Any) -> str:
    if a is None or b is None or not b:
        return "n/a"
    r = a / b
    return f"{r:,.2f}x" if r < 100 else f"{r:,.0f}x"


def check_results(res: dict[str, Any], peer: dict[str, Any] | None,
                  m: dict[str, Any]) -> dict[str, Any]:
    """Vigil's Q1/Q2/Q3 answers against the peers' (rows and sum)."""
    default = (m["hosts"], m["span_s"], m["interval_s"], m["seed"]) == (100, 86400, 10, 42)
    out: dict[str, Any] = {}
    for qn in ("Q1", "Q2", "Q3"):
        got = res.get("queries", {}).get(qn, {}).get("result")
        if got is None:
            continue
        if default:
            exp, src = PEER_RESULTS[qn], "reference peers (exact)"
        elif peer and qn != "Q3" and peer.get("queries", {}).get(qn):
            pr = peer["queries"][qn]["result"]
            exp, src = (pr["rows"], pr["sum"]), "VictoriaMetrics this run"
        else:
            out[qn] = {"got": [got["rows"], got["sum"]], "expected": None,
                       "verdict": "no reference"}
            continue
        if got["rows"] != exp[0]:
            verdict = "MISMATCH (rows)"
        elif abs(got["sum"] - exp[1]) <= 1e-3:
            verdict = "match"
        elif qn == "Q3" and abs(got["sum"] / exp[1] - 1) <= SKETCH_RELATIVE_ERROR:
            verdict = "within the sketch's 1% (not exact)"
        else:
            verdict = "MISMATCH (sum)"
        out[qn] = {"got": [got["rows"], got["sum"]], "expected": list(exp), "source": src,
                   "verdict": verdict}
    q3r = res.get("queries", {}).get("Q3_raw_exact", {}).get("result")
    if q3r is not None:
        out["Q3_raw_exact"] = {"got": [q3r["rows"], q3r["sum"]],
                               "note": "quantile_cont (interpolated) on raw; peers use the "
                               "lower/nearest-rank element (65.02 on the default set)"}
    return out


def markdown(result: dict[str, Any]) -> str:
    m = result["dataset"]
    vi = result["systems"].get("vigil", {})
    vm = result["systems"].get("victoriametrics")
    L: list[str] = []
    L.append(f"### TSBS cpu-only, {m['hosts']} hosts x {m['span_s']} s "
             f"({m['samples']:,} samples, {m['series']:,} series) — {result['started']}\n")
    mc = result["machine"]
    vv = vi.get("version") or {}
    L.append(f"Machine: {mc['nproc']} cores, Python {mc['python']}, load avg at start "
             f"{', '.join(f'{x:.2f}' for x in mc['loadavg_start'])}. Vigil "
             f"{vv.get('vigil')} (git {vv.get('git')}, DuckDB {vv.get('duckdb')})"
             + (f"; VictoriaMetrics {vm.get('version', {}).get('package')}" if vm else "")
             + ". One run; compare ratios, not absolute figures from other days.\n")
    L.append("Command: `" + result["command"] + "`\n")
    if result.get("vigil_env"):
        L.append(f"Extra Vigil environment: {result['vigil_env']}\n")
    rows: list[tuple[str, Any, Any, bool]] = []

    def get(r: dict[str, Any] | None, *path: str) -> Any:
        for p in path:
            if not isinstance(r, dict):
                return None
            r = r.get(p)
        return r

    mib = 1 / (1024 * 1024)
    for label, path, scale, higher_better in (
        ("ingest samples/s (load wall)", ("ingest_samples_per_s",), 1, True),
        ("samples/s until queryable", ("ingest_samples_per_s_until_queryable",), 1, True),
        ("bytes/sample (apparent, after compact)", ("bytes_per_sample",), 1, False),
        ("peak RSS MiB", ("peak_rss_bytes",), mib, False),
        ("server CPU-s during load", ("server_cpu_s_ingest",), 1, False),
    ):
        a = get(vi, *path)
        b = get(vm, *path)
        rows.append((label, None if a is None else a * scale, None if b is None else b * scale,
                     higher_better))
    for qn in ("Q1", "Q2", "Q3"):
        for stat in ("median_ms", "p95_ms"):
            rows.append((f"{qn} {stat.replace('_ms', '')} ms", get(vi, "queries", qn, stat),
                         get(vm, "queries", qn, stat), False))
    L.append("| metric | Vigil | VictoriaMetrics | Vigil / VM |")
    L.append("|---|---:|---:|---:|")
    for label, a, b, hb in rows:
        note = ""
        if a is not None and b:
            worse = (a < b) if hb else (a > b)
            note = " (worse)" if worse else " (better)"
        L.append(f"| {label} | {_f(a)} | {_f(b)} | {_ratio(a, b)}{note if b else ''} |")
    L.append("")
    ex = vi.get("vigil_extra", {})
    if vi.get("disk_bytes_after_shutdown") is not None:
        L.append("Vigil on disk after shutdown (checkpoint): "
                 f"{vi['disk_bytes_after_shutdown']:,} B "
                 f"= {vi['bytes_per_sample_after_shutdown']:.2f} B/sample"
                 + ("; tables: " + ", ".join(
                     f"{t} {d['rows']:,} rows / {d['blocks']} blocks"
                     for t, d in vi.get("storage", {}).get("tables", {}).items())
                    if vi.get("storage", {}).get("tables") else "") + ".\n")
    if ex.get("trigger_seconds") is not None:
        L.append(f"Vigil rollups: `POST /api/v1/rollups/trigger` took {ex['trigger_seconds']} s "
                 f"(stale before: {ex.get('stale_before_trigger')}); compact wait "
                 f"{vi.get('compact_wait_s')} s. Tiers the planner used: "
                 f"{ {k: t for k, t in (ex.get('tiers') or {}).items() if '_' not in k} }.\n")
    chk = result.get("result_check", {})
    if chk:
        L.append("Query results (rows; sum) against the peers:\n")
        L.append("| query | Vigil | peers | verdict |")
        L.append("|---|---|---|---|")
        for qn, c in chk.items():
            if "verdict" in c:
                L.append(f"| {qn} | {c['got']} | {c.get('expected')} | {c['verdict']} |")
            else:
                L.append(f"| {qn} | {c['got']} | — | {c['note']} |")
        if vm:
            r3 = get(vm, "queries", "Q3", "result")
            if r3:
                L.append(f"| Q3 (VictoriaMetrics, histogram) | [{r3['rows']}, {r3['sum']}] | "
                         "— | approximate (vmrange buckets) |")
        L.append("")
    emb = result.get("embedded", {})
    if emb:
        L.append("Embedded ingest (`Vigil.record_batch`, 50,000-sample `SampleBatch`es "
                 "parsed from the lp before the clock, child process):\n")
        L.append("| threads | samples/s | record wall s | process CPU-s | rollups after, s "
                 "| close s | B/sample | peak RSS MiB |")
        L.append("|---|---:|---:|---:|---:|---:|---:|---:|")
        for _k, e in sorted(emb.items()):
            if "error" in e:
                L.append(f"| {_k} | failed: {e['error'][:80]} |")
                continue
            L.append(f"| {e['threads']} | {_f(e['samples_per_s'])} | {e['record_wall_s']} | "
                     f"{e['process_cpu_s']} | {e['rollup_refresh_s']} | {e['close_s']} | "
                     f"{e['bytes_per_sample']} | {_f(e['peak_rss_bytes'] * mib, 0)} |")
        first = next((e for e in emb.values() if "parse_lp_samples_per_s" in e), None)
        if first:
            L.append(f"\nLine-protocol parsing alone (`parse_line_protocol`, 5,000-line bodies): "
                     f"{first['parse_lp_samples_per_s']:,} samples/s.")
        L.append("")
    prof = result.get("profile")
    if prof and "ingest" in prof:
        for phase, title in (("ingest", "HTTP ingest"), ("q2", "Q2 loop")):
            if phase not in prof:
                continue
            pr = prof[phase]
            L.append(f"py-spy (100 Hz, Python frames), Vigil server during {title}: "
                     f"{pr['samples']} thread-samples, of which {pr['idle_wait_samples']} in "
                     f"waits and {pr['event_loop_c_samples']} in uvloop's C loop; top 10 by "
                     f"own time, % of the {pr['busy_samples']} busy samples:\n")
            L.append("| % | function |")
            L.append("|---:|---|")
            for fn, _n, p in prof[phase]["own_top"]:
                L.append(f"| {p} | `{fn}` |")
            L.append("")
    return "\n".join(L)


# ---------------------------------------------------------------- main
class Timeout(Exception):
    pass


def main() -> int:
    global rb
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
    rb = import_run_bench(a.shared)
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
