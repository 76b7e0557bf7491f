"""The dispatcher: delivers notifications to channels without blocking the caller.

``submit(tenant, notification)`` only appends to a bounded in-memory queue. Worker threads
take the work per *lane* — one (tenant, channel) pair — so a lane is served by one worker
at a time (its order is kept) while a slow receiver holds up only its own lane. For each
notification a worker:

1. looks the channel up (``lookup``; channels can change; unknown → dead letter);
2. drops an older notification of the same ``group_key`` still waiting in the lane (held
   or waiting to retry): a newer notification of a group carries the group's whole state;
3. holds a non-critical notification during the channel's quiet hours, and any
   notification over the channel's ``rate_limit_per_min`` (sliding minute), until the
   window ends / the budget allows;
4. sends; a retryable failure is tried again after ``backoff_s * 2**retry`` (or the
   receiver's Retry-After if longer; capped at ``max_backoff_s``) up to ``max_retries``
   times; then, or on a non-retryable failure, ``on_dead_letter(tenant, record)`` gets a
   :class:`DeadLetter`.

Time comes from ``clock`` (epoch ms). Tests drive it step by step with :meth:`run_due`
instead of :meth:`start`.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypedDict

from vigil.alerting.channels import CHANNEL_TYPES, Channel, DeliveryError
from vigil.alerting.model import Notification
from vigil.alerting.senders import title
from vigil.core.timeutil import now_ms

log = logging.getLogger(__name__)

Lookup = Callable[[str, str], Channel | None]
Send = Callable[[Channel, Notification], None]
_DEFAULT = Channel("default", "websocket")  # retry policy when the lookup itself fails
_COUNTERS = ("sent", "failed_attempts", "dead_letters", "held", "coalesced", "skipped")


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A notification given up on. ``error`` never contains a channel secret;
    ``notification`` is kept for a redelivery and is not in :meth:`as_dict`."""

    channel: str
    channel_type: str  # "" when the channel does not exist
    group_key: str
    status: str
    severity: str
    summary: str
    alert_ids: tuple[str, ...]
    attempts: int
    error: str
    retryable: bool
    created_ms: int
    failed_ms: int
    notification: Notification = field(compare=False, repr=False)

    def as_dict(self) -> dict[str, object]:
        return {"channel": self.channel, "channel_type": self.channel_type,
                "group_key": self.group_key, "status": self.status, "severity": self.severity,
                "summary": self.summary, "alert_ids": list(self.alert_ids),
                "attempts": self.attempts, "error": self.error, "retryable": self.retryable,
                "created_ms": self.created_ms, "failed_ms": self.failed_ms}


OnDeadLetter = Callable[[str, DeadLetter], None]


class DeliveryStats(TypedDict):
    # channel type (and "unknown" for a missing channel) -> counter -> total; counters:
    # sent, failed_attempts, dead_letters, held, coalesced (replaced by a newer one of
    # the group while waiting), skipped (resolved, and the channel has send_resolved off)
    by_type: dict[str, dict[str, int]]
    queue_full: int  # submits refused: the dispatcher held ``queue_size`` notifications
    pending: int  # notifications in the dispatcher now (queued, held, waiting to retry)
    holding: int  # of which held by quiet hours or a rate limit


@dataclass(eq=False, slots=True)
class _Job:
    tenant: str
    n: Notification
    attempts: int = 0
    seq: int = 0
    done: bool = False  # superseded or finished while a timer still points at it
    held: bool = False  # counted as held once
    holding: bool = False  # waiting because held (not because of a retry)


@dataclass(eq=False, slots=True)
class _Lane:
    ready: deque[_Job] = field(default_factory=deque)
    waiting: dict[str, _Job] = field(default_factory=dict)  # group_key -> held/retrying job
    sends: deque[int] = field(default_factory=deque)  # attempt times in the last minute
    busy: bool = False
    queued: bool = False  # in Dispatcher._ready


