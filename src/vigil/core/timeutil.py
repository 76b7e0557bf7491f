"""Time parsing and the clock. Inside Vigil time is int64 epoch milliseconds, UTC."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime

from vigil.core.errors import InvalidInput, Problem

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h|d|w)$")
_UNIT_MS = {"ms": 1, "s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def parse_duration_ms(text: str, field: str = "duration") -> int:
    """``10s``, ``5m``, ``1h``, ``1d``, ``250ms`` or plain seconds → milliseconds (> 0)."""
    s = text.strip()
    m = _DURATION.match(s)
    try:
        ms = int(float(m.group(1)) * _UNIT_MS[m.group(2)]) if m else int(float(s) * 1000)
    except ValueError:
        ms = 0
    if ms <= 0:
        raise InvalidInput(
            Problem(f"bad duration {text!r}: use e.g. 10s, 5m, 1h, 1d", field=field)
        )
    return ms


def parse_time_ms(text: str | int | float, field: str = "time") -> int:
    """RFC 3339 or epoch seconds (int or float) → epoch milliseconds."""
    if isinstance(text, (int, float)):
        return int(text * 1000)
    s = text.strip()
    try:
        return int(float(s) * 1000)
    except ValueError:
        pass
    try:
        dt = datetime.fromisoformat(s.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError as err:
        raise InvalidInput(
            Problem(f"bad time {text!r}: use RFC 3339 or epoch seconds", field=field)
        ) from err
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return int(dt.timestamp() * 1000)


def format_ms(ts_ms: int) -> str:
    """Epoch milliseconds → RFC 3339 UTC with millisecond precision."""
    dt = datetime.fromtimestamp(ts_ms / 1000, tz=UTC)
    return dt.isoformat(timespec="milliseconds").replace("+00:00", "Z")
