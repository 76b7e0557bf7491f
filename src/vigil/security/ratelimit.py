"""Token-bucket rate limits per key (a credential or a client address) and budget
(``ingest``, ``query``).

``RateLimiter`` is the interface the request path uses; ``TokenBuckets`` keeps the
buckets in this process. A cluster backs the same protocol with Redis so the budget is
shared by every instance.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Budget:
    """``rate_per_s`` tokens refill each second, up to ``burst``; 0 rate = unlimited."""

    rate_per_s: float
    burst: float


class RateLimiter(Protocol):
    def acquire(self, key: str, budget: str) -> float:
        """Take one token from ``key``'s bucket of ``budget``. Returns 0.0 when taken,
        otherwise the seconds until one is available (nothing is taken). Thread-safe."""
        ...


class TokenBuckets:
    """In-process buckets. ``clock`` returns seconds (monotonic); tests inject their own.
    At most ``max_keys`` buckets per budget are kept: when full, buckets that have refilled
    completely (idle keys) are dropped, which loses nothing."""

    def __init__(self, budgets: dict[str, Budget], *,
                 clock: Callable[[], float] = time.monotonic, max_keys: int = 100_000) -> None:
        self.budgets = budgets
        self._clock = clock
        self._max_keys = max_keys
        self._lock = threading.Lock()
        # (budget, key) -> (tokens, last refill time)
        self._buckets: dict[tuple[str, str], tuple[float, float]] = {}

    def acquire(self, key: str, budget: str) -> float:
        b = self.budgets.get(budget)
        if b is None or b.rate_per_s <= 0:
            return 0.0
        now = self._clock()
        with self._lock:
            tokens, last = self._buckets.get((budget, key), (b.burst, now))
            tokens = min(b.burst, tokens + (now - last) * b.rate_per_s)
            if tokens >= 1.0:
                if len(self._buckets) >= self._max_keys:
                    self._evict_idle(now)
                self._buckets[(budget, key)] = (tokens - 1.0, now)
                return 0.0
            self._buckets[(budget, key)] = (tokens, now)
            return (1.0 - tokens) / b.rate_per_s

    def _evict_idle(self, now: float) -> None:
        for k, (tokens, last) in list(self._buckets.items()):
            b = self.budgets[k[0]]
            if tokens + (now - last) * b.rate_per_s >= b.burst:
                del self._buckets[k]
