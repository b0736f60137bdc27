"""One idiom for the bus: no module outside lobe.shared.bus subscribes, requests or publishes to
JetStream on NATS directly, and none runs a FastStream handler (docs/architecture.md, "The bus:
one idiom"). What still does is listed in DIRECT_NATS, with why; the list only shrinks."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BUS = ROOT / "shared/src/lobe/shared/bus"

# Calls that use NATS past the bus: a subscription, a request, a FastStream handler, a JetStream
# publish (on a name ending in `js`, or on `.jetstream()` itself).
SUBSCRIBING = {"subscribe", "pull_subscribe", "subscriber", "request"}
DIRECT_NATS: dict[str, str] = {
    # FastStream renders the AsyncAPI document from a broker that never connects.
    "shared/src/lobe/shared/catalog/asyncapi.py": "AsyncAPI rendering only: a documentation broker",
    # Routing counters are JetStream KV increments (Nats-Incr), not facts of the catalog.
    "services/chat-worker/src/lobe/chat_worker/routing/store.py": "KV counters, not catalogued facts",
}


def direct_uses(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), str(path))
    return sorted(_uses(tree), key=lambda use: int(use.split(":")[0]))


def _uses(tree: ast.AST) -> list[str]:
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("faststream"):
            found.append(f"{node.lineno}: from {node.module} import")
        elif isinstance(node, ast.Import) and any(a.name.startswith("faststream") for a in node.names):
            found.append(f"{node.lineno}: import faststream")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            name, receiver = node.func.attr, node.func.value
            if name in SUBSCRIBING and not _is_http(receiver) and not _is_bus(receiver):
                found.append(f"{node.lineno}: .{name}(")
            elif name == "publish" and _is_jetstream(receiver):
                found.append(f"{node.lineno}: JetStream publish")
    return found


def _name(node: ast.expr) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return ""


def _is_http(receiver: ast.expr) -> bool:
    # aiohttp's session.request(...) is HTTP, not NATS.
    return _name(receiver) in {"session", "http", "client_session"}


def _is_bus(receiver: ast.expr) -> bool:
    # The bus layer's own calls (`self.bus.request(entry, ...)`) are the idiom, not a way round it.
    return _name(receiver).endswith("bus")


def _is_jetstream(receiver: ast.expr) -> bool:
    if isinstance(receiver, ast.Call):
        return _name(receiver.func) == "jetstream"
    return _name(receiver).endswith("js")


def modules() -> list[Path]:
    roots = [ROOT / "shared/src", *sorted((ROOT / "services").glob("*/src"))]
    return [p for root in roots for p in sorted(root.rglob("*.py")) if BUS not in p.parents]


def test_no_module_outside_the_bus_uses_nats_directly() -> None:
    offenders = {
        str(path.relative_to(ROOT)): uses
        for path in modules()
        if (uses := direct_uses(path)) and str(path.relative_to(ROOT)) not in DIRECT_NATS
    }
    assert offenders == {}, "use lobe.shared.bus (docs/architecture.md), or list the module in DIRECT_NATS"


def test_every_listed_exception_still_uses_nats_directly() -> None:
    # A module that moved onto the bus leaves the list, so the list says what is left.
    stale = [module for module in DIRECT_NATS if not direct_uses(ROOT / module)]
    assert stale == []


def test_the_check_sees_each_kind_of_direct_use(tmp_path: Path) -> None:
    source = """
import faststream
from faststream.nats import NatsBroker
async def f(nc, js, broker):
    await nc.subscribe("s", cb=None)
    await nc.request("s", b"")
    await js.publish("s", b"")
    await nc.jetstream().publish("s", b"")
    broker.subscriber("s")
    await session.request("GET", "http://x")
    await self.bus.request("billing.price.quote", None, 1.0)
"""
    path = tmp_path / "probe.py"
    path.write_text(source)
    uses = direct_uses(path)
    assert [u.split(": ", 1)[1] for u in uses] == [
        "import faststream",
        "from faststream.nats import",
        ".subscribe(",
        ".request(",
        "JetStream publish",
        "JetStream publish",
        ".subscriber(",
    ]
