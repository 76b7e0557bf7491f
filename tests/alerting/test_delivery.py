"""The dispatcher against real receivers: retries, dead letters, rate limits, quiet hours
(driven step by step with an injected clock), and the threaded mode."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from tests.alerting.notifications import T0, notification
from tests.alerting.receivers import HttpReceiver, SmtpReceiver
from vigil.alerting.channels import Channel, parse_channel
from vigil.alerting.delivery import DeadLetter, Dispatcher
from vigil.alerting.senders import ChannelSenders


class Clock:
    def __init__(self, now_ms: int) -> None:
        self.now_ms = now_ms

    def __call__(self) -> int:
        return self.now_ms


class Rig:
    """A dispatcher wired to real senders, a channel table and a dead-letter list."""

    def __init__(self, http: HttpReceiver, *, real_clock: bool = False, **kw: Any) -> None:
        self.http = http
        self.clock = Clock(T0)
        self.channels: dict[tuple[str, str], Channel] = {}
        self.lookup_failures = 0  # so many lookups raise first
        self.dead: list[tuple[str, DeadLetter]] = []
        self.dead_letter_store_down = False
        self.published: list[tuple[str, Mapping[str, object]]] = []
        self.senders = ChannelSenders(lambda t, m: self.published.append((t, m)))
        clock = (lambda: int(time.time() * 1000)) if real_clock else self.clock
        self.d = Dispatcher(self.lookup, self.senders.send, self.on_dead_letter, clock=clock,
                            **kw)

    def lookup(self, tenant: str, name: str) -> Channel | None:
        if self.lookup_failures:
            self.lookup_failures -= 1
            raise OSError("store busy")
        return self.channels.get((tenant, name))

    def on_dead_letter(self, tenant: str, record: DeadLetter) -> None:
        if self.dead_letter_store_down:
            raise RuntimeError("store down")
        self.dead.append((tenant, record))

    def channel(self, name: str = "ops", path: str = "/hook", tenant: str = "t1",
                **doc: Any) -> Channel:
        ch = parse_channel({"name": name, "type": "webhook", "url": self.http.url + path,
                            "backoff_s": 1.0, **doc})
        self.channels[(tenant, name)] = ch
        return ch

    def step_to_next(self) -> int:
        due = self.d.next_due_ms()
        assert due is not None
        self.clock.now_ms = due
        return self.d.run_due()

    def counters(self, kind: str = "webhook") -> dict[str, int]:
        return self.d.stats()["by_type"].get(kind, {})

    def groups(self, path: str = "/hook") -> list[tuple[str, int]]:
        """(groupKey, alert count) of each successful request on ``path``, in order."""
        return [(b["groupKey"], len(b["alerts"])) for b in
                (r.json() for r in self.http.on(path))]


@pytest.fixture
def rig() -> Iterator[Rig]:
    """A dispatcher in step mode (``run_due``), a fake clock at T0, an HTTP receiver."""
    http = HttpReceiver()
    r = Rig(http)
    yield r
    r.d.close()
    r.senders.close()
    http.close()


def wait_until(cond: Any, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not cond():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.005)


# --- retries and dead letters --------------------------------------------------------


def test_a_notification_is_delivered_once(rig: Rig, caplog: pytest.LogCaptureFixture) -> None:
    rig.channel()
    with caplog.at_level(logging.INFO, logger="vigil.alerting"):
        assert rig.d.submit("t1", notification())
        assert rig.d.run_due() == 1
    assert caplog.records == []  # no log line per notification
    assert rig.groups() == [("g1", 1)]
    assert rig.counters()["sent"] == 1
    assert rig.d.stats()["pending"] == 0
    assert rig.d.next_due_ms() is None


def test_500_then_200_is_retried_and_delivered_once(rig: Rig) -> None:
    rig.channel(max_retries=3)
    rig.http.script["/hook"] = [500]
    rig.d.submit("t1", notification())
    rig.d.run_due()
    assert rig.d.next_due_ms() == T0 + 1000
    rig.step_to_next()
    assert [r.json()["groupKey"] for r in rig.http.on("/hook")] == ["g1", "g1"]
    assert rig.http.script["/hook"] == []
    c = rig.counters()
    assert (c["sent"], c["failed_attempts"], c["dead_letters"]) == (1, 1, 0)
    assert rig.dead == [] and rig.d.next_due_ms() is None


@pytest.mark.parametrize(("max_backoff_s", "delays"), [
    (300.0, [1000, 2000, 4000]), (1.5, [1000, 1500, 1500])])
def test_always_500_is_dead_lettered_after_max_retries(rig: Rig, max_backoff_s: float,
                                                       delays: list[int]) -> None:
    rig.channel(max_retries=3, max_backoff_s=max_backoff_s)
    rig.http.script["/hook"] = [500] * 10
    rig.d.submit("t1", notification(count=2, severity="critical"))
    rig.d.run_due()
    seen = []
    while (due := rig.d.next_due_ms()) is not None:
        seen.append(due - rig.clock.now_ms)
        rig.step_to_next()
    assert seen == delays  # backoff_s * 2**retry, capped
    assert len(rig.http.on("/hook")) == 4  # the first attempt and 3 retries
    (tenant, rec), = rig.dead
    assert tenant == "t1"
    assert (rec.channel, rec.channel_type, rec.attempts, rec.retryable) == (
        "ops", "webhook", 4, True)
    assert "HTTP 500" in rec.error
    assert rec.summary == "[FIRING:2] cpu high (critical)"
    assert rec.alert_ids == ("a0", "a1") and rec.group_key == "g1"
    assert rec.failed_ms == rig.clock.now_ms and rec.created_ms == T0
    assert rec.as_dict()["attempts"] == 4
    c = rig.counters()
    assert (c["sent"], c["failed_attempts"], c["dead_letters"]) == (0, 4, 1)


def test_429_waits_for_retry_after(rig: Rig) -> None:
    rig.channel(max_retries=1)
    rig.http.script["/hook"] = [429]  # the receiver sends Retry-After: 7
    rig.d.submit("t1", notification())
    rig.d.run_due()
    assert rig.d.next_due_ms() == T0 + 7000
    rig.step_to_next()
    assert len(rig.http.on("/hook")) == 2 and rig.counters()["sent"] == 1


def test_400_is_not_retried(rig: Rig) -> None:
    rig.channel(max_retries=5)
    rig.http.script["/hook"] = [400]
    rig.d.submit("t1", notification())
    rig.d.run_due()
    assert len(rig.http.on("/hook")) == 1
    (_, rec), = rig.dead
    assert (rec.attempts, rec.retryable) == (1, False)
    assert "HTTP 400" in rec.error
    assert rig.d.next_due_ms() is None


def test_an_unknown_channel_is_dead_lettered(rig: Rig) -> None:
    rig.d.submit("t1", notification("nope"))
    rig.d.run_due()
    (_, rec), = rig.dead
    assert (rec.channel, rec.channel_type, rec.attempts) == ("nope", "", 0)
    assert rec.error == "unknown channel"
    assert rig.d.stats()["by_type"]["unknown"]["dead_letters"] == 1


def test_dead_letters_and_logs_contain_no_secret(rig: Rig,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    port = rig.http.url.rsplit(":", 1)[1]
    rig.channels[("t1", "ops")] = parse_channel({
        "name": "ops", "type": "webhook", "max_retries": 1, "backoff_s": 0,
        "url": f"http://bob:basicpw42@127.0.0.1:{port}/hook?token=q-secret-77",
        "headers": {"X-Token": "tok-9f8e7d"}})
    rig.http.script["/hook"] = [503, 503]
    with caplog.at_level(logging.DEBUG, logger="vigil.alerting"):
        rig.d.submit("t1", notification())
        rig.d.run_due()  # backoff 0: the retry is due at once
    (_, rec), = rig.dead
    assert rec.attempts == 2
    logged = " ".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    assert "HTTP 503" in rec.error and "HTTP 503" in logged
    for secret in ("basicpw42", "q-secret-77", "tok-9f8e7d"):
        assert secret not in rec.error and secret not in repr(rec.as_dict())
        assert secret not in logged


def test_the_channel_is_looked_up_at_send_time(rig: Rig) -> None:
    rig.d.submit("t1", notification())
    rig.channel(path="/new")  # created (or changed) after the submit
    rig.d.run_due()
    assert rig.groups("/new") == [("g1", 1)]


def test_a_failing_lookup_is_retried(rig: Rig) -> None:
    rig.lookup_failures = 1
    rig.channel()
    rig.d.submit("t1", notification())
    rig.d.run_due()
    rig.step_to_next()
    assert rig.groups() == [("g1", 1)] and rig.dead == []


def test_tenants_have_their_own_channels(rig: Rig) -> None:
    rig.channel(tenant="t1", path="/one")
    rig.channel(tenant="t2", path="/two")
    rig.d.submit("t1", notification(group="a"))
    rig.d.submit("t2", notification(group="b"))
    rig.d.run_due()
    assert (rig.groups("/one"), rig.groups("/two")) == ([("a", 1)], [("b", 1)])


def test_a_newer_notification_replaces_one_waiting_to_retry(rig: Rig) -> None:
    rig.channel(max_retries=3)
    rig.http.script["/hook"] = [500]
    rig.d.submit("t1", notification())
    rig.d.run_due()  # fails, waits to retry
    rig.d.submit("t1", notification(status="resolved"))
    rig.d.run_due()
    assert rig.d.next_due_ms() is None  # the stale firing one is not retried after it
    assert [r.json()["status"] for r in rig.http.on("/hook")] == ["firing", "resolved"]
    assert rig.counters()["coalesced"] == 1


def test_resolved_is_skipped_when_the_channel_says_so(rig: Rig) -> None:
    rig.channel(send_resolved=False)
    rig.d.submit("t1", notification(status="resolved"))
    rig.d.run_due()
    assert rig.http.on("/hook") == [] and rig.counters()["skipped"] == 1


def test_a_failing_dead_letter_callback_does_not_stop_delivery(rig: Rig) -> None:
    rig.dead_letter_store_down = True
    rig.channel()
    rig.d.submit("t1", notification("gone"))
    rig.d.submit("t1", notification())
    assert rig.d.run_due() == 2
    assert rig.groups() == [("g1", 1)]


# --- rate limits and quiet hours -----------------------------------------------------


def test_over_the_rate_limit_notifications_are_held_and_coalesced(rig: Rig) -> None:
    rig.channel(rate_limit_per_min=2)
    for group, count in [("g1", 1), ("g2", 1), ("g3", 1), ("g3", 2), ("g4", 1)]:
        rig.d.submit("t1", notification(group=group, count=count))
    rig.d.run_due()
    assert rig.groups() == [("g1", 1), ("g2", 1)]
    s = rig.d.stats()
    assert (s["holding"], s["pending"]) == (2, 2)
    assert (rig.counters()["held"], rig.counters()["coalesced"]) == (3, 1)
    assert rig.d.next_due_ms() == T0 + 60_000  # when the first send leaves the window
    rig.clock.now_ms = T0 + 59_999
    assert rig.d.run_due() == 0
    rig.step_to_next()
    assert rig.groups() == [("g1", 1), ("g2", 1), ("g3", 2), ("g4", 1)]  # newest g3 only
    assert rig.d.stats()["pending"] == 0


def test_the_rate_limit_releases_only_the_budget(rig: Rig) -> None:
    rig.channel(rate_limit_per_min=1)
    for g in ("a", "b", "c"):
        rig.d.submit("t1", notification(group=g))
    rig.d.run_due()
    rig.step_to_next()
    assert [g for g, _ in rig.groups()] == ["a", "b"]
    rig.step_to_next()
    assert [g for g, _ in rig.groups()] == ["a", "b", "c"]


BERLIN_NIGHT = {"tz": "Europe/Berlin", "windows": [{"start": "22:00", "end": "07:00"}]}
THU_2300_BERLIN = 1_768_514_400_000  # 2026-01-15T22:00:00Z
FRI_0700_BERLIN = THU_2300_BERLIN + 8 * 3_600_000


def test_quiet_hours_hold_non_critical_until_they_end(rig: Rig) -> None:
    rig.clock.now_ms = THU_2300_BERLIN
    rig.channel(quiet_hours=BERLIN_NIGHT)
    rig.d.submit("t1", notification(group="g1", severity="high"))
    rig.d.submit("t1", notification(group="g1", severity="high", count=3))
    rig.d.submit("t1", notification(group="g2", severity="critical"))
    rig.d.submit("t1", notification(group="g3", severity="low"))
    rig.d.run_due()
    assert rig.groups() == [("g2", 1)]  # critical goes out at once
    assert (rig.counters()["held"], rig.counters()["coalesced"]) == (3, 1)
    assert rig.d.next_due_ms() == FRI_0700_BERLIN
    rig.clock.now_ms = FRI_0700_BERLIN - 1
    assert rig.d.run_due() == 0
    rig.step_to_next()
    assert rig.groups() == [("g2", 1), ("g1", 3), ("g3", 1)]  # newest of g1, in order
    assert rig.d.stats()["holding"] == 0


def test_a_flood_held_in_quiet_hours_collapses_to_the_newest(rig: Rig) -> None:
    rig.clock.now_ms = THU_2300_BERLIN
    rig.channel(quiet_hours=BERLIN_NIGHT)
    for i in range(3000):
        assert rig.d.submit("t1", notification(group="g1", severity="low",
                                               created_ms=THU_2300_BERLIN + i))
        if i % 100 == 99:
            rig.d.run_due()
    rig.d.run_due()
    s = rig.d.stats()
    assert (s["pending"], s["holding"], rig.counters()["coalesced"]) == (1, 1, 2999)
    rig.step_to_next()
    assert rig.groups() == [("g1", 1)] and rig.d.next_due_ms() is None


def test_a_critical_notification_replaces_the_held_one_of_its_group(rig: Rig) -> None:
    rig.clock.now_ms = THU_2300_BERLIN
    rig.channel(quiet_hours=BERLIN_NIGHT)
    rig.d.submit("t1", notification(group="g1", severity="medium"))
    rig.d.run_due()
    rig.d.submit("t1", notification(group="g1", severity="critical", count=2))
    rig.d.run_due()
    assert rig.groups() == [("g1", 2)]
    assert rig.d.next_due_ms() is None and rig.d.stats()["pending"] == 0


def test_outside_quiet_hours_everything_goes_out(rig: Rig) -> None:
    rig.clock.now_ms = FRI_0700_BERLIN
    rig.channel(quiet_hours=BERLIN_NIGHT)
    rig.d.submit("t1", notification(severity="low"))
    rig.d.run_due()
    assert rig.groups() == [("g1", 1)]


def test_close_returns_what_was_not_delivered(rig: Rig) -> None:
    rig.clock.now_ms = THU_2300_BERLIN
    rig.channel(quiet_hours=BERLIN_NIGHT)
    n = notification(severity="low")
    rig.d.submit("t1", n)
    rig.d.run_due()
    assert rig.d.close() == [("t1", n)]
    assert not rig.d.submit("t1", n)  # closed


# --- capacity and threads ------------------------------------------------------------


def test_a_full_queue_refuses_and_counts(rig: Rig) -> None:
    d = Dispatcher(lambda t, n: None, rig.senders.send, lambda t, r: None, queue_size=2)
    assert d.submit("t1", notification()) and d.submit("t1", notification())
    assert not d.submit("t1", notification())
    s = d.stats()
    assert (s["queue_full"], s["pending"]) == (1, 2)


@pytest.fixture
def threaded() -> Iterator[Rig]:
    """A dispatcher with two worker threads and the real clock."""
    http = HttpReceiver()
    r = Rig(http, workers=2, real_clock=True)
    r.d.start()
    yield r
    r.d.close()
    r.senders.close()
    http.close()


def test_threads_deliver_everything(threaded: Rig) -> None:
    threaded.channel("a", path="/a")
    threaded.channel("b", path="/b")
    for i in range(20):
        assert threaded.d.submit("t1", notification("ab"[i % 2], group=f"g{i}"))
    wait_until(lambda: len(threaded.http.requests) == 20)
    assert sorted(g for g, _ in threaded.groups("/a") + threaded.groups("/b")) == sorted(
        f"g{i}" for i in range(20))
    assert threaded.d.close() == []
    assert threaded.counters()["sent"] == 20


def test_a_slow_receiver_does_not_hold_up_other_channels(threaded: Rig) -> None:
    gate = threading.Event()
    threaded.http.gates["/slow"] = gate
    threaded.channel("slow", path="/slow")
    threaded.channel("fast", path="/fast")
    threaded.d.submit("t1", notification("slow"))
    threaded.d.submit("t1", notification("slow", group="g2"))
    threaded.d.submit("t1", notification("fast"))
    wait_until(lambda: len(threaded.http.on("/fast")) == 1)
    assert threaded.http.on("/slow") == []  # still waiting on the gate
    gate.set()
    wait_until(lambda: len(threaded.http.on("/slow")) == 2)
    assert [g for g, _ in threaded.groups("/slow")] == ["g1", "g2"]  # a lane keeps order


def test_retries_in_threaded_mode(threaded: Rig) -> None:
    threaded.channel(max_retries=2, backoff_s=0.01)
    threaded.http.script["/hook"] = [500, 502]
    threaded.d.submit("t1", notification())
    wait_until(lambda: threaded.counters().get("sent") == 1)
    assert len(threaded.http.on("/hook")) == 3 and threaded.dead == []


def test_email_and_websocket_through_the_dispatcher(rig: Rig) -> None:
    smtp = SmtpReceiver()
    try:
        rig.channels[("t1", "mail")] = parse_channel({
            "name": "mail", "type": "email", "smtp_host": "127.0.0.1",
            "smtp_port": smtp.port, "to": ["ops@example.com"]})
        rig.channels[("t1", "live")] = parse_channel({"name": "live", "type": "websocket"})
        rig.d.submit("t1", notification("mail"))
        rig.d.submit("t1", notification("live"))
        rig.d.run_due()
        smtp.wait_for(1)
        assert [m["Subject"] for _, _, m in smtp.messages] == ["[FIRING:1] cpu high (high)"]
        assert [m["type"] for _, m in rig.published] == ["alert_triggered"]
        stats = rig.d.stats()["by_type"]
        assert stats["email"]["sent"] == stats["websocket"]["sent"] == 1
    finally:
        smtp.close()

