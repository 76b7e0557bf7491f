"""Channel documents, secret redaction, quiet hours, and each sender against a real
receiver (HTTP server / SMTP server on loopback)."""

from __future__ import annotations

import ssl
from collections.abc import Iterator, Mapping
from dataclasses import replace
from datetime import datetime
from email.message import EmailMessage
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import trustme
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.alerting.notifications import T0, notification
from tests.alerting.receivers import HttpReceiver, SmtpReceiver
from tests.conftest import free_port
from vigil.alerting.channels import Channel, DeliveryError, parse_channel, restore_secrets
from vigil.alerting.quiet_hours import DAYS
from vigil.alerting.senders import (
    COLOURS,
    ZERO_TIME,
    ChannelSenders,
    EmailSender,
    WebSocketSender,
    email_message,
)
from vigil.core.errors import InvalidInput
from vigil.core.timeutil import format_ms, parse_time_ms


@pytest.fixture
def http() -> Iterator[HttpReceiver]:
    """An HTTP receiver on a free loopback port, recording every POST."""
    r = HttpReceiver()
    yield r
    r.close()


@pytest.fixture
def senders() -> Iterator[ChannelSenders]:
    """Every sender; WebSocket messages go to ``senders.published``."""
    published: list[tuple[str, Mapping[str, object]]] = []
    s = ChannelSenders(lambda topic, m: published.append((topic, m)),
                       external_url="http://vigil.example:8080/")
    s.published = published  # type: ignore[attr-defined]
    yield s
    s.close()


def webhook(url: str, **extra: Any) -> Channel:
    return parse_channel({"name": "ops", "type": "webhook", "url": url, **extra})


# --- parse_channel -------------------------------------------------------------------

W = {"name": "ops", "type": "webhook", "url": "http://127.0.0.1:9/hook"}
E = {"name": "mail", "type": "email", "to": ["ops@example.com"], "smtp_host": "localhost"}
Q = {"tz": "Europe/Berlin", "windows": [{"start": "22:00", "end": "07:00"}]}


def qw(**window: object) -> dict[str, object]:
    return {**W, "quiet_hours": {"tz": "UTC", "windows": [{"start": "22:00", "end": "07:00",
                                                           **window}]}}


