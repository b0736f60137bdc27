"""The order in which one request tries a model's deployments, per the model's strategy.

A strategy only ranks: deployments whose breaker is open or whose window is full are skipped when
the request reaches them, so every strategy falls back through the rest. Ties are broken by
weight (a weighted random draw), so equal deployments share the load.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Protocol

from lobe.chat_worker.deployments import Deployment, RoutedModel


class RoutingView(Protocol):
    """What the fleet knows about a deployment now (lobe.chat_worker.routing.router)."""

    def in_flight(self, deployment: Deployment) -> int: ...

    def ttft_ms(self, deployment: Deployment) -> float | None: ...

    def price_per_token(self, deployment: Deployment, model: RoutedModel) -> tuple[float, float] | None: ...

    def headroom(self, deployment: Deployment) -> float: ...


@dataclass(frozen=True)
class Demand:
    """What the request will use, for the cost estimate: its prompt and its output cap."""

    prompt_tokens: int
    output_tokens: int


def weighted_order(deployments: list[Deployment], rng: random.Random) -> list[Deployment]:
    """A weighted random permutation (first pick with probability weight / total, and so on for
    the rest); weight-0 deployments are standbys, last, in file order."""
    active = [d for d in deployments if d.weight > 0]
    keys = {id(d): rng.random() ** (1.0 / d.weight) for d in active}
    return sorted(active, key=lambda d: keys[id(d)], reverse=True) + [d for d in deployments if d.weight == 0]


def rank(model: RoutedModel, view: RoutingView, demand: Demand, rng: random.Random) -> list[Deployment]:
    deployments = list(model.deployments)
    strategy = model.strategy
    if strategy == "ordered":
        return deployments
    shuffled = weighted_order(deployments, rng)  # the tie-break of every other strategy
    if strategy == "weighted":
        return shuffled
    if strategy == "least_in_flight":
        return sorted(shuffled, key=view.in_flight)
    if strategy == "headroom":
        return sorted(shuffled, key=lambda d: -view.headroom(d))
    if strategy == "lowest_cost":
        return sorted(shuffled, key=lambda d: _cost(view.price_per_token(d, model), demand))
    return _lowest_latency(shuffled, view, model.explore, rng)


def _cost(price: tuple[float, float] | None, demand: Demand) -> float:
    if price is None:
        return float("inf")  # unknown prices rank last (stable sort: in weighted order)
    return demand.prompt_tokens * price[0] + demand.output_tokens * price[1]


def _lowest_latency(
    deployments: list[Deployment], view: RoutingView, explore: float, rng: random.Random
) -> list[Deployment]:
    # Unmeasured deployments first (each gets measured once), then by average time to first token;
    # a share `explore` of requests starts elsewhere, so a slow deployment that got faster is seen.
    ranked = sorted(deployments, key=lambda d: -1.0 if (t := view.ttft_ms(d)) is None else t)
    if len(ranked) > 1 and rng.random() < explore:
        ranked.insert(0, ranked.pop(rng.randrange(1, len(ranked))))
    return ranked
