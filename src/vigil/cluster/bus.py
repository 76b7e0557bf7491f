"""An in-process publish/subscribe bus: alert events now, live updates later.

Subscribers are called on the publisher's thread, so they must be quick and never
block (hand work to a queue). A failing subscriber is logged and does not stop others.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping

log = logging.getLogger(__name__)

Message = Mapping[str, object]
Subscriber = Callable[[str, Message], None]


class LocalBus:
    """
    >>> bus, got = LocalBus(), []
    >>> unsubscribe = bus.subscribe("alerts", lambda topic, m: got.append(m["type"]))
    >>> bus.publish("alerts", {"type": "alert_triggered"}); unsubscribe()
    >>> bus.publish("alerts", {"type": "alert_resolved"}); got
    ['alert_triggered']
    """

    def __init__(self) -> None:
        self._subs: dict[str, list[Subscriber]] = {}
        self._lock = threading.Lock()

    def subscribe(self, topic: str, fn: Subscriber) -> Callable[[], None]:
        """Call ``fn(topic, message)`` for each message on ``topic``; returns the undo."""
        with self._lock:
            self._subs.setdefault(topic, []).append(fn)

        def unsubscribe() -> None:
            with self._lock:
                subs = self._subs.get(topic, [])
                if fn in subs:
                    subs.remove(fn)

        return unsubscribe

    def publish(self, topic: str, message: Message) -> None:
        with self._lock:
            subs = list(self._subs.get(topic, ()))
        for fn in subs:
            try:
                fn(topic, message)
            except Exception:
                log.exception("bus subscriber failed", extra={"topic": topic})