BAD: list[tuple[object, str | None]] = [
    ([W], None),
    ({}, "name"),
    ({**W, "name": 5}, "name"),
    ({**W, "name": "bad name!"}, "name"),
    ({**W, "name": "x" * 65}, "name"),
    ({**W, "name": ".."}, "name"),
    ({"name": "ops"}, "type"),
    ({**W, "type": "pager"}, "type"),
    ({"name": "ops", "type": "webhook"}, "url"),
    ({**W, "url": 5}, "url"),
    ({**W, "url": "ftp://h/x"}, "url"),
    ({**W, "url": "http://"}, "url"),
    ({**W, "url": "http://h:99999/x"}, "url"),
    ({**W, "url": "http://h/a b"}, "url"),
    ({**W, "url": "http://h/x\n"}, "url"),
    ({**W, "colour": "red"}, "colour"),
    ({**W, "to": ["a@b.c"]}, "to"),
    ({"name": "ws", "type": "websocket", "url": "http://h/"}, "url"),
    ({**W, "headers": ["X-T"]}, "headers"),
    ({**W, "headers": {"Bad Name": "x"}}, "headers"),
    ({**W, "headers": {"X-T": 5}}, "headers.X-T"),
    ({**W, "headers": {"X-T": "a\r\nX-Evil: 1"}}, "headers.X-T"),
    ({**W, "headers": {"Content-Type": "text/plain"}}, "headers.Content-Type"),
    ({**W, "max_alerts": -1}, "max_alerts"),
    ({**E, "to": None}, "to"),
    ({k: v for k, v in E.items() if k != "to"}, "to"),
    ({**E, "to": []}, "to"),
    ({**E, "to": ["not-an-address"]}, "to[0]"),
    ({**E, "to": ["a@b.c", "x@y z"]}, "to[1]"),
    ({**E, "to": ["a@b.c\r\nBcc: x@y.z"]}, "to[0]"),
    ({**E, "to": [5]}, "to[0]"),
    ({**E, "from": "vigil"}, "from"),
    ({k: v for k, v in E.items() if k != "smtp_host"}, "smtp_host"),
    ({**E, "smtp_host": "bad host"}, "smtp_host"),
    ({**E, "smtp_port": 0}, "smtp_port"),
    ({**E, "smtp_port": "25"}, "smtp_port"),
    ({**E, "smtp_port": True}, "smtp_port"),
    ({**E, "ssl": True, "starttls": True}, "starttls"),
    ({**E, "ssl": "yes"}, "ssl"),
    ({**E, "password": "pw-secret"}, "username"),
    ({**E, "username": "vigil"}, "password"),
    ({**E, "password": 12345}, "password"),
    ({**W, "rate_limit_per_min": -1}, "rate_limit_per_min"),
    ({**W, "rate_limit_per_min": 1.5}, "rate_limit_per_min"),
    ({**W, "max_retries": -1}, "max_retries"),
    ({**W, "max_retries": 101}, "max_retries"),
    ({**W, "backoff_s": -1}, "backoff_s"),
    ({**W, "backoff_s": float("nan")}, "backoff_s"),
    ({**W, "backoff_s": "1s"}, "backoff_s"),
    ({**W, "backoff_s": 10, "max_backoff_s": 5}, "max_backoff_s"),
    ({**W, "timeout_s": 0}, "timeout_s"),
    ({**W, "timeout_s": -5}, "timeout_s"),
    ({**W, "send_resolved": "no"}, "send_resolved"),
    ({**W, "quiet_hours": "22:00-07:00"}, "quiet_hours"),
    ({**W, "quiet_hours": {"windows": Q["windows"]}}, "quiet_hours.tz"),
    ({**W, "quiet_hours": {**Q, "tz": "Mars/Olympus_Mons"}}, "quiet_hours.tz"),
    ({**W, "quiet_hours": {**Q, "tz": "../../etc/passwd"}}, "quiet_hours.tz"),
    ({**W, "quiet_hours": {**Q, "tz": 1}}, "quiet_hours.tz"),
    ({**W, "quiet_hours": {**Q, "tz": "Europe"}}, "quiet_hours.tz"),
    ({**W, "quiet_hours": {**Q, "tz": "x" * 300}}, "quiet_hours.tz"),
    ({**W, "quiet_hours": {**Q, "tz": ""}}, "quiet_hours.tz"),
    ({**W, "quiet_hours": {**Q, "zone": "UTC"}}, "quiet_hours.zone"),
    ({**W, "quiet_hours": {"tz": "UTC"}}, "quiet_hours.windows"),
    ({**W, "quiet_hours": {"tz": "UTC", "windows": []}}, "quiet_hours.windows"),
    ({**W, "quiet_hours": {"tz": "UTC", "windows": ["22-07"]}}, "quiet_hours.windows[0]"),
    (qw(start="25:00"), "quiet_hours.windows[0].start"),
    (qw(start="24:00"), "quiet_hours.windows[0].start"),
    (qw(start=None), "quiet_hours.windows[0].start"),
    (qw(end="7"), "quiet_hours.windows[0].end"),
    (qw(end="22:00"), "quiet_hours.windows[0].end"),
    (qw(days="mon"), "quiet_hours.windows[0].days"),
    (qw(days=["funday"]), "quiet_hours.windows[0].days"),
    (qw(until="08:00"), "quiet_hours.windows[0].until"),
]


@pytest.mark.parametrize(("doc", "field"), BAD)
def test_a_bad_channel_document_is_refused_naming_the_field(doc: Any, field: str | None) -> None:
    with pytest.raises(InvalidInput) as e:
        parse_channel(doc)
    assert e.value.problems[0].field == field
    assert e.value.problems[0].reason


