"""The alerting service: rules, channels, silences and alerts of every tenant, evaluated
on the ingest stream.

The pipeline hands each committed batch to ``offer``, which only enqueues (bounded; a
full queue drops the batch for evaluation and counts it), so alerting never slows
ingestion. One thread evaluates batches and ticks once a ``tick_ms``; forecast rules run
on a thread of their own because a fit takes long. Everything that changes state holds
``_lock``; API calls take it too.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from typing import Any

import numpy as np

from vigil.alerting import lifecycle
from vigil.alerting.channels import Channel, parse_channel, restore_secrets
from vigil.alerting.fields import Fields
from vigil.alerting.incidents import incidents
from vigil.alerting.lifecycle import Alert, Silence, StateStore
from vigil.alerting.replay import Firing, Replay
from vigil.alerting.rules import Rule, parse_rule
from vigil.alerting.rules_file import RulesFile
from vigil.alerting.tenant import Deliver, Stats, TenantAlerting
from vigil.analytics.capacity import time_to_threshold
from vigil.core.errors import Conflict, InvalidInput, NotFound, Problem
from vigil.core.timeutil import now_ms
from vigil.core.types import Float64Array, Int32Array, Int64Array, SampleBatch, SeriesKey

log = logging.getLogger(__name__)

# (tenant, rule) -> series of the rule over its lookback: (key, times ms, values)
History = Callable[[str, Rule, int, int], list[tuple[SeriesKey, Int64Array, Float64Array]]]
KnownSeries = Callable[[str, Rule], list[SeriesKey]]
# (tenant, rule, start, end) -> raw samples of the rule's series: keys, key index, t, v
Samples = Callable[[str, Rule, int, int],
                   tuple[list[SeriesKey], Int64Array, Int64Array, Float64Array]]


_DRAIN = 64  # batches evaluated together at most, when they queued up


class AlertingService:
    def __init__(
        self,
        state: StateStore,
        deliver: Deliver,
        *,
        known_series: KnownSeries = lambda tenant, rule: [],
        history: History | None = None,
        samples: Samples | None = None,
        publish: Callable[[str, Mapping[str, object]], None] = lambda topic, msg: None,
        clock: Callable[[], int] = now_ms,
        tick_ms: int = 1000,
        queue_batches: int = 1024,
    ) -> None:
        self._state = state
        self._deliver = deliver
        self._known = known_series
        self._history = history
        self._samples = samples
        self._publish = publish
        self._clock = clock
        self._tick_ms = tick_ms
        self._queue: queue.Queue[tuple[str, SampleBatch, Int32Array] | None] = queue.Queue(
            queue_batches)
        self._lock = threading.RLock()
        self._last_write: Future[int] | None = None
        self._tenants: dict[str, TenantAlerting] = {}
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()
        self.stats = Stats()
        self._load()

    # ------------------------------------------------------------------ set-up
    def _tenant(self, tenant: str) -> TenantAlerting:
        t = self._tenants.get(tenant)
        if t is None:
            t = self._tenants[tenant] = TenantAlerting(tenant, self._state, self._deliver,
                                                       self._publish, self.stats)
        return t

    def _load(self) -> None:
        """Rules, channels, silences and active alerts of every tenant, as stored."""
        now = self._clock()
        for tenant in self._state.tenants():
            t = self._tenant(tenant)
            for doc in self._state.docs(tenant, "channel"):
                t.channels[doc["name"]] = parse_channel(doc)
            for doc in self._state.docs(tenant, "silence"):
                s = lifecycle.silence_from_doc(doc)
                t.silences[s.id] = s
            for doc in self._state.alerts(tenant, active=True):
                a = Alert.from_dict(doc)
                t.active[a.fingerprint] = a
            for doc in self._state.docs(tenant, "rule"):
                self._install(tenant, t, parse_rule(doc, rule_id=doc["id"]), now)
            for a in t.active.values():
                rule = t.rules.get(a.rule_id)
                if rule is not None:
                    t.grouper.restore(a, rule)

    def _install(self, tenant: str, t: TenantAlerting, rule: Rule, now: int) -> None:
        t.rules[rule.id] = rule
        t.evaluator.set_rule(rule)
        t.evaluator.seed(rule.id, self._known(tenant, rule), now)
        if rule.condition.kind == "forecast":
            t.forecast_due[rule.id] = now
        else:
            t.forecast_due.pop(rule.id, None)

    def start(self) -> None:
        for target, name in ((self._run, "vigil-alerting"), (self._run_forecasts,
                                                             "vigil-alert-forecast")):
            th = threading.Thread(target=target, name=name, daemon=True)
            th.start()
            self._threads.append(th)

    def close(self) -> None:
        self._stop.set()
        with contextlib.suppress(queue.Full):
            self._queue.put_nowait(None)
        for th in self._threads:
            th.join(10)
        with self._lock:
            for t in self._tenants.values():
                self._persist(t)
        self._state.close()  # commits what is queued

    # ------------------------------------------------------------------ stream
    def offer(self, tenant: str, batch: SampleBatch, series_ids: Int32Array) -> None:
        """The store's commit listener: never blocks; a full queue drops and counts."""
        if tenant not in self._tenants or not self._tenants[tenant].rules:
            return
        try:
            self._queue.put_nowait((tenant, batch, series_ids))
        except queue.Full:
            self.stats.batches_dropped += 1

    @property
    def queue_depth(self) -> int:
        return self._queue.qsize()

    def _run(self) -> None:
        next_tick = self._clock() + self._tick_ms
        while not self._stop.is_set():
            timeout = max(0.0, (next_tick - self._clock()) / 1000)
            try:
                items = [self._queue.get(timeout=timeout)]
            except queue.Empty:
                items = []
            while items and len(items) < _DRAIN:  # what piled up meanwhile: one pass
                try:
                    items.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            try:
                by_tenant: dict[str, list[tuple[SampleBatch, Int32Array]]] = {}
                for item in items:
                    if item is not None:
                        by_tenant.setdefault(item[0], []).append(item[1:])
                for tenant, pairs in by_tenant.items():
                    batches, ids = zip(*pairs, strict=True)
                    self.process(tenant, SampleBatch.concat(batches), series_ids=(
                        ids[0] if len(ids) == 1 else np.concatenate(ids)))
                if self._clock() >= next_tick:
                    self.tick()
                    next_tick = self._clock() + self._tick_ms
            except Exception:
                log.exception("alert evaluation failed")

    def process(self, tenant: str, batch: SampleBatch, now: int | None = None,
                series_ids: Int32Array | None = None) -> None:
        """Evaluate one committed batch and act on what fired or resolved; ``series_ids``
        (the store's, aligned with ``batch.series``) spare a look-up per series."""
        t0 = time.perf_counter()
        now = self._clock() if now is None else now
        with self._lock:
            t = self._tenant(tenant)
            transitions = t.evaluator.observe(batch, now, series_ids)
            t.apply(transitions, now)
            t.flush(now)
            self._persist(t)
        self.stats.batches_evaluated += 1
        self.stats.evaluation_seconds += time.perf_counter() - t0

    def tick(self, now: int | None = None) -> None:
        """Time-driven work: for-durations, absence, resolution, escalation, repeats."""
        now = self._clock() if now is None else now
        with self._lock:
            for t in self._tenants.values():
                t.apply(t.evaluator.tick(now), now)
                t.escalate(now)
                t.flush(now)
                self._persist(t)

    def _run_forecasts(self) -> None:
        while not self._stop.wait(self._tick_ms / 1000):
            try:
                self.run_forecasts()
            except Exception:
                log.exception("forecast rule evaluation failed")

    def run_forecasts(self, now: int | None = None) -> None:
        """Forecast-breach rules that are due: fit outside the lock, then apply."""
        if self._history is None:
            return
        now = self._clock() if now is None else now
        with self._lock:
            due = [(tenant, t.rules[rid]) for tenant, t in self._tenants.items()
                   for rid, at in t.forecast_due.items() if at <= now]
        for tenant, rule in due:
            c = rule.condition
            probs: dict[SeriesKey, float] = {}
            for key, ts, vs in self._history(tenant, rule, now - c.lookback_ms, now):
                if np.isfinite(vs).sum() < 4:
                    continue
                cap = time_to_threshold(vs, ts, c.threshold,
                                        direction="above" if c.op in (">", ">=") else "below",
                                        horizon=max(1, c.horizon_ms // c.step_ms),
                                        method="auto", n_paths=500)
                probs[key] = cap.probability
            with self._lock:
                t = self._tenant(tenant)
                if t.rules.get(rule.id) is not rule:
                    continue  # changed meanwhile
                t.forecast_due[rule.id] = now + c.every_ms
                t.apply(t.evaluator.set_values(rule.id, probs, now), now)
                t.flush(now)
                self._persist(t)

    def _persist(self, t: TenantAlerting) -> None:
        """Hand a tenant's changes to the store (under the lock: keeps their order)."""
        fut = t.persist()
        if fut is not None:
            self._last_write = fut

    def _sync(self) -> None:
        """Wait until every change handed to the store so far is durable: before an API
        answer about a change, and before reading alerts back (read your writes)."""
        fut = self._last_write
        if fut is not None:
            fut.result()

    # ------------------------------------------------------------------ rules
    def rules(self, tenant: str) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(r.doc or {}) for r in self._tenant(tenant).rules.values()]

    def rule(self, tenant: str, rule_id: str) -> Rule:
        with self._lock:
            rule = self._tenant(tenant).rules.get(rule_id)
        if rule is None:
            raise NotFound(f"no rule {rule_id!r}")
        return rule

    def put_rule(self, tenant: str, doc: object, rule_id: str | None = None,
                 *, create: bool = True) -> Rule:
        """Create (``create``) or replace a rule; channels must exist, names be unique."""
        rule = parse_rule(doc, rule_id=rule_id)
        with self._lock:
            t = self._tenant(tenant)
            exists = rule.id in t.rules
            if create and exists:
                raise Conflict(f"rule {rule.id!r} exists; PUT /api/v1/rules/{rule.id} "
                               "replaces it")
            if not create and not exists:
                raise NotFound(f"no rule {rule.id!r}")
            for i, ch in enumerate(rule.channels):
                if ch not in t.channels:
                    raise InvalidInput(Problem(
                        f"unknown channel {ch!r}; create it first with POST /api/v1/channels",
                        field=f"channels[{i}]"))
            for i, step in enumerate(rule.escalation):
                for j, ch in enumerate(step.channels):
                    if ch not in t.channels:
                        raise InvalidInput(Problem(f"unknown channel {ch!r}",
                                                   field=f"escalation[{i}].channels[{j}]"))
            for other in t.rules.values():
                if other.name == rule.name and other.id != rule.id:
                    raise Conflict(f"a rule named {rule.name!r} exists (id {other.id})")
            self._state.put(tenant, "rule", rule.id, dict(rule.doc or {}))
            self._install(tenant, t, rule, self._clock())
        return rule

    def delete_rule(self, tenant: str, rule_id: str) -> None:
        """Remove a rule; its active alerts resolve ("rule deleted")."""
        with self._lock:
            t = self._tenant(tenant)
            if rule_id not in t.rules:
                raise NotFound(f"no rule {rule_id!r}")
            now = self._clock()
            self._state.delete(tenant, "rule", rule_id)
            for a in [a for a in t.active.values() if a.rule_id == rule_id]:
                t.record(lifecycle.resolve(a, None, "rule deleted", now), "resolved", now)
            t.evaluator.remove_rule(rule_id)
            del t.rules[rule_id]
            t.forecast_due.pop(rule_id, None)
            self._persist(t)
        self._sync()

    def apply(self, tenant: str, rf: RulesFile) -> None:
        """Create or replace a rules file's channels, then its rules."""
        for ch in rf.channels:
            self.put_channel(tenant, ch.doc(), create=ch.name not in self._tenant(
                tenant).channels)
        for rule in rf.rules:
            self.put_rule(tenant, dict(rule.doc or {}), rule.id,
                          create=rule.id not in self._tenant(tenant).rules)

    def backfill_request(self, tenant: str, body: object) -> dict[str, object]:
        """``POST /api/v1/rules/backfill``: validate the request, replay, report."""
        d = Fields(body, "", ("rule_id", "rule", "start", "end", "step_s"))
        if d.has("rule_id") == d.has("rule"):
            raise InvalidInput(Problem("give rule_id or rule (not both)", field="rule"))
        rule = (self.rule(tenant, d.str_("rule_id")) if d.has("rule_id")
                else parse_rule(d.doc["rule"], rule_id="backfill"))
        end = d.time_ms("end", self._clock())
        start = d.time_ms("start", end - 86_400_000)
        step = d.ms("step_s", 10.0, hi=3600.0, positive=True)
        if start >= end or (end - start) // step > 2_000_000:
            raise InvalidInput(Problem("start must be before end, and (end - start) / step_s "
                                       "at most 2,000,000", field="start"))
        firings, series, samples = self.backfill(tenant, rule, start, end, step)
        return {"rule": dict(rule.doc or {}), "start_ms": start, "end_ms": end,
                "series": series, "samples": samples,
                "alerts": [f.as_dict() for f in firings]}

    def backfill(self, tenant: str, rule: Rule, start_ms: int, end_ms: int, step_ms: int
                 ) -> tuple[list[Firing], int, int]:
        """When ``rule`` would have fired over stored samples in ``[start, end)``; changes
        nothing. Returns the firings, series and samples replayed."""
        if self._samples is None:
            raise InvalidInput(Problem("no stored samples to replay here", field="rule"))
        keys, idx, ts, vs = self._samples(tenant, rule, start_ms, end_ms)
        replay = Replay([rule])
        replay.run(keys, idx, ts, vs, step_ms, end_ms)
        return replay.firings(), len(keys), len(ts)

    def explain(self, tenant: str, rule_id: str) -> dict[str, object]:
        rule = self.rule(tenant, rule_id)
        now = self._clock()
        with self._lock:
            ev = self._tenant(tenant).evaluator
            return {"rule": dict(rule.doc or {}), "now_ms": now,
                    "series": ev.explain(rule_id, now),
                    "recent": list(ev.recent.get(rule_id, ()))[::-1]}

    # ------------------------------------------------------------------ channels
    def channels(self, tenant: str) -> list[dict[str, object]]:
        with self._lock:
            return [c.public_dict() for c in self._tenant(tenant).channels.values()]

    def channel(self, tenant: str, name: str) -> Channel | None:
        """The dispatcher's lookup, at send time. Without the lock: a dict read is atomic,
        and delivery must not wait behind evaluation."""
        t = self._tenants.get(tenant)
        return None if t is None else t.channels.get(name)

    def put_channel(self, tenant: str, doc: Mapping[str, object], name: str | None = None,
                    *, create: bool = True) -> Channel:
        """Create (``create``) or replace a channel; a replacement may send back the
        ``***`` that GET shows for a secret, which keeps the stored one."""
        if name is not None:
            doc = {**doc, "name": name}
        with self._lock:
            t = self._tenant(tenant)
            previous = t.channels.get(str(doc.get("name")))
            ch = parse_channel(doc if previous is None else restore_secrets(doc, previous))
            if create and previous is not None:
                raise Conflict(f"channel {ch.name!r} exists; PUT /api/v1/channels/{ch.name} "
                               "replaces it")
            if not create and previous is None:
                raise NotFound(f"no channel {ch.name!r}")
            self._state.put(tenant, "channel", ch.name, ch.doc())
            t.channels[ch.name] = ch
        return ch

    def delete_channel(self, tenant: str, name: str) -> None:
        with self._lock:
            t = self._tenant(tenant)
            if name not in t.channels:
                raise NotFound(f"no channel {name!r}")
            users = sorted(r.name for r in t.rules.values() if name in r.channels or any(
                name in s.channels for s in r.escalation))
            if users:
                raise Conflict(f"channel {name!r} is used by rules {', '.join(users)}; "
                               "change them first")
            self._state.delete(tenant, "channel", name)
            del t.channels[name]

    # ------------------------------------------------------------------ alerts
    def alerts(self, tenant: str, *, state: str | None = None, severity: str | None = None,
               rule: str | None = None, since_ms: int | None = None, limit: int = 1000
               ) -> list[dict[str, object]]:
        self._sync()
        docs = self._state.alerts(tenant, state=state, severity=severity, rule=rule,
                                  since_ms=since_ms, limit=limit)
        with self._lock:
            t = self._tenant(tenant)
            muted = t.muted(self._clock())
            silenced = list(t.silences.values())
        now = self._clock()
        for d in docs:
            a = Alert.from_dict(d)
            d["silenced"] = a.active and any(s.mutes(a.labels, now) for s in silenced)
            d["inhibited"] = a.active and not d["silenced"] and muted(a)
        return docs

    def alert(self, tenant: str, alert_id: str) -> dict[str, object]:
        self._sync()
        doc = self._state.alert(tenant, alert_id)
        if doc is None:
            raise NotFound(f"no alert {alert_id!r}")
        return doc

    def history(self, tenant: str, alert_id: str) -> list[dict[str, object]]:
        self.alert(tenant, alert_id)
        return self._state.events(tenant, "history", alert_id)

    def acknowledge(self, tenant: str, alert_id: str, by: str, comment: str | None) -> Alert:
        with self._lock:
            t = self._tenant(tenant)
            a = self._active(t, tenant, alert_id)
            now = self._clock()
            a = lifecycle.acknowledge(a, by, comment, now)
            t.record(a, "acknowledged", now, by, comment)
            self._persist(t)
        self._sync()
        return a

    def resolve(self, tenant: str, alert_id: str, by: str, comment: str | None) -> Alert:
        with self._lock:
            t = self._tenant(tenant)
            a = self._active(t, tenant, alert_id)
            now = self._clock()
            a = lifecycle.resolve(a, by, "by hand", now)
            t.evaluator.hold(a.fingerprint)
            t.record(a, "resolved", now, by, comment)
            t.flush(now)
            self._persist(t)
        self._sync()
        return a

    def _active(self, t: TenantAlerting, tenant: str, alert_id: str) -> Alert:
        for a in t.active.values():
            if a.id == alert_id:
                return a
        doc = self.alert(tenant, alert_id)  # 404 if unknown
        raise InvalidInput(Problem(f"alert {alert_id} is {doc['state']}", field="state"))

    # ------------------------------------------------------------------ silences
    def silences(self, tenant: str) -> list[dict[str, object]]:
        now = self._clock()
        with self._lock:
            return [{**s.as_dict(), "active": s.starts_ms <= now < s.ends_ms}
                    for s in self._tenant(tenant).silences.values()]

    def add_silence(self, tenant: str, doc: object) -> Silence:
        now = self._clock()
        s = lifecycle.parse_silence(doc, now)
        with self._lock:
            self._state.put(tenant, "silence", s.id, s.as_dict())
            t = self._tenant(tenant)
            t.silences[s.id] = s
        return s

    def delete_silence(self, tenant: str, silence_id: str) -> None:
        """Expire a silence; alerts it muted are notified at the next flush."""
        with self._lock:
            t = self._tenant(tenant)
            if silence_id not in t.silences:
                raise NotFound(f"no silence {silence_id!r}")
            self._state.delete(tenant, "silence", silence_id)
            del t.silences[silence_id]

    # ------------------------------------------------------------------ views
    def incidents(self, tenant: str) -> list[dict[str, object]]:
        with self._lock:
            return incidents(list(self._tenant(tenant).active.values()))

    def firing(self, tenant: str) -> dict[str, int]:
        """Active alerts by severity, from memory (cheap enough for a live view)."""
        with self._lock:
            t = self._tenants.get(tenant)
            counts: dict[str, int] = {}
            for a in t.active.values() if t is not None else ():
                counts[a.severity] = counts.get(a.severity, 0) + 1
            return counts

    def dead_letters(self, tenant: str, limit: int = 1000) -> list[dict[str, object]]:
        return self._state.events(tenant, "dead_letter", limit=limit)

    def dead_letter(self, tenant: str, record: Mapping[str, object]) -> None:
        """The dispatcher's callback after the last retry failed."""
        self._state.append_event(tenant, "dead_letter", str(record.get("channel", "")),
                                 self._clock(), dict(record))
