"""InfluxDB line protocol: Telegraf output, escaping, field types, errors, fast == slow."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from vigil.core.errors import InvalidInput
from vigil.core.types import SampleBatch, SeriesKey
from vigil.ingest.limits import Limits, sanitize_label_name, sanitize_metric_name
from vigil.ingest.line_protocol import _parse_fast, parse_line_protocol
from vigil.ingest.line_protocol_slow import Precision, parse_line_protocol_slow

LIMITS = Limits()
NOW = 1_700_000_000_123

Sample = tuple[SeriesKey, int, float]


def parse(body: bytes, precision: str = "ns", limits: Limits = LIMITS) -> SampleBatch:
    """Parse with a precision given as text (as the HTTP layer would pass it on)."""
    return parse_line_protocol(body, cast(Precision, precision), limits=limits, now_ms=NOW)


def parse_slow(body: bytes, precision: str = "ns") -> SampleBatch:
    return parse_line_protocol_slow(body, cast(Precision, precision), limits=LIMITS, now_ms=NOW)


def samples(batch: SampleBatch) -> list[Sample]:
    assert batch.series_idx.dtype == np.int32
    assert batch.ts_ms.dtype == np.int64
    assert batch.value.dtype == np.float64
    keys = [m.key for m in batch.series]
    assert len(set(keys)) == len(keys), "a series is listed twice"
    assert all(m.type == "gauge" and m.category == "custom" for m in batch.series)
    return [
        (keys[i], t, v)
        for i, t, v in zip(
            batch.series_idx.tolist(), batch.ts_ms.tolist(), batch.value.tolist(), strict=True
        )
    ]


def key(name: str, **labels: str) -> SeriesKey:
    return SeriesKey.of(name, labels)


def parse_error(body: bytes, limits: Limits = LIMITS) -> InvalidInput:
    with pytest.raises(InvalidInput) as info:
        parse(body, limits=limits)
    return info.value


def problems(body: bytes, limits: Limits = LIMITS) -> list[tuple[int | None, str | None, str]]:
    return [(p.line, p.field, p.reason) for p in parse_error(body, limits).problems]


# --- Telegraf output ------------------------------------------------------------------------

TELEGRAF = b"".join(
    line + b" 1700000000000000000\n"
    for line in (
        b"cpu,cpu=cpu-total,host=web-1 usage_user=2.3046092184368736,usage_idle=96.49298597194388",
        b"mem,host=web-1 used=3281473536i,available_percent=79.8",
        b"disk,device=sda1,fstype=ext4,host=web-1,mode=rw,path=/ free=20458758144i,used_percent=42",
        b"net,host=web-1,interface=eth0 bytes_recv=123456789u,err_in=0u",
        b'system,host=web-1 uptime_format="12 days,  3:04",load1=0.42,n_users=2i',
        b'procstat,host=web-1,process_name=nginx cmdline="nginx: worker process"',
    )
)


def test_telegraf_sample() -> None:
    batch = parse(TELEGRAF)
    ts = 1_700_000_000_000
    assert samples(batch) == [
        (key("cpu_usage_user", cpu="cpu-total", host="web-1"), ts, 2.3046092184368736),
        (key("cpu_usage_idle", cpu="cpu-total", host="web-1"), ts, 96.49298597194388),
        (key("mem_used", host="web-1"), ts, 3281473536.0),
        (key("mem_available_percent", host="web-1"), ts, 79.8),
        (
            key("disk_free", device="sda1", fstype="ext4", host="web-1", mode="rw", path="/"),
            ts,
            20458758144.0,
        ),
        (
            key(
                "disk_used_percent", device="sda1", fstype="ext4", host="web-1", mode="rw", path="/"
            ),
            ts,
            42.0,
        ),
        (key("net_bytes_recv", host="web-1", interface="eth0"), ts, 123456789.0),
        (key("net_err_in", host="web-1", interface="eth0"), ts, 0.0),
        (key("system_load1", host="web-1"), ts, 0.42),
        (key("system_n_users", host="web-1"), ts, 2.0),
    ]
    assert batch.skipped == 2  # uptime_format and cmdline


def test_series_listed_once_in_order_of_first_appearance() -> None:
    body = b"cpu,b=2,a=1 x=1,y=2 10\ncpu,a=1,b=2 y=3,x=4 20\nmem v=5 30\ncpu,a=1,b=2 x=6 40\n"
    batch = parse(body, "ms")
    assert [m.key for m in batch.series] == [
        key("cpu_x", a="1", b="2"),
        key("cpu_y", a="1", b="2"),
        key("mem_v"),
    ]
    assert batch.series_idx.tolist() == [0, 1, 1, 0, 2, 0]
    assert batch.ts_ms.tolist() == [10, 10, 20, 20, 30, 40]
    assert batch.value.tolist() == [1, 2, 3, 4, 5, 6]


def test_names_that_sanitize_alike_are_one_series() -> None:
    batch = parse(b"disk-io,host=a read.bytes=1\ndisk_io,host=a read_bytes=2\n")
    assert [m.key for m in batch.series] == [key("disk_io_read_bytes", host="a")]
    assert batch.series_idx.tolist() == [0, 0]


@pytest.mark.parametrize(
    "body",
    [b"", b"\n\n", b"# just a comment\n", b"  \n\t\n# a\n   # b\n"],
)
def test_nothing_to_parse(body: bytes) -> None:
    batch = parse(body)
    assert len(batch) == 0 and list(batch.series) == [] and batch.skipped == 0


def test_blank_lines_comments_and_crlf_are_ignored() -> None:
    body = b"# header\r\n\r\ncpu f=1 1000000\r\n   \r\n  # indented comment\r\nmem g=2i 2000000\r\n"
    assert samples(parse(body)) == [(key("cpu_f"), 1, 1.0), (key("mem_g"), 2, 2.0)]


def test_only_string_fields_give_no_samples() -> None:
    batch = parse(b'syslog,host=a message="disk full",severity="err" 1\n')
    assert len(batch) == 0 and list(batch.series) == [] and batch.skipped == 2


# --- precision and timestamps ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("precision", "stamp", "ms"),
    [
        ("ns", b"1700000000123456789", 1_700_000_000_123),
        ("us", b"1700000000123456", 1_700_000_000_123),
        ("ms", b"1700000000123", 1_700_000_000_123),
        ("s", b"1700000000", 1_700_000_000_000),
        ("ns", b"999999", 0),  # truncated, not rounded
        ("s", b"0", 0),
        ("ns", b"9223372036854775807", 9_223_372_036_854),
    ],
)
def test_precision(precision: str, stamp: bytes, ms: int) -> None:
    for body in (b"cpu f=1 " + stamp + b"\n", b'cpu f=1,s="x" ' + stamp):  # fast, slow
        assert samples(parse(body, precision)) == [(key("cpu_f"), ms, 1.0)]


def test_missing_timestamp_is_now() -> None:
    body = b"cpu f=1\ncpu f=2 5000000\n"
    assert samples(parse(body)) == [(key("cpu_f"), NOW, 1.0), (key("cpu_f"), 5, 2.0)]


def test_unknown_precision() -> None:
    with pytest.raises(InvalidInput) as info:
        parse(b"cpu f=1", "m")
    assert info.value.problems[0].field == "precision"


# --- escaping -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (rb"cpu\,x\ y,t=1 f=1", key("cpu_x_y_f", t="1")),
        (rb"a=b f=1", key("a_b_f")),  # '=' needs no escape in a measurement
        (rb"m,a\ b\,c\=d=v f=1", key("m_f", a_b_c_d="v")),
        (rb"m,t=a\ b\,c\=d f=1", key("m_f", t="a b,c=d")),
        (rb"m,t=C:\Temp f=1", key("m_f", t="C:\\Temp")),  # other backslashes stay
        (rb"m,t=a\\b f=1", key("m_f", t="a\\\\b")),
        (rb"m f\ x\,y\=z=1", key("m_f_x_y_z")),
        (rb"m,t=\  f=1", key("m_f", t=" ")),
        ("m,host=caf\u00e9 f=1".encode(), key("m_f", host="caf\u00e9")),
    ],
)
def test_escaping(line: bytes, expected: SeriesKey) -> None:
    assert samples(parse(line + b" 1000000")) == [(expected, 1, 1.0)]


@pytest.mark.parametrize(
    "string",
    [
        rb'"a b, c=d"',
        rb'"say \"hi\""',
        rb'"ends in backslash \\"',
        rb'"\\\" tricky"',
        rb'""',
        b'"two\nlines"',  # InfluxDB accepts raw newlines in strings; Telegraf sends them
        b'"caf\xc3\xa9 \xe2\x82\xac"',
        b'"NUL \x00 and invalid UTF-8 \xff: dropped anyway"',
    ],
)
def test_quoted_strings_are_skipped(string: bytes) -> None:
    batch = parse(b"m s=" + string + b",f=2,t=" + string + b" 1000000\nm f=3 2000000\n")
    assert samples(batch) == [(key("m_f"), 1, 2.0), (key("m_f"), 2, 3.0)]
    assert batch.skipped == 2


def test_line_numbers_count_newlines_inside_strings() -> None:
    assert problems(b'm s="a\nb\nc",f=1\nm f=x\n') == [
        (4, "f", "invalid float value 'x' for field 'f'")
    ]


# --- field types ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("token", "value"),
    [
        (b"1", 1.0),
        (b"1.5", 1.5),
        (b"-1e3", -1000.0),
        (b"1E+2", 100.0),
        (b"2.5e-3", 0.0025),
        (b".5", 0.5),
        (b"-0.25", -0.25),
        (b"0", 0.0),
        (b"12i", 12.0),
        (b"-12i", -12.0),
        (b"9223372036854775807i", 9223372036854775807.0),
        (b"-9223372036854775808i", -9223372036854775808.0),
        (b"12u", 12.0),
        (b"18446744073709551615u", 18446744073709551615.0),
        *[(w, 1.0) for w in (b"t", b"T", b"true", b"True", b"TRUE")],
        *[(w, 0.0) for w in (b"f", b"F", b"false", b"False", b"FALSE")],
    ],
)
def test_field_types(token: bytes, value: float) -> None:
    for body in (b"m v=" + token, b'm s="",v=' + token):  # fast path, slow path
        assert samples(parse(body)) == [(key("m_v"), NOW, value)]


def test_mixed_types_in_one_batch() -> None:
    body = b"m a=1,b=2i,c=t,d=3u,e=F 1000000\nm a=1.5,b=-4i,c=false,d=0u,e=TRUE 2000000\n"
    assert [v for _, _, v in samples(parse(body))] == [1, 2, 1, 3, 0, 1.5, -4, 0, 0, 1]


# --- errors ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "line", "field", "reason"),
    [
        (b"cpu\n", 1, "fields", "expected field set after measurement and tags"),
        (b"ok f=1\ncpu,host=a\n", 2, "fields", "expected field set"),
        (b"cpu  \n", 1, "fields", "expected field set"),
        (b"cpu f\n", 1, "f", "has no value"),
        (b"cpu f=\n", 1, "f", "missing value for field 'f'"),
        (b"cpu =1\n", 1, "fields", "missing field key"),
        (b"cpu f=1,\n", 1, "fields", "missing field key"),
        (b",t=a f=1\n", 1, "measurement", "missing measurement"),
        (b"cpu usage=abc\n", 1, "usage", "invalid float value 'abc' for field 'usage'"),
        (b"cpu usage=inf\n", 1, "usage", "invalid float value 'inf'"),
        (b"cpu usage=NaN\n", 1, "usage", "invalid float value 'NaN'"),
        (b"cpu usage=1e999\n", 1, "usage", "out of range"),
        (b"cpu n=1.5i\n", 1, "n", "invalid integer value '1.5i'"),
        (b"cpu n=9223372036854775808i\n", 1, "n", "out of range"),
        (b"cpu n=-1u\n", 1, "n", "invalid unsigned integer value '-1u'"),
        (b"cpu n=18446744073709551616u\n", 1, "n", "out of range"),
        (b"cpu ok=yes\n", 1, "ok", "invalid float value 'yes'"),
        (b"cpu ok=tru\n", 1, "ok", "invalid boolean value 'tru'"),
        (b"cpu ok=FALSe\n", 1, "ok", "invalid boolean value 'FALSe'"),
        (b'cpu s="abc\n', 1, "s", "unterminated string"),
        (b'cpu s="abc"x\n', 1, "s", "after string value"),
        (b"cpu f=1 x\n", 1, "timestamp", "timestamp 'x' is not an integer"),
        (b"cpu f=1 1.5\n", 1, "timestamp", "not an integer"),
        (b"cpu f=1 -5\n", 1, "timestamp", "negative timestamp '-5'"),
        (b"cpu f=1 99999999999999999999\n", 1, "timestamp", "out of range"),
        (b"cpu f=1 1 2\n", 1, "timestamp", "unexpected text '2' after timestamp"),
        (b"cpu,host=a,host=b f=1\n", 1, "tags", "duplicate tag 'host'"),
        (b"cpu,a-b=1,a.b=2 f=1\n", 1, "tags", "both become label 'a_b'"),
        (b"cpu,host f=1\n", 1, "tags", "tag 'host' has no value"),
        (b"cpu,=a f=1\n", 1, "tags", "missing tag key"),
        (b"cpu,a=b=c f=1\n", 1, "tags", "unescaped '='"),
        (b"cpu f=1\n\xff\xfe f=2\n", 2, None, "not valid UTF-8"),
        (b"cpu,host=a\x00 f=1\n", 1, None, "NUL"),
        (b"cpu f\xff=1\n", 1, None, "not valid UTF-8"),
        (b"cpu f=1\x00\n", 1, "f", "invalid float value '1\\x00'"),
    ],
)
def test_errors(body: bytes, line: int, field: str | None, reason: str) -> None:
    [(got_line, got_field, got_reason)] = problems(body)
    assert (got_line, got_field) == (line, field)
    assert reason in got_reason


def test_too_many_tags() -> None:
    body = b"cpu,a=1,b=2 f=1\ncpu,a=1,b=2,c=3 f=1\n"
    [(line, field, reason)] = problems(body, Limits(max_labels=2))
    assert (line, field) == (2, "tags") and "3 labels" in reason


def test_too_long_tag_value() -> None:
    body = b"cpu,host=short f=1\ncpu,host=much-too-long f=1\n"
    [(line, field, reason)] = problems(body, Limits(max_label_value_length=5))
    assert (line, field) == (2, "tags") and "'host'" in reason


def test_too_long_metric_name() -> None:
    [(line, field, reason)] = problems(b"cpu usage_user=1\n", Limits(max_name_length=8))
    assert (line, field) == (1, "usage_user") and "longer than 8" in reason


def test_first_ten_bad_lines_are_reported() -> None:
    body = b"".join(b"cpu f=1\ncpu f=x%d\n" % i for i in range(15))
    found = problems(body)
    assert [line for line, _, _ in found] == list(range(2, 21, 2))
    assert str(parse_error(body)).endswith("(and 9 more)")


def test_batch_is_atomic() -> None:
    with pytest.raises(InvalidInput):
        parse(b"cpu f=1\n" * 100 + b"cpu f=oops\n")


# --- property tests -------------------------------------------------------------------------

MEASUREMENT_SPECIALS = ", "
KEY_SPECIALS = ", ="
# A wide alphabet, heavy on characters that need escaping or sanitizing.
NAME_CHARS = st.one_of(
    st.sampled_from(list(" ,=\\\"'#-._:/\t\r\u00e9\u20ac\U0001f600aZ09")),
    st.characters(codec="utf-8", exclude_characters="\n\x00"),  # no lone surrogates
)
names = st.text(NAME_CHARS, min_size=1, max_size=12)
tag_values = st.text(NAME_CHARS, max_size=12)


def escape(s: str, specials: str) -> str:
    return "".join("\\" + c if c in specials else c for c in s)


def encodable(s: str, specials: str) -> bool:
    """Line protocol cannot write a backslash that ends a token or precedes a special."""
    return re.search(r"\\(?=[" + re.escape(specials) + r"]|$)", s) is None


@dataclass
class Point:
    measurement: str
    tags: dict[str, str]
    fields: Sequence[tuple[str, object]]  # float, int (i), ("u", int), (bool, word), str
    ts: int | None


def encode_field(value: object) -> str:
    match value:
        case (bool(), str(word)):
            return word
        case ("u", int(n)):
            return f"{n}u"
        case int(n):
            return f"{n}i"
        case float(x):
            return repr(x)
        case str(s):
            return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'
    raise AssertionError(value)


def encode_line_protocol(points: list[Point]) -> bytes:
    """An encoder following the escaping rules, as Telegraf's influx serializer writes."""
    lines = []
    for p in points:
        head = escape(p.measurement, MEASUREMENT_SPECIALS) + "".join(
            f",{escape(k, KEY_SPECIALS)}={escape(v, KEY_SPECIALS)}" for k, v in p.tags.items()
        )
        fields = ",".join(f"{escape(k, KEY_SPECIALS)}={encode_field(v)}" for k, v in p.fields)
        lines.append(f"{head} {fields}" + ("" if p.ts is None else f" {p.ts}"))
    return ("\n".join(lines) + "\n").encode()


