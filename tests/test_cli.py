"""The vigil command, end to end on a temp data dir."""

from __future__ import annotations

import csv
import io
import json
import time
from pathlib import Path

import pyarrow.parquet as pq
from typer.testing import CliRunner

from vigil.cli import app
from vigil.storage.migrations import LATEST

runner = CliRunner()


def invoke(*args: str) -> str:
    result = runner.invoke(app, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_seed_query_export(tmp_path: Path) -> None:
    d = str(tmp_path)
    out = invoke("seed", "--days", "1", "--interval", "10m", "--data-dir", d)
    assert "seeded" in out and "5 tenants" in out
    out = invoke("query", "cpu_usage_percent", "--match", "service=api", "--group-by",
                 "service", "--step", "1h", "--start", str(int(time.time()) - 7200),
                 "--data-dir", d)
    assert "service=api" in out and "tier" in out
    for fmt in ("csv", "json", "parquet"):
        target = tmp_path / f"out.{fmt}"
        invoke("export", "cpu_usage_percent", "-o", str(target), "-f", fmt, "--step", "1h",
               "--start", str(int(time.time()) - 7200), "--data-dir", d)
        data = target.read_bytes()
        if fmt == "csv":
            header = next(csv.reader(io.StringIO(data.decode())))
            assert header == ["name", "host", "region", "service", "timestamp", "value"]
        elif fmt == "json":
            assert json.loads(data)["series"]
        else:
            assert pq.read_table(io.BytesIO(data)).num_rows > 0


def test_import_line_protocol_and_json_lines(tmp_path: Path) -> None:
    now_ns = time.time_ns()
    lp = tmp_path / "telegraf.lp"
    lp.write_text("".join(f"cpu,host=a usage_idle={i}.5,uptime_format=\"1 day\" "
                          f"{now_ns - i * 10**9}\n" for i in range(100)))
    jl = tmp_path / "samples.jsonl"
    jl.write_text("".join(json.dumps({"name": "jobs", "value": i}) + "\n" for i in range(50)))
    d = str(tmp_path / "data")
    invoke("import", str(lp), "--data-dir", d)
    invoke("import", str(jl), "--data-dir", d)
    out = invoke("query", "cpu_usage_idle", "--fn", "count", "--group-by", "", "--step", "1d",
                 "--data-dir", d)
    assert " 100" in out
    out = invoke("query", "jobs", "--fn", "count", "--group-by", "", "--step", "1d",
                 "--data-dir", d)
    assert " 50" in out


def test_import_refuses_bad_lines(tmp_path: Path) -> None:
    bad = tmp_path / "bad.lp"
    bad.write_text("cpu,host=a usage=1\ncpu,host=a usage=\n")
    result = runner.invoke(app, ["import", str(bad), "--data-dir", str(tmp_path / "d")])
    assert result.exit_code == 1
    assert "line 2" in result.output


def test_migrate_down_and_up(tmp_path: Path) -> None:
    d = str(tmp_path)
    assert f"schema version 0 -> {LATEST}" in invoke("migrate", "--data-dir", d)
    assert "undo" in invoke("migrate", "--to", "0", "--data-dir", d)
    assert "applied 1" in invoke("migrate", "--data-dir", d)


def test_bad_config_exits_2_with_the_key(tmp_path: Path) -> None:
    cfg = tmp_path / "v.toml"
    cfg.write_text("port = 'http'\n")
    result = runner.invoke(app, ["serve", "--config", str(cfg)])
    assert result.exit_code == 2
    assert "setting 'port'" in result.output
