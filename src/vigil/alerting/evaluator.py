"""The streaming evaluator: one tenant's rules against each committed batch.

State lives in columns, one row ("slot") per (rule, series): the rule's parameters
copied in, the window ring, pending-since, firing, clear-since. A batch is matched to
slots once per distinct series (cached), then everything else is numpy over slots, so
the cost is per series in the batch, not per sample and not per rule. ``tick`` moves
what time alone moves: for-durations, absence, keep-firing-for.

Windows are rings of ``SUB`` sub-buckets of ``window/SUB`` each, aligned to the epoch:
the window aggregate at a series' latest sample covers the last ``SUB`` sub-buckets
(the newest partly filled), so its edge is exact to a tenth of the window. A change
rule compares those with the ``SUB`` before them. Not thread-safe: the service calls it
under its lock.
"""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import numpy as np

from vigil.alerting.rules import KINDS, OPS, Rule
from vigil.analytics.anomaly import StreamingScorer
from vigil.core.matchers import MatcherIndex
from vigil.core.series_codes import SeriesCodes
from vigil.core.timeutil import format_ms
from vigil.core.types import Float64Array, Int32Array, Int64Array, SampleBatch, SeriesKey

SUB = 10
RING = 2 * SUB
_ABSENCE, _ANOMALY, _CHANGE, _FORECAST, _THRESHOLD = (KINDS.index(k) for k in (
    "absence", "anomaly", "change", "forecast", "threshold"))
_CMP = (np.greater, np.less, np.greater_equal, np.less_equal, np.equal, np.not_equal)
RECENT = 50  # transitions kept per rule for explain


@dataclass(frozen=True, slots=True)
class Transition:
    rule: Rule
    series: SeriesKey
    fingerprint: str
    firing: bool  # True: fired; False: resolved
    value: float
    at_ms: int


def fingerprint(rule_id: str, key: SeriesKey) -> str:
    """Stable id of one rule over one series: the dedup key of its alerts."""
    raw = "\0".join([rule_id, key.name, *(f"{k}={v}" for k, v in key.labels)])
    return hashlib.sha1(raw.encode()).hexdigest()[:16]


class _Slots:
    """Growable columns, as attributes (``s.firing``…, typed as arrays below); ``n`` rows
    in use."""

    SPEC: tuple[tuple[str, type, float], ...] = (
        ("rule", np.int32, -1), ("kind", np.int8, 0), ("op", np.int8, 0),
        ("threshold", np.float64, 0), ("clear_thr", np.float64, np.nan),
        ("for_ms", np.int64, 0), ("keep_ms", np.int64, 0),
        ("width", np.int64, 0), ("agg", np.int8, 0),
        ("value", np.float64, np.nan), ("data_ts", np.int64, -1), ("seen_ms", np.int64, -1),
        ("eval_ms", np.int64, -1), ("pending", np.int64, -1), ("clear", np.int64, -1),
        ("since", np.int64, -1), ("firing", np.bool_, False), ("hold", np.bool_, False),
        ("breaching", np.bool_, False),
    )
    RINGS: tuple[tuple[str, type, float], ...] = (
        ("r_epoch", np.int64, -1), ("r_cnt", np.int64, 0), ("r_sum", np.float64, 0),
        ("r_min", np.float64, np.inf), ("r_max", np.float64, -np.inf),
        ("r_lts", np.int64, -1), ("r_last", np.float64, np.nan),
    )
    rule: np.ndarray
    kind: np.ndarray
    op: np.ndarray
    threshold: np.ndarray
    clear_thr: np.ndarray
    for_ms: np.ndarray
    keep_ms: np.ndarray
    width: np.ndarray
    agg: np.ndarray
    value: np.ndarray
    data_ts: np.ndarray
    seen_ms: np.ndarray
    eval_ms: np.ndarray
    pending: np.ndarray
    clear: np.ndarray
    since: np.ndarray
    firing: np.ndarray
    hold: np.ndarray
    breaching: np.ndarray
    r_epoch: np.ndarray
    r_cnt: np.ndarray
    r_sum: np.ndarray
    r_min: np.ndarray
    r_max: np.ndarray
    r_lts: np.ndarray
    r_last: np.ndarray

    def __init__(self) -> None:
        self.n = 0
        self.cap = 0
        self.cols: dict[str, np.ndarray] = {}
        self._grow(64)

    def _grow(self, cap: int) -> None:
        new: dict[str, np.ndarray] = {}
        for name, dtype, fill in self.SPEC:
            new[name] = np.full(cap, fill, dtype)
        for name, dtype, fill in self.RINGS:
            new[name] = np.full((cap, RING), fill, dtype)
        for name, col in self.cols.items():
            new[name][: self.n] = col[: self.n]
        self.cols, self.cap = new, cap
        self.__dict__.update(new)  # plain attributes: no lookup function per access

    def add(self) -> int:
        if self.n == self.cap:
            self._grow(2 * self.cap)
        self.n += 1
        return self.n - 1


