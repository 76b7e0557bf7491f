"""Token buckets with an injected clock: burst, refusal with the wait, refill, isolation."""

from __future__ import annotations

import pytest

from vigil.security.ratelimit import Budget, TokenBuckets


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def clock() -> Clock:
    """A clock the test moves by hand."""
    return Clock()


def test_burst_then_refusal_with_the_wait_then_refill(clock: Clock) -> None:
    rl = TokenBuckets({"query": Budget(rate_per_s=2.0, burst=3.0)}, clock=clock)
    assert [rl.acquire("a", "query") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert rl.acquire("a", "query") == pytest.approx(0.5)
    clock.t += 0.25
    assert rl.acquire("a", "query") == pytest.approx(0.25)  # refused: nothing taken
    clock.t += 0.25
    assert rl.acquire("a", "query") == 0.0
    clock.t += 100
    assert [rl.acquire("a", "query") for _ in range(4)][-1] > 0  # refill caps at burst


def test_keys_and_budgets_are_separate(clock: Clock) -> None:
    rl = TokenBuckets({"query": Budget(1.0, 1.0), "ingest": Budget(1.0, 1.0)}, clock=clock)
    assert rl.acquire("a", "query") == 0.0
    assert rl.acquire("a", "query") > 0
    assert rl.acquire("b", "query") == 0.0
    assert rl.acquire("a", "ingest") == 0.0


def test_zero_rate_or_unknown_budget_is_unlimited(clock: Clock) -> None:
    rl = TokenBuckets({"query": Budget(0.0, 0.0)}, clock=clock)
    assert all(rl.acquire("a", b) == 0.0 for b in ("query", "other") for _ in range(100))


def test_idle_buckets_are_evicted_not_busy_ones(clock: Clock) -> None:
    rl = TokenBuckets({"q": Budget(1.0, 2.0)}, clock=clock, max_keys=2)
    rl.acquire("busy", "q")
    rl.acquire("busy", "q")
    rl.acquire("idle", "q")
    clock.t += 1.5  # idle refilled fully; busy has 1.5 of 2
    rl.acquire("new", "q")
    assert rl.acquire("busy", "q") == 0.0
    assert rl.acquire("busy", "q") > 0  # its state survived the eviction
