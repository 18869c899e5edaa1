"""In-process publish/subscribe: what happened (a sample stored, an alarm
raised, a unit changed) reaches whoever listens (live displays, mail)
without the publisher knowing them.

Subscribers run synchronously on the loop thread, so they must be quick;
one that raises is logged and the others still run.
"""

import logging

log = logging.getLogger("texmate_ds.events")


class Bus:
    def __init__(self):
        self._subscribers = {}

    def subscribe(self, topic, fn):
        self._subscribers.setdefault(topic, []).append(fn)

    def unsubscribe(self, topic, fn):
        self._subscribers.get(topic, []).remove(fn)

    def publish(self, topic, **data):
        for fn in list(self._subscribers.get(topic, ())):
            try:
                fn(**data)
            except (KeyboardInterrupt, SystemExit):
                raise
            except Exception:
                log.exception("subscriber %r to %s failed", fn, topic)
