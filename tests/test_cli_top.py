"""``vigil top`` against a real server on loopback: the frame shows what the server holds,
keys switch views, each view draws from a snapshot, and failures say what to do."""

from __future__ import annotations

import io
import os
import queue
import termios
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console, RenderableType
from typer.testing import CliRunner

from tests.alerting.test_delivery import wait_until
from tests.conftest import Server, free_port, make_settings
from vigil.app import build
from vigil.cli import app
from vigil.cli_top import (
    VIEWS,
    KeyReader,
    Part,
    Poller,
    Screen,
    Snapshot,
    View,
    ingest_rates,
    parse_ingest,
    press,
    render,
)
from vigil.client import Client
from vigil.security import apikeys

runner = CliRunner()
WIDE = {"COLUMNS": "220", "VIGIL_CLIENT_TOKEN": None}
RULE = {"name": "cpu high", "metric": "cpu_usage_user", "match": ["hostname=h1"],
        "condition": {"type": "threshold", "op": ">", "threshold": 90, "for_s": 0},
        "severity": "critical", "channels": []}
QUEUE_POINTS = 60  # per host, one a minute over the last hour, rising: trend insights


def _task(name: str, i: int, duration_ms: int, now: int) -> dict[str, Any]:
    start = now - 3_600_000 + i * 60_000
    return {"namespace": "billing", "task_name": name, "task_id": f"{name}-{i}",
            "status": "completed", "started_at": start, "finished_at": start + duration_ms}


def _load(url: str) -> int:
    """A firing alert, two rising series, two tasks; the samples written."""
    now_s = int(time.time())
    lines = [f"cpu,hostname=h1 usage_user=95 {now_s}", f"cpu,hostname=h2 usage_user=20 {now_s}"]
    lines += [f"queue,host={h} depth={10 + i * k} {now_s - 3600 + i * 60}"
              for h, k in (("a", 2), ("b", 3)) for i in range(QUEUE_POINTS)]
    now = now_s * 1000
    with Client(url) as c:
        c.post("/api/v1/rules", RULE)
        c.write_lines("\n".join(lines), precision="s")
        c.post("/api/v1/tasks/events", {"tasks": [
            *(_task("invoice_run", i, 4_000 + i, now) for i in range(5)),
            *(_task("send_receipt", i, 200 + i, now) for i in range(5))]})
        wait_until(lambda: c.get("/api/v1/alerts", state="triggered")["alerts"])
    return len(lines)


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, int]]:
    """A server with alerting running, holding a firing alert, rising series and task
    executions; and how many samples were written to it. Tests only read from it."""
    c = build(make_settings(tmp_path_factory.mktemp("top"), retention_raw=0,
                            alert_tick="100ms"))
    with Server(c) as s:
        yield s, _load(s.url)
    c.close()


@pytest.fixture(scope="module")
def snap(loaded: tuple[Server, int]) -> Snapshot:
    """One poll of the loaded server, with insights on the rising metric."""
    with Client(loaded[0].url) as client:
        return Poller(client, loaded[0].url, ["queue_depth"]).poll()


def text_of(r: RenderableType) -> str:
    console = Console(file=io.StringIO(), width=220, color_system=None)
    console.print(r)
    out = console.file.getvalue()  # type: ignore[attr-defined]
    assert isinstance(out, str)
    return out


def top(*args: str, env: dict[str, str | None] | None = None) -> tuple[int, str]:
    result = runner.invoke(app, ["top", *args], env={**WIDE, **(env or {})})
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    return result.exit_code, result.output


# ------------------------------------------------------------------ end to end
def test_once_shows_what_the_server_holds(loaded: tuple[Server, int]) -> None:
    server, written = loaded
    code, out = top("--url", server.url, "--once", "--interval", "0.1", "-m", "queue_depth")
    assert code == 0, out
    assert server.url in out and "0.1.0" in out and "ready" in out  # the instance row
    assert "Ingest (over the last" in out
    assert f"{written:,}" in out  # samples committed, every one we wrote
    assert "Firing alerts (1)" in out and "cpu high" in out and "hostname=h1" in out
    assert "billing/invoice_run" in out and "billing/send_receipt" in out
    assert "queue_depth increasing on host=a" in out
    assert "not available" not in out


def test_the_ingest_rate_is_the_counter_delta_between_polls(tmp_path: Path) -> None:
    c = build(make_settings(tmp_path, retention_raw=0), start_maintenance=False)
    with Server(c) as s, Client(s.url) as client:
        poller = Poller(client, s.url)
        first = poller.poll()
        assert first.rates is None
        assert "measuring: needs a second poll" in text_of(render(first, Screen()))
        client.write_lines("\n".join(f"jobs,queue=q{i} depth={i}" for i in range(250)))
        second = poller.poll()
    c.close()
    r = second.rates
    assert r is not None
    assert r.committed_per_s * r.elapsed_s == pytest.approx(250)
    assert r.by_protocol_per_s["influx"] * r.elapsed_s == pytest.approx(250)
    shown = text_of(render(second, Screen()))
    assert f"over the last {r.elapsed_s:.1f} s" in shown
    assert f"{r.committed_per_s:,.1f}" in shown


def test_unreachable_server_exits_1_with_a_message() -> None:
    code, out = top("--url", f"http://127.0.0.1:{free_port()}", "--once", "--interval", "0.1")
    assert code == 1
    assert "cannot reach a Vigil server" in out and "--url" in out


