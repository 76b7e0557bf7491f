"""``vigil detect``: anomaly scores of a CSV series, from stdin or a file, to stdout.

Input: CSV with a header row naming a ``timestamp`` column (also ``time``, ``ts``, ``date``,
``datetime``) and a ``value`` column; other columns are ignored. Timestamps are RFC 3339 /
ISO 8601 or epoch numbers (seconds or milliseconds, any unit: the detectors work in row
order and never convert them); each is checked and echoed exactly as given. An empty
value or ``nan`` / ``null`` / ``na`` is a missing sample: it scores 0 and is skipped.

Output: ``timestamp,anomaly_score`` (6 decimals; with ``--threshold`` also ``is_anomaly``),
one row per input row in input order. Scores are causal (a row's score depends only on the
rows before it) and deterministic. Rows are read, scored and written in chunks, so a file of
millions of rows streams in bounded memory; a bad row stops the command with exit code 2
and a message naming its line (the rows before its chunk have been written).
"""

from __future__ import annotations

import csv
import math
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import IO, Annotated, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

from vigil.analytics.anomaly import DEFAULT_METHOD, METHODS, Detector
from vigil.core.errors import VigilError

err = Console(stderr=True)
CHUNK_ROWS = 65_536
PROGRESS_BYTES = 8 << 20  # show a progress bar for input files larger than this
TIME_NAMES = ("timestamp", "time", "ts", "date", "datetime")
MISSING = ("", "nan", "null", "none", "na", "n/a")


def _error(message: str) -> None:
    err.print(f"[red]error:[/] {message}", soft_wrap=True, highlight=False)


class BadInput(Exception):
    def __init__(self, line: int, reason: str) -> None:
        super().__init__(f"line {line}: {reason}")


def _check_time(text: str, line: int) -> None:
    """Raise unless ``text`` is RFC 3339 / ISO 8601 or a finite epoch number."""
    s = text.strip()
    try:
        v = float(s)
    except ValueError:
        try:
            datetime.fromisoformat(s.replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError:
            raise BadInput(line, f"bad timestamp {text!r}: use RFC 3339 or epoch "
                                 "seconds / milliseconds") from None
        return
    if not math.isfinite(v):
        raise BadInput(line, f"bad timestamp {text!r}")


def _value(text: str, line: int) -> float:
    s = text.strip()
    if s.lower() in MISSING:
        return math.nan
    try:
        return float(s)
    except ValueError:
        raise BadInput(line, f"bad value {text!r}: not a number") from None


def _columns(header: list[str]) -> tuple[int, int]:
    names = [h.strip().lower().lstrip("\ufeff") for h in header]
    t = next((i for i, n in enumerate(names) if n in TIME_NAMES), None)
    v = names.index("value") if "value" in names else None
    if t is None or v is None:
        raise BadInput(1, f"bad header {','.join(header)!r}: expected columns "
                          "timestamp,value")
    return t, v


def _chunks(lines: IO[str]) -> Iterator[tuple[list[str], list[float], int]]:
    """(timestamps, values, bytes read) per chunk of data rows; validates every row."""
    reader = csv.reader(lines)
    try:
        header = next(reader)
    except StopIteration:
        raise BadInput(1, "empty input: expected a header timestamp,value") from None
    t_col, v_col = _columns(header)
    width = max(t_col, v_col) + 1
    stamps: list[str] = []
    values: list[float] = []
    size = 0
    for row in reader:
        line = reader.line_num
        if not row:
            continue
        if len(row) < width:
            raise BadInput(line, f"expected {width} columns, got {len(row)}")
        _check_time(row[t_col], line)
        stamps.append(row[t_col])
        values.append(_value(row[v_col], line))
        size += sum(len(f) for f in row) + len(row)
        if len(values) == CHUNK_ROWS:
            yield stamps, values, size
            stamps, values, size = [], [], 0
    if values:
        yield stamps, values, size


def _run(lines: IO[str], out: IO[str], detector: Detector, threshold: float | None,
         progress: Progress | None, total: int) -> None:
    chunks = _chunks(lines)
    first = next(chunks, None)  # the header is checked before anything is written
    out.write("timestamp,anomaly_score" + ("" if threshold is None else ",is_anomaly") + "\n")
    task = progress.add_task("scoring", total=total) if progress else None
    chunk = first
    while chunk is not None:
        stamps, values, size = chunk
        scores = detector.update_many(values).tolist()
        if threshold is None:
            rows = [f"{_csv_field(t)},{s:.6f}\n" for t, s in zip(stamps, scores, strict=True)]
        else:
            rows = [f"{_csv_field(t)},{s:.6f},{int(s >= threshold)}\n"
                    for t, s in zip(stamps, scores, strict=True)]
        out.write("".join(rows))
        if progress is not None and task is not None:
            progress.advance(task, size)
        chunk = next(chunks, None)
    out.flush()


def _csv_field(text: str) -> str:
    if any(c in text for c in ',"\r\n'):
        return '"' + text.replace('"', '""') + '"'
    return text


def detect(
    method: Annotated[str, typer.Option(
        "--method", "-m", help=f"Detector: {', '.join(METHODS)}.")] = DEFAULT_METHOD,
    input: Annotated[Optional[Path], typer.Option(  # noqa: UP045
        "--input", "-i", help="CSV file with a header timestamp,value (default: stdin).",
        dir_okay=False)] = None,
    period: Annotated[Optional[int], typer.Option(  # noqa: UP045
        help="Seasonal period in samples (default: found in the data).")] = None,
    threshold: Annotated[Optional[float], typer.Option(  # noqa: UP045
        help="Also write is_anomaly (1 when the score >= this, e.g. 0.5).")] = None,
) -> None:
    """Score a series for anomalies: CSV timestamp,value in, timestamp,anomaly_score out."""
    if method not in METHODS:
        _error(f"unknown method {method!r}: use one of {', '.join(METHODS)}")
        raise typer.Exit(2)
    if threshold is not None and not 0.0 <= threshold <= 1.0:
        _error("--threshold must be within [0, 1]")
        raise typer.Exit(2)
    try:
        detector = Detector(method, period=period)
    except VigilError as e:
        _error(f"--period: {e}")
        raise typer.Exit(2) from e
    out = sys.stdout
    try:
        if input is None:
            _run(sys.stdin, out, detector, threshold, None, 0)
            return
        try:
            f = input.open(newline="", encoding="utf-8")
        except OSError as e:
            _error(f"cannot read {input}: {e.strerror}")
            raise typer.Exit(2) from e
        with f:
            size = input.stat().st_size
            if size < PROGRESS_BYTES:
                _run(f, out, detector, threshold, None, 0)
                return
            with Progress(TextColumn("{task.description}"), BarColumn(),
                          TextColumn("{task.percentage:>3.0f}%"), TimeRemainingColumn(),
                          console=err, transient=True) as progress:
                _run(f, out, detector, threshold, progress, size)
    except BadInput as e:
        out.flush()
        _error(f"{e}")
        raise typer.Exit(2) from e
    except UnicodeDecodeError as e:
        _error(f"input is not UTF-8 text: {e.reason}")
        raise typer.Exit(2) from e
