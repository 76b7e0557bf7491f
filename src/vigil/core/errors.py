"""The error hierarchy. HTTP status codes are chosen once, in ``vigil.api.errors``."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with an input: where (line and/or field) and why."""

    reason: str
    line: int | None = None
    field: str | None = None

    def as_dict(self) -> dict[str, object]:
        out: dict[str, object] = {"reason": self.reason}
        if self.line is not None:
            out["line"] = self.line
        if self.field is not None:
            out["field"] = self.field
        return out


class VigilError(Exception):
    """Root of every error Vigil raises on purpose."""


class InvalidInput(VigilError):
    """The input was rejected whole; ``problems`` names the first bad lines or fields."""

    def __init__(self, problems: list[Problem] | Problem | str) -> None:
        if isinstance(problems, str):
            problems = [Problem(problems)]
        elif isinstance(problems, Problem):
            problems = [problems]
        self.problems = problems
        first = problems[0]
        where = "".join(
            part
            for part in (
                f"line {first.line}: " if first.line is not None else "",
                f"{first.field}: " if first.field is not None else "",
            )
        )
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        super().__init__(f"{where}{first.reason}{more}")


class PayloadTooLarge(VigilError):
    """The body exceeds the configured limit (``max_body_bytes``)."""


class UnsupportedMediaType(VigilError):
    """The request's Content-Type is not one the endpoint reads."""


class SeriesLimitExceeded(VigilError):
    """A batch would create series beyond the tenant's limit; nothing of it was stored."""

    def __init__(self, tenant: str, limit: int, first_new: str, new_count: int) -> None:
        self.tenant, self.limit = tenant, limit
        self.first_new, self.new_count = first_new, new_count
        super().__init__(
            f"tenant {tenant!r} is at its limit of {limit} series; this batch would add "
            f"{new_count} new series (first: {first_new}). Existing series keep being accepted; "
            "drop high-cardinality labels or raise max_series_per_tenant"
        )


class NotFound(VigilError):
    """The named thing does not exist."""


class Conflict(VigilError):
    """The change clashes with what exists (a duplicate name, a thing still in use)."""


class StoreUnavailable(VigilError):
    """The store is closed or failing; the write was not acknowledged."""


class Unauthorized(VigilError):
    """No credential, or one that is malformed, expired, revoked or wrongly signed. The
    message says which, never echoing the credential."""


class Forbidden(VigilError):
    """A valid credential that lacks the scope (or the tenant) the request needs."""

    def __init__(self, message: str, scope: str | None = None) -> None:
        self.scope = scope
        super().__init__(message)


class RateLimited(VigilError):
    """A token bucket is empty; ``retry_after_s`` is when the next request would pass."""

    def __init__(self, budget: str, retry_after_s: float) -> None:
        self.budget, self.retry_after_s = budget, retry_after_s
        super().__init__(f"rate limit of the {budget} budget exceeded; retry after "
                         f"{retry_after_s:.3g} s")
