"""Group commit: many writers, one committing thread.

Each ``submit`` enqueues an item and returns a future. The writer thread takes
everything queued (up to ``max_items_per_commit`` samples' worth), commits it in one
transaction and resolves each future with its own outcome. While one commit runs, new
items pile up and ride on the next, so commit cost is shared under load without a
fixed delay that would slow a lone writer.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Generic, TypeVar

from vigil.core.errors import StoreUnavailable

log = logging.getLogger(__name__)

T = TypeVar("T")
# commit(items) -> one outcome per item: samples stored, or the error for that item.
CommitFn = Callable[[Sequence[T]], Sequence[int | BaseException]]


@dataclass
class WriteStats:
    commits: int = 0
    items: int = 0
    samples: int = 0
    failed_items: int = 0
    commit_seconds: float = 0.0
    last_commit_seconds: float = 0.0


class WriteBuffer(Generic[T]):
    def __init__(
        self,
        commit: CommitFn[T],
        size_of: Callable[[T], int],
        max_samples_per_commit: int = 500_000,
        name: str = "vigil-writer",
    ) -> None:
        self._commit = commit
        self._size_of = size_of
        self._max = max_samples_per_commit
        self._queue: deque[tuple[T, Future[int]]] = deque()
        self._queued_samples = 0
        self._cond = threading.Condition()
        self._closed = False
        self.stats = WriteStats()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    @property
    def depth(self) -> int:
        """Samples queued and not yet committed."""
        return self._queued_samples

    def submit(self, item: T) -> Future[int]:
        fut: Future[int] = Future()
        with self._cond:
            if self._closed:
                raise StoreUnavailable("the store is shutting down; retry on another instance")
            self._queue.append((item, fut))
            self._queued_samples += self._size_of(item)
            self._cond.notify()
        return fut

    def close(self) -> None:
        """Stop accepting, commit what is queued, wait for the writer to finish."""
        with self._cond:
            self._closed = True
            self._cond.notify()
        self._thread.join()

    def _take(self) -> list[tuple[T, Future[int]]] | None:
        with self._cond:
            while not self._queue and not self._closed:
                self._cond.wait()
            if not self._queue:
                return None
            taken: list[tuple[T, Future[int]]] = []
            size = 0
            while self._queue and (not taken or size < self._max):
                item = self._queue.popleft()
                size += self._size_of(item[0])
                taken.append(item)
            self._queued_samples -= size
            return taken

    def _run(self) -> None:
        while (taken := self._take()) is not None:
            t0 = time.perf_counter()
            try:
                outcomes = self._commit([item for item, _ in taken])
            except BaseException as err:  # the whole group failed: none of it is stored
                log.exception("commit failed", extra={"items": len(taken)})
                outcomes = [StoreUnavailable(f"commit failed: {err}")] * len(taken)
            elapsed = time.perf_counter() - t0
            st = self.stats
            st.commits += 1
            st.commit_seconds += elapsed
            st.last_commit_seconds = elapsed
            for (_, fut), outcome in zip(taken, outcomes, strict=True):
                st.items += 1
                if isinstance(outcome, BaseException):
                    st.failed_items += 1
                    fut.set_exception(outcome)
                else:
                    st.samples += outcome
                    fut.set_result(outcome)
