"""The mock models every suite test routes: answers at full speed, slowly, and stalling."""

from __future__ import annotations

from pathlib import Path

import yaml

from lobe.chat_worker.deployments import Deployment, ModelCatalog, RoutedModel

SLOW_MOCK_DELAY_S = 0.2
STALL_MOCK_DELAY_S = 1.5
MOCK_DELAYS = {"mock": None, "mock-slow": SLOW_MOCK_DELAY_S, "mock-stall": STALL_MOCK_DELAY_S}


def mock_models() -> ModelCatalog:
    """An in-process worker's routing."""
    return ModelCatalog(
        models=[
            RoutedModel(name=name, deployments=[Deployment(name=name, provider="mock", chunk_delay_s=delay)])
            if delay is not None
            else RoutedModel(name=name, deployments=[Deployment(name=name, provider="mock")])
            for name, delay in MOCK_DELAYS.items()
        ]
    )


def write_mock_models(path: Path) -> Path:
    """A worker process's routing: the same models as a MODELS_FILE."""
    models = [
        {
            "name": name,
            "deployments": [{"name": name, "provider": "mock"} | ({"chunk_delay_s": delay} if delay else {})],
        }
        for name, delay in MOCK_DELAYS.items()
    ]
    path.write_text(yaml.safe_dump({"models": models}))
    return path
