"""A query, validated at the edge into typed values."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, get_args

from vigil.core.errors import InvalidInput, Problem
from vigil.core.matchers import Matcher
from vigil.core.timeutil import parse_duration_ms, parse_time_ms
from vigil.storage.store import TIERS, Tier

Fn = Literal["avg", "sum", "min", "max", "count", "last", "rate", "increase", "quantile"]
FNS: tuple[str, ...] = get_args(Fn)
MAX_POINTS = 11_000  # per series, as Prometheus
DEFAULT_RANGE_MS = 3_600_000
_NICE_STEPS_MS = (1_000, 10_000, 60_000, 300_000, 3_600_000, 86_400_000)

Params = Mapping[str, str | Sequence[str] | None]


@dataclass(frozen=True, slots=True)
class Query:
    """``group_by``: None = each series alone; () = all matching series together."""

    name: str
    start_ms: int
    end_ms: int
    step_ms: int
    fn: Fn = "avg"
    matchers: tuple[Matcher, ...] = ()
    q: float | None = None
    group_by: tuple[str, ...] | None = None
    window_ms: int | None = None
    tier: Tier | None = None
    # The end is the present (omitted, or not before the moment the query was made): no
    # sample lies beyond it, even when it is planned a moment later (see ``planner.fits``).
    end_now: bool = False

    @classmethod
    def from_params(cls, params: Params, now_ms: int) -> Query:
        """Validate HTTP/CLI parameters; raises InvalidInput naming the field."""

        def one(key: str) -> str | None:
            v = params.get(key)
            if v is None or isinstance(v, str):
                return v
            return v[-1] if v else None

        name = one("name")
        if not name:
            raise InvalidInput(Problem("required: the metric name", field="name"))
        raw_match = params.get("match") or ()
        matchers = tuple(
            Matcher.parse(m) for m in ([raw_match] if isinstance(raw_match, str) else raw_match)
        )
        end = parse_time_ms(e, "end") if (e := one("end")) else now_ms
        start = parse_time_ms(s, "start") if (s := one("start")) else end - DEFAULT_RANGE_MS
        if start >= end:
            raise InvalidInput(Problem("start must be before end", field="start"))
        step = parse_duration_ms(st, "step") if (st := one("step")) else default_step(end - start)
        if (end - start) // step > MAX_POINTS:
            raise InvalidInput(Problem(
                f"{(end - start) // step} points per series exceed the limit of {MAX_POINTS}; "
                "use a larger step or a shorter range", field="step"))
        fn = one("fn") or "avg"
        if fn not in FNS:
            raise InvalidInput(Problem(f"unknown fn {fn!r}; one of {', '.join(FNS)}", field="fn"))
        q = None
        if fn == "quantile":
            try:
                q = float(one("q") or "nan")
            except ValueError:
                q = float("nan")
            if not 0.0 <= q <= 1.0:
                raise InvalidInput(Problem("fn=quantile needs q between 0 and 1", field="q"))
        group_raw = one("group_by")
        group_by = (
            None if group_raw is None
            else tuple(g.strip() for g in group_raw.split(",") if g.strip())
        )
        window = parse_duration_ms(w, "window") if (w := one("window")) else None
        if window is not None and window < step:
            raise InvalidInput(Problem("window must be at least one step", field="window"))
        if window is not None and fn == "quantile":
            raise InvalidInput(Problem("window is not supported with fn=quantile", field="window"))
        tier = one("tier")
        if tier is not None and tier not in TIERS:
            raise InvalidInput(Problem(f"tier must be one of {', '.join(TIERS)}", field="tier"))
        return cls(name, start, end, step, fn, matchers, q, group_by,  # type: ignore[arg-type]
                   window, tier, end_now=end >= now_ms)


def default_step(range_ms: int) -> int:
    """The smallest round step that gives at most ~500 points."""
    for step in _NICE_STEPS_MS:
        if range_ms // step <= 500:
            return step
    return max(_NICE_STEPS_MS[-1], range_ms // 500)
