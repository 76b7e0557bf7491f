"""The query result cache: answers kept in memory and dropped exactly when data they
read changes, so a repeated query (a dashboard refresh) is answered without the store
and an answer is never stale.

Each entry remembers the tenant and the time range ``[lo, hi)`` of stored data its
answer depends on (``engine.reads``). Every change of stored data is reported with
``invalidate(tenant, lo, hi)``: a committed batch (its tenant and timestamps, from the
store's commit listener on the writer thread) or a rewrite of the store (rollup
rebuild, retention: every tenant). Entries whose range overlaps are dropped; others stay. It is
conservative over series and metric names: a sample of any series of the tenant in the
range drops the entry.

A query that runs while a change commits must not store what it read before the
change. So a query takes a ``ticket`` (the change counter) before it reads, and ``put``
refuses the answer when a change since that ticket overlaps it — checked against a log
of the last ``log_size`` changes; when the log no longer reaches back that far, the
answer is not cached. Changes reported after the ``put`` drop the entry as usual.

Bounded by entries and by approximate bytes, least recently used first out. Thread-safe:
``invalidate`` runs on the writer thread and must stay cheap — a lookup of the tenant's
entries sorted by the end of their range, so live ingestion (changes near now) only
looks at the few entries that reach into the present.
"""

from __future__ import annotations

import threading
from bisect import bisect_left, bisect_right, insort
from collections import OrderedDict, deque
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

from vigil.core.types import Int32Array, SampleBatch

V = TypeVar("V")
_FAR = 2**63  # beyond any epoch-ms timestamp and any entry id
ALL_TIME = (-_FAR, _FAR)


@dataclass(frozen=True, slots=True)
class _Entry(Generic[V]):
    value: V
    lo: int
    hi: int
    nbytes: int
    id: int


class QueryCache(Generic[V]):
    """``max_entries`` and ``max_bytes`` bound it (an answer larger than a quarter of
    ``max_bytes`` is not kept); ``log_size`` changes are remembered for ``put``."""

    def __init__(self, max_entries: int, max_bytes: int, *, log_size: int = 4096) -> None:
        if max_entries <= 0 or max_bytes <= 0 or log_size <= 0:
            raise ValueError("a query cache needs room: use no cache to turn it off")
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._entries: OrderedDict[tuple[str, Hashable], _Entry[V]] = OrderedDict()
        # per tenant: (hi, lo, id) of its entries, sorted; id -> key
        self._ends: dict[str, list[tuple[int, int, int]]] = {}
        self._keys: dict[int, tuple[str, Hashable]] = {}
        self._next_id = 0
        self._bytes = 0
        self._seq = 0  # changes reported so far
        self._log: deque[tuple[int, str | None, int, int]] = deque(maxlen=log_size)
        self.hits = self.misses = self.invalidated = self.evicted = self.refused = 0

    # ------------------------------------------------------------------ reads
    def get(self, tenant: str, key: Hashable) -> V | None:
        """The kept answer, or None (a miss is counted by the ``put`` that follows)."""
        with self._lock:
            entry = self._entries.get((tenant, key))
            if entry is None:
                return None
            self._entries.move_to_end((tenant, key))
            self.hits += 1
            return entry.value

    def ticket(self) -> int:
        """Take before reading the store; hand to ``put`` with the answer."""
        return self._seq

    def put(self, tenant: str, key: Hashable, value: V, reads: tuple[int, int], nbytes: int,
            ticket: int) -> bool:
        """Keep ``value``, which depends on stored data of ``tenant`` in ``reads`` (ms,
        half-open) and was read after ``ticket`` was taken; False if it is not kept
        because a change since the ticket may have made it stale, or it is too large."""
        lo, hi = reads
        with self._lock:
            self.misses += 1
            if nbytes > self.max_bytes // 4:
                return False
            if ticket != self._seq and not self._unchanged_since(ticket, tenant, lo, hi):
                self.refused += 1
                return False
            old = self._entries.get((tenant, key))
            if old is not None:
                self._drop((tenant, key), old)
            entry = _Entry(value, lo, hi, nbytes, self._next_id)
            self._next_id += 1
            self._entries[(tenant, key)] = entry
            self._keys[entry.id] = (tenant, key)
            insort(self._ends.setdefault(tenant, []), (hi, lo, entry.id))
            self._bytes += nbytes
            while len(self._entries) > self.max_entries or self._bytes > self.max_bytes:
                oldest, victim = next(iter(self._entries.items()))
                self._drop(oldest, victim)
                self.evicted += 1
            return True

    def _unchanged_since(self, ticket: int, tenant: str, lo: int, hi: int) -> bool:
        """No change after ``ticket`` overlaps ``tenant``'s ``[lo, hi)`` (lock held)."""
        if not self._log or self._log[0][0] > ticket + 1:
            return False  # the log no longer reaches back to the ticket
        for seq, t, c_lo, c_hi in reversed(self._log):
            if seq <= ticket:
                return True
            if (t is None or t == tenant) and c_lo < hi and lo < c_hi:
                return False
        return True

    # ------------------------------------------------------------------ changes
    def invalidate(self, tenant: str | None, lo: int, hi: int) -> int:
        """Stored data of ``tenant`` (None: of every tenant) in ``[lo, hi)`` changed:
        drop the entries that read it; returns how many."""
        with self._lock:
            self._seq += 1
            self._log.append((self._seq, tenant, lo, hi))
            dropped = 0
            for t in (self._ends if tenant is None else (tenant,)):
                ends = self._ends.get(t)
                if not ends:
                    continue
                i = bisect_right(ends, (lo, _FAR, _FAR))  # the first that ends after lo
                keep = []
                for item in ends[i:]:
                    if item[1] < hi:
                        key = self._keys.pop(item[2])
                        self._bytes -= self._entries.pop(key).nbytes
                        dropped += 1
                    else:
                        keep.append(item)
                ends[i:] = keep
            self.invalidated += dropped
            return dropped

    def committed(self, tenant: str, batch: SampleBatch, _series_ids: Int32Array) -> None:
        """Store commit listener (writer thread): ``batch`` of ``tenant`` is committed."""
        if len(batch.ts_ms):
            self.invalidate(tenant, int(batch.ts_ms.min()), int(batch.ts_ms.max()) + 1)

    def rewritten(self, lo: int, hi: int) -> None:
        """Store listener: data of every tenant in ``[lo, hi)`` was rewritten or deleted."""
        self.invalidate(None, lo, hi)

    def clear(self) -> int:
        """Drop everything (as a change of all data of every tenant)."""
        return self.invalidate(None, *ALL_TIME)

    def _drop(self, key: tuple[str, Hashable], entry: _Entry[V]) -> None:
        del self._entries[key]
        del self._keys[entry.id]
        ends = self._ends[key[0]]
        del ends[bisect_left(ends, (entry.hi, entry.lo, entry.id))]
        self._bytes -= entry.nbytes

    # ------------------------------------------------------------------ figures
    def stats(self) -> dict[str, float]:
        """Counters and gauges for Vigil's own /metrics: hits; misses (answers computed
        and offered to ``put``); invalidated (entries dropped by changes); evicted (for
        room); refused (answers not kept: a change overlapped while they were computed);
        entries and bytes now."""
        with self._lock:
            return {"hits": self.hits, "misses": self.misses, "invalidated": self.invalidated,
                    "evicted": self.evicted, "refused": self.refused,
                    "entries": len(self._entries), "bytes": self._bytes}

    def __len__(self) -> int:
        return len(self._entries)