class Dispatcher:
    """Thread-safe. ``submit`` never blocks on I/O; ``lookup``, ``send`` and
    ``on_dead_letter`` run on worker threads (or in :meth:`run_due`'s caller)."""

    def __init__(self, lookup: Lookup, send: Send, on_dead_letter: OnDeadLetter, *,
                 clock: Callable[[], int] = now_ms, queue_size: int = 10_000,
                 workers: int = 4) -> None:
        self._lookup, self._send, self._on_dead = lookup, send, on_dead_letter
        self._clock = clock
        self._max, self._n_workers = queue_size, max(1, workers)
        self._cond = threading.Condition()
        self._lanes: dict[tuple[str, str], _Lane] = {}
        self._ready: deque[tuple[str, str]] = deque()  # lanes with a ready job, not busy
        self._timers: list[tuple[int, int, tuple[str, str], _Job]] = []  # heap
        self._seq = itertools.count()
        self._size = self._holding = self._queue_full = self._stale = 0
        self._counts: dict[str, dict[str, int]] = {
            t: dict.fromkeys(_COUNTERS, 0) for t in CHANNEL_TYPES}
        self._threads: list[threading.Thread] = []
        self._closing = False

    # --- the caller's side -------------------------------------------------------------

    def submit(self, tenant: str, n: Notification) -> bool:
        """Queue ``n`` for ``n.channel`` of ``tenant``; False (and counted) when full."""
        with self._cond:
            if self._size >= self._max or self._closing:
                self._queue_full += 1
                return False
            self._size += 1
            key = (tenant, n.channel)
            lane = self._lanes.get(key)
            if lane is None:
                lane = self._lanes[key] = _Lane()
            lane.ready.append(_Job(tenant, n, seq=next(self._seq)))
            self._mark_ready(key, lane)
        return True

    def stats(self) -> DeliveryStats:
        with self._cond:
            return DeliveryStats(by_type={t: dict(c) for t, c in self._counts.items()},
                                 queue_full=self._queue_full, pending=self._size,
                                 holding=self._holding)

    def next_due_ms(self) -> int | None:
        """When the next held or retrying notification is due (for step-by-step tests)."""
        with self._cond:
            live = [t for t in self._timers if not t[3].done]
            return min(t[0] for t in live) if live else None

    # --- running -----------------------------------------------------------------------

    def start(self) -> None:
        with self._cond:
            if self._threads:
                return
            self._threads = [threading.Thread(target=self._work, name=f"vigil-notify-{i}",
                                              daemon=True) for i in range(self._n_workers)]
        for t in self._threads:
            t.start()

    def run_due(self) -> int:
        """Process, in this thread, everything due at ``clock()``; return how many
        notifications were handled (sent, held, dead-lettered…). Not with :meth:`start`."""
        assert not self._threads, "BUG: run_due() while worker threads run"
        done = 0
        while (item := self._take(wait=False)) is not None:
            self._process(*item)
            done += 1
        return done

    def close(self, timeout_s: float = 5.0) -> list[tuple[str, Notification]]:
        """Stop taking work; let the workers finish what is due now for up to
        ``timeout_s``; return what was not delivered (held, waiting to retry, or still
        queued) so the owner can keep it."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
            threads, self._threads = self._threads, []
        deadline = time.monotonic() + timeout_s
        for t in threads:
            t.join(max(0.0, deadline - time.monotonic()))
        with self._cond:
            left = [(j.tenant, j.n) for lane in self._lanes.values()
                    for j in (*lane.ready, *lane.waiting.values()) if not j.done]
        if left:
            log.warning("Notifications undelivered at shutdown", extra={"count": len(left)})
        return left

    def _work(self) -> None:
        while (item := self._take(wait=True)) is not None:
            try:
                self._process(*item)
            except Exception:  # a worker must survive a bug in a callback
                log.exception("Notification worker error")
                with self._cond:
                    self._release(item[0], item[1])

    def _take(self, *, wait: bool) -> tuple[tuple[str, str], _Lane, _Job] | None:
        """The next ready job, its lane marked busy; None when idle (or closing)."""
        with self._cond:
            while True:
                now = self._clock()
                if not self._closing:
                    self._fire_timers(now)
                while self._ready:
                    key = self._ready.popleft()
                    lane = self._lanes[key]
                    lane.queued = False
                    while lane.ready and lane.ready[0].done:
                        lane.ready.popleft()
                    if lane.ready:
                        lane.busy = True
                        return key, lane, lane.ready.popleft()
                if not wait or self._closing:
                    return None
                live = [t[0] for t in self._timers[:1]]
                self._cond.wait(None if not live else max(0.0, (live[0] - now) / 1000) + 0.001)

    def _fire_timers(self, now: int) -> None:
        released: dict[tuple[str, str], list[_Job]] = {}
        while self._timers and self._timers[0][0] <= now:
            _, _, key, job = heapq.heappop(self._timers)
            lane = self._lanes[key]
            if job.done or lane.waiting.get(job.n.group_key) is not job:
                self._stale -= job.done
                continue
            del lane.waiting[job.n.group_key]
            self._holding -= job.holding
            job.holding = False
            released.setdefault(key, []).append(job)
        for key, jobs in released.items():  # a lane's ready jobs stay in arrival order
            lane = self._lanes[key]
            lane.ready = deque(sorted([*jobs, *lane.ready], key=lambda j: j.seq))
            self._mark_ready(key, lane)

    def _mark_ready(self, key: tuple[str, str], lane: _Lane) -> None:
        if lane.ready and not lane.busy and not lane.queued:
            lane.queued = True
            self._ready.append(key)
            self._cond.notify()

    def _release(self, key: tuple[str, str], lane: _Lane) -> None:
        lane.busy = False
        self._mark_ready(key, lane)

    # --- one notification --------------------------------------------------------------

    def _process(self, key: tuple[str, str], lane: _Lane, job: _Job) -> None:
        n = job.n
        try:
            ch = self._lookup(job.tenant, n.channel)
        except Exception as err:
            self._failed(key, lane, job, _DEFAULT, "", DeliveryError(
                f"channel lookup failed: {type(err).__name__}", retryable=True))
            return
        if ch is None:
            self._dead(key, lane, job, "", "unknown channel", retryable=False)
            return
        with self._cond:
            now = self._clock()
            older = lane.waiting.pop(n.group_key, None)
            if older is not None:  # a newer notification of the group replaces it
                older.done = True
                self._stale += 1  # its timer stays in the heap until compacted
                self._size -= 1
                self._holding -= older.holding
                self._count(ch.type, "coalesced")
            if n.status == "resolved" and not ch.send_resolved:
                self._count(ch.type, "skipped")
                self._finish(key, lane, job)
                return
            until = self._hold_until(ch, lane, n, now)
            if until is not None:
                if not job.held:
                    job.held = True
                    self._count(ch.type, "held")
                job.holding = True
                self._holding += 1
                self._wait(key, lane, job, until)
                self._release(key, lane)
                return
            if ch.rate_limit_per_min:
                lane.sends.append(now)
        try:
            self._send(ch, n)
        except DeliveryError as err:
            self._failed(key, lane, job, ch, ch.type, err)
            return
        except Exception as err:  # a sender bug: not worth retrying
            self._failed(key, lane, job, ch, ch.type, DeliveryError(
                ch.scrub(f"{type(err).__name__}: {err}"), retryable=False))
            return
        with self._cond:
            self._count(ch.type, "sent")
            self._finish(key, lane, job)

    def _hold_until(self, ch: Channel, lane: _Lane, n: Notification, now: int) -> int | None:
        if ch.quiet_hours is not None and not n.critical:
            until = ch.quiet_hours.quiet_until_ms(now)
            if until is not None:
                return until
        if ch.rate_limit_per_min:
            while lane.sends and lane.sends[0] <= now - 60_000:
                lane.sends.popleft()
            if len(lane.sends) >= ch.rate_limit_per_min:
                return lane.sends[-ch.rate_limit_per_min] + 60_000
        return None

    def _failed(self, key: tuple[str, str], lane: _Lane, job: _Job, ch: Channel,
                kind: str, err: DeliveryError) -> None:
        job.attempts += 1
        msg = ch.scrub(str(err))
        with self._cond:
            self._count(kind or "unknown", "failed_attempts")
            if err.retryable and job.attempts <= ch.max_retries:
                delay_s = min(max(ch.backoff_s * 2 ** (job.attempts - 1),
                                  err.retry_after_s or 0.0), ch.max_backoff_s)
                log.debug("Notification attempt failed, will retry",
                          extra={"channel": job.n.channel, "attempts": job.attempts, "error": msg})
                self._wait(key, lane, job, self._clock() + int(delay_s * 1000))
                self._release(key, lane)
                return
        self._dead(key, lane, job, kind, msg, retryable=err.retryable)

    def _dead(self, key: tuple[str, str], lane: _Lane, job: _Job, kind: str, error: str,
              *, retryable: bool) -> None:
        n = job.n
        record = DeadLetter(
            channel=n.channel, channel_type=kind, group_key=n.group_key, status=n.status,
            severity=n.severity, summary=title(n), alert_ids=tuple(a.id for a in n.alerts),
            attempts=job.attempts, error=error, retryable=retryable, created_ms=n.created_ms,
            failed_ms=self._clock(), notification=n)
        with self._cond:
            self._count(kind or "unknown", "dead_letters")
            self._finish(key, lane, job)
        log.warning("Notification dead-lettered",
                    extra={"tenant": job.tenant, "channel": n.channel, "channel_type": kind,
                           "attempts": job.attempts, "error": error})
        try:
            self._on_dead(job.tenant, record)
        except Exception:
            log.exception("Dead-letter callback failed", extra={"channel": n.channel})

    # --- bookkeeping (under the lock) --------------------------------------------------

    def _wait(self, key: tuple[str, str], lane: _Lane, job: _Job, until_ms: int) -> None:
        lane.waiting[job.n.group_key] = job
        if self._stale > 1024 and self._stale * 2 > len(self._timers):
            # Many replaced notifications (a flood held through quiet hours): drop their
            # timers so the heap does not keep them alive.
            self._timers = [t for t in self._timers if not t[3].done]
            heapq.heapify(self._timers)
            self._stale = 0
        heapq.heappush(self._timers, (until_ms, next(self._seq), key, job))
        self._cond.notify()

    def _finish(self, key: tuple[str, str], lane: _Lane, job: _Job) -> None:
        job.done = True
        self._size -= 1
        self._release(key, lane)

    def _count(self, kind: str, counter: str) -> None:
        c = self._counts.setdefault(kind, dict.fromkeys(_COUNTERS, 0))
        c[counter] += 1
