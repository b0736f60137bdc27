"""The catalog is complete and consistent with the event modules, the streams and the services."""

from __future__ import annotations

import ast
import importlib
import pkgutil
import re
import string
from pathlib import Path

import pytest

import lobe.shared.events
from lobe.shared.catalog import CATALOG, SERVICES, Delivery, lookup, subject
from lobe.shared.catalog.__main__ import DEFAULT_ROOT, generated_docs, stale
from lobe.shared.events.chat import CHAT_CANCEL, CHAT_REPLY, ChatCancelled
from lobe.shared.events.envelope import Event
from lobe.shared.events.streams import ALL_STREAMS
from lobe.shared.events.usage import UsageRecorded

SUBJECT_LIKE = re.compile(r"^[a-z][a-z_-]*(\.[a-z0-9_<>*-]+)+$|^[a-z][a-z_-]*\.>$")
NATS_CALLS = {"publish", "request", "subscribe", "subscriber", "publisher"}


def module_subject_constants() -> dict[str, str]:
    """Every module-level string constant in lobe.shared.events.* that looks like a subject."""
    found: dict[str, str] = {}
    for info in pkgutil.iter_modules(lobe.shared.events.__path__, "lobe.shared.events."):
        module = importlib.import_module(info.name)
        for name, value in vars(module).items():
            if name.isupper() and isinstance(value, str) and SUBJECT_LIKE.match(value):
                found[f"{info.name}.{name}"] = value
    return found


def covered(constant: str, value: str) -> bool:
    if constant.endswith("_PREFIX"):
        return any(e.is_pattern and e.subject.startswith(value + ".") for e in CATALOG)
    return any(e.subject == value or e.matches(value) for e in CATALOG)


def test_every_subject_constant_in_the_event_modules_is_in_the_catalog() -> None:
    constants = module_subject_constants()
    assert "lobe.shared.events.usage.USAGE_RECORDED" in constants  # the scan itself works
    missing = {name: value for name, value in constants.items() if not covered(name, value)}
    assert missing == {}, f"subjects defined in lobe.shared.events but missing from the catalog: {missing}"


def test_catalog_subjects_are_unique_and_named_by_convention() -> None:
    subjects = [e.subject for e in CATALOG]
    assert len(subjects) == len(set(subjects))
    for entry in CATALOG:
        assert SUBJECT_LIKE.match(entry.subject), entry.subject
        assert set(entry.producers) <= set(SERVICES), entry.subject
        assert {c.service for c in entry.consumers} <= set(SERVICES), entry.subject


def test_jetstream_entries_match_the_stream_specs_exactly() -> None:
    in_catalog = {(e.stream.name, e.subject) for e in CATALOG if e.stream is not None}
    in_streams = {(s.name, subject) for s in ALL_STREAMS for subject in s.subjects}
    assert in_catalog == in_streams


def test_only_jetstream_entries_have_a_msg_id_and_all_of_them_do() -> None:
    for entry in CATALOG:
        assert (
            (entry.delivery is Delivery.JETSTREAM) == (entry.stream is not None) == (entry.msg_id is not None)
        )


def test_msg_ids_of_one_stream_never_collide_across_subjects() -> None:
    """The duplicate window is per stream: equal ids on two subjects would drop one of them."""
    for stream in ALL_STREAMS:
        templates = [e.msg_id for e in CATALOG if e.stream == stream and e.msg_id != "{event_id}"]
        assert len(templates) == len(set(templates)), stream.name


def test_usage_recorded_msg_id_is_the_request_id() -> None:
    event = UsageRecorded.model_validate(
        {
            "request_id": "req-1",
            "user_id": "u",
            "provider": "openai",
            "deployment": "d",
            "model": "m",
            "usage": {"prompt_tokens": 1, "completion_tokens": 2},
            "status": "ok",
            "duration_ms": 5,
        }
    )
    assert lookup("usage.recorded").nats_msg_id(event) == "req-1"


def test_core_subjects_have_no_msg_id_to_format() -> None:
    with pytest.raises(ValueError, match="not published to JetStream"):
        lookup("chat.request").nats_msg_id(ChatCancelled(request_id="r"))


def test_msg_id_templates_only_name_fields_of_their_payload() -> None:
    for entry in CATALOG:
        if entry.msg_id is None:
            continue
        names = {name for _, name, _, _ in string.Formatter().parse(entry.msg_id) if name}
        assert names, entry.subject
        assert names <= set(entry.payload.model_fields), entry.subject


def test_request_reply_entries_are_commands() -> None:
    for entry in CATALOG:
        if entry.reply is not None:
            assert entry.delivery is Delivery.REQUEST_REPLY, entry.subject
            assert entry.kind == "command", entry.subject


