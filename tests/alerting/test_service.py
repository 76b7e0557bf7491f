"""The alerting service end to end below HTTP: a real store, real senders, a real
webhook receiver; time from an injectable clock, delivery stepped with ``run_due``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.alerting.receivers import HttpReceiver
from tests.alerting.test_delivery import Clock
from tests.conftest import batch_of
from vigil.alerting.delivery import Dispatcher
from vigil.alerting.senders import ChannelSenders
from vigil.alerting.service import AlertingService
from vigil.core.errors import Conflict, InvalidInput, NotFound
from vigil.storage.alert_store import DuckDBAlertStore
from vigil.storage.duckdb_store import DuckDBStore

T0 = 1_800_000_000_000
S = 1000
TENANT = "t1"


class Rig:
    """One tenant's alerting over a DuckDB file; ``restart()`` builds it anew on the same
    file, as a process restart would."""

    def __init__(self, path: Path, http: HttpReceiver) -> None:
        self.path, self.http = path, http
        self.clock = Clock(T0)
        self.published: list[dict[str, Any]] = []
        self.lifecycle: list[str] = []
        self._open()

    def _open(self) -> None:
        self.store = DuckDBStore(self.path)
        self.senders = ChannelSenders(lambda topic, m: self.published.append(dict(m)))
        svc: list[AlertingService] = []
        self.dispatcher = Dispatcher(
            lambda t, n: svc[0].channel(t, n), self.senders.send,
            lambda t, r: svc[0].dead_letter(t, r.as_dict()), clock=self.clock)
        self.svc = AlertingService(DuckDBAlertStore(self.store.connection()), self.dispatcher,
                                   clock=self.clock,
                                   publish=lambda t, m: self.lifecycle.append(f"{t}:{m['type']}"))
        svc.append(self.svc)

    def close(self) -> None:
        self.svc.close()
        self.dispatcher.close()
        self.senders.close()
        self.store.close()

    def restart(self) -> None:
        self.close()
        self._open()

    def channel(self, name: str = "ops", path: str = "/hook", **doc: Any) -> None:
        self.svc.put_channel(TENANT, {"name": name, "type": "webhook",
                                      "url": self.http.url + path, "backoff_s": 1, **doc})

    def rule(self, **doc: Any) -> str:
        base: dict[str, Any] = {
            "name": "cpu high", "metric": "cpu", "channels": ["ops"], "severity": "high",
            "condition": {"type": "threshold", "op": ">", "threshold": 90}}
        return self.svc.put_rule(TENANT, {**base, **doc}).id

    def at(self, t_s: float) -> None:
        """Move the clock, tick alerting, deliver what is due."""
        self.clock.now_ms = T0 + int(t_s * S)
        self.svc.tick()
        self.dispatcher.run_due()

    def ingest(self, t_s: float, rows: list[tuple[dict[str, str], float]],
               metric: str = "cpu") -> None:
        self.clock.now_ms = T0 + int(t_s * S)
        batch = batch_of([(metric, labels, self.clock.now_ms, v) for labels, v in rows])
        self.svc.process(TENANT, batch)
        self.dispatcher.run_due()

    def sent(self, path: str = "/hook") -> list[dict[str, Any]]:
        return [r.json() for r in self.http.on(path)]

    def alerts(self, **filters: Any) -> list[dict[str, Any]]:
        return self.svc.alerts(TENANT, **filters)


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    """Alerting for tenant t1 over a fresh store, a webhook receiver, the clock at T0."""
    http = HttpReceiver()
    r = Rig(tmp_path / "a.duckdb", http)
    yield r
    r.close()
    http.close()


def test_lifecycle_with_history_and_alertmanager_notifications(rig: Rig) -> None:
    rig.channel()
    rig.rule(annotations={"summary": "{{ $labels.host }} at {{ $value }}%"})
    rig.ingest(0, [({"host": "a"}, 95)])
    [msg] = rig.sent()
    assert msg["version"] == "4" and msg["status"] == "firing"
    [alert] = msg["alerts"]
    assert alert["labels"] == {"alertname": "cpu high", "severity": "high", "host": "a"}
    assert alert["annotations"]["summary"] == "a at 95%"
    [a] = rig.alerts(state="triggered")
    rig.clock.now_ms = T0 + 5 * S
    rig.svc.acknowledge(TENANT, a["id"], "alice", "looking")
    [a] = rig.alerts()
    assert (a["state"], a["acknowledged_by"], a["ack_comment"]) == (
        "acknowledged", "alice", "looking")
    assert a["acknowledged_ms"] == T0 + 5 * S
    rig.ingest(10, [({"host": "a"}, 10)])
    assert len(rig.sent()) == 1  # the resolved message waits for group_interval (60 s)
    rig.at(60)
    assert [m["status"] for m in rig.sent()] == ["firing", "resolved"]
    [a] = rig.alerts(state="resolved")
    assert a["resolve_reason"] == "condition cleared" and a["ends_ms"] == T0 + 10 * S
    events = [(h["event"], h["at_ms"] - T0, h["by"]) for h in rig.svc.history(TENANT, a["id"])]
    assert events == [("triggered", 0, None), ("acknowledged", 5000, "alice"),
                      ("resolved", 10_000, None)]


def test_lifecycle_errors(rig: Rig) -> None:
    rig.channel()
    rig.rule()
    rig.ingest(0, [({"host": "a"}, 95)])
    [a] = rig.alerts()
    with pytest.raises(NotFound):
        rig.svc.acknowledge(TENANT, "nope", "x", None)
    rig.svc.acknowledge(TENANT, a["id"], "bob", None)
    with pytest.raises(InvalidInput, match="only a triggered alert"):
        rig.svc.acknowledge(TENANT, a["id"], "bob", None)
    rig.svc.resolve(TENANT, a["id"], "bob", "fixed")
    with pytest.raises(InvalidInput, match="resolved"):
        rig.svc.resolve(TENANT, a["id"], "bob", None)
    with pytest.raises(NotFound):
        rig.svc.history(TENANT, "nope")


def test_resolved_by_hand_fires_again_only_after_it_cleared(rig: Rig) -> None:
    rig.channel()
    rig.rule()
    rig.ingest(0, [({"host": "a"}, 95)])
    [a] = rig.alerts()
    rig.svc.resolve(TENANT, a["id"], "bob", None)
    assert rig.alerts()[0]["resolve_reason"] == "by hand"
    rig.ingest(10, [({"host": "a"}, 96)])
    assert rig.alerts(state="triggered") == []
    rig.ingest(20, [({"host": "a"}, 10)])
    rig.ingest(30, [({"host": "a"}, 97)])
    assert len(rig.alerts(state="triggered")) == 1


def test_one_hundred_series_in_one_group_make_one_notification(rig: Rig) -> None:
    rig.channel()
    rig.rule(group_wait_s=5)
    rig.ingest(0, [({"host": f"h{i}"}, 95) for i in range(60)])
    rig.ingest(2, [({"host": f"h{i}"}, 95) for i in range(60, 100)])
    assert rig.sent() == []  # group_wait gathers
    rig.at(5)
    [msg] = rig.sent()
    assert len(msg["alerts"]) == 100 and msg["groupLabels"] == {"alertname": "cpu high"}
    rig.ingest(10, [({"host": f"h{i}"}, 99) for i in range(100)])  # same alerts: dedup
    rig.at(70)
    assert len(rig.sent()) == 1


def test_changes_wait_for_group_interval_and_unchanged_groups_repeat(rig: Rig) -> None:
    rig.channel()
    rig.rule(group_interval_s=30, repeat_interval_s=300)
    rig.ingest(0, [({"host": "a"}, 95)])
    rig.ingest(10, [({"host": "b"}, 95)])
    assert [len(m["alerts"]) for m in rig.sent()] == [1]
    rig.at(29)
    assert len(rig.sent()) == 1
    rig.at(30)
    assert [len(m["alerts"]) for m in rig.sent()] == [1, 2]
    rig.at(200)
    assert len(rig.sent()) == 2
    rig.at(330)
    assert [len(m["alerts"]) for m in rig.sent()] == [1, 2, 2]


def test_silences_mute_notifications_but_not_alerts(rig: Rig) -> None:
    rig.channel()
    rig.rule(group_by=["host"])
    s = rig.svc.add_silence(TENANT, {"matchers": ["host=a"], "duration_s": 100,
                                     "author": "alice", "comment": "maintenance"})
    rig.ingest(0, [({"host": "a"}, 95), ({"host": "b"}, 95)])
    assert [m["groupLabels"] for m in rig.sent()] == [{"host": "b"}]
    muted = {a["labels"]["host"]: a["silenced"] for a in rig.alerts()}
    assert muted == {"a": True, "b": False}
    assert rig.svc.silences(TENANT)[0]["active"] is True
    rig.svc.delete_silence(TENANT, s.id)
    rig.at(1)
    assert [m["groupLabels"] for m in rig.sent()] == [{"host": "b"}, {"host": "a"}]
    with pytest.raises(NotFound):
        rig.svc.delete_silence(TENANT, s.id)


def test_silence_ends_by_itself(rig: Rig) -> None:
    rig.channel()
    rig.rule()
    rig.svc.add_silence(TENANT, {"matchers": ["host=~.+"], "duration_s": 30, "author": "a"})
    rig.ingest(0, [({"host": "a"}, 95)])
    assert rig.sent() == []
    rig.at(30)
    assert len(rig.sent()) == 1


@pytest.mark.parametrize(("doc", "field"), [
    ({"matchers": [], "duration_s": 1, "author": "a"}, "matchers"),
    ({"matchers": ["host"], "duration_s": 1, "author": "a"}, "matchers[0]"),
    ({"matchers": ["host=a"], "author": "a"}, "ends_at"),
    ({"matchers": ["host=a"], "duration_s": 1, "ends_at": "2030-01-01T00:00:00Z",
      "author": "a"}, "ends_at"),
    ({"matchers": ["host=a"], "duration_s": -5, "author": "a"}, "duration_s"),
    ({"matchers": ["host=a"], "starts_at": "2030-01-02T00:00:00Z",
      "ends_at": "2030-01-01T00:00:00Z", "author": "a"}, "ends_at"),
    ({"matchers": ["host=a"], "starts_at": "soon", "duration_s": 5, "author": "a"},
     "starts_at"),
    ({"matchers": ["host=a"], "duration_s": 5}, "author"),
])
def test_bad_silences_name_the_field(rig: Rig, doc: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidInput) as err:
        rig.svc.add_silence(TENANT, doc)
    assert err.value.problems[0].field == field
    assert rig.svc.silences(TENANT) == []


def test_a_firing_critical_inhibits_lower_severities_of_its_group(rig: Rig) -> None:
    rig.channel()
    rig.rule(name="cpu critical", severity="critical", group_by=["host"],
             condition={"type": "threshold", "op": ">", "threshold": 95})
    rig.rule(name="cpu high", severity="high", group_by=["host"])
    rig.ingest(0, [({"host": "a"}, 99), ({"host": "b"}, 92)])
    sent = sorted((m["groupLabels"]["host"], m["alerts"][0]["labels"]["alertname"])
                  for m in rig.sent())
    assert sent == [("a", "cpu critical"), ("b", "cpu high")]
    inhibited = {(a["labels"]["host"], a["rule"]): a["inhibited"] for a in rig.alerts()}
    assert inhibited == {("a", "cpu critical"): False, ("a", "cpu high"): True,
                         ("b", "cpu high"): False}
    rig.ingest(10, [({"host": "a"}, 93)])  # critical clears: the high one is shown
    rig.at(70)
    last = rig.sent()[-1]
    assert last["groupLabels"] == {"host": "a"} and last["status"] == "firing"
    assert [(x["labels"]["alertname"], x["status"]) for x in last["alerts"]] == [
        ("cpu high", "firing"), ("cpu critical", "resolved")]


def test_escalation_notifies_the_next_channel_and_raises_severity(rig: Rig) -> None:
    rig.channel()
    rig.channel("pager", "/pager")
    rig.rule(severity="medium", escalation=[
        {"after_s": 600, "channels": ["pager"]},
        {"after_s": 1200, "severity": "critical", "channels": ["pager"]}])
    rig.ingest(0, [({"host": "a"}, 95), ({"host": "b"}, 95)])
    [b] = [a for a in rig.alerts() if a["labels"]["host"] == "b"]
    rig.clock.now_ms = T0 + 100 * S
    rig.svc.acknowledge(TENANT, b["id"], "alice", None)  # acknowledged: no escalation
    rig.at(599)
    assert rig.sent("/pager") == []
    rig.at(600)
    [first] = rig.sent("/pager")
    assert first["alerts"][0]["labels"]["host"] == "a"
    rig.at(1200)
    second = rig.sent("/pager")[-1]
    assert second["alerts"][0]["labels"]["severity"] == "critical"
    a = next(x for x in rig.alerts() if x["labels"]["host"] == "a")
    assert a["severity"] == "critical" and a["escalation_step"] == 2
    events = [h["event"] for h in rig.svc.history(TENANT, a["id"])]
    assert events == ["triggered", "escalated", "escalated"]
    rig.at(5000)
    assert len(rig.sent("/pager")) == 2


def test_retries_deliver_once_and_failures_become_dead_letters(rig: Rig) -> None:
    rig.channel("flaky", "/flaky", max_retries=2)
    rig.channel("down", "/down", max_retries=2)
    rig.http.script["/flaky"] = [500]
    rig.http.script["/down"] = [500, 500, 500]
    rig.rule(name="a", channels=["flaky"])
    rig.rule(name="b", channels=["down"])
    rig.ingest(0, [({"host": "x"}, 95)])
    for t in (1, 2, 3, 4, 5, 10):
        rig.at(t)
    assert len(rig.http.on("/flaky")) == 2  # 500, then 200: delivered once
    assert len(rig.http.on("/down")) == 3
    [dead] = rig.svc.dead_letters(TENANT)
    assert dead["channel"] == "down" and dead["attempts"] == 3 and "500" in str(dead["error"])


def test_restart_keeps_firing_alerts_without_repeating_them(rig: Rig) -> None:
    rig.channel()
    rig.rule()
    rig.ingest(0, [({"host": "a"}, 95)])
    [before] = rig.alerts(state="triggered")
    rig.restart()
    rig.ingest(10, [({"host": "a"}, 97)])
    rig.at(20)
    [after] = rig.alerts(state="triggered")
    assert after["id"] == before["id"]
    assert len(rig.sent()) == 1  # no second "firing" for the same alert
    rig.ingest(30, [({"host": "a"}, 10)])
    rig.at(90)
    assert rig.alerts(state="resolved")[0]["id"] == before["id"]
    assert [m["status"] for m in rig.sent()] == ["firing", "resolved"]


def test_restart_keeps_rules_channels_and_silences(rig: Rig) -> None:
    rig.channel()
    rid = rig.rule()
    rig.svc.add_silence(TENANT, {"matchers": ["host=a"], "duration_s": 600, "author": "a"})
    rig.restart()
    assert [r["id"] for r in rig.svc.rules(TENANT)] == [rid]
    assert [c["name"] for c in rig.svc.channels(TENANT)] == ["ops"]
    assert len(rig.svc.silences(TENANT)) == 1


def test_rule_and_channel_changes_are_checked(rig: Rig) -> None:
    with pytest.raises(InvalidInput) as err:
        rig.rule()
    assert err.value.problems[0].field == "channels[0]"
    rig.channel()
    rid = rig.rule()
    with pytest.raises(Conflict):
        rig.rule()  # same name
    with pytest.raises(Conflict):
        rig.svc.put_rule(TENANT, {"id": rid, "name": "other", "metric": "cpu",
                                  "condition": {"type": "absence", "for_s": 5}})
    with pytest.raises(NotFound):
        rig.svc.put_rule(TENANT, {"name": "x", "metric": "cpu", "condition": {
            "type": "absence", "for_s": 5}}, "missing", create=False)
    with pytest.raises(Conflict, match="used by rules cpu high"):
        rig.svc.delete_channel(TENANT, "ops")
    with pytest.raises(Conflict):
        rig.channel()
    with pytest.raises(NotFound):
        rig.svc.delete_rule(TENANT, "missing")
    with pytest.raises(NotFound):
        rig.svc.rule(TENANT, "missing")


def test_deleting_a_rule_resolves_its_alerts(rig: Rig) -> None:
    rig.channel()
    rid = rig.rule()
    rig.ingest(0, [({"host": "a"}, 95)])
    rig.svc.delete_rule(TENANT, rid)
    [a] = rig.alerts()
    assert a["state"] == "resolved" and a["resolve_reason"] == "rule deleted"
    rig.svc.delete_channel(TENANT, "ops")  # no longer in use
    assert rig.svc.channels(TENANT) == []


def test_replacing_a_rule_keeps_its_alerts(rig: Rig) -> None:
    rig.channel()
    rid = rig.rule()
    rig.ingest(0, [({"host": "a"}, 95)])
    rig.svc.put_rule(TENANT, {"name": "cpu high", "metric": "cpu", "channels": ["ops"],
                              "condition": {"type": "threshold", "op": ">", "threshold": 80}},
                     rid, create=False)
    rig.ingest(10, [({"host": "a"}, 85)])
    assert len(rig.alerts(state="triggered")) == 1 and len(rig.sent()) == 1
    rig.ingest(20, [({"host": "a"}, 70)])
    assert rig.alerts()[0]["state"] == "resolved"


def test_alert_filters(rig: Rig) -> None:
    rig.channel()
    rig.rule(name="hi", severity="high")
    rig.rule(name="lo", severity="low", condition={"type": "threshold", "op": "<",
                                                   "threshold": 5})
    rig.ingest(0, [({"host": "a"}, 95), ({"host": "b"}, 1)])
    rig.ingest(100, [({"host": "a"}, 50)])
    assert {a["rule"] for a in rig.alerts(severity="low")} == {"lo"}
    assert {a["rule"] for a in rig.alerts(rule="hi")} == {"hi"}
    assert {a["rule"] for a in rig.alerts(state="resolved")} == {"hi"}
    assert {a["rule"] for a in rig.alerts(since_ms=T0 + 50 * S)} == {"hi"}


def test_incidents_summarise_many_alerts(rig: Rig) -> None:
    rig.channel()
    rig.rule()
    rig.ingest(0, [({"host": f"h{i}", "region": "eu"}, 95) for i in range(12)])
    [inc] = rig.svc.incidents(TENANT)
    assert inc["summary"] == "cpu high: 12 hosts in region=eu" and inc["count"] == 12


def test_a_full_queue_skips_evaluation_and_counts_it(tmp_path: Path) -> None:
    http = HttpReceiver()
    r = Rig(tmp_path / "q.duckdb", http)
    try:
        r.channel()
        r.rule()
        small = AlertingService(DuckDBAlertStore(r.store.connection()), r.dispatcher,
                                queue_batches=1)
        batch = batch_of([("cpu", {"host": "a"}, T0, 95.0)])
        for _ in range(3):
            small.offer(TENANT, batch, np.zeros(1, np.int32))
        assert small.stats.batches_dropped == 2 and small.queue_depth == 1
        small.close()
    finally:
        r.close()
        http.close()


def test_lifecycle_events_are_published(rig: Rig) -> None:
    rig.channel()
    rig.rule()
    rig.ingest(0, [({"host": "a"}, 95)])
    rig.ingest(1, [({"host": "a"}, 5)])
    assert rig.lifecycle == ["alert_lifecycle:alert_triggered", "alert_lifecycle:alert_resolved"]


def test_dead_letter_record_keeps_no_secret(rig: Rig) -> None:
    rig.svc.put_channel(TENANT, {"name": "ops", "type": "webhook", "max_retries": 0,
                                 "url": rig.http.url + "/x?token=s3cret"})
    rig.http.script["/x"] = [400]
    rig.rule()
    rig.ingest(0, [({"host": "a"}, 95)])
    [dead] = rig.svc.dead_letters(TENANT)
    assert "s3cret" not in str(dead)


def test_a_channel_update_may_send_back_redacted_secrets(rig: Rig) -> None:
    rig.svc.put_channel(TENANT, {"name": "mail", "type": "email", "to": ["a@example.com"],
                                 "smtp_host": "127.0.0.1", "username": "u",
                                 "password": "s3cret"})
    [shown] = rig.svc.channels(TENANT)
    assert shown["password"] == "***"
    rig.svc.put_channel(TENANT, {**shown, "to": ["b@example.com"]}, create=False)
    ch = rig.svc.channel(TENANT, "mail")
    assert ch is not None and ch.password == "s3cret" and ch.to == ("b@example.com",)