def test_401_says_to_pass_an_api_key_and_a_key_works(tmp_path: Path) -> None:
    c = build(make_settings(tmp_path, retention_raw=0, jwt_secret="s" * 40),
              start_maintenance=False)
    key = apikeys.create(c.security, tenant="default", name="top", role="viewer",
                         now_ms=int(time.time() * 1000))
    with Server(c) as s:
        code, out = top("--url", s.url, "--once", "--interval", "0.1")
        assert code == 1
        assert "not authorised" in out and "VIGIL_CLIENT_TOKEN" in out
        code, out = top("--url", s.url, "--once", "--interval", "0.1",
                        env={"VIGIL_CLIENT_TOKEN": key.secret})
    c.close()
    assert code == 0, out
    # a viewer reads alerts and tasks, not the admin-only status: said, not invented
    assert "version, uptime, store: not permitted for this credential" in out
    assert "No firing alerts." in out


# ------------------------------------------------------------------ keys
@pytest.mark.parametrize(("start", "key", "view", "help", "quit"), [
    ("overview", "1", "overview", False, False),
    ("overview", "2", "alerts", False, False),
    ("overview", "3", "tasks", False, False),
    ("tasks", "4", "insights", False, False),
    ("overview", "\t", "alerts", False, False),
    ("insights", "\t", "overview", False, False),
    ("alerts", "?", "alerts", True, False),
    ("alerts", "q", "alerts", False, True),
    ("alerts", "Q", "alerts", False, True),
    ("tasks", "x", "tasks", False, False),
    ("tasks", "5", "tasks", False, False),
    ("tasks", "\x1b", "tasks", False, False),
])
def test_press(start: View, key: str, view: View, help: bool, quit: bool) -> None:
    assert press(Screen(view=start), key) == Screen(view=view, help=help, quit=quit)


def test_a_view_key_closes_help_and_question_mark_toggles_it() -> None:
    shown = press(Screen(), "?")
    assert press(shown, "?").help is False
    assert press(shown, "3") == Screen(view="tasks")


def test_key_reader_reads_a_terminal_and_restores_its_mode() -> None:
    master, slave = os.openpty()
    with os.fdopen(slave, "r") as tty_in:
        before = termios.tcgetattr(slave)
        keys: queue.Queue[str] = queue.Queue()
        with KeyReader(keys, tty_in) as reader:
            assert reader.active
            assert not termios.tcgetattr(slave)[3] & termios.ICANON  # cbreak: key by key
            os.write(master, b"3q")
            assert [keys.get(timeout=10), keys.get(timeout=10)] == ["3", "q"]
        assert termios.tcgetattr(slave) == before
    os.close(master)


def test_key_reader_is_off_without_a_terminal() -> None:
    keys: queue.Queue[str] = queue.Queue()
    with KeyReader(keys, io.StringIO("3q")) as reader:
        assert not reader.active
    assert keys.empty()


# ------------------------------------------------------------------ views
@pytest.mark.parametrize(("view", "present", "absent"), [
    ("overview", ["Instances", "Ingest", "Task health score", "billing/invoice_run",
                  "cpu high", "queue_depth increasing on host=a"], ["Slowest steps"]),
    ("alerts", ["Firing alerts (1)", "critical", "cpu high", "hostname=h1", "95"],
     ["Instances", "billing/"]),
    ("tasks", ["Task health score", "executions 10", "billing/invoice_run",
               "billing/send_receipt", "Slowest steps", "Error patterns"], ["cpu high"]),
    ("insights", ["Insights (last hour of queue_depth", "queue_depth increasing on host=b",
                  "Theil–Sen slope"], ["cpu high"]),
])
def test_each_view_draws_the_snapshot(snap: Snapshot, view: View, present: list[str],
                                      absent: list[str]) -> None:
    shown = text_of(render(snap, Screen(view=view)))
    for tab in VIEWS:
        assert tab in shown
    for s in present:
        assert s in shown, s
    for s in absent:
        assert s not in shown, s


def test_help_lists_the_keys(snap: Snapshot) -> None:
    shown = text_of(render(snap, Screen(view="tasks", help=True)))
    assert "tab  next view" in shown and "q  quit" in shown
    assert "? help" in shown
    assert "? help" not in text_of(render(snap, Screen(keys=False)))


@pytest.mark.parametrize("view", VIEWS)
def test_failed_parts_say_why_instead_of_showing_numbers(view: View) -> None:
    gone = Part(problem="not permitted for this credential (needs alerts:read)", status=403)
    snap = Snapshot("http://vigil.test", 0, Part({"status": "ok"}), gone, gone, gone, None,
                    gone, gone, gone, gone)
    shown = text_of(render(snap, Screen(view=view)))
    assert "not available: not permitted for this credential (needs alerts:read)" in shown
    assert "No firing alerts." not in shown and "samples/s" not in shown


# ------------------------------------------------------------------ counters
def test_parse_ingest_and_rates() -> None:
    page = ("vigil_store_committed_samples_total 100.0\n"
            'vigil_samples_ingested_total{protocol="json"} 60.0\n'
            'vigil_samples_ingested_total{protocol="influx"} 40.0\n'
            'vigil_batches_rejected_total{protocol="json",reason="invalid"} 2.0\n')
    before = parse_ingest(page)
    assert (before.committed, before.by_protocol, before.rejected_batches) == (
        100.0, {"json": 60.0, "influx": 40.0}, 2.0)
    after = parse_ingest(page.replace("100.0", "140.0").replace("60.0", "100.0"))
    rates = ingest_rates(before, after, 2.0)
    assert rates is not None
    assert (rates.committed_per_s, rates.by_protocol_per_s) == (20.0, {"json": 20.0,
                                                                       "influx": 0.0})
    assert ingest_rates(after, before, 2.0) is None  # counters went back: a restart
    assert ingest_rates(before, after, 0.0) is None
    with pytest.raises(ValueError, match="committed_samples"):
        parse_ingest("# nothing here\n")
