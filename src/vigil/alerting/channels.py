"""Notification channels: their configuration, validation and secret redaction.

A channel is a JSON document (``POST /api/v1/channels``) parsed once by
:func:`parse_channel` into a frozen :class:`Channel`. Secrets (the SMTP password, webhook
header values, URL credentials and query, a Slack URL's path) never leave through
``repr``, :meth:`Channel.public_dict` or an error message; :meth:`Channel.doc` is the full
document, for storage only. Senders live in ``senders.py``, quiet hours in
``quiet_hours.py``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.utils import parseaddr
from typing import Literal, TypedDict, get_args
from urllib.parse import urlsplit, urlunsplit

from vigil.alerting.quiet_hours import QuietHours, parse_quiet_hours
from vigil.core.errors import InvalidInput, Problem, VigilError

ChannelType = Literal["webhook", "slack", "email", "websocket"]
CHANNEL_TYPES: tuple[ChannelType, ...] = get_args(ChannelType)
REDACTED = "***"

_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,128}$")
_ADDR = re.compile(r"^[^@\s<>,;:\"()\[\]\\]+@[A-Za-z0-9.-]+$")
_HOST = re.compile(r"^[A-Za-z0-9.:\[\]-]{1,255}$")
_COMMON = ("name", "type", "rate_limit_per_min", "quiet_hours", "max_retries", "backoff_s",
           "max_backoff_s", "timeout_s", "send_resolved")
_BY_TYPE: dict[str, tuple[str, ...]] = {
    "webhook": ("url", "headers", "max_alerts"),
    "slack": ("url",),
    "email": ("to", "from", "smtp_host", "smtp_port", "username", "password", "starttls", "ssl"),
    "websocket": (),
}


class DeliveryError(VigilError):
    """A send failed. ``retryable`` says whether trying again later may help (5xx, 429,
    timeouts, refused connections) or not (other 4xx, a refused recipient). The message
    never contains a channel secret."""

    def __init__(self, message: str, *, retryable: bool, status: int | None = None,
                 retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retryable, self.status = retryable, status
        self.retry_after_s = retry_after_s  # the receiver's Retry-After, if it sent one


@dataclass(frozen=True, slots=True, repr=False)
class Channel:
    """A validated channel. Build with :func:`parse_channel`; ``repr`` shows no secret."""

    name: str
    type: ChannelType
    url: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)
    max_alerts: int = 0  # webhook: 0 = all alerts; else truncate, count in truncatedAlerts
    to: tuple[str, ...] = ()
    from_addr: str = "vigil@localhost"
    smtp_host: str = ""
    smtp_port: int = 25
    username: str = ""
    password: str = ""
    starttls: bool = False
    ssl: bool = False
    rate_limit_per_min: int = 0  # 0 = unlimited
    quiet_hours: QuietHours | None = None
    max_retries: int = 5
    backoff_s: float = 1.0
    max_backoff_s: float = 300.0
    timeout_s: float = 5.0
    send_resolved: bool = True

    def __repr__(self) -> str:
        return f"Channel({self.public_dict()!r})"

    __str__ = __repr__

    def doc(self) -> dict[str, object]:
        """The full document, secrets included: ``parse_channel(ch.doc()) == ch``. For
        storage only: never log or return it."""
        d: dict[str, object] = {"name": self.name, "type": self.type}
        if self.type in ("webhook", "slack"):
            d["url"] = self.url
        if self.type == "webhook":
            d["headers"] = dict(self.headers)
            d["max_alerts"] = self.max_alerts
        if self.type == "email":
            d.update({"to": list(self.to), "from": self.from_addr, "smtp_host": self.smtp_host,
                      "smtp_port": self.smtp_port, "starttls": self.starttls, "ssl": self.ssl})
            if self.username:
                d.update({"username": self.username, "password": self.password})
        d.update({"rate_limit_per_min": self.rate_limit_per_min, "max_retries": self.max_retries,
                  "backoff_s": self.backoff_s, "max_backoff_s": self.max_backoff_s,
                  "timeout_s": self.timeout_s, "send_resolved": self.send_resolved})
        if self.quiet_hours is not None:
            d["quiet_hours"] = self.quiet_hours.doc()
        return d

    def public_dict(self) -> dict[str, object]:
        """:meth:`doc` with every secret value replaced by ``"***"``: safe to return.

        >>> ch = parse_channel({"name": "ops", "type": "slack",
        ...                     "url": "https://hooks.slack.com/services/T0/B0/s3cr3t"})
        >>> ch.public_dict()["url"]
        'https://hooks.slack.com/***'
        >>> "s3cr3t" in repr(ch)
        False
        """
        d = self.doc()
        if "url" in d:
            d["url"] = self.public_url()
        if "headers" in d:
            d["headers"] = {k: REDACTED for k in self.headers}
        if "password" in d:
            d["password"] = REDACTED
        return d

    def public_url(self) -> str:
        return redact_url(self.url, hide_path=self.type == "slack")

    def secrets(self) -> tuple[str, ...]:
        """Every secret string of this channel, longest first (for :meth:`scrub`)."""
        out = {self.password, *self.headers.values()}
        if self.url:
            parts = urlsplit(self.url)
            out |= {parts.query, parts.fragment, parts.password or "", parts.username or ""}
            out |= {v for kv in parts.query.split("&") for v in kv.split("=", 1)[1:]}
            if self.type == "slack":
                out |= {parts.path, parts.path.strip("/"), self.url}
        return tuple(sorted((s for s in out if len(s) >= 4), key=len, reverse=True))

    def scrub(self, text: str) -> str:
        """``text`` with every secret of this channel replaced by ``"***"``."""
        for s in self.secrets():
            text = text.replace(s, REDACTED)
        return text


def restore_secrets(doc: Mapping[str, object], previous: Channel) -> dict[str, object]:
    """``doc`` (an update of ``previous``) with each ``"***"`` that
    :meth:`Channel.public_dict` put in replaced by the stored secret, so a client can
    send back what it read. Parse the result with :func:`parse_channel`.

    >>> old = parse_channel({"name": "m", "type": "email", "to": ["a@b.c"],
    ...                      "smtp_host": "mx", "username": "u", "password": "s3cret"})
    >>> parse_channel(restore_secrets(old.public_dict(), old)) == old
    True
    """
    out = dict(doc)
    if out.get("password") == REDACTED and previous.password:
        out["password"] = previous.password
    if "url" in out and out["url"] == previous.public_url():
        out["url"] = previous.url
    headers = out.get("headers")
    if isinstance(headers, Mapping):
        out["headers"] = {k: previous.headers[k] if v == REDACTED and k in previous.headers
                          else v for k, v in headers.items()}
    return out


def redact_url(url: str, *, hide_path: bool = False) -> str:
    """``url`` without credentials, query or fragment (and path, if ``hide_path``).

    >>> redact_url("https://bob:pw@example.com:8443/hook?token=abc")
    'https://***@example.com:8443/hook?***'
    """
    try:
        p = urlsplit(url)
        host = p.hostname or ""
        port = p.port
    except ValueError:
        return REDACTED
    if ":" in host:
        host = f"[{host}]"
    netloc = ("***@" if p.username or p.password else "") + host + (f":{port}" if port else "")
    path = "/***" if hide_path and p.path not in ("", "/") else p.path
    return urlunsplit((p.scheme, netloc, path, REDACTED if p.query else "",
                       REDACTED if p.fragment else ""))


# --- parsing -------------------------------------------------------------------------


def _bad(field_name: str, reason: str) -> InvalidInput:
    return InvalidInput(Problem(reason, field=field_name))


def _str(doc: Mapping[str, object], key: str, *, required: bool = False,
         default: str = "", where: str = "") -> str:
    v = doc.get(key)
    if v is None:
        if required:
            raise _bad(where + key, "required")
        return default
    if not isinstance(v, str):
        raise _bad(where + key, "must be a string")
    if any(c in v for c in "\r\n\0"):
        raise _bad(where + key, "must not contain line breaks or NUL")
    return v


def _bool(doc: Mapping[str, object], key: str, default: bool) -> bool:
    v = doc.get(key, default)
    if not isinstance(v, bool):
        raise _bad(key, "must be true or false")
    return v


def _int(doc: Mapping[str, object], key: str, default: int, lo: int, hi: int) -> int:
    v = doc.get(key, default)
    if isinstance(v, bool) or not isinstance(v, int):
        raise _bad(key, "must be an integer")
    if not lo <= v <= hi:
        raise _bad(key, f"must be between {lo} and {hi}")
    return v


def _num(doc: Mapping[str, object], key: str, default: float, lo: float, hi: float) -> float:
    v = doc.get(key, default)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise _bad(key, "must be a number")
    if not lo <= v <= hi:
        raise _bad(key, f"must be between {lo:g} and {hi:g}")
    return float(v)


def _url(doc: Mapping[str, object], *, slack: bool) -> str:
    url = _str(doc, "url", required=True)
    shown = redact_url(url, hide_path=slack)  # an error must not echo a token
    try:
        p = urlsplit(url)
        p.port  # noqa: B018 -- raises on a bad port
    except ValueError as err:
        raise _bad("url", f"not a valid URL: {shown}") from err
    if p.scheme not in ("http", "https"):
        raise _bad("url", "scheme must be http or https")
    if not p.hostname or any(c.isspace() for c in url):
        raise _bad("url", f"not a valid URL: {shown}")
    return url


def _address(v: object, where: str) -> str:
    if not isinstance(v, str) or any(c in v for c in "\r\n\0"):
        raise _bad(where, "must be an email address")
    _, addr = parseaddr(v)
    if not _ADDR.match(addr) or ("<" not in v and addr != v.strip()):
        raise _bad(where, f"not an email address: {v!r}")
    return v.strip()


def _headers(doc: Mapping[str, object]) -> dict[str, str]:
    v = doc.get("headers", {})
    if not isinstance(v, Mapping):
        raise _bad("headers", "must be an object of header name to value")
    out: dict[str, str] = {}
    for k, val in v.items():
        if not isinstance(k, str) or not _HEADER_NAME.match(k):
            raise _bad("headers", f"not a valid header name: {k!r}")
        if k.lower() in ("content-type", "content-length", "host", "transfer-encoding"):
            raise _bad(f"headers.{k}", "set by Vigil; cannot be overridden")
        if not isinstance(val, str) or any(c in val for c in "\r\n\0"):
            raise _bad(f"headers.{k}", "must be a string without line breaks")
        out[k] = val
    return out


def _recipients(doc: Mapping[str, object]) -> tuple[str, ...]:
    v = doc.get("to")
    if v is None:
        raise _bad("to", "required: a list of email addresses")
    items = [v] if isinstance(v, str) else v
    if not isinstance(items, list) or not items:
        raise _bad("to", "must be a non-empty list of email addresses")
    if len(items) > 100:
        raise _bad("to", "at most 100 recipients")
    return tuple(_address(a, f"to[{i}]") for i, a in enumerate(items))


def _unknown(doc: Mapping[str, object], known: tuple[str, ...], where: str = "") -> None:
    for k in doc:
        if k not in known:
            raise _bad(f"{where}{k}", f"unknown field; known: {', '.join(known)}")


class _Common(TypedDict):
    rate_limit_per_min: int
    quiet_hours: QuietHours | None
    max_retries: int
    backoff_s: float
    max_backoff_s: float
    timeout_s: float
    send_resolved: bool


def parse_channel(doc: Mapping[str, object]) -> Channel:
    """Validate a channel document; raise :class:`InvalidInput` naming the bad field.

    Every type: ``name``, ``type``, ``rate_limit_per_min`` (0 = unlimited),
    ``quiet_hours`` ``{"tz": IANA name, "windows": [{"start": "22:00", "end": "07:00",
    "days": ["mon", …]}]}`` (``days``: where a window starts; none = every day),
    ``max_retries`` (5), ``backoff_s`` (1), ``max_backoff_s`` (300), ``timeout_s`` (5),
    ``send_resolved`` (true). webhook: ``url``, ``headers`` (values secret), ``max_alerts``
    (0 = all). slack: ``url`` (its path is secret). email: ``to``, ``from``, ``smtp_host``,
    ``smtp_port`` (25, 587 with ``starttls``, 465 with ``ssl``), ``username``,
    ``password`` (secret). websocket: nothing more.
    """
    if not isinstance(doc, Mapping):
        raise InvalidInput(Problem("a channel must be a JSON object"))
    name = _str(doc, "name", required=True)
    if not _NAME.match(name) or name in (".", ".."):
        raise _bad("name", "1 to 64 characters of A-Z a-z 0-9 _ . - (not . or ..)")
    kind = _str(doc, "type", required=True)
    if kind not in CHANNEL_TYPES:
        raise _bad("type", f"unknown channel type {kind!r}; use one of {', '.join(CHANNEL_TYPES)}")
    _unknown(doc, _COMMON + _BY_TYPE[kind])
    qh = doc.get("quiet_hours")
    backoff_s = _num(doc, "backoff_s", 1.0, 0.0, 3600.0)
    max_backoff_s = _num(doc, "max_backoff_s", max(300.0, backoff_s), 0.0, 86_400.0)
    if max_backoff_s < backoff_s:
        raise _bad("max_backoff_s", "must not be below backoff_s")
    common = _Common(
        rate_limit_per_min=_int(doc, "rate_limit_per_min", 0, 0, 100_000),
        quiet_hours=None if qh is None else parse_quiet_hours(qh),
        max_retries=_int(doc, "max_retries", 5, 0, 100),
        backoff_s=backoff_s,
        max_backoff_s=max_backoff_s,
        timeout_s=_num(doc, "timeout_s", 5.0, 0.001, 300.0),
        send_resolved=_bool(doc, "send_resolved", True),
    )
    if kind == "webhook":
        return Channel(name, "webhook", url=_url(doc, slack=False), headers=_headers(doc),
                       max_alerts=_int(doc, "max_alerts", 0, 0, 1_000_000), **common)
    if kind == "slack":
        return Channel(name, "slack", url=_url(doc, slack=True), **common)
    if kind == "websocket":
        return Channel(name, "websocket", **common)
    return _email(doc, name, common)


def _email(doc: Mapping[str, object], name: str, common: _Common) -> Channel:
    to = _recipients(doc)
    from_addr = _address(doc.get("from", "vigil@localhost"), "from")
    host = _str(doc, "smtp_host", required=True)
    if not _HOST.match(host):
        raise _bad("smtp_host", "must be a host name or IP address")
    use_ssl, starttls = _bool(doc, "ssl", False), _bool(doc, "starttls", False)
    if use_ssl and starttls:
        raise _bad("starttls", "choose ssl (implicit TLS) or starttls, not both")
    port = _int(doc, "smtp_port", 465 if use_ssl else 587 if starttls else 25, 1, 65_535)
    user, password = _str(doc, "username"), _str(doc, "password")
    if password and not user:
        raise _bad("username", "required when a password is given")
    if user and not password:
        raise _bad("password", "required when a username is given")
    return Channel(name, "email", to=to, from_addr=from_addr, smtp_host=host, smtp_port=port,
                   username=user, password=password, starttls=starttls, ssl=use_ssl,
                   **common)
