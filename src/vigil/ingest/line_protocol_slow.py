"""Reference parser for InfluxDB line protocol: one line at a time, every rule, exact problems.

``vigil.ingest.line_protocol`` tries a vectorised parser first and comes here for anything it
cannot handle (escapes, quoted strings, errors). The token rules below are the single source
of truth: the fast path reuses ``parse_series_key``, ``field_key`` and ``metric_name``, and
must otherwise accept only inputs on which it agrees with ``parse_line_protocol_slow``.

Grammar (what Telegraf's influxdb outputs send)::

    measurement[,tag=value...] field=value[,field=value...] [timestamp]

* A backslash pairs with the character after it, so that character never ends a token; the
  backslash is then dropped before ``,`` and space (measurement) or ``,``, ``=`` and space (tag
  keys, tag values, field keys) and kept before anything else, as InfluxDB does.
* String field values are double-quoted with ``\\"`` and ``\\\\`` escapes and may contain raw
  newlines (InfluxDB accepts them and Telegraf writes them unescaped). They are counted in
  ``SampleBatch.skipped``, never stored.
* Leading spaces and tabs are ignored, sections are separated by one or more spaces, trailing
  spaces are ignored, ``\\r\\n`` is read as ``\\n``. Blank lines and ``#`` comments are skipped.
"""

from __future__ import annotations

import math
import re
from typing import Literal

import numpy as np

from vigil.core.errors import InvalidInput, Problem
from vigil.core.types import Labels, SampleBatch, SeriesKey, SeriesMeta
from vigil.ingest.limits import (
    Limits,
    labels_problem,
    metric_name_problem,
    sanitize_label_name,
    sanitize_metric_name,
)

Precision = Literal["ns", "us", "ms", "s"]

MAX_PROBLEMS = 10
INT64_MAX = 2**63 - 1
UINT64_MAX = 2**64 - 1
TRUE_WORDS = ("t", "T", "true", "True", "TRUE")
FALSE_WORDS = ("f", "F", "false", "False", "FALSE")
_BOOLS = {**dict.fromkeys(TRUE_WORDS, 1.0), **dict.fromkeys(FALSE_WORDS, 0.0)}
# How a timestamp in each precision becomes milliseconds: (multiplier, divisor).
MS_SCALE: dict[str, tuple[int, int]] = {
    "ns": (1, 1_000_000),
    "us": (1, 1_000),
    "ms": (1, 1),
    "s": (1_000, 1),
}

# A backslash consumes the next character (but never a newline, which always ends a line).
_KEY_SECTION = re.compile(r"(?:[^\\ \n]|\\[^\n]?)*")
_MEASUREMENT = re.compile(r"(?:[^\\ ,\n]|\\[^\n]?)*")
_TAG_PART = re.compile(r"(?:[^\\ ,=\n]|\\[^\n]?)*")  # tag key, tag value or field key
_ESCAPE = re.compile(r"\\(.)", re.S)
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.S)
_BARE_VALUE = re.compile(r"[^ ,\n]*")
_TIMESTAMP = re.compile(r"[^ \n]*")
_SPACES = re.compile(r" *")
_INDENT = re.compile(r"[ \t]*")
# [0-9], not \d: Python's int() and float() also take non-ASCII digits, Influx does not.
_INT = re.compile(r"-?[0-9]+")
_UINT = re.compile(r"[0-9]+")
# Looser than Influx (leading '+', '1.', '.5') on purpose: exactly the finite numbers Arrow's
# string-to-float cast accepts, so both paths agree.
_FLOAT = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_BAD_CHARS = re.compile("[\x00\udc80-\udcff]")  # NUL, or undecodable bytes (surrogateescape)
_LABEL_NAMES: dict[str, str] = {}  # sanitize_label_name results, bounded: tag keys repeat a lot


