"""The py-spy pass of the TSBS benchmark: a fresh Vigil server profiled (untimed) during
HTTP ingest and during a Q2 loop, and the summary of py-spy's raw output.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import time
from collections import Counter
from typing import Any

from tsbs_common import REPO, log, rb
from tsbs_vigil import PROFILE_PORT, VigilSystem


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
    """Untimed: a fresh server; py-spy during HTTP ingest, then during Q2 loops (nocache,
    then cached)."""
    pdir = os.path.join(a.work, "profile")
    shutil.rmtree(pdir, ignore_errors=True)
    os.makedirs(pdir)
    # A loop of cached answers outruns the per-client query rate limit: lifted here.
    v = VigilSystem(port=PROFILE_PORT, name="vigil-profile",
                    env={"VIGIL_RATE_QUERY_PER_S": "0",
                         **dict(kv.split("=", 1) for kv in a.vigil_env)})
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
        queries = v.queries(m)
        # q2: every answer computed (nocache=1); q2_cached: answered from the query cache
        for phase, q2 in (("q2", queries["Q2_nocache"]), ("q2_cached", queries["Q2"])):
            q2()
            spy = PySpy(pid, os.path.join(pdir, f"{phase}.raw"), a.profile_rate)
            n, t0 = 0, time.perf_counter()
            while time.perf_counter() - t0 < a.profile_seconds:
                q2()
                n += 1
            spy.stop()
            spy = None
            out[f"{phase}_loop"] = {
                "queries": n, "seconds": round(time.perf_counter() - t0, 1),
                "ms_per_query_under_pyspy": round((time.perf_counter() - t0) * 1e3 / max(n, 1),
                                                  1)}
            out[phase] = summarize_profile(os.path.join(pdir, f"{phase}.raw"))
    finally:
        if spy is not None:
            spy.stop()
        v.stop()
        if not a.keep_data:
            shutil.rmtree(os.path.join(pdir, "data"), ignore_errors=True)
    for phase in ("ingest", "q2", "q2_cached"):
        if phase in out:
            pr = out[phase]
            log(f"[profile] {phase}: {pr['samples']} samples, busy {pr['busy_samples']}, "
                f"waiting {pr['idle_wait_samples']}, uvloop C {pr['event_loop_c_samples']}; "
                "top own (% of busy):")
            for fn, cnt, p in out[phase]["own_top"]:
                log(f"    {p:5.1f}% {cnt:6d}  {fn}")
    return out