_AGGS = ("avg", "min", "max", "sum", "count", "last")


class Evaluator:
    def __init__(self, is_active: Callable[[str], bool] = lambda fp: False) -> None:
        self._is_active = is_active
        self._rules: list[Rule | None] = []  # rule index -> rule (None: removed)
        self._ridx: dict[str, int] = {}
        self._by_metric: dict[str, MatcherIndex[int]] = {}
        # Each series seen gets a group: the slots of the rules it matches, kept as one
        # flat array with offsets (CSR) so a batch maps to slots with numpy alone.
        self._gid: dict[SeriesKey, int] = {}
        self._codes = SeriesCodes()  # the store's series id -> group
        self._groups: list[Int64Array] = []
        self._csr: tuple[Int64Array, Int64Array, Int64Array] | None = None  # flat, off, len
        self._slot_of: dict[tuple[int, SeriesKey], int] = {}
        self._by_fp: dict[str, int] = {}
        self._keys: list[SeriesKey] = []  # slot -> series
        self._seen: dict[str, list[SeriesKey]] = {}  # metric -> series in the cache
        self._fps: list[str] = []
        self.s = _Slots()
        self._scorers: dict[str, StreamingScorer] = {}
        self.recent: dict[str, deque[dict[str, object]]] = {}

    # ------------------------------------------------------------------ rules
    def rules(self) -> list[Rule]:
        return [r for r in self._rules if r is not None]

    def set_rule(self, rule: Rule) -> None:
        """Add or replace a rule. Its series start afresh; those with an active alert
        (``is_active``) start firing, so a change neither loses nor repeats alerts."""
        self.remove_rule(rule.id)
        if not rule.enabled:
            self._ridx[rule.id] = -1
            self.recent.setdefault(rule.id, deque(maxlen=RECENT))
            return
        i = self._ridx[rule.id] = len(self._rules)
        self._rules.append(rule)
        self._by_metric.setdefault(rule.metric, MatcherIndex()).add(i, rule.matchers)
        self.recent.setdefault(rule.id, deque(maxlen=RECENT))
        if rule.condition.kind == "forecast":
            return  # its values come from set_values, not the stream
        for key in self._seen.get(rule.metric, ()):  # seen already: add the new rule's slots
            if _matches(rule, key):
                g = self._gid[key]
                self._groups[g] = np.append(self._groups[g], self._slot(i, rule, key))
                self._csr = None

    def remove_rule(self, rule_id: str) -> None:
        i = self._ridx.pop(rule_id, -1)
        if i < 0:
            return
        rule = self._rules[i]
        assert rule is not None, "BUG: rule index points at a removed rule"
        self._rules[i] = None
        self._by_metric[rule.metric].remove(i, rule.matchers)
        live = np.flatnonzero(self.s.rule[: self.s.n] == i)
        self.s.rule[live] = -1
        for slot in live.tolist():
            key = self._keys[slot]
            self._by_fp.pop(self._fps[slot], None)
            self._slot_of.pop((i, key), None)
            g = self._gid.get(key)
            if g is not None:
                self._groups[g] = self._groups[g][self._groups[g] != slot]
                self._csr = None

    def seed(self, rule_id: str, keys: Iterable[SeriesKey], now_ms: int) -> None:
        """Known series of a rule, seen ``now_ms`` (after a start or a rule change): an
        absence rule then notices series that never come back, after its full for_s."""
        i = self._ridx.get(rule_id, -1)
        rule = self._rules[i] if i >= 0 else None
        if rule is None:
            return
        for key in keys:
            if key.name == rule.metric and _matches(rule, key):
                slot = self._slot(i, rule, key)
                if self.s.seen_ms[slot] < 0:
                    self.s.seen_ms[slot] = now_ms

    # ------------------------------------------------------------------ slots
    def _slot(self, i: int, rule: Rule, key: SeriesKey) -> int:
        slot = self._slot_of.get((i, key))
        if slot is not None:
            return slot
        slot = self.s.add()
        s, c = self.s, rule.condition
        forecast = c.kind == "forecast"  # compares the crossing probability
        s.rule[slot], s.kind[slot] = i, KINDS.index(c.kind)
        s.op[slot] = OPS.index(">=" if forecast else c.op)
        s.threshold[slot] = c.probability if forecast else c.threshold
        s.clear_thr[slot] = np.nan if c.clear_threshold is None else c.clear_threshold
        s.for_ms[slot], s.keep_ms[slot] = c.for_ms, rule.keep_firing_for_ms
        s.width[slot] = rule.window_ms // SUB
        s.agg[slot] = _AGGS.index(rule.aggregation)
        fp = fingerprint(rule.id, key)
        if self._is_active(fp):
            s.firing[slot] = True
        self._slot_of[(i, key)] = slot
        self._by_fp[fp] = slot
        self._keys.append(key)
        self._fps.append(fp)
        return slot

    def _match(self, key: SeriesKey) -> int:
        """The group of a series not seen before (slots for each rule that matches it)."""
        slots: list[int] = []
        self._seen.setdefault(key.name, []).append(key)
        metric = self._by_metric.get(key.name)
        if metric is not None:
            for i in metric.candidates(key.labels):
                rule = self._rules[i]
                assert rule is not None, "BUG: removed rule still indexed by metric"
                if rule.condition.kind != "forecast" and _matches(rule, key):
                    slots.append(self._slot(i, rule, key))
        g = self._gid[key] = len(self._groups)
        self._groups.append(np.asarray(slots, np.int64))
        self._csr = None
        return g

    def _table(self) -> tuple[Int64Array, Int64Array, Int64Array]:
        if self._csr is None:
            lens = np.fromiter((len(x) for x in self._groups), np.int64, len(self._groups))
            flat = np.concatenate(self._groups) if self._groups else np.empty(0, np.int64)
            self._csr = (flat, np.cumsum(lens) - lens, lens)
        return self._csr

    # ------------------------------------------------------------------ stream
    def _groups_of(self, batch: SampleBatch, series_ids: Int32Array | None) -> Int64Array:
        """The group of each of the batch's series. With the store's ids that is one numpy
        look-up; a series seen for the first time (or without ids) goes by its key."""
        if series_ids is None:
            return np.fromiter((self._group(m.key) for m in batch.series), np.int64,
                               len(batch.series))
        return self._codes.codes(batch, series_ids, self._group)

    def _group(self, key: SeriesKey) -> int:
        g = self._gid.get(key)
        return self._match(key) if g is None else g

    def observe(self, batch: SampleBatch, now_ms: int,
                series_ids: Int32Array | None = None) -> list[Transition]:
        """Evaluate the rules over one committed batch; returns what fired or resolved.
        ``series_ids``: the store's id of each of ``batch.series``, if known."""
        if not self._by_metric or not len(batch):
            return []
        gid = self._groups_of(batch, series_ids)
        flat, group_off, group_len = self._table()
        counts, offsets = group_len[gid], group_off[gid]
        if not counts.any():
            return []
        # Expand samples to (sample, slot) pairs: CSR over the batch's series.
        n_per = counts[batch.series_idx]
        sample = np.repeat(np.arange(len(batch)), n_per)
        within = np.arange(len(sample)) - np.repeat(np.cumsum(n_per) - n_per, n_per)
        slot = flat[np.repeat(offsets[batch.series_idx], n_per) + within]
        ts, val = batch.ts_ms[sample], batch.value[sample]
        order = np.lexsort((ts, slot))
        slot, ts, val = slot[order], ts[order], val[order]
        last = np.flatnonzero(np.r_[slot[1:] != slot[:-1], True])
        touched = slot[last]
        s = self.s
        s.seen_ms[touched] = now_ms
        s.data_ts[touched] = np.maximum(s.data_ts[touched], ts[last])
        value = val[last].copy()
        windowed = s.width[slot] > 0
        if windowed.any():
            self._fold(slot[windowed], ts[windowed], val[windowed])
            w = s.width[touched] > 0
            value[w] = self._window_value(touched[w])
        kind = s.kind[touched]
        value[kind == _ABSENCE] = 0.0
        instant = touched[(kind == _THRESHOLD) & (s.width[touched] == 0)]
        if len(instant) and len(slot) > len(touched):
            # Some series has several samples: any breaching one counts, not the latest.
            pick = np.zeros(s.n, bool)
            pick[instant] = True
            at = np.flatnonzero(pick[slot])
            at = at[self._compare(slot[at], val[at])]
            if len(at):
                lastb = at[np.r_[slot[at][1:] != slot[at][:-1], True]]
                value[np.searchsorted(touched, slot[lastb])] = val[lastb]
        anomalous = np.flatnonzero(kind == _ANOMALY)
        if len(anomalous):
            value[anomalous] = self._score(slot, val, touched[anomalous])
        s.value[touched], s.eval_ms[touched] = value, now_ms
        return self._advance(touched, self._breach(touched), now_ms)

    def _fold(self, slot: Int64Array, ts: Int64Array, val: Float64Array) -> None:
        """Add samples to their slots' sub-buckets (samples older than the ring: dropped)."""
        s = self.s
        epoch = ts // s.width[slot]
        pos = epoch % RING
        newest = np.full(s.n, -1, np.int64)
        np.maximum.at(newest, slot, epoch)  # per slot, then per cell below
        cell_new = np.full((s.n, RING), -1, np.int64)
        np.maximum.at(cell_new, (slot, pos), epoch)
        stale = cell_new > s.r_epoch[: s.n]
        s.r_epoch[: s.n][stale] = cell_new[stale]
        for name, dtype, fill in _Slots.RINGS[1:]:
            s.cols[name][: s.n][stale] = np.asarray(fill, dtype)
        keep = (s.r_epoch[slot, pos] == epoch) & (epoch > newest[slot] - RING)
        slot, pos, ts, val = slot[keep], pos[keep], ts[keep], val[keep]
        np.add.at(s.r_cnt, (slot, pos), 1)
        np.add.at(s.r_sum, (slot, pos), val)
        np.minimum.at(s.r_min, (slot, pos), val)
        np.maximum.at(s.r_max, (slot, pos), val)
        later = ts >= s.r_lts[slot, pos]  # pairs are in time order per slot
        s.r_lts[slot[later], pos[later]] = ts[later]
        s.r_last[slot[later], pos[later]] = val[later]

    def _window_value(self, slots: Int64Array) -> Float64Array:
        s = self.s
        top = s.data_ts[slots] // s.width[slots]
        age = top[:, None] - s.r_epoch[slots]  # 0 = the newest sub-bucket
        cur = (age >= 0) & (age < SUB)
        value = _aggregate(s, slots, cur)
        change = s.kind[slots] == _CHANGE
        if change.any():
            prev = (age >= SUB) & (age < RING)
            before = _aggregate(s, slots[change], prev[change])
            with np.errstate(divide="ignore", invalid="ignore"):
                value[change] = np.where(before != 0, (value[change] - before)
                                         / np.abs(before) * 100.0, np.nan)
        return value

    def _score(self, slot: Int64Array, val: Float64Array, which: Int64Array) -> Float64Array:
        """Anomaly scores of every sample of the ``which`` slots; the batch's highest."""
        s = self.s
        out = np.zeros(len(which))
        rules = s.rule[which]
        for r in np.unique(rules).tolist():
            rule = self._rules[r]
            assert rule is not None, "BUG: slot of a removed rule touched"
            method = rule.condition.method
            scorer = self._scorers.setdefault(method, StreamingScorer(method))
            mine = which[rules == r]
            pick = np.isin(slot, mine)
            scores = scorer.update_batch(slot[pick], val[pick])
            best = np.zeros(s.n)
            np.maximum.at(best, slot[pick], scores)
            out[rules == r] = best[mine]
        return out

    def _breach(self, slots: Int64Array) -> np.ndarray:
        return self._compare(slots, self.s.value[slots])

    def _compare(self, slots: Int64Array, value: Float64Array) -> np.ndarray:
        """Whether each value breaches its slot's condition (a firing slot with a clear
        threshold is held to that: hysteresis)."""
        s = self.s
        thr = np.where(s.firing[slots] & ~np.isnan(s.clear_thr[slots]), s.clear_thr[slots],
                       s.threshold[slots])
        op = s.op[slots]
        out = np.zeros(len(slots), bool)
        for code, fn in enumerate(_CMP):
            m = op == code
            if m.any():
                out[m] = fn(value[m], thr[m])
        breach: np.ndarray = out & np.isfinite(value)
        return breach

    def _advance(self, idx: Int64Array, breach: np.ndarray, now_ms: int) -> list[Transition]:
        """The state machine of each slot in ``idx``: inactive -> pending (breaching for
        less than for_ms) -> firing -> clearing (for keep_firing_for) -> inactive."""
        s = self.s
        firing = s.firing[idx].copy()
        s.breaching[idx] = breach
        s.pending[idx[~firing & breach & (s.pending[idx] < 0)]] = now_ms
        s.pending[idx[~breach]] = -1
        s.hold[idx[~breach]] = False
        fire = ~firing & breach & (now_ms - s.pending[idx] >= s.for_ms[idx]) & ~s.hold[idx]
        s.clear[idx[firing & breach]] = -1
        s.clear[idx[firing & ~breach & (s.clear[idx] < 0)]] = now_ms
        resolve = firing & ~breach & (now_ms - s.clear[idx] >= s.keep_ms[idx])
        fired, resolved = idx[fire], idx[resolve]
        s.firing[fired], s.pending[fired], s.since[fired] = True, -1, now_ms
        s.firing[resolved], s.clear[resolved], s.since[resolved] = False, -1, now_ms
        s.clear[fired] = -1
        return [self._transition(int(i), True, now_ms) for i in fired.tolist()] + [
            self._transition(int(i), False, now_ms) for i in resolved.tolist()]

    def _transition(self, slot: int, firing: bool, now_ms: int) -> Transition:
        rule = self._rules[int(self.s.rule[slot])]
        assert rule is not None, "BUG: transition of a removed rule's slot"
        t = Transition(rule, self._keys[slot], self._fps[slot], firing,
                       float(self.s.value[slot]), now_ms)
        self.recent[rule.id].append({
            "at_ms": now_ms, "event": "fired" if firing else "resolved",
            "labels": self._keys[slot].label_dict(), "value": t.value})
        return t

    def tick(self, now_ms: int) -> list[Transition]:
        """Time-driven transitions: for-durations met, absences, keep-firing-for over."""
        s = self.s
        n = s.n
        live = s.rule[:n] >= 0
        absent = np.flatnonzero(live & (s.kind[:n] == _ABSENCE) & (s.seen_ms[:n] >= 0))
        out: list[Transition] = []
        if len(absent):
            s.value[absent] = (now_ms - s.seen_ms[absent]) / 1000.0
            s.eval_ms[absent] = now_ms
            out += self._advance(absent, self._breach(absent), now_ms)
        timed = np.flatnonzero(live & (s.kind[:n] != _ABSENCE) & (
            (s.pending[:n] >= 0) | (s.clear[:n] >= 0)))
        if len(timed):
            out += self._advance(timed, s.breaching[timed].copy(), now_ms)
        return out

    def set_values(self, rule_id: str, values: Mapping[SeriesKey, float], now_ms: int
                   ) -> list[Transition]:
        """Values computed outside the stream (forecast breach probabilities)."""
        i = self._ridx.get(rule_id, -1)
        rule = self._rules[i] if i >= 0 else None
        if rule is None or not values:
            return []
        idx = np.asarray([self._slot(i, rule, k) for k in values], np.int64)
        self.s.value[idx] = np.fromiter(values.values(), np.float64, len(values))
        self.s.eval_ms[idx] = self.s.seen_ms[idx] = now_ms
        return self._advance(idx, self._breach(idx), now_ms)

    def hold(self, fp: str) -> None:
        """Resolved by hand: stop firing, and fire again only after the condition clears."""
        slot = self._by_fp.get(fp)
        if slot is not None:
            s = self.s
            s.firing[slot], s.hold[slot], s.clear[slot], s.pending[slot] = False, True, -1, -1

    # ------------------------------------------------------------------ explain
    def explain(self, rule_id: str, now_ms: int, limit: int = 100) -> list[dict[str, object]]:
        """The latest evaluation of each series of the rule, most severe first."""
        i = self._ridx.get(rule_id, -1)
        rule = self._rules[i] if i >= 0 else None
        if rule is None:
            return []
        s = self.s
        slots = np.flatnonzero(s.rule[: s.n] == i)
        order = np.lexsort((-np.nan_to_num(s.value[slots], nan=-np.inf),
                            ~s.breaching[slots], ~s.firing[slots]))
        return [_explain_slot(rule, self._keys[j], s, j, now_ms)
                for j in slots[order][:limit].tolist()]


