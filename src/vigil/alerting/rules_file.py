"""Rules files: channels, rules and rule tests in one TOML file (or YAML, by its
``.yaml``/``.yml`` suffix, with the same tables as keys).

```toml
[[channels]]
name = "ops"
type = "webhook"
url = "http://127.0.0.1:9093/hook"

[[rules]]
name = "cpu high"           # the id defaults to the name, so loading twice updates
metric = "cpu_usage_user"
condition = { type = "threshold", op = ">", threshold = 90, for_s = 60 }
channels = ["ops"]

[[tests]]                   # vigil rules test FILE
interval_s = 60
series = [{ series = 'cpu_usage_user{host="a"}', values = "50 95 95 95" }]
expect = [{ at_s = 120, firing = [{ rule = "cpu high", labels = { host = "a" } }] }]
```

``rules_file`` (setting) is applied at start-up: its channels and rules are created or
replaced in the default tenant (or the file's ``tenant``).
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from vigil.alerting.channels import Channel, parse_channel
from vigil.alerting.fields import bad
from vigil.alerting.rules import Rule, parse_rule
from vigil.core.errors import InvalidInput, Problem


@dataclass(frozen=True, slots=True)
class RulesFile:
    tenant: str | None
    channels: list[Channel]
    rules: list[Rule]
    tests: list[Mapping[str, Any]]


def load(path: str | Path) -> RulesFile:
    """Read and validate a rules file; problems name the file's table and field."""
    yaml_file = Path(path).suffix.lower() in (".yaml", ".yml")
    try:
        with open(path, "rb") as f:
            doc = yaml.safe_load(f) if yaml_file else tomllib.load(f)
    except OSError as err:
        raise InvalidInput(Problem(f"cannot read {path}: {err.strerror}", field="file")
                           ) from err
    except tomllib.TOMLDecodeError as err:
        raise InvalidInput(Problem(f"{path} is not valid TOML: {err}", field="file")) from err
    except yaml.YAMLError as err:
        raise InvalidInput(Problem(f"{path} is not valid YAML: {err}", field="file")) from err
    if not isinstance(doc, dict):
        raise InvalidInput(Problem(f"{path} must hold a mapping of channels, rules, tests",
                                   field="file"))
    unknown = sorted(set(doc) - {"tenant", "channels", "rules", "tests"})
    if unknown:
        raise bad(unknown[0], "unknown table; a rules file has channels, rules, tests, tenant")
    tenant = doc.get("tenant")
    if tenant is not None and not isinstance(tenant, str):
        raise bad("tenant", "must be a string")
    channels = []
    for i, c in enumerate(_tables(doc, "channels")):
        channels.append(_within(f"channels[{i}]", lambda c=c: parse_channel(c)))
    return RulesFile(tenant, channels, rules_from(_tables(doc, "rules")),
                     _tables(doc, "tests"))


def _tables(doc: Mapping[str, Any], key: str) -> list[Any]:
    v = doc.get(key, [])
    if not isinstance(v, list):
        raise bad(key, f"must be an array of tables ([[{key}]])")
    return v


def _within(where: str, parse: Any) -> Any:
    try:
        return parse()
    except InvalidInput as err:
        raise InvalidInput([Problem(p.reason, field=f"{where}.{p.field}" if p.field else where)
                            for p in err.problems]) from err


def rules_from(docs: Sequence[object], field: str = "rules") -> list[Rule]:
    """Rules of a file: ``id`` defaults to the name, so loading a file twice updates."""
    out = []
    for i, doc in enumerate(docs):
        if not isinstance(doc, Mapping):
            raise bad(f"{field}[{i}]", "must be a table")
        rid = str(doc.get("id") or _slug(str(doc.get("name", ""))))
        out.append(_within(f"{field}[{i}]", lambda d=doc, r=rid: parse_rule(d, rule_id=r)))
    return out


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "-", name).strip("-")[:64] or "rule"
