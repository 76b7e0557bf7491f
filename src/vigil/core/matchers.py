"""Label matchers (``=``, ``!=``, ``=~``, ``!~``) with Prometheus semantics.

Regexes are fully anchored, and a label that is absent matches as the empty string.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Generic, Literal, TypeVar

from vigil.core.errors import InvalidInput, Problem

Op = Literal["=", "!=", "=~", "!~"]
T = TypeVar("T")
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


class MatcherIndex(Generic[T]):
    """Items (alert rules, live feeds) of one metric, each filed under one of its equality
    matchers, so a new series is tested only against the items that can match it: 1,000
    rules or feeds on one metric would otherwise cost 1,000 tests per new series."""

    def __init__(self) -> None:
        self._eq: dict[tuple[str, str], list[T]] = {}
        self._scan: list[T] = []  # items without a usable equality matcher

    @staticmethod
    def _filed(matchers: Sequence[Matcher]) -> tuple[str, str] | None:
        for m in matchers:
            if m.op == "=" and m.value:
                return (m.label, m.value)
        return None

    def add(self, item: T, matchers: Sequence[Matcher]) -> None:
        key = self._filed(matchers)
        (self._scan if key is None else self._eq.setdefault(key, [])).append(item)

    def remove(self, item: T, matchers: Sequence[Matcher]) -> None:
        key = self._filed(matchers)
        if key is None:
            self._scan.remove(item)
            return
        items = self._eq[key]
        items.remove(item)
        if not items:
            del self._eq[key]

    def candidates(self, labels: Sequence[tuple[str, str]]) -> list[T]:
        """The items that may match a series with ``labels`` (test each one's matchers)."""
        out = list(self._scan)
        for pair in labels:
            out += self._eq.get(pair, ())
        return out

    def __bool__(self) -> bool:
        return bool(self._scan or self._eq)


_cache: dict[str, re.Pattern[str]] = {}


def _compile(pattern: str) -> re.Pattern[str]:
    compiled = _cache.get(pattern)
    if compiled is None:
        if len(_cache) > 1024:
            _cache.clear()
        compiled = _cache[pattern] = re.compile(pattern)
    return compiled
