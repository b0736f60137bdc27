"""The first tier: this process's most recently used answers, bounded in bytes (the stored form)."""

from __future__ import annotations

import fnmatch
from collections import OrderedDict


class ByteLRU:
    def __init__(self, capacity_bytes: int) -> None:
        self.capacity = capacity_bytes
        self.size = 0
        self._entries: OrderedDict[str, tuple[bytes, float]] = OrderedDict()  # value, expires at

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: str, now: float) -> bytes | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry[1] <= now:
            self._remove(key)
            return None
        self._entries.move_to_end(key)
        return entry[0]

    def put(self, key: str, value: bytes, expires_at: float) -> None:
        if len(value) > self.capacity:
            return
        if key in self._entries:
            self._remove(key)
        self._entries[key] = (value, expires_at)
        self.size += len(value)
        while self.size > self.capacity:
            self._remove(next(iter(self._entries)))  # least recently used first

    def drop(self, pattern: str) -> int:
        """Remove every entry whose key matches the glob; returns how many."""
        doomed = [key for key in self._entries if fnmatch.fnmatchcase(key, pattern)]
        for key in doomed:
            self._remove(key)
        return len(doomed)

    def _remove(self, key: str) -> None:
        value, _ = self._entries.pop(key)
        self.size -= len(value)