def test_concrete_and_wildcard_subjects_resolve_to_their_entry() -> None:
    assert lookup(subject(CHAT_REPLY, request_id="abc", offer=2)).subject == "chat.reply.<request_id>.<offer>"
    assert lookup(subject(CHAT_CANCEL, worker_id="w-1")).subject == "chat.cancel.<worker_id>"
    assert lookup("chat.cancel.*").subject == "chat.cancel.<worker_id>"
    with pytest.raises(KeyError, match=r"chat\.unknown"):
        lookup("chat.unknown")


def test_subject_fills_a_catalogued_pattern_with_its_tokens() -> None:
    assert subject(CHAT_REPLY, request_id="abc", offer=2) == "chat.reply.abc.2"
    assert subject(CHAT_CANCEL, worker_id="host-1-42") == "chat.cancel.host-1-42"


def test_subject_refuses_an_uncatalogued_pattern() -> None:
    with pytest.raises(KeyError, match="not in the event catalog"):
        subject("chat.reply.<request_id>", request_id="abc")


@pytest.mark.parametrize(
    ("tokens", "error"),
    [
        ({"request_id": "abc"}, "takes tokens"),  # missing
        ({"request_id": "abc", "offer": 1, "extra": "x"}, "takes tokens"),  # extra
        ({"request_id": "a.b", "offer": 1}, "one subject token"),  # would add a token
        ({"request_id": "*", "offer": 1}, "one subject token"),  # a wildcard
        ({"request_id": ">", "offer": 1}, "one subject token"),
        ({"request_id": "a b", "offer": 1}, "one subject token"),
        ({"request_id": "", "offer": 1}, "one subject token"),
    ],
)
def test_subject_refuses_tokens_that_would_leave_the_pattern(tokens: dict[str, object], error: str) -> None:
    with pytest.raises(ValueError, match=error):
        subject(CHAT_REPLY, **tokens)  # type: ignore[arg-type]


def test_schema_version_is_the_models_default() -> None:
    for entry in CATALOG:
        if isinstance(entry.payload, type) and issubclass(entry.payload, Event):
            assert entry.schema_version == entry.payload.model_fields["schema_version"].default


def inline_subjects(source: Path) -> list[tuple[int, str]]:
    """Subjects passed to a NATS publish/subscribe call as a literal, or built inline (an f-string
    or any other expression that is not a name: reported as `<built inline>`)."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source.read_text(), str(source))):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        if node.func.attr not in NATS_CALLS:
            continue
        args = [*node.args[:1], *(k.value for k in node.keywords if k.arg == "subject")]
        for arg in args:
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                found.append((node.lineno, arg.value))
            elif isinstance(arg, ast.JoinedStr | ast.BinOp):
                found.append((node.lineno, BUILT_INLINE))
    return found


BUILT_INLINE = "<built inline>"


def catalogued(subject: str) -> bool:
    return any(e.matches(subject) for e in CATALOG)


def test_services_publish_and_subscribe_only_catalogued_subjects_never_built_inline() -> None:
    """Pattern subjects come from lobe.shared.catalog.subject(); the bus test
    (tests/e2e/test_bus_matches_catalog.py) checks what really crosses the bus."""
    sources = sorted((DEFAULT_ROOT / "services").glob("*/src/**/*.py"))
    unknown = []
    for source in sources:
        for line, used in inline_subjects(source):
            if used == BUILT_INLINE or not catalogued(used):
                unknown.append(f"{source.relative_to(DEFAULT_ROOT)}:{line}: {used!r}")
    assert unknown == [], "subjects used by services outside the catalog:\n" + "\n".join(unknown)


def test_inline_subject_scan_finds_literals_and_subjects_built_inline(tmp_path: Path) -> None:
    source = tmp_path / "svc.py"
    source.write_text(
        'async def f(nc, rid):\n    await nc.publish("usage.lost", b"")\n'
        '    await nc.request(f"chat.reply.{rid}", b"")\n'
        '    await nc.subscribe("chat.cancel." + rid)\n'
        '    await nc.publish(subject(CHAT_CANCEL, worker_id=rid), b"")\n'
    )
    assert inline_subjects(source) == [(2, "usage.lost"), (3, BUILT_INLINE), (4, BUILT_INLINE)]
    assert not catalogued("usage.lost")
    assert catalogued("chat.reply.*.*")
    assert catalogued("usage.recorded")


def test_committed_docs_match_what_the_code_generates() -> None:
    drift = stale(DEFAULT_ROOT, generated_docs())
    assert drift == [], f"docs out of date: {drift}; run `python -m lobe.shared.catalog` and commit"
