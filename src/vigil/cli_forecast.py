"""``vigil forecast``: forecast a ``timestamp,value`` CSV series; registered by ``vigil.cli``.

Input: a header line ``timestamp,value`` then one sample per line, from ``--input`` or stdin.
Timestamps are ISO 8601 (RFC 3339, date-only, naive = UTC), epoch seconds or epoch
milliseconds (integers from 1e11 up), one kind per file, strictly increasing. An empty value
or ``nan`` is a gap. Output on stdout: ``timestamp,forecast,lower,upper`` for the future
points, timestamps in the input's format. Bad input exits 2 naming the line.
"""

from __future__ import annotations

import csv
import math
import re
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from itertools import pairwise
from pathlib import Path
from statistics import median_low
from typing import Annotated, Literal

import typer
from rich.console import Console

from vigil.core.errors import InvalidInput, Problem

err = Console(stderr=True)

_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)$")
_ISO_TIME = re.compile(
    r"^\d{4}-?\d\d-?\d\d(?P<sep>[T ])\d\d:?\d\d(?::?(?P<ss>\d\d)(?:[.,](?P<frac>\d+))?)?")
_EPOCH_MS_FROM = 1e11  # epoch seconds reach 1e11 in the year 5138; epoch ms passed it in 1973
TimeKind = Literal["iso", "epoch_s", "epoch_ms"]


@dataclass(frozen=True, slots=True)
class TimeFormat:
    """How the input wrote its timestamps, so future points are written the same way."""

    kind: TimeKind
    decimals: int = 0  # epoch seconds: digits after the point
    sep: str = "T"  # ISO: date/time separator; "" for date-only
    timespec: str = "seconds"
    tz: tzinfo | None = None  # ISO: the offset written (None: naive, read as UTC)
    zulu: bool = False  # ISO: offset written as "Z"

    def format(self, ts_ms: int) -> str:
        if self.kind == "epoch_ms":
            return str(ts_ms)
        if self.kind == "epoch_s":
            return f"{ts_ms / 1000:.{self.decimals}f}"
        dt = datetime.fromtimestamp(ts_ms / 1000, tz=self.tz or UTC)
        if self.tz is None:
            dt = dt.replace(tzinfo=None)
        if not self.sep and dt.hour == dt.minute == dt.second == dt.microsecond == 0:
            return dt.date().isoformat()
        text = dt.isoformat(sep=self.sep or "T", timespec=self.timespec)
        return text[:-6] + "Z" if self.zulu and text.endswith("+00:00") else text


def _sniff(text: str) -> TimeFormat:
    if _NUMBER.match(text):
        frac = text.partition(".")[2]
        if "." not in text and float(text) >= _EPOCH_MS_FROM:
            return TimeFormat("epoch_ms")
        return TimeFormat("epoch_s", decimals=min(len(frac), 3))
    dt = datetime.fromisoformat(text)  # ValueError: not a timestamp
    m = _ISO_TIME.match(text)
    if m is None:  # a date without a time
        return TimeFormat("iso", sep="", tz=dt.tzinfo)
    frac = m.group("frac") or ""
    timespec = ("microseconds" if len(frac) > 3 else "milliseconds" if frac
                else "seconds" if m.group("ss") else "minutes")
    return TimeFormat("iso", sep=m.group("sep"), timespec=timespec, tz=dt.tzinfo,
                      zulu=text.upper().endswith("Z"))


def _parse_time(text: str, fmt: TimeFormat) -> int:
    if fmt.kind != "iso":
        if not _NUMBER.match(text):
            raise ValueError
        return int(text) if fmt.kind == "epoch_ms" else round(float(text) * 1000)
    dt = datetime.fromisoformat(text)
    return round((dt if dt.tzinfo else dt.replace(tzinfo=UTC)).timestamp() * 1000)


