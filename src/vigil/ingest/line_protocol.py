"""InfluxDB line protocol to a ``SampleBatch``: a vectorised fast path and a reference slow path.

Contract (``parse_line_protocol``):

* Input is what Telegraf's influxdb / influxdb_v2 outputs send (grammar and escaping rules in
  ``vigil.ingest.line_protocol_slow``). Timestamps are integers in ``precision`` and become
  epoch milliseconds (truncated); a line without one gets ``now_ms``; negative ones are errors.
* Measurement ``cpu`` with field ``usage_user`` is metric ``cpu_usage_user``; tags become labels.
  Names are sanitized onto the Prometheus alphabet, then checked against ``limits``.
* Floats, ``12i``, ``12u`` and booleans (1.0 / 0.0) are stored; string fields are counted in
  ``SampleBatch.skipped``. Every distinct series appears once in ``series`` (order of first
  appearance); samples keep input order, line by line, field by field.
* The batch is atomic: any bad line raises ``InvalidInput`` naming the first 10 bad lines
  (1-based) and the field at fault. Garbage input raises nothing else.

The fast path handles bodies without backslashes, quotes or NUL bytes (Telegraf's usual
output) with numpy and pyarrow.compute over the whole body: no Python work per line or per
sample, only per distinct series key, field key and series. Whenever it meets anything it is
not sure of, it returns None and the slow path parses the body, so both always agree.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from vigil.core.types import Int64Array, Labels, SampleBatch, SeriesKey, SeriesMeta
from vigil.ingest.limits import Limits
from vigil.ingest.line_protocol_slow import (
    FALSE_WORDS,
    INT64_MAX,
    MS_SCALE,
    TRUE_WORDS,
    LineError,
    Precision,
    check_precision,
    field_key,
    metric_name,
    parse_line_protocol_slow,
    parse_series_key,
)

__all__ = ["Precision", "parse_line_protocol", "parse_line_protocol_slow"]

IntArray = npt.NDArray[np.intp]
_NL, _SPACE, _TAB, _HASH, _COMMA, _EQ = 10, 32, 9, 35, 44, 61
_I, _U, _X, _X_UPPER = ord("i"), ord("u"), ord("x"), ord("X")
# Masks keeping the first k bytes of a little-endian 8-byte word.
_BYTE_MASKS = np.array([(1 << (8 * k)) - 1 for k in range(9)], dtype=np.uint64)
_TRUE_SET = pa.array(TRUE_WORDS)
_FALSE_SET = pa.array(FALSE_WORDS)
_BOOL_FIRST_BYTES = np.frombuffer(b"tTfF", np.uint8)
_MAX_KEY_WORDS = 8  # field keys up to 64 bytes are compared as words, longer ones as strings
_MAX_FAST_BYTES = 2**31 - 64  # Arrow string offsets are int32


def parse_line_protocol(
    body: bytes, precision: Precision = "ns", *, limits: Limits, now_ms: int
) -> SampleBatch:
    """Parse a line-protocol body (already decompressed) into one ``SampleBatch``.

    See the module docstring for the contract. Raises ``InvalidInput`` for any bad line or
    an unknown ``precision``.
    """
    check_precision(precision)
    batch = _parse_fast(body, precision, limits, now_ms)
    if batch is None:
        batch = parse_line_protocol_slow(body, precision, limits=limits, now_ms=now_ms)
    return batch


def _parse_fast(body: bytes, precision: str, limits: Limits, now_ms: int) -> SampleBatch | None:
    """The vectorised parser; None means "let the slow path decide" (never a wrong answer)."""
    if len(body) > _MAX_FAST_BYTES or b'"' in body or b"\\" in body or b"\x00" in body:
        return None
    if not body.isascii():
        try:
            body.decode()
        except UnicodeDecodeError:
            return None
    if b"\r" in body:
        body = body.replace(b"\r\n", b"\n")
    if not body.endswith(b"\n"):
        body += b"\n"
    buf = np.frombuffer(body, np.uint8)
    cuts = np.flatnonzero(buf <= _SPACE)  # one comparison; other control bytes are rare
    kinds = buf[cuts]
    nl, sp = cuts[kinds == _NL], cuts[kinds == _SPACE]
    starts = np.empty_like(nl)
    starts[0], starts[1:] = 0, nl[:-1] + 1
    first = buf[starts]
    data = (first != _NL) & (first != _HASH)  # blank and comment lines are skipped
    if not data.all():
        starts, nl, first = starts[data], nl[data], first[data]
    if len(starts) == 0:
        return SampleBatch([], *_empty_columns())
    if len(sp) == 0 or ((first == _SPACE) | (first == _TAB)).any():
        return None  # indented lines: leave the whitespace rules to the slow path
    # Each data line has one space (no timestamp) or two; the fields lie between them.
    i0 = np.searchsorted(sp, starts)
    n_sp = np.searchsorted(sp, nl) - i0
    has_ts = n_sp == 2
    if not ((n_sp == 1) | has_ts).all():
        return None
    sp0 = sp[i0]
    sp1 = np.where(has_ts, sp[np.minimum(i0 + 1, len(sp) - 1)], nl)
    if not (
        (sp0 > starts).all() and (sp1 > sp0 + 1).all() and (nl[has_ts] > sp1[has_ts] + 1).all()
    ):
        return None
    whole = pa.py_buffer(body)
    try:
        fields = _parse_fields(_gather(whole, sp0 + 1, sp1 + 1), limits)
        if fields is None:
            return None
        line_of_field, fkey_code, fkeys, values = fields
        keys = pc.dictionary_encode(_gather(whole, starts, sp0))
        key_code = _column(keys.indices, np.int32)[line_of_field]
        parsed = _parse_keys(keys.dictionary.to_pylist(), limits)
        ts = _timestamps(buf, whole, sp1[has_ts] + 1, nl[has_ts], precision)
        if ts is None:
            return None
        ts_ms = np.full(len(starts), now_ms, np.int64)
        ts_ms[has_ts] = ts
        series, series_idx = _series(parsed, key_code, fkeys, fkey_code, limits)
    except (LineError, pa.ArrowInvalid):
        return None
    return SampleBatch(series, series_idx, ts_ms[line_of_field], values)


# Parsed series keys by their raw text, per Limits: agents send the same series every
# interval, and parsing a key (split, sanitize, check, sort) costs more than the rest of
# its samples together. Bounded: emptied when full, so a cardinality burst costs a reparse.
_KEY_CACHE_MAX = 100_000
_key_cache: dict[Limits, dict[str, tuple[str, Labels]]] = {}
# The series (key objects, their hash computed once) of recent bodies, likewise.
_meta_cache: dict[tuple[str, Labels], SeriesMeta] = {}


def _parse_keys(raws: list[str], limits: Limits) -> list[tuple[str, Labels]]:
    cache = _key_cache.setdefault(limits, {})
    if len(cache) > _KEY_CACHE_MAX:
        cache.clear()
    get = cache.get
    out = [get(r) for r in raws]
    for i, hit in enumerate(out):
        if hit is None:
            out[i] = cache[raws[i]] = parse_series_key(raws[i], limits)
    return out  # type: ignore[return-value]


def _parse_fields(
    sections: pa.StringArray, limits: Limits
) -> tuple[IntArray, IntArray, list[str], npt.NDArray[np.float64]] | None:
    """Field sets (each with its trailing space or newline) to per-field columns.

    Returns (line of each field, field key code, field keys by code, values).
    """
    offsets = _column(sections, np.int32, extra=1)
    base, size = int(offsets[0]), int(offsets[-1] - offsets[0])
    offsets = offsets - base
    # A private, padded copy: every section ends in ',' so fields split uniformly, and
    # 8-byte words can be read at any field start.
    fb = np.zeros((size + 15) // 8 * 8 + 8, np.uint8)
    fb[:size] = np.frombuffer(sections.buffers()[2], np.uint8, size, base)
    fb[offsets[1:] - 1] = _COMMA
    cuts = np.flatnonzero((fb == _COMMA) | (fb == _EQ))
    kinds = fb[cuts]
    # Exactly "key=value," per field: '=' and ',' must alternate, starting with '='.
    if len(cuts) % 2 or not ((kinds[0::2] == _EQ).all() and (kinds[1::2] == _COMMA).all()):
        return None
    eq, comma = cuts[0::2], cuts[1::2]
    start = np.empty_like(eq)
    start[0], start[1:] = 0, comma[:-1] + 1
    if not ((eq > start).all() and (comma > eq + 1).all()):
        return None
    line_ends = np.searchsorted(comma, offsets[1:] - 1)
    per_line = np.diff(line_ends, prepend=-1)
    line_of_field = np.repeat(np.arange(len(sections)), per_line)
    whole = pa.py_buffer(fb)
    fkey_code, fkeys = _field_keys(fb, whole, start, eq)
    values = _values(fb, whole, eq + 1, comma)
    if values is None:
        return None
    return line_of_field, fkey_code, fkeys, values


def _field_keys(
    fb: npt.NDArray[np.uint8], whole: pa.Buffer, start: IntArray, end: IntArray
) -> tuple[IntArray, list[str]]:
    """Codes for the field keys ``fb[start:end]`` and the keys by code.

    A key is compared as its length and the 8-byte words covering it (the last overlapping
    the one before, so no byte is missed; bytes past a short key are masked off), which
    Arrow hashes as one fixed-size binary: exact, and much cheaper than hashing strings.
    """
    length = end - start
    n_words = (int(length.max()) + 7) // 8
    if n_words > _MAX_KEY_WORDS:
        enc = pc.dictionary_encode(_gather(whole, start, end))
        return _column(enc.indices, np.int32), [field_key(k) for k in enc.dictionary.to_pylist()]
    at = np.ndarray((len(fb) - 7,), "<u8", fb, 0, (1,))  # an 8-byte word at every byte
    words = np.empty((len(start), n_words + 1), np.uint64)
    words[:, 0] = length
    np.bitwise_and(at[start], _BYTE_MASKS[np.minimum(length, 8)], out=words[:, 1])
    last, long = np.maximum(end - 8, start), length >= 8
    for j in range(1, n_words):
        np.multiply(at[np.minimum(start + 8 * j, last)], long, out=words[:, j + 1])
    fixed = pa.Array.from_buffers(
        pa.binary(8 * (n_words + 1)), len(start), [None, pa.py_buffer(words)]
    )
    codes = _column(pc.dictionary_encode(fixed).indices, np.int32)
    first = np.empty(int(codes.max()) + 1, np.intp)
    first[codes] = np.arange(len(codes))  # any occurrence will do: they are all equal
    keys = [fb[start[i] : end[i]].tobytes().decode() for i in first.tolist()]
    return codes, [field_key(k) for k in keys]


def _values(
    fb: npt.NDArray[np.uint8], whole: pa.Buffer, lo: IntArray, hi: IntArray
) -> npt.NDArray[np.float64] | None:
    """Unquoted field values ``fb[lo:hi]`` as floats, or None if any is not plainly valid."""
    last = fb[hi - 1]
    is_int, is_uint = last == _I, last == _U
    if not (is_int.any() or is_uint.any()):
        try:
            return _floats(whole, lo, hi)
        except pa.ArrowInvalid:
            pass  # booleans among the floats, or an error
    # Mixed types, or something that is not a float (a boolean, or an error).
    out = np.empty(len(lo), np.float64)
    is_bool = np.isin(fb[lo], _BOOL_FIRST_BYTES) & ~is_int & ~is_uint
    is_float = ~(is_int | is_uint | is_bool)
    for mask, kind in ((is_int, pa.int64()), (is_uint, pa.uint64())):
        if mask.any():  # the suffix is left out of the slice
            if _hex(fb, lo[mask]):
                return None
            ints = pc.cast(_gather(whole, lo[mask], hi[mask] - 1, nulls=True), kind)
            out[mask] = _column(ints, kind.to_pandas_dtype())[0::2]
    if is_bool.any():
        words = _gather(whole, lo[is_bool], hi[is_bool])
        true = pc.is_in(words, value_set=_TRUE_SET).to_numpy(zero_copy_only=False)
        false = pc.is_in(words, value_set=_FALSE_SET).to_numpy(zero_copy_only=False)
        if not (true | false).all():
            return None
        out[is_bool] = true
    if is_float.any():
        floats = _floats(whole, lo[is_float], hi[is_float])
        if floats is None:
            return None
        out[is_float] = floats
    return out


def _floats(whole: pa.Buffer, lo: IntArray, hi: IntArray) -> npt.NDArray[np.float64] | None:
    out = pc.cast(_gather(whole, lo, hi, nulls=True), pa.float64())
    values = _column(out, np.float64)[0::2]
    # Arrow also reads 'inf' and 'nan', and overflows to inf; Influx has neither.
    return values if np.isfinite(values).all() else None


def _timestamps(
    buf: npt.NDArray[np.uint8], whole: pa.Buffer, lo: IntArray, hi: IntArray, precision: str
) -> Int64Array | None:
    if len(lo) == 0:
        return np.empty(0, np.int64)
    if _hex(buf, lo):
        return None
    cast = pc.cast(_gather(whole, lo, hi, nulls=True), pa.int64())
    ts = _column(cast, np.int64)[0::2]
    mul, div = MS_SCALE[precision]
    if ts.min() < 0 or ts.max() > INT64_MAX // mul:
        return None
    return ts * mul if mul != 1 else ts // div


def _hex(buf: npt.NDArray[np.uint8], lo: IntArray) -> bool:
    """Whether any token starting at ``lo`` looks like ``0x...``: Arrow's integer cast reads
    hexadecimal, Influx does not. (``lo + 1`` is always inside the buffer: tokens are
    followed at least by a newline.)"""
    second = buf[lo + 1]
    return bool(((second == _X) | (second == _X_UPPER)).any())


def _series(
    parsed: list[tuple[str, Labels]],
    key_code: IntArray,
    fkeys: list[str],
    fkey_code: IntArray,
    limits: Limits,
) -> tuple[list[SeriesMeta], npt.NDArray[np.int32]]:
    """Distinct series in order of first appearance, and each sample's index into them.

    ``key_code`` and ``fkey_code`` give each sample's raw series key and field key. Raw keys
    that mean the same series (tag order, sanitized names) are merged. Python runs per
    distinct measurement, label set, name and series, never per sample.
    """
    n_f = len(fkeys)
    combo, inv = _codes(key_code.astype(np.int64) * n_f + fkey_code, len(parsed) * n_f)
    first = np.full(len(combo), len(inv), np.intp)
    np.minimum.at(first, inv, np.arange(len(inv)))
    measurements: dict[str, int] = {}
    label_sets: dict[Labels, int] = {}
    k_meas = np.array([measurements.setdefault(m, len(measurements)) for m, _ in parsed])
    k_labels = np.array([label_sets.setdefault(lab, len(label_sets)) for _, lab in parsed])
    k, f = np.divmod(combo, n_f)
    # Names come from (measurement, field key) pairs; different pairs may sanitize alike.
    pairs, pair_inv = np.unique(k_meas[k] * n_f + f, return_inverse=True)
    meas_list = list(measurements)
    name_ids: dict[str, int] = {}
    pair_meas, pair_fkey = np.divmod(pairs, n_f)
    pair_name = np.array(
        [
            name_ids.setdefault(metric_name(meas_list[m], fkeys[ff], limits), len(name_ids))
            for m, ff in zip(pair_meas.tolist(), pair_fkey.tolist(), strict=True)
        ]
    )
    final, final_inv = _codes(pair_name[pair_inv] * len(label_sets) + k_labels[k], None)
    final_first = np.full(len(final), len(inv), np.intp)
    np.minimum.at(final_first, final_inv, first)
    order = np.argsort(final_first)
    rank = np.empty(len(final), np.int32)
    rank[order] = np.arange(len(final), dtype=np.int32)
    names, label_list = list(name_ids), list(label_sets)
    name_of, labels_of = np.divmod(final[order], len(label_sets))
    if len(_meta_cache) > _KEY_CACHE_MAX:
        _meta_cache.clear()
    series = []
    for n, lab in zip(name_of.tolist(), labels_of.tolist(), strict=True):
        key = (names[n], label_list[lab])
        meta = _meta_cache.get(key)
        if meta is None:
            meta = _meta_cache[key] = SeriesMeta(SeriesKey(*key))
        series.append(meta)
    return series, rank[final_inv][inv]


def _codes(values: npt.NDArray[np.int64], bound: int | None) -> tuple[IntArray, IntArray]:
    """Sorted distinct ``values`` and each value's index into them (np.unique's contract).

    With a small ``bound`` on the values, a lookup table replaces np.unique's sort.
    """
    if bound is None or bound > 8 * len(values) + 4096:
        uniq, inv = np.unique(values, return_inverse=True)
        return uniq, inv
    seen = np.zeros(bound, bool)
    seen[values] = True
    uniq = np.flatnonzero(seen)
    rank = np.zeros(bound, np.intp)
    rank[uniq] = np.arange(len(uniq))
    return uniq, rank[values]


def _gather(whole: pa.Buffer, lo: IntArray, hi: IntArray, nulls: bool = False) -> pa.StringArray:
    """Strings ``whole[lo[i]:hi[i]]`` for ascending, non-overlapping ranges.

    Built over ``whole`` as the ranges and the gaps between them, alternating: then either the
    gaps are dropped (a copy of just the ranges), or with ``nulls`` they are marked null and
    kept, for kernels that skip nulls (no copy; the caller takes every second result).
    """
    n = len(lo)
    if n == 0:
        return pa.array([], pa.string())
    offsets = np.empty(2 * n, np.int32)
    offsets[0::2], offsets[1::2] = lo, hi
    valid = np.full((2 * n + 6) // 8, 0x55, np.uint8)  # bits 0, 2, 4, ... set
    both = pa.Array.from_buffers(
        pa.string(), 2 * n - 1, [pa.py_buffer(valid), pa.py_buffer(offsets), whole]
    )
    if nulls:
        return both
    keep = np.zeros(2 * n - 1, bool)
    keep[0::2] = True
    return both.filter(pa.array(keep))


def _column(array: pa.Array, dtype: npt.DTypeLike, extra: int = 0) -> npt.NDArray[Any]:
    """The data (or, with ``extra=1``, offsets) buffer of ``array`` as numpy, zero-copy.

    Null slots hold whatever the kernel left there; callers only read valid ones.
    """
    buffer = array.buffers()[1]
    return np.frombuffer(buffer, dtype, array.offset + len(array) + extra)[array.offset :]


def _empty_columns() -> tuple[npt.NDArray[np.int32], Int64Array, npt.NDArray[np.float64]]:
    return np.empty(0, np.int32), np.empty(0, np.int64), np.empty(0, np.float64)
