"""The bus: the one way a service uses NATS (docs/architecture.md, "The bus: one idiom").

- `Bus.responds(entry, handler)`: answer a catalogued command (request-reply, or a core command);
- `Bus.request(entry, payload, timeout_s)`: ask one, get the catalogued reply model or None
  (`Bus.exchange`: the same exchange, the reply's bytes, no responder told from a slow one);
- `Bus.publish(entry, message)`: a core command or fact, at most once;
- `Bus.subscribe(entry, handler)`: every message of a subject each replica hears (a broadcast);
- `Bus.replies(entry, **tokens)`: one reply subject's messages, read in order by its asker;
- `Bus.publish_fact(entry, event)`: a fact on its JetStream stream, deduplicated by the catalog's id;
- `Bus.consume(stream, durable, batch, handler)`: batches from a durable pull consumer, acked by
  the handler after its work commits;
- `MemoryBus`: the same calls in memory, for unit tests;
- connection options, streams and consumers as the catalog declares them (lobe.shared.bus.connection).
"""

from lobe.shared.bus.calls import BusCalls, MessageTooLarge, NoResponders, Responder, entry_of, queue_of
from lobe.shared.bus.connection import (
    RECONNECT_WAIT_S,
    ask,
    close,
    connect,
    connect_options,
    ensure_consumer,
    ensure_streams,
    flush,
    inbox_prefix,
    stream_config,
    tls_context,
)
from lobe.shared.bus.consume import BatchHandler, Consumer, Consuming, sleep_unless
from lobe.shared.bus.facts import publish_fact
from lobe.shared.bus.memory import MemoryBus, MemoryMsg
from lobe.shared.bus.nats_bus import Bus
from lobe.shared.bus.replies import Listening, Replies
from lobe.shared.bus.responder import MalformedError, Unanswered

__all__ = [
    "RECONNECT_WAIT_S",
    "BatchHandler",
    "Bus",
    "BusCalls",
    "Consumer",
    "Consuming",
    "Listening",
    "MalformedError",
    "MemoryBus",
    "MemoryMsg",
    "MessageTooLarge",
    "NoResponders",
    "Replies",
    "Responder",
    "Unanswered",
    "ask",
    "close",
    "connect",
    "connect_options",
    "ensure_consumer",
    "ensure_streams",
    "entry_of",
    "flush",
    "inbox_prefix",
    "publish_fact",
    "queue_of",
    "sleep_unless",
    "stream_config",
    "tls_context",
]