class LineError(Exception):
    """What is wrong with the current line; ``at`` is where scanning stopped."""

    def __init__(self, reason: str, field: str | None, at: int = 0) -> None:
        super().__init__(reason)
        self.reason, self.field, self.at = reason, field, at


def _unescape(token: str, specials: str) -> str:
    if "\\" not in token:
        return token
    return _ESCAPE.sub(lambda m: m[1] if m[1] in specials else m[0], token)


def _match(pattern: re.Pattern[str], text: str, pos: int) -> re.Match[str]:
    m = pattern.match(text, pos)
    assert m is not None  # every pattern used here also matches the empty string
    return m


def field_key(raw: str) -> str:
    """A field key as written (escapes included) to its text."""
    return _unescape(raw, ", =")


def parse_series_key(raw: str, limits: Limits) -> tuple[str, Labels]:
    """``measurement[,tag=value...]`` to (measurement, sorted sanitized labels).

    Tags with an empty value are dropped; two tags that sanitize to the same label name are
    a duplicate. Raises ``LineError`` with field "measurement" or "tags".
    """
    if "\\" in raw:
        measurement, tags = _split_escaped_key(raw)
    else:  # the common case, split with str methods; same checks, same messages
        measurement, *parts = raw.split(",")
        if not measurement:
            raise LineError("missing measurement at start of line", "measurement")
        tags = []
        for part in parts:
            key, eq, value = part.partition("=")
            _check_tag(key, eq, "=" in value)
            tags.append((key, value))
    labels: dict[str, str] = {}
    seen: dict[str, str] = {}
    for key, value in tags:
        name = _LABEL_NAMES.get(key)
        if name is None:
            name = sanitize_label_name(key)
            if len(_LABEL_NAMES) < 4096:
                _LABEL_NAMES[key] = name
        if name in seen:
            first = seen[name]
            reason = (
                f"duplicate tag {key!r}"
                if first == key
                else f"tags {first!r} and {key!r} both become label {name!r}"
            )
            raise LineError(reason, "tags")
        seen[name] = key
        if value:  # InfluxDB does not allow empty tag values; Telegraf omits them
            labels[name] = value
    problem = labels_problem(labels, limits)
    if problem is not None:
        raise LineError(problem, "tags")
    return measurement, tuple(sorted(labels.items()))


def _check_tag(key: str, eq: str, eq_in_value: bool) -> None:
    if not key:
        raise LineError("missing tag key (expected ',key=value')", "tags")
    if not eq:
        raise LineError(f"tag {key!r} has no value (expected key=value)", "tags")
    if eq_in_value:
        raise LineError(f"unescaped '=' in value of tag {key!r} (write it as '\\=')", "tags")


def _split_escaped_key(raw: str) -> tuple[str, list[tuple[str, str]]]:
    """Measurement and (tag key, tag value) pairs of a key section holding backslashes."""
    m = _match(_MEASUREMENT, raw, 0)
    if m.end() == 0:
        raise LineError("missing measurement at start of line", "measurement")
    tags: list[tuple[str, str]] = []
    j, n = m.end(), len(raw)
    while j < n:  # raw[j] == "," here: the measurement stops only at a comma in a key section
        km = _match(_TAG_PART, raw, j + 1)
        key, j, value = field_key(km[0]), km.end(), ""
        has_eq = j < n and raw[j] == "="
        if has_eq:
            vm = _match(_TAG_PART, raw, j + 1)
            value, j = field_key(vm[0]), vm.end()
        _check_tag(key, "=" if has_eq else "", has_eq and j < n and raw[j] == "=")
        tags.append((key, value))
    return _unescape(m[0], ", "), tags


def metric_name(measurement: str, key: str, limits: Limits) -> str:
    """The VictoriaMetrics naming: measurement ``cpu`` + field ``usage`` -> ``cpu_usage``."""
    name = sanitize_metric_name(f"{measurement}_{key}")
    problem = metric_name_problem(name, limits)
    if problem is not None:
        raise LineError(problem, key)
    return name


