"""Feeds a running server with demo data: a day of history, then live samples and task
executions."""

from __future__ import annotations

import logging
import threading

from vigil import demo, demo_alerts, demo_tasks
from vigil.app import Components
from vigil.core.timeutil import now_ms

log = logging.getLogger(__name__)
INTERVAL_MS = 10_000
TASKS_PER_HOUR = 240.0


def start_demo(c: Components, stop: threading.Event) -> threading.Thread:
    """Backfill the last 24 h of metrics (48 h of task executions) if the default tenant
    has none, then write a sample per series and the executions started meanwhile every
    10 s until ``stop`` is set."""
    tenant = c.settings.default_tenant

    def run() -> None:
        now = now_ms() // INTERVAL_MS * INTERVAL_MS
        if not c.store.find_series(tenant, "cpu_usage_percent"):
            start = now - demo.DAY_MS
            for lo in range(start, now, 3_600_000):
                c.pipeline.write_sync(tenant, demo.generate(tenant, lo, min(lo + 3_600_000, now),
                                                            INTERVAL_MS), "demo")
            log.info("demo history written", extra={"tenant": tenant})
        if c.tasks.store.count(tenant)[0] == 0:
            c.tasks.submit(tenant, demo_tasks.generate(
                tenant, now - 2 * demo.DAY_MS, now, TASKS_PER_HOUR)).result()
        demo_alerts.install(c.alerting, tenant)  # after the history: live data fires them
        last = now
        while not stop.wait(max(0.0, (last + INTERVAL_MS - now_ms()) / 1000)):
            t = now_ms() // INTERVAL_MS * INTERVAL_MS
            if t > last:
                try:
                    c.pipeline.write_sync(tenant, demo.generate(tenant, last + 1, t + 1,
                                                                INTERVAL_MS), "demo")
                    c.tasks.submit(tenant, demo_tasks.generate(
                        tenant, last + 1, t + 1, TASKS_PER_HOUR, in_flight=False)).result()
                except Exception:
                    log.exception("demo write failed")
                last = t

    thread = threading.Thread(target=run, name="vigil-demo", daemon=True)
    thread.start()
    return thread