def test_an_error_never_echoes_a_secret_url() -> None:
    with pytest.raises(InvalidInput) as e:
        parse_channel({"name": "s", "type": "slack",
                       "url": "http://h:99999/services/T0/B0/s3cr3t-token"})
    assert "s3cr3t-token" not in str(e.value)


GOOD: list[dict[str, object]] = [
    W,
    {"name": "slack.ops", "type": "slack", "url": "https://hooks.slack.com/services/T/B/XYZ"},
    {"name": "live", "type": "websocket"},
    {**E, "to": "Ops Team <ops@example.com>", "from": "vigil@host.example", "starttls": True,
     "username": "vigil", "password": "pw-secret"},
    {**W, "headers": {"Authorization": "Bearer abc"}, "rate_limit_per_min": 10,
     "max_retries": 0, "backoff_s": 0, "timeout_s": 0.5, "send_resolved": False,
     "max_alerts": 10, "quiet_hours": {"tz": "Europe/Berlin", "windows": [
         {"start": "22:00", "end": "07:00", "days": ["Mon", "fri"]},
         {"start": "00:00", "end": "24:00", "days": ["sat", "sun"]}]}},
]


@pytest.mark.parametrize("doc", GOOD)
def test_a_channel_round_trips_through_its_document(doc: dict[str, object]) -> None:
    ch = parse_channel(doc)
    assert parse_channel(ch.doc()) == ch
    assert ch.name == doc["name"]


def test_email_defaults_follow_tls_mode() -> None:
    assert parse_channel(E).smtp_port == 25
    assert parse_channel({**E, "starttls": True}).smtp_port == 587
    assert parse_channel({**E, "ssl": True}).smtp_port == 465
    assert parse_channel(E).to == ("ops@example.com",)


# --- secrets -------------------------------------------------------------------------

SECRETS = ("hunter2-pw", "tok-9f8e7d", "basicpw42", "q-secret-77", "T0AAA/B0BBB/XXsecretXX")


def secret_channels() -> list[Channel]:
    return [
        parse_channel({**W, "url": "https://bob:basicpw42@h.example/hook?token=q-secret-77",
                       "headers": {"Authorization": "Bearer tok-9f8e7d"}}),
        parse_channel({"name": "s", "type": "slack",
                       "url": "https://hooks.slack.com/services/T0AAA/B0BBB/XXsecretXX"}),
        parse_channel({**E, "username": "vigil", "password": "hunter2-pw"}),
    ]


@pytest.mark.parametrize("ch", secret_channels(), ids=lambda c: c.type)
def test_public_dict_repr_and_str_show_no_secret(ch: Channel) -> None:
    shown = [repr(ch), str(ch), repr(ch.public_dict()), f"{ch}", repr([ch])]
    for text in shown:
        for s in SECRETS:
            assert s not in text and s.split("/")[-1] not in text
    assert any(s in repr(ch.doc()) for s in SECRETS)  # the stored document keeps them


def test_public_dict_keeps_what_is_not_secret() -> None:
    web, slack, mail = secret_channels()
    assert web.public_dict()["url"] == "https://***@h.example/hook?***"
    assert web.public_dict()["headers"] == {"Authorization": "***"}
    assert slack.public_dict()["url"] == "https://hooks.slack.com/***"
    assert mail.public_dict()["password"] == "***"
    assert mail.public_dict()["username"] == "vigil"
    assert web.public_dict()["name"] == "ops"


@pytest.mark.parametrize("ch", secret_channels(), ids=lambda c: c.type)
def test_what_public_dict_shows_can_be_sent_back(ch: Channel) -> None:
    assert parse_channel(restore_secrets(ch.public_dict(), ch)) == ch


def test_a_changed_secret_replaces_the_stored_one() -> None:
    web = secret_channels()[0]
    doc = {**web.public_dict(), "headers": {"Authorization": "Bearer new-token", "X-A": "***"}}
    new = parse_channel(restore_secrets(doc, web))
    assert new.headers == {"Authorization": "Bearer new-token", "X-A": "***"}
    assert new.url == web.url


# --- quiet hours ---------------------------------------------------------------------


