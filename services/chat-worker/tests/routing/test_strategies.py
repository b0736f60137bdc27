"""How each strategy ranks a model's deployments, on a fixed view of the fleet."""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field

from lobe.chat_worker.deployments import Deployment, RoutedModel
from lobe.chat_worker.policies import Strategy
from lobe.chat_worker.routing.strategies import Demand, rank, weighted_order

DEMAND = Demand(prompt_tokens=1000, output_tokens=200)


@dataclass
class View:
    in_flight_of: dict[str, int] = field(default_factory=dict)
    ttft_of: dict[str, float] = field(default_factory=dict)
    price_of: dict[str, tuple[float, float]] = field(default_factory=dict)
    headroom_of: dict[str, float] = field(default_factory=dict)

    def in_flight(self, deployment: Deployment) -> int:
        return self.in_flight_of.get(deployment.name, 0)

    def ttft_ms(self, deployment: Deployment) -> float | None:
        return self.ttft_of.get(deployment.name)

    def price_per_token(self, deployment: Deployment, model: RoutedModel) -> tuple[float, float] | None:
        return self.price_of.get(deployment.name)

    def headroom(self, deployment: Deployment) -> float:
        return self.headroom_of.get(deployment.name, 1.0)


def model(strategy: Strategy, *weights: int, explore: float = 0.1) -> RoutedModel:
    deployments = [Deployment(name=f"d{i}", provider="mock", weight=w) for i, w in enumerate(weights)]
    return RoutedModel(name="m", deployments=deployments, strategy=strategy, explore=explore)


def names(ranked: list[Deployment]) -> list[str]:
    return [d.name for d in ranked]


def test_ordered_keeps_the_file_order() -> None:
    assert names(rank(model("ordered", 1, 5, 1), View(), DEMAND, random.Random(1))) == ["d0", "d1", "d2"]


def test_weighted_first_picks_follow_the_weights_and_standbys_come_last() -> None:
    rng = random.Random(7)
    deployments = model("weighted", 3, 1, 0).deployments
    firsts = Counter(weighted_order(deployments, rng)[0].name for _ in range(20_000))
    assert firsts["d2"] == 0
    assert abs(firsts["d0"] / 20_000 - 0.75) < 0.01
    assert all(weighted_order(deployments, rng)[-1].name == "d2" for _ in range(100))


def test_least_in_flight_puts_the_emptiest_first() -> None:
    view = View(in_flight_of={"d0": 4, "d1": 1, "d2": 2})
    assert names(rank(model("least_in_flight", 1, 1, 1), view, DEMAND, random.Random(1))) == [
        "d1",
        "d2",
        "d0",
    ]


def test_lowest_latency_measures_the_unmeasured_first_then_ranks_by_average() -> None:
    view = View(ttft_of={"d0": 300.0, "d2": 80.0})
    assert names(rank(model("lowest_latency", 1, 1, 1, explore=0), view, DEMAND, random.Random(1))) == [
        "d1",
        "d2",
        "d0",
    ]


def test_lowest_latency_explores_about_the_configured_share() -> None:
    view = View(ttft_of={"d0": 50.0, "d1": 500.0})
    rng = random.Random(3)
    firsts = Counter(
        names(rank(model("lowest_latency", 1, 1, explore=0.2), view, DEMAND, rng))[0] for _ in range(5000)
    )
    assert abs(firsts["d1"] / 5000 - 0.2) < 0.02


def test_lowest_cost_weighs_the_requests_own_prompt_and_output_and_puts_unknown_prices_last() -> None:
    # d0 is cheap to read and dear to write, d1 the reverse; d2 has no price yet.
    view = View(price_of={"d0": (1e-6, 40e-6), "d1": (5e-6, 5e-6)})
    long_prompt = Demand(prompt_tokens=50_000, output_tokens=100)
    long_answer = Demand(prompt_tokens=100, output_tokens=4000)
    ranked = rank(model("lowest_cost", 1, 1, 1), view, long_prompt, random.Random(1))
    assert names(ranked) == ["d0", "d1", "d2"]
    assert names(rank(model("lowest_cost", 1, 1, 1), view, long_answer, random.Random(1))) == [
        "d1",
        "d0",
        "d2",
    ]


def test_headroom_puts_the_largest_free_share_first() -> None:
    view = View(headroom_of={"d0": 0.1, "d1": 0.7, "d2": 0.4})
    assert names(rank(model("headroom", 1, 1, 1), view, DEMAND, random.Random(1))) == ["d1", "d2", "d0"]
