"""Alerting over real HTTP: a breaching sample posted to the real server becomes a webhook
call to a real receiver; every route and its error paths."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.alerting.receivers import HttpReceiver
from tests.alerting.test_delivery import wait_until
from tests.conftest import Server, make_settings
from vigil.app import build

RULE: dict[str, Any] = {
    "name": "cpu high", "metric": "cpu_usage_user", "match": ["hostname=h1"],
    "condition": {"type": "threshold", "op": ">", "threshold": 90, "for_s": 0},
    "severity": "critical", "channels": ["ops"]}


@pytest.fixture
def live(tmp_path: Any) -> Iterator[tuple[httpx.Client, HttpReceiver]]:
    """A server with alerting and delivery threads running, and a webhook receiver."""
    receiver = HttpReceiver()
    c = build(make_settings(tmp_path, retention_raw=0, alert_tick="100ms"))
    with Server(c) as s, httpx.Client(base_url=s.url, timeout=30) as http:
        yield http, receiver
    c.close()
    receiver.close()


def test_breaching_sample_to_webhook_and_the_lifecycle(live: tuple[httpx.Client, HttpReceiver]
                                                       ) -> None:
    http, rx = live
    r = http.post("/api/v1/channels", json={"name": "ops", "type": "webhook",
                                            "url": rx.url + "/hook"})
    assert r.status_code == 201
    r = http.post("/api/v1/rules", json=RULE)
    assert r.status_code == 201
    rule_id = r.json()["id"]
    assert http.get(f"/api/v1/rules/{rule_id}").json()["name"] == "cpu high"
    assert [x["id"] for x in http.get("/api/v1/rules").json()["rules"]] == [rule_id]
    now = int(time.time())
    assert http.post("/write?precision=s", content=f"cpu,hostname=h2 usage_user=99 {now}\n"
                     f"cpu,hostname=h1 usage_user=95 {now}").status_code == 204
    wait_until(lambda: rx.on("/hook"))
    [msg] = [m.json() for m in rx.on("/hook")]
    assert msg["status"] == "firing" and msg["alerts"][0]["labels"]["hostname"] == "h1"
    [alert] = http.get("/api/v1/alerts", params={"state": "triggered"}).json()["alerts"]
    r = http.post(f"/api/v1/alerts/{alert['id']}/acknowledge",
                  json={"by": "alice", "comment": "on it"})
    assert r.status_code == 200 and r.json()["state"] == "acknowledged"
    r = http.post(f"/api/v1/alerts/{alert['id']}/resolve")
    assert r.json()["state"] == "resolved" and r.json()["resolved_by"] == "anonymous"
    hist = http.get(f"/api/v1/alerts/{alert['id']}/history").json()["history"]
    assert [h["event"] for h in hist] == ["triggered", "acknowledged", "resolved"]
    explain = http.get(f"/api/v1/rules/{rule_id}/explain").json()
    assert explain["series"][0]["state"] == "held"
    assert explain["recent"][0]["event"] == "fired"
    assert http.get(f"/api/v1/alerts/{alert['id']}").json()["state"] == "resolved"
    assert http.get("/api/v1/incidents").json() == {"incidents": []}
    assert http.get("/api/v1/dead-letters").json() == {"dead_letters": []}
    metrics = http.get("/metrics").text
    assert "vigil_alerting_alerts_fired_total 1.0" in metrics
    assert 'vigil_notifications_sent_total{channel_type="webhook"} 1.0' in metrics
    assert http.delete(f"/api/v1/rules/{rule_id}").status_code == 204
    assert http.delete("/api/v1/channels/ops").status_code == 204


def test_channel_secrets_are_never_returned(live: tuple[httpx.Client, HttpReceiver]) -> None:
    http, _rx = live
    doc = {"name": "mail", "type": "email", "to": ["ops@example.com"],
           "from": "vigil@example.com", "smtp_host": "127.0.0.1", "password": "hunter2",
           "username": "u"}
    assert "hunter2" not in http.post("/api/v1/channels", json=doc).text
    assert "hunter2" not in http.get("/api/v1/channels").text
    assert "hunter2" not in http.get("/api/v1/channels/mail").text
    r = http.put("/api/v1/channels/mail", json={**doc, "password": "s3cret"})
    assert r.status_code == 200 and "s3cret" not in r.text
    shown = http.get("/api/v1/channels/mail").json()
    r = http.put("/api/v1/channels/mail", json={**shown, "to": ["sre@example.com"]})
    assert r.status_code == 200 and r.json()["password"] == "***"


def test_silences_over_http(live: tuple[httpx.Client, HttpReceiver]) -> None:
    http, _ = live
    r = http.post("/api/v1/silences", json={"matchers": ["host=a"], "duration_s": 60,
                                            "author": "alice", "comment": "deploy"})
    assert r.status_code == 201
    sid = r.json()["id"]
    [s] = http.get("/api/v1/silences").json()["silences"]
    assert s["active"] and s["matchers"] == ["host=a"]
    assert http.delete(f"/api/v1/silences/{sid}").status_code == 204
    assert http.get("/api/v1/silences").json() == {"silences": []}


BAD: list[tuple[str, str, Any, int, str]] = [
    ("POST", "/api/v1/rules", {**RULE, "channels": ["nope"]}, 400, "channels[0]"),
    ("POST", "/api/v1/rules", {**RULE, "condition": {"type": "threshold", "op": "=>",
                                                     "threshold": 1}}, 400, "condition.op"),
    ("POST", "/api/v1/rules", "not json", 400, "body"),
    ("POST", "/api/v1/rules", [1], 400, "body"),
    ("PUT", "/api/v1/rules/missing", {**RULE, "channels": []}, 404, ""),
    ("GET", "/api/v1/rules/missing", None, 404, ""),
    ("DELETE", "/api/v1/rules/missing", None, 404, ""),
    ("GET", "/api/v1/rules/missing/explain", None, 404, ""),
    ("POST", "/api/v1/channels", {"name": "x", "type": "pager"}, 400, "type"),
    ("POST", "/api/v1/channels", {"name": "x", "type": "webhook", "url": "ftp://x"}, 400,
     "url"),
    ("GET", "/api/v1/channels/missing", None, 404, ""),
    ("PUT", "/api/v1/channels/missing", {"type": "websocket"}, 404, ""),
    ("DELETE", "/api/v1/channels/missing", None, 404, ""),
    ("GET", "/api/v1/alerts?state=firing", None, 400, "state"),
    ("GET", "/api/v1/alerts?severity=urgent", None, 400, "severity"),
    ("GET", "/api/v1/alerts?since=yesterday", None, 400, "since"),
    ("GET", "/api/v1/alerts?limit=0", None, 400, "query.limit"),
    ("GET", "/api/v1/alerts/missing", None, 404, ""),
    ("GET", "/api/v1/alerts/missing/history", None, 404, ""),
    ("POST", "/api/v1/alerts/missing/acknowledge", {}, 404, ""),
    ("POST", "/api/v1/alerts/missing/resolve", {"by": ""}, 400, "by"),
    ("POST", "/api/v1/silences", {"matchers": ["host"], "duration_s": 5, "author": "a"}, 400,
     "matchers[0]"),
    ("DELETE", "/api/v1/silences/missing", None, 404, ""),
    ("GET", "/api/v1/dead-letters?limit=-1", None, 400, "query.limit"),
]


@pytest.mark.parametrize(("method", "path", "body", "status", "field"), BAD,
                         ids=[f"{m} {p} {s}" for m, p, _, s, _ in BAD])
def test_errors(live: tuple[httpx.Client, HttpReceiver], method: str, path: str, body: Any,
                status: int, field: str) -> None:
    http, rx = live
    http.post("/api/v1/channels", json={"name": "ops", "type": "webhook", "url": rx.url})
    kw: dict[str, Any] = {}
    if isinstance(body, str):
        kw = {"content": body, "headers": {"content-type": "application/json"}}
    elif body is not None:
        kw = {"json": body}
    r = http.request(method, path, **kw)
    assert r.status_code == status, r.text
    problem = r.json()
    assert problem["status"] == status and problem["detail"]
    if field:
        assert problem["errors"][0]["field"].startswith(field), problem


def test_conflicts_are_409(live: tuple[httpx.Client, HttpReceiver]) -> None:
    http, rx = live
    http.post("/api/v1/channels", json={"name": "ops", "type": "webhook", "url": rx.url})
    assert http.post("/api/v1/channels", json={"name": "ops", "type": "websocket"}
                     ).status_code == 409
    assert http.post("/api/v1/rules", json=RULE).status_code == 201
    r = http.post("/api/v1/rules", json=RULE)
    assert r.status_code == 409 and "exists" in r.json()["detail"]
    r = http.delete("/api/v1/channels/ops")
    assert r.status_code == 409 and "cpu high" in r.json()["detail"]
    assert len(http.get("/api/v1/channels").json()["channels"]) == 1
