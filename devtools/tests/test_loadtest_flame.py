"""Reading a py-spy flame graph: each stack counts once per kind of work, however deep it matches."""

from __future__ import annotations

from pathlib import Path

import pytest

from lobe.devtools.loadtest.flame import shares


def rect(title: str, x: int, w: int, depth: int) -> str:
    return (
        f'<g><title>{title} ({w} samples, {w}.00%)</title><rect x="{x}%" y="{depth * 16}" width="{w}%" '
        f'height="15" fill="rgb(1,2,3)" fg:x="{x}" fg:w="{w}"/><text x="0" y="0"></text></g>'
    )


def test_shares_count_the_samples_under_matching_frames_once(tmp_path: Path) -> None:
    svg = tmp_path / "flame.svg"
    svg.write_text(
        "<svg>"
        + rect("main (app.py:1)", 0, 100, 0)
        + rect("send (app.py:5)", 0, 40, 1)
        + rect("_SelectorSocketTransport.write (asyncio/selector_events.py:1)", 0, 30, 2)
        + rect("_SelectorSocketTransport.write (asyncio/selector_events.py:1)", 10, 5, 3)  # nested: not twice
        + rect("_SelectorSocketTransport.write (asyncio/selector_events.py:1)", 60, 10, 1)
        + rect("uuid4 (uuid.py:723)", 90, 10, 1)
        + "</svg>"
    )
    found = shares(
        svg, {"writes": r"^_SelectorSocketTransport\.write", "ids": r"^uuid4 ", "none": r"^nothing"}
    )
    assert found == {"writes": pytest.approx(40.0), "ids": pytest.approx(10.0), "none": 0.0}


def test_socket_writes_are_found_under_uvloop_too(tmp_path: Path) -> None:
    # uvloop's transport write is C code: py-spy shows the Python frame that calls it.
    svg = tmp_path / "flame.svg"
    svg.write_text(
        "<svg>"
        + rect("main (app.py:1)", 0, 100, 0)
        + rect("Client._flusher (nats/aio/client.py:2363)", 0, 20, 1)
        + rect("StreamWriter.writelines (asyncio/streams.py:346)", 0, 20, 2)
        + rect("SseOutput.flush (gateway/outputs.py:77)", 20, 10, 1)
        + rect("StreamWriter._writelines (aiohttp/http_writer.py:116)", 20, 5, 2)
        + rect("StreamWriter.write (aiohttp/http_writer.py:203)", 25, 5, 2)  # its own work, not the write
        + rect("json_dumps (app.py:9)", 30, 10, 1)
        + "</svg>"
    )
    assert shares(svg)["socket writes (transport write)"] == pytest.approx(25.0)
