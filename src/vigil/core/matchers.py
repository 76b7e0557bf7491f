"""Label matchers (``=``, ``!=``, ``=~``, ``!~``) with Prometheus semantics.

Regexes are fully anchored, and a label that is absent matches as the empty string.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from vigil.core.errors import InvalidInput, Problem

Op = Literal["=", "!=", "=~", "!~"]
_SYNTAX = re.compile(r"^\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*(.*?)\s*$", re.S)


@dataclass(frozen=True, slots=True)
class Matcher:
    label: str
    op: Op
    value: str

    @property
    def pattern(self) -> re.Pattern[str]:
        return _compile(self.value)

    def matches(self, value: str | None) -> bool:
        v = "" if value is None else value
        if self.op == "=":
            return v == self.value
        if self.op == "!=":
            return v != self.value
        hit = self.pattern.fullmatch(v) is not None
        return hit if self.op == "=~" else not hit

    @classmethod
    def parse(cls, text: str, field: str = "match") -> Matcher:
        """Parse ``label=value``, ``label!=value``, ``label=~regex`` or ``label!~regex``."""
        m = _SYNTAX.match(text)
        if not m:
            raise InvalidInput(
                Problem(
                    f"bad matcher {text!r}: expected label=value, label!=value, "
                    "label=~regex or label!~regex",
                    field=field,
                )
            )
        label, op, value = m.group(1), m.group(2), m.group(3)
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        matcher = cls(label, op, value)  # type: ignore[arg-type]
        if op in ("=~", "!~"):
            try:
                _compile(value)
            except re.error as err:
                raise InvalidInput(
                    Problem(f"bad regex in matcher {text!r}: {err}", field=field)
                ) from err
        return matcher

    def __str__(self) -> str:
        return f'{self.label}{self.op}"{self.value}"'


_cache: dict[str, re.Pattern[str]] = {}


def _compile(pattern: str) -> re.Pattern[str]:
    compiled = _cache.get(pattern)
    if compiled is None:
        if len(_cache) > 1024:
            _cache.clear()
        compiled = _cache[pattern] = re.compile(pattern)
    return compiled
