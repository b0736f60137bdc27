"""Where the gateway still imports publish_fact from (pending its move onto lobe.shared.bus; see
shared/tests/test_one_bus.py). Everything else uses lobe.shared.bus."""

from lobe.shared.bus.facts import publish_fact

__all__ = ["publish_fact"]
