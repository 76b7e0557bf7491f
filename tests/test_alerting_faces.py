"""Alerting's other faces: the rules file at start-up, ``vigil rules``, backfill over
HTTP and in-process, and the embedded API."""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from tests.conftest import Server, make_settings
from vigil.app import Vigil, build
from vigil.cli import app
from vigil.config import ConfigError

EXAMPLE = Path(__file__).parents[1] / "examples" / "rules.toml"
runner = CliRunner()
HOUR = 3600


def test_rules_file_is_applied_at_start_up_and_again_without_duplicates(tmp_path: Path
                                                                        ) -> None:
    for _ in range(2):
        c = build(make_settings(tmp_path, rules_file=str(EXAMPLE)), start_maintenance=False)
        try:
            names = sorted(r["name"] for r in c.alerting.rules("default"))
            assert names == ["cpu critical", "cpu high", "error rate jump", "host silent"]
            assert [ch["name"] for ch in c.alerting.channels("default")] == ["ops"]
        finally:
            c.close()


def test_a_bad_rules_file_stops_start_up_naming_it(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[[rules]]\nname = "x"\nmetric = "m"\ncondition = { type = "nope" }\n')
    with pytest.raises(ConfigError, match=r"rules\[0\].condition.type"):
        build(make_settings(tmp_path / "d", rules_file=str(bad)), start_maintenance=False)


def test_vigil_rules_test_exit_codes(tmp_path: Path) -> None:
    ok = runner.invoke(app, ["rules", "test", str(EXAMPLE)])
    assert ok.exit_code == 0 and "3 of 3 tests passed" in ok.output
    failing = tmp_path / "f.toml"
    shutil.copy(EXAMPLE, failing)
    failing.write_text(failing.read_text().replace("at_s = 360", "at_s = 240"))
    result = runner.invoke(app, ["rules", "test", str(failing)])
    assert result.exit_code == 1 and "FAIL a host that stops reporting" in result.output
    bad = tmp_path / "b.toml"
    bad.write_text("[[rules]]\n")
    result = runner.invoke(app, ["rules", "test", str(bad)])
    assert result.exit_code == 2 and "rules[0]" in result.output


def _history(v: Vigil, now: int) -> None:
    """Two hours of cpu on two hosts, one of them above 90 for 20 minutes."""
    rows = []
    for t in range(now - 2 * HOUR, now, 60):
        hot = now - 60 * 60 <= t < now - 40 * 60
        rows += [{"name": "cpu", "value": 95.0 if hot else 20.0, "timestamp": t * 1000,
                  "labels": {"host": "a"}},
                 {"name": "cpu", "value": 30.0, "timestamp": t * 1000, "labels": {"host": "b"}}]
    v.record_batch(rows)


RULE: dict[str, Any] = {"name": "cpu high", "metric": "cpu", "condition": {
    "type": "threshold", "op": ">", "threshold": 90, "for_s": 300}}


def test_embedded_alerting_and_backfill_through_the_cli(tmp_path: Path) -> None:
    now = int(time.time()) // 60 * 60
    with Vigil(tmp_path, retention_raw=0) as v:
        _history(v, now)
        v.add_channel(name="ops", type="websocket")
        rid = v.add_rule(**{**RULE, "channels": ["ops"]})
        v.record("cpu", 99.0, {"host": "b"})
        deadline = time.monotonic() + 20

        def states() -> set[object]:
            return {s["state"] for s in v.alerting.explain(v.tenant, rid)["series"]}

        while "pending" not in states() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert states() == {"pending", "inactive"}  # b breaches; for_s 300 not reached
        assert v.alerts(state="triggered") == []
    out = runner.invoke(app, ["rules", "backfill", rid, "--data-dir", str(tmp_path),
                              "--start", str(now - 2 * HOUR), "--end", str(now)])
    assert out.exit_code == 0, out.output
    assert "1 alerts over 2 series" in out.output and "host=a" in out.output


def test_backfill_over_http(server: Server, http: httpx.Client) -> None:
    now = int(time.time()) // 60 * 60
    for t in range(now - 2 * HOUR, now, 60):
        hot = now - 60 * 60 <= t < now - 40 * 60
        http.post("/write?precision=s", content=f"cpu,host=a value={95 if hot else 20} {t}")
    r = http.post("/api/v1/rules/backfill", json={
        "rule": {**RULE, "metric": "cpu_value"}, "start": now - 2 * HOUR, "end": now,
        "step_s": 60})
    assert r.status_code == 200, r.text
    doc = r.json()
    [a] = doc["alerts"]
    assert a["labels"] == {"host": "a"} and doc["series"] == 1 and doc["samples"] == 120
    assert a["fired_ms"] == (now - 60 * 60 + 300) * 1000
    assert a["resolved_ms"] == (now - 40 * 60) * 1000
    assert http.get("/api/v1/alerts").json()["alerts"] == []  # a dry run


@pytest.mark.parametrize(("body", "field"), [
    ({}, "rule"),
    ({"rule_id": "x", "rule": RULE}, "rule"),
    ({"rule": {**RULE, "metric": "9"}}, "metric"),
    ({"rule": RULE, "step_s": 0}, "step_s"),
    ({"rule": RULE, "start": "2030-01-01T00:00:00Z", "end": "2029-01-01T00:00:00Z"},
     "start"),
    ({"rule": RULE, "end": "later"}, "end"),
    ({"rule": RULE, "extra": 1}, "extra"),
])
def test_bad_backfills_name_the_field(http: httpx.Client, body: dict[str, Any], field: str
                                      ) -> None:
    r = http.post("/api/v1/rules/backfill", json=body)
    assert r.status_code == 400 and r.json()["errors"][0]["field"] == field


def test_backfill_of_an_unknown_rule_is_404(http: httpx.Client) -> None:
    assert http.post("/api/v1/rules/backfill", json={"rule_id": "nope"}).status_code == 404
