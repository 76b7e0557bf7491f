"""``vigil top``: a live terminal view of a running server (instances, ingest rate, firing
alerts, slowest tasks, insights), polled over its HTTP API; registered by ``vigil.cli``.

Fetching is apart from drawing: ``Poller.poll`` turns the server's answers into a
``Snapshot``; ``render`` draws a snapshot for a ``Screen`` (view, help) and does no I/O.
Every figure shown is the server's; a panel whose endpoint failed says why instead
(unreachable, not authorised, not permitted, not found).
"""

from __future__ import annotations

import contextlib
import os
import queue
import select
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Annotated, Any, Literal, Optional, TextIO

import httpx
import typer
from prometheus_client.parser import text_string_to_metric_families
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from vigil.alerting.model import SEVERITIES
from vigil.client import Client, ClientError
from vigil.core.timeutil import format_ms, now_ms

View = Literal["overview", "alerts", "tasks", "insights"]
VIEWS: tuple[View, ...] = ("overview", "alerts", "tasks", "insights")
DEFAULT_URL = "http://127.0.0.1:9470"
TIMEOUT_S = 5.0
INSIGHTS_EVERY_S = 30.0  # an insights answer costs the server ~0.2 s per metric
DEFAULT_INSIGHT_METRICS = 3  # without --metric: the first metrics the server lists
err = Console(stderr=True)
CREDENTIAL_HINT = ("set VIGIL_CLIENT_TOKEN to an API key or token (or client_token in the "
                   "--config file)")


# ------------------------------------------------------------------ snapshot
@dataclass(frozen=True, slots=True)
class Part:
    """One endpoint's answer (``doc``), or why there is none: ``problem``, with the HTTP
    ``status`` of a refusal (None when the server could not be reached)."""

    doc: Any = None
    problem: str | None = None
    status: int | None = None


@dataclass(frozen=True, slots=True)
class Ingest:
    """Ingest counters of the server at one poll, from ``/metrics``."""

    committed: float  # samples made durable, every source
    by_protocol: dict[str, float]
    rejected_batches: float


@dataclass(frozen=True, slots=True)
class Rates:
    """Samples per second between two polls ``elapsed_s`` apart."""

    elapsed_s: float
    committed_per_s: float
    by_protocol_per_s: dict[str, float]


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What one poll of the server at ``url`` returned. ``ingest.doc`` is an ``Ingest``;
    ``rates`` is None until two polls apart (or after a counter reset); ``alerts.doc`` the
    firing (triggered or acknowledged) alerts; ``insights.doc`` ``{"metrics", "insights"}``
    as of ``insights_ms``."""

    url: str
    polled_ms: int
    health: Part
    ready: Part
    status: Part
    ingest: Part
    rates: Rates | None
    alerts: Part
    performance: Part
    bottlenecks: Part
    insights: Part
    insights_ms: int | None = None

    def parts(self) -> tuple[Part, ...]:
        return (self.health, self.ready, self.status, self.ingest, self.alerts,
                self.performance, self.bottlenecks, self.insights)


def parse_ingest(text: str) -> Ingest:
    """The ingest counters of a ``/metrics`` page; ValueError if it has none."""
    committed: float | None = None
    by_protocol: dict[str, float] = {}
    rejected = 0.0
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == "vigil_store_committed_samples_total":
                committed = s.value
            elif s.name == "vigil_samples_ingested_total":
                key = s.labels.get("protocol", "?")
                by_protocol[key] = by_protocol.get(key, 0.0) + s.value
            elif s.name == "vigil_batches_rejected_total":
                rejected += s.value
    if committed is None:
        raise ValueError("no vigil_store_committed_samples_total in /metrics")
    return Ingest(committed, by_protocol, rejected)


def ingest_rates(prev: Ingest, cur: Ingest, elapsed_s: float) -> Rates | None:
    """Per-second rates between two readings; None if no time passed or a counter went
    back (the server restarted)."""
    if elapsed_s <= 0 or cur.committed < prev.committed:
        return None
    by = {p: (v - prev.by_protocol.get(p, 0.0)) / elapsed_s for p, v in cur.by_protocol.items()}
    if any(v < 0 for v in by.values()):
        return None
    return Rates(elapsed_s, (cur.committed - prev.committed) / elapsed_s, by)


def _refusal(e: ClientError) -> str:
    detail = e.body.get("detail") if isinstance(e.body, dict) else None
    reason = f" ({detail})" if detail else ""
    if e.status == 401:
        return f"not authorised{reason}: {CREDENTIAL_HINT}"
    if e.status == 403:
        return f"not permitted for this credential{reason}"
    if e.status == 404:
        return "not available on this server (HTTP 404)"
    return str(e)


def fetch(call: Callable[[], Any]) -> Part:
    """``call()``'s answer as a Part; a refusal or a failed connection as its problem."""
    try:
        return Part(call())
    except ClientError as e:
        return Part(problem=_refusal(e), status=e.status)
    except httpx.TransportError as e:  # refused, timed out, no route, bad scheme
        return Part(problem=f"unreachable: {e or type(e).__name__}")
    except (httpx.HTTPError, ValueError, KeyError, TypeError) as e:  # not the shape expected
        return Part(problem=f"unexpected answer: {e!r}")


