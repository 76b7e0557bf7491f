"""In-memory catalogue of series: interning and label matching without touching disk.

The catalogue is small next to the samples (one entry per series) and is read on every
write and query, so it lives in memory, loaded once from the ``series`` table; like the
inverted index of Prometheus' head block, matchers are answered from postings lists.
"""

from __future__ import annotations

import threading
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from vigil.core.matchers import Matcher
from vigil.core.types import Int32Array, SeriesKey, SeriesMeta
from vigil.storage.store import SeriesInfo


@dataclass
class _Tenant:
    by_key: dict[SeriesKey, int] = field(default_factory=dict)
    by_name: dict[str, set[int]] = field(default_factory=lambda: defaultdict(set))
    # label name -> label value -> ids
    postings: dict[str, dict[str, set[int]]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(set))
    )


class SeriesIndex:
    """Thread-safe: the writer adds, readers look up."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tenants: dict[str, _Tenant] = defaultdict(_Tenant)
        self._info: dict[int, SeriesInfo] = {}
        self._tenant_of: dict[int, str] = {}
        self._name_key: dict[int, int] = {}  # series id -> the first id of its metric
        self._first: dict[tuple[str, str], int] = {}
        self.next_id = 1

    def add(self, tenant: str, infos: Iterable[SeriesInfo]) -> None:
        with self._lock:
            t = self._tenants[tenant]
            for info in infos:
                t.by_key[info.key] = info.id
                t.by_name[info.key.name].add(info.id)
                for k, v in info.key.labels:
                    t.postings[k][v].add(info.id)
                self._info[info.id] = info
                self._tenant_of[info.id] = tenant
                first = min(self._first.get((tenant, info.key.name), info.id), info.id)
                self._first[(tenant, info.key.name)] = first
                self._name_key[info.id] = first
                self.next_id = max(self.next_id, info.id + 1)

    def count(self, tenant: str) -> int:
        return len(self._tenants[tenant].by_key) if tenant in self._tenants else 0

    def resolve(
        self,
        tenant: str,
        series: Sequence[SeriesMeta],
        pending: dict[SeriesKey, SeriesInfo],
        next_id: int,
    ) -> tuple[Int32Array, list[SeriesInfo]]:
        """Ids for ``series`` (in order) and the series not known yet.

        ``pending`` holds this tenant's series created earlier in the same commit (not yet
        ``add``-ed); new ids start at ``next_id``, given in (name, labels) order, so the
        series of one metric that first appear together get adjacent ids: a read of them
        then selects an id range, which DuckDB filters in the scan, instead of a list.
        The caller persists the new series, then ``add``s them.
        """
        ids = np.empty(len(series), np.int32)
        unknown: dict[SeriesKey, list[int]] = {}
        with self._lock:
            known = self._tenants[tenant].by_key if tenant in self._tenants else {}
            for i, meta in enumerate(series):
                sid = known.get(meta.key)
                if sid is None:
                    info = pending.get(meta.key)
                    if info is None:
                        unknown.setdefault(meta.key, []).append(i)
                        continue
                    sid = info.id
                ids[i] = sid
        new: list[SeriesInfo] = []
        for key in sorted(unknown, key=lambda k: (k.name, k.labels)):
            first = series[unknown[key][0]]
            new.append(SeriesInfo(next_id, key, first.type, first.category))
            ids[unknown[key]] = next_id
            next_id += 1
        return ids, new

    def owned(self, tenant: str, ids: Int32Array) -> npt.NDArray[np.bool_]:
        """Which of ``ids`` belong to ``tenant`` (tenant isolation), as a mask."""
        tenant_of = self._tenant_of
        return np.fromiter((tenant_of.get(int(i)) == tenant for i in ids), bool, len(ids))

    def info(self, sid: int) -> SeriesInfo:
        return self._info[sid]

    def name_keys(self, ids: Int32Array) -> list[int]:
        """The metrics of ``ids``, each as the first series id of its (tenant, name): the
        key closed files are sorted and pruned by (``closed_days.ORDER_SQL``)."""
        key = self._name_key
        return sorted({key[int(i)] for i in np.unique(ids)})

    def find(self, tenant: str, name: str | None, matchers: Sequence[Matcher]) -> list[int]:
        t = self._tenants.get(tenant)
        if t is None:
            return []
        with self._lock:
            candidates = set(t.by_key.values() if name is None else t.by_name.get(name, ()))
            for m in matchers:
                if not candidates:
                    break
                candidates = self._apply(t, m, candidates)
        return sorted(candidates)

    @staticmethod
    def _apply(t: _Tenant, m: Matcher, candidates: set[int]) -> set[int]:
        values = t.postings.get(m.label, {})
        if m.op == "=" and m.value:
            return candidates & values.get(m.value, set())
        # Series without the label see it as "" (Prometheus semantics).
        keep: set[int] = set()
        with_label: set[int] = set()
        for v, ids in values.items():
            with_label |= ids
            if m.matches(v):
                keep |= ids
        if m.matches(""):
            keep |= candidates - with_label
        return candidates & keep

    def infos(self, tenant: str) -> list[SeriesInfo]:
        t = self._tenants.get(tenant)
        if t is None:
            return []
        with self._lock:
            return [self._info[i] for i in t.by_key.values()]

    def label_names(self, tenant: str, name: str | None) -> list[str]:
        if name is None:
            t = self._tenants.get(tenant)
            return sorted(k for k, vs in t.postings.items() if any(vs.values())) if t else []
        return sorted({k for info in self._named(tenant, name) for k, _ in info.key.labels})

    def label_values(self, tenant: str, label: str, name: str | None) -> list[str]:
        if name is None:
            t = self._tenants.get(tenant)
            if t is None:
                return []
            return sorted(v for v, ids in t.postings.get(label, {}).items() if ids)
        return sorted(
            {v for info in self._named(tenant, name) for k, v in info.key.labels if k == label}
        )

    def _named(self, tenant: str, name: str) -> list[SeriesInfo]:
        t = self._tenants.get(tenant)
        with self._lock:
            return [self._info[i] for i in t.by_name.get(name, ())] if t else []

    def cardinality(self, tenant: str, limit: int) -> dict[str, object]:
        infos = self.infos(tenant)
        names = Counter(i.key.name for i in infos)
        label_names: Counter[str] = Counter()
        pairs: Counter[str] = Counter()
        for info in infos:
            for k, v in info.key.labels:
                label_names[k] += 1
                pairs[f"{k}={v}"] += 1
        values_per_label = {k: len({v for v, ids in vs.items() if ids})
                            for k, vs in self._tenants[tenant].postings.items()} if infos else {}

        def top(c: Counter[str], key: str) -> list[dict[str, object]]:
            return [{key: k, "series": n} for k, n in c.most_common(limit)]

        return {
            "series": len(infos),
            "metrics": top(names, "name"),
            "labels": [
                {"label": k, "series": n, "values": values_per_label.get(k, 0)}
                for k, n in label_names.most_common(limit)
            ],
            "label_pairs": top(pairs, "pair"),
        }
