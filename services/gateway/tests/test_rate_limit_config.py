"""The operator's rate-limit file: the seed's numbers by default, a caller's tier resolved in one
order, and a bad file refused at start-up with the field named."""

from __future__ import annotations

from pathlib import Path

import pytest

from lobe.devtools.suite import ServiceFailed, start_gateway
from lobe.gateway.ratelimit.config import load_rate_limits
from lobe.gateway.settings import GatewaySettings
from lobe.shared.config_file import ConfigError
from lobe.shared.events.chat import Caller


def test_the_bundled_file_has_the_seeds_numbers_per_minute_and_per_ip() -> None:
    config = load_rate_limits()
    requests = {
        plan: config.limits_for(Caller(user_id="u", plan=plan)).requests
        for plan in ("free", "basic", "premium", "enterprise")
    }
    assert requests == {"free": 10, "basic": 100, "premium": 1000, "enterprise": 10000}
    assert config.limits_for(Caller(user_id="u")).window_s == 60
    assert (config.per_ip.requests, config.per_ip.window_s) == (100, 900)


def test_the_credentials_tier_wins_over_the_plan_when_the_file_knows_it() -> None:
    config = load_rate_limits()
    assert config.tier_of(Caller(user_id="u", plan="free", rate_tier="premium")) == "premium"
    assert config.tier_of(Caller(user_id="u", plan="basic", rate_tier="gold")) == "basic"
    assert config.tier_of(Caller(user_id="u", plan="no-such-plan")) == "free"


@pytest.mark.parametrize(
    ("text", "named"),
    [
        (
            "default_tier: gold\ntiers: {free: {requests: 1, tokens: 1}}\nper_ip: {requests: 1, window_s: 1}\n",
            "gold",
        ),
        (
            "default_tier: free\ntiers: {free: {requests: 0, tokens: 1}}\nper_ip: {requests: 1, window_s: 1}\n",
            "tiers.free.requests",
        ),
        (
            "default_tier: free\ntiers: {free: {requests: 1, tokens: 1}}\nplans: {pro: gold}\n"
            "per_ip: {requests: 1, window_s: 1}\n",
            "plans.pro",
        ),
        ("default_tier: free\ntiers: {free: {requests: 1, tokens: 1}}\n", "per_ip"),
    ],
)
def test_a_bad_file_is_refused_naming_what_to_fix(tmp_path: Path, text: str, named: str) -> None:
    path = tmp_path / "limits.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=named):
        load_rate_limits(path)


def test_the_file_comes_from_rate_limits_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "limits.yaml"
    path.write_text(
        "default_tier: t\ntiers: {t: {requests: 7, tokens: null}}\nper_ip: {requests: 1, window_s: 1}\n"
    )
    monkeypatch.setenv("RATE_LIMITS_FILE", str(path))
    assert load_rate_limits().limits_for(Caller(user_id="u")).requests == 7


def test_a_trusted_proxy_that_is_not_a_network_stops_start_up() -> None:
    with pytest.raises(ValueError, match=r"'10\.0\.0\.300/8' is not an IP address or CIDR network"):
        GatewaySettings(trusted_proxies="127.0.0.1, 10.0.0.300/8")


async def test_the_gateway_process_refuses_to_start_on_a_bad_file_naming_the_field(tmp_path: Path) -> None:
    path = tmp_path / "limits.yaml"
    path.write_text(
        "default_tier: free\ntiers: {free: {requests: -1, tokens: 1}}\nper_ip: {requests: 1, window_s: 1}\n"
    )
    with pytest.raises(ServiceFailed) as refused:
        await start_gateway("nats://127.0.0.1:1", mode="process", rate_limits_file=path)
    assert refused.value.exit_code == 2
    assert "tiers.free.requests" in "\n".join(refused.value.tail)