def field_value(token: str, key: str) -> float:
    """An unquoted field value (float, ``12i``, ``12u`` or boolean) as a float."""
    if not token:
        raise LineError(f"missing value for field {key!r}", key)
    b = _BOOLS.get(token)
    if b is not None:
        return b
    last, word = token[-1], token[0] in "tTfF"
    if last == "i" and not word:
        if not _INT.fullmatch(token, 0, len(token) - 1):
            raise LineError(f"invalid integer value {token!r} for field {key!r}", key)
        v = int(token[:-1])
        if not -INT64_MAX - 1 <= v <= INT64_MAX:
            raise LineError(f"integer value {token!r} for field {key!r} is out of range", key)
        return float(v)
    if last == "u" and not word:
        if not _UINT.fullmatch(token, 0, len(token) - 1):
            raise LineError(f"invalid unsigned integer value {token!r} for field {key!r}", key)
        v = int(token[:-1])
        if v > UINT64_MAX:
            raise LineError(f"unsigned value {token!r} for field {key!r} is out of range", key)
        return float(v)
    if _FLOAT.fullmatch(token):
        f = float(token)
        if math.isfinite(f):
            return f
        raise LineError(f"float value {token!r} for field {key!r} is out of range", key)
    if word:
        raise LineError(
            f"invalid boolean value {token!r} for field {key!r} "
            "(use t, T, true, True, TRUE, f, F, false, False or FALSE)",
            key,
        )
    raise LineError(f"invalid float value {token!r} for field {key!r}", key)


def timestamp_ms(token: str, precision: str) -> int:
    """A timestamp in ``precision`` to epoch milliseconds; must be a non-negative int64."""
    if not _INT.fullmatch(token):
        raise LineError(f"timestamp {token!r} is not an integer", "timestamp")
    v = int(token)
    if v < 0:
        raise LineError(f"negative timestamp {token!r} (must be >= 0)", "timestamp")
    mul, div = MS_SCALE[precision]
    ms = v * mul // div
    if v > INT64_MAX or ms > INT64_MAX:
        raise LineError(
            f"timestamp {token!r} is out of range for precision {precision}", "timestamp"
        )
    return ms


def check_precision(precision: str) -> None:
    if precision not in MS_SCALE:
        raise InvalidInput(
            Problem(f"unknown precision {precision!r}: use ns, us, ms or s", field="precision")
        )


def _scan_fields(text: str, j: int) -> tuple[int, list[tuple[str, float | None]], str | None]:
    """The rest of a line from just after its key section to the newline that ends it.

    Returns (end, [(field key, value or None for a string)], timestamp token or None).
    """
    n = len(text)
    j = _match(_SPACES, text, j).end()
    if j >= n or text[j] == "\n":
        raise LineError("expected field set after measurement and tags", "fields", j)
    fields: list[tuple[str, float | None]] = []
    while True:
        km = _match(_TAG_PART, text, j)
        if km.end() == j:
            raise LineError("missing field key (expected key=value)", "fields", j)
        key, j = field_key(km[0]), km.end()
        if j >= n or text[j] != "=":
            raise LineError(f"field {key!r} has no value (expected key=value)", key, j)
        j += 1
        if j < n and text[j] == '"':
            sm = _STRING.match(text, j)
            if sm is None:
                raise LineError(f"unterminated string value for field {key!r}", key, j)
            j = sm.end()
            if j < n and text[j] not in " ,\n":
                raise LineError(f"unexpected {text[j]!r} after string value of {key!r}", key, j)
            fields.append((key, None))
        else:
            vm = _match(_BARE_VALUE, text, j)
            j = vm.end()
            try:
                fields.append((key, field_value(vm[0], key)))
            except LineError as e:
                e.at = j  # after a string that ran over newlines, resume from here
                raise
        if j < n and text[j] == ",":
            j += 1
            continue
        break
    j = _match(_SPACES, text, j).end()
    if j >= n or text[j] == "\n":
        return j, fields, None
    tm = _match(_TIMESTAMP, text, j)
    end = _match(_SPACES, text, tm.end()).end()
    if end < n and text[end] != "\n":
        rest = text[end : end + 40].split("\n", 1)[0]
        raise LineError(f"unexpected text {rest!r} after timestamp", "timestamp", end)
    return end, fields, tm[0]