def expected(points: list[Point], precision: str) -> tuple[list[Sample], int]:
    mul, div = {"ns": (1, 1_000_000), "us": (1, 1000), "ms": (1, 1), "s": (1000, 1)}[precision]
    out: list[Sample] = []
    skipped = 0
    for p in points:
        labels = {sanitize_label_name(k): v for k, v in p.tags.items() if v}
        ts = NOW if p.ts is None else p.ts * mul // div
        for k, value in p.fields:
            match value:
                case str():
                    skipped += 1
                    continue
                case (bool(b), str()):
                    v = float(b)
                case ("u", int(n)):
                    v = float(n)
                case int(n):
                    v = float(n)
                case float(x):
                    v = x
            name = sanitize_metric_name(f"{p.measurement}_{k}")
            out.append((SeriesKey.of(name, labels), ts, v))
    return out, skipped


BOOL_WORDS = st.one_of(
    st.tuples(st.just(True), st.sampled_from(["t", "T", "true", "True", "TRUE"])),
    st.tuples(st.just(False), st.sampled_from(["f", "F", "false", "False", "FALSE"])),
)
field_values = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False),
    st.integers(-(2**63), 2**63 - 1),
    st.tuples(st.just("u"), st.integers(0, 2**64 - 1)),
    BOOL_WORDS,
    st.text(max_size=10),
)


