"""Readings and the report of the alerting benchmark (benchmarks/bench_alerting.py):
the server's alerting counters from /metrics, an optional py-spy profile with its
headline, and the markdown block for docs/benchmarks.md."""

from __future__ import annotations

import collections
import os
import signal
import subprocess
from typing import Any

from tsbs_common import REPO, rb

PY_SPY = os.path.join(REPO, ".venv", "bin", "py-spy")


def metrics(port: int) -> dict[str, float]:
    """``vigil_alerting_*``, ``vigil_notifications_*`` and ``vigil_stream_*`` samples of
    /metrics."""
    text = rb.http_req(port, "GET", "/metrics", timeout=30).decode()
    out: dict[str, float] = {}
    for ln in text.splitlines():
        if ln.startswith(("vigil_alerting_", "vigil_notifications_", "vigil_stream_")) \
                and "_created" not in ln:
            name, _, value = ln.rpartition(" ")
            out[name] = float(value)
    return out


# ---------------------------------------------------------------- py-spy
# Roots of the server threads the latency path crosses, for per-thread breakdowns.
THREADS = {"evaluation": "AlertingService._run (", "delivery": "Dispatcher._work (",
           "request (parse, submit)": "WorkerThread.run ("}


def profile_start(pid: int, work: str, seconds: float, *, idle: bool = False
                  ) -> tuple[subprocess.Popen[bytes], str]:
    """py-spy on ``pid``: ``idle`` samples every thread, waiting or not (to see where the
    latency path waits); otherwise only the thread holding the GIL (where CPU goes)."""
    path = os.path.join(work, f"profile-{pid}-{'idle' if idle else 'gil'}.txt")
    argv = [PY_SPY, "record", "--pid", str(pid), "-d", str(int(seconds)), "-r", "100",
            "--format", "raw", "--nolineno", "--idle" if idle else "--gil", "-o", path]
    p = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         start_new_session=True)
    return p, path


def profile_stop(prof: tuple[subprocess.Popen[bytes], str]) -> dict[str, Any]:
    p, path = prof
    if p.poll() is None:
        p.send_signal(signal.SIGINT)  # py-spy writes what it has so far
    try:
        p.wait(60)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait(10)
    if not os.path.isfile(path):
        return {"error": f"py-spy wrote nothing (rc={p.returncode})"}
    return {"file": path, **headline(path)}


def headline(path: str, top: int = 15, within: str | None = None) -> dict[str, Any]:
    """Share of samples per leaf frame (self) and per frame anywhere on the stack; only
    stacks through a frame starting with ``within`` if given; per-thread breakdowns."""
    own: collections.Counter[str] = collections.Counter()
    incl: collections.Counter[str] = collections.Counter()
    total = 0
    with open(path) as f:
        for ln in f:
            stack, _, n = ln.rstrip("\n").rpartition(" ")
            if not stack or not n.isdigit():
                continue
            frames = stack.split(";")
            if within is not None and not any(fr.startswith(within) for fr in frames):
                continue
            total += int(n)
            own[frames[-1]] += int(n)
            for fr in set(frames):
                incl[fr] += int(n)

    def pcts(c: collections.Counter[str]) -> list[tuple[str, float]]:
        return [(k, round(100 * v / max(total, 1), 1)) for k, v in c.most_common(top)]

    out: dict[str, Any] = {"samples": total, "self_pct": pcts(own),
                           "inclusive_pct": pcts(incl)}
    if within is None:
        out["threads"] = {name: headline(path, top, root) for name, root in THREADS.items()}
    return out


# ---------------------------------------------------------------- markdown
def _yes(ok: bool) -> str:
    return "yes" if ok else "**no**"