def read_series(text: str) -> tuple[list[int], list[float], TimeFormat]:
    """Timestamps (epoch ms), values (NaN for gaps) and the time format of a CSV document."""
    rows = [(i, line) for i, line in enumerate(text.splitlines(), 1) if line.strip()]
    if not rows:
        raise InvalidInput(Problem("empty input: expected a header 'timestamp,value'", line=1))
    head_line, head = rows[0]
    if [c.strip().lower() for c in next(csv.reader([head]))] != ["timestamp", "value"]:
        raise InvalidInput(Problem(f"expected the header 'timestamp,value', got {head!r}",
                                   line=head_line))
    ts: list[int] = []
    values: list[float] = []
    fmt: TimeFormat | None = None
    for line_no, line in rows[1:]:
        cells = [c.strip() for c in next(csv.reader([line]))]
        if len(cells) != 2:
            raise InvalidInput(Problem(f"expected 2 fields (timestamp,value), got {len(cells)}",
                                       line=line_no))
        try:
            fmt = fmt or _sniff(cells[0])
            t = _parse_time(cells[0], fmt)
        except ValueError as e:
            kind = {"iso": "ISO 8601", "epoch_s": "epoch seconds", "epoch_ms": "epoch ms"}
            want = f"{kind[fmt.kind]} like the first row" if fmt else "ISO 8601 or epoch s/ms"
            raise InvalidInput(Problem(f"bad timestamp {cells[0]!r}: expected {want}",
                                       line=line_no)) from e
        if ts and t <= ts[-1]:
            raise InvalidInput(Problem(f"timestamp {cells[0]!r} is not after the previous one; "
                                       "sort the input and drop duplicates", line=line_no))
        try:
            v = math.nan if cells[1].lower() in ("", "nan") else float(cells[1])
        except ValueError as e:
            raise InvalidInput(Problem(f"bad value {cells[1]!r}: expected a number, or empty "
                                       "for a gap", line=line_no)) from e
        if math.isinf(v):
            raise InvalidInput(Problem(f"bad value {cells[1]!r}: must be finite", line=line_no))
        ts.append(t)
        values.append(v)
    if fmt is None:
        raise InvalidInput(Problem("no samples after the header", line=head_line))
    return ts, values, fmt


def _points(text: str, step_ms: int, option: str) -> int:
    """``24`` (points) or a duration such as ``1d`` in sampling steps (at least 1)."""
    from vigil.core.timeutil import parse_duration_ms

    s = text.strip()
    if s.isdigit():
        return int(s)
    return max(1, math.ceil(parse_duration_ms(s, option) / step_ms))


def forecast_cmd(
    input_path: Annotated[Path | None, typer.Option(
        "--input", "-i", help="CSV file with a 'timestamp,value' header (default: stdin).",
        dir_okay=False)] = None,
    horizon: Annotated[str, typer.Option(
        help="How far ahead: points (e.g. 24) or a duration (e.g. 6h, 1d).")] = "24",
    method: Annotated[str, typer.Option(
        help="auto, ets, arima, naive or seasonal_naive.")] = "auto",
    period: Annotated[str | None, typer.Option(
        help="Seasonal period: points or a duration (default: detected; 1 = none).")] = None,
    interval: Annotated[float, typer.Option(
        help="Prediction interval coverage, e.g. 0.95.")] = 0.95,
) -> None:
    """Forecast a series (CSV timestamp,value) with prediction intervals.

    Reads stdin or --input; writes CSV timestamp,forecast,lower,upper for the future points,
    timestamps in the input's format. Bad input exits 2 naming the line.
    """
    from vigil.analytics.forecast import forecast

    try:
        text = input_path.read_text() if input_path else sys.stdin.read()
    except (OSError, UnicodeDecodeError) as e:
        err.print(f"[red]error:[/] cannot read {input_path or 'stdin'}: {e}")
        raise typer.Exit(2) from e
    try:
        ts, values, fmt = read_series(text)
        step_ms = median_low(b - a for a, b in pairwise(ts)) if len(ts) > 1 else 1
        steps = _points(horizon, step_ms, "--horizon")
        m = None if period is None else _points(period, step_ms, "--period")
        with err.status(f"fitting {method} on {len(ts):,} points"):
            fc = forecast(values, ts, horizon=steps, method=method, period=m, interval=interval)
    except InvalidInput as e:
        err.print(f"[red]error:[/] {e}")
        raise typer.Exit(2) from e
    assert fc.t_ms is not None, "BUG: timestamps were given"
    out = ["timestamp,forecast,lower,upper"]
    out += [f"{fmt.format(int(t))},{v:.10g},{lo:.10g},{hi:.10g}"
            for t, v, lo, hi in zip(fc.t_ms, fc.values, fc.lower, fc.upper, strict=True)]
    sys.stdout.write("\n".join(out) + "\n")
    mase = "n/a" if fc.mase_in_sample is None else f"{fc.mase_in_sample:.3f}"
    err.print(f"method {fc.method}, period {fc.period or 'none'}, {len(fc.values)} points, "
              f"in-sample MASE {mase}", highlight=False)
