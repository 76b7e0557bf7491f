"""Rules files, rule unit tests and replay over history (no server)."""

from __future__ import annotations

import tomllib
from pathlib import Path

import numpy as np
import pytest
import yaml

from vigil.alerting import rules_file
from vigil.alerting.replay import Replay, parse_series, parse_values, run_rule_tests
from vigil.alerting.rules import parse_rule
from vigil.core.errors import InvalidInput
from vigil.core.types import SeriesKey

EXAMPLE = Path(__file__).parents[2] / "examples" / "rules.toml"


def test_the_example_rules_file_is_valid_and_its_tests_pass() -> None:
    rf = rules_file.load(EXAMPLE)
    assert [c.name for c in rf.channels] == ["ops"]
    assert rf.rules[0].id == "cpu-high"  # ids default to the name
    results = run_rule_tests(rf.rules, rf.tests)
    assert results and all(r.ok for r in results), results


def test_a_failing_expectation_is_reported() -> None:
    rule = parse_rule({"name": "hot", "metric": "t", "condition": {
        "type": "threshold", "op": ">", "threshold": 5}})
    [r] = run_rule_tests([rule], [{"interval_s": 10, "series": [
        {"series": 't{room="a"}', "values": "1 9 9"}], "expect": [
        {"at_s": 10, "firing": []}, {"at_s": 20, "firing": [
            {"rule": "hot", "labels": {"room": "b"}}]}]}])
    assert r.failures == ["at 10s: firing hot{room=a}, expected nothing",
                          "at 20s: firing hot{room=a}, expected hot{room=b}"]


@pytest.mark.parametrize(("text", "field"), [
    ('[[rules]]\nname = "x"\nmetric = "m"\n', "rules[0].condition"),
    ('[[rules]]\nname = "x"\nmetric = "9"\n', "rules[0].metric"),
    ('[[channels]]\nname = "x"\ntype = "fax"\n', "channels[0].type"),
    ("rules = 3\n", "rules"),
    ("[alerts]\n", "alerts"),
    ("tenant = 5\n", "tenant"),
    ("not toml [", "file"),
])
def test_bad_rules_files_name_table_and_field(tmp_path: Path, text: str, field: str) -> None:
    f = tmp_path / "r.toml"
    f.write_text(text)
    with pytest.raises(InvalidInput) as err:
        rules_file.load(f)
    assert err.value.problems[0].field == field


def test_a_yaml_rules_file_reads_as_its_toml_twin(tmp_path: Path) -> None:
    twin = tmp_path / "rules.yaml"
    twin.write_text(yaml.safe_dump(tomllib.loads(EXAMPLE.read_text())))
    want, got = rules_file.load(EXAMPLE), rules_file.load(twin)
    assert got.rules == want.rules and got.channels == want.channels
    assert got.tests == want.tests and len(got.rules) > 0


@pytest.mark.parametrize(("text", "field"), [
    ("rules: [\n", "file"),
    ("- just\n- a list\n", "file"),
    ("rules:\n  - name: x\n    metric: '9'\n", "rules[0].metric"),
])
def test_bad_yaml_rules_files_name_the_problem(tmp_path: Path, text: str, field: str) -> None:
    f = tmp_path / "r.yml"
    f.write_text(text)
    with pytest.raises(InvalidInput) as err:
        rules_file.load(f)
    assert err.value.problems[0].field == field


def test_a_missing_rules_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="cannot read"):
        rules_file.load(tmp_path / "none.toml")


@pytest.mark.parametrize(("test", "field"), [
    ({"series": [{"series": "cpu{host=a}", "values": "1"}], "expect": []},
     "tests[0].series[0].series"),
    ({"series": [{"series": "cpu", "values": "1 x 3"}], "expect": []},
     "tests[0].series[0].values"),
    ({"series": "cpu 1 2", "expect": []}, "tests[0].series"),
    ({"series": [], "expect": [{"firing": []}]}, "tests[0].expect[0].at_s"),
    ({"series": [], "expect": [], "when": 1}, "tests[0].when"),
])
def test_bad_rule_tests_name_the_field(test: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidInput) as err:
        run_rule_tests([], [test])
    assert err.value.problems[0].field == field


def test_series_and_values_notation() -> None:
    assert parse_series("up") == SeriesKey.of("up")
    assert parse_series('up{job="a\\"b"}') == SeriesKey.of("up", {"job": 'a"b'})
    assert parse_values("1e3 -2 _ 0-0.5x2") == [1000.0, -2.0, None, 0.0, -0.5, -1.0]


def test_replay_lists_firings_with_their_resolution() -> None:
    rule = parse_rule({"name": "hot", "metric": "t", "condition": {
        "type": "threshold", "op": ">", "threshold": 5, "for_s": 20}})
    keys = [SeriesKey.of("t", {"room": "a"}), SeriesKey.of("t", {"room": "b"})]
    ts = np.arange(0, 200_000, 10_000, dtype=np.int64)
    a = np.where((ts >= 50_000) & (ts < 120_000), 9.0, 1.0)
    replay = Replay([rule])
    replay.run(keys, np.r_[np.zeros(len(ts), np.int64), np.ones(len(ts), np.int64)],
               np.r_[ts, ts], np.r_[a, np.full(len(ts), 9.0)], 10_000, 200_000)
    got = [(f.labels["room"], f.fired_ms, f.resolved_ms) for f in replay.firings()]
    assert got == [("b", 20_000, None), ("a", 70_000, 120_000)]
