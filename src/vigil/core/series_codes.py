"""A code per store series id, so that a committed batch maps to its codes in one look-up.

Commit listeners (the alert evaluator, the live-stream hub) get the store's id of each of
a batch's series. What a series means to them (a rule group, the live feeds that want it)
depends only on its key, so it is worked out once per series — by key, the first time the
id is seen — and kept in a numpy table indexed by id: a batch of 5,000 series then costs
one fancy-index instead of 5,000 dictionary look-ups.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import numpy.typing as npt

from vigil.core.types import Int32Array, Int64Array, SampleBatch, SeriesKey

UNKNOWN = -1


class SeriesCodes:
    def __init__(self) -> None:
        self._lut: Int64Array = np.full(0, UNKNOWN, np.int64)
        self.version = 0  # changes whenever a code is forgotten or resolved

    def clear(self) -> None:
        """Forget every code (what they meant changed): each is resolved again."""
        self._lut.fill(UNKNOWN)
        self.version += 1

    def having(self, code: int) -> npt.NDArray[np.bool_]:
        """Which ids (by index) are known to have ``code``."""
        return np.asarray(self._lut == code, np.bool_)

    def codes(self, batch: SampleBatch, series_ids: Int32Array,
              resolve: Callable[[SeriesKey], int]) -> Int64Array:
        """The code of each of ``batch.series`` (``series_ids`` aligned with it), from the
        table or, for an id not seen yet, from ``resolve(key)`` (which must return ≥ 0)."""
        top = int(series_ids.max(initial=-1)) + 1
        if top > len(self._lut):
            lut = np.full(max(top, 2 * len(self._lut)), UNKNOWN, np.int64)
            lut[: len(self._lut)] = self._lut
            self._lut = lut
        code = self._lut[series_ids]
        miss = np.flatnonzero(code == UNKNOWN)
        if len(miss):
            for j in miss.tolist():
                code[j] = resolve(batch.series[j].key)
            self._lut[series_ids[miss]] = code[miss]
            self.version += 1
        return code
