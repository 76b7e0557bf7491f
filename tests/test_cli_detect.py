"""``vigil detect`` end to end, on a typer app holding just that command."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from vigil.analytics.anomaly import score
from vigil.cli_detect import detect

app = typer.Typer(add_completion=False)
app.command("detect")(detect)


@app.callback()
def _group() -> None:
    """Keep ``detect`` a subcommand, as in ``vigil``."""


runner = CliRunner()


def series(n: int = 400, seed: int = 1) -> np.ndarray:
    x = 50 + np.random.default_rng(seed).normal(size=n)
    x[300] += 15
    return x


def csv_of(stamps: list[str], values: list[str], header: str = "timestamp,value") -> str:
    return header + "\n" + "".join(f"{t},{v}\n" for t, v in zip(stamps, values, strict=True))


def rows(output: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(output)))


@pytest.mark.parametrize("stamp", [
    lambda i: str(1_700_000_000 + 60 * i),  # epoch seconds
    lambda i: str(1_700_000_000_000 + 60_000 * i),  # epoch milliseconds
    lambda i: f"2024-03-01T{i // 60:02d}:{i % 60:02d}:00Z",  # RFC 3339
    lambda i: f"2024-03-01 {i // 60:02d}:{i % 60:02d}:00",  # ISO 8601, NAB style
])
def test_scores_every_row_from_stdin(stamp: object) -> None:
    x = series()
    stamps = [stamp(i) for i in range(len(x))]  # type: ignore[operator]
    result = runner.invoke(app, ["detect"], input=csv_of(stamps, [f"{v:.6f}" for v in x]))
    assert result.exit_code == 0, result.output
    out = rows(result.stdout)
    assert out[0] == ["timestamp", "anomaly_score"]
    assert [r[0] for r in out[1:]] == stamps  # echoed exactly, one row per input row
    scores = np.array([float(r[1]) for r in out[1:]])
    expected = score(np.array([float(f"{v:.6f}") for v in x]))
    assert np.allclose(scores, expected, atol=5e-7)
    assert all(len(r[1].split(".")[1]) == 6 for r in out[1:])
    assert scores[300] > 0.5 and (np.delete(scores, 300) < 0.5).all()


def test_file_input_method_threshold_and_missing(tmp_path: Path) -> None:
    x = series()
    values = [f"{v}" for v in x]
    values[10], values[11], values[12] = "", "nan", "NaN"
    path = tmp_path / "in.csv"
    path.write_text(csv_of([str(i) for i in range(len(x))], values,
                           header="timestamp,value,label"))
    args = ["detect", "--input", str(path), "-m", "robust", "--threshold", "0.5"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    out = rows(result.stdout)
    assert out[0] == ["timestamp", "anomaly_score", "is_anomaly"]
    assert [r[1] for r in out[11:14]] == ["0.000000"] * 3
    flagged = [int(r[0]) for r in out[1:] if r[2] == "1"]
    assert 300 in flagged
    again = runner.invoke(app, args)
    assert again.stdout == result.stdout  # deterministic


def test_period_and_empty_input() -> None:
    result = runner.invoke(app, ["detect", "--period", "24", "-m", "seasonal"],
                           input="timestamp,value\n")
    assert result.exit_code == 0
    assert result.stdout == "timestamp,anomaly_score\n"


@pytest.mark.parametrize(("args", "stdin", "message"), [
    (["detect"], "time,val\n1,2\n", "line 1: bad header"),
    (["detect"], "", "line 1: empty input"),
    (["detect"], "timestamp,value\n1,2\n2,12abc\n", "line 3: bad value '12abc'"),
    (["detect"], "timestamp,value\n1,2\nnot-a-time,3\n", "line 3: bad timestamp 'not-a-time'"),
    (["detect"], "timestamp,value\n1,2\n5\n", "line 3: expected 2 columns"),
    (["detect", "--method", "magic"], "timestamp,value\n1,2\n", "unknown method 'magic'"),
    (["detect", "--period", "1"], "timestamp,value\n1,2\n", "--period"),
    (["detect", "--threshold", "2"], "timestamp,value\n1,2\n", "--threshold"),
])
def test_bad_input_names_the_line(args: list[str], stdin: str, message: str) -> None:
    result = runner.invoke(app, args, input=stdin)
    assert result.exit_code == 2
    assert message in result.stderr
    assert result.stdout == ""


def test_missing_file(tmp_path: Path) -> None:
    result = runner.invoke(app, ["detect", "-i", str(tmp_path / "nope.csv")])
    assert result.exit_code == 2
    assert "nope.csv" in result.output


def test_large_file_with_progress_bar(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Big files are read in chunks (here 1,000 rows) under a progress bar on stderr."""
    import vigil.cli_detect as cli_detect

    monkeypatch.setattr(cli_detect, "PROGRESS_BYTES", 1)
    monkeypatch.setattr(cli_detect, "CHUNK_ROWS", 1_000)
    x = series(2_500)
    path = tmp_path / "big.csv"
    path.write_text(csv_of([str(i) for i in range(len(x))], [repr(v) for v in x.tolist()]))
    result = runner.invoke(app, ["detect", "-i", str(path)])
    assert result.exit_code == 0, result.output
    scores = np.array([float(r[1]) for r in rows(result.stdout)[1:]])
    assert len(scores) == 2_500
    assert np.allclose(scores, score(x), atol=5e-7)
