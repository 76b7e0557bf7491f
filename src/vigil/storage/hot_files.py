"""Closed files kept decoded in memory, most recently used first, within a byte budget.

A cold query over closed days costs about 1 ms per Parquet scan before a row is decoded,
and decodes whole row groups (docs/storage.md). The days just closed, and the ones read
lately, are therefore also kept as tables of an in-memory DuckDB database (attached as
``hot``, compressed: the TSBS day's raw samples take ≈ 22 MB), which reads scan like the
open days' tables: the TSBS Q3 shape 8.5 → 2.2 ms, Q1 1.9 → 0.6 ms in-process.

This class only keeps the books; ``DuckDBStore`` creates and drops the tables (on its
maintenance cursor; drops under ``FileGuard.writing()``, so no statement reads a table
being dropped). Thread-safe.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

# Files read while not in memory that wait for the maintenance thread to load them.
_WANTED_MAX = 256
# A file's in-memory copy against its size on disk (the TSBS day: 36 MB from 16.7 MB),
# with room to spare: a file read from disk is loaded only if this much is free.
EXPANSION = 3


class HotFiles:
    def __init__(self, budget_bytes: int) -> None:
        self.budget = budget_bytes
        self._lock = threading.Lock()
        self._tables: OrderedDict[str, tuple[str, int]] = OrderedDict()  # path -> name, size
        self._wanted: dict[str, bool] = {}  # path -> may make room (a day just closed)
        self._next = 0

    def table(self, path: str) -> str | None:
        """The in-memory table holding ``path``'s rows, marked as just used; or None."""
        with self._lock:
            hit = self._tables.get(path)
            if hit is None:
                return None
            self._tables.move_to_end(path)
            return hit[0]

    def want(self, paths: list[str], *, make_room: bool = False) -> None:
        """Remember ``paths`` for the next load: files a read took from disk, which are
        loaded only into free room (so reads over more days than fit do not churn the
        copies), or, with ``make_room``, a day just closed, for which the least recently
        used copies make room."""
        if not self.budget:
            return
        with self._lock:
            for p in paths:
                if len(self._wanted) < _WANTED_MAX:
                    self._wanted[p] = make_room or self._wanted.get(p, False)

    def take_wanted(self) -> dict[str, bool]:
        """The files wanted since the last call, not in memory: path -> may make room."""
        with self._lock:
            out = {p: r for p, r in self._wanted.items() if p not in self._tables}
            self._wanted.clear()
            return out

    def free(self) -> int:
        with self._lock:
            return self.budget - sum(s for _, s in self._tables.values())

    def new_name(self) -> str:
        with self._lock:
            self._next += 1
            return f"f{self._next}"

    def add(self, path: str, name: str, size: int) -> list[str]:
        """Record ``path`` as held by table ``name`` of ``size`` bytes; returns the tables
        to drop to stay within the budget (least recently used first; never the new one,
        which is dropped itself if it alone is over the budget)."""
        with self._lock:
            self._tables[path] = (name, size)
            drop: list[str] = []
            total = sum(s for _, s in self._tables.values())
            for p in list(self._tables):
                if total <= self.budget:
                    break
                n, s = self._tables.pop(p)
                drop.append(n)
                total -= s
            return drop

    def forget(self, paths: list[str]) -> list[str]:
        """Stop holding ``paths`` (deleted files); returns their tables to drop."""
        with self._lock:
            return [self._tables.pop(p)[0] for p in paths if p in self._tables]

    def size(self) -> int:
        with self._lock:
            return sum(s for _, s in self._tables.values())
