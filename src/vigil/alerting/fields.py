"""Typed reads of JSON/TOML documents at the edge, each error naming its field path."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence

from vigil.core.errors import InvalidInput, Problem
from vigil.core.timeutil import parse_time_ms

MAX_WINDOW_S = 7 * 86400.0


class Fields:
    """Typed reads of one JSON object, each error naming its path."""

    def __init__(self, doc: object, path: str, known: Sequence[str]) -> None:
        if not isinstance(doc, Mapping):
            raise bad(path or "body", "must be a JSON object")
        unknown = sorted(set(doc) - set(known))
        if unknown:
            raise bad(_join(path, unknown[0]),
                       f"unknown field; known fields: {', '.join(known)}")
        self.doc, self.path = doc, path

    def field(self, key: str) -> str:
        return _join(self.path, key)

    def has(self, key: str) -> bool:
        return self.doc.get(key) is not None

    def str_(self, key: str, default: str | None = None, *, pattern: re.Pattern[str] | None
             = None, choices: Sequence[str] = ()) -> str:
        v = self.doc.get(key, default)
        if v is None:
            raise bad(self.field(key), "required")
        if not isinstance(v, str):
            raise bad(self.field(key), "must be a string")
        if choices and v not in choices:
            raise bad(self.field(key), f"{v!r} is not one of {', '.join(choices)}")
        if pattern is not None and not pattern.match(v):
            raise bad(self.field(key), f"{v!r} is not a valid name ({pattern.pattern})")
        return v

    def num(self, key: str, default: float | None = None, *, lo: float = -math.inf,
            hi: float = math.inf) -> float:
        v = self.doc.get(key, default)
        if v is None:
            raise bad(self.field(key), "required")
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise bad(self.field(key), "must be a finite number")
        if not lo <= v <= hi:
            raise bad(self.field(key), f"must be between {lo:g} and {hi:g}")
        return float(v)

    def ms(self, key: str, default: float, *, hi: float = MAX_WINDOW_S, positive: bool = False
           ) -> int:
        s = self.num(key, default, lo=0.0, hi=hi)
        if positive and s <= 0:
            raise bad(self.field(key), "must be > 0 seconds")
        return round(s * 1000)

    def time_ms(self, key: str, default: int) -> int:
        """RFC 3339 or epoch seconds."""
        v = self.doc.get(key)
        if v is None:
            return default
        if isinstance(v, bool) or not isinstance(v, (str, int, float)):
            raise bad(self.field(key), "RFC 3339 or epoch seconds")
        return parse_time_ms(v, self.field(key))

    def strs(self, key: str, *, pattern: re.Pattern[str] | None = None) -> tuple[str, ...]:
        v = self.doc.get(key, [])
        if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
            raise bad(self.field(key), "must be a list of strings")
        for i, x in enumerate(v):
            if pattern is not None and not pattern.match(x):
                raise bad(f"{self.field(key)}[{i}]", f"{x!r} is not a valid name")
        return tuple(v)

    def str_map(self, key: str) -> dict[str, str]:
        v = self.doc.get(key) or {}
        if not isinstance(v, Mapping) or not all(
                isinstance(k, str) and isinstance(x, str) for k, x in v.items()):
            raise bad(self.field(key), "must be an object of string values")
        return dict(v)


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def bad(field: str, reason: str) -> InvalidInput:
    return InvalidInput(Problem(reason, field=field))