def unique_label_names(tags: dict[str, str]) -> bool:
    return len({sanitize_label_name(k) for k in tags}) == len(tags)


@st.composite
def points(draw: st.DrawFn, ts_max: int) -> Point:
    measurement = draw(
        names.filter(lambda m: encodable(m, MEASUREMENT_SPECIALS) and m[0] not in "#\t")
    )
    tags = draw(
        st.dictionaries(
            names.filter(lambda k: encodable(k, KEY_SPECIALS)),
            tag_values.filter(lambda v: encodable(v, KEY_SPECIALS)),
            max_size=4,
        ).filter(unique_label_names)
    )
    fields = draw(
        st.lists(
            st.tuples(names.filter(lambda k: encodable(k, KEY_SPECIALS)), field_values),
            min_size=1,
            max_size=4,
        )
    )
    ts = draw(st.none() | st.integers(0, ts_max))
    return Point(measurement, tags, fields, ts)


PRECISIONS = st.sampled_from(["ns", "us", "ms", "s"])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data(), PRECISIONS)
def test_round_trip(data: st.DataObject, precision: str) -> None:
    ts_max = (2**63 - 1) // 1000 if precision == "s" else 2**63 - 1
    pts = data.draw(st.lists(points(ts_max), min_size=1, max_size=6))
    body = encode_line_protocol(pts)
    batch = parse(body, precision)
    want, skipped = expected(pts, precision)
    assert samples(batch) == want
    assert batch.skipped == skipped


