"""The routing file operators edit: the shipped example loads, a bad file names its field."""

from __future__ import annotations

from pathlib import Path
from typing import get_args

import pytest

from lobe.chat_worker.deployments import load_catalog
from lobe.chat_worker.policies import Strategy
from lobe.devtools.suite import ServiceFailed, start_worker
from lobe.shared.config_file import ConfigError

EXAMPLE = Path(__file__).resolve().parents[3] / "deploy" / "models.example.yaml"


def test_the_shipped_example_routes_every_provider_kind_and_keeps_mock() -> None:
    catalog = load_catalog(str(EXAMPLE))
    kinds = {d.provider for m in catalog.models for d in m.deployments}
    assert kinds == {"openai", "azure_openai", "anthropic", "gemini", "openai_compatible", "ollama", "mock"}
    assert catalog.get("mock") is not None
    assert [d.name for d in catalog.get("gpt-4o-mini").deployments] == [
        "openai-gpt-4o-mini",
        "azure-gpt-4o-mini",
    ]  # type: ignore[union-attr]


def test_the_shipped_example_shows_every_strategy_and_routing_knob() -> None:
    catalog = load_catalog(str(EXAMPLE))
    assert {m.strategy for m in catalog.models} == set(get_args(Strategy))
    assert any(m.fallbacks for m in catalog.models)
    assert any(m.context_fallback for m in catalog.models)
    assert any(m.retry.max_retries for m in catalog.models)
    deployments = [d for m in catalog.models for d in m.deployments]
    assert any(d.limits and d.limits.rpm and d.limits.tpm for d in deployments)
    assert any(d.limits and d.limits.window_s != 60 for d in deployments)
    assert any("breaker" in d.model_fields_set for d in deployments)


def test_a_deployment_without_its_base_url_is_rejected_naming_the_deployment_and_its_line(
    tmp_path: Path,
) -> None:
    bad = tmp_path / "models.yaml"
    bad.write_text("models:\n  - name: x\n    deployments:\n      - {name: d, provider: ollama}\n")
    with pytest.raises(ConfigError, match=r"models\.0\.deployments\.0 \(line 4\): .*needs base_url"):
        load_catalog(str(bad))


def test_an_unknown_provider_kind_is_rejected_naming_the_field_and_its_line(tmp_path: Path) -> None:
    bad = tmp_path / "models.yaml"
    bad.write_text("models:\n  - name: x\n    deployments:\n      - {name: d, provider: cohere}\n")
    with pytest.raises(ConfigError, match=r"models\.0\.deployments\.0\.provider \(line 4\): Input should be"):
        load_catalog(str(bad))


ROUTED = """\
models:
  - name: a
    strategy: weighted
    fallbacks: [b]
    context_fallback: big
    deployments:
      - {name: a1, provider: mock, weight: 3, limits: {rpm: 60, tpm: 1000}}
      - {name: a2, provider: mock, weight: 1, breaker: {failures: 3, cooldown_s: 5}}
  - name: b
    deployments:
      - {name: b1, provider: mock}
  - name: big
    deployments:
      - {name: big1, provider: mock}
"""


def test_strategies_limits_breakers_and_fallbacks_load(tmp_path: Path) -> None:
    path = tmp_path / "models.yaml"
    path.write_text(ROUTED)
    model = load_catalog(path).get("a")
    assert model is not None
    assert (model.strategy, model.fallbacks, model.context_fallback) == ("weighted", ["b"], "big")
    a1, a2 = model.deployments
    assert a1.limits is not None
    assert (a1.limits.requests, a1.limits.tokens) == (60, 1000)
    assert (a2.breaker.failures, a2.breaker.cooldown_s, a2.breaker.window_s) == (3, 5, 60)


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (
            ("fallbacks: [b]", "fallbacks: [nope]"),
            r"models\.0\.fallbacks\.0 \(line 4\): no other model is named 'nope'",
        ),
        (
            ("context_fallback: big", "context_fallback: a"),
            r"models\.0\.context_fallback \(line 5\): no other model",
        ),
        (
            ("{name: b1,", "{name: a1,"),
            r"models\.1\.deployments\.0\.name \(line 11\): deployment name 'a1' is used twice",
        ),
        (("name: big\n", "name: b\n"), r"models\.2\.name \(line 12\): model 'b' is listed twice"),
        (("weight: 3,", "weight: 0,"), None),
        (
            ("rpm: 60,", "rpm: 0,"),
            r"models\.0\.deployments\.0\.limits\.rpm \(line 7\): Input should be greater",
        ),
        (
            ("cooldown_s: 5", "cooldown: 5"),
            r"models\.0\.deployments\.1\.breaker\.cooldown \(line 8\): Extra inputs",
        ),
    ],
)
def test_a_bad_routing_file_names_each_bad_field_and_its_line(
    tmp_path: Path, edit: tuple[str, str], expected: str | None
) -> None:
    path = tmp_path / "models.yaml"
    path.write_text(ROUTED.replace(*edit))
    if expected is None:  # one weighted deployment with weight 0 is a standby: still valid
        assert load_catalog(path).get("a") is not None
        return
    with pytest.raises(ConfigError, match=expected):
        load_catalog(path)


def test_a_weighted_model_without_any_weight_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "models.yaml"
    path.write_text(ROUTED.replace("weight: 3,", "weight: 0,").replace("weight: 1,", "weight: 0,"))
    with pytest.raises(ConfigError, match=r"models\.0\.strategy \(line 3\): weighted needs a deployment"):
        load_catalog(path)


async def test_the_worker_refuses_to_start_with_a_bad_file_and_says_where(tmp_path: Path) -> None:
    bad = tmp_path / "models.yaml"
    bad.write_text("models:\n  - name: x\n    deployments:\n      - {name: d, provider: cohere}\n")
    with pytest.raises(ServiceFailed) as refused:
        await start_worker("nats://127.0.0.1:1", mode="process", models_file=bad)
    assert refused.value.exit_code == 1
    assert "models.0.deployments.0.provider (line 4)" in "\n".join(refused.value.tail)
