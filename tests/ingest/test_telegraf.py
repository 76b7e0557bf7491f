"""A file as Telegraf's influxdb output writes it imports unchanged, over HTTP and CLI."""

from __future__ import annotations

import gzip
from pathlib import Path

import httpx
from typer.testing import CliRunner

from tests.conftest import Server
from vigil.cli import app
from vigil.ingest.limits import Limits
from vigil.ingest.line_protocol import parse_line_protocol

TELEGRAF = Path(__file__).parent / "data" / "telegraf.lp"
TS_MS = 1_700_000_000_000


def test_every_numeric_field_becomes_a_series_and_strings_are_counted() -> None:
    batch = parse_line_protocol(TELEGRAF.read_bytes(), limits=Limits(), now_ms=0)
    names = {s.key.name for s in batch.series}
    assert {"cpu_usage_user", "mem_used_percent", "disk_used_percent", "net_bytes_recv",
            "system_uptime", "docker_container_status_oomkilled",
            "http_response_response_time", "procstat_memory_rss"} <= names
    assert "system_uptime_format" not in names
    assert batch.skipped == 4  # uptime_format, container_id, result_type, cmdline
    disk = [s.key.label_dict() for s in batch.series if s.key.name == "disk_used_percent"]
    assert {"device": "sdb1", "fstype": "vfat", "host": "web-1", "mode": "rw",
            "path": "/mnt/My Backups"} in disk
    net = next(i for i, s in enumerate(batch.series) if s.key.name == "net_bytes_recv")
    assert batch.value[batch.series_idx == net].tolist() == [32547785432.0]
    assert set(batch.ts_ms.tolist()) == {TS_MS}


def test_telegraf_http_output_gzip(server: Server) -> None:
    body = gzip.compress(TELEGRAF.read_bytes())
    with httpx.Client(base_url=server.url) as http:
        r = http.post("/write", params={"db": "telegraf"}, content=body, headers={
            "Content-Encoding": "gzip", "Content-Type": "text/plain; charset=utf-8",
            "User-Agent": "Telegraf/1.30.0"})
        assert r.status_code == 204, r.text
        latest = http.get("/api/v1/metrics/disk_used_percent/latest",
                          params={"match": "path=/mnt/My Backups"}).json()
        assert latest["series"][0]["value"] == 50.0
        metrics = http.get("/metrics").text
        assert 'vigil_fields_skipped_total{protocol="influx"} 4.0' in metrics


def test_telegraf_file_via_cli(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["import", str(TELEGRAF), "--data-dir", str(tmp_path)],
                                env={"VIGIL_RETENTION_RAW": "0"})
    assert result.exit_code == 0, result.output
    assert "imported" in result.output
