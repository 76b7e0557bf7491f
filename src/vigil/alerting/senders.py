"""Senders: one per channel type, each ``send(channel, notification)`` delivering one
notification or raising :class:`~vigil.alerting.channels.DeliveryError`.

Senders block (HTTP, SMTP) and are called from the dispatcher's worker threads, never
from the caller of ``Dispatcher.submit``. They are thread-safe. Error messages carry the
channel's redacted URL, never a secret.
"""

from __future__ import annotations

import math
import smtplib
import ssl
from collections.abc import Callable, Mapping
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

import httpx
import orjson

from vigil.alerting.channels import Channel, DeliveryError
from vigil.alerting.model import AlertView, Notification
from vigil.core.timeutil import format_ms

# The in-process bus the WebSocket stream reads: publish(topic, message). Must not block.
Publish = Callable[[str, Mapping[str, object]], None]
ALERTS_TOPIC = "alerts"
ZERO_TIME = "0001-01-01T00:00:00Z"  # Alertmanager's endsAt while an alert fires
COLOURS = {"critical": "#d32f2f", "high": "#f57c00", "medium": "#fbc02d", "low": "#1e88e5",
           "resolved": "#2e7d32"}
_USER_AGENT = "Vigil-Alerting/1"


def title(n: Notification) -> str:
    """``[FIRING:3] cpu high (critical)`` / ``[RESOLVED] cpu high (critical)``."""
    rules = {a.rule for a in n.alerts}
    what = next(iter(rules)) if len(rules) == 1 else (
        " ".join(n.group_labels.values()) or f"{len(rules)} rules")
    firing = sum(a.status == "firing" for a in n.alerts)
    tag = f"FIRING:{firing}" if n.status == "firing" else "RESOLVED"
    return _one_line(f"[{tag}] {what} ({n.severity})")


def _one_line(s: str) -> str:
    return " ".join(s.split())


def _value(v: float) -> float | str:
    return v if math.isfinite(v) else str(v)


def _labels(a: AlertView) -> dict[str, str]:
    """Alertmanager receivers expect ``alertname`` (and usually ``severity``) labels."""
    return {"alertname": a.rule, "severity": a.severity, **a.labels}


def alertmanager_payload(channel: Channel, n: Notification, external_url: str = "") -> dict[
        str, object]:
    """The Alertmanager v4 webhook body; Vigil's extras under the top-level ``vigil`` key,
    which Alertmanager receivers ignore."""
    alerts = list(n.alerts)
    shown = alerts[:channel.max_alerts] if channel.max_alerts else alerts
    base = external_url.rstrip("/")
    labels = [_labels(a) for a in alerts]
    common = {k: v for k, v in labels[0].items() if all(m.get(k) == v for m in labels[1:])} \
        if labels else {}
    return {
        "version": "4",
        "groupKey": n.group_key,
        "truncatedAlerts": len(alerts) - len(shown),
        "status": n.status,
        "receiver": channel.name,
        "groupLabels": dict(n.group_labels),
        "commonLabels": common,
        "commonAnnotations": n.common_annotations(),
        "externalURL": base,
        "alerts": [{
            "status": a.status,
            "labels": labels[i],
            "annotations": dict(a.annotations),
            "startsAt": format_ms(a.starts_ms),
            "endsAt": format_ms(a.ends_ms) if a.ends_ms else ZERO_TIME,
            "generatorURL": f"{base}/api/v1/alerts/{a.id}" if base else "",
            "fingerprint": a.fingerprint,
        } for i, a in enumerate(shown)],
        "vigil": {
            "severity": n.severity,
            "escalation": n.escalation,
            "alerts": [{"id": a.id, "fingerprint": a.fingerprint, "rule": a.rule,
                        "severity": a.severity, "state": a.state, "value": _value(a.value)}
                       for a in shown],
        },
    }


def slack_payload(n: Notification, external_url: str = "") -> dict[str, object]:
    """A Slack-compatible incoming-webhook body: ``text`` plus one attachment whose colour
    says the severity (green once resolved)."""
    colour = COLOURS["resolved" if n.status == "resolved" else n.severity]
    lines = []
    for a in n.alerts[:20]:
        labels = ", ".join(f"{k}={v}" for k, v in a.labels.items())
        summary = a.annotations.get("summary") or a.annotations.get("description") or ""
        lines.append(f"• *{a.status}* {a.rule} [{a.severity}] value={_value(a.value)} "
                     f"{{{labels}}} {summary}".rstrip())
    if len(n.alerts) > 20:
        lines.append(f"… and {len(n.alerts) - 20} more")
    text = title(n)
    attachment: dict[str, object] = {
        "color": colour, "fallback": text, "title": text, "text": "\n".join(lines),
        "footer": "Vigil", "ts": n.created_ms // 1000, "mrkdwn_in": ["text"],
        "fields": [{"title": k, "value": v, "short": True} for k, v in n.group_labels.items()],
    }
    if external_url:
        attachment["title_link"] = f"{external_url.rstrip('/')}/api/v1/alerts?state=triggered"
    return {"text": text, "attachments": [attachment]}


