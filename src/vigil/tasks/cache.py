"""The report cache: rendered answers with a TTL per kind, invalidated by activity.

Keys carry the tenant, the report kind and its scope (namespace, task_name, version)
plus the other parameters. When executions end in a scope, every entry whose scope
would include them is dropped — the global entries, the namespace's, the task's, the
version's — and entries of other namespaces and tasks stay. Thread-safe: reports are
computed on worker threads and invalidated from the task writer thread.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from vigil.core.timeutil import now_ms
from vigil.storage.task_store import TaskScope

# (tenant, kind, scope, other parameters)
CacheKey = tuple[str, str, TaskScope, tuple[object, ...]]


@dataclass(frozen=True, slots=True)
class Entry:
    body: bytes
    etag: str
    expires_ms: int

    def max_age_s(self, now: int) -> int:
        return max(0, -((now - self.expires_ms) // 1000))  # whole seconds, rounded up


def etag_of(body: bytes) -> str:
    return '"' + hashlib.blake2b(body, digest_size=12).hexdigest() + '"'


def _covers(scope: TaskScope, namespace: str, task_name: str, version: str) -> bool:
    return ((scope.namespace is None or scope.namespace == namespace)
            and (scope.task_name is None or scope.task_name == task_name)
            and (scope.version is None or scope.version == version))


class ReportCache:
    def __init__(self, ttl_s: dict[str, float], *, max_entries: int = 4096,
                 clock: Callable[[], int] = now_ms) -> None:
        self._ttl_ms = {kind: int(s * 1000) for kind, s in ttl_s.items()}
        self._max = max_entries
        self._clock = clock
        self._entries: OrderedDict[CacheKey, Entry] = OrderedDict()
        self._lock = threading.Lock()
        self._generation = 0

    @property
    def generation(self) -> int:
        """Bumped by every invalidation; take it before computing a report and pass it
        to ``put``, so an answer computed across a commit is not cached as current."""
        return self._generation

    def now(self) -> int:
        return self._clock()

    def get(self, key: CacheKey) -> Entry | None:
        now = self._clock()
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            if entry.expires_ms <= now:
                del self._entries[key]
                return None
            self._entries.move_to_end(key)
            return entry

    def put(self, key: CacheKey, body: bytes, generation: int) -> Entry:
        entry = Entry(body, etag_of(body), self._clock() + self._ttl_ms[key[1]])
        if self._ttl_ms[key[1]] <= 0:
            return entry
        with self._lock:
            if generation != self._generation:
                return entry
            self._entries[key] = entry
            self._entries.move_to_end(key)
            while len(self._entries) > self._max:
                self._entries.popitem(last=False)
        return entry

    def invalidate(self, tenant: str, scopes: Iterable[tuple[str, str, str]]) -> int:
        """Drop the entries of ``tenant`` whose scope includes any of ``scopes``
        ((namespace, task_name, version) of executions that just ended); returns how many."""
        scopes = list(scopes)
        if not scopes:
            return 0
        with self._lock:
            self._generation += 1
            stale = [k for k in self._entries if k[0] == tenant and any(
                _covers(k[2], *s) for s in scopes)]
            for k in stale:
                del self._entries[k]
        return len(stale)

    def __len__(self) -> int:
        return len(self._entries)