class Poller:
    """Polls one server through ``client``. Keeps the previous ingest reading (rates are
    deltas between polls) and the last insights, asked again every ``INSIGHTS_EVERY_S``.
    Not thread-safe: one caller."""

    def __init__(self, client: Client, url: str, metrics: Sequence[str] = (),
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._client, self._url, self._metrics, self._clock = client, url, list(metrics), clock
        self._prev: tuple[float, Ingest] | None = None
        self._insights: tuple[float, int, Part] | None = None

    def _read_ingest(self) -> tuple[Part, Rates | None]:
        taken = self._clock()
        part = fetch(lambda: parse_ingest(self._client.get_text("/metrics")))
        if not isinstance(part.doc, Ingest):
            return part, None
        prev, self._prev = self._prev, (taken, part.doc)
        if prev is None:
            return part, None
        return part, ingest_rates(prev[1], part.doc, taken - prev[0])

    def prime(self) -> None:
        """Take a first ingest reading, so that the next poll has rates."""
        self._read_ingest()

    def _firing(self) -> list[Any]:
        get = self._client.get
        alerts = [*get("/api/v1/alerts", state="triggered")["alerts"],
                  *get("/api/v1/alerts", state="acknowledged")["alerts"]]
        return sorted(alerts, key=lambda a: (-_severity_rank(a.get("severity")),
                                             -int(a.get("starts_ms") or 0)))

    def _ask_insights(self) -> dict[str, Any]:
        names = self._metrics or [m["name"] for m in self._client.get(
            "/api/v1/metrics")["metrics"][:DEFAULT_INSIGHT_METRICS]]
        found = [i for n in names
                 for i in self._client.get("/api/v1/analytics/insights", name=n)["insights"]]
        ranked = sorted(found, key=lambda i: (-_severity_rank(i.get("severity")),
                                              -float(i.get("confidence") or 0)))
        return {"metrics": names, "insights": ranked}

    def _insights_part(self) -> tuple[Part, int]:
        now = self._clock()
        if self._insights is None or now - self._insights[0] >= INSIGHTS_EVERY_S or (
                self._insights[2].problem is not None):
            self._insights = (now, now_ms(), fetch(self._ask_insights))
        return self._insights[2], self._insights[1]

    def poll(self) -> Snapshot:
        health = fetch(lambda: self._client.get("/health"))
        if health.status is None and health.problem:  # down: do not wait on every route
            return Snapshot(self._url, now_ms(), health, ready=health, status=health,
                            ingest=health, rates=None, alerts=health, performance=health,
                            bottlenecks=health, insights=health)
        ingest, rates = self._read_ingest()
        insights, insights_ms = self._insights_part()
        return Snapshot(
            self._url, now_ms(), health,
            ready=fetch(lambda: self._client.get("/ready")),
            status=fetch(lambda: self._client.get("/api/v1/status")),
            ingest=ingest, rates=rates, alerts=fetch(self._firing),
            performance=fetch(lambda: self._client.get("/api/v1/analytics/performance")),
            bottlenecks=fetch(lambda: self._client.get("/api/v1/analytics/bottlenecks",
                                                       limit=10)),
            insights=insights, insights_ms=insights_ms)


def _severity_rank(s: Any) -> int:
    return SEVERITIES.index(s) if s in SEVERITIES else -1


# ------------------------------------------------------------------ keys
@dataclass(frozen=True, slots=True)
class Screen:
    """What the user asked to see: the ``view``, the help overlay, quit; ``keys`` False
    when no keyboard is read (stdin is not a terminal, or ``--once``)."""

    view: View = "overview"
    help: bool = False
    quit: bool = False
    keys: bool = True


def press(screen: Screen, key: str) -> Screen:
    """The screen after ``key``: 1–4 pick a view, tab the next one, ? toggles help,
    q quits; other keys change nothing.

    >>> press(Screen(), "3").view
    'tasks'
    >>> press(Screen(view="insights"), "\\t").view
    'overview'
    """
    if len(key) == 1 and key in "1234":
        return replace(screen, view=VIEWS[int(key) - 1], help=False)
    if key == "\t":
        return replace(screen, view=VIEWS[(VIEWS.index(screen.view) + 1) % len(VIEWS)],
                       help=False)
    if key == "?":
        return replace(screen, help=not screen.help)
    if key in ("q", "Q"):
        return replace(screen, quit=True)
    return screen


class KeyReader:
    """Puts the keys typed on ``stream`` into ``keys``, read on a daemon thread with the
    terminal in cbreak mode; its mode is restored on exit. ``active`` is False (and
    nothing is read) when ``stream`` is not a terminal."""

    def __init__(self, keys: queue.Queue[str], stream: TextIO | None = None) -> None:
        self._keys, self._stream = keys, stream if stream is not None else sys.stdin
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._saved: list[Any] | None = None
        self.active = False

    def __enter__(self) -> KeyReader:
        try:
            import termios
            import tty

            if not self._stream.isatty():
                return self
            fd = self._stream.fileno()
            self._saved = termios.tcgetattr(fd)
            tty.setcbreak(fd)
        except (ImportError, OSError, ValueError):  # no termios (Windows), or no real fd
            return self
        self.active = True
        self._thread = threading.Thread(target=self._run, args=(fd,), daemon=True,
                                        name="vigil-top-keys")
        self._thread.start()
        return self

    def _run(self, fd: int) -> None:
        while not self._stop.is_set():
            ready, _, _ = select.select([fd], [], [], 0.1)
            if ready:
                data = os.read(fd, 64)
                if not data:
                    return
                for ch in data.decode(errors="ignore"):
                    self._keys.put(ch)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(1.0)
        if self._saved is not None:
            import termios

            termios.tcsetattr(self._stream.fileno(), termios.TCSADRAIN, self._saved)


# ------------------------------------------------------------------ drawing
def _na(part: Part) -> Text:
    return Text(f"not available: {part.problem}", style="yellow")


def _duration(ms: Any) -> str:
    if not isinstance(ms, (int, float)):
        return "—"
    if ms < 1000:
        return f"{ms:.0f} ms"
    return f"{ms / 1000:.2f} s" if ms < 60_000 else f"{ms / 60_000:.1f} min"


def _uptime(s: float) -> str:
    d, rest = divmod(int(s), 86_400)
    h, rest = divmod(rest, 3600)
    m, sec = divmod(rest, 60)
    return (f"{d}d " if d else "") + f"{h:02d}:{m:02d}:{sec:02d}"


def _pct(x: Any) -> str:
    return f"{x * 100:.1f} %" if isinstance(x, (int, float)) else "—"


def _clock(ms: int) -> str:
    return format_ms(ms)[11:19]


_NUMERIC = frozenset({"value", "avg", "p95", "runs", "samples/s", "total", "count"})


def _table(*columns: str) -> Table:
    t = Table(show_edge=False)
    for c in columns:  # fold, never cut: a name is shown whole
        t.add_column(c, overflow="fold", justify="right" if c in _NUMERIC else "left")
    return t


def _section(title: str, body: RenderableType, *more: RenderableType) -> Group:
    """A bold title over ``body``; an empty table is replaced by ``(none)``."""
    if isinstance(body, Table) and not body.row_count:
        body = Text("(none)", style="dim")
    return Group(Text(title, style="bold"), body, *more)


def _instances(s: Snapshot) -> RenderableType:
    t = _table("address", "version", "uptime", "health", "ready", "schema", "data dir")
    st = s.status.doc if isinstance(s.status.doc, dict) else {}
    health = s.health.doc.get("status", "?") if isinstance(s.health.doc, dict) else "down"
    ready = s.ready.doc.get("status", "?") if isinstance(s.ready.doc, dict) else (
        "not ready" if s.ready.status == 503 else "?")
    t.add_row(s.url, st.get("version", "—"),
              _uptime(st["uptime_s"]) if "uptime_s" in st else "—", health, ready,
              str(st.get("schema_version", "—")), st.get("data_dir", "—"))
    parts = (("health", s.health), ("ready", s.ready), ("version, uptime, store", s.status))
    notes = [Text(f"{name}: {p.problem}", style="yellow") for name, p in parts if p.problem]
    return _section("Instances", t, *notes)


def _ingest(s: Snapshot) -> RenderableType:
    if not isinstance(s.ingest.doc, Ingest):
        return _section("Ingest", _na(s.ingest))
    ing, r = s.ingest.doc, s.rates
    over = f"over the last {r.elapsed_s:.1f} s" if r else "measuring: needs a second poll"
    t = _table("source", "samples/s", "total")
    t.add_row("all (committed)", f"{r.committed_per_s:,.1f}" if r else "…",
              f"{ing.committed:,.0f}")
    for proto, total in sorted(ing.by_protocol.items()):
        t.add_row(proto, f"{r.by_protocol_per_s.get(proto, 0.0):,.1f}" if r else "…",
                  f"{total:,.0f}")
    return _section(f"Ingest ({over})", t,
                    Text(f"batches rejected: {ing.rejected_batches:,.0f}", style="dim"))


def _alerts(s: Snapshot, limit: int | None) -> RenderableType:
    if s.alerts.problem:
        return _section("Firing alerts", _na(s.alerts))
    rows: list[dict[str, Any]] = s.alerts.doc
    if not rows:
        return _section("Firing alerts (0)", Text("No firing alerts.", style="green"))
    t = _table("severity", "rule", "labels", "state", "value", "since (UTC)")
    style = {"critical": "bold red", "high": "red", "medium": "yellow", "low": "cyan"}
    for a in rows[:limit]:
        labels = " ".join(f"{k}={v}" for k, v in sorted(a.get("labels", {}).items())
                          if k not in ("alertname", "severity"))
        value = a.get("value")
        t.add_row(Text(str(a.get("severity")), style=style.get(str(a.get("severity")), "")),
                  str(a.get("rule")), labels, str(a.get("state")),
                  f"{value:.6g}" if isinstance(value, (int, float)) else "—",
                  format_ms(int(a["starts_ms"]))[:19].replace("T", " ")
                  if a.get("starts_ms") else "—")
    more = len(rows) - limit if limit is not None and len(rows) > limit else 0
    return _section(f"Firing alerts ({len(rows)})", t,
                    *([Text(f"… and {more} more (press 2)", style="dim")] if more else []))


def _task_summary(s: Snapshot) -> RenderableType:
    if s.performance.problem:
        return _section("Tasks", _na(s.performance))
    p = s.performance.doc
    score = p.get("system_health_score")
    st, pt = p.get("task_statistics") or {}, p.get("processing_times") or {}
    if score is None and not st.get("total_tasks"):
        return _section("Tasks", Text("No task executions recorded.", style="dim"))
    head = f"{score:.1f}" if isinstance(score, (int, float)) else "—"
    return _section(
        f"Task health score {head}",
        Text(f"executions {st.get('total_tasks', 0):,} · completed {st.get('completed', 0):,}"
             f" · failed {st.get('failed', 0):,} · retried {st.get('retried', 0):,}\n"
             f"p50 {_duration(pt.get('p50'))} · p95 {_duration(pt.get('p95'))} · "
             f"p99 {_duration(pt.get('p99'))}"))


def _slowest(s: Snapshot, limit: int | None, detail: bool) -> RenderableType:
    if s.bottlenecks.problem:
        return _section("Slowest tasks", _na(s.bottlenecks))
    b = s.bottlenecks.doc
    t = _table("task", "avg", "p95", "runs", "failures")
    for row in (b.get("slowest_tasks") or [])[:limit]:
        t.add_row(f"{row['namespace']}/{row['task_name']}", _duration(row["avg_duration_ms"]),
                  _duration(row["p95_duration_ms"]), f"{row['execution_count']:,}",
                  _pct(row["failure_rate"]))
    out = [_section(f"Slowest tasks ({b.get('analysis_period', '?')})", t)]
    if detail:
        steps = _table("task", "step", "avg", "p95", "retries", "timeout")
        for row in b.get("slowest_steps") or []:
            steps.add_row(f"{row['namespace']}/{row['task_name']}", row["step_name"],
                          _duration(row["avg_duration_ms"]), _duration(row["p95_duration_ms"]),
                          _pct(row["retry_rate"]),
                          f"{row['timeout_s']:g} s" if row.get("timeout_s") else "—")
        errors = _table("error", "count", "steps")
        for row in b.get("error_patterns") or []:
            errors.add_row(row["error_type"], f"{row['frequency']:,}",
                           ", ".join(row.get("affected_steps") or []))
        recs = _table("kind", "where", "why")
        for r in b.get("recommendations") or []:
            where = "/".join(str(r[k]) for k in ("namespace", "task_name", "step") if k in r)
            recs.add_row(str(r.get("type")), where, str(r.get("rationale", "")))
        out += [_section("Slowest steps", steps), _section("Error patterns", errors),
                _section("Recommendations", recs)]
    return Group(*out)


def _insights(s: Snapshot, limit: int | None) -> RenderableType:
    if s.insights.problem:
        return _section("Insights", _na(s.insights))
    doc = s.insights.doc
    names = ", ".join(doc["metrics"]) or "no metrics stored yet"
    when = f", as of {_clock(s.insights_ms)} UTC" if s.insights_ms else ""
    t = _table("severity", "type", "finding")
    for i in doc["insights"][:limit]:
        finding = Text(str(i.get("title")))
        if limit is None:
            finding.append(f"\n{i.get('description', '')}", style="dim")
            if i.get("recommendation"):
                finding.append(f"\n→ {i['recommendation']}")
        t.add_row(str(i.get("severity")), str(i.get("type")), finding)
    return _section(f"Insights (last hour of {names}{when})", t)


HELP = """[bold]Keys[/]
  1  overview: every panel        2  alerts: every firing alert
  3  tasks: slowest tasks, steps, errors, recommendations
  4  insights: with descriptions and advice
  tab  next view    ?  this help    q  quit (also Ctrl-C)

Every figure is the server's answer; a panel says "not available" and why when its
endpoint failed. The ingest rate is the change of the server's counters between polls."""


def render(s: Snapshot, screen: Screen) -> RenderableType:
    """The frame for ``screen`` from ``s``; no I/O."""
    tabs = Text("vigil top ", style="bold")
    for i, v in enumerate(VIEWS, 1):
        tabs.append(f" {i} {v} ", style="reverse" if v == screen.view else "")
    tabs.append(f"   {s.url}  polled {_clock(s.polled_ms)} UTC", style="dim")
    if screen.keys:
        tabs.append("   ? help  q quit", style="dim")
    if screen.help:
        body: RenderableType = Panel(Text.from_markup(HELP), title="help")
    elif screen.view == "alerts":
        body = _alerts(s, None)
    elif screen.view == "tasks":
        body = Group(_task_summary(s), _slowest(s, None, detail=True))
    elif screen.view == "insights":
        body = _insights(s, None)
    else:
        side = Table.grid(expand=True, padding=(0, 2))
        side.add_column()  # ingest: as wide as its table
        side.add_column(ratio=1)
        side.add_row(_ingest(s), Group(_task_summary(s), _slowest(s, 5, detail=False)))
        body = Group(_instances(s), Text(), side, Text(), _alerts(s, 8), Text(),
                     _insights(s, 5))
    return Group(tabs, Text(), body)


# ------------------------------------------------------------------ command
def _fatal(s: Snapshot) -> str | None:
    """Why the snapshot is no use at all (server unreachable, not Vigil, credential
    refused), or None."""
    if s.health.problem and s.health.status is None:
        return (f"cannot reach a Vigil server at {s.url} ({s.health.problem}); is it running "
                "(vigil serve)? Pass --url to point at it.")
    if s.health.status == 404:
        return f"{s.url} does not look like a Vigil server (/health: HTTP 404)"
    refused = next((p for p in s.parts() if p.status == 401), None)
    if refused is not None:
        return f"the server at {s.url} refused the request: {refused.problem}"
    return None


def _live(console: Console, poller: Poller, snap: Snapshot, interval_s: float) -> None:
    keys: queue.Queue[str] = queue.Queue()
    with KeyReader(keys) as reader:
        screen = Screen(keys=reader.active)
        with Live(render(snap, screen), console=console, screen=True, auto_refresh=False,
                  redirect_stderr=False) as live:
            next_poll = time.monotonic() + interval_s
            while True:
                try:
                    screen = press(screen, keys.get(
                        timeout=max(0.0, next_poll - time.monotonic())))
                except queue.Empty:
                    snap = poller.poll()
                    next_poll = time.monotonic() + interval_s
                if screen.quit:
                    return
                live.update(render(snap, screen), refresh=True)


def top(
    url: Annotated[str, typer.Option(help="The server to watch.")] = DEFAULT_URL,
    interval: Annotated[float, typer.Option(
        min=0.1, help="Seconds between polls; also the window of the ingest rate.")] = 2.0,
    metric: Annotated[Optional[list[str]], typer.Option(  # noqa: UP045
        "--metric", "-m", help="Metric for the insights panel (repeatable; default: the "
        f"first {DEFAULT_INSIGHT_METRICS} the server lists).")] = None,
    once: Annotated[bool, typer.Option(
        "--once", help="Print one frame (overview) and exit; waits one --interval to "
        "measure the ingest rate.")] = False,
    config_path: Annotated[Optional[Path], typer.Option(  # noqa: UP045
        "--config", "-c", help="TOML config file (for client_token).")] = None,
) -> None:
    """Live terminal view of a running server: instances, ingest rate, firing alerts,
    slowest tasks, insights. Keys: 1-4 or tab switch views, ? help, q quit. Sends the
    client_token setting (VIGIL_CLIENT_TOKEN) when the server wants a credential."""
    from vigil.cli import _settings  # not at the top: vigil.cli imports this module

    settings = _settings(config_path)
    console = Console()
    with Client(url, token=settings.client_token or None, timeout_s=TIMEOUT_S) as client:
        poller = Poller(client, url.rstrip("/"), metric or [])
        if once:
            poller.prime()
            time.sleep(interval)
        snap = poller.poll()
        problem = _fatal(snap)
        if problem:
            err.print(f"[red]error:[/] {problem}", highlight=False)
            raise typer.Exit(1)
        if once:
            console.print(render(snap, Screen(keys=False)))
            return
        with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C quits as q does
            _live(console, poller, snap, interval)
