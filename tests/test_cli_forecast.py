"""``vigil forecast`` end to end: CSV in, CSV out, and the errors that exit 2."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest
import typer
from typer.testing import CliRunner, Result

from vigil.cli_forecast import forecast_cmd

app = typer.Typer(add_completion=False)
app.command("forecast")(forecast_cmd)


@app.callback()
def _group() -> None:
    """Keep ``forecast`` a subcommand, as in ``vigil``."""


runner = CliRunner()
START = datetime(2024, 3, 1, tzinfo=UTC)
N = 24 * 6


def values() -> list[float]:
    t = np.arange(N)
    noise = np.random.default_rng(0).normal(0, 0.5, N)
    return list(20 + 5 * np.sin(2 * np.pi * t / 24) + 0.05 * t + noise)


STAMPS = {
    "iso_z": lambda i: (START + timedelta(hours=i)).isoformat().replace("+00:00", "Z"),
    "iso_offset": lambda i: (START + timedelta(hours=i)).astimezone(
        timezone(timedelta(hours=2))).isoformat(timespec="milliseconds"),
    "iso_naive": lambda i: (START + timedelta(hours=i)).replace(tzinfo=None).isoformat(" "),
    "epoch_s": lambda i: str(int((START + timedelta(hours=i)).timestamp())),
    "epoch_s_float": lambda i: f"{(START + timedelta(hours=i)).timestamp():.1f}",
    "epoch_ms": lambda i: str(int((START + timedelta(hours=i)).timestamp() * 1000)),
}


def document(stamp: str = "iso_z", n: int = N) -> str:
    rows = "".join(f"{STAMPS[stamp](i)},{v:.4f}\n" for i, v in enumerate(values()[:n]))
    return "timestamp,value\n" + rows


def run(*args: str, stdin: str | None = None) -> Result:
    return runner.invoke(app, ["forecast", *args], input=stdin)


def rows_of(result: Result) -> list[dict[str, str]]:
    assert result.exit_code == 0, result.output
    return list(csv.DictReader(io.StringIO(result.stdout)))


@pytest.mark.parametrize("stamp", sorted(STAMPS))
def test_future_points_echo_the_input_timestamp_format(stamp: str) -> None:
    rows = rows_of(run("--horizon", "6", stdin=document(stamp)))
    expected = [STAMPS[stamp](N + k) for k in range(6)]
    assert [r["timestamp"] for r in rows] == expected
    for r in rows:
        assert float(r["lower"]) < float(r["forecast"]) < float(r["upper"])


def test_horizon_as_a_duration_method_period_and_interval(tmp_path: Path) -> None:
    path = tmp_path / "series.csv"
    path.write_text(document())
    wide = rows_of(run("--input", str(path), "--horizon", "1d", "--method", "ets",
                       "--period", "1d", "--interval", "0.99"))
    narrow = rows_of(run("-i", str(path), "--horizon", "24", "--method", "ets",
                         "--period", "24", "--interval", "0.5"))
    assert len(wide) == len(narrow) == 24
    for w, n in zip(wide, narrow, strict=True):
        assert float(w["forecast"]) == pytest.approx(float(n["forecast"]))
        assert float(w["lower"]) < float(n["lower"]) and float(n["upper"]) < float(w["upper"])
    result = run("-i", str(path), "--horizon", "3")
    assert "method " in result.stderr and "period 24" in result.stderr


@pytest.mark.parametrize("method", ["auto", "ets", "naive", "seasonal_naive"])
def test_every_method_writes_the_horizon(method: str) -> None:
    assert len(rows_of(run("--horizon", "5", "--method", method, stdin=document()))) == 5


def test_gaps_are_tolerated() -> None:
    lines = document().splitlines()
    lines[5] = lines[5].split(",")[0] + ","  # empty value
    lines[9] = lines[9].split(",")[0] + ",NaN"
    del lines[20:23]  # missing rows
    rows = rows_of(run("--horizon", "2", stdin="\n".join(lines) + "\n"))
    assert [r["timestamp"] for r in rows] == [STAMPS["iso_z"](N), STAMPS["iso_z"](N + 1)]


BAD = [
    ("", [], "line 1", "header"),
    ("time,val\n1,2\n", [], "line 1", "header"),
    ("timestamp,value\n", [], "line 1", "no samples"),
    ("timestamp,value\n1700000000,1\n1700003600,x\n", [], "line 3", "bad value"),
    ("timestamp,value\n1700000000,1\n1700003600,inf\n", [], "line 3", "finite"),
    ("timestamp,value\n1700000000,1\nyesterday,2\n", [], "line 3", "bad timestamp"),
    ("timestamp,value\n2024-01-01T00:00:00Z,1\n1700003600,2\n", [], "line 3", "ISO 8601"),
    ("timestamp,value\n1700000000,1\n1700000000,2\n", [], "line 3", "not after"),
    ("timestamp,value\n1700000000,1,3\n", [], "line 2", "2 fields"),
    ("timestamp,value\n1700000000,1\n1700003600,2\n", [], "", "at least 3"),
    (None, ["--horizon", "soon"], "", "bad duration"),
    (None, ["--method", "magic"], "", "unknown method"),
    (None, ["--interval", "95"], "", "interval"),
    (None, ["--method", "arima", "--horizon", "0"], "", "horizon"),
]


@pytest.mark.parametrize(("stdin", "args", "where", "message"), BAD)
def test_bad_input_exits_2_naming_the_line(stdin: str | None, args: list[str], where: str,
                                          message: str) -> None:
    result = run(*args, stdin=document() if stdin is None else stdin)
    assert result.exit_code == 2, result.output
    assert where in result.stderr and message in result.stderr
    assert result.stdout == ""


def test_missing_input_file_exits_2(tmp_path: Path) -> None:
    result = run("--input", str(tmp_path / "nope.csv"))
    assert result.exit_code == 2 and "cannot read" in result.stderr
