"""The maintenance thread: rolls up closed buckets and enforces retention on a schedule.

Ingestion has priority: while the writer is busy committing more than half of the time
(a backfill), rollups wait — for at most ``max_defer_s`` — so ingest keeps the cores.
Reads stay exact meanwhile, since stale buckets are read from raw samples.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from vigil.core.timeutil import now_ms
from vigil.storage.store import Store, Tier

log = logging.getLogger(__name__)

BUSY_FRACTION = 0.5


@dataclass(frozen=True, slots=True)
class Schedule:
    interval_s: float
    quiet_s: float
    max_defer_s: float
    retention_interval_s: float
    retention_ms: dict[Tier, int]


class Maintenance:
    def __init__(self, store: Store, schedule: Schedule,
                 clock: Callable[[], int] = now_ms) -> None:
        self._store = store
        self._schedule = schedule
        self._clock = clock
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="vigil-maintenance", daemon=True)
        self._last_retention_ms = 0
        self._last_tick = (time.monotonic(), 0.0)  # (wall, writer's commit seconds)
        self._deferred_since: float | None = None

    def start(self) -> None:
        self._thread.start()

    def writer_busy(self) -> bool:
        """Whether the writer spent more than BUSY_FRACTION of the time since the last
        call committing."""
        wall, committing = time.monotonic(), self._store.stats()["commit_seconds"]
        last_wall, last_committing = self._last_tick
        self._last_tick = (wall, committing)
        return wall > last_wall and (committing - last_committing) / (wall - last_wall) > (
            BUSY_FRACTION)

    def run_once(self, *, defer_when_busy: bool = True) -> None:
        s = self._schedule
        if defer_when_busy and self.writer_busy():
            since = self._deferred_since = self._deferred_since or time.monotonic()
            if time.monotonic() - since < s.max_defer_s:
                return
        self._deferred_since = None
        now = self._clock()
        self._store.refresh_rollups(now, s.quiet_s)
        if now - self._last_retention_ms >= s.retention_interval_s * 1000:
            deleted = self._store.apply_retention(now, s.retention_ms)
            self._last_retention_ms = now
            if any(deleted.values()):
                log.info("retention applied", extra={"deleted": deleted})

    def _run(self) -> None:
        while not self._stop.wait(self._schedule.interval_s):
            try:
                self.run_once()
            except Exception:
                log.exception("maintenance failed")

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
