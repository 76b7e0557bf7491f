"""Quiet hours of a channel: time windows in a named time zone (``zoneinfo``).

Windows may cross midnight (22:00–07:00) and may be limited to the weekdays on which they
start. :meth:`QuietHours.quiet_until_ms` says whether an instant is quiet and until when.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from vigil.core.errors import InvalidInput, Problem

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_HORIZON_MS = 7 * 86_400_000
_CLOCK = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")


@dataclass(frozen=True, slots=True)
class QuietWindow:
    """Seconds of the local day; ``end_s`` < ``start_s`` crosses midnight. ``days`` are
    the weekdays (0 = Monday) on which the window *starts*; empty means every day."""

    start_s: int
    end_s: int
    days: frozenset[int] = frozenset()

    def _on(self, weekday: int) -> bool:
        return not self.days or weekday in self.days


@dataclass(frozen=True, slots=True)
class QuietHours:
    tz: str
    windows: tuple[QuietWindow, ...]

    def doc(self) -> dict[str, object]:
        return {"tz": self.tz, "windows": [_window_doc(w) for w in self.windows]}

    def quiet_until_ms(self, now_ms: int) -> int | None:
        """None if ``now_ms`` is outside every window; else when quiet ends (epoch ms),
        following windows that touch or overlap (22:00–24:00 then 00:00–07:00). Windows
        that never end give a time a week ahead, when the caller looks again."""
        zone = ZoneInfo(self.tz)
        t = now_ms
        while t - now_ms < _HORIZON_MS:
            end = self._end_of_active(t, zone)
            if end is None:
                break
            t = end if end > t else t + 60_000  # a DST gap can make a wall time go back
        return None if t == now_ms else t

    def _end_of_active(self, t_ms: int, zone: ZoneInfo) -> int | None:
        local = datetime.fromtimestamp(t_ms / 1000, tz=zone)
        day = datetime(local.year, local.month, local.day, tzinfo=zone)
        sod = local.hour * 3600 + local.minute * 60 + local.second
        wd = local.weekday()
        ends: list[datetime] = []
        for w in self.windows:
            if w.start_s < w.end_s:
                if w._on(wd) and w.start_s <= sod < w.end_s:
                    ends.append(_wall(day, w.end_s))
            else:
                if w._on(wd) and sod >= w.start_s:
                    ends.append(_wall(day + timedelta(days=1), w.end_s))
                if w._on((wd - 1) % 7) and sod < w.end_s:
                    ends.append(_wall(day, w.end_s))
        return int(max(ends).timestamp() * 1000) if ends else None


def _wall(day: datetime, seconds: int) -> datetime:
    """The wall-clock time ``seconds`` after local midnight of ``day`` (24:00 = next day)."""
    d = (day + timedelta(days=seconds // 86_400)).date()
    s = seconds % 86_400
    return datetime(d.year, d.month, d.day, s // 3600, s % 3600 // 60, tzinfo=day.tzinfo)


def _window_doc(w: QuietWindow) -> dict[str, object]:
    d: dict[str, object] = {"start": _hhmm(w.start_s), "end": _hhmm(w.end_s)}
    if w.days:
        d["days"] = [DAYS[i] for i in sorted(w.days)]
    return d


def _hhmm(s: int) -> str:
    return f"{s // 3600:02d}:{s % 3600 // 60:02d}"


def _bad(where: str, reason: str) -> InvalidInput:
    return InvalidInput(Problem(reason, field=where))


def _unknown(doc: Mapping[str, object], known: tuple[str, ...], where: str) -> None:
    for k in doc:
        if k not in known:
            raise _bad(f"{where}.{k}", f"unknown field; known: {', '.join(known)}")


def _clock(v: object, where: str, *, allow_24: bool = False) -> int:
    if allow_24 and v == "24:00":
        return 86_400
    m = _CLOCK.match(v) if isinstance(v, str) else None
    if m is None:
        raise _bad(where, "must be a time of day HH:MM (00:00 to 23:59" +
                   (", or 24:00)" if allow_24 else ")"))
    return int(m.group(1)) * 3600 + int(m.group(2)) * 60


def parse_quiet_hours(v: object, f: str = "quiet_hours") -> QuietHours:
    """Validate ``{"tz": ..., "windows": [{"start", "end", "days"?}]}``; errors name the
    field under ``f`` (``quiet_hours.windows[0].start``)."""
    if not isinstance(v, Mapping):
        raise _bad(f, 'must be an object {"tz": ..., "windows": [...]}')
    _unknown(v, ("tz", "windows"), f)
    tz = v.get("tz")
    if not isinstance(tz, str):
        raise _bad(f + ".tz", "required: an IANA time zone name such as Europe/Berlin")
    try:
        if not tz or tz.startswith("/") or ".." in tz:
            raise ValueError(tz)
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError, OSError) as err:  # OSError: a folder
        raise _bad(f + ".tz", f"unknown time zone {tz!r} (use an IANA name)") from err
    ws = v.get("windows")
    if not isinstance(ws, list) or not ws:
        raise _bad(f + ".windows", "must be a non-empty list of windows")
    windows = []
    for i, w in enumerate(ws):
        where = f"{f}.windows[{i}]"
        if not isinstance(w, Mapping):
            raise _bad(where, 'must be an object {"start": "22:00", "end": "07:00"}')
        _unknown(w, ("start", "end", "days"), where)
        start = _clock(w.get("start"), where + ".start")
        end = _clock(w.get("end"), where + ".end", allow_24=True)
        if start == end:
            raise _bad(where + ".end", "equals start: the window would be empty")
        days = w.get("days", [])
        if not isinstance(days, list) or not all(isinstance(d, str) for d in days):
            raise _bad(where + ".days", "must be a list of mon, tue, … sun")
        bad = [d for d in days if d.lower() not in DAYS]
        if bad:
            raise _bad(where + ".days", f"unknown day {bad[0]!r}: use mon, tue, … sun")
        windows.append(QuietWindow(start, end, frozenset(DAYS.index(d.lower()) for d in days)))
    return QuietHours(tz, tuple(windows))


