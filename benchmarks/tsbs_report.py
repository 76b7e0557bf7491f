"""The TSBS benchmark's report: Vigil's query answers checked against the peers', and the
markdown summary for docs/benchmarks.md.
"""

from __future__ import annotations

from typing import Any

# The peers' answers on the default dataset (h100, s86400, seed 42), from
# reference/peers-h100-s86400.md: rows and sum of the result values.
PEER_RESULTS = {"Q1": (144, 4643.7983), "Q2": (2400, 142409.85), "Q3": (1, 65.02)}
SKETCH_RELATIVE_ERROR = 0.01  # Vigil's rollup-tier quantiles (storage/sketch.py)


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

    vmc = result["systems"].get("victoriametrics_cached")
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
    # Cold: every answer computed (Vigil nocache=1; the shared protocol runs the peer with
    # its caches off). Repeated: the same query 20 times — Vigil answers from its query
    # cache; the peer with its caches on when --peer-cache ran it, else off.
    warm_peer = vmc if vmc and "queries" in vmc else vm
    warm_note = "VM caches on" if warm_peer is vmc and vmc else "VM caches off"
    for qn in ("Q1", "Q2", "Q3"):
        for stat in ("median_ms", "p95_ms"):
            if get(vi, "queries", qn + "_nocache", stat) is not None:
                rows.append((f"{qn} {stat.replace('_ms', '')} ms, cold (nocache)",
                             get(vi, "queries", qn + "_nocache", stat),
                             get(vm, "queries", qn, stat), False))
        for stat in ("median_ms", "p95_ms"):
            rows.append((f"{qn} {stat.replace('_ms', '')} ms, repeated "
                         f"(Vigil query cache; {warm_note})", get(vi, "queries", qn, stat),
                         get(warm_peer, "queries", qn, stat), False))
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
    qc = ex.get("query_cache")
    if qc and "error" not in qc:
        L.append("Vigil query cache at the end: " + ", ".join(
            f"{k.removesuffix('_total')} {v:,.0f}" for k, v in qc.items()
            if not k.endswith("_created")) + ".\n")
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
        # With its cache on, VictoriaMetrics moves start and end of a range query that
        # returns 50 or more points so that responses can be cached: its windows move too.
        for qn in ("Q1", "Q2"):
            cached, cold = get(vmc, "queries", qn, "result"), get(vm, "queries", qn, "result")
            if cached and cold:
                same = (cached["rows"], cached["sum"]) == (cold["rows"], cold["sum"])
                L.append(f"| {qn} (VictoriaMetrics, caches on) | [{cached['rows']}, "
                         f"{cached['sum']}] | [{cold['rows']}, {cold['sum']}] (its own, caches "
                         f"off) | {'same' if same else 'DIFFERS'} |")
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
        for phase, title in (("ingest", "HTTP ingest"), ("q2", "a Q2 loop (nocache)"),
                             ("q2_cached", "a Q2 loop (from the query cache)")):
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