def email_message(channel: Channel, n: Notification, external_url: str = "") -> EmailMessage:
    """A plain-text email: subject :func:`title`, one block per alert."""
    msg = EmailMessage()
    msg["Subject"] = title(n)
    msg["From"] = channel.from_addr
    msg["To"] = ", ".join(channel.to)
    msg["Date"] = formatdate(n.created_ms / 1000, usegmt=True)
    msg["Message-ID"] = make_msgid(domain="vigil")
    body = [title(n), ""]
    if n.group_labels:
        body.append("Group: " + ", ".join(f"{k}={v}" for k, v in n.group_labels.items()))
        body.append("")
    base = external_url.rstrip("/")
    for status in ("firing", "resolved"):
        alerts = [a for a in n.alerts if a.status == status]
        if not alerts:
            continue
        body.append(f"Alerts {status} ({len(alerts)}):")
        for a in alerts:
            body.append(f"- {a.rule} [{a.severity}, {a.state}] value={_value(a.value)}")
            body.append("  Labels: " + ", ".join(f"{k}={v}" for k, v in a.labels.items()))
            body += [f"  {k}: {v}" for k, v in a.annotations.items()]
            body.append(f"  Started: {format_ms(a.starts_ms)}")
            if a.ends_ms:
                body.append(f"  Ended: {format_ms(a.ends_ms)}")
            body.append(f"  Alert: {base}/api/v1/alerts/{a.id}" if base else f"  Alert: {a.id}")
        body.append("")
    body.append(f"-- Vigil, channel {channel.name}")
    msg.set_content("\n".join(body) + "\n")
    return msg


def websocket_messages(n: Notification) -> list[dict[str, object]]:
    """One stream message per alert: ``alert_triggered`` or ``alert_resolved``."""
    return [{
        "type": "alert_triggered" if a.status == "firing" else "alert_resolved",
        "data": {"id": a.id, "rule": a.rule, "fingerprint": a.fingerprint,
                 "status": a.status, "state": a.state, "severity": a.severity,
                 "labels": dict(a.labels), "annotations": dict(a.annotations),
                 "starts_ms": a.starts_ms, "ends_ms": a.ends_ms, "value": _value(a.value),
                 "group_key": n.group_key, "channel": n.channel},
    } for a in n.alerts]


class HttpPoster:
    """POSTs JSON over one pooled ``httpx.Client``: 2xx is success; 5xx, 408, 429 and
    transport errors are retryable; anything else is not."""

    def __init__(self, client: httpx.Client | None = None) -> None:
        self._client = client or httpx.Client(follow_redirects=False, trust_env=False,
                                              headers={"User-Agent": _USER_AGENT})

    def post(self, channel: Channel, body: Mapping[str, object],
             headers: Mapping[str, str] | None = None) -> None:
        where = f"POST {channel.public_url()}"
        try:
            r = self._client.post(
                channel.url, content=orjson.dumps(body),
                headers={"Content-Type": "application/json", **(headers or {})},
                timeout=channel.timeout_s)
        except httpx.HTTPError as err:
            raise DeliveryError(channel.scrub(f"{where}: {type(err).__name__}: {err}"),
                                retryable=True) from None
        if 200 <= r.status_code < 300:
            return
        retryable = r.status_code >= 500 or r.status_code in (408, 429)
        detail = channel.scrub(_one_line(r.text[:200]))
        raise DeliveryError(f"{where}: HTTP {r.status_code} {detail}".rstrip(),
                            retryable=retryable, status=r.status_code,
                            retry_after_s=_retry_after_s(r.headers.get("Retry-After")))

    def close(self) -> None:
        self._client.close()


def _retry_after_s(value: str | None) -> float | None:
    """Retry-After in seconds (the delta form; an HTTP date is ignored)."""
    try:
        s = float(value) if value is not None else -1.0
    except ValueError:
        return None
    return s if 0 <= s < 86_400 else None