def markdown(r: dict[str, Any]) -> str:
    p = r["params"]
    out = ["## Alerting: notification latency and ingest with rules", "",
           f"Run {r['started']} on {r['nproc']} cores; load average at start "
           f"{', '.join(f'{x:.2f}' for x in r['loadavg_start'])}, at end "
           f"{', '.join(f'{x:.2f}' for x in r['loadavg_end'])}.", "",
           f"    {r['command']}", ""]
    lat = r.get("latency")
    if lat:
        ms, ld = lat["latency_ms"], lat["load"]
        m = lat["metrics"]
        out += [
            f"{p['rules']:,} threshold rules (`value > 90`, `for_s: 0`, `group_by: [host]`, "
            f"group wait 0) over {p['series']:,} series; background ingest target "
            f"{ld['target_samples_per_s']:,} samples/s, achieved "
            f"{ld['achieved_samples_per_s']:,} ({ld['late_bodies']} bodies late); "
            f"{p['alerts']} breaching samples {p['spacing_ms']:.0f} ms apart.", "",
            "| notification latency (POST → webhook) | ms |", "| --- | ---: |",
            f"| p50 | {ms['p50']} |", f"| p95 | {ms['p95']} |", f"| p99 | {ms['p99']} |",
            f"| max | {ms['max']} |",
            f"| arrived | {lat['alerts_arrived']} / {lat['alerts_posted']} |",
            f"| breach POST acknowledged, p50 / p99 | {lat['write_ack_ms']['p50']} / "
            f"{lat['write_ack_ms']['p99']} |", "",
            f"Server during the timed alerts: {lat['server_cpu_cores']} cores busy, RSS "
            f"{lat['server_mem_mib'].get('VmRSS')} MiB (peak "
            f"{lat['server_mem_mib'].get('VmHWM')} MiB); evaluation batches evaluated "
            f"{m.get('vigil_alerting_batches_evaluated_total', '?'):.0f}, dropped "
            f"{m.get('vigil_alerting_batches_dropped_total', 0):.0f}; evaluation time "
            f"{m.get('vigil_alerting_evaluation_seconds_total', 0):.1f} s in all.", ""]
    wo, wi = r.get("without_rules"), r.get("with_rules")
    if wo and wi:
        out += [
            "| unpaced ingest, 2 senders, 5,000 lines a body | samples/s | server cores | "
            "peak RSS MiB |", "| --- | ---: | ---: | ---: |",
            f"| no rules | {wo['samples_per_s']:,} | {wo['server_cpu_cores']} | "
            f"{wo['server_mem_mib'].get('VmHWM')} |",
            f"| {p['rules']:,} rules | {wi['samples_per_s']:,} | {wi['server_cpu_cores']} | "
            f"{wi['server_mem_mib'].get('VmHWM')} |",
            f"| ratio | {r['ratio']:.2f} | | |", "",
            f"Median of {len(r['throughput_runs']['with_rules'])} alternating runs a side "
            "(fresh server each, "
            f"{wo['samples']:,} timed samples after an untimed warm-up); all runs, "
            "samples/s: without " + ", ".join(
                f"{x['samples_per_s']:,}" for x in r["throughput_runs"]["without_rules"])
            + "; with " + ", ".join(
                f"{x['samples_per_s']:,}" for x in r["throughput_runs"]["with_rules"]) + ".",
            "",
            f"With rules, evaluation drained {wi['evaluation_drain_s']} s after the last "
            f"acknowledgement; batches dropped for evaluation "
            f"{wi['metrics'].get('vigil_alerting_batches_dropped_total', 0):.0f}.", ""]
    out += ["| target | measured | met |", "| --- | --- | --- |"]
    if lat:
        p99 = lat["latency_ms"]["p99"]
        ok = p99 <= 100 and lat["alerts_arrived"] == lat["alerts_posted"]
        out.append(f"| p99 ≤ 100 ms, rules without for-duration | {p99} ms "
                   f"({lat['alerts_arrived']}/{lat['alerts_posted']} arrived) | {_yes(ok)} |")
    if wo and wi:
        out.append(f"| ingest with rules ≥ 90 % of without | {100 * r['ratio']:.0f} % | "
                   f"{_yes(r['ratio'] >= 0.9)} |")
    for label, prof in (("during the timed alerts (`--idle`: every thread, waiting "
                         "or not)", (lat or {}).get("profile")),
                        ("during unpaced ingest without rules (`--gil`: the thread "
                         "holding the GIL)", (wo or {}).get("profile")),
                        ("during unpaced ingest with rules (`--gil`)",
                         (wi or {}).get("profile"))):
        if prof and "self_pct" in prof:
            out += ["", f"py-spy, server {label}, {prof['samples']} samples; own time / on "
                    "the stack:", ""]
            out += [f"- {pc} % {fr}" for fr, pc in prof["self_pct"][:8]]
            out += [f"- on stack {pc} % {fr}" for fr, pc in prof["inclusive_pct"][:12]]
            for name, th in prof.get("threads", {}).items():
                if th["samples"]:
                    out += ["", f"{name} thread ({th['samples']} samples), own time:", ""]
                    out += [f"- {pc} % {fr}" for fr, pc in th["self_pct"][:8]]
    return "\n".join(out)