def at(tz: str, *parts: int) -> int:
    return int(datetime(*parts, tzinfo=ZoneInfo(tz)).timestamp() * 1000)  # type: ignore[misc]


B = "Europe/Berlin"
NIGHT = [{"start": "22:00", "end": "07:00"}]
QUIET = [  # (windows, tz, now, quiet until or None); 2026-01-15 is a Thursday
    (NIGHT, B, (2026, 1, 15, 23, 0), (2026, 1, 16, 7, 0)),
    (NIGHT, B, (2026, 1, 16, 6, 59), (2026, 1, 16, 7, 0)),
    (NIGHT, B, (2026, 1, 15, 21, 59), None),
    (NIGHT, B, (2026, 1, 16, 7, 0), None),
    (NIGHT, B, (2026, 1, 15, 22, 0), (2026, 1, 16, 7, 0)),
    ([{"start": "09:00", "end": "17:00", "days": ["sat", "sun"]}], B, (2026, 1, 17, 10, 0),
     (2026, 1, 17, 17, 0)),
    ([{"start": "09:00", "end": "17:00", "days": ["sat", "sun"]}], B, (2026, 1, 16, 10, 0),
     None),
    ([{"start": "22:00", "end": "07:00", "days": ["fri"]}], B, (2026, 1, 17, 3, 0),
     (2026, 1, 17, 7, 0)),
    ([{"start": "22:00", "end": "07:00", "days": ["fri"]}], B, (2026, 1, 16, 3, 0), None),
    ([{"start": "22:00", "end": "24:00"}, {"start": "00:00", "end": "07:00"}], B,
     (2026, 1, 15, 23, 0), (2026, 1, 16, 7, 0)),
    ([{"start": "18:00", "end": "24:00", "days": ["fri"]},
      {"start": "00:00", "end": "24:00", "days": ["sat", "sun"]},
      {"start": "00:00", "end": "08:00", "days": ["mon"]}], B, (2026, 1, 16, 19, 0),
     (2026, 1, 19, 8, 0)),
    (NIGHT, B, (2026, 3, 28, 23, 0), (2026, 3, 29, 7, 0)),  # the night DST starts
    ([{"start": "00:00", "end": "24:00", "days": ["sun"]}], "America/New_York",
     (2026, 1, 18, 12, 0), (2026, 1, 19, 0, 0)),
]


@pytest.mark.parametrize(("windows", "tz", "now", "until"), QUIET)
def test_quiet_hours_know_when_they_end(windows: list[dict[str, object]], tz: str,
                                        now: tuple[int, ...], until: tuple[int, ...] | None
                                        ) -> None:
    qh = parse_channel({**W, "quiet_hours": {"tz": tz, "windows": windows}}).quiet_hours
    assert qh is not None
    assert qh.quiet_until_ms(at(tz, *now)) == (None if until is None else at(tz, *until))


# --- senders against real receivers --------------------------------------------------

AM_KEYS = {"version", "groupKey", "truncatedAlerts", "status", "receiver", "groupLabels",
           "commonLabels", "commonAnnotations", "externalURL", "alerts"}
AM_ALERT_KEYS = {"status", "labels", "annotations", "startsAt", "endsAt", "generatorURL",
                 "fingerprint"}


