"""Bounded label values: Prometheus keeps one time series per label combination, forever.

`model` is what the client asked for, so a client could mint label values at will. The first
`limit` provider/model pairs are kept as they are; later ones are reported as model="other",
which keeps the series count bounded while the totals stay exact. Used wherever a series carries
the model: the metrics service's request counters, billing's cost counter.
"""

from __future__ import annotations

OTHER = "other"


class BoundedLabels:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._seen: set[tuple[str, str]] = set()
        self.folded = 0

    def model_labels(self, provider: str, model: str) -> tuple[str, str]:
        key = (provider, model)
        if key in self._seen:
            return key
        if len(self._seen) < self.limit:
            self._seen.add(key)
            return key
        self.folded += 1
        return provider, OTHER
