"""Feeds a running server with demo data: a day of history, then live samples."""

from __future__ import annotations

import logging
import threading

from vigil import demo, demo_alerts
from vigil.app import Components
from vigil.core.timeutil import now_ms

log = logging.getLogger(__name__)
INTERVAL_MS = 10_000


def start_demo(c: Components, stop: threading.Event) -> threading.Thread:
    """Backfill the last 24 h if the default tenant has no demo data, then write a sample
    per series every 10 s until ``stop`` is set."""
    tenant = c.settings.default_tenant

    def run() -> None:
        now = now_ms() // INTERVAL_MS * INTERVAL_MS
        if not c.store.find_series(tenant, "cpu_usage_percent"):
            start = now - demo.DAY_MS
            for lo in range(start, now, 3_600_000):
                c.pipeline.write_sync(tenant, demo.generate(tenant, lo, min(lo + 3_600_000, now),
                                                            INTERVAL_MS), "demo")
            log.info("demo history written", extra={"tenant": tenant})
        demo_alerts.install(c.alerting, tenant)  # after the history: live data fires them
        last = now
        while not stop.wait(max(0.0, (last + INTERVAL_MS - now_ms()) / 1000)):
            t = now_ms() // INTERVAL_MS * INTERVAL_MS
            if t > last:
                try:
                    c.pipeline.write_sync(tenant, demo.generate(tenant, last + 1, t + 1,
                                                                INTERVAL_MS), "demo")
                except Exception:
                    log.exception("demo write failed")
                last = t

    thread = threading.Thread(target=run, name="vigil-demo", daemon=True)
    thread.start()
    return thread
