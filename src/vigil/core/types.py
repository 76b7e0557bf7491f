"""Samples as columns, and the series they belong to.

Time is int64 epoch milliseconds (UTC) everywhere inside Vigil; parsing and formatting
happen at the edges.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, get_args

import numpy as np
import numpy.typing as npt

MetricType = Literal["counter", "gauge", "histogram", "summary"]
Category = Literal["system", "business", "user", "performance", "security", "custom"]
METRIC_TYPES: tuple[str, ...] = get_args(MetricType)
CATEGORIES: tuple[str, ...] = get_args(Category)

Int32Array = npt.NDArray[np.int32]
Int64Array = npt.NDArray[np.int64]
Float64Array = npt.NDArray[np.float64]
Labels = tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class SeriesKey:
    """Identity of a series within a tenant: metric name and labels sorted by name.

    The hash is computed once: keys are looked up per batch by the store's index and the
    alert evaluator, and a tuple of label pairs is otherwise hashed anew every time.
    """

    name: str
    labels: Labels = ()
    _hash: int = field(init=False, repr=False, compare=False, default=0)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_hash", hash((self.name, self.labels)))

    def __hash__(self) -> int:
        return self._hash

    def __reduce__(self) -> tuple[type[SeriesKey], tuple[str, Labels]]:
        # str hashes differ between processes: rebuild, never carry the hash across.
        return (SeriesKey, (self.name, self.labels))

    @classmethod
    def of(cls, name: str, labels: Mapping[str, str] | None = None) -> SeriesKey:
        return cls(name, tuple(sorted(labels.items())) if labels else ())

    def label_dict(self) -> dict[str, str]:
        return dict(self.labels)

    def __str__(self) -> str:
        inner = ",".join(f'{k}="{v}"' for k, v in self.labels)
        return f"{self.name}{{{inner}}}"


@dataclass(frozen=True, slots=True)
class SeriesMeta:
    """A series key with the type and category it is created with (not part of identity)."""

    key: SeriesKey
    type: MetricType = "gauge"
    category: Category = "custom"


@dataclass(frozen=True, slots=True)
class SampleBatch:
    """Samples as parallel columns; ``series_idx[i]`` indexes ``series`` for sample ``i``.

    The distinct series of a batch are listed once, so interning costs one lookup per
    series, not per sample.
    """

    series: Sequence[SeriesMeta]
    series_idx: Int32Array
    ts_ms: Int64Array
    value: Float64Array
    # Counted, not stored: e.g. line-protocol string fields.
    skipped: int = field(default=0, compare=False)

    def __post_init__(self) -> None:
        n = len(self.ts_ms)
        if not (len(self.series_idx) == len(self.value) == n):
            raise AssertionError("BUG: SampleBatch columns differ in length")

    def __len__(self) -> int:
        return len(self.ts_ms)

    @classmethod
    def empty(cls) -> SampleBatch:
        return cls(
            (), np.empty(0, np.int32), np.empty(0, np.int64), np.empty(0, np.float64)
        )

    @classmethod
    def concat(cls, batches: Sequence[SampleBatch]) -> SampleBatch:
        """One batch holding all samples of ``batches`` (series lists are appended)."""
        if len(batches) == 1:
            return batches[0]
        series: list[SeriesMeta] = []
        idx: list[Int32Array] = []
        for b in batches:
            idx.append(b.series_idx + np.int32(len(series)))
            series.extend(b.series)
        return cls(
            series,
            np.concatenate(idx) if idx else np.empty(0, np.int32),
            np.concatenate([b.ts_ms for b in batches]),
            np.concatenate([b.value for b in batches]),
            sum(b.skipped for b in batches),
        )
