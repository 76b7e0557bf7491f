"""The ingest pipeline: validated batch → store (durable) → listeners.

Listeners (alerting, streaming) see a batch only after it is committed. They are called
on the writer thread, so they must be quick and never block: hand work to a queue.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import Future

import numpy as np

from vigil.core.errors import InvalidInput, Problem
from vigil.core.timeutil import format_ms, now_ms
from vigil.core.types import SampleBatch
from vigil.storage.store import Store
from vigil.telemetry import Telemetry

log = logging.getLogger(__name__)

Listener = Callable[[str, SampleBatch], None]


class Pipeline:
    def __init__(
        self,
        store: Store,
        telemetry: Telemetry,
        raw_retention_ms: int = 0,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        self._store = store
        self._telemetry = telemetry
        self._raw_retention_ms = raw_retention_ms
        self._clock = clock
        self.listeners: list[Listener] = []

    def validate(self, batch: SampleBatch) -> None:
        """Checks every parser shares: finite values, timestamps inside raw retention."""
        bad = np.flatnonzero(~np.isfinite(batch.value))
        if len(bad):
            i = int(bad[0])
            raise InvalidInput(Problem(
                f"sample {i + 1} ({batch.series[batch.series_idx[i]].key}) has non-finite value "
                f"{batch.value[i]}", field="value"))
        if self._raw_retention_ms and len(batch):
            horizon = self._clock() - self._raw_retention_ms
            i = int(np.argmin(batch.ts_ms))
            if batch.ts_ms[i] < horizon:
                raise InvalidInput(Problem(
                    f"sample {i + 1} ({batch.series[batch.series_idx[i]].key}) at "
                    f"{format_ms(int(batch.ts_ms[i]))} is older than the raw retention "
                    f"(before {format_ms(horizon)})", field="timestamp"))

    async def write(self, tenant: str, batch: SampleBatch, protocol: str) -> int:
        """Validate, commit, notify; returns samples stored once they are durable."""
        return await asyncio.wrap_future(self.submit(tenant, batch, protocol))

    def write_sync(self, tenant: str, batch: SampleBatch, protocol: str) -> int:
        return self.submit(tenant, batch, protocol).result()

    def submit(self, tenant: str, batch: SampleBatch, protocol: str) -> Future[int]:
        t = self._telemetry
        try:
            self.validate(batch)
        except InvalidInput:
            t.batches_rejected.labels(protocol, "invalid").inc()
            raise
        if batch.skipped:
            t.fields_skipped.labels(protocol).inc(batch.skipped)
        fut = self._store.submit(tenant, batch)
        fut.add_done_callback(lambda f: self._done(f, tenant, batch, protocol))
        return fut

    def _done(self, fut: Future[int], tenant: str, batch: SampleBatch, protocol: str) -> None:
        t = self._telemetry
        err = fut.exception()
        if err is not None:
            t.batches_rejected.labels(protocol, type(err).__name__).inc()
            return
        t.samples_ingested.labels(protocol).inc(len(batch))
        t.batches_ingested.labels(protocol).inc()
        for listener in self.listeners:
            try:
                listener(tenant, batch)
            except Exception:
                log.exception("listener failed", extra={"listener": repr(listener)})