def _matches(rule: Rule, key: SeriesKey) -> bool:
    labels = dict(key.labels)
    return all(m.matches(labels.get(m.label)) for m in rule.matchers)


def _aggregate(s: _Slots, slots: Int64Array, mask: np.ndarray) -> Float64Array:
    cnt = np.where(mask, s.r_cnt[slots], 0).sum(axis=1)
    total = np.where(mask, s.r_sum[slots], 0.0).sum(axis=1)
    mn = np.where(mask, s.r_min[slots], np.inf).min(axis=1)
    mx = np.where(mask, s.r_max[slots], -np.inf).max(axis=1)
    lts = np.where(mask, s.r_lts[slots], -1)
    last = s.r_last[slots][np.arange(len(slots)), lts.argmax(axis=1)]
    with np.errstate(divide="ignore", invalid="ignore"):
        by_agg = np.stack([total / cnt, mn, mx, total, cnt.astype(np.float64), last])
    out: Float64Array = np.where(cnt > 0, by_agg[s.agg[slots], np.arange(len(slots))], np.nan)
    return out


def _explain_slot(rule: Rule, key: SeriesKey, s: _Slots, j: int, now_ms: int
                  ) -> dict[str, object]:
    c = rule.condition
    value = float(s.value[j])
    firing, breaching = bool(s.firing[j]), bool(s.breaching[j])
    what = {"threshold": "value", "change": "% change", "absence": "seconds without data",
            "anomaly": "anomaly score", "forecast": "crossing probability"}[c.kind]
    limit = c.probability if c.kind == "forecast" else c.threshold
    op = ">=" if c.kind in ("absence", "anomaly", "forecast") else c.op
    test = f"{what} {value:.6g} {op} {limit:.6g} is {'true' if breaching else 'false'}"
    if s.eval_ms[j] < 0:
        state, reason = "inactive", "not evaluated yet: no sample since the rule was loaded"
    elif firing and s.clear[j] >= 0:
        state = "firing"
        reason = (f"{test}; cleared {(now_ms - s.clear[j]) / 1000:.0f} s ago, firing until "
                  f"keep_firing_for_s {c_s(rule.keep_firing_for_ms)} has passed")
    elif firing:
        state, reason = "firing", f"{test}; firing since {format_ms(int(s.since[j]))}"
    elif s.hold[j]:
        state, reason = "held", f"{test}; resolved by hand, fires again once it clears"
    elif s.pending[j] >= 0:
        state = "pending"
        reason = (f"{test} for {(now_ms - s.pending[j]) / 1000:.0f} s of for_s "
                  f"{c_s(c.for_ms)}")
    else:
        state, reason = "inactive", test
    return {"labels": key.label_dict(), "value": None if np.isnan(value) else value,
            "threshold": limit, "op": op, "breaching": breaching, "state": state,
            "evaluated_ms": int(s.eval_ms[j]) if s.eval_ms[j] >= 0 else None,
            "reason": reason}


def c_s(ms: int) -> str:
    return f"{ms / 1000:g}"
