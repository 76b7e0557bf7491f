"""Settings: precedence, presets, good and bad files, and documentation of every key."""

from __future__ import annotations

from pathlib import Path

import pytest

from vigil import config
from vigil.config import SETTINGS, ConfigError

CASES = Path(__file__).parent / "config_cases"
DOCS = Path(__file__).parent.parent / "docs" / "config.md"


def test_defaults() -> None:
    s = config.load(env={})
    assert (s.host, s.port, s.data_dir) == ("127.0.0.1", 9470, "./vigil-data")
    assert s.retention_raw == 30 * 86400 and s.retention_1d == 0


def test_precedence_file_then_env_then_overrides(tmp_path: Path) -> None:
    f = tmp_path / "v.toml"
    f.write_text('port = 1000\nhost = "0.0.0.0"\nlog_level = "debug"\n')
    s = config.load(f, env={"VIGIL_PORT": "2000", "VIGIL_HOST": "::1", "OTHER": "x"},
                    overrides={"port": 3000, "host": None})
    assert (s.port, s.host, s.log_level) == (3000, "::1", "debug")


def test_presets_set_defaults_that_files_override(tmp_path: Path) -> None:
    assert config.load(env={"VIGIL_PRESET": "production"}).log_format == "json"
    f = tmp_path / "v.toml"
    f.write_text('preset = "production"\nlog_format = "text"\n')
    assert config.load(f, env={}).log_format == "text"


@pytest.mark.parametrize("path", sorted(CASES.glob("*.good.toml")), ids=lambda p: p.name)
def test_good_files(path: Path) -> None:
    config.load(path, env={})


@pytest.mark.parametrize("path", sorted(CASES.glob("*.bad.toml")), ids=lambda p: p.name)
def test_bad_files_name_key_and_value(path: Path) -> None:
    expected = path.read_text().splitlines()[0].removeprefix("# expect: ")
    with pytest.raises(ConfigError) as err:
        config.load(path, env={})
    assert expected in str(err.value)


def test_bad_env_value_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="setting 'port'"):
        config.load(env={"VIGIL_PORT": "x"})
    with pytest.raises(ConfigError, match="cannot read config file"):
        config.load(tmp_path / "missing.toml", env={})


@pytest.mark.parametrize("setting", SETTINGS, ids=lambda s: s.name)
def test_every_setting_is_documented(setting: config.Setting) -> None:
    docs = DOCS.read_text()
    assert f"`{setting.name}`" in docs, f"docs/config.md does not document {setting.name}"
    assert f"`VIGIL_{setting.name.upper()}`" in docs
