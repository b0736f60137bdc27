"""A bounded memory of recently counted request ids.

JetStream delivers at least once: a message counted but not acked (ack lost, ack wait expired,
process killed between the two) comes back. The stream already drops duplicate *publishes*
by Nats-Msg-Id; this drops duplicate *deliveries* seen by this process. A redelivery to another
replica or after a restart can still be counted twice: acceptable for metrics, because the
billing ledger, not Prometheus, is the exact record.
"""

from __future__ import annotations

from collections import OrderedDict


class RecentIds:
    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._ids: OrderedDict[str, None] = OrderedDict()

    def first_time(self, key: str) -> bool:
        """True the first time `key` is seen within the last `capacity` keys; remembers it."""
        if self.capacity == 0:
            return True
        if key in self._ids:
            self._ids.move_to_end(key)
            return False
        self._ids[key] = None
        if len(self._ids) > self.capacity:
            self._ids.popitem(last=False)
        return True

    def __len__(self) -> int:
        return len(self._ids)