class WebhookSender:
    def __init__(self, poster: HttpPoster, external_url: str = "") -> None:
        self._poster, self._external_url = poster, external_url

    def send(self, channel: Channel, n: Notification) -> None:
        self._poster.post(channel, alertmanager_payload(channel, n, self._external_url),
                          channel.headers)


class SlackSender:
    def __init__(self, poster: HttpPoster, external_url: str = "") -> None:
        self._poster, self._external_url = poster, external_url

    def send(self, channel: Channel, n: Notification) -> None:
        self._poster.post(channel, slack_payload(n, self._external_url))


class EmailSender:
    """SMTP with optional implicit TLS (``ssl``), STARTTLS and login; one connection per
    message. 5xx replies and refused recipients are not retryable; the rest is."""

    def __init__(self, external_url: str = "",
                 ssl_context: ssl.SSLContext | None = None) -> None:
        self._external_url = external_url
        self._ssl_context = ssl_context

    def send(self, channel: Channel, n: Notification) -> None:
        msg = email_message(channel, n, self._external_url)
        where = f"SMTP {channel.smtp_host}:{channel.smtp_port}"
        try:
            self._deliver(channel, msg)
        except smtplib.SMTPNotSupportedError as err:  # e.g. no STARTTLS or AUTH: config
            raise DeliveryError(channel.scrub(f"{where}: not supported by the server: {err}"),
                                retryable=False) from None
        except ssl.SSLCertVerificationError as err:
            raise DeliveryError(channel.scrub(f"{where}: TLS certificate rejected: "
                                              f"{err.verify_message}"),
                                retryable=False) from None
        except smtplib.SMTPRecipientsRefused as err:
            raise DeliveryError(channel.scrub(f"{where}: recipients refused: "
                                              f"{', '.join(err.recipients)}"),
                                retryable=False) from None
        except smtplib.SMTPResponseException as err:
            text = err.smtp_error.decode("utf-8", "replace") if isinstance(
                err.smtp_error, bytes) else str(err.smtp_error)
            raise DeliveryError(channel.scrub(f"{where}: {err.smtp_code} {_one_line(text)}"),
                                retryable=err.smtp_code < 500, status=err.smtp_code) from None
        except (smtplib.SMTPException, OSError) as err:
            raise DeliveryError(channel.scrub(f"{where}: {type(err).__name__}: {err}"),
                                retryable=True) from None

    def _deliver(self, channel: Channel, msg: EmailMessage) -> None:
        context = self._ssl_context or ssl.create_default_context()
        smtp: smtplib.SMTP
        if channel.ssl:
            smtp = smtplib.SMTP_SSL(channel.smtp_host, channel.smtp_port,
                                    timeout=channel.timeout_s, context=context)
        else:
            smtp = smtplib.SMTP(channel.smtp_host, channel.smtp_port, timeout=channel.timeout_s)
        with smtp:
            if channel.starttls:
                smtp.starttls(context=context)
            if channel.username:
                smtp.login(channel.username, channel.password)
            smtp.send_message(msg, from_addr=channel.from_addr, to_addrs=list(channel.to))


class WebSocketSender:
    """No network: hands each alert of the notification to ``publish`` on ``"alerts"``."""

    def __init__(self, publish: Publish) -> None:
        self._publish = publish

    def send(self, channel: Channel, n: Notification) -> None:
        try:
            for m in websocket_messages(n):
                self._publish(ALERTS_TOPIC, m)
        except Exception as err:  # the bus is not ours: any failure is a delivery failure
            raise DeliveryError(f"publish to {ALERTS_TOPIC!r} failed: {type(err).__name__}",
                                retryable=True) from None


class ChannelSenders:
    """Every sender, chosen by ``channel.type``: ``send`` is what the dispatcher calls.
    The owner (the composition root) calls :meth:`close`."""

    def __init__(self, publish: Publish, *, external_url: str = "",
                 http_client: httpx.Client | None = None,
                 smtp_ssl_context: ssl.SSLContext | None = None) -> None:
        self._poster = HttpPoster(http_client)
        self._by_type: dict[str, WebhookSender | SlackSender | EmailSender | WebSocketSender] = {
            "webhook": WebhookSender(self._poster, external_url),
            "slack": SlackSender(self._poster, external_url),
            "email": EmailSender(external_url, smtp_ssl_context),
            "websocket": WebSocketSender(publish),
        }

    def send(self, channel: Channel, n: Notification) -> None:
        self._by_type[channel.type].send(channel, n)

    def close(self) -> None:
        self._poster.close()