def test_webhook_posts_the_alertmanager_v4_payload(http: HttpReceiver,
                                                   senders: ChannelSenders) -> None:
    ch = webhook(http.url + "/hook", headers={"Authorization": "Bearer tok-1234"})
    senders.send(ch, notification(count=3, severity="critical"))
    (req,) = http.on("/hook")
    assert req.headers["Content-Type"] == "application/json"
    assert req.headers["Authorization"] == "Bearer tok-1234"
    body = req.json()
    assert set(body) == AM_KEYS | {"vigil"}  # extras in one key receivers ignore
    assert body["version"] == "4"
    assert body["groupKey"] == "g1"
    assert body["truncatedAlerts"] == 0
    assert body["status"] == "firing"
    assert body["receiver"] == "ops"
    assert body["groupLabels"] == {"region": "eu"}
    assert body["commonLabels"] == {"alertname": "cpu high", "severity": "critical",
                                    "region": "eu"}
    assert body["commonAnnotations"] == {"runbook": "https://wiki/cpu"}
    assert body["externalURL"] == "http://vigil.example:8080"
    assert len(body["alerts"]) == 3
    for i, a in enumerate(body["alerts"]):
        assert set(a) == AM_ALERT_KEYS
        assert a["status"] == "firing"
        assert a["labels"] == {"alertname": "cpu high", "severity": "critical",
                               "hostname": f"h{i}", "region": "eu"}
        assert a["annotations"] == {"summary": f"cpu on h{i} is 95.5",
                                    "runbook": "https://wiki/cpu"}
        assert parse_time_ms(a["startsAt"]) == T0 - 60_000
        assert a["startsAt"].endswith("Z")
        assert a["endsAt"] == ZERO_TIME
        assert a["generatorURL"] == f"http://vigil.example:8080/api/v1/alerts/a{i}"
        assert a["fingerprint"] == f"fp{i:04d}"
    assert body["vigil"]["severity"] == "critical"
    assert body["vigil"]["alerts"][1] == {"id": "a1", "fingerprint": "fp0001",
                                          "rule": "cpu high", "severity": "critical",
                                          "state": "triggered", "value": 95.5}


def test_webhook_resolved_and_truncated(http: HttpReceiver, senders: ChannelSenders) -> None:
    senders.send(webhook(http.url + "/hook", max_alerts=2),
                 notification(count=3, status="resolved"))
    body = http.on("/hook")[0].json()
    assert body["status"] == "resolved"
    assert body["truncatedAlerts"] == 1
    assert len(body["alerts"]) == 2
    assert {a["endsAt"] for a in body["alerts"]} == {format_ms(T0)}
    assert {a["status"] for a in body["alerts"]} == {"resolved"}


@pytest.mark.parametrize(("status", "severity", "colour"), [
    ("firing", "critical", COLOURS["critical"]), ("firing", "low", COLOURS["low"]),
    ("resolved", "critical", COLOURS["resolved"])])
def test_slack_posts_text_and_a_coloured_attachment(http: HttpReceiver, senders: ChannelSenders,
                                                    status: str, severity: Any,
                                                    colour: str) -> None:
    ch = parse_channel({"name": "s", "type": "slack", "url": http.url + "/services/T/B/X"})
    senders.send(ch, notification(count=2, severity=severity, status=status))
    body = http.on("/services/T/B/X")[0].json()
    tag = "FIRING:2" if status == "firing" else "RESOLVED"
    assert body["text"] == f"[{tag}] cpu high ({severity})"
    (att,) = body["attachments"]
    assert att["color"] == colour
    assert "h0" in att["text"] and "h1" in att["text"]
    assert att["fields"] == [{"title": "region", "value": "eu", "short": True}]


@pytest.mark.parametrize(("status", "retryable"), [
    (500, True), (503, True), (429, True), (408, True), (400, False), (401, False),
    (404, False), (410, False), (302, False)])
def test_http_status_decides_whether_a_failure_is_retryable(
        http: HttpReceiver, senders: ChannelSenders, status: int, retryable: bool) -> None:
    http.script["/hook"] = [status]
    with pytest.raises(DeliveryError) as e:
        senders.send(webhook(http.url + "/hook"), notification())
    assert (e.value.status, e.value.retryable) == (status, retryable)
    assert str(status) in str(e.value)


def test_a_refused_connection_is_retryable(senders: ChannelSenders) -> None:
    with pytest.raises(DeliveryError) as e:
        senders.send(webhook(f"http://127.0.0.1:{free_port()}/hook"), notification())
    assert e.value.retryable and e.value.status is None


