"""The quantile sketch: key order = value order, 1 % relative error, SQL == numpy."""

from __future__ import annotations

import duckdb
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from vigil.storage.sketch import RELATIVE_ERROR, key_of, key_sql, representative

finite = st.floats(min_value=-1e12, max_value=1e12, allow_nan=False, allow_infinity=False)


@given(st.lists(finite, min_size=1, max_size=200))
def test_representative_within_relative_error(values: list[float]) -> None:
    v = np.array(values)
    rep = representative(key_of(v))
    tiny = np.abs(v) < 1e-9
    assert np.all(rep[tiny] == 0)
    big = ~tiny
    assert np.all(np.abs(rep[big] - v[big]) <= RELATIVE_ERROR * np.abs(v[big]) * (1 + 1e-12))


@given(st.lists(finite, min_size=2, max_size=200))
def test_key_order_is_value_order(values: list[float]) -> None:
    v = np.sort(np.array(values))
    assert np.all(np.diff(key_of(v)) >= 0)


# No deadline: each example opens a DuckDB connection, which takes >200 ms on a loaded
# machine (the deadline is a timing assertion, which tests must not make).
@settings(max_examples=30, deadline=None)
@given(st.lists(finite, min_size=1, max_size=100))
def test_sql_keys_equal_numpy_keys(values: list[float]) -> None:
    con = duckdb.connect()
    rows = con.execute(
        f"SELECT {key_sql('v')} FROM (SELECT unnest(?::DOUBLE[]) AS v)", [values]
    ).fetchall()
    assert [r[0] for r in rows] == key_of(np.array(values)).tolist()