def parse_line_protocol_slow(
    body: bytes, precision: Precision = "ns", *, limits: Limits, now_ms: int
) -> SampleBatch:
    """Same contract as ``vigil.ingest.line_protocol.parse_line_protocol``, line by line."""
    check_precision(precision)
    try:
        text = body.decode()
        suspect = "\x00" in text
    except UnicodeDecodeError:
        text, suspect = body.decode("utf-8", "surrogateescape"), True
    text = text.replace("\r\n", "\n")
    keys: dict[str, tuple[str, Labels] | LineError] = {}
    names: dict[tuple[str, str], str] = {}
    series_ids: dict[SeriesKey, int] = {}
    series: list[SeriesMeta] = []
    idx: list[int] = []
    ts_out: list[int] = []
    values: list[float] = []
    skipped = 0
    problems: list[Problem] = []
    pos, lineno, n = 0, 1, len(text)
    while pos < n and len(problems) < MAX_PROBLEMS:
        eol = text.find("\n", pos)
        eol = n if eol < 0 else eol
        start = _match(_INDENT, text, pos).end()
        if start == eol or text[start] == "#":
            pos, lineno = eol + 1, lineno + 1
            continue
        end = eol
        try:
            raw_key_match = _match(_KEY_SECTION, text, start)
            raw_key = raw_key_match[0]
            if suspect:
                _check_chars(raw_key)
            key = keys.get(raw_key)
            if key is None:
                try:
                    key = parse_series_key(raw_key, limits)
                except LineError as e:
                    key = e
                keys[raw_key] = key
            if isinstance(key, LineError):
                raise LineError(key.reason, key.field, start)
            end, fields, ts_token = _scan_fields(text, raw_key_match.end())
            if suspect:  # string values may hold anything: they are dropped
                for fkey, _ in fields:
                    _check_chars(fkey)
            measurement, labels = key
            ts = now_ms if ts_token is None else timestamp_ms(ts_token, precision)
            for fkey, value in fields:
                if value is None:
                    skipped += 1
                    continue
                name = names.get((measurement, fkey))
                if name is None:
                    name = names[measurement, fkey] = metric_name(measurement, fkey, limits)
                sk = SeriesKey(name, labels)
                sid = series_ids.get(sk)
                if sid is None:
                    sid = series_ids[sk] = len(series)
                    series.append(SeriesMeta(sk))
                idx.append(sid)
                ts_out.append(ts)
                values.append(value)
        except LineError as e:
            problems.append(Problem(e.reason, line=lineno, field=e.field))
            # Resume after the line: past its end if scanning got there (a string value may
            # have run over newlines), else past the newline after where scanning stopped.
            end = text.find("\n", max(e.at, end))
            end = n if end < 0 else end
        lineno += 1 + (text.count("\n", eol, end) if end > eol else 0)
        pos = end + 1
    if problems:
        raise InvalidInput(problems)
    return SampleBatch(
        series,
        np.array(idx, np.int32),
        np.array(ts_out, np.int64),
        np.array(values, np.float64),
        skipped,
    )


def _check_chars(token: str) -> None:
    """Names and label values must be NUL-free, valid UTF-8 (invalid bytes decode to
    surrogates here); numbers and timestamps holding such bytes fail on their own."""
    bad = _BAD_CHARS.search(token)
    if bad is not None:
        what = "a NUL byte" if bad[0] == "\x00" else "bytes that are not valid UTF-8"
        raise LineError(f"line contains {what} in {token[:60]!r}", None)
