"""The ingest pipeline: validated batch → store (durable) → telemetry.

What reacts to committed batches (alerting, streaming) registers with the store's
``listeners``: they run on the writer thread with the store's series ids.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import Future

import numpy as np

from vigil.core.errors import InvalidInput, Problem
from vigil.core.timeutil import format_ms, now_ms
from vigil.core.types import SampleBatch
from vigil.storage.store import Store
from vigil.telemetry import Telemetry


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
        fut.add_done_callback(lambda f: self._done(f, batch, protocol))
        return fut

    def _done(self, fut: Future[int], batch: SampleBatch, protocol: str) -> None:
        t = self._telemetry
        err = fut.exception()
        if err is not None:
            t.batches_rejected.labels(protocol, type(err).__name__).inc()
            return
        t.samples_ingested.labels(protocol).inc(len(batch))
        t.batches_ingested.labels(protocol).inc()