def assert_same(a: SampleBatch, b: SampleBatch) -> None:
    assert list(a.series) == list(b.series)
    assert a.series_idx.tolist() == b.series_idx.tolist()
    assert a.ts_ms.tolist() == b.ts_ms.tolist()
    assert a.value.tolist() == b.value.tolist()
    assert a.skipped == b.skipped


# Plain names (no quotes, backslashes or strings) so that the fast path takes the body.
plain_names = st.text(
    st.sampled_from(list("abcXYZ019_-.:/\u00e9\t\r#")), min_size=1, max_size=8
).filter(lambda s: s[0] not in "#\t")
plain_values = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False),
    st.integers(-(2**63), 2**63 - 1),
    st.tuples(st.just("u"), st.integers(0, 2**64 - 1)),
    BOOL_WORDS,
)


@st.composite
def plain_points(draw: st.DrawFn) -> Point:
    tags = draw(st.dictionaries(plain_names, plain_names | st.just(""), max_size=3))
    fields = draw(st.lists(st.tuples(plain_names, plain_values), min_size=1, max_size=4))
    ts = draw(st.none() | st.integers(0, 2**63 - 1))
    return Point(draw(plain_names), tags, fields, ts)


@settings(max_examples=300, deadline=None)
@given(st.lists(plain_points(), min_size=1, max_size=8))
def test_fast_path_agrees_with_slow_path(pts: list[Point]) -> None:
    body = encode_line_protocol(pts)
    fast = _parse_fast(body, "ns", LIMITS, NOW)
    try:
        slow = parse_slow(body)
    except InvalidInput:
        assert fast is None  # e.g. tags that sanitize to the same label
        return
    assert fast is not None, "the fast path should take plain Telegraf-style bodies"
    assert_same(fast, slow)
    if all(unique_label_names(p.tags) for p in pts):
        assert samples(fast) == expected(pts, "ns")[0]


