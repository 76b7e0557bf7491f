"""Vigil as a system of the peer benchmark's driver (``run_bench.bench_server``), its
storage breakdown, and the embedded-ingest pass (``Vigil.record_batch`` in a child process
that re-runs bench_tsbs.py with the hidden ``--embedded-worker`` flag).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
from typing import Any

from tsbs_common import REPO, load_json, log, rb

VIGIL_PORT = 18470
PROFILE_PORT = 18471
# The script the embedded worker runs in: the entry point, not this module.
ENTRY_POINT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "bench_tsbs.py")


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
        try:  # the query cache's counters, for the report
            text = rb.http_req(self.port, "GET", "/metrics").decode()
            self.extra["query_cache"] = {
                line.split()[0].removeprefix("vigil_query_cache_"): float(line.split()[1])
                for line in text.splitlines() if line.startswith("vigil_query_cache_")}
        except Exception as e:
            self.extra["query_cache"] = {"error": repr(e)}
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
            self.tiers["Q1" + ("_" + kw["tier"] if "tier" in kw else "")] = r["tier"]
            return dict(rb.summarize_rows(vals(r)))

        def q2(**kw: Any) -> dict[str, Any]:
            r = self.query(name=name, fn="max", step="1h", start=w["q2_start"],
                           end=w["q2_end"], **kw)
            self.tiers["Q2" + ("_" + kw["tier"] if "tier" in kw else "")] = r["tier"]
            return dict(rb.summarize_rows(vals(r, sort=True)))

        def q3(**kw: Any) -> dict[str, Any]:
            r = self.query(name=name, fn="quantile", q="0.95", group_by="", step="1h",
                           start=w["q3_start"], end=w["q3_end"], **kw)
            self.tiers["Q3" + ("_" + kw["tier"] if "tier" in kw else "")] = r["tier"]
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
        # The timed runs repeat each query, so after the first they are answered from the
        # query cache (the cross-check above already ran them once); the *_nocache runs
        # compute every answer from the store, as a first (cold) query does.
        return {"Q1": q1, "Q2": q2, "Q3": q3, "Q3_raw_exact": lambda: q3(tier="raw"),
                "Q1_nocache": lambda: q1(nocache=1), "Q2_nocache": lambda: q2(nocache=1),
                "Q3_nocache": lambda: q3(nocache=1)}


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
    argv = [sys.executable, ENTRY_POINT, "--embedded-worker",
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