@pytest.mark.parametrize("kind", ["webhook", "slack"])
def test_a_failure_message_contains_no_secret(http: HttpReceiver, senders: ChannelSenders,
                                              kind: str) -> None:
    port = http.url.rsplit(":", 1)[1]
    url = (f"http://bob:basicpw42@127.0.0.1:{port}/hook?token=q-secret-77" if kind == "webhook"
           else f"http://127.0.0.1:{port}/services/T0AAA/B0BBB/XXsecretXX")
    http.script[url.split(port, 1)[1].split("?")[0]] = [500]
    ch = parse_channel({"name": "x", "type": kind, "url": url})
    with pytest.raises(DeliveryError) as e:
        senders.send(ch, notification())
    assert "500" in str(e.value)
    assert not any(s in str(e.value) for s in (*SECRETS, "XXsecretXX"))


@pytest.fixture
def smtp() -> Iterator[SmtpReceiver]:
    """An SMTP server on a free loopback port (aiosmtpd), recording messages."""
    s = SmtpReceiver()
    yield s
    s.close()


def email_channel(port: int, **extra: Any) -> Channel:
    return parse_channel({"name": "mail", "type": "email", "smtp_host": "127.0.0.1",
                          "smtp_port": port, "from": "Vigil <vigil@host.example>",
                          "to": ["ops@example.com", "oncall@example.com"], **extra})


def test_email_sends_a_plain_text_message(smtp: SmtpReceiver, senders: ChannelSenders) -> None:
    senders.send(email_channel(smtp.port), notification(count=3, severity="critical"))
    smtp.wait_for(1)
    (sender, rcpts, msg), = smtp.messages
    assert sender == "vigil@host.example"
    assert rcpts == ["ops@example.com", "oncall@example.com"]
    assert msg["Subject"] == "[FIRING:3] cpu high (critical)"
    assert msg["To"] == "ops@example.com, oncall@example.com"
    assert msg.get_content_type() == "text/plain"
    body = msg.get_payload(decode=True)
    assert isinstance(body, bytes)
    text = body.decode()
    for i in range(3):
        assert f"hostname=h{i}" in text
        assert f"http://vigil.example:8080/api/v1/alerts/a{i}" in text
    assert "summary: cpu on h0 is 95.5" in text
    assert format_ms(T0 - 60_000) in text


def test_email_logs_in_when_given_credentials() -> None:
    smtp = SmtpReceiver(logins={"vigil": "hunter2-pw"})
    try:
        EmailSender().send(email_channel(smtp.port, username="vigil", password="hunter2-pw"),
                           notification())
        smtp.wait_for(1)
        assert smtp.logged_in == [True]
        with pytest.raises(DeliveryError) as e:
            EmailSender().send(email_channel(smtp.port, username="vigil", password="wrong-pw-1"),
                               notification())
        assert not e.value.retryable and e.value.status == 535
        assert "wrong-pw-1" not in str(e.value)
    finally:
        smtp.close()


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    """A throwaway certificate authority for SMTP over TLS on loopback."""
    return trustme.CA()


def trusting(ca: trustme.CA) -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ca.configure_trust(ctx)
    return ctx


@pytest.mark.parametrize("mode", ["starttls", "ssl"])
def test_email_over_tls_with_login(ca: trustme.CA, mode: str) -> None:
    smtp = SmtpReceiver(logins={"vigil": "hunter2-pw"}, ca=ca, implicit_tls=mode == "ssl")
    try:
        ch = email_channel(smtp.port, username="vigil", password="hunter2-pw", **{mode: True})
        EmailSender(ssl_context=trusting(ca)).send(ch, notification())
        smtp.wait_for(1)
        assert smtp.logged_in == [True]
        with pytest.raises(DeliveryError) as e:  # a certificate nobody vouches for
            EmailSender().send(ch, notification())
        assert not e.value.retryable and "certificate" in str(e.value)
    finally:
        smtp.close()


def test_email_without_starttls_to_a_server_requiring_it_is_not_retried(
        ca: trustme.CA) -> None:
    smtp = SmtpReceiver(ca=ca)
    try:
        with pytest.raises(DeliveryError) as e:
            EmailSender().send(email_channel(smtp.port), notification())
        assert (e.value.retryable, e.value.status) == (False, 530)
    finally:
        smtp.close()