# Text from the characters that drive the fast path's structure: whatever it accepts, it must
# parse exactly as the slow path does.
tricky = st.text(st.sampled_from(list("ab=, \n\r\t#1.-+eEiutfTF_0x9")), max_size=60)


@settings(max_examples=1000, deadline=None)
@given(tricky, PRECISIONS)
def test_fast_path_never_disagrees(text: str, precision: str) -> None:
    body = text.encode()
    fast = _parse_fast(body, precision, LIMITS, NOW)
    if fast is not None:
        assert_same(fast, parse_slow(body, precision))


def test_fast_path_takes_telegraf_bodies() -> None:
    body = TELEGRAF.replace(b'uptime_format="12 days,  3:04",', b"").replace(
        b'cmdline="nginx: worker process"', b"pid=1i"
    )
    fast = _parse_fast(body, "ns", LIMITS, NOW)
    assert fast is not None
    assert_same(fast, parse_slow(body))


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=200) | st.text(max_size=100).map(str.encode), PRECISIONS)
def test_garbage_raises_only_invalid_input(body: bytes, precision: str) -> None:
    try:
        batch = parse(body, precision)
    except InvalidInput as e:
        assert 1 <= len(e.problems) <= 10
        assert all(p.line is not None and p.line >= 1 for p in e.problems)
    else:
        samples(batch)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(TELEGRAF.splitlines(keepends=True)), max_size=10), st.binary())
def test_garbage_after_good_lines(lines: list[bytes], tail: bytes) -> None:
    body = b"".join(lines) + tail
    assume(b"\n" not in tail)
    try:
        batch = parse(body)
    except InvalidInput as e:
        assert e.problems[0].line == len(lines) + 1
    else:
        assert len(batch) >= 0


def test_resumes_after_a_bad_line_whose_string_ran_over_newlines() -> None:
    body = b'm,t=a s="x\ny\nz",f=bad\nm f=1\nm f=oops\n'
    assert [(line, field) for line, field, _ in problems(body)] == [(1, "f"), (5, "f")]


@pytest.mark.parametrize(
    ("body", "field"),
    [(b"m v=0x1i 5\n", "v"), (b"m v=0XFFu 5\n", "v"), (b"m v=1 0x10\n", "timestamp")],
)
def test_hexadecimal_is_not_an_integer(body: bytes, field: str) -> None:
    """Arrow's integer cast reads 0x..., line protocol does not: the fast path must not."""
    assert _parse_fast(body, "ns", LIMITS, NOW) is None
    [(line, got_field, _)] = problems(body)
    assert (line, got_field) == (1, field)