def test_email_refused_recipient_is_not_retryable(smtp: SmtpReceiver) -> None:
    with pytest.raises(DeliveryError) as e:
        EmailSender().send(email_channel(smtp.port, to=["nobody@example.com"]), notification())
    assert not e.value.retryable
    assert "nobody@example.com" in str(e.value)


def test_email_to_a_closed_port_is_retryable() -> None:
    with pytest.raises(DeliveryError) as e:
        EmailSender().send(email_channel(free_port()), notification())
    assert e.value.retryable


def test_email_subject_has_no_line_break() -> None:
    n = notification()
    n = replace(n, alerts=tuple(replace(a, rule="cpu\r\nBcc: x@y.z") for a in n.alerts))
    msg: EmailMessage = email_message(email_channel(25), n)
    assert msg["Subject"] == "[FIRING:1] cpu Bcc: x@y.z (high)"


def test_websocket_publishes_one_message_per_alert(senders: ChannelSenders) -> None:
    n = notification(count=2)
    ch = parse_channel({"name": "live", "type": "websocket"})
    senders.send(ch, n)
    senders.send(ch, notification(status="resolved"))
    published = senders.published  # type: ignore[attr-defined]
    assert [(t, m["type"]) for t, m in published] == [
        ("alerts", "alert_triggered"), ("alerts", "alert_triggered"),
        ("alerts", "alert_resolved")]
    data = published[0][1]["data"]
    assert data["id"] == "a0" and data["severity"] == "high" and data["value"] == 95.5
    assert data["labels"] == {"hostname": "h0", "region": "eu"}


def test_websocket_bus_failure_is_a_delivery_error() -> None:
    def broken(topic: str, m: Mapping[str, object]) -> None:
        raise RuntimeError("hub closed")

    with pytest.raises(DeliveryError) as e:
        WebSocketSender(broken).send(parse_channel({"name": "l", "type": "websocket"}),
                                     notification())
    assert e.value.retryable


def _quiet_by_definition(windows: list[tuple[int, int, frozenset[int]]], t_ms: int) -> bool:
    """Is the UTC instant inside a window? Minutes of the day; days = where it starts."""
    d = datetime.fromtimestamp(t_ms / 1000, tz=ZoneInfo("UTC"))
    minute, wd = d.hour * 60 + d.minute, d.weekday()
    for start, end, days in windows:
        today, yesterday = not days or wd in days, not days or (wd - 1) % 7 in days
        if start < end and today and start <= minute < end:
            return True
        if start > end and ((today and minute >= start) or (yesterday and minute < end)):
            return True
    return False


_window = st.tuples(st.integers(0, 23 * 4 + 3), st.integers(1, 24 * 4),
                    st.frozensets(st.integers(0, 6), max_size=3)).filter(lambda w: w[0] != w[1])


@settings(max_examples=150, deadline=None)
@given(windows=st.lists(_window, min_size=1, max_size=3),
       t_min=st.integers(0, 14 * 24 * 60))
def test_quiet_until_agrees_with_the_definition(
        windows: list[tuple[int, int, frozenset[int]]], t_min: int) -> None:
    ws = [(s * 15, e * 15, days) for s, e, days in windows]  # quarter hours
    doc = [{"start": f"{s // 60:02d}:{s % 60:02d}",
            "end": "24:00" if e == 1440 else f"{e // 60:02d}:{e % 60:02d}",
            "days": [DAYS[i] for i in sorted(days)]} for s, e, days in ws]
    qh = parse_channel({**W, "quiet_hours": {"tz": "UTC", "windows": doc}}).quiet_hours
    assert qh is not None
    t = T0 - T0 % 86_400_000 + t_min * 60_000
    until = qh.quiet_until_ms(t)
    if until is None:
        assert not _quiet_by_definition(ws, t)
        return
    assert until > t and until % 60_000 == 0
    assert not _quiet_by_definition(ws, until) or until - t >= 7 * 86_400_000  # never ends
    assert all(_quiet_by_definition(ws, m) for m in range(t, until, 15 * 60_000))
